"""How a subscriber list file is written: its encoding, delimiter, columns and status words.

One parser for the reader (`subscribers.read_rows`, what `send` mails) and the writer
(`liststore`, what `unsubscribe`, `serve` and `inbox` change), so both split records alike:

    records(path, rel=)   ─▶ ListFile (encoding, delimiter, Header) + Record per row, streamed;
                             each Record keeps its exact text, so a writer can copy it unchanged

Spreadsheets export lists in many shapes: the delimiter is `,`, `;` or tab (counted in the
header line); the text is UTF-8 (BOM or not), else Windows-1252 (`ListFile.warning` says so);
headers are matched regardless of case and accents, with French and English aliases; status
words are French or English. A record may not span lines: a stray `"` at the start of a field
would otherwise swallow every later row into one cell, so that is an error naming the line.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from newsletter.errors import SubscriberError

STATUSES = ("subscribed", "unsubscribed", "bounced")
DELIMITERS = (",", ";", "\t")
BOM = "\ufeff"


def fold(text: str) -> str:
    """`Adresse E-mail` -> `adresseemail`: no case, no accents, letters and digits only."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.casefold() if c.isalnum())


#: Header aliases, folded. The canonical names are the keys.
ALIASES: dict[str, frozenset[str]] = {
    "email": frozenset(
        {
            "email",
            "mail",
            "courriel",
            "adresseemail",
            "adressemail",
            "adressecourriel",
            "emailaddress",
        }
    ),
    "name": frozenset({"name", "nom", "fullname", "nomcomplet", "displayname"}),
    "first_name": frozenset({"firstname", "prenom", "givenname"}),
    "status": frozenset({"status", "statut", "etat", "state"}),
}
#: A header holding one of these words is a status column even if it is not an alias
#: ("Statut d'abonnement", "Subscription status"): its values must be known status words,
#: never a personalisation field (an unsubscribed reader would be mailed). Not "inscription"
#: or "abonnement" alone: "Date d'inscription" is a date column in many exports.
STATUS_WORDS = ("status", "statut", "etat")

#: Status words, folded (so `Abonné·e`, `abonné(e)`, `ABONNEE` are one word).
STATUS_VALUES: dict[str, str] = {
    **dict.fromkeys(
        (
            "",
            "subscribed",
            "subscriber",
            "active",
            "actif",
            "active",
            "abonne",
            "abonnee",
            "abonnes",
            "inscrit",
            "inscrite",
            "oui",
            "yes",
        ),
        "subscribed",
    ),
    **dict.fromkeys(
        (
            "unsubscribed",
            "unsubscribe",
            "optout",
            "optedout",
            "desabonne",
            "desabonnee",
            "desinscrit",
            "desinscrite",
            "non",
            "no",
        ),
        "unsubscribed",
    ),
    **dict.fromkeys(
        (
            "bounced",
            "bounce",
            "cleaned",
            "rebond",
            "rebondi",
            "rebondie",
            "enerreur",
            "erreur",
            "invalide",
        ),
        "bounced",
    ),
}
#: What a writer puts in a French status column (`Statut`, `État`).
FRENCH_WORDS = {"subscribed": "Abonné", "unsubscribed": "Désinscrit", "bounced": "Rebond"}


def status_of(raw: str) -> str | None:
    """`subscribed`, `unsubscribed`, `bounced`, or None for a word we do not know."""
    found = STATUS_VALUES.get(raw.strip().lower())  # the common case, without NFKD
    return found if found is not None else STATUS_VALUES.get(fold(raw))


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]  # as written (stripped)
    email: int
    name: int | None
    first_name: int | None
    status: int | None
    extra: tuple[tuple[int, str], ...]  # personalisation columns: (index, name as written)

    @property
    def french(self) -> bool:
        return self.status is not None and fold(self.names[self.status]) in ("statut", "etat")

    def status_word(self, status: str) -> str:
        """`status` as this file writes it: French words in a French status column."""
        return FRENCH_WORDS[status] if self.french else status


