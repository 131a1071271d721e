"""Who gets the issue, how fast, and how far: workers over the pending recipients.

Each worker owns one SMTP connection (`transport`). For every recipient it commits `sending`
to the journal, sends, and commits the outcome before its next message leaves; the outcome
of one message and the `sending` mark of the next go in the same commit, and the commits of
all workers are grouped, so durability costs little. Temporary failures are retried with
exponential backoff and jitter on a fresh connection; a run of failures stops the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import html
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from newsletter.errors import (
    BuildError,
    ConfigError,
    DeliveryError,
    ErrorGroup,
    NewsletterError,
    SubscriberError,
)
from newsletter.layout import Layout
from newsletter.send import suppressions
from newsletter.send.classify import Verdict, classify
from newsletter.send.digests import digest
from newsletter.send.journal import Journal, Write
from newsletter.send.message import SAMPLE_READER, Manifest, MessageTemplate, missing_fields
from newsletter.send.subscribers import ListSummary, Subscriber, summarize, unique_mailable
from newsletter.send.transport import Outcome
from newsletter.settings import Settings

if TYPE_CHECKING:
    from newsletter.send.dkim import Signer
    from newsletter.send.verp import Verp


class Transport(Protocol):
    async def send(
        self, sender: str, recipient: str, data: bytes, *, wire_ready: bool = False
    ) -> Outcome: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    """What leaves for one recipient: the envelope sender, and the bytes, signed if DKIM is on."""

    template: MessageTemplate
    signer: Signer | None = None
    verp: Verp | None = None

    def sender(self, sub: Subscriber) -> str:
        if self.verp is None:
            return self.template.sender_address
        return self.verp.return_path(self.template.issue_id, sub.email)

    def data(self, sub: Subscriber) -> bytes:
        data = self.template.personalize(sub)
        # Signed here and only here, right after personalising: nothing touches the bytes after.
        return self.signer.sign(data) if self.signer is not None else data


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped: str | None = None  # why the send stopped early, if it did
    sender_problem: bool = False
    suppressed: int = 0
    limiter: RateLimiter | None = None
    interrupted: bool = False
    failures: list[tuple[str, Outcome]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.deferred

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.done / self.duration if self.duration > 0 else 0.0


class RateLimiter:
    """A token bucket shared by all connections, adapting to the relay.

    `ceiling` (0: none) is the most ever asked for. A throttling reply halves the rate (at
    most once a second, since several connections hear the same refusal); each second without
    one raises it by a tenth, back up to the ceiling, as Postfix adjusts its concurrency.
    """

    MIN_RATE = 0.2

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.rate = ceiling  # 0: unlimited until the first throttling reply
        self.lowest = ceiling
        self.throttles = 0
        self.next_slot = time.monotonic()
        self._last_change = float("-inf")  # the first throttling reply always counts
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        self._recover()
        if not self.rate:
            return
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def throttled(self, observed_rate: float) -> None:
        now = time.monotonic()
        self.throttles += 1
        if self.rate and now - self._last_change < 1.0:
            return
        base = self.rate or max(observed_rate, 2 * self.MIN_RATE)
        self.rate = max(base / 2, self.MIN_RATE)
        self.lowest = min(self.lowest or self.rate, self.rate)
        self._last_change = now

    def _recover(self) -> None:
        if not self.rate or not self.throttles:
            return
        now = time.monotonic()
        if now - self._last_change >= 1.0:
            raised = self.rate * 1.1
            self.rate = min(raised, self.ceiling) if self.ceiling else raised
            self._last_change = now


class GroupCommitter:
    """Commits journal writes from all workers together, off the event loop."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queue: list[tuple[list[Write], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def write(self, *writes: Write) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((list(writes), future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                writes = [w for ws, _ in batch for w in ws]
                try:
                    await asyncio.to_thread(self.journal.commit, writes)
                    self.commits += 1
                except Exception as exc:  # the journal is the guarantee: stop everything
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(
                                DeliveryError(
                                    f"the send journal could not be written: {exc}",
                                    path=str(self.journal.path),
                                    hint="check the disk; run send again to resume",
                                )
                            )
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
            if self._closing and not self._queue:
                return

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    subscriber: Subscriber = field(compare=False)
    attempts: int = field(compare=False)


