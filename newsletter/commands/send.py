"""Commands of the send wing: send, report, unsubscribe, bounces, doctor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from newsletter.clikit import GIVEN_PATH, Folder, command
from newsletter.console import err, out
from newsletter.errors import ExitCode

if TYPE_CHECKING:
    from newsletter.send.options import SendOptions, SendResult
    from newsletter.send.progress import SendProgress


@command("send")
@click.argument("issue")
@click.option(
    "--subscribers",
    type=GIVEN_PATH,
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
@click.option(
    "--resend",
    is_flag=True,
    help="Send although the issue shows it was sent and the journal has no record of it.",
)
def send_command(folder: Folder, issue: str, subscribers: Path | None, **flags: Any) -> int:
    """Send build/<id>/ to every subscriber; run it again to resume after any stop."""
    import asyncio

    from newsletter.layout import issue_id_from_arg
    from newsletter.send.options import SendOptions
    from newsletter.send.progress import SendProgress

    issue_id = issue_id_from_arg(issue)
    options = SendOptions(subscribers=folder.list_file(subscribers), **flags)
    progress = SendProgress(issue_id, interactive=sys.stdout.isatty())
    try:
        result = asyncio.run(_send(folder, issue_id, options, progress))
    finally:
        progress.close()  # a second Ctrl-C too: the terminal gets its cursor back
    if result.list_warning:
        err(f"warning: {result.list_warning}")
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


@command("report")
@click.argument("issue")
@click.option(
    "--csv",
    "csv_path",
    type=GIVEN_PATH,
    help="Write every recipient's outcome to this CSV file.",
)
@click.option(
    "--subscribers",
    type=GIVEN_PATH,
    help="The list file, to count the recipients not yet tried (default: NEWSLETTER_SUBSCRIBERS).",
)
def report_command(
    folder: Folder, issue: str, csv_path: Path | None, subscribers: Path | None
) -> None:
    """Counts of a send, the failed recipients with the relay's replies, and who is left."""
    from newsletter.console import print_report
    from newsletter.layout import issue_id_from_arg
    from newsletter.send.report import read_report, untried, write_csv

    layout, settings = folder.layout, folder.settings
    issue_id = issue_id_from_arg(issue)
    report = read_report(layout, issue_id)
    if report is None:
        unknown = layout.unknown_issue(issue_id)
        if unknown is not None:
            raise unknown
        out(f"{issue_id}: never sent")
        return
    path = folder.list_file(subscribers)
    left: int | None = None
    if subscribers is not None or path.exists():  # read first: an unusable list prints nothing
        suppression_file = layout.resolve(settings.suppressions)
        left = untried(layout, issue_id, subscribers=path, suppression_file=suppression_file)
    print_report(report)
    if left is not None:
        out(f"  not yet tried: {left} (in {layout.rel(path)}; `newsletter send {issue_id}`)")
    if csv_path is not None:
        write_csv(layout, issue_id, csv_path)
        out(f"wrote {layout.rel(csv_path)}")


@command("unsubscribe")
@click.argument("who", metavar="EMAIL_OR_TOKEN")
@click.option("--subscribers", type=GIVEN_PATH, help="The list file.")
def unsubscribe_command(folder: Folder, who: str, subscribers: Path | None) -> None:
    """Mark a subscriber `unsubscribed` in the list file (every row of the address)."""
    import time

    from newsletter.errors import ConfigError
    from newsletter.send.changes import note_applied, path_in, unsubscribe_noted
    from newsletter.send.liststore import address_of, set_status

    layout, settings = folder.layout, folder.settings
    path = folder.list_file(subscribers)
    secret = settings.secret_key.get_secret_value()
    # A raw address is accepted here, from whoever runs the command; the web takes tokens only.
    by_token = "@" not in who
    if by_token and not secret:
        raise ConfigError(
            f"{who!r} is not an address, and no NEWSLETTER_SECRET_KEY is set to check a token",
            hint="give the subscriber's address",
        )
    rel = layout.rel(path)
    if by_token:  # never a raw address through this door: the token's own check
        changed = set_status(path, who, "unsubscribed", secret=secret, by_token=True, rel=rel)
        address = address_of(path, who, secret=secret, rel=rel) if changed else None
        if address:  # logged with its time, as below
            note_applied(path_in(layout.state_dir), address, "unsubscribe", "cli", time.time())
    else:  # logged with its time: a running send skips them, an old confirmation link too
        changed = unsubscribe_noted(path, layout.state_dir, who.strip(), source="cli", rel=rel)
    state = "is now unsubscribed" if changed else "was already unsubscribed"
    shown = "the subscriber of this token" if by_token else who.strip()
    out(f"{shown} {state} in {rel} ({changed} row(s) changed)")


@command("bounces")
@click.argument("source", metavar="FILE", type=GIVEN_PATH)
def bounces_command(folder: Folder, source: Path) -> None:
    """Read bounces (an mbox, a folder of .eml, or one .eml); suppress the hard bounces."""
    from newsletter.console import print_bounces
    from newsletter.send.bounces import process_bounces

    report = process_bounces(source, layout=folder.layout, settings=folder.settings)
    print_bounces(report)


@command("doctor")
def doctor_command(folder: Folder) -> int:
    """Check the relay, login, DKIM key and headers without sending anything."""
    import asyncio

    from newsletter.console import print_checks
    from newsletter.send.doctor import diagnose

    checks = asyncio.run(diagnose(folder.layout, folder.settings))
    print_checks(checks)
    return ExitCode.USER_ERROR if any(c.severity == "error" for c in checks) else ExitCode.OK


# -- issue 11: start a newsletter, start an issue ------------------------------------------------




@command("inbox")
@click.argument("source", metavar="PATH", required=False, type=GIVEN_PATH)
def inbox_command(folder: Folder, source: Path | None) -> None:
    """Read the bounce mailbox (IMAP, or a Maildir or mbox PATH) and act on each message once."""
    from newsletter.console import print_inbox
    from newsletter.send.inbox import process_inbox

    print_inbox(process_inbox(source, layout=folder.layout, settings=folder.settings))


COMMANDS = [
    send_command, report_command, unsubscribe_command, bounces_command, doctor_command,
    inbox_command,
]
