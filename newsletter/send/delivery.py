"""Who gets the issue, how fast, and how far: workers over the pending recipients.

Each worker owns one SMTP connection (`transport`). For every recipient it commits `sending`
to the journal, sends, and commits the outcome before its next message leaves; the outcome
of one message and the `sending` mark of the next go in the same commit, and the commits of
all workers are grouped, so durability costs little. What a reply means (retry, count,
suppress, stop) is `engine.decide`; who is next is `engine.Queue`; how fast, `RateLimiter`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from newsletter.errors import DeliveryError
from newsletter.send.classify import classify
from newsletter.send.committer import GroupCommitter, JournalError, WriterProcess
from newsletter.send.engine import (
    SYSTEM_CLOCK,
    Clock,
    Decision,
    Job,
    Policy,
    Queue,
    RateLimiter,
    RunState,
    decide,
)
from newsletter.send.journal import Journal, Status, Write
from newsletter.send.letters import Letter, Outgoing, Transport
from newsletter.send.relays import RelayPool
from newsletter.send.subscribers import Subscriber
from newsletter.send.transport import Outcome


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    retries: int = 0
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped: str | None = None  # why the send stopped early, if it did
    sender_problem: bool = False
    suppressed: int = 0
    limiter: RateLimiter | None = None
    interrupted: bool = False
    failures: list[tuple[str, Outcome]] = field(default_factory=list)
    by_relay: dict[str, int] = field(default_factory=dict)  # sent through each relay
    relay_outages: list[tuple[str, str]] = field(default_factory=list)  # (relay, why)
    # Written whole, then the connection failed before the reply: sent again, maybe twice.
    unanswered: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.deferred

    @property
    def duration(self) -> float:
        return (self.finished or self.clock.now()) - self.started

    @property
    def rate(self) -> float:
        return self.done / self.duration if self.duration > 0 else 0.0

    def count(self, email: str, status: Status, outcome: Outcome) -> None:
        if status is Status.SENT:
            self.sent += 1
            return
        if status is Status.FAILED:
            self.failed += 1
        else:
            self.deferred += 1
        self.failures.append((email, outcome))


ProgressHook = Callable[[DeliveryReport], None]
HardBounceHook = Callable[[Subscriber, Outcome], Awaitable[None]]


async def _ignore(sub: Subscriber, outcome: Outcome) -> None:
    return None


@dataclass
class _Lane:
    """One worker's connection, and the outcome it has yet to commit."""

    transport: Transport
    pending: Write | None = None
    relay: str = ""  # its relay's name ("" without a RelayPool)
    limiter: RateLimiter | None = None  # its relay's own rate, if it has one


