"""The archive's HTML pages, from the Jinja templates of newsletter/theme/site/.

    index.html     _head, _header, one _entry per issue, _footer
    issue.html     the built email.html with _head, _header and _footer spliced in

The email is made public first (`public_email`): nothing of a recipient is left in it.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from newsletter.archive_feed import FEED, INDEX, atom_feed
from newsletter.errors import BuildError
from newsletter.labels import labels_for, long_date
from newsletter.placeholders import fill
from newsletter.send.evidence import UNSENT_PAGE_META
from newsletter.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from newsletter.archive_issue import ArchivedIssue

TEMPLATES = Path(__file__).parent / "theme" / "site"

_UNSUBSCRIBE_A_RE = re.compile(
    r"<a\b([^>]*?)\s+href=\"\{\{ unsubscribe_url \}\}\"([^>]*)>.*?</a>", re.S | re.I
)
_BODY_OPEN_RE = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE_RE = re.compile(r"</body\s*>", re.I)
_TITLE_RE = re.compile(r"<title>.*?</title>", re.S | re.I)
_HEAD_CLOSE_RE = re.compile(r"</head\s*>", re.I)


class NavItem(NamedTuple):
    """A link of the header's navigation."""

    href: str
    label: str
    rel: str = ""  # "next" / "prev" between issues
    current: bool = False  # the page itself: aria-current="page"


def _escape(value: Any) -> Any:
    # html.escape, not markupsafe's: the pages keep the bytes they had before the templates
    # (`&#x27;` and `&quot;`, where markupsafe writes `&#39;` and `&#34;`). Markup passes.
    if isinstance(value, str) and not isinstance(value, Markup):
        return Markup(escape(value))
    return value


@cache
def environment() -> jinja2.Environment:
    """The site's templates, autoescaped, built once."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,  # a typo in a template is an error, not a blank
    )


def render_site(issues: Iterable[ArchivedIssue], *, settings: Settings) -> dict[str, bytes]:
    """{relative path: bytes} of the whole site; `issues` newest first."""
    ordered = list(issues)
    name = newsletter_name(settings.sender)
    files: dict[str, bytes] = {}
    for n, issue in enumerate(ordered):
        newer = ordered[n - 1] if n > 0 else None
        older = ordered[n + 1] if n + 1 < len(ordered) else None
        files[f"{issue.id}/{INDEX}"] = issue_page(
            issue, name=name, postal_address=settings.postal_address, newer=newer, older=older,
            canonical=settings.archive_page_url(issue.id),
        ).encode("utf-8")
    files[INDEX] = index_page(
        ordered, name=name, language=settings.language, postal_address=settings.postal_address,
        canonical=settings.archive_url,
    ).encode("utf-8")
    files[FEED] = atom_feed(ordered, files, settings=settings, name=name).encode("utf-8")
    return dict(sorted(files.items()))


def newsletter_name(sender: str) -> str:
    name, address = parseaddr(sender)
    return name or address


def public_email(html: str, *, language: str, index_href: str) -> str:
    """`email.html` with nothing of a recipient: generic greeting, no unsubscribe link.

    The unsubscribe link becomes a link to the archive's index (`index_href`), the sentence
    "you receive this letter because…" goes, and every other placeholder becomes "".
    """
    labels = labels_for(language)

    def index_link(m: re.Match[str]) -> str:
        return (
            f'<a{m.group(1)} href="{escape(index_href)}"{m.group(2)}>'
            f"{escape(labels['all_issues'])}</a>"
        )

    html = _UNSUBSCRIBE_A_RE.sub(index_link, html)
    html = html.replace(escape(labels["why_received"], quote=False) + " ", "")
    return fill(html, {"greeting": labels["greeting"]}, html=True)


def _email_error(issue_id: str, what: str) -> BuildError:
    return BuildError(
        f"email.html has no {what}", path=f"build/{issue_id}/email.html",
        hint=f"rebuild with `newsletter build-issue {issue_id}`",
    )


def issue_page(
    issue: ArchivedIssue,
    *,
    name: str,
    postal_address: str,
    newer: ArchivedIssue | None,
    older: ArchivedIssue | None,
    canonical: str = "",
) -> str:
    """site/<id>/index.html: the public email between the site's header and footer."""
    labels = labels_for(issue.language)
    html = public_email(issue.email_html, language=issue.language, index_href="../")
    nav = [NavItem("../", labels["all_issues"])]
    if newer is not None:
        nav.append(NavItem(f"../{quote(newer.id)}/", labels["newer_issue"], rel="next"))
    if older is not None:
        nav.append(NavItem(f"../{quote(older.id)}/", labels["older_issue"], rel="prev"))
    nav.append(NavItem(f"../{FEED}", labels["feed"]))
    html = _TITLE_RE.sub("", html, count=1)
    head_close = _HEAD_CLOSE_RE.search(html)
    if head_close is None:
        raise _email_error(issue.id, "</head>")
    opening = _BODY_OPEN_RE.search(html, head_close.start())
    closings = list(_BODY_CLOSE_RE.finditer(html, opening.end())) if opening else []
    if opening is None or not closings:
        raise _email_error(issue.id, "<body>")
    closing = closings[-1]
    return environment().get_template("issue.html").render(
        before_head=Markup(html[: head_close.start()]),
        head_to_body=Markup(html[head_close.start() : opening.end()]),
        body=Markup(html[opening.end() : closing.start()]),
        after_body=Markup(html[closing.start() :]),
        title=f"{issue.subject} · {name}", canonical=canonical, index=False,
        status_meta=Markup(UNSENT_PAGE_META if issue.sent_at is None else ""),
        name=name, postal_address=postal_address, labels=labels, nav=nav, up="../", feed=FEED,
        feed_href=f"../{FEED}",
    )


def index_page(
    issues: list[ArchivedIssue], *, name: str, language: str, postal_address: str,
    canonical: str = "",
) -> str:
    """site/index.html: every issue, newest first, with its articles and their authors."""
    labels = labels_for(language)
    entries = [
        {
            "issue": issue,
            "labels": labels_for(issue.language),
            "long_date": long_date(issue.date, issue.language),
            "href": f"{quote(issue.id)}/",
        }
        for issue in issues
    ]
    nav = [NavItem("./", labels["all_issues"], current=True), NavItem(FEED, labels["feed"])]
    page = environment().get_template("index.html").render(
        title=f"{labels['archive']} · {name}", canonical=canonical, index=True,
        language=language, entries=entries,
        name=name, postal_address=postal_address, labels=labels, nav=nav, up="./", feed=FEED,
        feed_href=FEED,
    )
    return page + "\n"  # Jinja drops a template's last newline; a text file ends with one