@dataclass
class ListFile:
    encoding: str  # utf-8, utf-8-sig (a BOM) or cp1252
    delimiter: str
    header: Header | None = None
    header_text: str = ""  # the header record's exact text, its line break included
    preamble: str = ""  # Excel's `sep=;` line before the header, kept as it is
    warning: str = ""  # set when the file was read as Windows-1252
    non_ascii: bool = False  # a UTF-8 multi-byte character was seen

    @property
    def newline(self) -> str:
        m = re.search(r"\r\n|\r|\n", self.header_text)
        return m.group(0) if m else "\n"


@dataclass(frozen=True)
class Record:
    line: int  # where the record starts (1 = the header)
    text: str  # exactly as in the file, line break included
    cells: list[str] = field(default_factory=list)
    lines: int = 1  # physical lines (more than one: a quoted cell holds a line break)


_PHYSICAL = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(handle: BinaryIO, meta: ListFile, rel: str) -> Iterator[str]:
    """The file's physical lines, decoded: UTF-8, or Windows-1252 once a line is not UTF-8.

    Earlier lines were plain ASCII when we switch (else it is an error), and ASCII reads the
    same in both, so the switch is exact and the file is streamed once.
    """
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            meta.encoding = "utf-8-sig"
            raw = raw[3:]
        elif number == 1 and (raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw):
            raise SubscriberError(
                "UTF-16 text (what Excel saves as 'Unicode Text'), not a CSV file",
                path=rel,
                line=1,
                hint="save it as 'CSV UTF-8 (comma delimited)' ('CSV UTF-8 (délimité par des "
                "virgules)')",
            )
        text = _decode(raw, number, meta, rel)
        if "\r" in text[:-2]:  # a lone CR is a line break for csv too (rare: old Mac files)
            yield from _PHYSICAL.findall(text)
        else:
            yield text


