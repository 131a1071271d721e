"""The send engine's unit layer: `decide()` table-tested, the loop driven with a fake clock and
an in-memory transport (the one fake allowed: the real-server tests in test_send.py and
test_deliverability.py stay the proof), over a real SQLite journal.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Iterable
from pathlib import Path

import pytest

from newsletter.errors import DeliveryError
from newsletter.send.classify import Verdict, classify
from newsletter.send.delivery import DeliveryReport, deliver
from newsletter.send.engine import Decision, Policy, Queue, RateLimiter, RunState, decide
from newsletter.send.journal import Journal, Status, Write
from newsletter.send.options import SendResult
from newsletter.send.progress import SendProgress
from newsletter.send.subscribers import Subscriber
from newsletter.send.transport import Outcome, outcome_for

POLICY = Policy(max_attempts=3, retry_delay=10.0, max_consecutive_failures=4)
SENT = outcome_for(250, "2.0.0 OK")
LATER = outcome_for(451, "4.3.0 Try again later")
THROTTLE = outcome_for(421, "4.7.0 Slow down")
NO_USER = outcome_for(550, "5.1.1 No such user")
REFUSED = outcome_for(550, "5.7.1 Sender not authorised")
OTHER = outcome_for(554, "5.6.0 Message rejected")


class FakeClock:
    """Virtual time: a sleep moves the clock on at once (and lets the other tasks run)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> None:
        if wake is None or not wake.is_set():
            self.t += max(seconds, 0.0)
            self.slept += max(seconds, 0.0)
        await asyncio.sleep(0)


class MemoryTransport:
    """Replies from a script per address (then 250); records what it accepted."""

    def __init__(self, script: dict[str, list[Outcome]], delivered: list[str]) -> None:
        self.script = script
        self.delivered = delivered
        self.closed = False

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        wire_ready: bool = False,
        before_data: Awaitable[None] | None = None,
    ) -> Outcome:
        await asyncio.sleep(0)  # another connection may run meanwhile, as on a socket
        queued = self.script.get(recipient)
        outcome = queued.pop(0) if queued else SENT
        if before_data is not None and outcome.command not in ("MAIL", "RCPT"):
            await before_data  # the message itself leaves after its `sending` commit
        if outcome.status is Status.SENT:
            self.delivered.append(recipient)
        return outcome

    async def close(self) -> None:
        self.closed = True


class PlainLetter:
    def sender(self, sub: Subscriber) -> str:
        return "news@example.org"

    def data(self, sub: Subscriber) -> bytes:
        return f"To: {sub.email}\r\n\r\nHello\r\n".encode()

    def message_id(self, sub: Subscriber) -> str:
        return f"<{sub.email}@test>"


class FailingJournal(Journal):
    """A real journal whose disk gives up after `ok` commits (as a full disk would)."""

    def __init__(self, path: Path, issue_id: str, *, ok: int) -> None:
        super().__init__(path, issue_id)
        self.ok = ok

    def commit(self, writes: Iterable[Write]) -> None:
        if self.ok <= 0:
            raise sqlite3.OperationalError("disk I/O error")
        self.ok -= 1
        super().commit(writes)


def readers(n: int) -> list[Subscriber]:
    return [Subscriber(email=f"r{i:02d}@example.fr") for i in range(n)]


def run_engine(
    journal: Journal,
    subs: list[Subscriber],
    *,
    script: dict[str, list[Outcome]] | None = None,
    connections: int = 2,
    policy: Policy = POLICY,
    stop: asyncio.Event | None = None,
    rate: float = 0.0,
) -> tuple[DeliveryReport, list[str], FakeClock]:
    clock = FakeClock()
    delivered: list[str] = []
    bounced: list[str] = []

    async def bounce(sub: Subscriber, outcome: Outcome) -> None:
        bounced.append(sub.email)

    async def main() -> DeliveryReport:
        transports = [MemoryTransport(script or {}, delivered) for _ in range(connections)]
        report = await deliver(
            PlainLetter(),
            iter(subs),
            journal=journal,
            transports=list(transports),
            rate=rate,
            policy=policy,
            stop=stop,
            on_hard_bounce=bounce,
            clock=clock,
            rng=random.Random(7),
        )
        assert all(t.closed for t in transports)
        return report

    report = asyncio.run(main())
    assert report.suppressed == len(bounced)
    return report, delivered, clock


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "state" / "journal.sqlite", "2026-11")