class _Delivery:
    """One send: the shared state the workers change (instead of closures and `nonlocal`)."""

    def __init__(
        self,
        queue: Queue,
        *,
        committer: GroupCommitter,
        outgoing: Letter,
        policy: Policy,
        limiter: RateLimiter,
        clock: Clock,
        stop: asyncio.Event,
        on_progress: ProgressHook | None,
        on_hard_bounce: HardBounceHook,
        pool: RelayPool | None = None,
    ) -> None:
        self.pool = pool
        self.queue = queue
        self.committer = committer
        self.outgoing = outgoing
        self.policy = policy
        self.limiter = limiter
        self.clock = clock
        self.stop = stop
        self.on_progress = on_progress
        self.on_hard_bounce = on_hard_bounce
        self.report = DeliveryReport(clock=clock, started=clock.now(), limiter=limiter)
        self.failures_in_row = 0
        self.fatal: list[BaseException] = []
        self.lanes = 1  # how many connections send (set once they are known)

    async def deliver_all(self, lane: _Lane) -> None:
        """One worker: jobs from the queue until it is empty or the send stops."""
        try:
            while not self.stop.is_set():
                if self.pool is not None and self.pool.gated and not await self._my_turn(
                    lane, self.pool
                ):
                    break
                job = self.queue.next()
                if job is None:
                    break
                if isinstance(job, float):
                    await self._flush(lane)
                    await self.clock.sleep(min(job, 0.5), wake=self.stop)
                    continue
                if self.pool is not None:
                    self.pool.took(lane.relay)
                self.queue.in_flight += 1
                try:
                    await self.deliver_one(lane, job)
                finally:
                    self.queue.in_flight -= 1
        except Exception as exc:
            # The others finish their message in flight and commit it; the error is raised
            # once they have (a bare exception would leave them waiting on the journal).
            self.fatal.append(exc)
            self.stop.set()
        finally:
            try:
                await self._flush(lane)
            except DeliveryError as exc:
                self.fatal.append(exc)
            await lane.transport.close()

    async def _my_turn(self, lane: _Lane, pool: RelayPool) -> bool:
        """Wait until this lane's relay may take a message (its share, not out); False when
        there is nothing left for it, or no relay can take anything any more."""
        while not pool.may_take(lane.relay, self.clock.now()):
            gone = pool.all_gone()
            if gone is not None:
                if not self.report.stopped:
                    self.report.stopped = f"no relay can take messages any more: {gone}"
                self.stop.set()
                return False
            if self.queue.finished or self.stop.is_set():
                return False
            await self._flush(lane)
            wait = min(pool.next_change(self.clock.now()), 0.05)
            await self.clock.sleep(wait, wake=pool.changed)
        return not self.stop.is_set()

    def _relay_trouble(self, lane: _Lane, outcome: Outcome) -> bool:
        """With several relays: is this reply the relay's fault (connection, 421)? Then the
        relay counts a failure (and may be taken out) and the message goes to another."""
        pool = self.pool
        if pool is None or not pool.several:
            return False
        if outcome.status is Status.DEFERRED and (outcome.code is None or outcome.code == 421):
            refused = outcome.detail.startswith(("could not connect", "connection refused"))
            pool.failed(lane.relay, outcome.reply, self.clock.now(), at_once=refused)
            return True
        pool.succeeded(lane.relay)
        return False

    async def _data(self, sub: Subscriber, message_id: str) -> bytes:
        outgoing = self.outgoing
        if isinstance(outgoing, Outgoing):
            # Signed: the next readers' messages are signed while this one travels, so
            # that no connection waits for a signature; in chunks of one per connection
            # (a chunk is one trip to a signing worker), the next asked for while the
            # last is signed.
            ahead: list[Subscriber] = []
            if outgoing.signs_ahead and self.queue.ahead <= self.lanes:
                ahead = self.queue.read_ahead(2 * self.lanes)
            return await outgoing.data_async(sub, message_id=message_id, ahead=ahead)
        return outgoing.data(sub)

    async def _send(
        self, lane: _Lane, sender: str, sub: Subscriber, data: bytes, commit: Awaitable[None]
    ) -> Outcome:
        """The transport's send; with several relays, a fatal relay error (a refused login,
        TLS refused) takes that relay out for the send and defers the message to the others."""
        try:
            return await lane.transport.send(
                sender, sub.email, data, wire_ready=True, before_data=commit
            )
        except DeliveryError as exc:
            if self.pool is None or not self.pool.several or isinstance(exc, JournalError):
                raise
            self.pool.give_up(lane.relay, exc.message)
            await lane.transport.close()
            return Outcome(Status.DEFERRED, None, f"relay {lane.relay}: {exc.message}")

    async def _flush(self, lane: _Lane) -> None:
        if lane.pending is not None:
            await self.committer.write(lane.pending)
            lane.pending = None

    async def deliver_one(self, lane: _Lane, job: Job) -> None:
        """`sending` committed (with the previous outcome), the message sent, its outcome kept."""
        sub = job.subscriber
        await self.limiter.acquire()
        if lane.limiter is not None:
            await lane.limiter.acquire()
        message_id = self.outgoing.message_id(sub)  # once: the journal's and the header's
        attempts = job.attempts + 1
        relay = lane.relay or None
        mark = Write(sub.email, Status.SENDING, attempts, message_id=message_id, relay=relay)
        # The commit runs while the message is built (and signed) and its envelope (MAIL, RCPT,
        # DATA) is answered: the transport writes the message itself only once it is done.
        commit = self.committer.submit(*((lane.pending, mark) if lane.pending else (mark,)))
        lane.pending = None
        try:
            data = await self._data(sub, message_id)
            outcome = await self._send(lane, self.outgoing.sender(sub), sub, data, commit)
            await commit
        except BaseException as exc:
            journal_failed = await _outcome_of(commit, exc)
            if not journal_failed and isinstance(exc, DeliveryError):
                # Not sent (TLS, login, signing): the row goes back to pending, not `sending`.
                lane.pending = Write(
                    sub.email, Status.DEFERRED, job.attempts, None, "", message_id, relay
                )
            raise
        self.limiter.completed()
        if lane.limiter is not None:
            lane.limiter.completed()
        relay_fault = self._relay_trouble(lane, outcome)
        decision = await self._settle(Job(sub, attempts), outcome, lane, relay_fault=relay_fault)
        if decision.tally is Status.SENT and lane.relay:
            self.report.by_relay[lane.relay] = self.report.by_relay.get(lane.relay, 0) + 1
        lane.pending = Write(
            sub.email, decision.write, attempts, outcome.code, outcome.reply, message_id, relay
        )
        if self.on_progress is not None:
            self.on_progress(self.report)

    async def _settle(
        self, job: Job, outcome: Outcome, lane: _Lane | None = None, *, relay_fault: bool = False
    ) -> Decision:
        """Apply `decide()` to the run: limiter, suppressions, retries, counts, the stop.

        `relay_fault`: one relay of several failed (not the run): the message is retried at
        once, through whichever relay takes it, and the run's failures in a row stay as they
        were (the relay counts its own, in the RelayPool)."""
        report = self.report
        run = RunState(self.stop.is_set(), report.sender_problem, self.failures_in_row)
        verdict = classify(outcome.code, outcome.detail, command=outcome.command)
        decision = decide(outcome, verdict, job.attempts, self.policy, run)
        if outcome.unanswered:
            report.unanswered.append(job.subscriber.email)
        if relay_fault and decision.retry_in is not None:
            decision = decision._replace(retry_in=0.0)
        else:
            self.failures_in_row = decision.failures_in_row
        if decision.throttle:
            if lane is not None and lane.limiter is not None:
                lane.limiter.throttled()
            else:
                self.limiter.throttled()
        if decision.suppress:
            await self.on_hard_bounce(job.subscriber, outcome)
            report.suppressed += 1
        if decision.retry_in is not None:
            # Not final: the row stays `deferred` until the retry goes out.
            self.queue.retry(job, decision.retry_in)
            report.retries += 1
        if decision.tally is not None:
            report.count(job.subscriber.email, decision.tally, outcome)
        if decision.stop is not None:
            if not report.stopped:
                report.stopped = decision.stop
                report.sender_problem = decision.sender_problem
            self.stop.set()
        return decision


