"""The subscriber list file: CSV with a header row, streamed, validated row by row.

Parsed by `listfile` (delimiter, encoding, French headers and statuses), as `liststore`
writes it; this module turns records into Subscribers and decides who is mailable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.send.digests import DigestSet, digest
from newsletter.send.listfile import STATUSES as STATUSES  # re-exported
from newsletter.send.listfile import Header, ListFile, Record, not_found, records, status_of

RESERVED = ("email", "name", "status")


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str = ""
    status: str = "subscribed"
    fields: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def first_name(self) -> str:
        """For the greeting: the list's first-name column (`Prénom`), else empty."""
        return self.fields.get("first_name", "")

    @property
    def key(self) -> str:
        """How duplicates are told apart: addresses compare case-insensitively."""
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class InvalidRow:
    line: int
    message: str
    email: str = ""  # the row's address when it is valid (the row still blocks it)


@dataclass
class ListSummary:
    """One pass over the file: what a send would mail, and what is wrong with it."""

    mailable: int = 0
    not_subscribed: int = 0
    duplicates: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    warning: str = ""  # e.g. read as Windows-1252


_SIMPLE_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_SIMPLE_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63}"
_SIMPLE_RE = re.compile(f"({_SIMPLE_LOCAL})@({_SIMPLE_DOMAIN})")
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")
_SPECIAL_SUFFIXES = tuple("." + n for n in _SPECIAL_USE)  # `.test` or `x.test`, in one call


def check_address(raw: str) -> str:
    """The address normalised (domain lower-case, in ASCII), or ValueError with the reason.

    email-validator decides (syntax only, no DNS). Plain ASCII addresses, the vast majority,
    take a fast path that accepts exactly what email-validator accepts for them (a test
    compares both); anything unusual (quotes, IDN, reserved names, lengths) goes to it.
    """
    m = _SIMPLE_RE.fullmatch(raw)
    if m and len(m.group(1)) <= 64 and len(raw) <= 254 and "--" not in m.group(2):
        domain = m.group(2).lower()
        if not ("." + domain).endswith(_SPECIAL_SUFFIXES):
            return f"{m.group(1)}@{domain}"
    from email_validator import EmailNotValidError, validate_email  # ~25 ms: only if needed

    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return str(result.ascii_email or result.normalized)


def read_rows(
    path: Path, *, rel: str, meta: ListFile | None = None
) -> Iterator[Subscriber | InvalidRow]:
    """Every data row, in file order, as a Subscriber or an InvalidRow. Streams the file.

    The file's shape (delimiter, encoding, header aliases, status words) is read by
    `listfile`, the parser `liststore` writes with; `meta` receives it (and its warning).
    """
    meta = meta if meta is not None else ListFile(encoding="utf-8", delimiter=",")
    for record in records(path, rel=rel, meta=meta):
        if not record.cells or all(not c.strip() for c in record.cells):
            continue
        assert meta.header is not None  # set before the first record
        yield _row(record, meta.header)


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _row(record: Record, header: Header) -> Subscriber | InvalidRow:
    row, line = record.cells, record.line
    raw_email = _cell(row, header.email)
    if not raw_email:
        return InvalidRow(line, "no address")
    try:
        address = check_address(raw_email)
    except ValueError as exc:
        return InvalidRow(line, f"invalid address '{raw_email}': {exc}")
    raw_status = _cell(row, header.status)
    status = status_of(raw_status)
    if status is None:
        column = header.names[header.status] if header.status is not None else "status"
        return InvalidRow(
            line,
            f"unknown {column} '{raw_status}' (use subscribed, unsubscribed, bounced, "
            "or abonné, désinscrit, rebond)",
            email=address,
        )
    first = _cell(row, header.first_name)
    last = _cell(row, header.name)
    # "Prénom;Nom" in a spreadsheet: the display name is both, the greeting the first name
    name = f"{first} {last}".strip() if header.first_name is not None else last
    fields = {n: _cell(row, i) for i, n in header.extra}
    if header.first_name is not None:
        fields["first_name"] = first
    if "\r" in name or "\n" in name:
        return InvalidRow(line, "the name contains a line break", email=address)
    if record.lines > 1 or any("\r" in v or "\n" in v for v in fields.values()):
        return InvalidRow(line, "a column contains a line break", email=address)
    return Subscriber(email=address, name=name, status=status, fields=fields, line=line)


