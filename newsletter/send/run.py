"""`newsletter send`: check everything, then one of three modes.

send_issue(...)      the entry point the CLI calls; checks, then picks the mode:
  send_test(...)     --test-to: one message, to one address, no journal
  dry_run(...)       --dry-run: every message built, then dropped
  send_list(...)     the real send: journaled, resumable, suppressions honoured
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import (
    BuildError,
    ConfigError,
    DeliveryError,
    ErrorGroup,
    NewsletterError,
    SubscriberError,
)
from newsletter.layout import Layout
from newsletter.manifest import Manifest
from newsletter.send.delivery import DeliveryReport, ProgressHook
from newsletter.send.evidence import mark_started, sent_evidence
from newsletter.send.journal import Journal, Status, final_digests
from newsletter.send.letters import Outgoing
from newsletter.send.message import SAMPLE_READER, MessageTemplate, missing_fields
from newsletter.send.options import SendOptions, SendResult
from newsletter.send.share import (
    Share,
    deliver_readers,
    other_failures,
    outgoing_for,
    still_to_mail,
)
from newsletter.send.subscribers import ListSummary, Subscriber, summarize, unique_mailable
from newsletter.settings import Settings

if TYPE_CHECKING:
    from newsletter.send.committer import WriterProcess
    from newsletter.send.signing import OffLoopSigner


def prepare(
    layout: Layout, issue_id: str, *, settings: Settings, options: SendOptions
) -> tuple[MessageTemplate, ListSummary, Manifest]:
    """Everything checked before the first message: the build, the list, the fields."""
    build_dir = layout.build_dir(issue_id)
    manifest = Manifest.read(build_dir)
    settings.require_sender()  # issue 11: no sample identity to fall back on
    prefix = "[TEST] " if options.test_to else ""
    template = MessageTemplate.from_build(build_dir, settings=settings, subject_prefix=prefix)
    if not (options.dry_run or options.test_to):
        require_postal_address(build_dir, settings=settings)
    rel = layout.rel(options.subscribers)
    summary = summarize(options.subscribers, rel=rel)
    # --test-to mails one address given on the command line: invalid rows do not matter
    if summary.invalid and not (options.skip_invalid or options.test_to):
        shown = summary.invalid[:20]
        errors: list[NewsletterError] = [
            SubscriberError(row.message, path=rel, line=row.line) for row in shown
        ]
        more = len(summary.invalid) - len(shown)
        errors.append(
            SubscriberError(
                f"{len(summary.invalid)} invalid row(s)"
                f"{f' ({more} more not shown)' if more else ''}; "
                "nothing was sent",
                path=rel,
                hint="fix them, or pass --skip-invalid to send to the valid rows only",
            )
        )
        raise ErrorGroup(errors)
    missing = missing_fields(template, summary.columns)
    if missing:
        raise SubscriberError(
            f"the email uses {', '.join('{{ ' + m + ' }}' for m in missing)} but the list has "
            f"no such column",
            path=rel,
            line=1,
            hint="add the column to the list file, or remove it from the templates and rebuild",
        )
    return template, summary, manifest


def require_postal_address(build_dir: Path, *, settings: Settings) -> None:
    """CAN-SPAM (US) and the LCEN (France): a mailing shows the sender's postal address.

    `build-issue` only warns (the sample must build on a fresh clone); sending refuses,
    and also refuses a build made before the address was set.
    """
    address = " ".join(settings.postal_address.split())
    if not address:
        raise ConfigError(
            "no postal address: set postal_address (or NEWSLETTER_POSTAL_ADDRESS) and rebuild; "
            "nothing was sent",
            path="newsletter.toml",
            hint="CAN-SPAM and the French LCEN want one in every email; "
            "--dry-run and --test-to work without it",
        )
    for name in ("email.html", "email.txt"):
        body = (build_dir / name).read_text(encoding="utf-8")
        if name == "email.html":
            body = html.unescape(re.sub(r"<[^>]+>", " ", body))
        if address not in " ".join(body.split()):
            raise BuildError(
                f"{name} does not show NEWSLETTER_POSTAL_ADDRESS; nothing was sent",
                path=f"build/{build_dir.name}",
                hint=f"rebuild with `newsletter build-issue {build_dir.name}`",
            )


async def send_issue(
    layout: Layout,
    issue_id: str,
    *,
    settings: Settings,
    options: SendOptions,
    stop: asyncio.Event | None = None,
    on_start: Callable[[SendResult], None] | None = None,
    on_progress: ProgressHook | None = None,
) -> SendResult:
    """`newsletter send`: check, then mail every pending recipient and journal each outcome."""
    writer = None
    if not (options.dry_run or options.test_to) and settings.send_processes == 1:
        from newsletter.send.committer import WriterProcess

        # Its start-up overlaps the checks; it opens the journal at the first commit only.
        writer = WriterProcess.spawn(layout.journal_path)
    try:
        return await _send_issue(
            layout, issue_id, settings=settings, options=options, stop=stop,
            on_start=on_start, on_progress=on_progress, writer=writer,
        )
    finally:
        if writer is not None:
            await writer.close()


async def _send_issue(
    layout: Layout,
    issue_id: str,
    *,
    settings: Settings,
    options: SendOptions,
    stop: asyncio.Event | None,
    on_start: Callable[[SendResult], None] | None,
    on_progress: ProgressHook | None,
    writer: WriterProcess | None,
) -> SendResult:
    template, summary, built = prepare(layout, issue_id, settings=settings, options=options)
    outgoing = outgoing_for(template, settings=settings, layout=layout)
    result = SendResult(
        issue_id=issue_id,
        report=DeliveryReport(),
        mailable=summary.mailable,
        skipped_invalid=len(summary.invalid),
        not_subscribed=summary.not_subscribed,
        duplicates=summary.duplicates,
        list_warning=summary.warning,
        list_file=layout.rel(options.subscribers),
        dry_run=options.dry_run,
        test_to=options.test_to,
    )
    if options.test_to:
        return await send_test(
            outgoing, options.test_to, settings=settings, layout=layout, options=options,
            result=result,
        )
    if options.dry_run:
        return dry_run(
            outgoing, options, layout=layout, settings=settings, result=result,
            on_progress=on_progress,
        )
    return await send_list(
        outgoing,
        layout=layout,
        settings=settings,
        options=options,
        result=result,
        built=built,
        stop=stop,
        on_start=on_start,
        on_progress=on_progress,
        writer=writer,
    )


async def send_test(
    outgoing: Outgoing,
    to: str,
    *,
    settings: Settings,
    layout: Layout,
    options: SendOptions,
    result: SendResult,
) -> SendResult:
    """--test-to: the first reader's message (name, fields), to `to` only; nothing journaled."""
    from newsletter.send.relays import load_relays
    from newsletter.send.single import send_one

    rel = layout.rel(options.subscribers)
    first = next(unique_mailable(options.subscribers, rel=rel), SAMPLE_READER)
    address = check_test_address(to)
    reader = Subscriber(email=address, name=first.name, fields=first.fields)
    data = outgoing.data(reader)
    relays = load_relays(settings, project_file=layout.toml_file)
    outcome, relay = await send_one(
        outgoing.sender(reader), address, data, relays=relays, settings=settings, wire_ready=True
    )
    if len(relays) > 1:
        result.report.by_relay[relay] = 1
    result.report.count(address, Status(outcome.status), outcome)
    result.report.finished = result.report.clock.now()
    return result


