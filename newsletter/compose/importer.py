"""`newsletter import`: the posts of an RSS 2.0 / Atom feed or a WordPress export (WXR) become
`content/articles/<slug>.md`.

feedparser reads all three (a WXR file is RSS 2.0 with `wp:` elements, which it exposes as
`wp_post_type`, `wp_status`, `wp_post_name`); feedhtml turns each post's HTML into Markdown.
Each file keeps the item's guid (or link) in its front matter as `guid:`, so a second import
finds the file again: it is rewritten only when its bytes change, never duplicated.

Every post is read and checked before the first file is written (pelican's way: all the
problems in one run), so a feed with one bad item leaves content/articles/ untouched.
"""

from __future__ import annotations

import calendar
import datetime as dt
import email.utils
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from bs4 import BeautifulSoup

from newsletter import fsio
from newsletter.compose.content import Author, load_authors
from newsletter.compose.feedhtml import to_markdown
from newsletter.compose.frontmatter import FRONT_MATTER_RE
from newsletter.errors import ContentError, ErrorGroup, NewsletterError
from newsletter.layout import Layout

#: A feed larger than this is refused: a blog's feed is a few hundred KB, a WXR a few MB.
MAX_BYTES = 20 * 1024 * 1024
TIMEOUT_SECONDS = 20.0
Status = Literal["written", "updated", "unchanged"]
_GUID_RE = re.compile(r"^guid:\s*(.+?)\s*$", re.M)


@dataclass(frozen=True)
class ImportOptions:
    since: dt.date | None = None
    author: str | None = None
    category: str | None = None
    dry_run: bool = False
    #: Seconds without an answer before the fetch gives up.
    timeout: float = TIMEOUT_SECONDS


@dataclass(frozen=True)
class Imported:
    """One item and what the import did (or, with --dry-run, would do) with it."""

    status: Status
    path: str  # relative to the root
    title: str
    #: What the conversion could not keep, one line each, naming the source and the item.
    warnings: tuple[str, ...] = ()


def import_feed(source: str, /, *, layout: Layout, options: ImportOptions) -> list[Imported]:
    """Import every post of `source` (a URL or a file).

    Every post is checked before anything is written: a ContentError naming the item (or an
    ErrorGroup of all of them, one per problem) leaves content/articles/ as it was. Posts
    older than `options.since` are left out before they are checked.
    """
    import feedparser  # late: only this command reads feeds

    # Not feedparser's sanitizer: it drops iframes without a word, where we make a video a
    # linked thumbnail and name what we drop. markdownify writes only Markdown (the figures it
    # keeps as HTML are cleaned with nh3), and the build cleans any raw HTML again.
    data = fetch(source, layout=layout, timeout=options.timeout)
    parsed: Any = feedparser.parse(data, sanitize_html=False)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        reason = getattr(parsed.get("bozo_exception"), "args", ["no items"])[0]
        raise ContentError(
            f"not an RSS, Atom or WordPress export ({reason})",
            path=source,
            hint="give the address of the feed itself, e.g. https://example.org/feed.xml",
        )
    authors = load_authors(layout)
    if options.author is not None and options.author not in authors:
        raise ContentError(
            f"--author '{options.author}' is not in content/authors.toml",
            hint=f"known: {', '.join(sorted(authors)) or 'none'}",
        )
    wordpress = "wp_wxr_version" in parsed.feed
    posts: list[_Post] = []
    errors: list[NewsletterError] = []
    for n, entry in enumerate(parsed.entries, start=1):
        if not _is_published_post(entry):
            continue
        try:
            post = _post(entry, n=n, source=source, authors=authors, options=options,
                         wordpress=wordpress)
        except ErrorGroup as group:
            errors.extend(group.errors)
        except ContentError as exc:
            errors.append(exc)
        else:
            if post is not None:
                posts.append(post)
    if errors:  # so that a half-imported feed is never left behind
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)

    existing = _existing_guids(layout)
    taken: set[str] = set(existing.values())
    planned: list[tuple[str, _Post]] = []
    for post in posts:
        path = existing.get(post.guid) or _free_path(layout, post.slug, taken)
        taken.add(path)
        planned.append((path, post))
    return [_write(layout, path, post, dry_run=options.dry_run) for path, post in planned]