def columns(path: Path, *, rel: str) -> tuple[str, ...]:
    """The personalisation columns (`{{ ville }}`), `first_name` if the list has one."""
    meta = ListFile(encoding="utf-8", delimiter=",")
    next(records(path, rel=rel, meta=meta), None)
    if meta.header is None:
        return ()
    extra = tuple(n for _, n in meta.header.extra)
    return extra + (("first_name",) if meta.header.first_name is not None else ())


def summarize(path: Path, *, rel: str) -> ListSummary:
    summary = ListSummary(columns=columns(path, rel=rel))
    for _ in unique_mailable(path, rel=rel, summary=summary):
        summary.mailable += 1
    return summary


def blocked(path: Path, *, rel: str) -> DigestSet:
    """Addresses with any row that is not `subscribed` (or is invalid with a good address).

    Two rows of one address (`jane@x`, `Jane@X`) with one unsubscribed: she is not mailed,
    whichever row comes first. A pass over the file before the send's own; subscribed rows
    are not validated in it, and the result is kept while the file is unchanged (`prepare`
    and the send read the same list).
    """
    key = _file_key(path, rel)
    if _blocked_cache and _blocked_cache[0][0] == key:
        return _blocked_cache[0][1]
    out = DigestSet()
    meta = ListFile(encoding="utf-8", delimiter=",")
    for record in records(path, rel=rel, meta=meta):
        assert meta.header is not None
        i = meta.header.status
        raw = record.cells[i] if i is not None and i < len(record.cells) else ""
        if record.lines == 1 and status_of(raw) == "subscribed":
            continue
        if not record.cells or all(not c.strip() for c in record.cells):
            continue
        item = _row(record, meta.header)
        if item.email and (isinstance(item, InvalidRow) or item.status != "subscribed"):
            out.add(digest(item.email))
    _blocked_cache[:] = [(key, out)]
    return out


_blocked_cache: list[tuple[tuple[str, int, int, int], DigestSet]] = []


#: A list of at most this many mailable rows is kept by the pass that checks it (`summarize`)
#: for the passes after it (the send's own), while the file is unchanged: one parse, not two.
KEEP_ROWS = 20_000

_mailable_cache: list[tuple[tuple[str, int, int, int], list[Subscriber]]] = []


def _file_key(path: Path, rel: str) -> tuple[str, int, int, int]:
    """What tells one version of the list file from another (the caches' key). A missing
    file is the same one-line error as when it is opened (`listfile.not_found`)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise not_found(rel) from None
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def unique_mailable(
    path: Path, *, rel: str, summary: ListSummary | None = None
) -> Iterator[Subscriber]:
    """Subscribed, valid rows, each address once (case-insensitive), in file order; never an
    address that has another row not subscribed.

    Memory: one 64-bit digest per address seen (8-16 bytes), never the rows themselves, but
    for a list of up to KEEP_ROWS mailable rows, kept from a `summarize` pass to the next pass.
    """
    if summary is None and _mailable_cache and _mailable_cache[0][0] == _file_key(path, rel):
        yield from _mailable_cache[0][1]
        return
    if summary is None:
        yield from _unique_mailable(path, rel=rel, summary=None)
        return
    key = _file_key(path, rel)
    kept: list[Subscriber] | None = []
    for sub in _unique_mailable(path, rel=rel, summary=summary):
        if kept is not None:
            kept.append(sub)
            if len(kept) > KEEP_ROWS:
                kept = None
        yield sub
    _mailable_cache[:] = [] if kept is None or _file_key(path, rel) != key else [(key, kept)]


def _unique_mailable(
    path: Path, *, rel: str, summary: ListSummary | None
) -> Iterator[Subscriber]:
    stop = blocked(path, rel=rel)
    meta = ListFile(encoding="utf-8", delimiter=",")
    seen = DigestSet()
    for item in read_rows(path, rel=rel, meta=meta):
        if summary is not None and meta.warning:
            summary.warning = meta.warning
        if isinstance(item, InvalidRow):
            if summary is not None:
                summary.invalid.append(item)
            continue
        d = digest(item.email)
        if item.status != "subscribed" or d in stop:
            if summary is not None:
                summary.not_subscribed += 1
            continue
        if not seen.add(d):
            if summary is not None:
                summary.duplicates += 1
            continue
        yield item


def unsubscribe_token(address: str, secret: str) -> str:
    """HMAC-SHA256 of the lower-cased address: in unsubscribe URLs, never the address itself."""
    return hmac.new(secret.encode(), address.lower().encode(), hashlib.sha256).hexdigest()
