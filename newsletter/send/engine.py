"""The send engine's decisions, apart from any I/O: what a reply means for the journal, the
counts, a retry, a suppression or the whole run; who is next; how fast.

    decide(outcome, verdict, attempts, policy)  -> Decision   pure, table-tested
    Queue                                        the pending recipients, then retries by due time
    RateLimiter                                  a token bucket that adapts to the relay
    Clock                                        time and sleep, injected (a fake one in the tests)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from newsletter.send.classify import Verdict
from newsletter.send.journal import Status
from newsletter.send.subscribers import Subscriber
from newsletter.send.transport import Outcome

# -- time ----------------------------------------------------------------------------------


class Clock(Protocol):
    """Monotonic time and sleep; `wake` cuts a sleep short (the send was asked to stop)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> None:
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=seconds)


SYSTEM_CLOCK = SystemClock()


# -- what one reply means --------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    retry_delay: float  # before the first retry; doubled for each further one
    max_consecutive_failures: int


class RunState(NamedTuple):
    """What the run already knows when a reply comes in."""

    stopping: bool = False  # asked to stop (Ctrl-C, a failure run): no new retry
    sender_problem: bool = False  # the relay refused the sender: stopped, nothing counted
    failures_in_row: int = 0  # temporary failures in a row before this reply


FRESH_RUN = RunState()


class Decision(NamedTuple):
    write: Status  # the row's state after this attempt (committed before the next message)
    tally: Status | None  # the report counter it adds to; None: not final (a retry) or not counted
    retry_in: float | None  # seconds before the next attempt (before jitter); None: no retry
    suppress: bool  # a hard bounce: add the address to the suppression file
    throttle: bool  # the relay asked us to slow down
    stop: str | None  # why the whole run stops now, if it does (the first reason is kept)
    sender_problem: bool  # the stop is the sender's fault, not the recipients'
    failures_in_row: int  # the run of temporary failures, this reply included


def decide(
    outcome: Outcome, verdict: Verdict, attempts: int, policy: Policy, run: RunState = FRESH_RUN
) -> Decision:
    """What to do with the reply to attempt number `attempts` (1 for the first) of a message."""
    sender = verdict is Verdict.SENDER_PROBLEM
    # A sender problem is not the recipient's fault: the row stays pending (deferred).
    status: Status = Status.DEFERRED if sender else outcome.status
    if type(status) is not Status:  # a plain string (Enum's call is slow: not for every reply)
        status = Status(status)
    stopping = run.stopping or sender
    retry = status is Status.DEFERRED and attempts < policy.max_attempts and not stopping
    counted = not retry and not (status is Status.DEFERRED and (sender or run.sender_problem))
    failures = run.failures_in_row + 1 if status is Status.DEFERRED and not sender else 0
    stop: str | None = None
    if sender:
        stop = f"the relay refused the sender: {outcome.reply}"
    elif failures >= policy.max_consecutive_failures:
        stop = f"{failures} failures in a row, the last: {outcome.reply}"
    return Decision(
        write=status,
        tally=status if counted else None,
        retry_in=policy.retry_delay * 2 ** (attempts - 1) if retry else None,
        # Nothing refused at MAIL FROM is a reader's fault, whatever the verdict (issue 13).
        suppress=verdict is Verdict.HARD_BOUNCE and outcome.command != "MAIL",
        throttle=verdict is Verdict.THROTTLED,
        stop=stop,
        sender_problem=sender,
        failures_in_row=failures,
    )


# -- who is next ------------------------------------------------------------------------------


class Job(NamedTuple):
    subscriber: Subscriber
    attempts: int  # attempts already made


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    job: Job = field(compare=False)


