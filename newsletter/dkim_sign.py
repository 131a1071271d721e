"""DKIM signatures (RFC 6376; Ed25519: RFC 8463) on the bytes `message` produced, with dkimpy.

A `Signer` is built once per send from the settings: it reads the private key (RSA or
Ed25519, PEM), checks it, and signs a sample message, so that a bad key is a `ConfigError`
before anything leaves. `sign(data)` then prepends one DKIM-Signature header to each
recipient's message: relaxed/relaxed, over those of `SIGNED_HEADERS` the message has.

The key is read with `cryptography` (any PEM: PKCS#1, PKCS#8, CRLF line ends) and handed to
dkimpy in the form it expects: PKCS#1 PEM for RSA, the base64 32-byte seed for Ed25519.
dkimpy (and `dns`, which it imports) is imported only when a key is configured.
"""

from __future__ import annotations

import re
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from newsletter.errors import ConfigError
from newsletter.layout import Layout
from newsletter.settings import Settings

KEY_SETTING = "NEWSLETTER_DKIM_KEY_FILE"
SELECTOR_SETTING = "NEWSLETTER_DKIM_SELECTOR"
DOMAIN_SETTING = "NEWSLETTER_DKIM_DOMAIN"

#: Signed when present, in this order (the h= tag).
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
KEYGEN_HINT = (
    "make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem`"
)

#: TXT records of a name: [] if it has none, None if the name does not exist (NXDOMAIN).
TxtResolver = Callable[[str], list[str] | None]


@dataclass(frozen=True)
class DkimKey:
    """A private key in dkimpy's form, and its public half as published in DNS (p=)."""

    kind: Literal["rsa", "ed25519"]
    private: bytes  # RSA: PKCS#1 PEM; Ed25519: base64 of the 32-byte seed
    public: str  # RSA: base64 DER SubjectPublicKeyInfo; Ed25519: base64 of the raw 32 bytes
    bits: int

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if self.kind == "rsa" else b"ed25519-sha256"

    @property
    def dns_record(self) -> str:
        """The TXT record to publish at <selector>._domainkey.<domain>."""
        return f"v=DKIM1; k={self.kind}; p={self.public}"

    def describe(self) -> str:
        return f"RSA {self.bits} bits" if self.kind == "rsa" else "Ed25519"


