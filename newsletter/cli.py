"""The `newsletter` command: a thin shell over the core. Each command imports its stage late.

`FolderGroup.command` does what every command needs, once: `--root` and `--debug`, the folder's
`Layout` and `Settings` (warning about unknown setting names), and a `NewsletterError` or
`OSError` turned into one line on stderr and exit 1 (the traceback only with --debug). A command
body takes the loaded `Folder` first, prints through newsletter.console and returns its exit code.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from newsletter.console import err, out
from newsletter.errors import ExitCode as ExitCode  # re-exported: the tests import it here

if TYPE_CHECKING:
    from newsletter.layout import Layout
    from newsletter.send.progress import SendProgress
    from newsletter.send.run import SendOptions, SendResult
    from newsletter.settings import Settings

ROOT_HELP = "The newsletter folder (default: the current directory)."
Body = Callable[..., "int | None"]


@dataclass(frozen=True)
class Folder:
    """The newsletter folder a command runs in (`--root`), with its settings loaded."""

    layout: Layout
    settings: Settings


class FolderGroup(click.Group):
    """A click group whose commands run in a newsletter folder (as Flask's AppGroup runs its
    commands in an app context)."""

    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Body], click.Command]:
        def decorator(body: Body) -> click.Command:
            command: click.Command = super(FolderGroup, self).command(*args, **kwargs)(
                in_folder(body)
            )
            return command

        return decorator


def in_folder(body: Body) -> Callable[..., None]:
    """`body(folder, **params)` with --root/--debug added and the errors turned into one line."""

    @functools.wraps(body)
    def run(*, root: Path, debug: bool, **params: Any) -> None:
        from newsletter.errors import NewsletterError

        try:
            code = body(load_folder(root), **params)
        except BrokenPipeError:
            quiet_broken_pipe()
        except KeyboardInterrupt:
            err("interrupted")
            raise SystemExit(ExitCode.INTERRUPTED) from None
        except (NewsletterError, OSError) as exc:
            fail(exc, debug=debug)
        if code:
            raise SystemExit(code)

    # click lists the options of the decorators top-down from a list built bottom-up: placed
    # first, --root and --debug come last in every command's --help, as they always have.
    params = run.__dict__.setdefault("__click_params__", [])
    params[:0] = [
        click.Option(["--debug"], is_flag=True, help="Show a traceback on errors."),
        click.Option(
            ["--root"],
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("."),
            show_default=False,
            help=ROOT_HELP,
        ),
    ]
    return run


def load_folder(root: Path) -> Folder:
    from newsletter.errors import ConfigError
    from newsletter.layout import Layout
    from newsletter.settings import load_settings, unknown_names

    layout = Layout.at(root)
    if not layout.root.is_dir():
        raise ConfigError("no such folder", path=root, hint="pass --root DIR, a newsletter folder")
    for name in unknown_names(layout):
        err(f"warning: unknown setting {name} (ignored; see .env.example for the names)")
    return Folder(layout, load_settings(layout))


def fail(exc: BaseException, *, debug: bool) -> NoReturn:
    """One line per problem on stderr, exit 1; the traceback only with --debug."""
    from newsletter.errors import NewsletterError

    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, NewsletterError):
        err("\n".join(f"error: {line}" for line in str(exc).splitlines() or [""]))
    else:
        err(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)")
    raise SystemExit(ExitCode.USER_ERROR)


def quiet_broken_pipe() -> NoReturn:
    """The reader went away (`newsletter report X | head -1`): stop without a word.

    As Python's documentation on SIGPIPE says: point stdout at devnull so that the flush at
    exit does not fail a second time, and exit as a process killed by SIGPIPE would (141).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(ExitCode.BROKEN_PIPE)


