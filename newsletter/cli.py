"""The `newsletter` command: a thin shell over the core. Each command imports its stage late."""

from __future__ import annotations

import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from newsletter.build import BuildResult
    from newsletter.checks import Finding
    from newsletter.layout import Layout
    from newsletter.settings import Settings


class ExitCode(IntEnum):
    OK = 0
    USER_ERROR = 1
    USAGE_ERROR = 2
    SOME_RECIPIENTS_FAILED = 3


app = typer.Typer(
    help="Turn a folder of Markdown articles into a newsletter issue and mail it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Root = Annotated[
    Path,
    typer.Option("--root", help="The newsletter folder (default: the current directory).",
                 file_okay=False),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]
IssueArg = Annotated[str, typer.Argument(help="An issue id (2026-11) or its file (issues/2026-11.toml).")]


@app.callback()
def _root_callback(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Build, preview and send a newsletter from content/, templates/ and issues/."""
    if version:
        from newsletter import __version__

        out(f"newsletter {__version__}")
        raise SystemExit(0)


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fail(exc: BaseException, *, debug: bool) -> NoReturn:
    """One line per problem on stderr, exit 1; the traceback only with --debug."""
    from newsletter.errors import NewsletterError

    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, NewsletterError):
        err(f"error: {exc}" if "\n" not in str(exc) else "\n".join(
            f"error: {line}" for line in str(exc).splitlines()))
    else:
        err(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)")
    raise SystemExit(ExitCode.USER_ERROR)


def setup(root: Path, debug: bool) -> tuple[Layout, Settings]:
    from newsletter.layout import Layout
    from newsletter.settings import load_settings, unknown_names

    layout = Layout.at(root)
    if not layout.root.is_dir():
        err(f"error: {root}: no such folder (pass --root DIR, a newsletter folder)")
        raise SystemExit(ExitCode.USER_ERROR)
    for name in unknown_names(layout):
        err(f"warning: unknown setting {name} (ignored; see .env.example for the names)")
    return layout, load_settings(layout)


@app.command("build-issue")
def build_issue_command(
    issue: IssueArg,
    root: Root = Path("."),
    strict: Annotated[bool, typer.Option("--strict", help="Fail on any check finding.")] = False,
    debug: Debug = False,
) -> None:
    """Build build/<id>/ (email.html, email.txt, email.mjml, email.eml, manifest.json)."""
    from newsletter.build import ChecksFailed, build_issue
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg

    try:
        layout, settings = setup(root, debug)
        result = build_issue(layout, issue_id_from_arg(issue), settings=settings, strict=strict)
    except ChecksFailed as exc:
        print_findings(exc.findings)
        fail(exc, debug=debug)
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    print_build(result, layout)


def print_build(result: BuildResult, layout: Layout) -> None:
    issue = result.issue
    out(f"Built {layout.rel(result.out_dir)}/ — {issue.subject}")
    for n, article in enumerate(issue.articles, start=1):
        out(f"  {n}. {article.title} ({article.category}, {article.author.name})")
    sizes = result.sizes
    out(
        f"  email.html {sizes['email.html'] / 1024:.1f} KB · email.txt "
        f"{sizes['email.txt'] / 1024:.1f} KB · email.eml {sizes['email.eml'] / 1024:.1f} KB"
    )
    print_findings(result.findings)


def print_findings(findings: list[Finding]) -> None:
    if not findings:
        out("  checks: all passed")
        return
    out(f"  checks: {len(findings)} warning(s)")
    for f in findings:
        out(f"  warning [{f.code}] {f.where}: {f.message}")


def main() -> None:
    # Honour NO_COLOR and keep output plain when it is not a terminal.
    os.environ.setdefault("TERM", "dumb") if not sys.stdout.isatty() else None
    try:
        app()
    except KeyboardInterrupt:
        err("interrupted")
        raise SystemExit(130) from None


@app.command("preview")
def preview_command(
    issue: Annotated[str | None, typer.Argument(help="An issue id or its file; omit with --list.")] = None,
    root: Root = Path("."),
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (default: a free one).")] = 0,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
    as_email: Annotated[
        str | None, typer.Option("--as", help="Personalise as this subscriber of the list file.")
    ] = None,
    subscribers: Annotated[
        Path | None, typer.Option("--subscribers", help="The subscriber list file.")
    ] = None,
    list_issues: Annotated[bool, typer.Option("--list", help="List the issues and exit.")] = False,
    debug: Debug = False,
) -> None:
    """Serve a live-reloading preview of an issue on 127.0.0.1 (desktop and mobile width)."""
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg

    try:
        layout, settings = setup(root, debug)
        from newsletter import preview

        if list_issues or issue is None:
            for line in preview.describe_issues(layout):
                out(line)
            if issue is None:
                return
        assert issue is not None
        preview.serve(
            layout,
            issue_id_from_arg(issue),
            settings=settings,
            port=port,
            open_browser=not no_open,
            as_email=as_email,
            subscribers_path=layout.resolve(subscribers or settings.subscribers),
            on_ready=lambda url: out(f"Preview at {url} (Ctrl-C to stop)"),
            on_event=out,
        )
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    except KeyboardInterrupt:
        out("Preview stopped.")


@app.command("open")
def open_command(issue: IssueArg, root: Root = Path("."), debug: Debug = False) -> None:
    """Open the built email.html in the default browser (no server)."""
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg

    try:
        layout, _settings = setup(root, debug)
        from newsletter import preview

        path = preview.open_built(layout, issue_id_from_arg(issue))
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    out(f"Opened {path}")
