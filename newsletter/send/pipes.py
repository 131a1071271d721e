"""What the send says to its helper processes (journal writer, signing workers) and hears
back: length-prefixed frames; and a helper that never outlives the send.

Imports nothing heavy: the journal writer starts in a few tens of ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator

HEADER = struct.Struct("!I")  # a frame's length, big-endian


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def frames(buffer: bytearray) -> Iterator[bytes]:
    """The complete frames at the front of `buffer`, each removed as it is yielded; an
    unfinished one stays for the next read."""
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            return
        payload = bytes(buffer[HEADER.size : HEADER.size + size])
        del buffer[: HEADER.size + size]
        yield payload


def exit_with_parent() -> None:
    """In a helper process: exit as soon as the parent is gone (killed with SIGKILL, say),
    even if a process it forked still holds our pipes open."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a commit cut short is rolled back by SQLite: the parent never saw it

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """Fork helpers inside this: a terminal's Ctrl-C reaches the whole process group, and a
    helper must ignore it from its first instruction on (the send finishes what is in flight,
    then tells its helpers to stop)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def as_helper_process() -> None:
    """First thing in a forked helper: Ctrl-C ignored, SIGTERM ends it, and the wakeup
    descriptor of the parent's event loop, inherited, dropped: a signal caught here would
    otherwise reach the parent's loop too, as a second Ctrl-C (which quits at once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
