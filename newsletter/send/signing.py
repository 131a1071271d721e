"""DKIM's private-key operation in worker processes, so that signing never stalls delivery.

The event loop does the cheap part of each signature (`IssueSigner.prepare`: the body hash
from pieces canonicalised once per issue, the header list); the RSA operation (~0.3 ms, and
`cryptography` holds the GIL through it) runs in worker processes, one per spare core.

Each worker is forked before the send starts (no thread exists yet, so forking is safe),
inherits the loaded key (it is never pickled or written anywhere) and talks to the loop
over its own socket pair: a frame of data to sign goes out, a frame of signatures comes
back, in order. A worker that dies (killed, say) hands its unsigned batches to the others,
or to the event loop once none is left: the send goes on, every message signed. No thread
and no pickling on the loop's side (a ProcessPoolExecutor's
feeder and result threads took the GIL about as long as the RSA operation it moved). A
worker reads until its socket closes, so it never outlives the send, even one killed with
SIGKILL.

Signing ahead: the engine asks for the next readers' messages while it sends this one's
(`sign_ahead`), so that the worker always has the next signatures to make and a connection
rarely waits for one: the key operation then overlaps the SMTP round trips instead of adding
to them. What is signed ahead and never used (the send stopped) is dropped at `close`; a
message whose turn comes more than `max_age` seconds after it was signed (a slow rate, a
relay's pause) is signed again, so that its Date and DKIM t= say when it left.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field

from newsletter.errors import DeliveryError
from newsletter.send.dkim import DkimKey, Signer
from newsletter.send.pipes import HEADER, as_helper_process, ctrl_c_ignored, frame, frames

OK, ERROR = b"S", b"E"  # the first byte of a worker's answer


def spare_cores() -> int:
    """Cores beyond the one the event loop keeps busy (0 on a single core)."""
    return max((os.cpu_count() or 1) - 1, 0)


# -- frames (pipes.py): a request is a frame of framed items; an answer, a frame of OK and
# framed signatures, or of ERROR and the reason

def pack(items: list[bytes]) -> bytes:
    return frame(b"".join(frame(item) for item in items))


def unpack(body: bytes) -> list[bytes]:
    return list(frames(bytearray(body)))


# -- the worker's side -------------------------------------------------------------------------


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None  # the parent closed the socket, or is gone
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _serve(sock: socket.socket, key: DkimKey) -> None:
    """A worker: sign each frame's items until the socket closes; a failure is reported."""
    while True:
        head = _recv_exactly(sock, HEADER.size)
        body = _recv_exactly(sock, HEADER.unpack(head)[0]) if head else None
        if body is None:
            return
        try:
            reply = OK + b"".join(frame(key.sign(item)) for item in unpack(body))
        except Exception as exc:  # the key cannot sign this: the send stops with the reason
            reply = ERROR + f"{type(exc).__name__}: {exc}".encode()
        sock.sendall(frame(reply))


def _worker_main(sock: socket.socket, others: list[int], key: DkimKey) -> None:
    as_helper_process()  # Ctrl-C is the parent's: it stops us by closing the socket
    for fd in others:  # the parent's ends: only the parent may hold them open
        os.close(fd)
    _run_as_batch_job()
    _serve(sock, key)


def _run_as_batch_job() -> None:
    """Tell Linux this process is a CPU-bound batch job (SCHED_BATCH): it keeps its fair share
    of the CPU, but its wake-ups no longer preempt others, so the event loop and the journal
    writer, whose latency sets the pace, get a core as soon as they wake (measured: 0.97 of
    the time of an RSA send without it). Elsewhere, or if refused: the normal policy."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


# -- the loop's side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One message to sign: what the key signs, and what `Signer.finish` needs then."""

    signed_data: bytes
    unsigned: bytes  # the DKIM-Signature header up to b=
    message: bytes
    future: asyncio.Future[bytes]  # the signed message

    def done(self, raw_signature: bytes) -> None:
        if not self.future.done():
            self.future.set_result(Signer.finish(self.unsigned, raw_signature, self.message))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    sock: socket.socket
    waiting: deque[list[_Item]] = field(default_factory=deque)
    outgoing: bytearray = field(default_factory=bytearray)
    incoming: bytearray = field(default_factory=bytearray)
    writing: bool = False

    @property
    def load(self) -> int:
        return sum(len(batch) for batch in self.waiting)


