"""The journal's writes from every connection, committed together off the event loop.

By default the commits run in a writer process (`journal_writer`, one per send, shown by
`ps` as `python -m newsletter.send.journal_writer`): SQLite's CPU and fsync then run on
another core, and the event loop only writes a frame to a pipe and reads the answer. A
journal whose `commit` is its own (a test's disk that fails) is committed in a thread.
At most one batch is in flight, so the rows reach the file in the order they were written.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import sys
from collections.abc import Sequence
from typing import Literal

from newsletter.errors import DeliveryError
from newsletter.send.journal import Journal, Write
from newsletter.send.journal_sql import DeliveryRow
from newsletter.send.journal_writer import HEADER, frame

WRITER_MODULE = "newsletter.send.journal_writer"
CLOSE_WAIT = 10.0  # seconds a writer has to finish and exit once its stdin is closed


class WriterError(Exception):
    """The writer process could not commit a batch, or is gone."""


class WriterProcess:
    """This process's end of a `journal_writer` process: one batch at a time.

    `start`: a writer of our own (its stdin and stdout); `attach`: a writer shared by the
    worker processes of a NEWSLETTER_SEND_PROCESSES send, on inherited pipe ends."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        proc: asyncio.subprocess.Process | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.proc = proc
        self.gone: str | None = None  # why it can take no more batches

    @classmethod
    async def start(cls, journal: Journal) -> WriterProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", WRITER_MODULE, str(journal.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,  # a crash's traceback: its last line names it
        )
        assert proc.stdout is not None and proc.stdin is not None
        return cls(proc.stdout, proc.stdin, proc)

    @classmethod
    async def attach(cls, read_fd: int, write_fd: int) -> WriterProcess:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
        )
        return cls(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def commit(self, rows: Sequence[DeliveryRow]) -> None:
        """Return once the writer has committed `rows`; WriterError if it could not."""
        if self.gone is not None:
            raise WriterError(self.gone)
        try:
            self.writer.write(frame(marshal.dumps(list(rows))))
            await self.writer.drain()  # waits only if the pipe is full
            (size,) = HEADER.unpack(await self.reader.readexactly(HEADER.size))
            answer = marshal.loads(await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone = await self._why_gone()
            raise WriterError(self.gone) from None
        if answer is not None:
            raise WriterError(str(answer))

    async def _why_gone(self) -> str:
        if self.proc is None:  # the shared writer: the parent process reports how it ended
            return "the journal writer process is gone"
        try:
            code = await asyncio.wait_for(self.proc.wait(), CLOSE_WAIT)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        stderr = self.proc.stderr
        last = ""
        if stderr is not None:
            lines = (await stderr.read()).decode(errors="replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the journal writer process stopped ({how}){last}"

    async def close(self) -> None:
        """Close its input and wait for it to exit (killed if it takes longer than
        CLOSE_WAIT); a shared writer exits once every worker has closed its input."""
        self.writer.close()
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), CLOSE_WAIT)
        except TimeoutError:  # every batch was answered already: nothing is lost
            self.proc.kill()
            await self.proc.wait()
        except asyncio.CancelledError:  # the send itself was cancelled: never left behind
            self.proc.kill()
            await asyncio.shield(self.proc.wait())
            raise


class GroupCommitter:
    """Commits journal writes from all workers together, off the event loop."""

    def __init__(
        self, journal: Journal, *, writer: Literal["process", "thread"] | None = None
    ) -> None:
        self.journal = journal
        if writer is None:
            # The writer process runs `Journal.commit`'s SQL; another commit must be called.
            own_commit = type(journal).commit is not Journal.commit
            writer = "thread" if own_commit or str(journal.path) == ":memory:" else "process"
        self.writer: Literal["process", "thread"] = writer
        self.process: WriterProcess | None = None
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

    async def _commit(self, writes: list[Write]) -> None:
        if self.writer == "thread":
            await asyncio.to_thread(self.journal.commit, writes)
            return
        if self.process is None:
            link = self.journal.writer_link
            self.process = await (
                WriterProcess.start(self.journal) if link is None else WriterProcess.attach(*link)
            )
        await self.process.commit(self.journal.rows_of(writes))

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            if self.process is not None:
                await self.process.close()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                writes = [w for ws, _ in batch for w in ws]
                try:
                    await self._commit(writes)
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
