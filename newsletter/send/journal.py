"""The send journal: one outcome per (issue, recipient), in SQLite, outside build/.

A recipient is marked `sending` (committed) before its message leaves, and gets its outcome
(`sent`, `failed`, `deferred`) committed before the next message leaves that connection.
After a crash, `sending` rows are the messages that were in flight: they are sent again,
counted and reported, so nobody is skipped and at most those few get two copies.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

from newsletter.errors import DeliveryError
from newsletter.layout import Layout
from newsletter.send.digests import DigestSet, digest
from newsletter.send.journal_sql import DeliveryRow, apply, connect

T = TypeVar("T")


class Status(StrEnum):
    """A recipient's delivery state: the journal's `status` column, and the report's counts."""

    SENDING = "sending"  # committed before the message leaves; still there: it was in flight
    SENT = "sent"
    DEFERRED = "deferred"  # a temporary failure: tried again by the next run
    FAILED = "failed"  # permanent for this recipient: never tried again (but --retry-failed)


SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    issue TEXT NOT NULL,
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({statuses})),
    attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER,
    reply TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    relay TEXT,
    PRIMARY KEY (issue, email_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    issue TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    first_started REAL NOT NULL,
    last_started REAL NOT NULL,
    articles TEXT
);
""".format(statuses=", ".join(f"'{s}'" for s in Status))


@dataclass(frozen=True)
class Row:
    email: str
    status: Status
    attempts: int
    code: int | None
    reply: str
    message_id: str
    updated: float
    relay: str | None = None  # the relay that took it (None: journaled before issue 14)


class Write(NamedTuple):
    """One row change; several are committed together (group commit). A NamedTuple: two are
    made for every message sent, and a frozen dataclass's __init__ costs several times more."""

    email: str
    status: Status
    attempts: int
    code: int | None = None
    reply: str = ""
    message_id: str = ""
    relay: str | None = None


