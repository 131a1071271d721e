"""The send journal's writer: a process that commits the sending process's rows.

    python -m newsletter.send.journal_writer JOURNAL_PATH

Started by `committer.GroupCommitter` for a send, so that SQLite's CPU and fsync run on
another core than the event loop. On stdin it reads frames (a 4-byte big-endian length, then
`marshal.dumps` of a list of row tuples, see `journal_sql.DeliveryRow`); it commits each
batch in one durable transaction and answers on stdout with one frame: `marshal.dumps(None)`
once the rows are committed, or the error's text. It exits when stdin closes, even mid-frame
(that batch is not written: the parent is gone, nobody waits for it). Only rows pass through
it, never a secret. Its imports stay minimal so that it starts in a few tens of ms.
"""

from __future__ import annotations

import marshal
import os
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
        error: str | None = None
        try:
            apply(db, marshal.loads(payload))
        except (sqlite3.Error, ValueError, TypeError, EOFError) as exc:
            error = str(exc) or type(exc).__name__
        stdout.write(frame(marshal.dumps(error)))
        stdout.flush()


def exit_with_parent() -> None:
    """Exit once the parent is gone, even if a process it forked still holds our stdin open."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a commit cut short is rolled back by SQLite: the parent never saw it

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal reaches the whole process group (and a service manager's SIGTERM
    # its whole group): the send finishes the messages in flight and commits their outcomes
    # through us, then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    stdout = sys.stdout.buffer
    try:
        db = connect(argv[1])
    except sqlite3.Error as exc:  # answered to the first batch: the parent names the file
        db = None
        opening = str(exc)
    try:
        if db is None:
            if read_frame(sys.stdin.buffer) is not None:
                stdout.write(frame(marshal.dumps(opening)))
                stdout.flush()
            return 1
        serve(db, sys.stdin.buffer, stdout)
    except BrokenPipeError:  # the parent is gone
        return 1
    finally:
        if db is not None:
            db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
