"""The journal's writes from every connection, committed together off the event loop.

By default the commits run in a writer process (`journal_writer`, one per send, shown by
`ps` as `python -P -m newsletter.send.journal_writer`): SQLite's CPU and fsync then run on
another core, and the event loop only writes a frame to a pipe and reads the answer. A
journal whose `commit` is its own (a test's disk that fails) is committed in a thread.
At most one batch is in flight, so the rows reach the file in the order they were written.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from newsletter.errors import DeliveryError
from newsletter.send.journal import Journal, Write
from newsletter.send.journal_sql import DeliveryRow
from newsletter.send.pipes import frame, frames

WRITER_MODULE = "newsletter.send.journal_writer"
# -P: the writer's code comes from where this process's does (site-packages, PYTHONPATH),
# never from a `newsletter` folder in the directory the send was started in.
WRITER_COMMAND = (sys.executable, "-P", "-m", WRITER_MODULE)
CLOSE_WAIT = 10.0  # seconds a writer has to finish and exit once its stdin is closed


class JournalError(DeliveryError):
    """The send journal could not be written: everything stops (the journal is the guarantee)."""


class WriterError(Exception):
    """The writer process could not commit a batch, or is gone."""


class WriterProcess:
    """This process's end of a `journal_writer` process: one batch at a time.

    `spawn`: a writer of our own on its stdin and stdout, started as early as the send knows
    it will send (it opens the journal at its first batch: a send refused before that leaves
    no file), so that its start-up overlaps the list checks; `attach`: the writer shared by
    the worker processes of a NEWSLETTER_SEND_PROCESSES send, on inherited pipe ends."""

    def __init__(
        self,
        pipes: tuple[int, int] | None = None,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.proc = proc
        self._pipes = pipes  # (read, write); answers read by the event loop from the first batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._incoming = bytearray()
        self._answer: asyncio.Future[bytes] | None = None  # the next answer's payload
        self.gone: str | None = None  # why it can take no more batches

    @classmethod
    def spawn(cls, path: Path) -> WriterProcess:
        """Started now, without an event loop or a thread (the signing workers fork later)."""
        proc = subprocess.Popen(
            [*WRITER_COMMAND, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # a crash's traceback: its last line names it
        )
        assert proc.stdout is not None and proc.stdin is not None
        return cls((proc.stdout.fileno(), proc.stdin.fileno()), proc)

    @classmethod
    def attach(cls, read_fd: int, write_fd: int) -> WriterProcess:
        return cls((read_fd, write_fd))

    def descriptors(self) -> list[int]:
        """This process's ends of its pipes (a process forked now must close them)."""
        if self.proc is not None:
            streams = (self.proc.stdin, self.proc.stdout, self.proc.stderr)
            return [s.fileno() for s in streams if s is not None and not s.closed]
        return list(self._pipes or ())

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answers are read by the event loop itself (no stream objects: a few per commit)."""
        assert self._pipes is not None
        read_fd = self._pipes[0]
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._readable, read_fd)
        self._loop = loop

    def _readable(self, read_fd: int) -> None:
        try:
            chunk = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        answer = self._answer
        if not chunk:  # the writer is gone
            self._stop_listening()
            if answer is not None and not answer.done():
                answer.set_exception(EOFError())
                answer.exception()  # retrieved: its commit may have stopped at the write
            return
        self._incoming += chunk
        for payload in frames(self._incoming):  # one answer: one batch is in flight
            if answer is not None and not answer.done():
                answer.set_result(payload)

    def _stop_listening(self) -> None:
        if self._loop is not None and self._pipes is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._pipes[0])
        self._loop = None

    def _close_pipes(self) -> None:
        self._stop_listening()
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
        elif self._pipes is not None:
            for fd in self._pipes:
                os.close(fd)
        self._pipes = None

    async def commit(self, rows: Sequence[DeliveryRow]) -> None:
        """Return once the writer has committed `rows`; WriterError if it could not.

        One batch at a time: the pipe is empty when a frame is written, so the (blocking)
        write never waits for more than the writer's next read."""
        if self.gone is not None:
            raise WriterError(self.gone)
        if self._pipes is None:
            raise WriterError("the journal writer is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._listen(loop)
        self._answer = loop.create_future()
        try:
            data = frame(marshal.dumps(list(rows)))
            while data:
                data = data[os.write(self._pipes[1], data) :]
            payload = await self._answer
        except (EOFError, OSError):
            self.gone = await self._why_gone()
            raise WriterError(self.gone) from None
        finally:
            self._answer = None
        answer = marshal.loads(payload)
        if answer is not None:
            raise WriterError(str(answer))

    async def _why_gone(self) -> str:
        if self.proc is None:  # the shared writer: the parent process reports how it ended
            return "the journal writer process is gone"
        code = await self._wait()
        last = ""
        if self.proc.stderr is not None:
            text = await asyncio.to_thread(self.proc.stderr.read)
            lines = text.decode(errors="replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the journal writer process stopped ({how}){last}"

    async def _wait(self) -> int:
        """Its exit status, once it has exited (killed after CLOSE_WAIT)."""
        assert self.proc is not None
        try:
            return await asyncio.to_thread(self.proc.wait, CLOSE_WAIT)
        except subprocess.TimeoutExpired:  # every batch was answered already: nothing is lost
            self.proc.kill()
            return await asyncio.to_thread(self.proc.wait)

    async def close(self) -> None:
        """Close its input and wait for it to exit (killed if it takes longer than
        CLOSE_WAIT); a shared writer exits once every worker has closed its input."""
        self._close_pipes()
        if self.proc is None:
            return
        try:
            await self._wait()
        except asyncio.CancelledError:  # the send itself was cancelled: never left behind
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.proc.stderr is not None:
                self.proc.stderr.close()


class GroupCommitter:
    """Commits journal writes from all workers together, off the event loop."""

    def __init__(self, journal: Journal, *, process: WriterProcess | None = None) -> None:
        """`process`: a writer started before the send (early, or shared by the worker
        processes of a NEWSLETTER_SEND_PROCESSES send); else one is started at the first
        commit."""
        self.journal = journal
        # The writer process runs `Journal.commit`'s SQL: a journal with a `commit` of its
        # own (a test's disk that fails) must have it called, in a thread.
        self.in_thread = type(journal).commit is not Journal.commit
        self.process = None if self.in_thread else process
        self._queue: list[tuple[list[Write], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def write(self, *writes: Write) -> None:
        await self.submit(*writes)

    def submit(self, *writes: Write) -> asyncio.Future[None]:
        """`write` without waiting: the future is done once the rows are committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((list(writes), future))
        self._wake.set()
        return future

    async def _commit(self, writes: list[Write]) -> None:
        if self.in_thread:
            await asyncio.to_thread(self.journal.commit, writes)
            return
        if self.process is None:
            self.process = WriterProcess.spawn(self.journal.path)
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
                                JournalError(
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
