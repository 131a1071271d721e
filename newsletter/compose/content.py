"""Articles (Markdown with YAML front matter) and their authors (content/authors.toml)."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from newsletter.compose.frontmatter import (
    JEKYLL_NAME_RE,
    SLUG_RE,
    ArticleMeta,
    field_line,
    parse_meta,
    pydantic_message,
    split,
    toml_error,
)
from newsletter.compose.markup import (
    TYPESET_LANGUAGES,
    first_paragraph_text,
    parse_article,
    to_html,
    to_text,
    typeset,
    typeset_text,
)
from newsletter.compose.rawhtml import clean_tokens, convert_shortcodes
from newsletter.compose.urls import IMAGE_SCHEMES, LINK_SCHEMES, check_url
from newsletter.errors import ContentError, ErrorGroup, NewsletterError
from newsletter.layout import Layout


class Author(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str
    bio: str
    avatar: str | None = None
    url: str | None = None
    role: str | None = None

    @field_validator("url")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return check_url(value, schemes=LINK_SCHEMES)

    @field_validator("avatar")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return check_url(value, schemes=IMAGE_SCHEMES)


@dataclass(frozen=True)
class Article:
    """An article ready to be put in an issue (built from validated front matter)."""

    slug: str
    title: str
    category: str
    author: Author
    date: dt.date
    summary: str
    url: str | None
    image: str | None
    image_alt: str | None
    source: str  # the file, relative to the root, for messages
    # The body's tokens and the front matter's summary, to typeset the article per issue.
    tokens: tuple[Token, ...] = field(default=(), repr=False, compare=False)
    written_summary: str | None = field(default=None, repr=False, compare=False)
    #: The typography the article is shown with: "" as written, else an issue's language.
    language: str = ""
    tags: tuple[str, ...] = ()
    #: `draft: true`: in the catalog (so its slug is known) but left out of every issue.
    draft: bool = False
    #: What cleaning its raw HTML dropped or changed, "line: what" (the `html-dropped` finding).
    html_notes: tuple[str, ...] = ()

    def in_language(self, language: str) -> Article:
        """This article of the catalog (as written) as an issue in `language` shows it.

        French: no-break spaces before `: ; ! ?` and inside `« »` (markup.french_spacing) in
        the title, the summary and the body, from the same tokens for the HTML and the text.
        """
        if language not in TYPESET_LANGUAGES or language == self.language:
            return self
        return replace(
            self,
            language=language,
            title=typeset_text(self.title, language),
            summary=typeset_text(self.written_summary, language)
            if self.written_summary
            else first_paragraph_text(typeset(self.tokens, language)),
        )

    # Rendered on first use only: most articles of the catalog are in no issue being built,
    # and an excerpt shows no body.
    @cached_property
    def _shown(self) -> list[Token]:
        return typeset(self.tokens, self.language)

    @cached_property
    def body_html(self) -> str:
        return to_html(self._shown)

    @cached_property
    def body_text(self) -> str:
        return to_text(self._shown)


@dataclass(frozen=True)
class Catalog:
    articles: dict[str, Article]
    authors: dict[str, Author]


def load_catalog(layout: Layout, *, site_url: str = "") -> Catalog:
    """Read every author and article; report every bad file in one ErrorGroup."""
    authors = load_authors(layout)
    errors: list[NewsletterError] = []
    articles: dict[str, Article] = {}
    if not layout.articles_dir.is_dir():
        raise ContentError(
            "no articles folder",
            path=layout.rel(layout.articles_dir),
            hint="create it, then write an article in it as docs/folder.md shows",
        )
    for path in sorted(layout.articles_dir.glob("*.md")):
        try:
            article = load_article(path, authors=authors, layout=layout, site_url=site_url)
        except ErrorGroup as group:
            errors.extend(group.errors)
            continue
        except NewsletterError as exc:
            errors.append(exc)
            continue
        if article.slug in articles:
            errors.append(
                ContentError(
                    f"slug '{article.slug}' is already used by {articles[article.slug].source}",
                    path=article.source,
                    field="slug",
                    hint="give one of them another `slug:`",
                )
            )
            continue
        articles[article.slug] = article
    if errors:
        raise ErrorGroup(errors)
    return Catalog(articles=articles, authors=authors)


def load_authors(layout: Layout) -> dict[str, Author]:
    path = layout.authors_file
    rel = layout.rel(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContentError(
            "file not found", path=rel, hint="create it with one [key] table per author"
        ) from None
    except UnicodeDecodeError as exc:
        raise ContentError(
            f"not UTF-8 ({exc.reason} at byte {exc.start})", path=rel, hint="save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(exc, rel, ContentError) from None
    authors: dict[str, Author] = {}
    for key, table in data.items():
        if not isinstance(table, dict):
            raise ContentError(
                f"'{key}' is not a table",
                path=rel,
                line=line_of(path, rf"^\s*{re.escape(key)}\s*="),
                hint=f'write [{key}] then name = "…" and bio = "…"',
            )
        try:
            authors[key] = Author.model_validate({"key": key, **table})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ContentError(
                pydantic_message(err),
                path=rel,
                line=line_of(path, rf"^\s*\[{re.escape(key)}\]"),
                field=f"{key}.{field}",
                hint="each author needs name and bio; avatar, url and role are optional",
            ) from None
    return authors


def _front_matter(path: Path, rel: str) -> tuple[str, str, int]:
    """(front matter, body, line of the body's start) of an article file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError(
            f"not UTF-8 ({exc.reason})", path=rel, hint="save the file as UTF-8"
        ) from None
    return split(text, rel)


