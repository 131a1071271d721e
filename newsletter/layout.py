"""Where things live in a newsletter folder: the only module that knows the paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import ConfigError, IssueError

#: The file that makes a folder a newsletter folder (as mkdocs.yml does for mkdocs).
PROJECT_FILE = "newsletter.toml"
NOT_A_FOLDER = (
    f"not in a newsletter folder (no {PROJECT_FILE} here or above): run `newsletter init`"
)


@dataclass(frozen=True)
class Layout:
    """A newsletter folder: the nearest one with a newsletter.toml, or `--root DIR`."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Layout:
        return cls(Path(root).resolve())

    @classmethod
    def find(cls, start: str | Path) -> Layout:
        """The nearest folder at or above `start` with a newsletter.toml (as git finds .git)."""
        here = Path(start).resolve()
        for folder in (here, *here.parents):
            if (folder / PROJECT_FILE).is_file():
                return cls(folder)
        raise ConfigError(NOT_A_FOLDER)

    @classmethod
    def given(cls, root: str | Path) -> Layout:
        """`--root DIR`: that folder exactly, which must hold a newsletter.toml too."""
        layout = cls.at(root)
        if not layout.root.is_dir():
            raise ConfigError(
                "no such folder", path=root, hint="pass --root DIR, a newsletter folder"
            )
        if not layout.toml_file.is_file():
            raise ConfigError(
                f"not a newsletter folder (no {PROJECT_FILE})",
                path=root,
                hint=f"run `newsletter init {root}`, or pass the folder that has one",
            )
        return layout

    @property
    def toml_file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def articles_dir(self) -> Path:
        return self.root / "content" / "articles"

    @property
    def authors_file(self) -> Path:
        return self.root / "content" / "authors.toml"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def build_root(self) -> Path:
        return self.root / "build"

    @property
    def state_dir(self) -> Path:
        # Outside build/: a rebuild swaps build/<id>/ and must never wipe the send journal.
        return self.root / "state"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "newsletter.db"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    def build_dir(self, issue_id: str) -> Path:
        return self.build_root / issue_id

    def site_dir(self, archive_dir: str = "site") -> Path:
        """The public archive (`newsletter archive`): NEWSLETTER_ARCHIVE_DIR, from the root."""
        return self.resolve(archive_dir)

    def built_ids(self) -> list[str]:
        """Every issue with a `build/<id>/manifest.json`, sorted (temporary folders left out)."""
        if not self.build_root.is_dir():
            return []
        return sorted(
            p.parent.name
            for p in self.build_root.glob("*/manifest.json")
            if not p.parent.name.startswith(".")
        )

    def issue_file(self, issue_id: str) -> Path:
        return self.issues_dir / f"{issue_id}.toml"

    def issue_ids(self) -> list[str]:
        """The issues with a file in issues/, sorted."""
        return sorted(p.stem for p in self.issues_dir.glob("*.toml"))

    def unknown_issue(self, issue_id: str) -> IssueError | None:
        """An error naming the known issues when `issue_id` has neither an issue file nor a
        build (a typo, most likely); None when it has either."""
        if self.issue_file(issue_id).is_file() or self.build_dir(issue_id).is_dir():
            return None
        return IssueError(
            "issue file not found",
            path=self.rel(self.issue_file(issue_id)),
            hint=f"known issues: {', '.join(self.issue_ids()) or 'none'}",
        )

    def resolve(self, path: str | Path) -> Path:
        """A path from a setting (NEWSLETTER_SUBSCRIBERS, NEWSLETTER_SUPPRESSIONS...):
        relative ones are relative to the root. A path typed on the command line is relative
        to the current folder instead (`clikit.given_path`)."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def rel(self, path: Path) -> str:
        """How a path is shown in messages: relative to the root when inside it, else the
        absolute path without `..` (not `/x/letter/../bounces/b1.eml`)."""
        full = path.resolve()
        try:
            return str(full.relative_to(self.root))
        except ValueError:
            return str(full)


def issue_id_from_arg(arg: str) -> str:
    """`2026-11`, `issues/2026-11.toml` or `2026-11.toml` all name issue `2026-11`.

    A path elsewhere (`../../etc/2026-11.toml`) or an id that is not a plain name (`..`) is
    refused rather than taken for issues/<its name> (issue 13).
    """
    from newsletter.errors import IssueError

    path = Path(arg)
    name = path.name
    issue_id = name[: -len(".toml")] if name.endswith(".toml") else name
    outside = path.parent != Path(".") and path.parent.name != "issues"
    if outside or not _ISSUE_ID_RE.match(issue_id):
        raise IssueError(
            "not an issue of issues/" if outside else "not a usable issue id",
            path=arg,
            hint="name the issue by its id (2026-11) or as issues/<id>.toml",
        )
    return issue_id


_ISSUE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
