"""DKIM's private-key operation in worker processes, so that signing never stalls delivery.

The event loop does the cheap part of each signature (`IssueSigner.prepare`: the body hash
from pieces canonicalised once per issue, the header list); the RSA operation (~0.3 ms, and
`cryptography` holds the GIL through it) runs in a process pool sized to the spare cores.
Pool workers are forked before the send starts (no thread exists yet, so forking is safe)
and inherit the loaded key: it is never pickled or written anywhere.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from newsletter.send.dkim import DkimKey, Signer

_KEY: DkimKey | None = None  # the key, in a pool worker


def _adopt(key: DkimKey) -> None:
    global _KEY
    _KEY = key
    # A worker blocked on its queue would outlive a parent killed with SIGKILL: watch it.
    exit_with_parent()


def exit_with_parent() -> None:
    """In a worker process: exit as soon as the parent is gone (killed with SIGKILL, say)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _sign(data: bytes) -> bytes:
    assert _KEY is not None, "the pool initializer sets the key"
    return _KEY.sign(data)


def _sign_batch(batch: list[bytes]) -> list[bytes]:
    return [_sign(data) for data in batch]


def spare_cores() -> int:
    """Cores beyond the one the event loop keeps busy (0 on a single core)."""
    return max((os.cpu_count() or 1) - 1, 0)


class OffLoopSigner:
    """`Signer.sign`, awaitable, with the key operation in `processes` worker processes."""

    def __init__(self, signer: Signer, *, processes: int) -> None:
        self.signer = signer
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._batch: list[tuple[bytes, asyncio.Future[bytes]]] = []

    @classmethod
    def worth_it(cls, signer: Signer) -> bool:
        """RSA only: an Ed25519 signature (~30 µs) costs less than the trip to a process."""
        return signer.key.kind == "rsa" and spare_cores() > 0

    def start(self) -> OffLoopSigner:
        """Fork the workers now, before the event loop has threads, and wait for them."""
        self._pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_adopt,
            initargs=(self.signer.key,),
        )
        for future in [self._pool.submit(_sign, b"warm-up") for _ in range(self.processes)]:
            future.result()
        return self

    async def sign(self, message: bytes) -> bytes:
        unsigned, signed_data = self.signer.prepare(message)
        if self._pool is None:
            raw = self.signer.key.sign(signed_data)
        else:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[bytes] = loop.create_future()
            self._batch.append((signed_data, future))
            if len(self._batch) == 1:  # the first of a batch: sent once the loop goes round
                loop.call_soon(self._submit)
            raw = await future
        return Signer.finish(unsigned, raw, message)

    def _submit(self) -> None:
        """One trip to a worker for every signature asked for since the last one: a trip per
        message costs the event loop about as much as the RSA operation it moves."""
        assert self._pool is not None
        batch, self._batch = self._batch, []
        done = asyncio.wrap_future(self._pool.submit(_sign_batch, [d for d, _ in batch]))

        def deliver(result: asyncio.Future[list[bytes]]) -> None:
            for (_, future), raw in zip(batch, _results(result, len(batch)), strict=True):
                if future.done():
                    continue
                if isinstance(raw, BaseException):
                    future.set_exception(raw)
                else:
                    future.set_result(raw)

        done.add_done_callback(deliver)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _results(done: asyncio.Future[list[bytes]], n: int) -> list[bytes | BaseException]:
    """A batch's signatures, or its error once per message (a worker died, the key failed)."""
    if done.cancelled():
        return [asyncio.CancelledError()] * n
    error = done.exception()
    if error is not None:
        return [error] * n
    return list(done.result())