@contextmanager
def unusable_journal(shown: str, doing: str) -> Iterator[None]:
    """A corrupt, read-only or otherwise unusable journal file: one DeliveryError line."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DeliveryError(
            f"the send journal cannot be {doing}: {exc}",
            path=shown,
            hint="restore state/ from a backup, or check the file's permissions; "
            "the journal is the record of who was mailed",
        ) from None


class Journal:
    def __init__(self, path: Path, issue_id: str, *, shown: str | None = None) -> None:
        self.path = path
        self.issue_id = issue_id
        self.shown = shown or str(path)  # how errors name the file
        path.parent.mkdir(parents=True, exist_ok=True)
        with unusable_journal(self.shown, "opened"):
            # Used from one worker thread at a time (the delivery's committer), hence no check.
            self.db = connect(path, check_same_thread=False)
            self.db.executescript(SCHEMA)
            self._migrate()
        self._lock_file: IO[str] | None = None

    def _migrate(self) -> None:
        """A journal from before issue 14 gets the nullable `relay` column (rows keep NULL);
        one from before the article lists were recorded, the nullable `runs.articles`."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(deliveries)")}
        if "relay" not in columns:
            self.db.execute("ALTER TABLE deliveries ADD COLUMN relay TEXT")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(runs)")}
        if "articles" not in columns:
            self.db.execute("ALTER TABLE runs ADD COLUMN articles TEXT")

    @classmethod
    def open(cls, layout: Layout, issue_id: str) -> Journal:
        return cls(layout.journal_path, issue_id, shown=layout.rel(layout.journal_path))

    # -- one send at a time -------------------------------------------------------------

    def lock(self) -> None:
        """Refuse a second concurrent send of the same issue (released even on SIGKILL)."""
        lock_path = self.path.parent / f"send-{self.issue_id}.lock"
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise DeliveryError(
                f"a send of issue {self.issue_id} is already running (pid {pid})",
                hint="wait for it to finish, or stop it with Ctrl-C; it can be resumed",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def knows_issue(self) -> bool:
        """True once a send of this issue has begun (a `runs` row, written by `bind`)."""
        row = self.db.execute("SELECT 1 FROM runs WHERE issue = ?", (self.issue_id,)).fetchone()
        return row is not None

    def bind(
        self, content_hash: str, *, allow_rebuilt: bool, articles: Sequence[str] = ()
    ) -> None:
        """Tie this issue's journal to one build; a different build is refused when resuming.

        `articles`: the slugs of the build, recorded by the first send (kept by the later
        ones): from then on the issue is these articles (`evidence.sent_articles`), whatever its
        [select] rules would pick from the articles written since.
        """
        with unusable_journal(self.shown, "written"):
            self._bind(content_hash, allow_rebuilt=allow_rebuilt, articles=articles)

    def _bind(self, content_hash: str, *, allow_rebuilt: bool, articles: Sequence[str]) -> None:
        now = time.time()
        listed = json.dumps(list(articles), ensure_ascii=False) if articles else None
        row = self.db.execute(
            "SELECT content_hash FROM runs WHERE issue = ?", (self.issue_id,)
        ).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO runs (issue, content_hash, first_started, last_started, articles) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.issue_id, content_hash, now, now, listed),
            )
            return
        if row[0] != content_hash and not allow_rebuilt and self.count_started() > 0:
            raise DeliveryError(
                f"build/{self.issue_id}/ changed since this issue's send began",
                hint="resume with the same build, or pass --allow-rebuilt to send the new "
                "build to the recipients not yet mailed",
            )
        # Nobody tried yet: the list is this build's. Else the list stays the first one (a
        # send begun before lists were recorded gets the one it resumes with).
        keep = "COALESCE(articles, ?)" if self.count_started() > 0 else "?"
        self.db.execute(
            f"UPDATE runs SET content_hash = ?, last_started = ?, articles = {keep} "
            "WHERE issue = ?",
            (content_hash, now, listed, self.issue_id),
        )

    # -- reading ----------------------------------------------------------------------------

    def count_started(self) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE issue = ?", (self.issue_id,)
            ).fetchone()[0]
        )

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Status}
        for status, n in self.db.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE issue = ? GROUP BY status",
            (self.issue_id,),
        ):
            out[status] = n
        return out

    def final_digests(self, *, include_failed: bool = True) -> DigestSet:
        """Recipients with a final outcome (sent, or failed permanently): never mailed again.

        `include_failed=False` (send --retry-failed) lets permanent failures be tried again.
        """
        return _final_digests(self.db, self.issue_id, include_failed=include_failed)

    def by_relay(self, status: Status = Status.SENT) -> list[tuple[str, int]]:
        """(relay, messages) of this issue with `status`, most first ('-': journaled before
        relays were recorded)."""
        rows = self.db.execute(
            "SELECT COALESCE(relay, '-'), COUNT(*) FROM deliveries WHERE issue = ? AND "
            "status = ? GROUP BY 1 ORDER BY 2 DESC, 1",
            (self.issue_id, status),
        ).fetchall()
        return [(str(relay), int(n)) for relay, n in rows]

    def sent_today(self) -> dict[str, int]:
        """{relay: messages sent through it since 00:00 UTC, every issue} (daily quotas)."""
        midnight = time.time() // 86400 * 86400
        rows = self.db.execute(
            "SELECT relay, COUNT(*) FROM deliveries WHERE relay IS NOT NULL AND status = ? "
            "AND updated >= ? GROUP BY relay",
            (Status.SENT, midnight),
        ).fetchall()
        return {str(relay): int(n) for relay, n in rows}

    def in_flight(self) -> list[str]:
        """Addresses whose message was leaving when a previous send was killed."""
        return [
            email
            for (email,) in self.db.execute(
                "SELECT email FROM deliveries WHERE issue = ? AND status = ?",
                (self.issue_id, Status.SENDING),
            )
        ]

    def rows(self, statuses: Iterable[Status] | None = None) -> Iterator[Row]:
        sql = (
            "SELECT email, status, attempts, code, reply, message_id, updated, relay "
            "FROM deliveries "
            "WHERE issue = ?"
        )
        params: list[Any] = [self.issue_id]
        if statuses is not None:
            wanted = list(statuses)
            sql += f" AND status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        for email, status, *rest in self.db.execute(sql + " ORDER BY email_key", params):
            yield Row(email, Status(status), *rest)

    # -- writing --------------------------------------------------------------------------------

    def commit(self, writes: Iterable[Write]) -> None:
        """Apply the writes in one durable transaction."""
        apply(self.db, self.rows_of(writes))

    def rows_of(self, writes: Iterable[Write]) -> list[DeliveryRow]:
        """The rows `commit` writes (also what the journal writer process is sent)."""
        now = time.time()
        return [
            (
                self.issue_id,
                w.email.lower(),
                w.email,
                str(w.status),  # a plain str: marshal refuses the enum
                w.attempts,
                w.code,
                w.reply,
                w.message_id,
                now,
                w.relay,
            )
            for w in writes
        ]

    def close(self) -> None:
        self.db.close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def all_recipients(path: Path) -> Iterator[tuple[str, str]]:
    """(issue, address) of every row, all issues (VERP look-ups); nothing if no journal yet."""
    if not path.exists():
        return
    db = sqlite3.connect(path)
    try:
        yield from db.execute("SELECT issue, email FROM deliveries")
    except sqlite3.OperationalError:  # a journal file without the table: nothing was sent
        return
    finally:
        db.close()