class OffLoopSigner:
    """`Signer.sign`, awaitable, with the key operation in `processes` worker processes."""

    MAX_AGE = 30.0  # seconds a message signed ahead may wait for its turn

    def __init__(
        self,
        signer: Signer,
        *,
        processes: int,
        close_in_worker: list[int] | None = None,
        max_age: float = MAX_AGE,
    ) -> None:
        self.signer = signer
        self.processes = processes
        self.max_age = max_age
        self.close_in_worker = close_in_worker or []  # inherited descriptors not theirs
        self._workers: list[_Worker] = []
        self._batch: list[_Item] = []
        # by message id: the signed message to come, and when it was asked for (monotonic)
        self._ahead: dict[str, tuple[asyncio.Future[bytes], float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost: list[str] = []  # why a worker went away, if one did

    @classmethod
    def worth_it(cls, signer: Signer) -> bool:
        """With a spare core: RSA (~0.3 ms a signature) and Ed25519 too (~50 µs, more than
        its trip to a worker costs the event loop: measured by bench/send.py)."""
        return spare_cores() > 0

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def start(self) -> OffLoopSigner:
        """Fork the workers now, before the event loop has threads."""
        ctx = multiprocessing.get_context("fork")
        pairs = [socket.socketpair() for _ in range(self.processes)]
        mine = [ours for ours, _ in pairs]
        with ctrl_c_ignored():
            for ours, theirs in pairs:
                process = ctx.Process(
                    target=_worker_main,
                    args=(theirs, [s.fileno() for s in mine] + self.close_in_worker,
                          self.signer.key),
                    daemon=True,
                )
                process.start()
                theirs.close()
                ours.setblocking(False)
                self._workers.append(_Worker(process, ours))
        return self

    def submit(self, message: bytes) -> asyncio.Future[bytes]:
        """`message` signed, as a future: its key operation goes to a worker with the
        others asked for in the same turn of the event loop."""
        unsigned, signed_data = self.signer.prepare(message)
        loop = asyncio.get_running_loop()
        item = _Item(signed_data, unsigned, message, loop.create_future())
        if not self._workers:
            item.done(self.signer.key.sign(signed_data))
            return item.future
        if self._loop is None:
            self._listen(loop)
        self._batch.append(item)
        if len(self._batch) == 1:  # the first of a batch: sent once the loop goes round
            loop.call_soon(self._submit)
        return item.future

    async def sign(self, message: bytes) -> bytes:
        return await self.submit(message)

    def sign_ahead(self, message_id: str, message: bytes) -> None:
        """Start signing a message the send will ask for soon (`signed_ahead` takes it)."""
        future = self.submit(message)
        future.add_done_callback(_seen)  # its error, if any, is raised where it is taken
        self._ahead[message_id] = (future, time.monotonic())

    def signed_ahead(self, message_id: str) -> asyncio.Future[bytes] | None:
        """The message signed ahead under this id, if one was, not longer than `max_age`
        ago (each is taken once)."""
        future, asked = self._ahead.pop(message_id, (None, 0.0))
        if future is not None and time.monotonic() - asked > self.max_age:
            future.cancel()  # dated too long before it leaves: signed again
            return None
        return future

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for worker in self._workers:
            loop.add_reader(worker.sock.fileno(), self._readable, worker)

    def _submit(self) -> None:
        """One frame to the least busy worker for every signature asked for since the last."""
        batch, self._batch = self._batch, []
        self._send_batch(batch)

    def _send_batch(self, batch: list[_Item]) -> None:
        if not self._workers:  # every worker died: signed here, on the event loop
            for item in batch:
                if not item.future.done():
                    item.done(self.signer.key.sign(item.signed_data))
            return
        worker = min(self._workers, key=lambda w: w.load)
        worker.waiting.append(batch)
        worker.outgoing += pack([item.signed_data for item in batch])
        self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        assert self._loop is not None
        try:
            sent = worker.sock.send(worker.outgoing)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(worker, f"a signing process is gone ({exc.strerror or exc})")
            return
        del worker.outgoing[:sent]
        if worker.outgoing and not worker.writing:
            worker.writing = True
            self._loop.add_writer(worker.sock.fileno(), self._flush, worker)
        elif not worker.outgoing and worker.writing:
            worker.writing = False
            self._loop.remove_writer(worker.sock.fileno())

    def _readable(self, worker: _Worker) -> None:
        try:
            chunk = worker.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk, reason = b"", exc.strerror or str(exc)
        else:
            reason = "it exited"
        if not chunk:
            code = worker.process.exitcode
            self._fail(worker, f"a signing process died ({reason}, exit code {code})")
            return
        worker.incoming += chunk
        for answer in frames(worker.incoming):
            kind, body = answer[:1], answer[1:]
            batch = worker.waiting.popleft()
            if kind == OK:
                for item, raw in zip(batch, unpack(body), strict=True):
                    item.done(raw)
            else:
                error = DeliveryError(f"DKIM signing failed: {body.decode()}")
                _set_error([item.future for item in batch], error)

    def _fail(self, worker: _Worker, why: str) -> None:
        """A worker is gone (killed, say): what it had yet to sign goes to the others, or is
        signed here once none is left. Nothing is lost and the send goes on."""
        if self._loop is not None:
            self._loop.remove_reader(worker.sock.fileno())
            if worker.writing:
                self._loop.remove_writer(worker.sock.fileno())
        self._workers.remove(worker)
        worker.sock.close()
        self.lost.append(why)
        while worker.waiting:
            self._send_batch(worker.waiting.popleft())

    def close(self) -> None:
        """Close the sockets (each worker then exits) and wait for the workers, bounded;
        drop what was signed ahead and not used."""
        for future, _ in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        for worker in self._workers:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.sock.fileno())
                if worker.writing:
                    self._loop.remove_writer(worker.sock.fileno())
            worker.sock.close()
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
        self._workers = []


def _seen(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio does not log it as never retrieved


def _set_error(futures: list[asyncio.Future[bytes]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
