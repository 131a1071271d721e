"""Which URLs the content may hold: links and images that reach the email, the archive, the feed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: Schemes a link may use; an image is fetched by the reader's client, so http(s) only.
LINK_SCHEMES = ("http", "https", "mailto")
IMAGE_SCHEMES = ("http", "https")
_SPACE_OR_CONTROL_RE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def check_url(value: str | None, *, schemes: tuple[str, ...]) -> str | None:
    """A link or image from the content, or ValueError: `javascript:`, `data:`, `vbscript:`
    and relative URLs would reach the archive, the feed and the email (issue 13)."""
    if value is None:
        return None
    wanted = " or ".join(f"{s}:" for s in schemes)
    # Browsers drop tabs and newlines inside a scheme ("java\tscript:"): refuse them all.
    if _SPACE_OR_CONTROL_RE.search(value):
        raise ValueError(f"must be an absolute {wanted} URL without spaces")
    parts = urlsplit(value)
    ok = parts.scheme in schemes and (
        bool(parts.netloc) if parts.scheme != "mailto" else bool(parts.path)
    )
    if not ok:
        raise ValueError(f"must be an absolute {wanted} URL, not '{value[:40]}'")
    return value