ProgressHook = Callable[[DeliveryReport], None]


async def deliver(
    template: MessageTemplate,
    recipients: Iterator[Subscriber],
    *,
    journal: Journal,
    transports: list[Transport],
    rate: float,
    max_attempts: int,
    retry_delay: float,
    max_consecutive_failures: int,
    stop: asyncio.Event | None = None,
    on_progress: ProgressHook | None = None,
    limit: int | None = None,
    on_hard_bounce: Callable[[Subscriber, Outcome], Awaitable[None]] | None = None,
    outgoing: Outgoing | None = None,
) -> DeliveryReport:
    """Send `template` to every recipient, one worker per transport. See the module docstring."""

    async def ignore(sub: Subscriber, outcome: Outcome) -> None:
        return None

    on_hard_bounce = on_hard_bounce or ignore
    report = DeliveryReport()
    stop = stop or asyncio.Event()
    limiter = RateLimiter(rate)
    report.limiter = limiter
    committer = GroupCommitter(journal)
    committer.start()
    retries: list[_Retry] = []
    seq = 0
    consecutive_failures = 0
    source = iter(recipients)
    exhausted = False
    taken = 0
    in_progress = 0
    outgoing = outgoing or Outgoing(template)
    fatal: list[BaseException] = []

    def next_job() -> tuple[Subscriber, int] | float | None:
        """A job to do now, or how long to wait for one, or None when all is done."""
        nonlocal exhausted, taken
        now = time.monotonic()
        if retries and retries[0].due <= now:
            r = heapq.heappop(retries)
            return r.subscriber, r.attempts
        if not exhausted and (limit is None or taken < limit):
            sub = next(source, None)
            if sub is not None:
                taken += 1
                return sub, 0
            exhausted = True
        if retries:
            return max(retries[0].due - now, 0.0)
        if in_progress:
            return 0.05  # a job in flight may still schedule a retry
        return None

    async def worker(transport: Transport) -> None:
        nonlocal seq, consecutive_failures, in_progress
        pending_outcome: Write | None = None
        try:
            while not stop.is_set():
                job = next_job()
                if job is None:
                    break
                if isinstance(job, float):
                    if pending_outcome is not None:
                        await committer.write(pending_outcome)
                        pending_outcome = None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=min(job, 0.5))
                    continue
                sub, attempts = job
                in_progress += 1
                try:
                    await limiter.acquire()
                    data = outgoing.data(sub)
                    message_id = template.message_id(sub)
                    attempts += 1
                    mark = Write(sub.email, "sending", attempts, message_id=message_id)
                    if pending_outcome is not None:
                        await committer.write(pending_outcome, mark)
                        pending_outcome = None
                    else:
                        await committer.write(mark)
                    outcome = await transport.send(
                        outgoing.sender(sub), sub.email, data, wire_ready=True
                    )
                    verdict = classify(outcome.code, outcome.detail)
                    if verdict is Verdict.SENDER_PROBLEM:
                        # Not the recipient's fault: nobody is suppressed, the row stays
                        # pending, and the whole run stops.
                        outcome = Outcome("deferred", outcome.code, outcome.detail)
                        if not report.stopped:
                            report.sender_problem = True
                            report.stopped = f"the relay refused the sender: {outcome.reply}"
                        stop.set()
                    elif verdict is Verdict.THROTTLED:
                        limiter.throttled(report.rate)
                    elif verdict is Verdict.HARD_BOUNCE:
                        await on_hard_bounce(sub, outcome)
                        report.suppressed += 1
                    if (
                        outcome.status == "deferred"
                        and attempts < max_attempts
                        and not stop.is_set()
                    ):
                        # Not final: the row stays `deferred` until the retry goes out.
                        delay = retry_delay * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
                        seq += 1
                        heapq.heappush(
                            retries, _Retry(time.monotonic() + delay, seq, sub, attempts)
                        )
                        report.retries += 1
                    elif not report.sender_problem or outcome.status != "deferred":
                        _count(report, sub, outcome)
                    pending_outcome = Write(
                        sub.email, outcome.status, attempts, outcome.code, outcome.reply, message_id
                    )
                    if outcome.status == "deferred" and verdict is not Verdict.SENDER_PROBLEM:
                        consecutive_failures += 1
                        if consecutive_failures >= max_consecutive_failures and not report.stopped:
                            report.stopped = (
                                f"{consecutive_failures} failures in a row, the last: "
                                f"{outcome.reply}"
                            )
                            stop.set()
                    else:
                        consecutive_failures = 0
                    if on_progress is not None:
                        on_progress(report)
                finally:
                    in_progress -= 1
        except Exception as exc:
            # The others finish their message in flight and commit it; the error is raised
            # once they have (a bare exception would leave them waiting on the journal).
            fatal.append(exc)
            stop.set()
        finally:
            if pending_outcome is not None:
                try:
                    await committer.write(pending_outcome)
                except DeliveryError as exc:
                    fatal.append(exc)
            await transport.close()

    try:
        await asyncio.gather(*(worker(t) for t in transports))
    finally:
        await committer.close()
        report.finished = time.monotonic()
    # Retries still waiting when the send stopped stay `deferred` in the journal.
    report.deferred += len(retries)
    if fatal:
        raise fatal[0]
    return report


