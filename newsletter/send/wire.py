"""SMTP replies matched to commands on an open connection, several commands per write.

aiosmtplib opens the connection (greeting, EHLO, STARTTLS, AUTH: the parts with TLS and
credentials) and then hands its transport to a `Wire`, which carries the transactions:

    wire = Wire.take_over(transport)
    mail, rcpt, data = await wire.send(b"MAIL FROM:<a@b>\\r\\n", b"RCPT TO:<c@d>\\r\\n",
                                       b"DATA\\r\\n", timeout=60)

With PIPELINING (RFC 2920) the envelope goes out in one write and its three replies come
back together; the message itself is the second write. aiosmtplib reads exactly one reply
per command written (its `read_response` drops whatever else arrived), so it cannot
pipeline, and its per-command path (a lock, `wait_for`, a reply future per command, the
DATA regexes) cost more CPU than the rest of a message's trip: bench/send.py measures both.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

MAX_LINE = 8192  # bytes in one reply line (RFC 5321 asks for 512; relays write longer)
MAX_LINES = 100  # lines in one multi-line reply
READ_BUFFER = 16384  # bytes per read: many replies at once
MAX_EARLY = 4  # replies kept that arrived before any command asked (a 421 before closing)


class WireError(Exception):
    """The connection cannot carry the next reply: lost, garbled or too slow."""


class Disconnected(WireError):
    pass


class BadReply(WireError):
    pass


class Reply(NamedTuple):
    code: int
    text: str  # the lines' texts, joined with newlines


class _Ask(NamedTuple):
    """One write's commands: how many replies they get, those already in, and the waiter."""

    expected: int
    replies: list[Reply]
    future: asyncio.Future[list[Reply]]


class Wire(asyncio.BufferedProtocol):
    """The protocol of a connection during its transactions: replies, in order, to waiters.

    Buffered: the transport reads into one buffer kept for the connection's life (a plain
    Protocol gets a fresh 256 KiB bytes object per read, which glibc maps and unmaps)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._waiting: deque[_Ask] = deque()
        self._early: deque[Reply] = deque(maxlen=MAX_EARLY)
        self._partial = b""  # an unfinished line
        self._lines: list[bytes] = []  # the lines of an unfinished multi-line reply
        self._lost: WireError | None = None
        # One timer per connection, not one per write: the deadline of the last write (a
        # transaction waits for one write's replies at a time), checked when it fires.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def take_over(cls, transport: asyncio.Transport) -> Wire:
        wire = cls(transport)
        transport.set_protocol(wire)
        return wire

    @property
    def is_open(self) -> bool:
        return self._lost is None and not self.transport.is_closing()

    async def send(self, *commands: bytes, timeout: float | None) -> list[Reply]:
        """Write the commands at once; their replies, in order. A timeout, a lost connection
        or a garbled reply raises WireError and closes the connection, unless a refusal came
        before it: then the replies up to it."""
        if self._lost is not None:
            raise self._lost
        loop = asyncio.get_running_loop()
        ask = _Ask(len(commands), [], loop.create_future())
        while self._early and len(ask.replies) < ask.expected:
            ask.replies.append(self._early.popleft())
        if len(ask.replies) == ask.expected:
            ask.future.set_result(ask.replies)
        else:
            self._waiting.append(ask)
            if timeout is not None:
                self._arm(loop, timeout)
        self.transport.write(commands[0] if len(commands) == 1 else b"".join(commands))
        try:
            return await ask.future
        except WireError:
            if any(reply.code >= 400 for reply in ask.replies):
                return ask.replies  # a refusal (421, say) explains the closed connection best
            raise

    def _arm(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._deadline = loop.time() + timeout
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._waiting:
            return  # re-armed by the next write
        if loop.time() >= self._deadline:
            self._fail(WireError("timed out"))
        else:
            self._timer = loop.call_at(self._deadline, self._check, loop)

    def close(self) -> None:
        self._fail(Disconnected("connection closed"))

    # -- asyncio.BufferedProtocol ---------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._received(bytes(self._view[:nbytes]))

    def _received(self, data: bytes) -> None:
        if self._partial:
            data, self._partial = self._partial + data, b""
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            start = end + 1
            if len(line) > MAX_LINE:
                self._fail(BadReply("a reply line longer than 8192 bytes"))
                return
            if line[3:4] == b"-":
                self._lines.append(line)
                if len(self._lines) > MAX_LINES:
                    self._fail(BadReply(f"a reply of more than {MAX_LINES} lines"))
                    return
                continue
            reply = self._reply(line)
            if reply is None:
                return
            if self._waiting:
                ask = self._waiting[0]
                ask.replies.append(reply)
                if len(ask.replies) == ask.expected:
                    self._waiting.popleft()
                    if not ask.future.done():  # cancelled: its sender is gone (Ctrl-C)
                        ask.future.set_result(ask.replies)
            else:
                self._early.append(reply)
        if start < len(data):
            self._partial = data[start:]
            if len(self._partial) > MAX_LINE:
                self._fail(BadReply("a reply line longer than 8192 bytes"))

    def _reply(self, last: bytes) -> Reply | None:
        lines, self._lines = self._lines, []
        lines.append(last)
        code = last[:3]
        if not code.isdigit():
            shown = last[:80].decode("utf-8", "replace").strip()
            self._fail(BadReply(f"a reply that is not SMTP: {shown!r}"))
            return None
        text = "\n".join(
            line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape") for line in lines
        )
        return Reply(int(code), text)

    def eof_received(self) -> bool:
        self._fail(Disconnected("connection lost"))
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc is not None else "connection lost"
        self._fail(Disconnected(reason))

    def _fail(self, error: WireError) -> None:
        """No reply will come any more: every waiter gets `error` (the first one given)."""
        if self._lost is None:
            self._lost = error
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(self._lost)
                future.exception()  # retrieved: its sender may be gone (cancelled)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.transport.is_closing():
            self.transport.close()
