"""Changes to the subscriber list file, made under its lock: one status, one new reader.

A minimal version written for `newsletter serve` (issue 10), with the names, signatures and
behaviour of the list store finished in parallel on main (which replaces this body):

    with lock(path):                      fcntl.flock on `<path>.lock`, re-entrant in a thread
        set_status(path, email, status)   every row of the address; the other rows byte-identical;
                                          SubscriberError when no row matches
        add(path, email, name, fields=…)  a new row with the list's columns; an address already
                                          there: its unsubscribed rows subscribed again, False

Both take the lock themselves and rewrite the file atomically (fsio.write_file).
"""

from __future__ import annotations

import csv
import fcntl
import hmac
import io
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from newsletter import fsio
from newsletter.errors import SubscriberError
from newsletter.send.subscribers import STATUSES, _split_records, unsubscribe_token

_held = threading.local()
#: Columns `add` may create when the list lacks them (the proof of consent a form records).
ADDED_COLUMNS = ("name", "status", "consent_at", "source")


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the list's lock (an exclusive flock on `<path>.lock`) for the block; re-entrant
    in one thread, so `set_status` inside `with lock(path)` does not wait for itself."""
    key = str(path.resolve())
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if key in held:
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
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


def set_status(
    path: Path,
    email: str,
    status: str,
    *,
    secret: str | None = None,
    by_token: bool = False,
    rel: str | None = None,
) -> int:
    """Set `status` on every row of `email` (case-insensitive); how many rows changed.

    A row that already has the status keeps its bytes; so does every other row. Raises
    SubscriberError when no row matches. (`secret`/`by_token`: an unsubscribe token instead
    of the address, as main's list store takes it.)
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    rel = rel or path.name
    with lock(path):
        had_bom, records, header = _read(path)
        names = [h.lower() for h in header]
        i_email = names.index("email")
        header_text = records[0][0]
        if "status" not in names:
            names.append("status")
            header_text += ",status"
        i_status = names.index("status")
        found = changed = 0
        for n in range(1, len(records)):
            record, ending = records[n]
            row = next(csv.reader([record]), [])
            address = row[i_email].strip() if i_email < len(row) else ""
            if not _matches(address, email, secret, by_token):
                continue
            found += 1
            current = row[i_status].strip().lower() if i_status < len(row) else ""
            if (current or "subscribed") == status:
                continue
            row += [""] * (i_status + 1 - len(row))
            row[i_status] = status
            records[n] = (_format(row), ending)
            changed += 1
        if not found:
            raise SubscriberError(
                "no subscriber with this address" + (" or token" if by_token else ""), path=rel,
                hint="check the address; a token is the one in the unsubscribe link",
            )
        if changed or header_text != records[0][0]:
            records[0] = (header_text, records[0][1])
            _write(path, had_bom, records)
        return changed


def _matches(address: str, who: str, secret: str | None, by_token: bool) -> bool:
    if not address:
        return False
    if by_token:
        given = who.strip().lower().encode()
        return bool(secret) and hmac.compare_digest(
            unsubscribe_token(address, secret or "").encode(), given
        )
    return address.lower() == who.strip().lower()


def add(
    path: Path, email: str, name: str, *, fields: Mapping[str, str], rel: str | None = None
) -> bool:
    """Append a subscribed reader with the list's columns; True when a row was appended.

    An address already there (any case) is not added twice: its `unsubscribed` rows become
    subscribed again and False is returned; `bounced` rows stay. A field the header lacks is
    added to the header only if it is in ADDED_COLUMNS (a shorter row reads as empty cells),
    so every existing row keeps its bytes.
    """
    rel = rel or path.name
    with lock(path):
        had_bom, records, header = _read(path)
        names = [h.lower() for h in header]
        i_email = names.index("email")
        key = email.strip().lower()
        present = [
            n for n in range(1, len(records))
            if _matches(_cell(records[n][0], i_email), key, None, False)
        ]
        if present:
            _resubscribe(path, had_bom, records, names, present)
            return False
        values = {"email": email.strip(), "status": "subscribed", **fields}
        if name:
            values["name"] = name
        missing = [k for k in values if k.lower() not in names]
        for k in missing:
            if k not in ADDED_COLUMNS:
                raise SubscriberError(f"the list has no column {k!r}", path=rel, line=1,
                                      hint=f"add it to the header, or use {ADDED_COLUMNS}")
        if missing:
            records[0] = (records[0][0] + "," + _format(missing), records[0][1] or "\n")
            names += [k.lower() for k in missing]
        lowered = {k.lower(): v for k, v in values.items()}
        ending = records[0][1] or "\n"
        if records[-1][1] == "":  # the last line had no line break: give it one first
            records[-1] = (records[-1][0], ending)
        records.append((_format([lowered.get(n, "") for n in names]), ending))
        _write(path, had_bom, records)
        return True


def _cell(record: str, i: int) -> str:
    row = next(csv.reader([record]), [])
    return row[i].strip() if i < len(row) else ""


def _resubscribe(
    path: Path, had_bom: bool, records: list[tuple[str, str]], names: list[str],
    present: list[int],
) -> None:
    if "status" not in names:
        return
    i_status = names.index("status")
    changed = False
    for n in present:
        row = next(csv.reader([records[n][0]]), [])
        if i_status < len(row) and row[i_status].strip().lower() == "unsubscribed":
            row[i_status] = "subscribed"
            records[n] = (_format(row), records[n][1])
            changed = True
    if changed:
        _write(path, had_bom, records)