def _count(report: DeliveryReport, sub: Subscriber, outcome: Outcome) -> None:
    if outcome.status == "sent":
        report.sent += 1
    elif outcome.status == "failed":
        report.failed += 1
        report.failures.append((sub.email, outcome))
    else:
        report.deferred += 1
        report.failures.append((sub.email, outcome))


# -- the send command's core --------------------------------------------------------------


@dataclass(frozen=True)
class SendOptions:
    subscribers: Path
    dry_run: bool = False
    test_to: str | None = None
    limit: int | None = None
    skip_invalid: bool = False
    allow_rebuilt: bool = False
    retry_failed: bool = False


@dataclass
class SendResult:
    issue_id: str
    report: DeliveryReport
    mailable: int = 0
    already_done: int = 0
    resent_in_flight: list[str] = field(default_factory=list)
    skipped_invalid: int = 0
    suppressed: int = 0
    not_subscribed: int = 0
    duplicates: int = 0
    dry_run: bool = False
    test_to: str | None = None
    remaining: int = 0
    totals: dict[str, int] = field(default_factory=dict)


def prepare(
    layout: Layout, issue_id: str, *, settings: Settings, options: SendOptions
) -> tuple[MessageTemplate, ListSummary, str]:
    """Everything checked before the first message: the build, the list, the fields."""
    build_dir = layout.build_dir(issue_id)
    manifest = Manifest.read(build_dir)
    prefix = "[TEST] " if options.test_to else ""
    template = MessageTemplate.from_build(build_dir, settings=settings, subject_prefix=prefix)
    if not (options.dry_run or options.test_to):
        require_postal_address(build_dir, settings=settings)
    rel = layout.rel(options.subscribers)
    summary = summarize(options.subscribers, rel=rel)
    if summary.invalid and not options.skip_invalid:
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
    return template, summary, manifest.content_hash


