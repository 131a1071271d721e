"""The issues of a folder as the preview lists them (`preview --list`, /issues), and `open`."""

from __future__ import annotations

import datetime as dt
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.issue import load_spec
from newsletter.errors import BuildError, NewsletterError
from newsletter.layout import Layout


@dataclass(frozen=True)
class IssueRow:
    """One `issues/<id>.toml`: what it says, or why it cannot be read, and when it was built."""

    issue_id: str
    date: str  # ISO date, "" when the file is invalid
    subject: str  # or "invalid: <the error>"
    built: dt.datetime | None
    valid: bool

    @property
    def state(self) -> str:
        return f"built {self.built:%Y-%m-%d %H:%M}" if self.built else "not built"


def issue_ids(layout: Layout) -> list[str]:
    return sorted(p.stem for p in layout.issues_dir.glob("*.toml"))


def issue_rows(layout: Layout) -> list[IssueRow]:
    """Every issue file, sorted by id."""
    rows = []
    for issue_id in issue_ids(layout):
        built = built_at(layout, issue_id)
        try:
            spec = load_spec(layout, issue_id)
        except NewsletterError as exc:
            rows.append(IssueRow(issue_id, "", f"invalid: {exc}", built, valid=False))
            continue
        rows.append(IssueRow(issue_id, spec.date.isoformat(), spec.subject, built, valid=True))
    return rows


def describe_issues(layout: Layout) -> list[str]:
    """One line per `issues/*.toml`: id, date, subject, and whether `build/<id>/` exists."""
    rows = issue_rows(layout)
    if not rows:
        return [f"no issues in {layout.rel(layout.issues_dir)}/ (create issues/<id>.toml)"]
    width = max(len(row.issue_id) for row in rows)
    return [
        f"{row.issue_id:<{width}}  {row.date}  {row.subject}  [{row.state}]" if row.valid
        else f"{row.issue_id:<{width}}  {row.subject}  [{row.state}]"
        for row in rows
    ]


def built_at(layout: Layout, issue_id: str) -> dt.datetime | None:
    """When build/<id>/ was last written (its manifest is written last), or None."""
    manifest = layout.build_dir(issue_id) / "manifest.json"
    try:
        return dt.datetime.fromtimestamp(manifest.stat().st_mtime)
    except OSError:
        return None


def open_built(layout: Layout, issue_id: str) -> Path:
    """Open `build/<id>/email.html` in the default browser, as built (placeholders unfilled).

    Raises IssueError for an unknown issue, BuildError when it has not been built or no
    browser could be started.
    """
    path = layout.build_dir(issue_id) / "email.html"
    if not path.is_file():
        raise layout.unknown_issue(issue_id) or BuildError(
            "the issue has not been built",
            path=layout.rel(path),
            hint=f"run newsletter build-issue {issue_id}",
        )
    if not webbrowser.open(path.as_uri()):
        raise BuildError(
            "no browser could be started",
            path=layout.rel(path),
            hint="open the file yourself, or set BROWSER to your browser's command",
        )
    return path
