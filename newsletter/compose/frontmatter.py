"""An article's front matter: split from the body, parsed (YAML), validated, every error named.

Besides our own keys it accepts what Hugo and Jekyll write, so a blog's posts build as they are:
`description` (our `summary`), `categories` (the first is the category unless `category` is
given), `tags`, `draft`, dates with a time and a zone. The keys those generators use for their
own pages and we have no use for are listed in IGNORED_KEYS; any other key is an error.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from newsletter.compose.urls import IMAGE_SCHEMES, LINK_SCHEMES, check_url
from newsletter.errors import ContentError, ErrorGroup, NewsletterError

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?", re.S | re.M)
#: Hugo's TOML front matter (what `hugo new` writes by default), between `+++` lines.
TOML_FRONT_MATTER_RE = re.compile(r"\A\+\+\+[ \t]*\r?\n(.*?)^\+\+\+[ \t]*\r?$\n?", re.S | re.M)
#: A relative image path (`img/photo.jpg`, `/img/photo.jpg`, `../a.png`): no scheme, no host,
#: no colon, space or control character anywhere (`java\tscript:` stays refused).
_RELATIVE_PATH = re.compile(r"(?!//)[^\x00-\x20\x7f-\x9f:]+")
#: Jekyll's post file names: the date, then the slug.
JEKYLL_NAME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})-(.+)")


class TomlFront(str):
    """Front matter written in TOML between `+++` lines, as Hugo writes it."""

#: Keys of Hugo, Jekyll (and WordPress exporters to them) that say how *their* site shows a
#: page: meaningless in an email, so ignored rather than refused.
IGNORED_KEYS = frozenset({
    "layout", "permalink", "aliases", "weight", "lastmod", "publishdate", "expirydate",
    "toc", "comments", "featured_image", "featuredimage", "cover", "thumbnail", "type",
    "menu", "keywords", "series", "showtoc", "hidemeta", "share", "sitemap", "published",
    "last_modified_at", "redirect_from", "excerpt_separator", "math", "author_profile",
    "read_time", "header", "sidebar", "markup", "outputs", "resources", "translationkey",
    "headless", "linktitle", "images", "disqus_identifier",
})

#: Date formats Jekyll writes that YAML does not read as a timestamp ("+0100" has no colon).
_WITH_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


class ArticleMeta(BaseModel):
    """The front matter, as the editor (or another generator) writes it."""

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
    tags: list[str] = []
    draft: bool = False
    #: The feed item an article was imported from (`newsletter import` finds it again by it).
    guid: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _other_generators(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if str(k).lower() not in IGNORED_KEYS}
        description = data.pop("description", None)
        if data.get("summary") is None and description is not None:
            data["summary"] = description
        categories = data.pop("categories", None)
        if isinstance(categories, str):  # Jekyll: words separated by spaces
            categories = categories.split()
        if data.get("category") is None and isinstance(categories, list) and categories:
            data["category"] = str(categories[0])
        if isinstance(data.get("tags"), str):
            data["tags"] = data["tags"].split()
        return data

    @field_validator("date", mode="before")
    @classmethod
    def _date_is_a_date(cls, value: Any) -> Any:
        # Hugo writes 2026-11-03T10:30:00+01:00, Jekyll 2026-11-03 10:30:00 +0100: the day as
        # written, in its own zone, is the article's date.
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str) and _WITH_TIME_RE.match(value.strip()):
            return _parse_date(value)  # a bare date is left to pydantic, which names the part
        if not isinstance(value, dt.date | str):
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
        if value is not None and _RELATIVE_PATH.fullmatch(value.strip()):
            return value.strip()  # relative: content.py resolves it against the article's url
        return check_url(value, schemes=IMAGE_SCHEMES)


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError("must be a date written YYYY-MM-DD (a time and a zone may follow)")


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML as `yaml.safe_load` reads it, except that a date YAML cannot build stays a string.

    PyYAML turns `date: 2026-13-45` into a ValueError deep in its constructor; as a string it
    reaches the `date` field's validation, which names the field and its line.
    """


