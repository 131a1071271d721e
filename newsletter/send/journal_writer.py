"""The send journal's writer: a process that commits the sending process's rows.

    python -m newsletter.send.journal_writer JOURNAL_PATH [--fds R,W,R,W...]

Started by `committer.GroupCommitter` for a send, so that SQLite's CPU and fsync run on
another core than the event loop. On stdin it reads frames (a 4-byte big-endian length, then
`marshal.dumps` of a list of row tuples, see `journal_sql.DeliveryRow`); it commits each
batch in one durable transaction and answers on stdout with one frame: `marshal.dumps(None)`
once the rows are committed, or the error's text. It exits when stdin closes, even mid-frame
(that batch is not written: the parent is gone, nobody waits for it). With --fds it serves
the worker processes of a NEWSLETTER_SEND_PROCESSES send, each on its own pair of pipes,
committing their waiting batches together. Only rows pass through
it, never a secret. Its imports stay minimal so that it starts in a few tens of ms.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import selectors
import signal
import sqlite3
import struct
import sys
import threading
import time
from typing import BinaryIO

from newsletter.send.journal_sql import apply, connect

HEADER = struct.Struct("!I")


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload, or None at end of file (also mid-frame)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def serve(db: sqlite3.Connection, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """One answer per batch, in order, until stdin closes."""
    while (payload := read_frame(stdin)) is not None:
        answer(stdout, _commit(db, [payload]))


def answer(stdout: BinaryIO, error: str | None) -> None:
    stdout.write(frame(marshal.dumps(error)))
    stdout.flush()


def _commit(db: sqlite3.Connection, payloads: list[bytes]) -> str | None:
    """The batches' rows in one transaction: None, or why they could not be written."""
    try:
        apply(db, [row for payload in payloads for row in marshal.loads(payload)])
    except (sqlite3.Error, ValueError, TypeError, EOFError) as exc:
        return str(exc) or type(exc).__name__
    return None


def serve_many(db: sqlite3.Connection, clients: list[tuple[int, int]]) -> None:
    """Several sending processes, each on its own (read, write) pair of pipes: whatever
    batches are waiting, from any of them, are committed in one transaction, then each gets
    its answer. Ends when every client has closed its pipe."""
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytearray] = {}
    for read_fd, write_fd in clients:
        selector.register(read_fd, selectors.EVENT_READ, write_fd)
        buffers[read_fd] = bytearray()
    while buffers:
        ready: list[tuple[int, bytes]] = []  # (answer fd, payload), in arrival order
        for key, _ in selector.select():
            read_fd, write_fd = int(key.fd), int(key.data)
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:  # that client is done (or gone): a partial batch is dropped
                selector.unregister(read_fd)
                del buffers[read_fd]
                os.close(read_fd)
                os.close(write_fd)
                continue
            buffer = buffers[read_fd]
            buffer += chunk
            while len(buffer) >= HEADER.size:
                (size,) = HEADER.unpack_from(buffer)
                if len(buffer) < HEADER.size + size:
                    break
                ready.append((write_fd, bytes(buffer[HEADER.size : HEADER.size + size])))
                del buffer[: HEADER.size + size]
        if ready:
            answer = frame(marshal.dumps(_commit(db, [payload for _, payload in ready])))
            for write_fd, _ in ready:
                # A few bytes: the pipe always takes them. A client gone: its read end
                # closes on the next select.
                with contextlib.suppress(BrokenPipeError):
                    os.write(write_fd, answer)


def exit_with_parent() -> None:
    """Exit once the parent is gone, even if a process it forked still holds our stdin open."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a commit cut short is rolled back by SQLite: the parent never saw it

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    """`journal_writer PATH`: one client on stdin/stdout; `journal_writer PATH --fds
    R,W,R,W...`: one client per pair of inherited pipe ends (processes.py)."""
    # Ctrl-C in a terminal reaches the whole process group (and a service manager's SIGTERM
    # its whole group): the send finishes the messages in flight and commits their outcomes
    # through us, then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    fds = [int(fd) for fd in argv[3].split(",")] if argv[2:3] == ["--fds"] else []
    clients = list(zip(fds[::2], fds[1::2], strict=True))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # One client: started before the send knows it will send, so the journal is opened at
    # the first batch (a send refused before it leaves no file behind).
    first = None if clients else read_frame(stdin)
    if first is None and not clients:
        return 0
    try:
        db = connect(argv[1])
    except sqlite3.Error as exc:
        for _, write_fd in clients:
            os.write(write_fd, frame(marshal.dumps(str(exc))))
        if first is not None:
            answer(stdout, str(exc))  # the parent names the file
        return 1
    try:
        if clients:
            serve_many(db, clients)
        else:
            assert first is not None
            answer(stdout, _commit(db, [first]))
            serve(db, stdin, stdout)
    except BrokenPipeError:  # the parent is gone
        return 1
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
