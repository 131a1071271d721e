"""`newsletter init` and `newsletter new-issue`: new files from the starters in theme/init/.

The files come from package data (as `mkdocs new` copies its own), filled with
`string.Template`: `$name_q` is a value escaped to sit between double quotes in TOML or YAML,
`$name_plain` the same value as written (in Markdown). Nothing here overwrites a file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Literal

from newsletter.errors import ConfigError, ContentError, IssueError
from newsletter.fsio import write_file
from newsletter.layout import PROJECT_FILE, Layout

if TYPE_CHECKING:
    from newsletter.compose.issue import Issue

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")
#: The sample article's file, per language (its slug is the file name).
ARTICLE = {"fr": "bienvenue.md", "en": "welcome.md"}
_SPECIALS_RE = re.compile(r'[()<>\[\]:;@\\,."]')  # RFC 5322 specials: quote the name
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class Identity:
    """Who the newsletter is: what `init` asks for."""

    name: str
    address: str
    language: Language
    postal_address: str = ""

    @property
    def sender(self) -> str:
        """`Name <address>` as the user reads it: formataddr would RFC 2047-encode "Cœur"."""
        name = self.name
        if _SPECIALS_RE.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.address}>"


def identity(*, name: str, sender: str, language: str, postal_address: str = "") -> Identity:
    """Check what the user typed. `sender` is an address or `Name <address>`; without
    `name`, the display name of `sender` is the name."""
    display, address = parseaddr(sender.strip())
    name = " ".join((name or display).split())
    local, _, domain = address.rpartition("@")
    if not local or not _DOMAIN_RE.match(domain):
        raise ConfigError(
            f"'{sender}' is not an email address", field="--from", hint="e.g. lettre@my-domain.fr"
        )
    if not name:
        raise ConfigError("missing", field="--name", hint="the newsletter's name, e.g. Ma Lettre")
    if language not in LANGUAGES:
        raise ConfigError(f"'{language}' is not fr or en", field="--language")
    lang: Language = "en" if language == "en" else "fr"
    return Identity(name, address, lang, " ".join(postal_address.split()))


def _starter(name: str) -> str:
    return (resources.files("newsletter") / "theme" / "init" / name).read_text(encoding="utf-8")


def _fill(name: str, values: Mapping[str, str]) -> bytes:
    return Template(_starter(name)).substitute(values).encode("utf-8")


def quoted(value: str) -> str:
    """`value` escaped for the inside of "…" in TOML and YAML (JSON's escapes suit both)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def first_issue_id(today: dt.date) -> str:
    return f"{today:%Y-%m}"


def new_folder_files(who: Identity, *, today: dt.date) -> dict[str, bytes]:
    """{path relative to the new folder: bytes} of everything `init` writes."""
    postal = (
        f'postal_address = "{quoted(who.postal_address)}"'
        if who.postal_address
        else '# postal_address = "Your Name, 1 Street, 75001 City, Country"'
    )
    values = {
        "from_q": quoted(who.sender),
        "language": who.language,
        "postal_line": postal,
        "name_q": quoted(who.name),
        "name_plain": who.name,
        "today": today.isoformat(),
        "number": "1",
    }
    lang = who.language
    return {
        PROJECT_FILE: _fill("newsletter.toml", values),
        ".env.example": _fill("env.example", values),
        ".gitignore": _fill("gitignore", values),
        "content/authors.toml": _fill(f"{lang}/authors.toml", values),
        f"content/articles/{ARTICLE[lang]}": _fill(f"{lang}/article.md", values),
        f"issues/{first_issue_id(today)}.toml": _fill(f"{lang}/issue.toml", values),
        "subscribers.csv": _fill("subscribers.csv", values),
    }


def create_folder(root: Path, who: Identity, *, today: dt.date) -> list[str]:
    """Write a new newsletter folder at `root`; refuses (ConfigError) if any file exists."""
    files = new_folder_files(who, today=today)
    present = [rel for rel in files if (root / rel).exists()]
    if present:
        raise ConfigError(
            "already a newsletter folder" if PROJECT_FILE in present else "would overwrite files",
            path=root / present[0],
            hint="init never overwrites: choose an empty folder, e.g. newsletter init DIR",
        )
    for rel, data in files.items():
        write_file(root / rel, data)
    return list(files)


# -- new-issue --------------------------------------------------------------------------------


def next_issue_id(layout: Layout, today: dt.date) -> str:
    """This month (`2026-11`), or the next free one: `2026-11-2`, `2026-11-3`…"""
    base = first_issue_id(today)
    candidate, n = base, 1
    while layout.issue_file(candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


#: How long a preheader made of the articles' titles may get (inboxes show less anyway).
PREHEADER_MAX_CHARS = 120


@dataclass(frozen=True)
class NewIssue:
    """What `new-issue` writes: the file's bytes and the issue they resolve to today."""

    id: str
    path: Path
    data: bytes
    issue: Issue


def plan_new_issue(
    layout: Layout, issue_id: str | None, *, today: dt.date, language: str
) -> NewIssue:
    """`issues/<id>.toml` dated today, numbered next, picking the articles not yet sent: made
    and checked in memory, so that nothing is written when it would not build.

    The mode is the latest issue file's (by date); with no issue file yet, "excerpt" when
    every article picked has a `url`, else "full". The preheader is the titles of the
    articles picked (the user rewrites it).

    Raises ConfigError (a bad id, an existing file), ContentError (no articles folder, a bad
    article), IssueError (no article left for it, or another issue file that is broken).
    """
    from newsletter.compose.content import load_catalog
    from newsletter.compose.issue import IssueSpec, Select, load_spec, resolve_spec

    issue_id, path = _new_issue_path(layout, issue_id, today=today)
    rel = layout.rel(path)
    catalog = load_catalog(layout)
    if not catalog.articles:
        raise ContentError(
            "no article yet, so no issue to write",
            path=layout.rel(layout.articles_dir),
            hint="write one as docs/folder.md shows, then run new-issue again",
        )
    others = sorted(
        ((spec.date, p.stem), spec)
        for p in layout.issues_dir.glob("*.toml")
        for spec in [load_spec(layout, p.stem)]
    )
    number = max((s.number for _, s in others if s.number is not None), default=0) + 1
    lang: Language = "en" if language == "en" else "fr"
    subject = {"fr": f"Numéro {number}", "en": f"Issue {number}"}[lang]
    spec = IssueSpec(subject=subject, preheader="", date=today, number=number,
                     select=Select.model_validate({}))
    try:
        issue = resolve_spec(layout, issue_id, spec, catalog, language=language)
    except IssueError as exc:
        if (exc.path, exc.field) != (rel, "select"):
            raise
        raise IssueError(
            f"not written: every article dated up to {today.isoformat()} is a draft or "
            "already in an issue",
            path=rel,
            hint="write the next article in content/articles/, then run new-issue again",
        ) from None
    if others:
        mode = others[-1][1].mode
    else:
        mode = "excerpt" if all(a.url for a in issue.articles) else "full"
    titles = [catalog.articles[a.slug].title for a in issue.articles]
    values = {
        "preheader_q": quoted(_preheader(titles)),
        "today": today.isoformat(),
        "number": str(number),
        "mode": mode,
    }
    return NewIssue(issue_id, path, _fill(f"{lang}/next-issue.toml", values), issue)


def _new_issue_path(layout: Layout, issue_id: str | None, *, today: dt.date) -> tuple[str, Path]:
    """The id (given, or the next free one of this month) and its file, which must not exist."""
    from newsletter.compose.issue import ID_RE

    issue_id = issue_id or next_issue_id(layout, today)
    if not ID_RE.match(issue_id):
        raise ConfigError(
            f"'{issue_id}' is not a usable issue id", field="ID", hint="e.g. 2026-11 or 2026-11-2"
        )
    path = layout.issue_file(issue_id)
    if path.exists():
        raise ConfigError(
            "already exists", path=layout.rel(path), hint="new-issue never overwrites: edit it"
        )
    return issue_id, path


def _preheader(titles: list[str]) -> str:
    """The titles, joined by " · " on one line, cut at a word when too long for an inbox."""
    text = " · ".join(" ".join(title.split()) for title in titles)
    if len(text) > PREHEADER_MAX_CHARS:
        text = text[: PREHEADER_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(" ·") + "…"
    return text


def write_new_issue(layout: Layout, plan: NewIssue) -> None:
    """Write the planned issue file (never over one that appeared meanwhile)."""
    if plan.path.exists():
        raise ConfigError(
            "already exists", path=layout.rel(plan.path), hint="new-issue never overwrites: edit it"
        )
    write_file(plan.path, plan.data)
