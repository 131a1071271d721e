"""Changes to the subscriber list file, made under its lock: one status, one new reader.

A minimal version written for `newsletter serve` (issue 10); the list store being finished in
parallel keeps these names and signatures:

    with lock(path):                      fcntl.flock on `<path>.lock`: send, unsubscribe, serve
        set_status(path, email, status)   every row of the address; the other rows byte-identical
        set_statuses(path, {email: status})  the same for many addresses, one rewrite
        add(path, email, name, fields=…)  a new row with the list's columns, or False if present

Both rewrite the file atomically (fsio.write_file) and must be called with the lock held.
"""

from __future__ import annotations

import csv
import fcntl
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from newsletter import fsio
from newsletter.errors import SubscriberError
from newsletter.send.subscribers import _split_records


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the list's lock (an exclusive flock on `<path>.lock`) for the block."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> tuple[bool, list[tuple[str, str]], list[str]]:
    raw = path.read_bytes()
    had_bom = raw[:3] == b"\xef\xbb\xbf"
    text = raw.decode("utf-8-sig")
    records = _split_records(text)
    if not records:
        raise SubscriberError("the file is empty", path=path.name, line=1)
    header = [h.strip() for h in next(csv.reader([records[0][0]]))]
    if "email" not in [h.lower() for h in header]:
        raise SubscriberError("no 'email' column in the header", path=path.name, line=1)
    return had_bom, records, header


def _write(path: Path, had_bom: bool, records: list[tuple[str, str]]) -> None:
    data = ("\ufeff" if had_bom else "") + "".join(r + e for r, e in records)
    fsio.write_file(path, data.encode("utf-8"))


def _format(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def set_status(path: Path, email: str, status: str) -> int:
    """Set `status` on every row of `email` (case-insensitive); how many rows changed.

    A row that already has the status is left byte for byte; so is every other row.
    """
    return set_statuses(path, {email: status})


def set_statuses(path: Path, statuses: Mapping[str, str]) -> int:
    """`set_status` for many addresses in one rewrite (serve applies its changes in groups)."""
    wanted = {e.strip().lower(): s for e, s in statuses.items()}
    had_bom, records, header = _read(path)
    names = [h.lower() for h in header]
    i_email = names.index("email")
    changed = 0
    if "status" not in names:
        names.append("status")
        records[0] = (records[0][0] + ",status", records[0][1])
    i_status = names.index("status")
    for n in range(1, len(records)):
        record, ending = records[n]
        low = record.lower()
        if not any(key in low for key in wanted):  # most rows: no CSV parsing at all
            continue
        row = next(csv.reader([record]), [])
        status = wanted.get(row[i_email].strip().lower()) if i_email < len(row) else None
        if status is None:
            continue
        current = row[i_status].strip().lower() if i_status < len(row) else ""
        if (current or "subscribed") == status:
            continue
        while len(row) <= i_status:
            row.append("")
        row[i_status] = status
        records[n] = (_format(row), ending)
        changed += 1
    if changed:
        _write(path, had_bom, records)
    return changed


def add(path: Path, email: str, name: str, *, fields: Mapping[str, str]) -> bool:
    """Append a subscribed reader with the list's columns; False if the address is there.

    `fields` fill the columns of those names; a field the header lacks is added to the header
    only (a shorter row reads as empty cells), so every existing row keeps its bytes.
    """
    had_bom, records, header = _read(path)
    names = [h.lower() for h in header]
    i_email = names.index("email")
    key = email.strip().lower()
    for record, _ in records[1:]:
        row = next(csv.reader([record]), [])
        if i_email < len(row) and row[i_email].strip().lower() == key:
            return False
    values = {"email": email, "name": name, "status": "subscribed", **fields}
    missing = [k for k in values if k.lower() not in names]
    if missing:
        header = header + missing
        records[0] = (records[0][0] + "," + _format(missing), records[0][1] or "\n")
        names = [h.lower() for h in header]
    lowered = {k.lower(): v for k, v in values.items()}
    row = [lowered.get(n, "") for n in names]
    ending = records[0][1] or "\n"
    if records[-1][1] == "":  # the last line had no line break: give it one first
        records[-1] = (records[-1][0], ending)
    records.append((_format(row), ending))
    _write(path, had_bom, records)
    return True