def read_only(
    path: Path, query: Callable[[sqlite3.Connection], T], *, empty: T, shown: str | None = None
) -> T:
    """`query` on the journal opened read-only (the archive, bounces and builds never change
    it, even during a send); `empty` without a journal or its tables; a DeliveryError naming
    the file (`shown`) for a corrupt or unreadable one (issue 13)."""
    if not path.exists():
        return empty
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        return query(db)
    except sqlite3.DatabaseError as exc:  # OperationalError, and a corrupt file
        if "no such table" in str(exc):  # a journal file without the tables: nothing was sent
            return empty
        raise DeliveryError(
            f"cannot read the send journal: {exc}", path=shown or str(path),
            hint="check the file's permissions; a send may be holding it",
        ) from None
    finally:
        db.close()


def _final_digests(db: sqlite3.Connection, issue_id: str, *, include_failed: bool) -> DigestSet:
    final = [Status.SENT, Status.FAILED] if include_failed else [Status.SENT]
    done = DigestSet()
    for (email,) in db.execute(
        f"SELECT email_key FROM deliveries WHERE issue = ? AND status IN "
        f"({', '.join('?' * len(final))})",
        (issue_id, *final),
    ):
        done.add(digest(email))
    return done


def final_digests(path: Path, issue_id: str, *, include_failed: bool = True) -> DigestSet:
    """`Journal.final_digests` read-only, without locking or creating anything (a dry run)."""
    return read_only(
        path, lambda db: _final_digests(db, issue_id, include_failed=include_failed),
        empty=DigestSet(),
    )


def first_sent(path: Path) -> dict[str, float]:
    """{issue: time of its first `sent` row} for every issue mailed to at least one recipient.

    Opens the journal read-only (the archive must never change it, even during a send);
    nothing when there is no journal yet.
    """
    rows: list[Any] = read_only(path, lambda db: db.execute(
        "SELECT issue, MIN(updated) FROM deliveries WHERE status = ? GROUP BY issue",
        (Status.SENT,),
    ).fetchall(), empty=[])
    return {str(issue): float(at) for issue, at in rows}


def last_sent(path: Path) -> dict[str, str]:
    """{address (lower case): the issue last `sent` to it, by send time} for every address.

    Only `sent` rows: a `deferred`, `failed` or `sending` row is a message the relay never
    took (or may not have), so a bounce cannot be about it. By time, not by id: `2026-11-5`
    sorts after `2026-11-11` as a string. Read-only; nothing when there is no journal yet.
    """
    # SQLite takes the bare column `issue` from the row holding the MAX(updated).
    rows: list[Any] = read_only(path, lambda db: db.execute(
        "SELECT email_key, issue, MAX(updated) FROM deliveries WHERE status = ? "
        "GROUP BY email_key",
        (Status.SENT,),
    ).fetchall(), empty=[])
    return {str(address): str(issue) for address, issue, _ in rows}


def by_message_id(path: Path, message_id: str) -> tuple[str, str] | None:
    """(issue, address) of the message sent with this Message-ID (complaints); None if none."""
    row = read_only(path, lambda db: db.execute(
        "SELECT issue, email FROM deliveries WHERE message_id IN (?, ?) LIMIT 1",
        (message_id, f"<{message_id.strip('<>')}>"),
    ).fetchone(), empty=None)
    return (str(row[0]), str(row[1])) if row else None