def dry_run(
    outgoing: Outgoing,
    options: SendOptions,
    *,
    layout: Layout,
    settings: Settings,
    result: SendResult,
    on_progress: ProgressHook | None,
) -> SendResult:
    """--dry-run: everything but the SMTP conversation: each message the send would mail now
    (not the readers with an outcome already, nor the suppressed) is built, then dropped.
    The journal is only read, and only if it exists."""
    from newsletter.send.relays import load_relays

    load_relays(settings, project_file=layout.toml_file)  # a bad list fails the send: here too
    report = result.report
    size = 0
    done = final_digests(layout.journal_path, result.issue_id,
                         include_failed=not options.retry_failed)  # read-only: writes nothing
    for n, sub in enumerate(still_to_mail(layout, settings, options, result, done=done)):
        if options.limit is not None and n >= options.limit:
            break
        size += len(outgoing.data(sub))
        report.sent += 1
        if on_progress is not None and report.sent % 1000 == 0:
            on_progress(report)
    report.finished = report.clock.now()
    result.totals = {"bytes": size}
    return result


async def send_list(
    outgoing: Outgoing,
    *,
    layout: Layout,
    settings: Settings,
    options: SendOptions,
    result: SendResult,
    built: Manifest,
    stop: asyncio.Event | None,
    on_start: Callable[[SendResult], None] | None,
    on_progress: ProgressHook | None,
    writer: WriterProcess | None = None,
) -> SendResult:
    """The real send: every pending recipient (never a final one, never a suppressed one);
    `built`: the build's manifest (its content hash and articles go into the journal);
    `writer`: the journal writer process, started early."""
    from newsletter.send.processes import ShareSpec, deliver_in_processes

    processes = settings.send_processes
    off_loop = _signing_workers(outgoing, writer) if processes == 1 else None
    if off_loop is not None:
        outgoing = dataclasses.replace(outgoing, off_loop=off_loop)
    journal = Journal.open(layout, outgoing.template.issue_id)
    try:
        journal.lock()
        if not journal.knows_issue() and not options.resend:
            refuse_unrecorded_resend(layout, journal, settings=settings)
        journal.bind(
            built.content_hash, allow_rebuilt=options.allow_rebuilt, articles=built.articles
        )
        mark_started(layout.build_dir(result.issue_id), result.issue_id, now=time.time())
        result.resent_in_flight = journal.in_flight()
        if processes > 1:
            if on_start is not None:
                on_start(result)
            spec = ShareSpec(str(layout.root), result.issue_id, settings, options, outgoing)
            result.report, counts = await deliver_in_processes(
                spec, processes=processes, stop=stop, on_progress=on_progress
            )
            result.already_done = counts.get("already_done", 0)
            result.suppressed = counts.get("suppressed", 0)
        else:
            result.report = await deliver_readers(
                outgoing, journal, layout=layout, settings=settings, options=options,
                result=result, share=Share(0, 1), stop=stop, on_start=on_start,
                on_progress=on_progress, writer=writer,
            )
        result.totals = journal.counts()
        final = result.totals[Status.SENT] + result.totals[Status.FAILED]
        result.remaining = max(result.mailable - result.suppressed - final, 0)
        suppression_path = layout.resolve(settings.suppressions)
        result.other_failures = other_failures(journal, suppression_path, layout)
        return result
    finally:
        journal.close()
        if off_loop is not None:
            off_loop.close()


