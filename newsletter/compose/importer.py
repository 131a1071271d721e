"""`newsletter import`: the posts of an RSS 2.0 / Atom feed or a WordPress export (WXR) become
`content/articles/<slug>.md`.

feedparser reads all three (a WXR file is RSS 2.0 with `wp:` elements, which it exposes as
`wp_post_type`, `wp_status`, `wp_post_name`); markdownify turns each post's HTML into Markdown.
Each file keeps the item's guid (or link) in its front matter as `guid:`, so a second import
finds the file again: it is rewritten only when its bytes change, never duplicated.
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
from urllib.parse import urljoin, urlsplit

import yaml
from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

from newsletter import fsio
from newsletter.compose.content import Author, load_authors
from newsletter.compose.frontmatter import FRONT_MATTER_RE
from newsletter.errors import ContentError
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


def import_feed(source: str, /, *, layout: Layout, options: ImportOptions) -> list[Imported]:
    """Import every post of `source` (a URL or a file). Raises ContentError naming the item."""
    import feedparser  # late: only this command reads feeds

    parsed: Any = feedparser.parse(fetch(source, layout=layout, timeout=options.timeout))
    if not parsed.entries and (parsed.bozo or not parsed.version):
        reason = getattr(parsed.get("bozo_exception"), "args", ["no items"])[0]
        raise ContentError(
            f"not an RSS, Atom or WordPress export ({reason})",
            path=source,
            hint="give the address of the feed itself, e.g. https://example.org/feed.xml",
        )
    authors = load_authors(layout)
    existing = _existing_guids(layout)
    done: list[Imported] = []
    taken: set[str] = set(existing.values())
    for n, entry in enumerate(parsed.entries, start=1):
        if not _is_published_post(entry):
            continue
        post = _post(entry, n=n, source=source, authors=authors, options=options)
        if options.since is not None and post.date < options.since:
            continue
        path = existing.get(post.guid) or _free_path(layout, post.slug, taken)
        taken.add(path)
        done.append(_write(layout, path, post, dry_run=options.dry_run))
    return done


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
        raise ContentError(
            f"cannot fetch the feed: {reason}", path=source,
            hint=f"check the address and the network; gave up after {timeout:g} s",
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


def _post(
    entry: Mapping[str, Any],
    *,
    n: int,
    source: str,
    authors: dict[str, Author],
    options: ImportOptions,
) -> _Post:
    title = str(entry.get("title") or "").strip()
    where = f"item {n} ({title or 'untitled'})"
    link = str(entry.get("link") or "") or None
    guid = str(entry.get("id") or link or "")
    if not title or not guid:
        missing = "title" if not title else "guid or link"
        raise ContentError(f"{where} has no {missing}", path=source, hint="fix the feed")
    categories = [t["term"] for t in entry.get("tags", []) if t.get("scheme") != "post_tag"]
    category = options.category or (categories[0] if categories else None)
    if not category:
        raise ContentError(
            f"{where} has no category", path=source, hint="pass --category NAME"
        )
    html = _body_html(entry)
    return _Post(
        guid=guid,
        slug=_slug(entry, link, title),
        title=title,
        date=_date(entry, where, source),
        category=category,
        author=_author_key(entry, where, source, authors, options.author),
        url=link,
        summary=_summary(entry, html),
        tags=[t["term"] for t in entry.get("tags", []) if t.get("scheme") == "post_tag"],
        body=to_markdown(html, base=link or ""),
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
    entry: Mapping[str, Any],
    where: str,
    source: str,
    authors: dict[str, Author],
    fallback: str | None,
) -> str:
    """The key of the item's author in authors.toml (by key or name), else `--author`."""
    name = str(entry.get("author") or "").strip()
    for key, author in authors.items():
        if name and (name == key or name.casefold() == author.name.casefold()):
            return key
    if fallback is not None:
        if fallback not in authors:
            raise ContentError(
                f"--author '{fallback}' is not in content/authors.toml",
                hint=f"known: {', '.join(sorted(authors)) or 'none'}",
            )
        return fallback
    raise ContentError(
        f"{where}: author '{name or '(none)'}' is not in content/authors.toml",
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


_CONVERTER = MarkdownConverter(heading_style="ATX", bullets="-", strip=["script", "style"])


def to_markdown(html: str, *, base: str) -> str:
    """The post's HTML as Markdown, links and image sources made absolute against `base`."""
    soup = BeautifulSoup(html, "html.parser")
    for tag, attr in (("a", "href"), ("img", "src")):
        for node in soup.find_all(tag):
            value = node.get(attr)
            if isinstance(value, str) and base:
                node[attr] = urljoin(base, value.strip())
    # The soup already parsed: converting it saves markdownify a second parse (half the time).
    text = _CONVERTER.convert_soup(soup)
    # markdownify leaves runs of blank lines where block elements met.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


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
    return Imported(status, rel, post.title)
