"""The suppression file: addresses that must never be mailed again (hard bounces, complaints).

CSV with a header `email,reason,code,issue,date`; `send` subtracts it from the list; `send`
(on a hard bounce) and `bounces` append to it.
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
from newsletter.errors import SubscriberError
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
    """The suppressed addresses, as digests (memory stays small for large files)."""
    out = DigestSet()
    if not path.exists():
        return out
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:  # an empty file
            return out
        if "email" not in reader.fieldnames:
            raise SubscriberError(
                "no 'email' column in the header",
                path=rel,
                line=1,
                hint=f"the first line is {','.join(HEADER)}",
            )
        for row in reader:
            email = (row.get("email") or "").strip()
            if email:
                out.add(digest(email))
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
