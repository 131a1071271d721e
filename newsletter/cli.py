"""The `newsletter` command: a thin shell over the core. Each command imports its stage late."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from newsletter.compose.build import BuildResult
    from newsletter.compose.checks import Finding
    from newsletter.layout import Layout
    from newsletter.send.run import SendResult
    from newsletter.settings import Settings


class ExitCode(IntEnum):
    OK = 0
    USER_ERROR = 1
    USAGE_ERROR = 2
    SOME_RECIPIENTS_FAILED = 3


ROOT_HELP = "The newsletter folder (default: the current directory)."


def common(command: Callable[..., None]) -> Callable[..., None]:
    """--root and --debug, on every command."""
    command = click.option("--debug", is_flag=True, help="Show a traceback on errors.")(command)
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=False,
        help=ROOT_HELP,
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newsletter", message="newsletter %(version)s")
def app() -> None:
    """Turn a folder of Markdown articles into a newsletter issue and mail it.

    ISSUE is an issue id (2026-11) or the path of its file (issues/2026-11.toml).
    """


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
        err(
            f"error: {exc}"
            if "\n" not in str(exc)
            else "\n".join(f"error: {line}" for line in str(exc).splitlines())
        )
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
@click.argument("issue")
@click.option(
    "--strict", is_flag=True, help="Fail on warnings too (errors always fail; nothing is written)."
)
@common
def build_issue_command(issue: str, strict: bool, root: Path, debug: bool) -> None:
    """Build build/<id>/ (email.html, email.txt, email.mjml, email.eml, manifest.json)."""
    from newsletter.compose.build import ChecksFailed, build_issue
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
    errors = sum(f.severity == "error" for f in findings)
    counts = [f"{errors} error(s)"] if errors else []
    if len(findings) > errors:
        counts.append(f"{len(findings) - errors} warning(s)")
    out(f"  checks: {', '.join(counts)}")
    for f in findings:
        out(f"  {f.severity} [{f.code}] {f.where}: {f.message}")


def main() -> None:
    try:
        app.main(prog_name="newsletter")
    except KeyboardInterrupt:
        err("interrupted")
        raise SystemExit(130) from None


@app.command("preview")
@click.argument("issue", required=False)
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@click.option("--as", "as_email", help="Personalise as this subscriber of the list file.")
@click.option("--subscribers", type=click.Path(path_type=Path), help="The subscriber list file.")
@click.option("--list", "list_issues", is_flag=True, help="List the issues and exit.")
@common
def preview_command(
    issue: str | None,
    port: int,
    no_open: bool,
    as_email: str | None,
    subscribers: Path | None,
    list_issues: bool,
    root: Path,
    debug: bool,
) -> None:
    """Serve a live-reloading preview of an issue on 127.0.0.1 (desktop and mobile width)."""
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg

    try:
        layout, settings = setup(root, debug)
        from newsletter.web import preview

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
@click.argument("issue")
@common
def open_command(issue: str, root: Path, debug: bool) -> None:
    """Open the built email.html in the default browser (no server)."""
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg

    try:
        layout, _settings = setup(root, debug)
        from newsletter.web import preview

        path = preview.open_built(layout, issue_id_from_arg(issue))
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    out(f"Opened {path}")


@app.command("archive")
@click.option("--all", "include_unsent", is_flag=True, help="Also archive the issues never sent.")
@common
def archive_command(include_unsent: bool, root: Path, debug: bool) -> None:
    """Write the public archive (index, one page per sent issue, Atom feed) into site/."""
    from newsletter.archive import write_archive
    from newsletter.errors import NewsletterError

    try:
        layout, settings = setup(root, debug)
        result = write_archive(layout, settings=settings, include_unsent=include_unsent)
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    out(f"Archive {layout.rel(result.site_dir)}/ — {len(result.issues)} issue(s)")
    for issue in result.issues:
        sent = f"sent {_iso(issue.sent_at)[:10]}" if issue.sent_at is not None else "not sent"
        out(f"  {issue.id}  {issue.date.isoformat()}  {issue.subject}  [{sent}]")
    report = result.report
    removed = f", {len(report.removed)} removed" if report.removed else ""
    out(f"  {len(report.written)} written, {len(report.unchanged)} unchanged{removed}")


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
@common
def send_command(
    issue: str,
    subscribers: Path | None,
    dry_run: bool,
    test_to: str | None,
    limit: int | None,
    skip_invalid: bool,
    allow_rebuilt: bool,
    retry_failed: bool,
    root: Path,
    debug: bool,
) -> None:
    """Send build/<id>/ to every subscriber; run it again to resume after any stop."""
    import asyncio
    import signal

    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg
    from newsletter.send.progress import SendProgress
    from newsletter.send.run import SendOptions, send_issue

    try:
        layout, settings = setup(root, debug)
        issue_id = issue_id_from_arg(issue)
        options = SendOptions(
            subscribers=layout.resolve(subscribers or settings.subscribers),
            dry_run=dry_run,
            test_to=test_to,
            limit=limit,
            skip_invalid=skip_invalid,
            allow_rebuilt=allow_rebuilt,
            retry_failed=retry_failed,
        )
        progress = SendProgress(issue_id, interactive=sys.stdout.isatty())

        async def run() -> SendResult:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def interrupt() -> None:
                if stop.is_set():  # a second Ctrl-C: leave now; in-flight ones are journaled
                    raise KeyboardInterrupt
                err("stopping: finishing the messages in flight (Ctrl-C again to quit now)")
                progress.interrupted = True
                stop.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, interrupt)
            return await send_issue(
                layout,
                issue_id,
                settings=settings,
                options=options,
                stop=stop,
                on_start=progress.start,
                on_progress=progress.update,
            )

        result = asyncio.run(run())
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    progress.close()
    code = progress.summary(result)
    raise SystemExit(code)


@app.command("report")
@click.argument("issue")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="Write every recipient's outcome to this CSV file.",
)
@common
def report_command(issue: str, csv_path: Path | None, root: Path, debug: bool) -> None:
    """Counts of a send, and the failed recipients with the relay's replies."""
    from newsletter.errors import NewsletterError
    from newsletter.layout import issue_id_from_arg
    from newsletter.send.classify import enhanced_code
    from newsletter.send.journal import Journal, Status

    try:
        layout, _settings = setup(root, debug)
        issue_id = issue_id_from_arg(issue)
        if not layout.journal_path.exists():
            out(f"{issue_id}: never sent")
            return
        journal = Journal.open(layout, issue_id)
        try:
            counts = journal.counts()
            total = sum(counts.values())
            if not total:
                out(f"{issue_id}: never sent")
                return
            out(
                f"{issue_id}: {total} recipient(s) — "
                + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
            )
            problems = list(journal.rows([Status.FAILED, Status.DEFERRED, Status.SENDING]))
            if problems:
                by_code: dict[str, int] = {}
                by_domain: dict[str, int] = {}
                for row in problems:
                    code = f"{row.code or '-'} {enhanced_code(row.reply) or ''}".strip()
                    by_code[code] = by_code.get(code, 0) + 1
                    domain = row.email.rpartition("@")[2].lower()
                    by_domain[domain] = by_domain.get(domain, 0) + 1
                out("  by code:   " + _tally(by_code))
                out("  by domain: " + _tally(by_domain))
            for row in problems:
                out(f"  {row.status:<8} {row.email}  {row.reply or '(no reply)'}")
            if csv_path is not None:
                import csv

                with open(csv_path, "w", encoding="utf-8", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(
                        ["email", "status", "attempts", "code", "reply", "message_id", "updated"]
                    )
                    for row in journal.rows():
                        w.writerow(
                            [
                                row.email,
                                row.status,
                                row.attempts,
                                row.code or "",
                                row.reply,
                                row.message_id,
                                _iso(row.updated),
                            ]
                        )
                out(f"wrote {csv_path}")
        finally:
            journal.close()
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")


@app.command("unsubscribe")
@click.argument("who", metavar="EMAIL_OR_TOKEN")
@click.option("--subscribers", type=click.Path(path_type=Path), help="The list file.")
@common
def unsubscribe_command(who: str, subscribers: Path | None, root: Path, debug: bool) -> None:
    """Mark a subscriber `unsubscribed` in the list file (rewritten atomically)."""
    from newsletter.errors import NewsletterError
    from newsletter.send.subscribers import mark_unsubscribed

    try:
        layout, settings = setup(root, debug)
        path = layout.resolve(subscribers or settings.subscribers)
        sub = mark_unsubscribed(
            path, who, rel=layout.rel(path), secret=settings.secret_key.get_secret_value()
        )
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    out(f"{sub.email} is now unsubscribed in {layout.rel(path)}")


@app.command("bounces")
@click.argument("source", metavar="FILE", type=click.Path(path_type=Path))
@common
def bounces_command(source: Path, root: Path, debug: bool) -> None:
    """Read bounce notifications (an mbox or a folder of .eml); suppress the hard bounces."""
    from newsletter.errors import NewsletterError
    from newsletter.send.bounces import process_bounces

    try:
        layout, settings = setup(root, debug)
        report = process_bounces(layout.resolve(source), layout=layout, settings=settings)
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    for b in report.bounces:
        if b.skipped:
            out(f"{b.source}: skipped: {b.note}")
            continue
        if b.note:
            state = f"not suppressed: {b.note}"
        elif b.hard:
            state = "suppressed" if b.added else "already suppressed"
        else:
            state = "not suppressed"
        out(f"{b.source}: {b.address} {b.verdict or 'unknown'} {b.code} ({state})")
    out(
        f"{report.messages} message(s): {len(report.hard)} hard bounce(s), {report.added} "
        f"added to {report.suppression_file}; {len(report.others)} other(s) not suppressed; "
        f"{len(report.skipped)} skipped"
    )


@app.command("doctor")
@common
def doctor_command(root: Path, debug: bool) -> None:
    """Check the relay, login, DKIM key and headers without sending anything."""
    import asyncio

    from newsletter.errors import NewsletterError
    from newsletter.send.doctor import diagnose

    try:
        layout, settings = setup(root, debug)
        checks = asyncio.run(diagnose(layout, settings))
    except (NewsletterError, OSError) as exc:
        fail(exc, debug=debug)
    for c in checks:
        out(f"{c.level:<7} {c.name}: {c.message}")
    errors = sum(c.level == "error" for c in checks)
    warnings = sum(c.level == "warning" for c in checks)
    out(f"{len(checks) - errors - warnings} ok, {warnings} warning(s), {errors} error(s)")
    raise SystemExit(ExitCode.USER_ERROR if errors else ExitCode.OK)
