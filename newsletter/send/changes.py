"""Readers' changes from `newsletter serve`, durable before they are answered, then applied.

    record(email, action, source, at)  one row in state/changes.db, committed (WAL,
                                       synchronous=FULL): a SIGKILL after this loses nothing
    Changes.apply(list_path)           under the list's lock, each unapplied row goes to the
                                       list file (liststore.set_status / add), then is marked
    unsubscribed_since(path, t)        addresses whose latest change since `t` is an
                                       unsubscribe: what a running `send` skips
    Recent(path)                       that set, cached and refreshed every REFRESH_SECONDS
    Changes.last_at(email)             when the address last changed: what tells a pending
                                       sign-up from a replayed confirmation link
    note_applied(path, email, ...)     a change `newsletter unsubscribe` made, logged as applied

The list file stays the list of record; this table is the write-ahead log in front of it. A
change not yet applied (the server died between the two steps) is applied at the next start
of `serve`, and a `send` honours it before that through `unsubscribed_since`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from newsletter.errors import SubscriberError
from newsletter.send import liststore

Action = Literal["unsubscribe", "subscribe"]
FILE_NAME = "changes.db"
#: How stale the set a running send consults may be: "stops within a few seconds".
REFRESH_SECONDS = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT NOT NULL,
    at REAL NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    applied_at REAL
);
CREATE INDEX IF NOT EXISTS changes_email ON changes (email, id);
CREATE INDEX IF NOT EXISTS changes_pending ON changes (applied_at) WHERE applied_at IS NULL;
"""


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    email: str
    action: Action
    source: str
    at: float
    name: str = ""


def path_in(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def connect(path: Path) -> sqlite3.Connection:
    """The changes database, created if needed; every commit is on disk when it returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # WAL's default NORMAL may lose the last commits
    db.executescript(_SCHEMA)
    return db


class Changes:
    """The changes table of one folder, shared by the server's threads (one connection, a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def record(
        self, email: str, action: Action, source: str, at: float, *, name: str = ""
    ) -> Change:
        """Commit one change; durable when this returns."""
        (change,) = self.record_many([(email, action, source, at, name)])
        return change

    def record_many(self, items: list[tuple[str, Action, str, float, str]]) -> list[Change]:
        """Commit several changes in one transaction (one fsync); durable when this returns."""
        done: list[Change] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for email, action, source, at, name in items:
                    cur = self._db.execute(
                        "INSERT INTO changes (email, action, source, at, name) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (email.lower(), action, source, at, name),
                    )
                    done.append(Change(int(cur.lastrowid or 0), email.lower(), action, source,
                                       at, name))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return done

    def last_at(self, email: str) -> float | None:
        """When the latest change of `email` (any case) was recorded, or None."""
        with self._lock:
            (at,) = self._db.execute(
                "SELECT MAX(at) FROM changes WHERE email = ?", (email.lower(),)
            ).fetchone()
        return float(at) if at is not None else None

    def pending(self) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, email, action, source, at, name FROM changes "
                "WHERE applied_at IS NULL ORDER BY id"
            ).fetchall()
        return [Change(*row) for row in rows]

    def mark_applied(self, ids: list[int], at: float) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE changes SET applied_at = ? WHERE id = ?", [(at, i) for i in ids]
            )
            self._db.execute("COMMIT")

    def apply(self, list_path: Path, changes: list[Change] | None = None) -> int:
        """Apply `changes` (default: every pending one) to the list file under its lock."""
        todo = self.pending() if changes is None else changes
        if not todo:
            return 0
        apply_all(list_path, todo)
        self.mark_applied([c.id for c in todo], time.time())
        return len(todo)


def note_applied(path: Path, email: str, action: Action, source: str, at: float) -> None:
    """Log a change another command already made to the list (`newsletter unsubscribe`):
    `serve` then knows when it happened (an older confirmation link must not undo it) and a
    running send skips the reader. Recorded as applied: `serve` never applies it again."""
    log = Changes(path)
    try:
        (change,) = log.record_many([(email, action, source, at, "")])
        log.mark_applied([change.id], at)
    finally:
        log.close()


def unsubscribe_noted(
    list_path: Path, state_dir: Path, email: str, *, source: str, rel: str
) -> int:
    """`email` unsubscribed in the list file (every row of it) by a command, and the change
    logged with its time (`note_applied`) when it changed a row; the rows changed. What
    `newsletter unsubscribe`, a complaint and a mailto request do alike. Raises
    SubscriberError when the list has no such address."""
    changed = liststore.set_status(list_path, email, "unsubscribed", rel=rel)
    if changed:
        note_applied(path_in(state_dir), email, "unsubscribe", source, time.time())
    return changed


def apply_all(list_path: Path, todo: list[Change]) -> None:
    """The changes, in order, to the list file, with the list's lock held for all of them.

    Only `liststore.set_status` and `liststore.add`: each rewrites the file, but the lock is
    taken once for the group. An unsubscribe for an address no longer in the list (removed by
    hand) has nothing left to do.
    """
    with liststore.lock(list_path):
        for change in todo:
            if change.action == "unsubscribe":
                with contextlib.suppress(SubscriberError):
                    liststore.set_status(list_path, change.email, "unsubscribed")
                continue
            fields = {"consent_at": _iso(change.at), "source": change.source}
            liststore.add(list_path, change.email, change.name, fields=fields)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def unsubscribed_since(path: Path, t: float) -> set[str]:
    """Lower-cased addresses whose latest change at or after `t` is an unsubscribe.

    Read-only and cheap (one indexed query); an absent database means no change.
    """
    if not path.exists():
        return set()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT email, action FROM changes WHERE id IN "
            "(SELECT MAX(id) FROM changes WHERE at >= ? GROUP BY email)",
            (t,),
        ).fetchall()
    except sqlite3.OperationalError:  # created but still without its table
        return set()
    finally:
        db.close()
    return {email for email, action in rows if action == "unsubscribe"}


class Recent:
    """`unsubscribed_since(path, 0)`, refreshed at most every REFRESH_SECONDS: a send asks it
    before each message at no cost."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._at = float("-inf")
        self._set: set[str] = set()

    def __contains__(self, email: object) -> bool:
        now = self._clock()
        if now - self._at >= REFRESH_SECONDS:
            self._set = unsubscribed_since(self.path, 0.0)
            self._at = now
        return isinstance(email, str) and email.lower() in self._set
