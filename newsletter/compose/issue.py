"""Issue files (`issues/<id>.toml`) and the articles they resolve to."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsletter.compose.content import Article, Catalog, line_of
from newsletter.compose.frontmatter import toml_error
from newsletter.errors import IssueError
from newsletter.layout import Layout

Mode = Literal["full", "excerpt"]
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Select(BaseModel):
    """Rules that choose the articles: newest first, never one already in an earlier issue."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = None
    #: Articles with at least one of these tags (front matter `tags:`).
    tags: list[str] | None = None
    since: dt.date | None = None
    limit: int | None = Field(None, ge=1)


class IssueSpec(BaseModel):
    """The TOML schema of an issue file."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1)
    preheader: str
    date: dt.date
    number: int | None = None
    intro: str | None = None
    language: Literal["fr", "en"] | None = None
    mode: Mode = "excerpt"
    articles: list[str] | None = None
    select: Select | None = None

    @field_validator("subject", "preheader")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be on one line")
        return value.strip()

    @model_validator(mode="after")
    def _articles_xor_select(self) -> IssueSpec:
        if (self.articles is None) == (self.select is None):
            raise ValueError("give either `articles = [...]` or a [select] table, not both")
        if self.articles is not None and not self.articles:
            raise ValueError("`articles` is empty")
        return self


@dataclass(frozen=True)
class Issue:
    """An issue with its articles resolved, in the order they appear in the email."""

    id: str
    subject: str
    preheader: str
    date: dt.date
    number: int | None
    intro: str | None
    language: Literal["fr", "en"]
    mode: Mode
    articles: tuple[Article, ...]
    source: str
    #: Slugs of the catalog's `draft: true` articles, left out (the build summary says so).
    drafts: tuple[str, ...] = ()
    #: The articles are those the issue was sent with (the send journal), not its rules'.
    as_sent: bool = False
    #: The issue file's `articles = [...]` differs from what was sent, and is not used.
    list_ignored: bool = False


def load_spec(layout: Layout, issue_id: str) -> IssueSpec:
    path = layout.issue_file(issue_id)
    rel = layout.rel(path)
    if not ID_RE.match(issue_id):
        raise IssueError(
            f"'{issue_id}' is not a usable issue id",
            hint="name issue files like issues/2026-11.toml",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(p.stem for p in sorted(layout.issues_dir.glob("*.toml"))) or "none"
        raise IssueError(
            "issue file not found", path=rel, hint=f"known issues: {known}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(exc, rel, IssueError) from None
    except UnicodeDecodeError as exc:
        raise IssueError(
            f"not UTF-8 ({exc.reason} at byte {exc.start})",
            path=rel,
            line=path.read_bytes()[: exc.start].count(b"\n") + 1,
            hint="save the file as UTF-8",
        ) from None
    try:
        return IssueSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or None
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        key = loc[-1] if loc else ""
        line = line_of(path, rf"^\s*{re.escape(key)}\s*=") if key else None
        raise IssueError(
            msg, path=rel, line=line, field=field, hint=_hint(loc)
        ) from None


def _hint(loc: list[str]) -> str:
    hints: dict[str, str] = {
        "date": "write a TOML date, e.g. date = 2026-11-24",
        "subject": 'write subject = "…" on one line',
        "mode": 'use mode = "full" or mode = "excerpt"',
        "language": 'use language = "fr" or "en"',
        "since": "write a TOML date, e.g. since = 2026-09-01",
        "limit": "a whole number of at least 1",
    }
    return hints.get(loc[-1] if loc else "", "see docs/folder.md, 'Issue files'")


def resolve_issue(layout: Layout, issue_id: str, catalog: Catalog, *, language: str) -> Issue:
    """Load `issues/<id>.toml` and pick its articles (see `resolve_spec`)."""
    return resolve_spec(layout, issue_id, load_spec(layout, issue_id), catalog, language=language)


def resolve_spec(
    layout: Layout, issue_id: str, spec: IssueSpec, catalog: Catalog, *, language: str
) -> Issue:
    """The issue `issue_id` described by `spec` (its file, or one `new-issue` is about to
    write), with its articles picked.

    An issue whose send has begun is the articles it was sent with, as the send journal
    recorded them: its rules are not applied again (a later article must not slip into a
    sent issue). Otherwise rule-based issues leave out every article of a sent issue and
    every article of an earlier issue (an issue file with an earlier date), so earlier issues
    are resolved first, in date order; one of them that picks nothing takes nothing.
    """
    from newsletter.send.evidence import sent_articles

    rel = layout.rel(layout.issue_file(issue_id))
    sent = sent_articles(layout)
    as_sent = issue_id in sent
    if as_sent:
        articles = _as_sent(rel, sent[issue_id], catalog)
    else:
        used: set[str] = set()
        # Only rules need the earlier issues: an explicit list must not fail on another issue
        # file (a half-written draft of next month's issue, an old issue naming a renamed one).
        if spec.select is not None:
            for slugs in sent.values():
                used.update(slugs)
            for other_id, other in _earlier_specs(layout, issue_id, spec):
                if other_id not in sent:
                    used.update(_taken(other, catalog, used))
        articles = _pick(layout, issue_id, spec, catalog, used)
    lang: Any = spec.language or language
    drafts = {a.slug for a in catalog.articles.values() if a.draft}
    return Issue(
        id=issue_id,
        subject=spec.subject,
        preheader=spec.preheader,
        date=spec.date,
        number=spec.number,
        intro=spec.intro,
        language=lang,
        mode=spec.mode,
        # Typeset for the issue's language: an English issue can carry a French article.
        articles=tuple(a.in_language(lang) for a in articles),
        source=rel,
        drafts=tuple(sorted(drafts)),
        as_sent=as_sent,
        list_ignored=as_sent
        and spec.articles is not None
        and tuple(s for s in spec.articles if s not in drafts) != sent[issue_id],
    )


def _as_sent(rel: str, slugs: tuple[str, ...], catalog: Catalog) -> list[Article]:
    """The articles a sent issue was mailed with; every one must still be there."""
    gone = [slug for slug in slugs if slug not in catalog.articles]
    if gone:
        names = ", ".join(f"'{slug}'" for slug in gone)
        raise IssueError(
            f"this issue was sent with {names}, no longer in content/articles/",
            path=rel,
            field="articles",
            hint="put the article back (same slug): a sent issue is rebuilt with exactly "
            "the articles it was sent with",
        )
    return [catalog.articles[slug] for slug in slugs]


def _earlier_specs(layout: Layout, issue_id: str, spec: IssueSpec) -> list[tuple[str, IssueSpec]]:
    out: list[tuple[str, IssueSpec]] = []
    for path in sorted(layout.issues_dir.glob("*.toml")):
        if path.stem == issue_id:
            continue
        other = load_spec(layout, path.stem)
        if (other.date, path.stem) < (spec.date, issue_id):
            out.append((path.stem, other))
    out.sort(key=lambda item: (item[1].date, item[0]))
    return out


def _taken(spec: IssueSpec, catalog: Catalog, used: set[str]) -> list[str]:
    """The slugs another (earlier, unsent) issue takes, without its errors: what it cannot
    pick (an unknown slug or category, rules that match nothing) it does not take. Its own
    build reports those, naming its file; they must not stop this issue."""
    if spec.articles is not None:
        return [s for s in spec.articles if s in catalog.articles]
    assert spec.select is not None
    return [a.slug for a in _candidates(spec.select, spec.date, catalog, used)]


def _candidates(rules: Select, date: dt.date, catalog: Catalog, used: set[str]) -> list[Article]:
    """What `rules` pick for an issue dated `date`: newest first, cut at the limit."""
    candidates = [
        a
        for a in catalog.articles.values()
        if a.slug not in used
        and not a.draft
        and (rules.tags is None or set(rules.tags) & set(a.tags))
        and (rules.categories is None or a.category in rules.categories)
        and (rules.since is None or a.date >= rules.since)
        and a.date <= date
    ]
    candidates.sort(key=lambda a: (-a.date.toordinal(), a.slug))
    if rules.limit is not None:
        candidates = candidates[: rules.limit]
    return candidates


def _pick(
    layout: Layout, issue_id: str, spec: IssueSpec, catalog: Catalog, used: set[str]
) -> list[Article]:
    path = layout.issue_file(issue_id)
    rel = layout.rel(path)
    if spec.articles is not None:
        picked: list[Article] = []
        for slug in spec.articles:
            article = catalog.articles.get(slug)
            if article is None:
                known = ", ".join(sorted(catalog.articles)) or "none"
                raise IssueError(
                    f"unknown article '{slug}'",
                    path=rel,
                    line=line_of(path, re.escape(f'"{slug}"')),
                    field="articles",
                    hint=f"known: {known}",
                )
            if not article.draft:
                picked.append(article)
        if not picked:
            raise IssueError(
                "every article listed is a draft", path=rel, field="articles",
                hint="remove `draft: true` from one of them",
            )
        return picked
    assert spec.select is not None
    rules = spec.select
    if rules.categories is not None:
        known_categories = {a.category for a in catalog.articles.values()}
        for category in rules.categories:
            if category not in known_categories:
                raise IssueError(
                    f"no article has category '{category}'",
                    path=rel,
                    line=line_of(path, re.escape(f'"{category}"')),
                    field="select.categories",
                    hint=f"known: {', '.join(sorted(known_categories))}",
                )
    candidates = _candidates(rules, spec.date, catalog, used)
    if not candidates:
        raise IssueError(
            "the [select] rules match no article not already in an earlier or sent issue",
            path=rel,
            field="select",
            hint="widen categories or since, or list the articles explicitly",
        )
    return candidates
