"""One share of the list delivered: the pending readers, through the relays, journaled.

`send_list` runs one share (the whole list) in its own process; with NEWSLETTER_SEND_PROCESSES
each worker process (`processes.py`) runs `deliver_share` for the readers it owns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from newsletter.layout import Layout
from newsletter.send import changes, suppressions
from newsletter.send.classify import enhanced_code
from newsletter.send.committer import WriterProcess
from newsletter.send.delivery import DeliveryReport, HardBounceHook, ProgressHook, deliver
from newsletter.send.digests import DigestSet, digest
from newsletter.send.engine import Policy
from newsletter.send.journal import Journal, Status
from newsletter.send.letters import Outgoing
from newsletter.send.message import MessageTemplate
from newsletter.send.options import SendOptions, SendResult
from newsletter.send.relays import Relay
from newsletter.send.subscribers import Subscriber, unique_mailable
from newsletter.send.transport import Outcome
from newsletter.settings import Settings


@dataclass(frozen=True)
class Share:
    """Process `index` of `count`: the recipients whose digest is `index` modulo `count`."""

    index: int
    count: int

    def owns(self, digest: int) -> bool:
        return self.count == 1 or digest % self.count == self.index

    def of_relay(self, relay: Relay) -> Relay:
        """This share of a relay: its connections, rate and daily quota divided."""
        if self.count == 1:
            return relay
        quota = relay.daily_quota
        return relay.model_copy(update={
            "concurrency": max(relay.concurrency // self.count, 1),
            "rate": relay.rate / self.count,
            "daily_quota": None if quota is None else max(quota // self.count, 1),
        })


async def deliver_share(
    layout: Layout,
    outgoing: Outgoing,
    *,
    settings: Settings,
    options: SendOptions,
    share: Share,
    stop: asyncio.Event,
    on_progress: ProgressHook | None,
    writer_link: tuple[int, int] | None = None,
) -> tuple[DeliveryReport, dict[str, int]]:
    """One worker process's part of a send (processes.py): its share of the list, journaled
    through its own connection to the journal (the parent holds the lock)."""
    issue_id = outgoing.template.issue_id
    result = SendResult(issue_id=issue_id, report=DeliveryReport())
    journal = Journal.open(layout, issue_id)
    writer = WriterProcess.attach(*writer_link) if writer_link is not None else None
    try:
        report = await deliver_readers(
            outgoing, journal, layout=layout, settings=settings, options=options,
            result=result, share=share, stop=stop, on_start=None, on_progress=on_progress,
            writer=writer,
        )
    finally:
        journal.close()
    return report, {"already_done": result.already_done, "suppressed": result.suppressed}


async def deliver_readers(
    outgoing: Outgoing,
    journal: Journal,
    *,
    layout: Layout,
    settings: Settings,
    options: SendOptions,
    result: SendResult,
    share: Share,
    stop: asyncio.Event | None,
    on_start: Callable[[SendResult], None] | None,
    on_progress: ProgressHook | None,
    writer: WriterProcess | None = None,
) -> DeliveryReport:
    """`writer`: the journal writer process, if one was started before (committer.py)."""
    from newsletter.send.relays import RelayPool, load_relays
    from newsletter.send.transport import SmtpTransport

    suppression_path = layout.resolve(settings.suppressions)
    done = journal.final_digests(include_failed=not options.retry_failed)
    readers = still_to_mail(layout, settings, options, result, done=done, share=share)
    relays = [share.of_relay(r) for r in load_relays(settings, project_file=layout.toml_file)]
    pool = RelayPool(relays, used_today=journal.sent_today())
    if on_start is not None:
        on_start(result)
    limit = options.limit
    if limit is not None and share.count > 1:  # never more than --limit in all
        limit = limit // share.count + (share.index < limit % share.count)
    return await deliver(
        outgoing,
        readers,
        journal=journal,
        transports={
            r.label: [SmtpTransport(r.settings(settings)) for _ in range(r.concurrency)]
            for r in relays
        },
        pool=pool,
        writer=writer,
        rate=settings.rate_per_second / share.count,
        policy=Policy(
            max_attempts=settings.max_attempts,
            retry_delay=settings.retry_delay,
            max_consecutive_failures=settings.max_consecutive_failures,
        ),
        stop=stop,
        on_progress=on_progress,
        limit=limit,
        on_hard_bounce=_suppressor(suppression_path, result.issue_id),
    )


def outgoing_for(template: MessageTemplate, *, settings: Settings, layout: Layout) -> Outgoing:
    """The issue's message with its DKIM signer (prepared once for the issue) and VERP.

    A bad key or bounce setting raises here, before anything leaves."""
    from newsletter.send.dkim import Signer
    from newsletter.send.dkim_issue import IssueSigner
    from newsletter.send.verp import Verp

    signer = Signer.from_settings(settings, layout=layout)
    return Outgoing(
        template,
        signer=None if signer is None else IssueSigner.for_issue(signer, static_pieces(template)),
        verp=Verp.from_settings(settings),
    )


def static_pieces(template: MessageTemplate) -> list[bytes]:
    """The template's pre-encoded body pieces, for `IssueSigner` (none: the plain way)."""
    pieces = getattr(template, "_body_pieces", [])  # message.py's; a rename only slows signing
    return [piece for piece, _ in pieces if isinstance(piece, bytes)]


def other_failures(journal: Journal, suppression_path: Path, layout: Layout) -> int:
    """Failed recipients whose address is not suppressed (re-read: this run appended)."""
    now = suppressions.load(suppression_path, rel=layout.rel(suppression_path))
    return sum(digest(row.email) not in now for row in journal.rows([Status.FAILED]))


def still_to_mail(
    layout: Layout,
    settings: Settings,
    options: SendOptions,
    result: SendResult,
    *,
    done: DigestSet,
    share: Share = Share(0, 1),
) -> Iterator[Subscriber]:
    """Whom a send mails now (and a dry run counts): the list's mailable readers but those
    with a final outcome (`done`, from the journal), the suppressed ones and those who
    unsubscribed through `serve` since; the ones left out are counted in `result`."""
    suppression_path = layout.resolve(settings.suppressions)
    suppressed = suppressions.load(suppression_path, rel=layout.rel(suppression_path))
    return _pending(options.subscribers, layout.rel(options.subscribers), done,
                    suppressed, result, share,
                    left=changes.Recent(changes.path_in(layout.state_dir)))


def _pending(
    path: Path,
    rel: str,
    done: DigestSet,
    suppressed: DigestSet,
    result: SendResult,
    share: Share,
    left: Container[str] = frozenset(),
) -> Iterator[Subscriber]:
    """The list's mailable rows without the final and the suppressed ones (counted as met),
    nor those who unsubscribed through `serve` since (`left`, asked as each one is queued)."""
    for sub in unique_mailable(path, rel=rel):
        d = digest(sub.email)
        if not share.owns(d):
            continue
        if d in done:
            result.already_done += 1
        elif d in suppressed or sub.email in left:
            result.suppressed += 1
        else:
            yield sub


def _suppressor(path: Path, issue_id: str) -> HardBounceHook:
    """Appends a hard-bounced address to the suppression file (off the event loop)."""

    async def suppress(sub: Subscriber, outcome: Outcome) -> None:
        # The enhanced code (5.1.1) says why, as `newsletter bounces` records it (issue 15).
        code = enhanced_code(outcome.reply) or str(outcome.code or "")
        entry = suppressions.Suppression(
            sub.email, "hard-bounce", code, issue_id, suppressions.today()
        )
        await asyncio.to_thread(suppressions.append, path, [entry])

    return suppress