def _signing_workers(outgoing: Outgoing, writer: WriterProcess | None) -> OffLoopSigner | None:
    """The DKIM key operation in worker processes (with a spare core), forked before the
    journal is opened and locked (a worker must not inherit the lock), closing the early
    journal writer's pipes (it would not end while a worker held them)."""
    from newsletter.send.signing import OffLoopSigner, spare_cores

    if not (outgoing.signer and OffLoopSigner.worth_it(outgoing.signer)):
        return None
    inherited = writer.descriptors() if writer is not None else []
    return OffLoopSigner(
        outgoing.signer, processes=spare_cores(), close_in_worker=inherited
    ).start()


def refuse_unrecorded_resend(layout: Layout, journal: Journal, *, settings: Settings) -> None:
    """A first send by the journal's account, of an issue something else shows was sent: the
    journal was lost (state/ deleted), and sending would mail everyone again (issue 13)."""
    evidence = sent_evidence(layout, journal.issue_id, settings=settings)
    if evidence:
        raise DeliveryError(
            f"issue {journal.issue_id} was already sent but the send journal has no record of "
            f"it: {'; '.join(evidence)}; nothing was sent",
            path=layout.rel(journal.path),
            hint="restore state/ from a backup to resume, or pass --resend to mail everyone "
            "again",
        )


def check_test_address(address: str) -> str:
    from newsletter.send.subscribers import check_address

    try:
        return check_address(address)
    except ValueError as exc:
        raise SubscriberError(
            f"--test-to: invalid address '{address}': {exc}", hint="give one valid address"
        ) from None