def _author(meta: ArticleMeta, front: str, rel: str, authors: dict[str, Author]) -> Author:
    """The article's author, once its image is known to have a text alternative."""
    # Hugo and Jekyll posts name their author: a key or an author's name both work.
    author = authors.get(meta.author) or next(
        (a for a in authors.values() if a.name.casefold() == meta.author.strip().casefold()), None
    )
    if author is None:
        known = ", ".join(sorted(authors)) or "none"
        raise ContentError(
            f"unknown author '{meta.author}'",
            path=rel,
            line=field_line(front, "author"),
            field="author",
            hint=f"use a key of content/authors.toml (known: {known})",
        )
    if meta.image is not None and not (meta.image_alt or "").strip():
        raise ContentError(
            "image has no image_alt",
            path=rel,
            line=field_line(front, "image"),
            field="image_alt",
            hint="describe the image in `image_alt:` for readers who do not see it",
        )
    return author


def load_article(
    path: Path, *, authors: dict[str, Author], layout: Layout, site_url: str = ""
) -> Article:
    """One article file. Raises ContentError naming the file, the line and what to do.

    `site_url`: NEWSLETTER_SITE_URL, the base of relative links when the article has no `url`.
    """
    rel = layout.rel(path)
    front, body, body_line = _front_matter(path, rel)
    meta = parse_meta(front, rel)
    author = _author(meta, front, rel, authors)
    if not body.strip():
        raise ContentError(
            "the article has no text", path=rel, line=body_line,
            hint="write the article below the front matter",
        )
    tokens, notes = _body_tokens(body, body_line, rel=rel, base=meta.url or site_url)
    jekyll = JEKYLL_NAME_RE.fullmatch(path.stem)  # 2026-11-04-recolter-les-graines.md
    slug = meta.slug or (jekyll[2] if jekyll else path.stem)
    if not SLUG_RE.match(slug):
        raise ContentError(
            f"file name '{path.name}' is not a usable slug",
            path=rel,
            hint="rename it in lowercase-with-hyphens or set `slug:`",
        )
    return Article(
        slug=slug,
        title=meta.title,
        category=meta.category,
        author=author,
        date=meta.date,
        summary=meta.summary or first_paragraph_text(tokens),
        url=meta.url,
        image=_image(meta, front, rel, base=meta.url or site_url),
        image_alt=meta.image_alt,
        source=rel,
        tokens=tuple(tokens),
        written_summary=meta.summary,
        tags=tuple(meta.tags),
        draft=meta.draft,
        html_notes=tuple(notes),
    )


def _image(meta: ArticleMeta, front: str, rel: str, *, base: str) -> str | None:
    """The front matter's image as an absolute URL: a relative one (what a Hugo or Jekyll post
    often has) resolved against the article's `url` or NEWSLETTER_SITE_URL, as in the body."""
    image = meta.image
    if image is None or urlsplit(image).scheme:
        return image
    line = field_line(front, "image")
    if not base:
        raise ContentError(
            f"relative address '{image}' cannot be resolved", path=rel, line=line,
            field="image", hint="set `url:` in the front matter or NEWSLETTER_SITE_URL, or "
            "write the full https:// address",
        )
    try:
        return check_url(urljoin(base, image), schemes=IMAGE_SCHEMES)
    except ValueError as exc:
        raise ContentError(str(exc), path=rel, line=line, field="image",
                           hint="write the full https:// address") from None


def _body_tokens(
    body: str, body_line: int, *, rel: str, base: str
) -> tuple[list[Token], list[str]]:
    """The body's tokens, raw HTML cleaned and links absolute; what was dropped, as notes."""
    source, dropped = convert_shortcodes(body)
    tokens, notes, errors = clean_tokens(
        parse_article(source), base=base, rel=rel, body_line=body_line
    )
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    return tokens, [f"{body_line + n}: {what}" for n, what in dropped] + notes


def line_of(path: Path, pattern: str) -> int | None:
    rx = re.compile(pattern)
    try:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if rx.search(line):
                return i
    except OSError:
        return None
    return None