def fetch(source: str, /, *, layout: Layout, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """The bytes of a feed: an http(s) URL (timeout, size limit) or a file."""
    if not re.match(r"^https?://", source, re.I):
        path = layout.resolve(source) if not Path(source).exists() else Path(source)
        try:
            with path.open("rb") as f:
                return _bounded(f.read(MAX_BYTES + 1), source)
        except OSError as exc:
            raise ContentError(
                f"cannot read the feed: {exc.strerror}", path=source,
                hint="give a feed file or an http(s):// address",
            ) from None
    request = urllib.request.Request(source, headers={"User-Agent": "newsletter-import"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _bounded(response.read(MAX_BYTES + 1), source)
    except urllib.error.HTTPError as exc:
        raise ContentError(
            f"the server answered {exc.code} {exc.reason}", path=source,
            hint="check the address of the feed",
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        raise ContentError(
            f"cannot fetch the feed: {reason}", path=source,
            hint="check the address and the network"
            + (f"; gave up after {timeout:g} s" if timed_out else ""),
        ) from None


def _bounded(data: bytes, source: str) -> bytes:
    if len(data) > MAX_BYTES:
        raise ContentError(
            f"the feed is larger than {MAX_BYTES // (1024 * 1024)} MB", path=source,
            hint="export fewer posts (WordPress: Tools > Export, by date)",
        )
    return data


def _is_published_post(entry: Mapping[str, Any]) -> bool:
    # WXR also exports pages, attachments, menu items and drafts; a feed has none of these keys.
    post_type = entry.get("wp_post_type", "post")
    return bool(post_type == "post" and entry.get("wp_status", "publish") == "publish")


@dataclass(frozen=True)
class _Post:
    guid: str
    slug: str
    title: str
    date: dt.date
    category: str
    author: str
    url: str | None
    summary: str | None
    tags: list[str]
    body: str
    warnings: tuple[str, ...]


def _post(
    entry: Mapping[str, Any],
    *,
    n: int,
    source: str,
    authors: dict[str, Author],
    options: ImportOptions,
    wordpress: bool,
) -> _Post | None:
    """The item as an article, None when it is older than --since.

    Raises a ContentError, or an ErrorGroup when the item has several problems.
    """
    title = str(entry.get("title") or "").strip()
    where = f"item {n} ({title or 'untitled'})"
    errors: list[NewsletterError] = []
    try:
        date: dt.date | None = _date(entry, where, source)
    except ContentError as exc:
        errors.append(exc)
        date = None
    # First: --since leaves out the old posts before any of their problems is reported.
    if options.since is not None and date is not None and date < options.since:
        return None
    link = str(entry.get("link") or "") or None
    guid = str(entry.get("id") or link or "")
    if not title or not guid:
        missing = "title" if not title else "guid or link"
        errors.append(ContentError(f"{where} has no {missing}", path=source, hint="fix the feed"))
    categories = [t["term"] for t in entry.get("tags", []) if t.get("scheme") != "post_tag"]
    # The post's own category wins: --category only fills in the posts that have none.
    category = (categories[0] if categories else None) or options.category
    if not category:
        errors.append(ContentError(
            f"{where} has no category", path=source, hint="pass --category NAME"
        ))
    author = _author_key(entry, authors, options.author)
    if author is None:
        errors.append(_unknown_author(entry, where, source))
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    assert date is not None and category is not None and author is not None  # checked above
    html = _body_html(entry)
    body, notes = to_markdown(html, base=link or "", wordpress=wordpress)
    return _Post(
        guid=guid,
        slug=_slug(entry, link, title),
        title=title,
        date=date,
        category=category,
        author=author,
        url=link,
        summary=_summary(entry, html),
        tags=[t["term"] for t in entry.get("tags", []) if t.get("scheme") == "post_tag"],
        body=body,
        warnings=tuple(f"{source}: {where}: {note}" for note in notes),
    )


def _body_html(entry: Mapping[str, Any]) -> str:
    content = entry.get("content") or []
    if content:
        return str(content[0].get("value") or "")
    return str(entry.get("summary") or "")


def _summary(entry: Mapping[str, Any], body_html: str) -> str | None:
    """The item's description (or WXR excerpt) as text, when it is not the body itself."""
    html = str(entry.get("excerpt_encoded") or entry.get("summary") or "")
    if not html.strip() or html == body_html:
        return None
    return " ".join(BeautifulSoup(html, "html.parser").get_text(" ").split()) or None


def _date(entry: Mapping[str, Any], where: str, source: str) -> dt.date:
    """The day the post was published, as written in its own zone (as for front matter)."""
    written = str(entry.get("published") or entry.get("updated") or "")
    for parse in (email.utils.parsedate_to_datetime, dt.datetime.fromisoformat):
        try:
            return parse(written.replace("Z", "+00:00")).date()
        except (TypeError, ValueError):
            continue
    # Another format feedparser understood: its UTC reading.
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        raise ContentError(f"{where} has no date", path=source, hint="fix the feed")
    return dt.datetime.fromtimestamp(calendar.timegm(parsed), dt.UTC).date()


def _author_key(
    entry: Mapping[str, Any], authors: dict[str, Author], fallback: str | None
) -> str | None:
    """The key of the item's author in authors.toml (by key or name), else `--author`."""
    name = str(entry.get("author") or "").strip()
    for key, author in authors.items():
        if name and (name == key or name.casefold() == author.name.casefold()):
            return key
    return fallback


def _unknown_author(entry: Mapping[str, Any], where: str, source: str) -> ContentError:
    name = str(entry.get("author") or "").strip() or "(none)"
    return ContentError(
        f"{where}: author '{name}' is not in content/authors.toml",
        path=source,
        hint="add the author to content/authors.toml or pass --author KEY",
    )


def _slug(entry: Mapping[str, Any], link: str | None, title: str) -> str:
    for candidate in (entry.get("wp_post_name"), _last_segment(link), title):
        slug = slugify(str(candidate or ""))
        if slug:
            return slug
    return "article"


def _last_segment(link: str | None) -> str:
    if not link:
        return ""
    segments = [s for s in urlsplit(link).path.split("/") if s]
    return re.sub(r"\.(html?|php)$", "", segments[-1]) if segments else ""


def slugify(text: str) -> str:
    """"Café crème !" -> "cafe-creme": lowercase ASCII letters, digits and hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80].strip("-")


def _existing_guids(layout: Layout) -> dict[str, str]:
    """guid -> the article file (relative to the root) that already holds it."""
    found: dict[str, str] = {}
    for path in sorted(layout.articles_dir.glob("*.md")):
        match = FRONT_MATTER_RE.match(path.read_text(encoding="utf-8", errors="replace"))
        guid = _GUID_RE.search(match.group(1)) if match else None
        if guid:
            try:
                value = yaml.safe_load(guid.group(1))
            except yaml.YAMLError:  # hand-edited: the build names it; here it is just text
                value = guid.group(1)
            found[str(value)] = layout.rel(path)
    return found


def _free_path(layout: Layout, slug: str, taken: set[str]) -> str:
    for candidate in _candidates(slug):
        rel = layout.rel(layout.articles_dir / f"{candidate}.md")
        if rel not in taken and not (layout.root / rel).exists():
            return rel
    raise AssertionError("unreachable")  # pragma: no cover


def _candidates(slug: str) -> Iterator[str]:
    yield slug
    n = 2
    while True:
        yield f"{slug}-{n}"
        n += 1


def render_file(post: _Post) -> bytes:
    """The article file: front matter (our keys, in a fixed order) and the Markdown body."""
    front: dict[str, Any] = {
        "title": post.title,
        "date": post.date,
        "category": post.category,
        "author": post.author,
    }
    if post.url:
        front["url"] = post.url
    if post.summary:
        front["summary"] = post.summary
    if post.tags:
        front["tags"] = post.tags
    front["guid"] = post.guid
    yaml_text = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=10_000)
    return f"---\n{yaml_text}---\n\n{post.body}".encode()


def _write(layout: Layout, rel: str, post: _Post, *, dry_run: bool) -> Imported:
    path = layout.root / rel
    data = render_file(post)
    try:
        old: bytes | None = path.read_bytes()
    except FileNotFoundError:
        old = None
    status: Status = "written" if old is None else "unchanged" if old == data else "updated"
    if status != "unchanged" and not dry_run:
        fsio.write_file(path, data)
    return Imported(status, rel, post.title, post.warnings)
