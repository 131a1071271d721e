"""`newsletter archive`: the public archive of past issues, a static site with an Atom feed.

    journal (issues with a `sent` row) + build/<id>/{manifest.json, email.html}
        └─ collect ─▶ [ArchivedIssue] ─ render_site ─▶ {path: bytes} ─ write_site ─▶ site/

    site/index.html         every issue: number, date, subject, preheader, articles and authors
    site/<id>/index.html    the issue's email as anyone may read it, in the site's header and footer
    site/feed.xml           Atom 1.0, one entry per issue, its content the page's email

Nothing in the site comes from the subscriber list: the built `email.html` still holds the
recipient placeholders (`message.py` fills them per recipient at send time), and here
`{{ greeting }}` becomes the generic greeting, the unsubscribe link a link to the archive's
index, and every other field "". The same inputs give the same bytes: no clock is read, dates
come from the issue files and the send journal, everything is sorted. `write_site` compares
bytes and replaces only the files that changed, each through a temporary file and a rename.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from email.utils import parseaddr
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from newsletter.errors import BuildError, ErrorGroup, NewsletterError
from newsletter.labels import Labels, labels_for, long_date
from newsletter.layout import Layout
from newsletter.placeholders import fill
from newsletter.send.journal import first_sent
from newsletter.settings import Settings

ATOM_NS = "http://www.w3.org/2005/Atom"
INDEX = "index.html"
FEED = "feed.xml"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",
}


@dataclass(frozen=True)
class ArchivedArticle:
    slug: str
    title: str
    category: str
    author: str
    url: str | None


@dataclass(frozen=True)
class ArchivedIssue:
    id: str
    number: int | None
    date: dt.date
    subject: str
    preheader: str
    language: str
    articles: tuple[ArchivedArticle, ...]
    email_html: str  # build/<id>/email.html as built: recipient placeholders unfilled
    sent_at: float | None  # the first `sent` row in the journal; None: built, never sent

    @property
    def updated(self) -> str:
        """RFC 3339 (UTC): the first send, or the issue's date for an issue never sent."""
        if self.sent_at is not None:
            when = dt.datetime.fromtimestamp(int(self.sent_at), dt.UTC)
        else:
            when = dt.datetime.combine(self.date, dt.time(), dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def authors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.author for a in self.articles if a.author))


@dataclass(frozen=True)
class Site:
    """The archive in memory: its issues, newest first, and its files by relative path."""

    issues: tuple[ArchivedIssue, ...]
    files: dict[str, bytes]


@dataclass(frozen=True)
class WriteReport:
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class ArchiveResult:
    site_dir: Path
    issues: tuple[ArchivedIssue, ...]
    report: WriteReport


# -- the whole command --------------------------------------------------------------------


def write_archive(
    layout: Layout, *, settings: Settings, include_unsent: bool = False
) -> ArchiveResult:
    """Generate the archive and write it into NEWSLETTER_ARCHIVE_DIR (`site/`).

    Raises NewsletterError when there is nothing to archive, BuildError (or an ErrorGroup
    of them) when an issue's build is missing or unreadable: then nothing is written.
    """
    site = generate(layout, settings=settings, include_unsent=include_unsent)
    if not site.issues:
        raise NewsletterError(
            "no issue has been sent yet: nothing to archive",
            path=layout.rel(layout.journal_path),
            hint="send an issue first, or pass --all to archive the built issues",
        )
    site_dir = layout.site_dir(settings.archive_dir)
    report = write_site(site_dir, site.files, issue_ids=_known_ids(layout))
    return ArchiveResult(site_dir, site.issues, report)


def generate(layout: Layout, *, settings: Settings, include_unsent: bool = False) -> Site:
    """The archive's files in memory (what `write_archive` writes and `preview` serves)."""
    issues = collect(layout, include_unsent=include_unsent)
    return Site(tuple(issues), render_site(issues, settings=settings))


# -- reading ------------------------------------------------------------------------------


def collect(layout: Layout, *, include_unsent: bool = False) -> list[ArchivedIssue]:
    """Every issue sent (per the journal), plus every built one with `include_unsent`.

    Newest first (date, then number, then id). Raises BuildError, or an ErrorGroup when
    several issues cannot be read (every one is named).
    """
    sent = first_sent(layout.journal_path)
    ids = set(sent)
    if include_unsent:
        ids |= set(layout.built_ids())
    issues: list[ArchivedIssue] = []
    errors: list[NewsletterError] = []
    for issue_id in sorted(ids):
        try:
            issues.append(read_issue(layout, issue_id, sent_at=sent.get(issue_id)))
        except NewsletterError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)
    issues.sort(key=lambda i: (i.date, i.number or 0, i.id), reverse=True)
    return issues