async def deliver(
    outgoing: Letter,
    recipients: Iterator[Subscriber],
    *,
    journal: Journal,
    transports: list[Transport] | dict[str, list[Transport]],
    rate: float,
    policy: Policy,
    stop: asyncio.Event | None = None,
    on_progress: ProgressHook | None = None,
    limit: int | None = None,
    on_hard_bounce: HardBounceHook | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    pool: RelayPool | None = None,
    writer: WriterProcess | None = None,
) -> DeliveryReport:
    """Send to every recipient, one worker per transport. See the module docstring.

    `transports` by relay name (with a `pool`): each relay's connections, which take
    messages by the relay's weight and give them up to the others when it fails.

    Raises DeliveryError if the journal cannot be written (after every worker has stopped
    and committed what it could), or any other error a worker met.
    """
    committer = GroupCommitter(journal, process=writer)
    delivery = _Delivery(
        Queue(recipients, clock=clock, limit=limit, rng=rng),
        committer=committer,
        outgoing=outgoing,
        policy=policy,
        limiter=RateLimiter(rate, clock=clock),
        clock=clock,
        stop=stop or asyncio.Event(),
        on_progress=on_progress,
        on_hard_bounce=on_hard_bounce or _ignore,
        pool=pool,
    )
    committer.start()
    try:
        lanes = _lanes(transports, pool, clock)
        delivery.lanes = len(lanes)
        await asyncio.gather(*(delivery.deliver_all(lane) for lane in lanes))
    finally:
        await committer.close()
        delivery.report.finished = clock.now()
        if pool is not None:
            delivery.report.relay_outages = pool.outages()
    # Retries still waiting when the send stopped stay `deferred` in the journal.
    delivery.report.deferred += delivery.queue.waiting
    if delivery.fatal:
        raise delivery.fatal[0]
    return delivery.report


async def _outcome_of(commit: asyncio.Future[None], error: BaseException) -> bool:
    """After `error` in a message's trip: wait for its journal commit (cancelled if the send
    itself is); True if the commit failed (that error then stops everything)."""
    if isinstance(error, asyncio.CancelledError):
        commit.cancel()
    results = await asyncio.gather(commit, return_exceptions=True)
    return isinstance(results[0], JournalError)


def _lanes(
    transports: list[Transport] | dict[str, list[Transport]],
    pool: RelayPool | None,
    clock: Clock,
) -> list[_Lane]:
    if isinstance(transports, list):
        return [_Lane(t) for t in transports]
    rates = {r.label: r.rate for r in pool.relays} if pool is not None else {}
    lanes: list[_Lane] = []
    for relay, group in transports.items():
        rate = rates.get(relay, 0.0)
        # Shared by the relay's connections.
        limiter = RateLimiter(rate, clock=clock) if rate else None
        lanes += [_Lane(t, relay=relay, limiter=limiter) for t in group]
    return lanes