def require_postal_address(build_dir: Path, *, settings: Settings) -> None:
    """CAN-SPAM (US) and the LCEN (France): a mailing shows the sender's postal address.

    `build-issue` only warns (the sample must build on a fresh clone); sending refuses,
    and also refuses a build made before the address was set.
    """
    address = " ".join(settings.postal_address.split())
    if not address:
        raise ConfigError(
            "no postal address: set NEWSLETTER_POSTAL_ADDRESS and rebuild; nothing was sent",
            path=".env",
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
    transport_factory: Callable[[Settings], Transport] | None = None,
) -> SendResult:
    """`newsletter send`: check, then mail every pending recipient and journal each outcome."""
    from newsletter.send.dkim import Signer
    from newsletter.send.transport import SmtpTransport
    from newsletter.send.verp import Verp

    make_transport = transport_factory or SmtpTransport
    template, summary, content_hash = prepare(layout, issue_id, settings=settings, options=options)
    # A bad key or bounce setting stops the send here, before anything leaves.
    outgoing = Outgoing(
        template,
        signer=Signer.from_settings(settings, layout=layout),
        verp=Verp.from_settings(settings),
    )
    rel = layout.rel(options.subscribers)
    result = SendResult(
        issue_id=issue_id,
        report=DeliveryReport(),
        mailable=summary.mailable,
        skipped_invalid=len(summary.invalid),
        not_subscribed=summary.not_subscribed,
        duplicates=summary.duplicates,
        dry_run=options.dry_run,
        test_to=options.test_to,
    )
    if options.test_to:
        first = next(unique_mailable(options.subscribers, rel=rel), SAMPLE_READER)
        address = check_test_address(options.test_to)
        transport = make_transport(settings)
        reader = Subscriber(email=address, name=first.name, fields=first.fields)
        data = outgoing.data(reader)
        try:
            outcome = await transport.send(
                outgoing.sender(reader), address, data, wire_ready=True
            )
        finally:
            await transport.close()
        _count(result.report, Subscriber(email=address), outcome)
        result.report.finished = time.monotonic()
        return result
    if options.dry_run:
        return _dry_run(outgoing, options, rel, result, on_progress)

    journal = Journal.open(layout, issue_id)
    try:
        journal.lock()
        journal.bind(content_hash, allow_rebuilt=options.allow_rebuilt)
        done = journal.final_digests(include_failed=not options.retry_failed)
        result.resent_in_flight = journal.in_flight()
        suppression_path = layout.resolve(settings.suppressions)
        suppressed = suppressions.load(suppression_path, rel=layout.rel(suppression_path))

        def pending() -> Iterator[Subscriber]:
            for sub in unique_mailable(options.subscribers, rel=rel):
                d = digest(sub.email)
                if d in done:
                    result.already_done += 1
                elif d in suppressed:
                    result.suppressed += 1
                else:
                    yield sub

        async def suppress(sub: Subscriber, outcome: Outcome) -> None:
            entry = suppressions.Suppression(
                sub.email, "hard-bounce", str(outcome.code or ""), issue_id, suppressions.today()
            )
            await asyncio.to_thread(suppressions.append, suppression_path, [entry])

        if on_start is not None:
            on_start(result)
        transports = [make_transport(settings) for _ in range(settings.smtp_concurrency)]
        result.report = await deliver(
            template,
            pending(),
            journal=journal,
            transports=transports,
            rate=settings.rate_per_second,
            max_attempts=settings.max_attempts,
            retry_delay=settings.retry_delay,
            max_consecutive_failures=settings.max_consecutive_failures,
            stop=stop,
            on_progress=on_progress,
            limit=options.limit,
            on_hard_bounce=suppress,
            outgoing=outgoing,
        )
        result.totals = journal.counts()
        result.remaining = max(
            result.mailable - result.suppressed - result.totals["sent"] - result.totals["failed"],
            0,
        )
        return result
    finally:
        journal.close()


def _dry_run(
    outgoing: Outgoing,
    options: SendOptions,
    rel: str,
    result: SendResult,
    on_progress: ProgressHook | None,
) -> SendResult:
    """Everything but the SMTP conversation: each message is built, then dropped."""
    report = result.report
    size = 0
    for n, sub in enumerate(unique_mailable(options.subscribers, rel=rel)):
        if options.limit is not None and n >= options.limit:
            break
        size += len(outgoing.data(sub))
        report.sent += 1
        if on_progress is not None and report.sent % 1000 == 0:
            on_progress(report)
    report.finished = time.monotonic()
    result.totals = {"bytes": size}
    return result


def check_test_address(address: str) -> str:
    from newsletter.send.subscribers import check_address

    try:
        return check_address(address)
    except ValueError as exc:
        raise SubscriberError(
            f"--test-to: invalid address '{address}': {exc}", hint="give one valid address"
        ) from None
