"""site/feed.xml: the archive's Atom 1.0 feed (RFC 4287), one entry per issue.

Built as text, as it always was, so that the same inputs give the same bytes; every value
goes through `_x` (escaped, and without the characters XML 1.0 forbids).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

from newsletter.labels import labels_for
from newsletter.settings import Settings

if TYPE_CHECKING:
    from newsletter.archive_issue import ArchivedIssue

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED = "feed.xml"
INDEX = "index.html"
MAIN_OPEN = '<main id="main">'
MAIN_CLOSE = "</main>"

# The preheader: text shown after the subject in an inbox, hidden in the email's body.
_PREHEADER_RE = re.compile(r"^\s*<div style=\"display:none;[^\"]*\">[^<]*</div>", re.I)
# Characters XML 1.0 forbids: kept out of feed.xml.
_XML_INVALID_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def feed_content(page: str) -> str:
    """The email of an issue page (its <main>), without the hidden preheader: a feed entry."""
    start = page.index(MAIN_OPEN) + len(MAIN_OPEN)
    inner = page[start : page.rindex(MAIN_CLOSE)]
    return _PREHEADER_RE.sub("", inner, count=1).strip()


def _x(text: str) -> str:
    """Text for XML: escaped, and without the characters XML 1.0 forbids."""
    return escape(_XML_INVALID_RE.sub("", text), quote=True)


def _urn(*parts: str) -> str:
    # Without NEWSLETTER_ARCHIVE_URL: ids that never change for a sender and an issue.
    return uuid.uuid5(uuid.NAMESPACE_URL, "newsletter-archive:" + "\0".join(parts)).urn


def atom_feed(
    issues: list[ArchivedIssue], pages: Mapping[str, bytes], *, settings: Settings, name: str
) -> str:
    """site/feed.xml (Atom 1.0, RFC 4287): one entry per issue, newest first.

    With NEWSLETTER_ARCHIVE_URL the ids and links are the public URLs; without it, the links
    are relative to the feed (the site's root) and the ids are name-based UUID URNs.
    """
    base = settings.archive_url
    feed_id = base or _urn(settings.sender_address)
    updated = max((i.updated for i in issues), default="1970-01-01T00:00:00Z")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="{ATOM_NS}" xml:lang="{_x(settings.language)}">',
        f"  <id>{_x(feed_id)}</id>",
        f"  <title>{_x(name)}</title>",
        f"  <subtitle>{_x(labels_for(settings.language)['archive_intro'])}</subtitle>",
        f"  <updated>{updated}</updated>",
        f"  <author><name>{_x(name)}</name></author>",
        f'  <link rel="self" type="application/atom+xml" href="{_x(base + FEED)}"/>',
        f'  <link rel="alternate" type="text/html" href="{_x(base or "./")}"/>',
    ]
    lines += [_entry(issue, pages, settings=settings) for issue in issues]
    lines.append("</feed>")
    return "\n".join(lines) + "\n"


def _entry(issue: ArchivedIssue, pages: Mapping[str, bytes], *, settings: Settings) -> str:
    href = settings.archive_page_url(issue.id) or f"{quote(issue.id)}/"
    entry_id = settings.archive_page_url(issue.id) or _urn(settings.sender_address, issue.id)
    content = feed_content(pages[f"{issue.id}/{INDEX}"].decode("utf-8"))
    authors = "".join(
        f"\n    <author><name>{_x(author)}</name></author>" for author in issue.authors
    )
    summary = f"\n    <summary>{_x(issue.preheader)}</summary>" if issue.preheader else ""
    return (
        f'  <entry xml:lang="{_x(issue.language)}">\n'
        f"    <id>{_x(entry_id)}</id>\n"
        f"    <title>{_x(issue.subject)}</title>\n"
        f"    <updated>{issue.updated}</updated>\n"
        f'    <link rel="alternate" type="text/html" href="{_x(href)}"/>'
        f"{authors}{summary}\n"
        # xml:base: the content's relative links (the index, #anchors) resolve from the page.
        f'    <content type="html" xml:base="{_x(href)}">{_x(content)}</content>\n'
        "  </entry>"
    )