@click.group(cls=FolderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newsletter", message="newsletter %(version)s")
def app() -> None:
    """Turn a folder of Markdown articles into a newsletter issue and mail it.

    ISSUE is an issue id (2026-11) or the path of its file (issues/2026-11.toml).
    """


def main() -> None:
    try:
        app.main(prog_name="newsletter")
    except KeyboardInterrupt:  # outside a command's body (which exits 130 itself)
        err("interrupted")
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        quiet_broken_pipe()


@app.command("build-issue")
@click.argument("issue")
@click.option(
    "--strict", is_flag=True, help="Fail on warnings too (errors always fail; nothing is written)."
)
def build_issue_command(folder: Folder, issue: str, strict: bool) -> None:
    """Build build/<id>/ (email.html, email.txt, email.mjml, email.eml, manifest.json)."""
    from newsletter.compose.build import ChecksFailed, build_issue
    from newsletter.console import print_build, print_findings
    from newsletter.layout import issue_id_from_arg

    try:
        result = build_issue(
            folder.layout, issue_id_from_arg(issue), settings=folder.settings, strict=strict
        )
    except ChecksFailed as exc:
        print_findings(exc.findings)
        raise
    print_build(result, folder.layout)


@app.command("preview")
@click.argument("issue", required=False)
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@click.option("--as", "as_email", help="Personalise as this subscriber of the list file.")
@click.option("--subscribers", type=click.Path(path_type=Path), help="The subscriber list file.")
@click.option("--list", "list_issues", is_flag=True, help="List the issues and exit.")
def preview_command(
    folder: Folder,
    issue: str | None,
    port: int,
    no_open: bool,
    as_email: str | None,
    subscribers: Path | None,
    list_issues: bool,
) -> None:
    """Serve a live-reloading preview of an issue on 127.0.0.1 (desktop and mobile width)."""
    from newsletter.layout import issue_id_from_arg
    from newsletter.web import preview

    layout, settings = folder.layout, folder.settings
    if list_issues or issue is None:
        for line in preview.describe_issues(layout):
            out(line)
        if issue is None:
            return
    try:
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
    except KeyboardInterrupt:  # the way to stop a preview: not an interruption
        out("Preview stopped.")


@app.command("open")
@click.argument("issue")
def open_command(folder: Folder, issue: str) -> None:
    """Open the built email.html in the default browser (no server)."""
    from newsletter.layout import issue_id_from_arg
    from newsletter.web import preview

    path = preview.open_built(folder.layout, issue_id_from_arg(issue))
    out(f"Opened {folder.layout.rel(path)}")


@app.command("archive")
@click.option("--all", "include_unsent", is_flag=True, help="Also archive the issues never sent.")
def archive_command(folder: Folder, include_unsent: bool) -> None:
    """Write the public archive (index, one page per sent issue, Atom feed) into site/."""
    from newsletter.archive import write_archive
    from newsletter.console import print_archive

    result = write_archive(folder.layout, settings=folder.settings, include_unsent=include_unsent)
    print_archive(result, folder.layout)


@app.command("send")
@click.argument("issue")
@click.option(
    "--subscribers",
    type=click.Path(path_type=Path),
    help="The list file (default: NEWSLETTER_SUBSCRIBERS).",
)
@click.option("--dry-run", is_flag=True, help="Build every message but send nothing.")
@click.option("--test-to", metavar="ADDRESS", help="Send one [TEST] message to this address only.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages in this run.")
@click.option("--skip-invalid", is_flag=True, help="Send to the valid rows despite invalid ones.")
@click.option("--allow-rebuilt", is_flag=True, help="Resume even though build/<id>/ was rebuilt.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also retry recipients that failed permanently (hard bounces stay suppressed).",
)
def send_command(folder: Folder, issue: str, subscribers: Path | None, **flags: Any) -> int:
    """Send build/<id>/ to every subscriber; run it again to resume after any stop."""
    import asyncio

    from newsletter.layout import issue_id_from_arg
    from newsletter.send.progress import SendProgress
    from newsletter.send.run import SendOptions

    layout, settings = folder.layout, folder.settings
    issue_id = issue_id_from_arg(issue)
    options = SendOptions(subscribers=layout.resolve(subscribers or settings.subscribers), **flags)
    progress = SendProgress(issue_id, interactive=sys.stdout.isatty())
    try:
        result = asyncio.run(_send(folder, issue_id, options, progress))
    finally:
        progress.close()  # a second Ctrl-C too: the terminal gets its cursor back
    return progress.summary(result)


async def _send(
    folder: Folder, issue_id: str, options: SendOptions, progress: SendProgress
) -> SendResult:
    """The send, with Ctrl-C asking it to finish the messages in flight (twice: leave now)."""
    import asyncio
    import signal

    from newsletter.send.run import send_issue

    stop = asyncio.Event()

    def interrupt() -> None:
        if stop.is_set():  # a second Ctrl-C: leave now (exit 130); in-flight ones are journaled
            raise KeyboardInterrupt
        err("stopping: finishing the messages in flight (Ctrl-C again to quit now)")
        progress.interrupted = True
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    return await send_issue(
        folder.layout,
        issue_id,
        settings=folder.settings,
        options=options,
        stop=stop,
        on_start=progress.start,
        on_progress=progress.update,
    )


@app.command("report")
@click.argument("issue")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="Write every recipient's outcome to this CSV file.",
)
def report_command(folder: Folder, issue: str, csv_path: Path | None) -> None:
    """Counts of a send, and the failed recipients with the relay's replies."""
    from newsletter.console import print_report
    from newsletter.layout import issue_id_from_arg
    from newsletter.send.report import read_report, write_csv

    issue_id = issue_id_from_arg(issue)
    report = read_report(folder.layout, issue_id)
    if report is None:
        out(f"{issue_id}: never sent")
        return
    print_report(report)
    if csv_path is not None:
        write_csv(folder.layout, issue_id, csv_path)
        out(f"wrote {csv_path}")


