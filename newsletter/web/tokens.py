"""The signed values of the reader-facing service, all HMAC-SHA256 under NEWSLETTER_SECRET_KEY.

    unsubscribe   subscribers.unsubscribe_token(address): 64 hex digits, the same token
                  `newsletter unsubscribe TOKEN` takes; never the address itself
    confirm       base64url(JSON {e, n, x, i}) "." base64url(HMAC("confirm", payload)):
                  the address, the name, the expiry and the issue time, signed (as
                  itsdangerous does); the issue time tells a pending sign-up from a replay
    csrf          a random value in a SameSite=Strict cookie and in the form (double submit)

Each kind is signed under its own purpose string, so one can never stand for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from pathlib import Path
from typing import NamedTuple

from newsletter.send.subscribers import InvalidRow, read_rows, unsubscribe_token


class BadToken(ValueError):
    """A token that is malformed, altered or expired: the request changes nothing."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise BadToken("not base64url") from None


def _sign(secret: str, purpose: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), purpose.encode() + b"\0" + payload, hashlib.sha256).digest()


class Confirmation(NamedTuple):
    email: str
    name: str
    expires: int
    issued: float  # when the link was mailed (seconds since the epoch, to the millisecond)


def confirm_token(email: str, name: str, *, issued: float, expires: int, secret: str) -> str:
    payload = json.dumps(
        {"e": email, "n": name, "x": expires, "i": round(issued, 3)},
        separators=(",", ":"), ensure_ascii=False,
    ).encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, 'confirm', payload))}"


def read_confirm(token: str, *, secret: str, now: float, lifetime: float) -> Confirmation:
    """The confirmation `token` carries; BadToken if altered or past its expiry.

    A token mailed before tokens carried their issue time is taken as issued `lifetime`
    seconds before its expiry (NEWSLETTER_CONFIRM_HOURS then, very likely the same now)."""
    body, _, signature = token.partition(".")
    if not body or not signature or len(token) > 2048:
        raise BadToken("malformed")
    payload = _unb64(body)
    if not hmac.compare_digest(_unb64(signature), _sign(secret, "confirm", payload)):
        raise BadToken("bad signature")
    try:
        data = json.loads(payload)
        expires = int(data["x"])
        issued = float(data.get("i", expires - lifetime))
        found = Confirmation(str(data["e"]), str(data["n"]), expires, issued)
    except (ValueError, KeyError, TypeError):
        raise BadToken("malformed") from None
    if now > found.expires:
        raise BadToken("expired")
    return found


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, field: str | None) -> bool:
    return bool(cookie) and bool(field) and hmac.compare_digest(str(cookie), str(field))


class TokenIndex:
    """Unsubscribe token -> address, over the list file; rebuilt when the file is replaced."""

    def __init__(self, path: Path, secret: str) -> None:
        self.path, self.secret = path, secret
        self._map: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int]:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_ino)

    def add(self, email: str) -> None:
        with self._lock:
            self._map[unsubscribe_token(email, self.secret)] = email

    def lookup(self, token: str) -> str | None:
        token = token.strip().lower()
        if len(token) != 64:
            return None
        with self._lock:
            found = self._map.get(token)
            if found is None and self._stamp != self._stat():
                self._stamp = self._stat()
                rel = self.path.name
                for row in read_rows(self.path, rel=rel):
                    if not isinstance(row, InvalidRow):
                        self._map[unsubscribe_token(row.email, self.secret)] = row.email
                found = self._map.get(token)
            return found
