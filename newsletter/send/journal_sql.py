"""How the send journal is opened and how a batch of rows is committed: the one place for it.

Used by `journal.Journal` (in the sending process) and by `journal_writer` (the process that
commits for a send). It imports nothing but sqlite3, so that the writer starts in a few ms.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

# (issue, email_key, email, status, attempts, code, reply, message_id, updated, relay)
DeliveryRow = tuple[str, str, str, str, int, int | None, str, str, float, str | None]

UPSERT = (
    "INSERT INTO deliveries (issue, email_key, email, status, attempts, code, "
    "reply, message_id, updated, relay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (issue, email_key) DO UPDATE SET status = excluded.status, "
    "attempts = excluded.attempts, code = excluded.code, reply = excluded.reply, "
    "message_id = excluded.message_id, updated = excluded.updated, "
    "relay = excluded.relay"
)


def connect(path: Path | str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """The journal, in autocommit mode (transactions are explicit), durable and patient."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives a power loss, not only a crash of this process.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def apply(db: sqlite3.Connection, rows: Sequence[DeliveryRow]) -> None:
    """Write the rows in one durable transaction (all of them, or none)."""
    if not rows:
        return
    with db:  # BEGIN ... COMMIT, or ROLLBACK on an error
        db.execute("BEGIN IMMEDIATE")
        db.executemany(UPSERT, rows)
