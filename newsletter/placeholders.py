"""Per-recipient fields, as they stay in build/<id>/email.html and email.txt until a send.

`render` writes them, `message` fills them; neither needs the other's machinery (importing
the rendering stack would cost `send` ~130 ms of start-up).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape

#: A per-recipient field as it stays in email.html / email.txt until `message.py` fills it.
PLACEHOLDER_RE = re.compile(r"\{\{ ([A-Za-z_][A-Za-z0-9_]*) \}\}")

#: The fields every recipient has; CSV columns add more (`{{ subscriber.ville }}`).
RECIPIENT_FIELDS = ("name", "email", "greeting", "unsubscribe_url")


#: Braces in article text are built as `{` + WORD JOINER + `{`, so that no article can hold a
#: placeholder (issue 13): only the templates may. Filling turns them back into `{{`.
BRACE_ESCAPE = "{\u2060"
_BRACE_RE = re.compile(r"\{(?=\{)")


def escape_braces(text: str) -> str:
    """Article-derived text as it goes into a build: never a `{{`, so never a placeholder."""
    return _BRACE_RE.sub(BRACE_ESCAPE, text) if "{{" in text else text


def unescape_braces(text: str) -> str:
    """The text as the reader sees it: `{{` again, after the placeholders were found."""
    return text.replace(BRACE_ESCAPE, "{") if BRACE_ESCAPE in text else text


def fill(body: str, values: dict[str, str], *, html: bool) -> str:
    """Fill `{{ field }}` placeholders by regex (unknown fields: empty), HTML-escaped if `html`.

    For one-off views (preview, archive); a send fills pre-encoded pieces in `message.py`.
    """

    def value(match: re.Match[str]) -> str:
        raw = values.get(match.group(1), "")
        return escape(raw, quote=True) if html else raw

    return "".join(
        part if i % 2 else unescape_braces(part)
        for i, part in enumerate(_split_filled(PLACEHOLDER_RE, body, value))
    )


def _split_filled(
    pattern: re.Pattern[str], body: str, value: Callable[[re.Match[str]], str]
) -> list[str]:
    """Static text and filled values, alternating (a value is never unescaped)."""
    parts: list[str] = []
    pos = 0
    for m in pattern.finditer(body):
        parts += [body[pos : m.start()], value(m)]
        pos = m.end()
    parts.append(body[pos:])
    return parts
