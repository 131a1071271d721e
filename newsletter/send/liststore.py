"""Changes to the subscriber list file, made under its lock: a status, a new reader.

    with lock(path):                           exclusive flock on `<path>.lock`, held briefly
        set_status(path, email, status)        every row of the address; other rows byte-identical
        add(path, email, name, fields={...})   a new row with the list's columns, or re-subscribe

Every writer of the list (`unsubscribe`, `serve`, `inbox`) goes through here. Both functions
take the lock themselves, and may also be called with it held (the lock is re-entrant within
a thread). The file is parsed by `listfile` (the reader `send` uses), changed rows are written
with the csv module in the file's own delimiter, encoding and line ending, and the whole file
is replaced atomically (`fsio.write_file`): a concurrent `send` sees the old list or the new.
"""

from __future__ import annotations

import csv
import fcntl
import hmac
import io
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from newsletter import fsio
from newsletter.errors import SubscriberError
from newsletter.send.listfile import STATUSES, Header, ListFile, Record, fold, records, status_of

_held = threading.local()


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the list's lock (an exclusive flock on the sibling `<path>.lock`) for the block.

    The lock file is never removed: removing it would let two writers lock two different
    files. Re-entrant in one thread, so `set_status` inside `with lock(path)` does not wait
    for itself; other threads and processes wait.
    """
    key = os.path.abspath(path)
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


@dataclass
class _Parsed:
    meta: ListFile
    header: Header
    rows: list[Record]


def _parse(path: Path, rel: str) -> _Parsed:
    meta = ListFile(encoding="utf-8", delimiter=",")
    rows = list(records(path, rel=rel, meta=meta))
    assert meta.header is not None  # records() sets it before the first row
    return _Parsed(meta, meta.header, rows)


def _format(cells: list[str], meta: ListFile, ending: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=meta.delimiter, lineterminator=ending).writerow(cells)
    return buf.getvalue()


def _ending(text: str) -> str:
    return text[len(text.rstrip("\r\n")) :]


def _write(path: Path, parsed: _Parsed, header_text: str, rows: list[str], *, rel: str) -> None:
    encoding = "utf-8" if parsed.meta.encoding == "utf-8-sig" else parsed.meta.encoding
    bom = "\ufeff" if parsed.meta.encoding == "utf-8-sig" else ""
    text = bom + parsed.meta.preamble + header_text + "".join(rows)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise SubscriberError(
            f"{exc.object[exc.start : exc.end]!r} cannot be written in Windows-1252",
            path=rel,
            hint="save the list as UTF-8 CSV",
        ) from None
    fsio.write_file(path, data)


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i].strip() if i is not None and i < len(cells) else ""


def _matches(address: str, who: str, secret: str | None, by_token: bool) -> bool:
    if not address:
        return False
    if by_token:
        from newsletter.send.subscribers import unsubscribe_token

        # bytes: compare_digest refuses a str with non-ASCII characters (`unsubscribe 'é'`)
        given = who.strip().lower().encode()
        return bool(secret) and hmac.compare_digest(
            unsubscribe_token(address, secret or "").encode(), given
        )
    return address.lower() == who.strip().lower()


def address_of(path: Path, token: str, *, secret: str, rel: str | None = None) -> str | None:
    """The address whose unsubscribe token is `token`, or None: for messages that carry one."""
    parsed = _parse(path, rel or path.name)
    for rec in parsed.rows:
        address = _cell(rec.cells, parsed.header.email)
        if _matches(address, token, secret, True):
            return address
    return None


def set_status(
    path: Path,
    email: str,
    status: str,
    *,
    secret: str | None = None,
    by_token: bool = False,
    rel: str | None = None,
) -> int:
    """Set `status` on EVERY row of `email` (case-insensitive); how many rows changed.

    `by_token=True`: `email` is an unsubscribe token (HMAC of the address with `secret`),
    never a raw address: what a link in an email carries. A row that already has the status
    is left as it is; every other row keeps its bytes. Adds a status column when the list has
    none. Raises SubscriberError for an unknown status or when no row matches.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    rel = rel or path.name
    with lock(path):
        parsed = _parse(path, rel)
        header, meta = parsed.header, parsed.meta
        header_text = meta.header_text
        i_status = header.status
        if i_status is None:  # no status column yet: add one, at the end
            body = header_text.rstrip("\r\n")
            header_text = body + meta.delimiter + "status" + (_ending(header_text) or meta.newline)
            i_status = len(header.names)
        word = header.status_word(status) if header.status is not None else status
        found = changed = 0
        out: list[str] = []
        for rec in parsed.rows:
            address = _cell(rec.cells, header.email)
            if not rec.cells or not _matches(address, email, secret, by_token):
                out.append(rec.text)
                continue
            found += 1
            if status_of(_cell(rec.cells, i_status)) == status:
                out.append(rec.text)
                continue
            cells = list(rec.cells) + [""] * (i_status + 1 - len(rec.cells))
            cells[i_status] = word
            out.append(_format(cells, meta, _ending(rec.text)))
            changed += 1
        if not found:
            raise SubscriberError(
                "no subscriber with this address" + (" or token" if by_token else ""),
                path=rel,
                hint="check the address; a token is the one in the unsubscribe link",
            )
        if changed or header_text != meta.header_text:
            _write(path, parsed, header_text, out, rel=rel)
        return changed


