"""Articles (Markdown with YAML front matter) and their authors (content/authors.toml)."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from newsletter.compose.markup import (
    TYPESET_LANGUAGES,
    first_paragraph_text,
    parse,
    to_html,
    to_text,
    typeset,
    typeset_text,
)
from newsletter.errors import ContentError, ErrorGroup, NewsletterError
from newsletter.layout import Layout

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")

#: Schemes a link may use; an image is fetched by the reader's client, so http(s) only.
LINK_SCHEMES = ("http", "https", "mailto")
IMAGE_SCHEMES = ("http", "https")
_SPACE_OR_CONTROL_RE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def check_url(value: str | None, *, schemes: tuple[str, ...]) -> str | None:
    """A link or image from the content, or ValueError: `javascript:`, `data:`, `vbscript:`
    and relative URLs would reach the archive, the feed and the email (issue 13)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

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


class ArticleMeta(BaseModel):
    """The front matter, as the editor writes it."""

    model_config = ConfigDict(extra="forbid")

    title: str
    category: str
    author: str
    date: dt.date
    summary: str | None = None
    slug: str | None = None
    url: str | None = None
    image: str | None = None
    image_alt: str | None = None

    @field_validator("date", mode="before")
    @classmethod
    def _date_is_a_date(cls, value: Any) -> Any:
        # YAML reads 2026-10-02 as a date; a datetime or a number is a mistake, not a date.
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
            raise ValueError("must be a date written YYYY-MM-DD")
        return value

    @field_validator("slug")
    @classmethod
    def _slug_shape(cls, value: str | None) -> str | None:
        if value is not None and not SLUG_RE.match(value):
            raise ValueError("must be lowercase letters, digits and hyphens")
        return value

    @field_validator("url")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return check_url(value, schemes=LINK_SCHEMES)

    @field_validator("image")
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


def load_catalog(layout: Layout) -> Catalog:
    """Read every author and article; report every bad file in one ErrorGroup."""
    authors = load_authors(layout)
    errors: list[NewsletterError] = []
    articles: dict[str, Article] = {}
    if not layout.articles_dir.is_dir():
        raise ContentError(
            "no articles folder",
            path=layout.rel(layout.articles_dir),
            hint="run the command in a newsletter folder or pass --root DIR",
        )
    for path in sorted(layout.articles_dir.glob("*.md")):
        try:
            article = load_article(path, authors=authors, layout=layout)
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
                _pydantic_message(err),
                path=rel,
                line=line_of(path, rf"^\s*\[{re.escape(key)}\]"),
                field=f"{key}.{field}",
                hint="each author needs name and bio; avatar, url and role are optional",
            ) from None
    return authors


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML as `yaml.safe_load` reads it, except that a date YAML cannot build stays a string.

    PyYAML turns `date: 2026-13-45` into a ValueError deep in its constructor; as a string it
    reaches the `date` field's validation, which names the field and its line.
    """


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?", re.S | re.M)


def _front_matter(path: Path, rel: str) -> tuple[str, str, int]:
    """(front matter, body, line of the body's start) of an article file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError(
            f"not UTF-8 ({exc.reason})", path=rel, hint="save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    match = FRONT_MATTER_RE.match(text)
    if not match:
        raise ContentError(
            "no front matter",
            path=rel,
            line=1,
            hint="start the file with a '---' line, title/category/author/date, then '---'",
        )
    return match.group(1), text[match.end() :], text[: match.end()].count("\n") + 1


def _field_line(front: str, name: str) -> int:
    """The file's line of `name:` in the front matter (which starts on line 2), else 1."""
    for i, line in enumerate(front.splitlines(), start=2):
        if line.startswith(f"{name}:"):
            return i
    return 1


def _meta(front: str, rel: str) -> ArticleMeta:
    """The front matter parsed (YAML, a SafeLoader) and validated. Raises ContentError."""
    try:
        raw = yaml.load(front, Loader=_FrontMatterLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ContentError(
            f"front matter is not valid YAML: {problem}",
            path=rel,
            line=line,
            hint="check quotes and colons; quote a title that contains ': '",
        ) from None
    if not isinstance(raw, dict):
        raise ContentError(
            "front matter must be 'key: value' lines", path=rel, line=2,
            hint="write title: …, category: …, author: …, date: YYYY-MM-DD",
        )
    try:
        return ArticleMeta.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        missing = err["type"] == "missing"
        raise ContentError(
            f"front matter has no '{field}'" if missing else _pydantic_message(err),
            path=rel,
            line=1 if missing else _field_line(front, field.split(".")[0]),
            field=None if missing else field,
            hint=_FIELD_HINTS.get(field, "see README.md, 'Articles'"),
        ) from None


def _author(meta: ArticleMeta, front: str, rel: str, authors: dict[str, Author]) -> Author:
    """The article's author, once its image is known to have a text alternative."""
    author = authors.get(meta.author)
    if author is None:
        known = ", ".join(sorted(authors)) or "none"
        raise ContentError(
            f"unknown author '{meta.author}'",
            path=rel,
            line=_field_line(front, "author"),
            field="author",
            hint=f"use a key of content/authors.toml (known: {known})",
        )
    if meta.image is not None and not (meta.image_alt or "").strip():
        raise ContentError(
            "image has no image_alt",
            path=rel,
            line=_field_line(front, "image"),
            field="image_alt",
            hint="describe the image in `image_alt:` for readers who do not see it",
        )
    return author


def load_article(path: Path, *, authors: dict[str, Author], layout: Layout) -> Article:
    """One article file. Raises ContentError naming the file, the line and what to do."""
    rel = layout.rel(path)
    front, body, body_line = _front_matter(path, rel)
    meta = _meta(front, rel)
    author = _author(meta, front, rel, authors)
    if not body.strip():
        raise ContentError(
            "the article has no text", path=rel, line=body_line,
            hint="write the article below the front matter",
        )
    tokens = parse(body)
    slug = meta.slug or path.stem
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
        image=meta.image,
        image_alt=meta.image_alt,
        source=rel,
        tokens=tuple(tokens),
        written_summary=meta.summary,
    )


_FIELD_HINTS = {
    "title": "add `title: …`",
    "category": "add `category: …`, e.g. `category: Marketing social`",
    "author": "add `author: <key>` with a key of content/authors.toml",
    "date": "write the date as YYYY-MM-DD, e.g. `date: 2026-11-03`",
    "slug": "lowercase letters, digits and hyphens only",
    "url": "write an absolute https:// link (or mailto:)",
    "image": "write an absolute https:// image URL",
}


def _pydantic_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "missing"
    return str(err["msg"]).removeprefix("Value error, ")


def line_of(path: Path, pattern: str) -> int | None:
    rx = re.compile(pattern)
    try:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if rx.search(line):
                return i
    except OSError:
        return None
    return None


_TOML_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")


def toml_error(
    exc: tomllib.TOMLDecodeError, rel: str, kind: type[NewsletterError]
) -> NewsletterError:
    msg = str(exc)
    m = _TOML_LINE_RE.search(msg)
    line = int(m.group(1)) if m else None
    msg = _TOML_LINE_RE.sub("", msg).strip()
    return kind(f"malformed TOML: {msg}", path=rel, line=line, hint="fix the TOML syntax")