def read_issue(layout: Layout, issue_id: str, *, sent_at: float | None) -> ArchivedIssue:
    """One issue from build/<id>/manifest.json and email.html."""
    build_dir = layout.build_dir(issue_id)
    where = layout.rel(build_dir / "manifest.json")
    try:
        data = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))
        html = (build_dir / "email.html").read_text(encoding="utf-8")
        articles = tuple(
            ArchivedArticle(
                slug=str(a["slug"]),
                title=str(a["title"]),
                category=str(a.get("category") or ""),
                author=str(a.get("author") or ""),
                url=a.get("url") or None,
            )
            for a in _article_details(layout, data)
        )
        number = data.get("number")
        return ArchivedIssue(
            id=issue_id,
            number=int(number) if number is not None else None,
            date=dt.date.fromisoformat(data["date"]),
            subject=str(data["subject"]),
            preheader=str(data.get("preheader") or ""),
            language=str(data.get("language") or "fr"),
            articles=articles,
            email_html=html,
            sent_at=sent_at,
        )
    except FileNotFoundError as exc:
        state = "was sent but has" if sent_at is not None else "has"
        raise BuildError(
            f"issue {issue_id} {state} no {Path(str(exc.filename)).name}",
            path=layout.rel(build_dir),
            hint=f"run `newsletter build-issue {issue_id}`",
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"unreadable manifest ({type(exc).__name__}: {exc})",
            path=where,
            hint=f"rebuild with `newsletter build-issue {issue_id}`",
        ) from None