def _mapping_without_twice(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    """A mapping whose keys are each written once: PyYAML keeps the last of two `title:`
    silently, so the article would show one the writer may not mean."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"'{key}' is written twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_yaml_map(node)


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)
_FrontMatterLoader.add_constructor("tag:yaml.org,2002:map", _mapping_without_twice)


def split(text: str, rel: str) -> tuple[str, str, int]:
    """(front matter, body, line of the body's start) of an article's text."""
    text = text.removeprefix("\ufeff")
    match = FRONT_MATTER_RE.match(text)
    kind: type[str] = str
    if not match and text.startswith("+++"):
        match, kind = TOML_FRONT_MATTER_RE.match(text), TomlFront
    if not match:
        fence = text[:3] if text.startswith(("---", "+++")) else ""
        if fence:
            raise ContentError(
                f"the front matter has no closing '{fence}' line", path=rel, line=1,
                hint=f"end the front matter with a '{fence}' line, then write the article",
            )
        raise ContentError(
            "no front matter",
            path=rel,
            line=1,
            hint="start the file with a '---' line, title/category/author/date, then '---'",
        )
    return kind(match.group(1)), text[match.end() :], text[: match.end()].count("\n") + 1


def field_line(front: str, name: str) -> int:
    """The file's line of `name:` in the front matter (which starts on line 2), else 1."""
    key = re.compile(rf"{re.escape(name)}\s*[:=]")  # YAML `name:`, TOML `name =`
    for i, line in enumerate(front.splitlines(), start=2):
        if key.match(line):
            return i
    return 1


def parse_meta(front: str, rel: str) -> ArticleMeta:
    """The front matter parsed and validated. Raises ContentError, or an ErrorGroup of all the
    file's problems."""
    if isinstance(front, TomlFront):
        raw: Any = _toml(front, rel)
    else:
        raw = _yaml(front, rel)
    if not isinstance(raw, dict):
        raise ContentError(
            "front matter must be 'key: value' lines", path=rel, line=2,
            hint="write title: …, category: …, author: …, date: YYYY-MM-DD",
        )
    try:
        return ArticleMeta.model_validate(raw)
    except ValidationError as exc:
        errors = [_error(err, front, rel) for err in exc.errors()]
        raise (errors[0] if len(errors) == 1 else ErrorGroup(errors)) from None


def _toml(front: str, rel: str) -> dict[str, Any]:
    try:
        return tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(
            exc, rel, ContentError, what="front matter is not valid TOML",
            hint='write key = "value", with the text in quotes', first_line=2,
        ) from None


_TOML_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")


def toml_error(
    exc: tomllib.TOMLDecodeError,
    rel: str,
    kind: type[NewsletterError],
    *,
    what: str = "malformed TOML",
    hint: str = "fix the TOML syntax",
    first_line: int = 1,
) -> NewsletterError:
    """A TOML file's (or front matter's, starting on `first_line`) syntax error, on its line."""
    msg = str(exc)
    m = _TOML_LINE_RE.search(msg)
    line = int(m.group(1)) + first_line - 1 if m else None
    msg = _TOML_LINE_RE.sub("", msg).strip()
    return kind(f"{what}: {msg}", path=rel, line=line, hint=hint)


def _yaml(front: str, rel: str) -> Any:
    try:
        return yaml.load(front, Loader=_FrontMatterLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "malformed YAML"
        twice = problem.endswith("is written twice")
        raise ContentError(
            f"front matter{'' if twice else ' is not valid YAML'}: {problem}",
            path=rel,
            line=line,
            hint="keep one of the two lines" if twice
            else "check quotes and colons; quote a title that contains ': '",
        ) from None


def _error(err: Any, front: str, rel: str) -> ContentError:
    field = ".".join(str(p) for p in err["loc"])
    missing = err["type"] == "missing"
    return ContentError(
        f"front matter has no '{field}'" if missing else pydantic_message(err),
        path=rel,
        line=1 if missing else field_line(front, field.split(".")[0]),
        field=None if missing else field,
        hint=FIELD_HINTS.get(field.split(".")[0], "see docs/folder.md, 'Articles'")
        if err["type"] != "extra_forbidden"
        else "remove it, or see docs/folder.md for the keys an article takes",
    )


FIELD_HINTS = {
    "title": "add `title: …`",
    "category": "add `category: …`, e.g. `category: Marketing social`",
    "author": "add `author: <key>` with a key of content/authors.toml",
    "date": "write the date as YYYY-MM-DD, e.g. `date: 2026-11-03`",
    "slug": "lowercase letters, digits and hyphens only",
    "tags": "write tags: [a, b]",
    "draft": "write draft: true or draft: false",
    "url": "write an absolute https:// link (or mailto:)",
    "image": "write an absolute https:// image URL",
}


def pydantic_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "missing"
    return str(err["msg"]).removeprefix("Value error, ")
