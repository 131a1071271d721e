"""`newsletter report`: what the journal says about one issue's send, as typed values.

    read_report(layout, id) ─▶ SendReport (counts, problem rows, tallies by code and by domain)
    csv_rows(layout, id)    ─▶ one row per recipient, for `report --csv`

Reading only: nothing here writes the journal (the journal is created only if missing).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.layout import Layout
from newsletter.send.classify import enhanced_code
from newsletter.send.journal import Journal, Row, Status

#: The rows a report lists one by one: no final success, or no outcome yet (killed in flight).
PROBLEM_STATUSES = (Status.FAILED, Status.DEFERRED, Status.SENDING)
CSV_HEADER = ("email", "status", "attempts", "code", "reply", "message_id", "updated")


@dataclass(frozen=True)
class SendReport:
    issue_id: str
    counts: dict[str, int]  # every status, in the journal's order, zeros included
    problems: list[Row]  # failed, deferred, sending: by address
    by_code: list[tuple[str, int]]  # "550 5.1.1" → n, most frequent first
    by_domain: list[tuple[str, int]]
    by_relay: list[tuple[str, int]] = field(default_factory=list)  # sent, by relay name

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def read_report(layout: Layout, issue_id: str, /) -> SendReport | None:
    """The counts and the problems of `issue_id`'s send; None when it was never sent."""
    if not layout.journal_path.exists():
        return None
    journal = Journal.open(layout, issue_id)
    try:
        counts = journal.counts()
        if not sum(counts.values()):
            return None
        problems = list(journal.rows(PROBLEM_STATUSES))
        by_relay = journal.by_relay(Status.SENT)
    finally:
        journal.close()
    return SendReport(
        issue_id,
        counts,
        problems,
        by_code=ranked(reply_code(row) for row in problems),
        by_domain=ranked(row.email.rpartition("@")[2].lower() for row in problems),
        by_relay=by_relay,
    )


def reply_code(row: Row, /) -> str:
    """`550 5.1.1`, `421`, or `-` when the relay never answered."""
    return f"{row.code or '-'} {enhanced_code(row.reply) or ''}".strip()


def ranked(keys: Iterable[str]) -> list[tuple[str, int]]:
    """Each key with its count, most frequent first, ties alphabetically."""
    return sorted(Counter(keys).items(), key=lambda kv: (-kv[1], kv[0]))


def csv_rows(layout: Layout, issue_id: str, /) -> Iterator[tuple[str, ...]]:
    """Every recipient's outcome (the header first), for a spreadsheet."""
    yield CSV_HEADER
    journal = Journal.open(layout, issue_id)
    try:
        for row in journal.rows():
            yield (
                row.email,
                row.status,
                str(row.attempts),
                str(row.code or ""),
                row.reply,
                row.message_id,
                iso(row.updated),
            )
    finally:
        journal.close()


def write_csv(layout: Layout, issue_id: str, path: Path, /) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(csv_rows(layout, issue_id))


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")
