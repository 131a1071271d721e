"""The send journal's writer: a process that commits the sending process's rows.

    python -m newsletter.send.journal_writer JOURNAL_PATH [--fds R,W,R,W...]

Started by `committer.GroupCommitter` for a send, so that SQLite's CPU and fsync run on
another core than the event loop. On stdin it reads frames (`pipes.frame` of
`marshal.dumps` of a list of row tuples, see `journal_sql.DeliveryRow`); it commits each
batch in one durable transaction and answers on stdout with one frame: `marshal.dumps(None)`
once the rows are committed, or the error's text. It opens the journal at the first batch
(a send refused before it leaves no file), and exits when stdin closes, even mid-frame
(that batch is not written: the parent is gone, nobody waits for it). With --fds it serves
the worker processes of a NEWSLETTER_SEND_PROCESSES send, each on its own pair of pipes,
committing their waiting batches together. Only rows pass through it, never a secret. Its
imports stay minimal so that it starts in a few tens of ms.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import selectors
import signal
import sqlite3
import sys

from newsletter.send.journal_sql import apply, connect
from newsletter.send.pipes import exit_with_parent, frame, frames


def serve(path: str, clients: list[tuple[int, int]]) -> int:
    """Each client (a sending process) on its own (read, write) pair of pipes: whatever
    batches are waiting, from any of them, are committed in one transaction, then each gets
    its answer, in order. The journal is opened at the first batch. Ends when every client
    has closed its pipe; 1 if the journal cannot be opened (said to the first batches)."""
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytearray] = {}
    for read_fd, write_fd in clients:
        selector.register(read_fd, selectors.EVENT_READ, write_fd)
        buffers[read_fd] = bytearray()
    db: sqlite3.Connection | None = None
    try:
        while buffers:
            ready = _read(selector, buffers)
            if not ready:
                continue
            if db is None:
                try:
                    db = connect(path)
                except sqlite3.Error as exc:  # the parent names the file
                    _answer(ready, str(exc))
                    return 1
            _answer(ready, _commit(db, [payload for _, payload in ready]))
    finally:
        if db is not None:
            db.close()
    return 0


def _read(
    selector: selectors.BaseSelector, buffers: dict[int, bytearray]
) -> list[tuple[int, bytes]]:
    """The complete batches now waiting: (answer fd, payload), in arrival order."""
    ready: list[tuple[int, bytes]] = []
    for key, _ in selector.select():
        read_fd, write_fd = int(key.fd), int(key.data)
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:  # that client is done (or gone): a partial batch is dropped
            selector.unregister(read_fd)
            del buffers[read_fd]
            continue
        buffers[read_fd] += chunk
        ready += [(write_fd, payload) for payload in frames(buffers[read_fd])]
    return ready


def _commit(db: sqlite3.Connection, payloads: list[bytes]) -> str | None:
    """The batches' rows in one transaction: None, or why they could not be written."""
    try:
        apply(db, [row for payload in payloads for row in marshal.loads(payload)])
    except (sqlite3.Error, ValueError, TypeError, EOFError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _answer(ready: list[tuple[int, bytes]], error: str | None) -> None:
    answer = frame(marshal.dumps(error))
    for write_fd, _ in ready:
        # A few bytes: the pipe takes them. A client gone: its read end ends at its EOF.
        with contextlib.suppress(BrokenPipeError):
            os.write(write_fd, answer)


def main(argv: list[str]) -> int:
    """`journal_writer PATH`: one client on stdin/stdout; `journal_writer PATH --fds
    R,W,R,W...`: one client per pair of inherited pipe ends (processes.py)."""
    # Ctrl-C in a terminal reaches the whole process group (and a service manager's SIGTERM
    # its whole group): the send finishes the messages in flight and commits their outcomes
    # through us, then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    fds = [int(fd) for fd in argv[3].split(",")] if argv[2:3] == ["--fds"] else [0, 1]
    try:
        return serve(argv[1], list(zip(fds[::2], fds[1::2], strict=True)))
    except BrokenPipeError:  # the parent is gone
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
