"""The journal's writes from every connection, committed together off the event loop."""

from __future__ import annotations

import asyncio

from newsletter.errors import DeliveryError
from newsletter.send.journal import Journal, Write


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
