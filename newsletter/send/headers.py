"""Header values for a message: folded at spaces, or RFC 2047 encoded words; never a raw line
break (no header injection). Used by `message.MessageTemplate`, once per issue for its own
headers and once per recipient for `To:`.
"""

from __future__ import annotations

import re
from base64 import b64encode
from urllib.parse import quote

#: A folded header line aims at 78 characters and never exceeds 998 (RFC 5322 2.1.1).
FOLD_AT = 78
MAX_HEADER_LINE = 998


_PLAIN_RE = re.compile(r"[A-Za-z0-9 .\-'_]*")


def _is_plain(text: str) -> bool:
    """ASCII letters, digits and ` .-'_` only (a regex: a loop over the characters is slow)."""
    return _PLAIN_RE.fullmatch(text) is not None


def fold_at_spaces(text: str, *, used: int) -> str | None:
    """`text` folded at its spaces (`used`: the header name's width), or None if a word is too
    long to fit in one line of 998 octets."""
    if used + len(text) <= FOLD_AT:
        return text
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and word and used + len(current) + 1 + len(word) > FOLD_AT:
            lines.append(current)
            current, used = word, 1  # a folded line starts with its space
        else:
            current = f"{current} {word}" if lines or current else word
    lines.append(current)
    if any(len(line) + 2 > MAX_HEADER_LINE - 12 for line in lines):
        return None
    return "\r\n ".join(lines)


def encode_word(text: str, *, chunk_bytes: int = 42, used: int = 9) -> str:
    """A subject or display name for a header (`used`: the width of `Name: `): plain ASCII
    folded at its spaces, else RFC 2047 encoded words folded between words."""
    if _is_plain(text):
        folded = fold_at_spaces(text, used=used)
        if folded is not None:
            return folded
    return _encoded_words(text, chunk_bytes=chunk_bytes)


def _encoded_words(text: str, *, chunk_bytes: int) -> str:
    whole = text.encode("utf-8")
    if len(whole) <= chunk_bytes:  # one word (a display name): no loop over the characters
        return f"=?utf-8?b?{b64encode(whole).decode()}?=" if whole else ""
    words: list[str] = []
    chunk = b""
    for ch in text:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > chunk_bytes:
            words.append(f"=?utf-8?b?{b64encode(chunk).decode()}?=")
            chunk = b""
        chunk += b
    if chunk:
        words.append(f"=?utf-8?b?{b64encode(chunk).decode()}?=")
    return "\r\n ".join(words)


_LINE_BREAKS_RE = re.compile(r"[\r\n]+[ \t]*")


def header_value(text: str) -> str:
    """One header line's value, never carrying a raw CR or LF (no header injection)."""
    return _LINE_BREAKS_RE.sub(" ", text).strip(" \t")


def format_address(name: str, address: str) -> str:
    name = header_value(name)
    if not name:
        return address
    if _is_plain(name):
        plain = f"{name} <{address}>" if "." not in name else f'"{name}" <{address}>'
        folded = fold_at_spaces(plain, used=len("To: "))
        if folded is not None:
            return folded
        return f"{_encoded_words(name, chunk_bytes=42)} <{address}>"
    # One encoded word if it fits on a line: Python's email parser (and so many tools built
    # on it) puts a space between adjacent encoded words inside a display name. A longer
    # name is split into words rather than break the 998-octet limit.
    word = _encoded_words(name, chunk_bytes=10_000)
    if len(word) + len(address) > MAX_HEADER_LINE - 20:
        word = _encoded_words(name, chunk_bytes=42)
    return f"{word} <{address}>"


#: What `quote` leaves as it is, and `@`, which it writes %40.
_URL_SAFE_ADDRESS_RE = re.compile(r"[A-Za-z0-9_.~-]+@[A-Za-z0-9_.~-]+")


def quote_address(address: str) -> str:
    """`quote(address)`, without its per-character work for a plain address (nearly all)."""
    if _URL_SAFE_ADDRESS_RE.fullmatch(address):
        return address.replace("@", "%40")
    return quote(address)
