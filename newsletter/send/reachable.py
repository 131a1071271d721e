"""`newsletter doctor`'s check of `newsletter serve` (issue 10): is anything answering at the
addresses every email links to?"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

from newsletter.findings import Finding
from newsletter.settings import Settings


def check_public_url(settings: Settings, *, timeout: float = 5.0) -> list[Finding]:
    """`<public>/healthz` answers 200; an unsubscribe URL of the user's own answers at all."""
    public, own = settings.public_url, settings.unsubscribe_url
    if public:
        status = _http_status(f"{public}/healthz", timeout)
        if status == 200:
            return [Finding("service", "ok", f"{public}/healthz answers")]
        links = "" if own else f"; every email's unsubscribe link points at {public}/unsubscribe"
        said = f"answers {status}" if status else "does not answer"
        return [
            Finding(
                "service",
                "error",
                f"{public}/healthz {said}: `newsletter serve` is not reachable there{links} "
                "(see docs/deploy.md)",
            )
        ]
    if own and not _documentation_name(own) and _http_status(own.replace("{token}", "x"),
                                                             timeout) is None:
        return [
            Finding(
                "service",
                "error",
                f"nothing answers at {own}: readers cannot unsubscribe with one click "
                "(run `newsletter serve` and set NEWSLETTER_PUBLIC_URL, or fix the URL)",
            )
        ]
    return []


def _documentation_name(url: str) -> bool:
    """A host under a name reserved for examples (RFC 2606, 6761): nothing to ask."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    reserved = ("example", "test", "invalid", "example.com", "example.org", "example.net")
    return any(host == r or host.endswith("." + r) for r in reserved)


def _http_status(url: str, timeout: float) -> int | None:
    """The HTTP status a GET of `url` gets, or None when nothing answers."""
    request = urllib.request.Request(url, headers={"User-Agent": "newsletter-doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None
