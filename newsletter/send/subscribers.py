"""The subscriber list file: CSV with a header row, streamed, validated row by row."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import fsio
from newsletter.errors import SubscriberError
from newsletter.send.digests import DigestSet, digest

STATUSES = ("subscribed", "unsubscribed", "bounced")
RESERVED = ("email", "name", "status")


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str = ""
    status: str = "subscribed"
    fields: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def key(self) -> str:
        """How duplicates are told apart: addresses compare case-insensitively."""
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class InvalidRow:
    line: int
    message: str


@dataclass
class ListSummary:
    """One pass over the file: what a send would mail, and what is wrong with it."""

    mailable: int = 0
    not_subscribed: int = 0
    duplicates: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)
    columns: tuple[str, ...] = ()


_SIMPLE_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_SIMPLE_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63}"
_SIMPLE_RE = re.compile(f"({_SIMPLE_LOCAL})@({_SIMPLE_DOMAIN})")
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")


def check_address(raw: str) -> str:
    """The address normalised (domain lower-case, in ASCII), or ValueError with the reason.

    email-validator decides (syntax only, no DNS). Plain ASCII addresses, the vast majority,
    take a fast path that accepts exactly what email-validator accepts for them (a test
    compares both); anything unusual (quotes, IDN, reserved names, lengths) goes to it.
    """
    m = _SIMPLE_RE.fullmatch(raw)
    if m and len(m.group(1)) <= 64 and len(raw) <= 254 and "--" not in m.group(2):
        domain = m.group(2).lower()
        if not any(domain == n or domain.endswith("." + n) for n in _SPECIAL_USE):
            return f"{m.group(1)}@{domain}"
    from email_validator import EmailNotValidError, validate_email  # ~25 ms: only if needed

    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return str(result.ascii_email or result.normalized)


def _open(path: Path, rel: str) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise SubscriberError(
            "subscriber list not found",
            path=rel,
            hint="pass --subscribers FILE or set NEWSLETTER_SUBSCRIBERS "
            "(subscribers.example.csv shows the format)",
        ) from None


def read_rows(path: Path, *, rel: str) -> Iterator[Subscriber | InvalidRow]:
    """Every data row, in file order, as a Subscriber or an InvalidRow. Streams the file."""
    with _open(path, rel) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise SubscriberError(
                "the file is empty",
                path=rel,
                line=1,
                hint="the first line is a header with at least 'email'",
            ) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SubscriberError(
                f"unreadable: {exc}", path=rel, line=1, hint="save the file as UTF-8 CSV"
            ) from None
        names = [h.strip().lower() if h.strip().lower() in RESERVED else h.strip() for h in header]
        if "email" not in names:
            raise SubscriberError(
                "no 'email' column in the header",
                path=rel,
                line=1,
                hint="the first line names the columns, e.g. email,name,status",
            )
        i_email = names.index("email")
        i_name = names.index("name") if "name" in names else None
        i_status = names.index("status") if "status" in names else None
        extra = [(i, n) for i, n in enumerate(names) if n not in RESERVED and n]
        line = 1
        while True:
            start = line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise SubscriberError(
                    f"not UTF-8 ({exc.reason})", path=rel, line=start, hint="save the file as UTF-8"
                ) from None
            except csv.Error as exc:
                raise SubscriberError(
                    f"malformed CSV: {exc}",
                    path=rel,
                    line=start,
                    hint="check the quotes on this line",
                ) from None
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            yield _row(row, start, i_email, i_name, i_status, extra)


def _row(
    row: list[str],
    line: int,
    i_email: int,
    i_name: int | None,
    i_status: int | None,
    extra: list[tuple[int, str]],
) -> Subscriber | InvalidRow:
    def cell(i: int | None) -> str:
        return row[i].strip() if i is not None and i < len(row) else ""

    raw_email = cell(i_email)
    if not raw_email:
        return InvalidRow(line, "no address")
    try:
        address = check_address(raw_email)
    except ValueError as exc:
        return InvalidRow(line, f"invalid address '{raw_email}': {exc}")
    name = cell(i_name)
    if "\r" in name or "\n" in name:
        return InvalidRow(line, "the name contains a line break")
    status = cell(i_status).lower() or "subscribed"
    if status not in STATUSES:
        return InvalidRow(line, f"unknown status '{status}' (use {', '.join(STATUSES)})")
    fields = {n: cell(i) for i, n in extra}
    if any("\r" in v or "\n" in v for v in fields.values()):
        return InvalidRow(line, "a column contains a line break")
    return Subscriber(email=address, name=name, status=status, fields=fields, line=line)


def columns(path: Path, *, rel: str) -> tuple[str, ...]:
    with _open(path, rel) as handle:
        try:
            header = next(csv.reader(handle))
        except (StopIteration, csv.Error, UnicodeDecodeError):
            return ()
    return tuple(h.strip() for h in header if h.strip())


def summarize(path: Path, *, rel: str) -> ListSummary:
    summary = ListSummary(columns=columns(path, rel=rel))
    for _ in unique_mailable(path, rel=rel, summary=summary):
        summary.mailable += 1
    return summary


def unique_mailable(
    path: Path, *, rel: str, summary: ListSummary | None = None
) -> Iterator[Subscriber]:
    """Subscribed, valid rows, each address once (case-insensitive), in file order.

    Memory: one 64-bit digest per address seen (8-16 bytes), never the rows themselves.
    """
    seen = DigestSet()
    for item in read_rows(path, rel=rel):
        if isinstance(item, InvalidRow):
            if summary is not None:
                summary.invalid.append(item)
            continue
        if item.status != "subscribed":
            if summary is not None:
                summary.not_subscribed += 1
            continue
        if not seen.add(digest(item.email)):
            if summary is not None:
                summary.duplicates += 1
            continue
        yield item


def unsubscribe_token(address: str, secret: str) -> str:
    """HMAC-SHA256 of the lower-cased address: in unsubscribe URLs, never the address itself."""
    return hmac.new(secret.encode(), address.lower().encode(), hashlib.sha256).hexdigest()


def mark_unsubscribed(path: Path, who: str, *, rel: str, secret: str) -> Subscriber:
    """Set `status` to `unsubscribed` for the row of `who` (an address or a token).

    The file is rewritten atomically (temp file, fsync, rename); every other row keeps its
    bytes. Raises SubscriberError when no row matches.
    """
    with _open(path, rel) as handle:
        text = handle.read()
    had_bom = path.read_bytes()[:3] == b"\xef\xbb\xbf"
    records = _split_records(text)
    if not records:
        raise SubscriberError("the file is empty", path=rel, line=1)
    header = next(csv.reader([records[0][0]]))
    names = [h.strip().lower() for h in header]
    if "email" not in names:
        raise SubscriberError("no 'email' column in the header", path=rel, line=1)
    i_email = names.index("email")
    add_status = "status" not in names
    i_status = len(names) if add_status else names.index("status")
    token = who.strip().lower()
    found: Subscriber | None = None
    out: list[str] = []
    for n, (record, ending) in enumerate(records):
        if n == 0:
            out.append(record + (",status" if add_status else "") + ending)
            continue
        row = next(csv.reader([record]), [])
        address = row[i_email].strip() if i_email < len(row) else ""
        matches = address and (
            address.lower() == token
            or (secret and hmac.compare_digest(unsubscribe_token(address, secret), token))
        )
        if matches and found is None:
            while len(row) <= i_status:
                row.append("")
            row[i_status] = "unsubscribed"
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(row)
            out.append(buf.getvalue() + ending)
            found = Subscriber(email=address, status="unsubscribed")
        else:
            out.append(record + ending)
    if found is None:
        raise SubscriberError(
            "no subscriber with this address or token",
            path=rel,
            hint="check the address; a token is the one in the unsubscribe link",
        )
    data = ("\ufeff" if had_bom else "") + "".join(out)
    fsio.write_file(path, data.encode("utf-8"))
    return found


def _split_records(text: str) -> list[tuple[str, str]]:
    """Split CSV text into (record, line ending) pairs; a quoted field may span lines."""
    records: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines(keepends=True):
        buf += line
        if buf.count('"') % 2 == 0:
            body = buf.rstrip("\r\n")
            records.append((body, buf[len(body) :]))
            buf = ""
    if buf:
        records.append((buf, ""))
    return records