def _decode(raw: bytes, number: int, meta: ListFile, rel: str) -> str:
    if meta.encoding != "cp1252":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if meta.non_ascii or meta.encoding == "utf-8-sig":
                raise SubscriberError(
                    f"not UTF-8 ({exc.reason}), though earlier lines are",
                    path=rel,
                    line=number,
                    hint="save the whole file as UTF-8 CSV",
                ) from None
            meta.encoding = "cp1252"
            meta.warning = (
                f"{rel}: line {number} is not UTF-8: the file is read as Windows-1252 "
                "(save it as UTF-8 CSV to silence this warning)"
            )
        else:
            meta.non_ascii = meta.non_ascii or not raw.isascii()
            return text
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise SubscriberError(
            f"neither UTF-8 nor Windows-1252 (byte 0x{raw[exc.start]:02x})",
            path=rel,
            line=number,
            hint="save the file as UTF-8 CSV",
        ) from None


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of `,` `;` tab outside quotes in the header line; `,` on a tie."""
    bare = re.sub(r'"[^"]*"', "", header_line)
    counts = [(bare.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


_SEP_LINE = re.compile(r"sep=([,;\t|])", re.IGNORECASE)


def parse_header(
    cells: list[str], *, rel: str, delimiter: str, text: str, line: int = 1
) -> Header:
    names = tuple(c.strip().lstrip(BOM) for c in cells)
    found: dict[str, int] = {}
    extra: list[tuple[int, str]] = []
    status_like: list[int] = []
    for i, n in enumerate(names):
        key = fold(n)
        role = next((r for r, aliases in ALIASES.items() if key in aliases), None)
        if role is not None and role not in found:
            found[role] = i
        elif key and any(w in key for w in STATUS_WORDS):
            status_like.append(i)
        elif n:
            extra.append((i, n))
    if "status" not in found and status_like:
        found["status"] = status_like.pop(0)
    if status_like:
        raise SubscriberError(
            f"several status columns: {', '.join(repr(names[i]) for i in status_like)}",
            path=rel,
            line=line,
            hint="keep one status column",
        )
    if "email" not in found:
        shown = " ".join(text.split())[:120]
        tab = "tab" if delimiter == "\t" else repr(delimiter)
        raise SubscriberError(
            f"no email column in the header {shown!r} (read with the delimiter {tab})",
            path=rel,
            line=line,
            hint="name a column email, e-mail, courriel or 'adresse e-mail'",
        )
    return Header(
        names=names,
        email=found["email"],
        name=found.get("name"),
        first_name=found.get("first_name"),
        status=found.get("status"),
        extra=tuple(extra),
    )


def not_found(rel: str) -> SubscriberError:
    """The error for a list file that does not exist: the one place for its wording."""
    return SubscriberError(
        "subscriber list not found",
        path=rel,
        hint="pass --subscribers FILE or set NEWSLETTER_SUBSCRIBERS "
        "(a CSV file whose first line is a header with at least an email column)",
    )


def _open(path: Path, rel: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise not_found(rel) from None
    except OSError as exc:  # a folder, no permission: the same kind of line, never a traceback
        raise SubscriberError(
            f"cannot read the subscriber list: {exc.strerror or exc}",
            path=rel,
            hint="pass --subscribers FILE, a CSV file you can read",
        ) from None


def records(path: Path, *, rel: str, meta: ListFile | None = None) -> Iterator[Record]:
    """The data records of the list, in file order, each with its exact text.

    Fills `meta` (encoding, delimiter, header) before the first record is yielded. Blank
    lines are records with no cells (a writer copies them). Raises SubscriberError for an
    empty file, a header with no email column, or a record spanning lines.
    """
    meta = meta if meta is not None else ListFile(encoding="utf-8", delimiter=",")
    with _open(path, rel) as handle:
        lines = _lines(handle, meta, rel)
        first = next(lines, None)
        if first is None or not first.strip(" \r\n" + BOM):
            raise SubscriberError(
                "the file is empty",
                path=rel,
                line=1,
                hint="the first line is a header with at least 'email'",
            )
        told = _SEP_LINE.fullmatch(first.rstrip("\r\n"))
        if told:  # Excel's `sep=;`: the delimiter, then the header on the next line
            meta.preamble = first
            first = next(lines, "")
        meta.delimiter = told[1] if told else sniff_delimiter(first)
        meta.header_text = first
        header_cells = next(csv.reader([first], delimiter=meta.delimiter), [])
        meta.header = parse_header(header_cells, rel=rel, delimiter=meta.delimiter, text=first,
                                   line=2 if told else 1)
        consumed: list[str] = []

        def feed() -> Iterator[str]:
            for piece in lines:
                consumed.append(piece)
                yield piece

        reader = csv.reader(feed(), delimiter=meta.delimiter)
        line = 3 if told else 2
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SubscriberError(
                    f"malformed CSV: {exc}", path=rel, line=line, hint="check the quotes"
                ) from None
            text = "".join(consumed) if len(consumed) != 1 else consumed[0]
            count = len(consumed)  # each piece is one physical line
            if count > 1:
                _refuse_swallowed(list(consumed), line, meta, rel)
            consumed.clear()
            yield Record(line, text, cells, lines=count)
            line += count


_ADDRESS = re.compile(r'[^@\s"]+@[^@\s"]+\.[^@\s"]+')


def _refuse_swallowed(pieces: list[str], line: int, meta: ListFile, rel: str) -> None:
    """A record over several lines is a cell with a line break (an invalid row), unless a
    later line holds an address in the email column: then a stray `"` swallowed rows, and
    skipping them as one invalid row would hide readers (or mail unsubscribed ones)."""
    assert meta.header is not None
    for offset, piece in enumerate(pieces[1:], start=1):
        cells = next(csv.reader([piece], delimiter=meta.delimiter), [])
        i = meta.header.email
        if i < len(cells) and _ADDRESS.fullmatch(cells[i].strip()):
            raise SubscriberError(
                f"a quote opened on this line swallows line {line + offset} "
                f"(and {len(pieces) - 1 - offset} more): {len(pieces)} lines read as one row",
                path=rel,
                line=line,
                hint='remove the stray " or double it ("") inside a quoted field',
            )
