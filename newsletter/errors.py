"""Errors a user can act on.

Every error names where the problem is and, when we know it, what to do::

    NewsletterError            path:line: field: message (hint)
     ├── ConfigError           a setting in the environment or .env
     ├── ContentError          an article or content/authors.toml
     ├── IssueError            an issue file or its selection
     ├── TemplateError         a Jinja2 template or the MJML it produced
     ├── SubscriberError       the subscriber list file
     ├── BuildError            build/<id>/ is missing or unusable
     └── DeliveryError         the relay, the journal, a send already running
    ErrorGroup                 several of the above, reported together (one line each)

Only the CLI prints them; the core raises and never exits. `ExitCode` is what the process
returns, listed in docs/.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    USER_ERROR = 1
    USAGE_ERROR = 2  # click's own code for a bad command line
    SOME_RECIPIENTS_FAILED = 3
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process killed by Ctrl-C
    # 128 + SIGPIPE: what `yes | head -1` reports, so `set -o pipefail` sees the same thing
    BROKEN_PIPE = 141


class NewsletterError(Exception):
    """An error with a location and a hint, printed as one line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
        parts = [p for p in (where, self.field) if p]
        text = " ".join(one_line(self.message).split())
        prefix = ": ".join(parts)
        out = f"{prefix}: {text}" if prefix else text
        if self.hint:
            out += f" ({one_line(self.hint)})"
        return out


def one_line(text: str) -> str:
    return " ".join(text.split())


class ConfigError(NewsletterError):
    pass


class ContentError(NewsletterError):
    pass


class IssueError(NewsletterError):
    pass


class TemplateError(NewsletterError):
    pass


class SubscriberError(NewsletterError):
    pass


class BuildError(NewsletterError):
    pass


class DeliveryError(NewsletterError):
    pass


class ErrorGroup(NewsletterError):
    """Several problems found in one pass (pelican style: report every bad file at once)."""

    def __init__(self, errors: Sequence[NewsletterError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} problem(s)")

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
