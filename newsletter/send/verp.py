"""VERP: one return path per message, so that a bounce names its recipient for certain.

    MAIL FROM:<bounce+{token}@{NEWSLETTER_BOUNCE_DOMAIN}>
    token = the first 20 hex digits of HMAC-SHA256(NEWSLETTER_SECRET_KEY, issue "\\0" address)

The token is a key into the send journal, not an encoding of the address. The journal holds
a row (issue, address) for every message that ever left, and is kept outside build/ for
good, so `bounces` maps a token back by computing the tokens of those rows once: exact, no
guessing. Why not put the address itself in the token (base32 + a MAC)? RFC 5321 caps the
local part at 64 characters and an address may have 254: base32 with a MAC and the issue
would fit addresses of 20 to 30 characters only, and long addresses would need this
look-up anyway. The token also has a fixed length, keeps the address out of relays' logs
of the envelope, and cannot be forged: without the secret nobody can make a notification
that suppresses someone else; a token the journal does not know is reported, never guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from newsletter.errors import ConfigError
from newsletter.settings import Settings

PREFIX = "bounce+"
TOKEN_LENGTH = 20
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


class Verp:
    """Return paths for one bounce domain, signed with the secret key."""

    def __init__(self, *, domain: str, secret: str) -> None:
        self.domain = domain.lower()
        self._key = secret.encode("utf-8")
        self._address_re = re.compile(
            rf"^{re.escape(PREFIX)}([0-9a-f]{{{TOKEN_LENGTH}}})@{re.escape(self.domain)}$", re.I
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Verp | None:
        """None without NEWSLETTER_BOUNCE_DOMAIN; ConfigError if it is unusable."""
        domain = settings.bounce_domain.strip().lower()
        if not domain:
            return None
        if not _DOMAIN_RE.match(domain):
            raise ConfigError(
                f"'{settings.bounce_domain}' is not a domain name",
                path=".env",
                field="NEWSLETTER_BOUNCE_DOMAIN",
                hint="the domain only, e.g. bounces.example.fr (its MX receives the bounces)",
            )
        secret = settings.secret_key.get_secret_value()
        if not secret:
            raise ConfigError(
                "NEWSLETTER_BOUNCE_DOMAIN is set but NEWSLETTER_SECRET_KEY is empty",
                path=".env",
                field="NEWSLETTER_SECRET_KEY",
                hint="set a long random secret: the return paths are signed with it",
            )
        return cls(domain=domain, secret=secret)

    def token(self, issue_id: str, address: str) -> str:
        msg = f"{issue_id}\0{address.lower()}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:TOKEN_LENGTH]

    def return_path(self, issue_id: str, address: str) -> str:
        """The envelope sender (MAIL FROM) of `issue_id`'s message to `address`."""
        return f"{PREFIX}{self.token(issue_id, address)}@{self.domain}"

    def token_of(self, address: str) -> str | None:
        """The token of a `bounce+<token>@<domain>` address, None for any other address."""
        m = self._address_re.match(address.strip().strip("<>"))
        return m.group(1).lower() if m else None

    def index(self, rows: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """token -> (issue, address) for journal rows (issue, address)."""
        return {self.token(issue, address): (issue, address) for issue, address in rows}