def _article_details(layout: Layout, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    details = manifest.get("article_details")
    if isinstance(details, list):
        return details
    # A build made before manifests listed titles and authors: look the slugs up in content/.
    from newsletter.compose.content import load_catalog

    slugs = [str(s) for s in manifest.get("articles", [])]
    try:
        catalog = load_catalog(layout).articles
    except NewsletterError:
        catalog = {}
    out: list[dict[str, Any]] = []
    for slug in slugs:
        article = catalog.get(slug)
        if article is None:
            out.append({"slug": slug, "title": slug})
        else:
            out.append({
                "slug": slug, "title": article.title, "category": article.category,
                "author": article.author.name, "url": article.url,
            })
    return out


def _known_ids(layout: Layout) -> set[str]:
    """Names that are issues: a folder of the site with one of them is ours to remove."""
    ids = set(layout.built_ids()) | set(first_sent(layout.journal_path))
    if layout.issues_dir.is_dir():
        ids |= {p.stem for p in layout.issues_dir.glob("*.toml")}
    return ids


# -- the email made public ----------------------------------------------------------------

_UNSUBSCRIBE_A_RE = re.compile(
    r"<a\b([^>]*?)\s+href=\"\{\{ unsubscribe_url \}\}\"([^>]*)>.*?</a>", re.S | re.I
)
_BODY_OPEN_RE = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE_RE = re.compile(r"</body\s*>", re.I)
_TITLE_RE = re.compile(r"<title>.*?</title>", re.S | re.I)
_HEAD_CLOSE_RE = re.compile(r"</head\s*>", re.I)
# The preheader: text shown after the subject in an inbox, hidden in the email's body.
_PREHEADER_RE = re.compile(r"^\s*<div style=\"display:none;[^\"]*\">[^<]*</div>", re.I)
# Characters XML 1.0 forbids: kept out of feed.xml.
_XML_INVALID_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


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


def _body(html: str, issue_id: str) -> tuple[re.Match[str], re.Match[str]]:
    """The <body> tag and the last </body> of an email."""
    opening = _BODY_OPEN_RE.search(html)
    closings = list(_BODY_CLOSE_RE.finditer(html, opening.end())) if opening else []
    if opening is None or not closings:
        raise BuildError(
            "email.html has no <body>", path=f"build/{issue_id}/email.html",
            hint=f"rebuild with `newsletter build-issue {issue_id}`",
        )
    return opening, closings[-1]


MAIN_OPEN = '<main id="main">'
MAIN_CLOSE = "</main>"


def feed_content(page: str) -> str:
    """The email of an issue page (its <main>), without the hidden preheader: a feed entry."""
    start = page.index(MAIN_OPEN) + len(MAIN_OPEN)
    inner = page[start : page.rindex(MAIN_CLOSE)]
    return _PREHEADER_RE.sub("", inner, count=1).strip()


# -- pages --------------------------------------------------------------------------------

SITE_CSS = """
.nl-skip{position:absolute;left:-10000px;top:0}
.nl-skip:focus{left:8px;top:8px;z-index:10;padding:8px 12px;background:#fff;color:#111827;
 border-radius:4px}
.nl-bar{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#1f2933;
 color:#f4f1ec}
.nl-bar-inner{box-sizing:border-box;max-width:600px;margin:0 auto;padding:12px 16px;display:flex;
 flex-wrap:wrap;gap:6px 18px;align-items:baseline;justify-content:space-between}
.nl-bar a{color:#fdba74}
.nl-bar a:focus-visible,.nl-page a:focus-visible{outline:3px solid #fdba74;outline-offset:2px}
.nl-name{font-weight:700;font-size:17px;text-decoration:none}
.nl-bar ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px}
.nl-foot{font-size:14px}
.nl-foot p{margin:0}
.view-online{display:none!important}
"""

INDEX_CSS = """
body{margin:0;background:#f4f1ec;color:#1f2933;font:17px/1.6 Georgia,"Times New Roman",serif}
.nl-page{box-sizing:border-box;max-width:600px;margin:0 auto;padding:28px 16px 40px}
.nl-page h1{margin:0 0 6px;font-size:30px;line-height:1.2;color:#c2410c}
.nl-intro{margin:0 0 24px;color:#52606d}
.nl-issues{list-style:none;margin:0;padding:0}
.nl-issue{margin:0 0 20px;padding:20px 22px;background:#fff;border-bottom:1px solid #ece7df}
.nl-meta{margin:0 0 4px;font-size:14px;color:#52606d}
.nl-issue h2{margin:0 0 8px;font-size:22px;line-height:1.3}
.nl-issue h2 a{color:#111827;text-decoration:none}
.nl-issue h2 a:hover{text-decoration:underline}
.nl-preheader{margin:0 0 12px}
.nl-articles{margin:0;padding-left:22px;font-size:16px;list-style:disc}
.nl-articles li{margin:0 0 6px}
.nl-articles a{color:#c2410c}
.nl-by{color:#52606d}
"""


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


def _head(title: str, css: str, *, feed_href: str, feed_title: str, canonical: str) -> str:
    link = f'<link rel="canonical" href="{escape(canonical)}">\n' if canonical else ""
    return (
        f"<title>{escape(title)}</title>\n{link}"
        f'<link rel="alternate" type="application/atom+xml" title="{escape(feed_title)}" '
        f'href="{feed_href}">\n<style>{css}</style>\n'
    )


def _header(name: str, labels: Labels, *, up: str, items: list[str]) -> str:
    nav = "".join(f"<li>{item}</li>" for item in items)
    return (
        f'<a class="nl-skip" href="#main">{escape(labels["skip_to_content"])}</a>\n'
        f'<header class="nl-bar"><div class="nl-bar-inner">'
        f'<a class="nl-name" href="{up}">{escape(name)}</a>'
        f'<nav aria-label="{escape(labels["archive_nav"])}"><ul>{nav}</ul></nav>'
        "</div></header>\n"
    )


def _footer(name: str, postal_address: str, labels: Labels, *, up: str) -> str:
    who = escape(name) + (f" · {escape(postal_address)}" if postal_address else "")
    return (
        f'<footer class="nl-bar nl-foot"><div class="nl-bar-inner"><p>{who}</p>'
        f'<p><a href="{up}">{escape(labels["all_issues"])}</a> · '
        f'<a href="{up}{FEED}">{escape(labels["feed"])}</a></p></div></footer>\n'
    )


def _issue_heading(issue: ArchivedIssue, labels: Labels) -> str:
    when = (
        f'<time datetime="{issue.date.isoformat()}">'
        f"{escape(long_date(issue.date, issue.language))}</time>"
    )
    if issue.number is None:
        return when
    return f"{escape(labels['issue_number'].format(number=issue.number))} · {when}"


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
    items = [f'<a href="../">{escape(labels["all_issues"])}</a>']
    if newer is not None:
        items.append(
            f'<a href="../{quote(newer.id)}/" rel="next">{escape(labels["newer_issue"])}</a>'
        )
    if older is not None:
        items.append(
            f'<a href="../{quote(older.id)}/" rel="prev">{escape(labels["older_issue"])}</a>'
        )
    items.append(f'<a href="../{FEED}">{escape(labels["feed"])}</a>')
    head = _head(
        f"{issue.subject} · {name}", SITE_CSS, feed_href=f"../{FEED}", feed_title=name,
        canonical=canonical,
    )
    html = _TITLE_RE.sub("", html, count=1)
    head_close = _HEAD_CLOSE_RE.search(html)
    if head_close is None:
        raise BuildError(
            "email.html has no </head>", path=f"build/{issue.id}/email.html",
            hint=f"rebuild with `newsletter build-issue {issue.id}`",
        )
    html = html[: head_close.start()] + head + html[head_close.start() :]
    opening, closing = _body(html, issue.id)
    return (
        html[: opening.end()]
        + "\n"
        + _header(name, labels, up="../", items=items)
        + MAIN_OPEN
        + html[opening.end() : closing.start()]
        + MAIN_CLOSE
        + "\n"
        + _footer(name, postal_address, labels, up="../")
        + html[closing.start() :]
    )


def index_page(
    issues: list[ArchivedIssue], *, name: str, language: str, postal_address: str,
    canonical: str = "",
) -> str:
    """site/index.html: every issue, newest first, with its articles and their authors."""
    labels = labels_for(language)
    entries: list[str] = []
    for issue in issues:
        articles = "".join(_article_item(a, labels_for(issue.language)) for a in issue.articles)
        heading_id = f"issue-{issue.id}"
        preheader = (
            f'<p class="nl-preheader">{escape(issue.preheader)}</p>' if issue.preheader else ""
        )
        entries.append(
            f'<li><article class="nl-issue" aria-labelledby="{escape(heading_id)}" '
            f'lang="{escape(issue.language)}">'
            f'<p class="nl-meta">{_issue_heading(issue, labels_for(issue.language))}</p>'
            f'<h2 id="{escape(heading_id)}"><a href="{quote(issue.id)}/">'
            f"{escape(issue.subject)}</a></h2>{preheader}"
            f'<ul class="nl-articles">{articles}</ul></article></li>\n'
        )
    listing = (
        f'<ol class="nl-issues">\n{"".join(entries)}</ol>' if entries
        else f"<p>{escape(labels['no_issues'])}</p>"
    )
    items = [
        f'<a href="./" aria-current="page">{escape(labels["all_issues"])}</a>',
        f'<a href="{FEED}">{escape(labels["feed"])}</a>',
    ]
    head = _head(
        f"{labels['archive']} · {name}", SITE_CSS + INDEX_CSS, feed_href=FEED, feed_title=name,
        canonical=canonical,
    )
    return (
        f'<!doctype html>\n<html lang="{escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{head}</head>\n<body>\n"
        + _header(name, labels, up="./", items=items)
        + f'<main id="main" class="nl-page">\n<h1>{escape(labels["archive"])}</h1>\n'
        f'<p class="nl-intro">{escape(labels["archive_intro"])}</p>\n{listing}\n</main>\n'
        + _footer(name, postal_address, labels, up="./")
        + "</body>\n</html>\n"
    )


def _article_item(article: ArchivedArticle, labels: Labels) -> str:
    title = escape(article.title)
    if article.url:
        title = f'<a href="{escape(article.url)}">{title}</a>'
    by = (
        f' <span class="nl-by">{escape(labels["by_author"].format(names=article.author))}</span>'
        if article.author else ""
    )
    return f"<li>{title}{by}</li>"


# -- the feed -----------------------------------------------------------------------------


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
    for issue in issues:
        href = settings.archive_page_url(issue.id) or f"{quote(issue.id)}/"
        entry_id = settings.archive_page_url(issue.id) or _urn(settings.sender_address, issue.id)
        page = pages[f"{issue.id}/{INDEX}"].decode("utf-8")
        content = feed_content(page)
        authors = "".join(
            f"\n    <author><name>{_x(author)}</name></author>" for author in issue.authors
        )
        summary = f"\n    <summary>{_x(issue.preheader)}</summary>" if issue.preheader else ""
        lines.append(
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
    lines.append("</feed>")
    return "\n".join(lines) + "\n"


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")


# -- writing ------------------------------------------------------------------------------


def write_site(site_dir: Path, files: Mapping[str, bytes], *, issue_ids: set[str]) -> WriteReport:
    """Write `files` under `site_dir`, each only if its bytes changed (temp file + rename).

    A folder of `site_dir` named after an issue (`issue_ids`) that the archive no longer holds
    loses its index.html (and goes, when empty); any other file of `site_dir` is left alone.
    """
    written: list[str] = []
    unchanged: list[str] = []
    for rel, data in sorted(files.items()):
        if _write_if_changed(site_dir / rel, data):
            written.append(rel)
        else:
            unchanged.append(rel)
    removed: list[str] = []
    if site_dir.is_dir():
        for folder in sorted(site_dir.iterdir()):
            rel = f"{folder.name}/{INDEX}"
            if folder.is_dir() and folder.name in issue_ids and rel not in files:
                page = folder / INDEX
                if page.is_file():
                    page.unlink()
                    removed.append(rel)
                with suppress(OSError):
                    folder.rmdir()  # only when empty: files put there by hand stay
    return WriteReport(tuple(written), tuple(unchanged), tuple(removed))


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # a static site is read by the web server's user
        # A reader (or the web server) sees the old file or the new one, never half of one.
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True