def load_key(path: Path, *, shown: str) -> DkimKey:
    """Read a PEM private key; any problem is a ConfigError naming the setting and the path."""

    def bad(message: str, hint: str = KEYGEN_HINT) -> ConfigError:
        return ConfigError(message, path=shown, field=KEY_SETTING, hint=hint)

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise bad(
            f"cannot read the DKIM private key: {exc.strerror or exc}",
            hint="check the path, relative to the newsletter folder; " + KEYGEN_HINT,
        ) from None

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = ser.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise bad(
            "the DKIM private key is encrypted",
            hint="signing needs it unencrypted: `openssl pkey -in KEY -out dkim.pem`",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY-----" in data:
            what = "a public key, not a private key"
        elif b"CERTIFICATE-----" in data:
            what = "a certificate, not a private key"
        else:
            what = "not a PEM private key"
        raise bad(f"the file is {what}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise bad(f"the RSA key has {key.key_size} bits; receivers ignore keys under 1024")
        private = key.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
        )
        public = key.public_key().public_bytes(
            ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey("rsa", private, b64encode(public).decode(), key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        raw = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        return DkimKey("ed25519", b64encode(seed), b64encode(raw).decode(), 256)
    kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    raise bad(f"DKIM keys are RSA or Ed25519, this one is {kind or 'of another kind'}")


class Signer:
    """Signs each message with one key, selector and domain. Built once per send."""

    def __init__(self, key: DkimKey, *, selector: str, domain: str) -> None:
        import dkim  # ~100 ms (it imports dns.resolver): only when signing is on

        self.key = key
        self.selector = selector
        self.domain = domain
        self._dkim: Any = dkim
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")

    @classmethod
    def from_settings(cls, settings: Settings, *, layout: Layout) -> Signer | None:
        """The signer the settings ask for, or None when DKIM is off; ConfigError if unusable."""
        key_file, selector = settings.dkim_key_file.strip(), settings.dkim_selector.strip()
        if not key_file and not selector:
            return None
        if not selector:
            raise ConfigError(
                f"{KEY_SETTING} is set but {SELECTOR_SETTING} is empty",
                path=".env",
                field=SELECTOR_SETTING,
                hint="set the selector whose TXT record <selector>._domainkey.<domain> "
                "holds the public key",
            )
        if not key_file:
            raise ConfigError(
                f"{SELECTOR_SETTING} is set but {KEY_SETTING} is empty",
                path=".env",
                field=KEY_SETTING,
                hint="set the path of the PEM private key, or empty both to send unsigned",
            )
        if not _NAME_RE.match(selector):
            raise ConfigError(
                f"'{selector}' is not a DNS name",
                path=".env",
                field=SELECTOR_SETTING,
                hint="letters, digits and hyphens, e.g. nl2026",
            )
        domain = (settings.dkim_domain.strip() or settings.sender_domain).lower()
        if not _NAME_RE.match(domain) or "." not in domain:
            raise ConfigError(
                f"'{domain}' is not a domain name",
                path=".env",
                field=DOMAIN_SETTING if settings.dkim_domain.strip() else "NEWSLETTER_FROM",
                hint="the signing domain is NEWSLETTER_DKIM_DOMAIN, else the From domain",
            )
        path = layout.resolve(key_file)
        key = load_key(path, shown=layout.rel(path))
        signer = cls(key, selector=selector, domain=domain)
        try:  # what dkimpy refuses, it refuses here, before the first message
            signer.sign(b"From: a@" + signer._domain + b"\r\nSubject: test\r\n\r\ntest\r\n")
        except Exception as exc:
            raise ConfigError(
                f"dkimpy cannot sign with this key: {exc}", path=layout.rel(path), field=KEY_SETTING
            ) from None
        return signer

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def sign(self, message: bytes, /) -> bytes:
        """`message` with a DKIM-Signature header in front (CRLF line ends in, CRLF out)."""
        d = self._dkim.DKIM(message, signature_algorithm=self.key.algorithm)
        present = {name.lower() for name, _ in d.headers}
        header: bytes = d.sign(
            self._selector,
            self._domain,
            self.key.private,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h for h in SIGNED_HEADERS if h in present],
        )
        return header + message

    # -- the published key (newsletter doctor) ---------------------------------------------

    def check_dns(self, resolve: TxtResolver) -> tuple[Literal["ok", "error"], str]:
        """Compare the TXT record at `dns_name` with our key.

        Raises LookupError when DNS cannot tell (resolver errors propagate too): a resolver
        that knows no name at all (no network) must not pass for a missing record.
        """
        records = [parse_tags(txt) for txt in resolve(self.dns_name) or []]
        keys = [r for r in records if "p" in r]
        publish = f"publish: {self.key.dns_record}"
        if not keys:
            if resolve(self.domain) is None:
                raise LookupError(
                    f"the DNS knows neither {self.dns_name} nor {self.domain} "
                    "(no network, or the domain is not registered)"
                )
            return "error", f"no DKIM record at {self.dns_name} ({publish})"
        for r in keys:
            if r["p"] == self.key.public and r.get("k", "rsa") == self.key.kind:
                return "ok", f"the key matches the TXT record at {self.dns_name}"
        if any(r["p"] == "" for r in keys):
            return "error", f"the key at {self.dns_name} is revoked (empty p=; {publish})"
        return "error", f"the TXT record at {self.dns_name} holds another key ({publish})"


def parse_tags(record: str) -> dict[str, str]:
    """A DKIM key record's tags, `v=DKIM1; k=rsa; p=MIIB...` -> {"v": ..., "k": ..., "p": ...}."""
    tags: dict[str, str] = {}
    for item in record.split(";"):
        name, sep, value = item.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags
