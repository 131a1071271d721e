"""The suppression file: addresses that must never be mailed again (hard bounces, complaints).

CSV with a header `email,reason,code,issue,date`; `send` subtracts it from the list; `send`
(on a hard bounce) and `bounces` append to it (`fsio.append`: a hand edit that left no final
newline does not glue the new entry to the last line). Read strictly: see `load`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from newsletter import fsio
from newsletter.errors import ErrorGroup, NewsletterError, SubscriberError
from newsletter.send.digests import DigestSet
from newsletter.send.digests import digest as digest  # re-exported for bounces

HEADER = ("email", "reason", "code", "issue", "date")


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    code: str
    issue: str
    date: str


def load(path: Path, *, rel: str) -> DigestSet:
    """The suppressed addresses, as digests (memory stays small for large files).

    Read strictly, as the subscriber list is (`listfile`): a line that is not one record (a
    stray `"` would swallow the rest of the file, and those readers would be mailed), a row
    with no address, or a file that is not UTF-8 is an error naming its line; every bad line
    is reported in one go, and nothing is dropped silently.
    """
    from newsletter.send.listfile import ListFile, records

    out = DigestSet()
    if not path.exists() or path.stat().st_size == 0:
        return out
    meta = ListFile(encoding="utf-8", delimiter=",")
    problems: list[NewsletterError] = []
    for record in records(path, rel=rel, meta=meta):
        if meta.encoding == "cp1252":
            raise SubscriberError(
                "not UTF-8 (a Windows-1252 edit?)",
                path=rel,
                line=record.line,
                hint="save the suppression file as UTF-8 CSV",
            )
        if not record.cells or all(not c.strip() for c in record.cells):
            continue
        assert meta.header is not None
        i = meta.header.email
        email = record.cells[i].strip() if i < len(record.cells) else ""
        if record.lines > 1 or "@" not in email:
            why = (
                "a quoted cell runs over several lines"
                if record.lines > 1
                else f"{email!r} is not an address"
                if email
                else "no address"
            )
            problems.append(
                SubscriberError(why, path=rel, line=record.line, hint="fix or remove the line")
            )
            continue
        out.add(digest(email))
    if meta.encoding == "cp1252":  # the first non-UTF-8 byte was on the header line
        raise SubscriberError(
            "not UTF-8", path=rel, line=1, hint="save the suppression file as UTF-8 CSV"
        )
    if problems:
        raise problems[0] if len(problems) == 1 else ErrorGroup(problems)
    return out


def append(path: Path, entries: Iterable[Suppression]) -> int:
    """Add entries (an address already there is not added twice); durable on return."""
    items = list(entries)
    if not items:
        return 0
    with _APPEND_LOCK:  # hard bounces of several connections arrive from worker threads
        return _append(path, items)


_APPEND_LOCK = threading.Lock()


def _append(path: Path, items: list[Suppression]) -> int:
    known = load(path, rel=str(path))
    fresh = [s for s in items if known.add(digest(s.email))]
    if not fresh:
        return 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writerow(HEADER)
    for s in fresh:
        writer.writerow([s.email, s.reason, s.code, s.issue, s.date])
    fsio.append(path, buf.getvalue().encode("utf-8"))
    return len(fresh)


def today() -> str:
    return dt.date.today().isoformat()