class Queue:
    """The pending recipients (read lazily, at most `limit`), then the retries as they fall due."""

    IN_FLIGHT_POLL = 0.05  # a message in flight may still schedule a retry

    def __init__(
        self,
        recipients: Iterator[Subscriber],
        *,
        clock: Clock,
        limit: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._source: Iterator[Subscriber] | None = iter(recipients)
        self._clock = clock
        self._limit = limit
        self._rng = rng or random.Random()
        self._retries: list[_Retry] = []
        self._ahead: deque[Subscriber] = deque()  # read from the source, not yet taken
        self._seq = 0
        self.taken = 0
        self.in_flight = 0

    def next(self) -> Job | float | None:
        """A job to do now, or how long to wait for one, or None when all is done."""
        now = self._clock.now()
        if self._retries and self._retries[0].due <= now:
            return heapq.heappop(self._retries).job
        if self._ahead:
            self.taken += 1
            return Job(self._ahead.popleft(), 0)
        if self._source is not None and (self._limit is None or self.taken < self._limit):
            sub = next(self._source, None)
            if sub is not None:
                self.taken += 1
                return Job(sub, 0)
            self._source = None
        if self._retries:
            return max(self._retries[0].due - now, 0.0)
        return self.IN_FLIGHT_POLL if self.in_flight else None

    def read_ahead(self, count: int) -> list[Subscriber]:
        """Read the source until the next `count` fresh recipients are known (within the
        limit), so that their messages can be made early; returns those read by this call
        (each recipient is returned once). `next` hands them out in the same order."""
        fresh: list[Subscriber] = []
        while self._source is not None and len(self._ahead) < count:
            if self._limit is not None and self.taken + len(self._ahead) >= self._limit:
                break
            sub = next(self._source, None)
            if sub is None:
                self._source = None
                break
            self._ahead.append(sub)
            fresh.append(sub)
        return fresh

    @property
    def ahead(self) -> int:
        """Recipients read ahead and not yet taken."""
        return len(self._ahead)

    def retry(self, job: Job, delay: float) -> None:
        """Try `job` again after `delay`, jittered by ±50% so connections do not retry in step."""
        self._seq += 1
        due = self._clock.now() + delay * self._rng.uniform(0.5, 1.5)
        heapq.heappush(self._retries, _Retry(due, self._seq, job))

    @property
    def finished(self) -> bool:
        """Nothing left to hand out, now or later (the list read to its end, no retry due)."""
        return (
            self._source is None and not self._ahead and not self._retries and not self.in_flight
        )

    @property
    def waiting(self) -> int:
        """Retries not yet due (they stay `deferred` in the journal if the send stops)."""
        return len(self._retries)


# -- how fast -------------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket shared by all connections, adapting to the relay.

    `ceiling` (0: none) is the most ever asked for. A throttling reply halves the rate (at
    most once a second, since several connections hear the same refusal); with no rate set
    yet, it halves the rate measured over the last `WINDOW` seconds, so one refusal at the
    start does not drop the send to the floor. Each second without one doubles the rate, up
    to the ceiling, or with no ceiling back to unlimited once past the rate it was refused at.
    """

    MIN_RATE = 0.2
    WINDOW = 5.0  # seconds of completed attempts the measured rate is taken over
    MIN_SPAN = 0.25  # a shorter span measures nothing (the first replies of a send)
    RECOVERY = 2.0  # the rate's growth per second without a throttling reply

    def __init__(self, ceiling: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ceiling = ceiling
        self.rate = ceiling  # 0: unlimited until the first throttling reply
        self.lowest = ceiling
        self.throttles = 0
        self._clock = clock
        self._started = clock.now()
        self.next_slot = self._started
        self._last_change = float("-inf")  # the first throttling reply always counts
        self._refused_at = 0.0  # the measured rate when an unlimited send was first throttled
        self._done: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        self._recover()
        if not self.rate:
            return
        async with self._lock:
            now = self._clock.now()
            slot = max(now, self.next_slot)
            self.next_slot = slot + 1.0 / self.rate
        if slot > now:
            await self._clock.sleep(slot - now)

    def completed(self) -> None:
        """One attempt got its reply (whatever it was): the measure of the recent rate."""
        now = self._clock.now()
        self._done.append(now)
        while self._done and self._done[0] < now - self.WINDOW:
            self._done.popleft()

    def observed(self) -> float:
        """Attempts per second over the last WINDOW seconds (or since the start, if shorter)."""
        now = self._clock.now()
        span = max(min(now - self._started, self.WINDOW), self.MIN_SPAN)
        return sum(1 for t in self._done if t >= now - self.WINDOW) / span

    def throttled(self) -> None:
        now = self._clock.now()
        self.throttles += 1
        if self.rate and now - self._last_change < 1.0:
            return
        if not self.rate:
            self._refused_at = max(self.observed(), 2 * self.MIN_RATE)
        self.rate = max((self.rate or self._refused_at) / 2, self.MIN_RATE)
        self.lowest = min(self.lowest or self.rate, self.rate)
        self._last_change = now

    def _recover(self) -> None:
        if not self.rate or not self.throttles:
            return
        now = self._clock.now()
        if now - self._last_change < 1.0:
            return
        raised = self.rate * self.RECOVERY
        if self.ceiling:
            self.rate = min(raised, self.ceiling)
        else:  # unlimited again once past the rate the relay first refused
            self.rate = 0.0 if raised >= self._refused_at else raised
        self._last_change = now