#: Columns `add` may create when the list lacks them (documented in docs/sending.md).
ADDED_COLUMNS = ("name", "status", "consent_at", "source")


def add(
    path: Path,
    email: str,
    name: str,
    *,
    fields: Mapping[str, str],
    rel: str | None = None,
) -> bool:
    """Add a subscribed reader; True when a row was appended.

    An address already in the list (any case) is not added twice: its `unsubscribed` rows
    become subscribed again (a re-subscription) and False is returned; `bounced` rows stay.
    `fields` fill the columns of those names (matched like the header: no case, no accents);
    a field the list has no column for gets one only if it is in ADDED_COLUMNS (`consent_at`,
    `source`: the proof of consent a web form records), else it is an error. A new column is
    added to the header only; older rows, one cell shorter, read it as empty.
    """
    rel = rel or path.name
    with lock(path):
        parsed = _parse(path, rel)
        header, meta = parsed.header, parsed.meta
        values: dict[str, str] = {"email": email.strip(), **dict(fields)}
        if name:
            values["name"] = name
        index, names, header_text = _with_columns(parsed, values, rel=rel)
        present = [
            n
            for n, rec in enumerate(parsed.rows)
            if _matches(_cell(rec.cells, header.email), email, None, False)
        ]
        if present:
            # The consent given now replaces the one the reader withdrew (GDPR art. 7(1)).
            proof = {k: v for k, v in values.items() if k in ("consent_at", "source")}
            _resubscribe(path, parsed, present, rel=rel, proof=proof, index=index,
                         header_text=header_text)
            return False
        out = [rec.text for rec in parsed.rows]
        cells = [""] * len(names)
        for key, value in values.items():
            cells[index[fold(key)]] = value
        if "status" in index or header.status is not None:
            i_status = header.status if header.status is not None else index["status"]
            cells[i_status] = cells[i_status] or header.status_word("subscribed")
        if out and not _ending(out[-1]):  # the last line had no line break: give it one
            out[-1] += meta.newline
        elif not out and not _ending(header_text):
            header_text += meta.newline
        out.append(_format(cells, meta, meta.newline))
        _write(path, parsed, header_text, out, rel=rel)
        return True


def _with_columns(
    parsed: _Parsed, values: Mapping[str, str], *, rel: str
) -> tuple[dict[str, int], list[str], str]:
    """The column index, names and header line once the columns `values` need are added."""
    header, meta = parsed.header, parsed.meta
    names = list(header.names)
    index = _column_index(header)
    for key in values:
        if fold(key) in index:
            continue
        if key not in ADDED_COLUMNS:
            raise SubscriberError(
                f"the list has no column {key!r}",
                path=rel,
                line=1,
                hint=f"add the column to the header, or use one of {', '.join(ADDED_COLUMNS)}",
            )
        index[fold(key)] = len(names)
        names.append(key)
    header_text = meta.header_text
    if len(names) > len(header.names):
        body = header_text.rstrip("\r\n")
        extra = _format(names[len(header.names) :], meta, "")
        header_text = body + meta.delimiter + extra + (_ending(header_text) or meta.newline)
    return index, names, header_text


def _resubscribe(
    path: Path,
    parsed: _Parsed,
    present: list[int],
    *,
    rel: str,
    proof: Mapping[str, str],
    index: Mapping[str, int],
    header_text: str,
) -> None:
    """An address already listed: its `unsubscribed` rows become subscribed, with the new
    proof of consent (`consent_at`, `source`) in place of the old; bounced rows stay."""
    header, meta = parsed.header, parsed.meta
    if header.status is None:
        return
    out = [rec.text for rec in parsed.rows]
    for n in present:
        rec = parsed.rows[n]
        if status_of(_cell(rec.cells, header.status)) == "unsubscribed":
            width = max([header.status, *(index[fold(k)] for k in proof)]) + 1
            cells = list(rec.cells) + [""] * (width - len(rec.cells))
            cells[header.status] = header.status_word("subscribed")
            for key, value in proof.items():
                cells[index[fold(key)]] = value
            out[n] = _format(cells, meta, _ending(rec.text))
    if out != [rec.text for rec in parsed.rows]:
        _write(path, parsed, header_text, out, rel=rel)


def _column_index(header: Header) -> dict[str, int]:
    """Folded name -> column, with the canonical roles (`email`, `name`, `status`...)."""
    index = {fold(n): i for i, n in enumerate(header.names) if n}
    for role in ("email", "name", "first_name", "status"):
        i = getattr(header, role)
        if i is not None:
            index[fold(role)] = i
    return index
