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
bytes and replaces only the files that changed, each through `fsio.write_if_changed`.

Here: reading the builds and writing the site. The pages are Jinja templates of
newsletter/theme/site/ (`archive_pages`, imported when a site is generated, so that importing
this module loads no template engine); the feed is `archive_feed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from newsletter import fsio, manifest
from newsletter.archive_feed import FEED, INDEX
from newsletter.archive_issue import ArchivedArticle, ArchivedIssue
from newsletter.errors import BuildError, ErrorGroup, NewsletterError
from newsletter.layout import Layout
from newsletter.send.evidence import sent_articles
from newsletter.send.journal import first_sent
from newsletter.settings import Settings

__all__ = ["FEED", "INDEX", "ArchiveResult", "ArchivedArticle", "ArchivedIssue", "Site",
           "collect", "content_type", "generate", "read_issue", "write_archive", "write_site"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",
}


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
    from newsletter.archive_pages import render_site

    issues = collect(layout, include_unsent=include_unsent)
    return Site(tuple(issues), render_site(issues, settings=settings))


# -- reading ------------------------------------------------------------------------------


def collect(layout: Layout, *, include_unsent: bool = False) -> list[ArchivedIssue]:
    """Every issue sent (per the journal), plus every built one with `include_unsent`.

    Newest first (date, then number, then id). Raises BuildError, or an ErrorGroup when
    several issues cannot be read (every one is named).
    """
    sent = first_sent(layout.journal_path)
    sent_with = sent_articles(layout)
    ids = set(sent)
    if include_unsent:
        ids |= set(layout.built_ids())
    issues: list[ArchivedIssue] = []
    errors: list[NewsletterError] = []
    for issue_id in sorted(ids):
        try:
            issues.append(read_issue(
                layout, issue_id, sent_at=sent.get(issue_id), sent_with=sent_with.get(issue_id)
            ))
        except NewsletterError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)
    issues.sort(key=lambda i: (i.date, i.number or 0, i.id), reverse=True)
    return issues


def read_issue(
    layout: Layout,
    issue_id: str,
    *,
    sent_at: float | None,
    sent_with: tuple[str, ...] | None = None,
) -> ArchivedIssue:
    """One issue from build/<id>/manifest.json and email.html. Raises BuildError.

    `sent_with`: the articles the send journal says the issue was sent with; a build with
    other articles (made by a version that applied a sent issue's rules again) is refused
    rather than published as what readers received.
    """
    build_dir = layout.build_dir(issue_id)
    for name in (manifest.FILE_NAME, "email.html"):
        if not (build_dir / name).is_file():
            state = "was sent but has" if sent_at is not None else "has"
            raise BuildError(
                f"issue {issue_id} {state} no {name}", path=layout.rel(build_dir),
                hint=f"run `newsletter build-issue {issue_id}`",
            )
    built = manifest.read(build_dir, shown=layout.rel(build_dir))
    if sent_with is not None and built.articles != sent_with:
        other = sorted(set(built.articles) ^ set(sent_with)) or ["their order"]
        raise BuildError(
            f"issue {issue_id} was sent with other articles than this build has "
            f"({', '.join(other)})",
            path=layout.rel(build_dir),
            hint=f"run `newsletter build-issue {issue_id}`: it rebuilds a sent issue with "
            "the articles it was sent with",
        )
    try:
        date = dt.date.fromisoformat(built.date)
    except ValueError as exc:
        raise BuildError(
            f"unreadable manifest (ValueError: {exc})",
            path=layout.rel(build_dir / manifest.FILE_NAME),
            hint=f"rebuild with `newsletter build-issue {issue_id}`",
        ) from None
    return ArchivedIssue(
        id=issue_id,
        number=built.number,
        date=date,
        subject=built.subject,
        preheader=built.preheader,
        language=built.language or "fr",
        articles=_articles(layout, built),
        email_html=(build_dir / "email.html").read_text(encoding="utf-8"),
        sent_at=sent_at,
    )


def _articles(layout: Layout, built: manifest.Manifest) -> tuple[ArchivedArticle, ...]:
    if built.article_details or not built.articles:
        return tuple(
            ArchivedArticle(
                slug=a.slug, title=a.title, category=a.category or "", author=a.author or "",
                url=a.url or None,
            )
            for a in built.article_details
        )
    # A build made before manifests listed titles and authors: look the slugs up in content/.
    from newsletter.compose.content import load_catalog

    try:
        catalog = load_catalog(layout).articles
    except NewsletterError:
        catalog = {}
    out: list[ArchivedArticle] = []
    for slug in built.articles:
        article = catalog.get(slug)
        if article is None:
            out.append(ArchivedArticle(slug, slug, "", "", None))
        else:
            out.append(ArchivedArticle(
                slug, article.title, article.category, article.author.name, article.url
            ))
    return tuple(out)


def _known_ids(layout: Layout) -> set[str]:
    """Names that are issues: a folder of the site with one of them is ours to remove."""
    ids = set(layout.built_ids()) | set(first_sent(layout.journal_path))
    if layout.issues_dir.is_dir():
        ids |= {p.stem for p in layout.issues_dir.glob("*.toml")}
    return ids


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")


# -- writing ------------------------------------------------------------------------------


def write_site(site_dir: Path, files: Mapping[str, bytes], *, issue_ids: set[str]) -> WriteReport:
    """Write `files` under `site_dir`, each only if its bytes changed (atomic, durable).

    A folder of `site_dir` named after an issue (`issue_ids`) that the archive no longer holds
    loses its index.html (and goes, when empty); any other file of `site_dir` is left alone.
    """
    written: list[str] = []
    unchanged: list[str] = []
    for rel, data in sorted(files.items()):
        # 0o644: a static site is read by the web server's user.
        if fsio.write_if_changed(site_dir / rel, data, mode=0o644):
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
