"""Per-recipient fields, as they stay in build/<id>/email.html and email.txt until a send.

`render` writes them, `message` fills them; neither needs the other's machinery (importing
the rendering stack would cost `send` ~130 ms of start-up).
"""

from __future__ import annotations

import re

#: A per-recipient field as it stays in email.html / email.txt until `message.py` fills it.
PLACEHOLDER_RE = re.compile(r"\{\{ ([A-Za-z_][A-Za-z0-9_]*) \}\}")

#: The fields every recipient has; CSV columns add more (`{{ subscriber.ville }}`).
RECIPIENT_FIELDS = ("name", "email", "greeting", "unsubscribe_url")
