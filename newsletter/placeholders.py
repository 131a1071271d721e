"""Per-recipient fields, as they stay in build/<id>/email.html and email.txt until a send.

`render` writes them, `message` fills them; neither needs the other's machinery (importing
the rendering stack would cost `send` ~130 ms of start-up).
"""

from __future__ import annotations

import re
from html import escape

#: A per-recipient field as it stays in email.html / email.txt until `message.py` fills it.
PLACEHOLDER_RE = re.compile(r"\{\{ ([A-Za-z_][A-Za-z0-9_]*) \}\}")

#: The fields every recipient has; CSV columns add more (`{{ subscriber.ville }}`).
RECIPIENT_FIELDS = ("name", "email", "greeting", "unsubscribe_url")


def fill(body: str, values: dict[str, str], *, html: bool) -> str:
    """Fill `{{ field }}` placeholders by regex (unknown fields: empty), HTML-escaped if `html`.

    For one-off views (preview, archive); a send fills pre-encoded pieces in `message.py`.
    """

    def value(match: re.Match[str]) -> str:
        raw = values.get(match.group(1), "")
        return escape(raw, quote=True) if html else raw

    return PLACEHOLDER_RE.sub(value, body)