def statuses(journal: Journal) -> dict[str, Status]:
    return {row.email: row.status for row in journal.rows()}


# -- decide() -----------------------------------------------------------------------------------

FIRST = RunState()
STOPPING = RunState(stopping=True)
SENDER_STOPPED = RunState(stopping=True, sender_problem=True)

CASES: list[tuple[str, Outcome, int, RunState, tuple[Status, Status | None, float | None]]] = [
    # name, outcome, attempts, run, (write, tally, retry_in)
    ("sent", SENT, 1, FIRST, (Status.SENT, Status.SENT, None)),
    ("deferred, first try", LATER, 1, FIRST, (Status.DEFERRED, None, 10.0)),
    ("deferred, second try: doubled", LATER, 2, FIRST, (Status.DEFERRED, None, 20.0)),
    ("deferred, last try: counted", LATER, 3, FIRST, (Status.DEFERRED, Status.DEFERRED, None)),
    ("deferred while stopping", LATER, 1, STOPPING, (Status.DEFERRED, Status.DEFERRED, None)),
    ("throttled: retried", THROTTLE, 1, FIRST, (Status.DEFERRED, None, 10.0)),
    ("hard bounce", NO_USER, 1, FIRST, (Status.FAILED, Status.FAILED, None)),
    ("other 5xx", OTHER, 1, FIRST, (Status.FAILED, Status.FAILED, None)),
    ("sender problem: pending, not counted", REFUSED, 1, FIRST, (Status.DEFERRED, None, None)),
    ("deferred after a sender problem", LATER, 1, SENDER_STOPPED, (Status.DEFERRED, None, None)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "attempts", "run", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_what_to_write_count_and_retry(
    outcome: Outcome,
    attempts: int,
    run: RunState,
    expected: tuple[Status, Status | None, float | None],
) -> None:
    d = decide(outcome, classify(outcome.code, outcome.detail), attempts, POLICY, run)
    assert (d.write, d.tally, d.retry_in) == expected


def _decide(outcome: Outcome, run: RunState = FIRST) -> Decision:
    return decide(outcome, classify(outcome.code, outcome.detail), 1, POLICY, run)


def test_decide_flags_suppress_throttle_and_stop() -> None:
    assert _decide(NO_USER).suppress and not _decide(OTHER).suppress
    assert _decide(THROTTLE).throttle and not _decide(LATER).throttle
    sender = _decide(REFUSED)
    assert sender.stop == "the relay refused the sender: 550 5.7.1 Sender not authorised"
    assert sender.sender_problem and not sender.suppress and sender.failures_in_row == 0
    assert _decide(LATER, RunState(failures_in_row=2)).stop is None
    run_out = _decide(LATER, RunState(failures_in_row=3))
    assert run_out.stop == "4 failures in a row, the last: 451 4.3.0 Try again later"
    assert not run_out.sender_problem and run_out.retry_in == 10.0  # retried on the next run
    assert _decide(SENT, RunState(failures_in_row=3)).failures_in_row == 0
    assert _decide(NO_USER, RunState(failures_in_row=3)).failures_in_row == 0


# -- the loop --------------------------------------------------------------------------------


def test_everyone_is_mailed_once_and_journaled_sent(journal: Journal) -> None:
    subs = readers(9)
    report, delivered, _ = run_engine(journal, subs, connections=3)
    assert sorted(delivered) == [s.email for s in subs]
    assert statuses(journal) == {s.email: Status.SENT for s in subs}
    assert (report.sent, report.failed, report.deferred, report.retries) == (9, 0, 0, 0)


def test_a_retry_waits_on_the_injected_clock_not_the_wall(journal: Journal) -> None:
    subs = readers(3)
    started = time.monotonic()
    report, delivered, clock = run_engine(journal, subs, script={"r01@example.fr": [LATER, LATER]})
    assert sorted(delivered) == [s.email for s in subs]
    assert report.retries == 2 and report.sent == 3
    # retry_delay 10 s then 20 s, jittered by ±50%: at least 15 s of virtual time.
    assert clock.slept >= 15.0
    assert time.monotonic() - started < 5.0
    rows = {r.email: r for r in journal.rows()}
    assert rows["r01@example.fr"].attempts == 3 and rows["r01@example.fr"].status is Status.SENT


def test_a_hard_bounce_fails_that_reader_and_is_suppressed(journal: Journal) -> None:
    report, delivered, _ = run_engine(journal, readers(4), script={"r02@example.fr": [NO_USER]})
    assert "r02@example.fr" not in delivered and len(delivered) == 3
    assert statuses(journal)["r02@example.fr"] is Status.FAILED
    assert (report.failed, report.suppressed) == (1, 1)


def test_a_sender_problem_stops_the_run_and_counts_nobody(journal: Journal) -> None:
    subs = readers(6)
    script = {s.email: [REFUSED] for s in subs}
    report, delivered, _ = run_engine(journal, subs, script=script, connections=1)
    assert delivered == []
    assert report.sender_problem and report.stopped is not None
    assert (report.sent, report.failed, report.deferred, report.suppressed) == (0, 0, 0, 0)
    assert set(statuses(journal).values()) == {Status.DEFERRED}


def test_a_run_of_failures_stops_the_send(journal: Journal) -> None:
    subs = readers(10)
    script = {s.email: [LATER] * 5 for s in subs}
    report, delivered, _ = run_engine(journal, subs, script=script, connections=1)
    assert report.stopped == "4 failures in a row, the last: 451 4.3.0 Try again later"
    assert not report.sender_problem and delivered == []
    assert len(statuses(journal)) == 4


def test_a_journal_that_cannot_be_written_stops_the_send_cleanly(tmp_path: Path) -> None:
    """A DeliveryError once every connection stopped; nobody marked sent who was not."""
    path = tmp_path / "journal.sqlite"
    clock = FakeClock()
    delivered: list[str] = []

    async def main() -> None:
        await deliver(
            PlainLetter(),
            iter(readers(20)),
            journal=FailingJournal(path, "2026-11", ok=5),
            transports=[MemoryTransport({}, delivered) for _ in range(3)],
            rate=0.0,
            policy=POLICY,
            clock=clock,
        )

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(main())
    assert "the send journal could not be written: disk I/O error" in str(caught.value)
    rows = statuses(Journal(path, "2026-11"))
    sent = {email for email, status in rows.items() if status is Status.SENT}
    assert sent <= set(delivered)  # marked sent: really sent
    assert set(delivered) <= set(rows)  # really sent: journaled (sent, or in flight: resent)
    assert len(delivered) < 20


def test_an_interrupt_finishes_the_messages_in_flight_and_exits_130(
    journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = readers(12)
    stop = asyncio.Event()

    class Interrupting(MemoryTransport):
        async def send(
            self,
            sender: str,
            recipient: str,
            data: bytes,
            *,
            wire_ready: bool = False,
            before_data: Awaitable[None] | None = None,
        ) -> Outcome:
            if len(self.delivered) >= 3:
                stop.set()  # what the CLI's SIGINT handler does
            return await super().send(
                sender, recipient, data, wire_ready=wire_ready, before_data=before_data
            )

    delivered: list[str] = []

    async def main() -> DeliveryReport:
        return await deliver(
            PlainLetter(),
            iter(subs),
            journal=journal,
            transports=[Interrupting({}, delivered) for _ in range(2)],
            rate=0.0,
            policy=POLICY,
            stop=stop,
            clock=FakeClock(),
        )

    report = asyncio.run(main())
    rows = statuses(journal)
    assert 3 <= len(delivered) < 12
    assert rows == {email: Status.SENT for email in delivered}  # nothing left `sending`
    result = SendResult(issue_id="2026-11", report=report, mailable=12, remaining=12 - len(rows))
    progress = SendProgress("2026-11", interactive=False)
    progress.interrupted = True
    assert progress.summary(result) == 130  # ExitCode.INTERRUPTED
    assert f"Interrupted: {12 - len(rows)} recipient(s) left." in capsys.readouterr().out


# -- the rate limiter ---------------------------------------------------------------------------


def test_one_throttle_at_the_start_keeps_the_measured_rate_and_recovers_in_seconds() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = RateLimiter(0.0, clock=clock)
        for _ in range(10):  # 10 replies in the first half second: 20/s
            clock.t += 0.05
            limiter.completed()
        limiter.throttled()
        assert limiter.rate == pytest.approx(10.0)  # half the measured rate, not the floor
        assert limiter.throttles == 1
        clock.t += 1.0
        await limiter.acquire()
        assert limiter.rate == pytest.approx(20.0) or limiter.rate == 0.0
        clock.t += 1.0
        await limiter.acquire()
        assert limiter.rate == 0.0  # unlimited again: the relay stopped refusing

    asyncio.run(main())


def test_a_refusal_before_any_reply_is_not_the_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.0, clock=clock)
    clock.t += 0.01
    limiter.completed()  # the refused message itself
    limiter.throttled()
    assert limiter.rate >= 10 * RateLimiter.MIN_RATE  # was the floor: 0.2/s


def test_a_ceiling_is_halved_once_a_second_and_restored() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = RateLimiter(40.0, clock=clock)
        limiter.throttled()
        limiter.throttled()  # the same refusal heard on another connection
        assert (limiter.rate, limiter.lowest, limiter.throttles) == (20.0, 20.0, 2)
        clock.t += 1.0
        await limiter.acquire()
        assert limiter.rate == 40.0

    asyncio.run(main())


def test_the_limiter_spaces_messages_on_the_injected_clock() -> None:
    async def main() -> float:
        clock = FakeClock()
        limiter = RateLimiter(4.0, clock=clock)
        for _ in range(9):
            await limiter.acquire()
        return clock.slept

    assert asyncio.run(main()) == pytest.approx(2.0)  # 9 slots at 4/s: 8 gaps of 0.25 s


def test_decide_is_pure() -> None:
    verdict = Verdict.DEFERRED
    assert decide(LATER, verdict, 1, POLICY) == decide(LATER, verdict, 1, POLICY)


def test_reading_ahead_returns_each_reader_once_and_next_hands_them_out_in_order() -> None:
    readers = [Subscriber(email=f"r{i}@example.fr") for i in range(7)]
    queue = Queue(iter(readers), clock=FakeClock(), limit=5)
    first = queue.read_ahead(2)
    assert [r.email for r in first] == ["r0@example.fr", "r1@example.fr"]
    assert queue.read_ahead(2) == []  # already known: not returned again
    job = queue.next()
    assert not isinstance(job, float) and job is not None and job.subscriber is readers[0]
    assert [r.email for r in queue.read_ahead(3)] == ["r2@example.fr", "r3@example.fr"]
    # the limit counts what was read ahead: 1 taken + 3 ahead + 1 more = 5, never a 6th
    assert [r.email for r in queue.read_ahead(10)] == ["r4@example.fr"]
    taken = []
    while (job := queue.next()) is not None:
        assert not isinstance(job, float)
        taken.append(job.subscriber.email)
    assert taken == [f"r{i}@example.fr" for i in range(1, 5)] and queue.taken == 5


def test_a_queue_read_to_its_end_ahead_is_finished_only_once_those_are_taken() -> None:
    queue = Queue(iter([Subscriber(email="a@example.fr")]), clock=FakeClock())
    assert [r.email for r in queue.read_ahead(4)] == ["a@example.fr"]
    assert not queue.finished  # the source is done, one reader is still to send
    job = queue.next()
    assert job is not None and not isinstance(job, float)
    assert queue.finished and queue.next() is None
