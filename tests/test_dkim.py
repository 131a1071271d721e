"""DKIM: every message that leaves is signed, and verifies against the key published in DNS."""

from __future__ import annotations

import email
import email.policy
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from conftest import RunCli, mailable, snapshot
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from smtpserver import TestServer

from newsletter.cli import ExitCode

SELECTOR = "nl2026"
DOMAIN = "coeursurparis.example"
HEADERS = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
]
KeyPair = tuple[bytes, bytes]  # (private PEM, TXT record)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    """An RSA 2048 and an Ed25519 key, with the TXT records that publish them."""
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = r.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    e = ed25519.Ed25519PrivateKey.generate()
    raw = e.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return {
        "rsa": (_pem(r), b"v=DKIM1; k=rsa; p=" + b64encode(spki)),
        "ed25519": (_pem(e), b"v=DKIM1; k=ed25519; p=" + b64encode(raw)),
    }


def dns(records: dict[str, bytes]) -> Callable[..., bytes | None]:
    """A dnsfunc for dkim.verify: TXT records by name, from the test."""

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        return records.get(text.rstrip("."))

    return lookup


def tags(raw: bytes) -> dict[str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    value = " ".join(str(msg["DKIM-Signature"]).split())
    return {
        k.strip(): "".join(v.split())
        for k, _, v in (item.partition("=") for item in value.split(";"))
    }




def write_key(root: Path, pem: bytes, name: str = "dkim.pem") -> str:
    (root / "keys").mkdir(exist_ok=True)
    (root / "keys" / name).write_bytes(pem)
    return f"keys/{name}"


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_every_message_is_signed_and_verifies_against_the_published_key(
    kind: str, keys: dict[str, KeyPair], built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    pem, record = keys[kind]
    env = smtp_server.env(
        NEWSLETTER_DKIM_KEY_FILE=write_key(built, pem),
        NEWSLETTER_DKIM_SELECTOR=SELECTOR,
        NEWSLETTER_UNSUBSCRIBE_URL="https://coeursurparis.example/desinscription",
        NEWSLETTER_SECRET_KEY="a-long-random-secret-for-the-tests",
    )
    result = run_cli("send", "2026-11", root=built, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert smtp_server.recipients() == mailable(built)
    lookup = dns({f"{SELECTOR}._domainkey.{DOMAIN}": record})
    for received in smtp_server.received:
        assert received.raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(received.raw, dnsfunc=lookup), received.rcpt
        t = tags(received.raw)
        assert t["a"] == ("rsa-sha256" if kind == "rsa" else "ed25519-sha256")
        assert (t["c"], t["d"], t["s"]) == ("relaxed/relaxed", DOMAIN, SELECTOR)
        assert t["h"].split(":") == [*HEADERS, "list-unsubscribe-post"]


def test_a_changed_byte_breaks_the_signature(
    keys: dict[str, KeyPair], built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    pem, record = keys["rsa"]
    env = smtp_server.env(
        NEWSLETTER_DKIM_KEY_FILE=write_key(built, pem), NEWSLETTER_DKIM_SELECTOR=SELECTOR
    )
    assert run_cli("send", "2026-11", root=built, env=env).exit_code == 0
    raw = smtp_server.received[0].raw
    lookup = dns({f"{SELECTOR}._domainkey.{DOMAIN}": record})
    assert dkim.verify(raw, dnsfunc=lookup)
    assert not dkim.verify(raw.replace(b"Bonjour", b"Bonsoir", 1), dnsfunc=lookup)
    another = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = another.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    other = dns({f"{SELECTOR}._domainkey.{DOMAIN}": b"v=DKIM1; k=rsa; p=" + b64encode(spki)})
    assert not dkim.verify(raw, dnsfunc=other)


def test_the_test_message_is_signed_too_with_the_dkim_domain(
    keys: dict[str, KeyPair], built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    pem, record = keys["ed25519"]
    env = smtp_server.env(
        NEWSLETTER_DKIM_KEY_FILE=write_key(built, pem),
        NEWSLETTER_DKIM_SELECTOR=SELECTOR,
        NEWSLETTER_DKIM_DOMAIN="mail.coeursurparis.example",
    )
    result = run_cli("send", "2026-11", "--test-to", "moi@example.fr", root=built, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    (received,) = smtp_server.received
    lookup = dns({f"{SELECTOR}._domainkey.mail.coeursurparis.example": record})
    assert dkim.verify(received.raw, dnsfunc=lookup)
    t = tags(received.raw)
    assert t["d"] == "mail.coeursurparis.example"
    assert t["h"].split(":") == HEADERS  # no one-click URL, so no List-Unsubscribe-Post


def _encrypted(keys: dict[str, KeyPair]) -> bytes:
    key = ser.load_pem_private_key(keys["rsa"][0], password=None)
    return key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pass")
    )


def _public(keys: dict[str, KeyPair]) -> bytes:
    key = ser.load_pem_private_key(keys["rsa"][0], password=None)
    return key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)


def _ec_key(keys: dict[str, KeyPair]) -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )


HINT = "make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem`"


@pytest.mark.parametrize(
    ("content", "message", "hint"),
    [
        (
            None,
            "cannot read the DKIM private key: No such file or directory",
            "check the path, relative to the newsletter folder; " + HINT,
        ),
        (_public, "the file is a public key, not a private key", HINT),
        (lambda keys: b"not a key\n", "the file is not a PEM private key", HINT),
        (
            _encrypted,
            "the DKIM private key is encrypted",
            "signing needs it unencrypted: `openssl pkey -in KEY -out dkim.pem`",
        ),
        (_ec_key, "DKIM keys are RSA or Ed25519, this one is EC", HINT),
    ],
    ids=["missing", "public", "garbage", "encrypted", "ec"],
)
def test_a_bad_key_is_one_error_line_and_nothing_is_sent(
    content: Callable[[dict[str, KeyPair]], bytes] | None,
    message: str,
    hint: str,
    keys: dict[str, KeyPair],
    built: Path,
    smtp_server: TestServer,
    run_cli: RunCli,
) -> None:
    path = "keys/dkim.pem" if content is None else write_key(built, content(keys))
    env = smtp_server.env(NEWSLETTER_DKIM_KEY_FILE=path, NEWSLETTER_DKIM_SELECTOR=SELECTOR)
    before = snapshot(built)
    for args in (("send", "2026-11"), ("send", "2026-11", "--test-to", "moi@example.fr")):
        result = run_cli(*args, root=built, env=env)
        assert result.exit_code == ExitCode.USER_ERROR
        assert (
            result.stderr == f"error: keys/dkim.pem: NEWSLETTER_DKIM_KEY_FILE: {message} ({hint})\n"
        )
        assert result.stdout == ""
    assert smtp_server.received == []
    assert snapshot(built) == before  # no journal, no suppression file


def test_a_selector_without_a_key_is_an_error(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    env = smtp_server.env(NEWSLETTER_DKIM_SELECTOR=SELECTOR)
    result = run_cli("send", "2026-11", root=built, env=env)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == (
        "error: .env: NEWSLETTER_DKIM_KEY_FILE: NEWSLETTER_DKIM_SELECTOR is set but "
        "NEWSLETTER_DKIM_KEY_FILE is empty (set the path of the PEM private key, or empty both "
        "to send unsigned)\n"
    )
    assert smtp_server.received == []


def test_without_dkim_settings_messages_are_not_signed(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    assert run_cli("send", "2026-11", root=built, env=smtp_server.env()).exit_code == 0
    assert all(b"DKIM-Signature" not in r.raw for r in smtp_server.received)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_signed_bytes_stay_wire_ready(
    kind: str, keys: dict[str, KeyPair], built: Path, tmp_path: Path
) -> None:
    """The transport sends personalised bytes without a scan: CRLF only, no line with a dot."""
    from newsletter.layout import Layout
    from newsletter.send.dkim import Signer, load_key
    from newsletter.send.message import SAMPLE_READER, MessageTemplate
    from newsletter.settings import Settings

    key_file = tmp_path / "k.pem"
    key_file.write_bytes(keys[kind][0])
    signer = Signer(load_key(key_file, shown="k.pem"), selector=SELECTOR, domain=DOMAIN)
    template = MessageTemplate.from_build(
        Layout.at(built).build_dir("2026-11"), settings=Settings()
    )
    signed = signer.sign(template.personalize(SAMPLE_READER))
    head = signed[: signed.index(b"\r\n\r\n")]
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert b"\r" not in signed.replace(b"\r\n", b"")
    assert not signed.startswith(b".") and b"\r\n." not in signed
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if line.startswith((b"DKIM", b" ")))


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_relaxed_canonicalisation_of_awkward_bytes_verifies_with_dkimpy(
    keys: dict[str, KeyPair], tmp_path: Path, kind: str
) -> None:
    """Our own RFC 6376 code against dkimpy's: tabs, runs of spaces, folded headers,
    trailing spaces and empty lines at the end of the body."""
    from newsletter.send.dkim import DkimKey, Signer, load_key

    path = tmp_path / "k.pem"
    path.write_bytes(keys[kind][0])
    key: DkimKey = load_key(path, shown="k.pem")
    signer = Signer(key, selector="nl", domain="example.fr")
    message = (
        b"From:  Zo\xc3\xa9 <z@example.fr>\r\nTo: a@example.fr\r\n"
        b"Subject: a  long\r\n\t folded   subject\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        b"X-Other: not signed\r\n\r\n"
        b"line\twith tab  and   spaces \r\n\r\n  indented\t \r\n\r\n\r\n"
    ).replace(b"\xc3\xa9", b"e")
    signed = signer.sign(message)
    lookup = dns({"nl._domainkey.example.fr": keys[kind][1]})
    assert dkim.verify(signed, dnsfunc=lookup)
    assert tags(signed)["h"] == "from:to:subject:date"
    assert not dkim.verify(signed.replace(b"indented", b"Indented"), dnsfunc=lookup)
    # Whitespace changes that relaxed canonicalisation ignores keep the signature valid.
    assert dkim.verify(signed.replace(b"tab  and", b"tab and"), dnsfunc=lookup)


def _awkward_pieces() -> list[bytes]:
    """Static pieces of a body (whole lines), with tabs, runs of spaces and trailing spaces."""
    return [
        b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"static  line\t with   runs  \r\n" * 4,
        b"=\r\nmiddle piece that is long enough to be canonicalised once \t \r\n" * 2,
        b"the end of the body, with spaces   at the end   \r\n--b--\r\n",
    ]


@pytest.mark.parametrize(
    "fill",
    [
        [b"Bonjour  Zo=C3=A9\t!=\r\n", b"https://x.example/u?t=1=\r\n"],
        [b"", b""],  # empty fields: the pieces meet back to back
        [b"  \r\n\r\n", b"\r\n \t\r\n"],  # fields that are only whitespace and empty lines
        [b"Bonjour \t", b"  x \r\n"],  # a field mid-line: the next piece's first line joins it
    ],
)
def test_the_issue_signer_signs_byte_for_byte_like_the_plain_one(
    keys: dict[str, KeyPair], tmp_path: Path, fill: list[bytes]
) -> None:
    """Pieces canonicalised once per issue, hash states copied: the same bytes as signing
    the whole message each time, and dkimpy verifies both; a piece that is not found (or
    trailing empty lines after the last one) falls back to the plain way."""
    from newsletter.send.dkim import Signer, load_key
    from newsletter.send.dkim_issue import IssueSigner

    path = tmp_path / "k.pem"
    path.write_bytes(keys["rsa"][0])
    plain = Signer(load_key(path, shown="k.pem"), selector="nl", domain="example.fr")
    pieces = _awkward_pieces()
    issue = IssueSigner.for_issue(plain, [*pieces, b"a static piece that never appears\r\n" * 3])
    head = b"From: a@example.fr\r\nTo: b@example.fr\r\nSubject: s\r\n\r\n"
    lookup = dns({"nl._domainkey.example.fr": keys["rsa"][1]})
    bodies = [
        pieces[0] + fill[0] + pieces[1] + fill[1] + pieces[2],
        fill[0] + pieces[0] + pieces[1] + fill[1] + pieces[2] + b"\r\n\r\n",
        pieces[1] + b"  \t\r\n" + fill[1],
    ]
    for body in bodies:
        message = head + body
        ours = issue.sign(message, now=1_700_000_000)
        assert ours == plain.sign(message, now=1_700_000_000)
        assert dkim.verify(ours, dnsfunc=lookup)


def test_signatures_made_in_worker_processes_verify(
    keys: dict[str, KeyPair], built: Path, tmp_path: Path
) -> None:
    """The key operation in a process pool (RSA): each message still verifies with dkimpy,
    and the signatures were made in other processes than this one."""
    import asyncio
    import os

    from newsletter.layout import Layout
    from newsletter.send import signing
    from newsletter.send.dkim import Signer, load_key
    from newsletter.send.dkim_issue import IssueSigner
    from newsletter.send.message import MessageTemplate
    from newsletter.send.share import static_pieces
    from newsletter.send.subscribers import Subscriber
    from newsletter.settings import Settings

    key_file = tmp_path / "k.pem"
    key_file.write_bytes(keys["rsa"][0])
    template = MessageTemplate.from_build(
        Layout.at(built).build_dir("2026-11"), settings=Settings()
    )
    plain = Signer(load_key(key_file, shown="k.pem"), selector=SELECTOR, domain=DOMAIN)
    pool = signing.OffLoopSigner(
        IssueSigner.for_issue(plain, static_pieces(template)), processes=2
    ).start()
    readers = [Subscriber(email=f"r{i}@example.fr", name=f"Zoé  N°{i}") for i in range(12)]

    async def sign_all() -> list[bytes]:
        return await asyncio.gather(*(pool.sign(template.personalize(r)) for r in readers))

    try:
        signed = asyncio.run(sign_all())
        pids = set(pool.pids)
    finally:
        pool.close()
    assert pids and os.getpid() not in pids
    lookup = dns({f"{SELECTOR}._domainkey.{DOMAIN}": keys["rsa"][1]})
    assert all(dkim.verify(raw, dnsfunc=lookup) for raw in signed)
    assert len({tags(raw)["b"] for raw in signed}) == len(readers)