@app.command("unsubscribe")
@click.argument("who", metavar="EMAIL_OR_TOKEN")
@click.option("--subscribers", type=click.Path(path_type=Path), help="The list file.")
def unsubscribe_command(folder: Folder, who: str, subscribers: Path | None) -> None:
    """Mark a subscriber `unsubscribed` in the list file (rewritten atomically)."""
    from newsletter.send.subscribers import mark_unsubscribed

    layout, settings = folder.layout, folder.settings
    path = layout.resolve(subscribers or settings.subscribers)
    secret = settings.secret_key.get_secret_value()
    sub = mark_unsubscribed(path, who, rel=layout.rel(path), secret=secret)
    out(f"{sub.email} is now unsubscribed in {layout.rel(path)}")


@app.command("bounces")
@click.argument("source", metavar="FILE", type=click.Path(path_type=Path))
def bounces_command(folder: Folder, source: Path) -> None:
    """Read bounce notifications (an mbox or a folder of .eml); suppress the hard bounces."""
    from newsletter.console import print_bounces
    from newsletter.send.bounces import process_bounces

    layout = folder.layout
    report = process_bounces(layout.resolve(source), layout=layout, settings=folder.settings)
    print_bounces(report)


@app.command("doctor")
def doctor_command(folder: Folder) -> int:
    """Check the relay, login, DKIM key and headers without sending anything."""
    import asyncio

    from newsletter.console import print_checks
    from newsletter.send.doctor import diagnose

    checks = asyncio.run(diagnose(folder.layout, folder.settings))
    print_checks(checks)
    return ExitCode.USER_ERROR if any(c.severity == "error" for c in checks) else ExitCode.OK


@app.command("import")
@click.argument("source", metavar="SOURCE")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only posts from this date.")
@click.option("--author", "author", metavar="KEY", help="The author of posts whose own is unknown.")
@click.option("--category", metavar="NAME", help="The category of every imported post.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
def import_command(
    folder: Folder,
    source: str,
    since: Any,
    author: str | None,
    category: str | None,
    dry_run: bool,
) -> None:
    """Import the posts of an RSS/Atom feed or a WordPress export into content/articles/."""
    from newsletter.compose.importer import ImportOptions, import_feed

    options = ImportOptions(
        since=since.date() if since else None, author=author, category=category, dry_run=dry_run
    )
    done = import_feed(source, layout=folder.layout, options=options)
    for item in done:
        out(f"{item.status:<9} {item.path}  {item.title}")
    counts = {s: sum(i.status == s for i in done) for s in ("written", "updated", "unchanged")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    out(f"{summary}{' (dry run: nothing written)' if dry_run else ''}")
