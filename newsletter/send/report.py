"""`newsletter report`: what the journal says about one issue's send, as typed values.

    read_report(layout, id) ─▶ SendReport (counts, problem rows, tallies by code and by domain)
    csv_rows(layout, id)    ─▶ one row per recipient, for `report --csv` (cells that a
                               spreadsheet would run as formulas are neutralised by write_csv)
    untried(layout, id, …)  ─▶ the list's recipients not yet tried (needs the list file)

Reading only: nothing here writes the journal (the journal is created only if missing).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import fsio
from newsletter.layout import Layout
from newsletter.send.classify import enhanced_code
from newsletter.send.digests import DigestSet, digest
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


#: A cell starting with one of these is a formula to a spreadsheet (`=HYPERLINK(...)`, `@SUM`):
#: an address like `=cmd|' /C calc'!A0@x.org` passes the syntax check, so every cell is guarded.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """`'=1+2` for `=1+2`: shown as text by spreadsheets (the OWASP CSV-injection advice)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def write_csv(layout: Layout, issue_id: str, path: Path, /) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in csv_rows(layout, issue_id):
        writer.writerow([neutralise(cell) for cell in row])
    fsio.write_file(path, buf.getvalue().encode("utf-8"))


def untried(layout: Layout, issue_id: str, /, *, subscribers: Path, suppression_file: Path) -> int:
    """Recipients `send` would still mail: on the list, mailable, not suppressed, and with no
    journal row (a row that is deferred or in flight is counted by the report already)."""
    from newsletter.send import suppressions
    from newsletter.send.subscribers import unique_mailable

    tried = DigestSet()
    if layout.journal_path.exists():
        journal = Journal.open(layout, issue_id)
        try:
            for row in journal.rows():
                tried.add(digest(row.email))
        finally:
            journal.close()
    suppressed = suppressions.load(suppression_file, rel=layout.rel(suppression_file))
    count = 0
    for sub in unique_mailable(subscribers, rel=layout.rel(subscribers)):
        d = digest(sub.email)
        count += d not in tried and d not in suppressed
    return count


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")
