"""The bytes of each recipient's message, from `build/<id>/`, built once and filled per recipient.

Everything expensive (MIME structure, quoted-printable encoding of the HTML and text parts,
the encoded Subject) is done once in `MessageTemplate`. `personalize` then only encodes the
few short per-recipient values and joins pre-encoded pieces: quoted-printable allows a soft
line break (`=` CRLF) anywhere between characters, so each piece is encoded on its own and
ended with one, and the decoded body is exactly the filled-in HTML.
"""

from __future__ import annotations

import binascii
import hashlib
import html as html_lib
import time
import uuid
from email.utils import formatdate
from pathlib import Path

from newsletter.errors import BuildError, ConfigError
from newsletter.labels import labels_for
from newsletter.manifest import Manifest
from newsletter.placeholders import PLACEHOLDER_RE, RECIPIENT_FIELDS, unescape_braces
from newsletter.send.headers import encode_word, format_address, header_value, quote_address
from newsletter.send.subscribers import Subscriber, unsubscribe_token
from newsletter.settings import Settings

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
MAX_LINE = 76

#: The reader a test message and the preview are personalised as.
SAMPLE_READER = Subscriber(email="lecteur@example.com", name="Camille Exemple")


def qp(data: bytes) -> bytes:
    """Quoted-printable with CRLF line breaks, each line at most 76 characters."""
    # Encode with LF line breaks, then turn every LF into CRLF: after encoding, a raw CR or LF
    # in the data can only be a line break (a lone CR is written =0D, below).
    encoded = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True)
    # binascii leaves a lone CR raw (a list value can hold one): a bare CR on the wire.
    encoded = encoded.replace(b"\r", b"=0D")
    # A line starting with a dot would need SMTP dot-stuffing; `=2E` is the same dot.
    if encoded.startswith(b"."):
        encoded = b"=2E" + encoded[1:]
    encoded = encoded.replace(b"\n.", b"\n=2E")
    lines = encoded.split(b"\n")
    if any(len(line) > MAX_LINE for line in lines):  # binascii overshoots around '=20', =2E
        lines = [part for line in lines for part in _rewrap(line)]
    return b"\r\n".join(lines)


def _rewrap(line: bytes) -> list[bytes]:
    """Split an over-long encoded line with soft breaks, never inside an =XX escape."""
    out: list[bytes] = []
    while len(line) > MAX_LINE:
        cut = MAX_LINE - 1
        # Never inside an =XX escape, and never leaving a dot at the start of the next line.
        while (
            line[cut - 1 : cut] == b"="
            or line[cut - 2 : cut - 1] == b"="
            or line[cut : cut + 1] == b"."
        ):
            cut -= 1
        out.append(line[:cut] + b"=")
        line = line[cut:]
    out.append(line)
    return out


def qp_piece(data: bytes) -> bytes:
    """`qp(data)` ended by a line break, so that pieces can be concatenated freely."""
    if not data:
        return b""
    encoded = qp(data)
    if encoded.endswith(CRLF):
        return encoded
    last = encoded.rsplit(CRLF, 1)[-1]
    if len(last) >= MAX_LINE:  # room for the trailing '=': split before the last 3 characters
        cut = len(encoded) - 3
        while encoded[cut - 1 : cut] == b"=" or encoded[cut - 2 : cut - 1] == b"=":
            cut -= 1
        tail = encoded[cut:]
        # The tail starts a line: a dot there would be eaten by the relay (no dot-stuffing).
        if tail.startswith(b"."):
            tail = b"=2E" + tail[1:]
        encoded = encoded[:cut] + SOFT_BREAK + tail
    return encoded + SOFT_BREAK


Piece = bytes | str  # bytes: pre-encoded; str: the name of a per-recipient field

#: Encoded field values a template keeps (values of up to CHUNK_CACHE_VALUE characters: a
#: few MB at most); when full it starts again.
CHUNK_CACHE_SIZE = 8192
CHUNK_CACHE_VALUE = 200



class MessageTemplate:
    """One issue's message, ready to be filled for each recipient."""

    def __init__(
        self,
        *,
        issue_id: str,
        subject: str,
        html: str,
        text: str,
        language: str,
        settings: Settings,
        subject_prefix: str = "",
    ) -> None:
        self.issue_id = issue_id
        self.subject = header_value(subject_prefix + subject)
        self.settings = settings
        self.labels = labels_for(language)
        self.domain = settings.sender_domain
        self._secret = settings.secret_key.get_secret_value()
        self._mailto = settings.effective_unsubscribe_mailto  # parsed once, used per recipient
        self.sender_address = settings.sender_address  # the envelope sender without VERP
        if settings.effective_unsubscribe_url and not self._secret:
            raise ConfigError(
                f"{_url_setting(settings)} is set but NEWSLETTER_SECRET_KEY is empty",
                path=".env",
                field="NEWSLETTER_SECRET_KEY",
                hint="set a long random secret: the unsubscribe tokens are signed with it",
            )
        self.fields = tuple(sorted(set(PLACEHOLDER_RE.findall(html + text))))
        self.boundary = "=_nl_" + hashlib.sha256((issue_id + html + text).encode()).hexdigest()[:16]
        head = [
            f"From: {format_address(*_split_from(settings.sender))}",
            "Subject: " + encode_word(self.subject),
            "MIME-Version: 1.0",
            f"List-Id: {encode_word(_split_from(settings.sender)[0] or issue_id)} "
            f"<{settings.effective_list_id}>",
        ]
        if settings.reply_to:
            head.append(f"Reply-To: {header_value(settings.reply_to)}")
        self._static_head = ("\r\n".join(head) + "\r\n").encode()
        b = self.boundary.encode()
        text_part: list[Piece] = [
            b"--" + b + b"\r\n",
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *_compile(text),
        ]
        html_part: list[Piece] = [
            b"--" + b + b"\r\n",
            b'Content-Type: text/html; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *_compile(html),
        ]
        # (piece, in the HTML part): a field's value is HTML-escaped there only.
        self._body_pieces: list[tuple[Piece, bool]] = [
            (b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n', False),
            *((piece, False) for piece in text_part),
            *((piece, True) for piece in html_part),
            (b"--" + b + b"--\r\n", False),
        ]
        self._date_cache: tuple[int, str] = (0, "")
        self._chunks: dict[tuple[str, bool], bytes] = {}  # (value, in the HTML) -> encoded

    @classmethod
    def from_build(
        cls, build_dir: Path, *, settings: Settings, subject_prefix: str = ""
    ) -> MessageTemplate:
        manifest = Manifest.read(build_dir)
        try:
            html = (build_dir / "email.html").read_text(encoding="utf-8")
            text = (build_dir / "email.txt").read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise BuildError(
                f"{Path(str(exc.filename)).name} is missing",
                path=f"build/{build_dir.name}",
                hint=f"rebuild with `newsletter build-issue {build_dir.name}`",
            ) from None
        return cls(
            issue_id=manifest.issue_id,
            subject=manifest.subject,
            html=html,
            text=text,
            language=manifest.language,
            settings=settings,
            subject_prefix=subject_prefix,
        )

    # -- per recipient -------------------------------------------------------------------

    def message_id(self, subscriber: Subscriber) -> str:
        """Stable per (issue, recipient): a duplicate after a crash can be recognised."""
        digest = hashlib.sha256(f"{self.issue_id}\0{subscriber.key}".encode()).hexdigest()[:24]
        return f"<{self.issue_id}.{digest}@{self.domain}>"

    @property
    def _https(self) -> str:
        """The one-click page: NEWSLETTER_UNSUBSCRIBE_URL, else NEWSLETTER_PUBLIC_URL's (#10)."""
        return self.settings.effective_unsubscribe_url

    def unsubscribe_link(self, subscriber: Subscriber) -> str:
        if self._https:
            return self._unsubscribe_https(subscriber)
        return f"mailto:{self._mailto}?subject=unsubscribe"

    def _unsubscribe_https(self, subscriber: Subscriber) -> str:
        token = unsubscribe_token(subscriber.email, self._secret)
        url = self._https
        if "{token}" in url:
            return url.replace("{token}", token)
        return f"{url}{'&' if '?' in url else '?'}token={token}"

    def values(self, subscriber: Subscriber) -> dict[str, str]:
        name = header_value(subscriber.name)
        greeting = (
            # the list's first-name column (Prénom) if any, else the name's first word
            self.labels["greeting_named"].format(
                name=header_value(subscriber.first_name) or name.split(" ")[0]
            )
            if name
            else self.labels["greeting"]
        )
        values = dict(subscriber.fields)
        values.update(
            name=name,
            email=subscriber.email,
            greeting=greeting,
            unsubscribe_url=self.unsubscribe_link(subscriber),
        )
        return values

    def personalize(
        self, subscriber: Subscriber, *, message_id: str | None = None, now: float | None = None
    ) -> bytes:
        """The complete message for one recipient, CRLF line endings, ready for DATA."""
        values = self.values(subscriber)
        mailto = f"<mailto:{self._mailto}?subject=unsubscribe%20{quote_address(subscriber.email)}>"
        head = [
            self._static_head,
            b"To: ",
            format_address(subscriber.name, subscriber.email).encode(),
            b"\r\nDate: ",
            self._date(now).encode(),
            b"\r\nMessage-ID: ",
            (message_id or self.message_id(subscriber)).encode(),
            b"\r\nList-Unsubscribe: ",
            mailto.encode(),
        ]
        if self._https:
            head += [
                b",\r\n <",
                values["unsubscribe_url"].encode(),  # the https link, signed once
                b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click",
            ]
        head.append(b"\r\n")
        parts: list[bytes] = head
        # Values repeat from reader to reader (the greeting by first name, a town, the mailto
        # link): each is escaped and encoded once per send, not once per message.
        cache = self._chunks
        if len(cache) > CHUNK_CACHE_SIZE:
            cache.clear()
        for piece, in_html in self._body_pieces:
            if isinstance(piece, bytes):
                parts.append(piece)
                continue
            value = values.get(piece, "")
            chunk = cache.get((value, in_html))
            if chunk is None:
                raw = html_lib.escape(value, quote=True) if in_html else value
                chunk = qp_piece(raw.encode("utf-8"))
                if len(value) <= CHUNK_CACHE_VALUE:
                    cache[(value, in_html)] = chunk
            parts.append(chunk)
        return b"".join(parts)

    def _date(self, now: float | None) -> str:
        t = int(now if now is not None else time.time())
        if self._date_cache[0] != t:
            self._date_cache = (t, formatdate(t, localtime=False))
        return self._date_cache[1]

    def test_message(self) -> bytes:
        """The message as the sample reader gets it, with a one-off Message-ID (email.eml)."""
        mid = f"<test.{self.issue_id}.{uuid.uuid4().hex[:16]}@{self.domain}>"
        return self.personalize(SAMPLE_READER, message_id=mid)


def _url_setting(settings: Settings) -> str:
    return "NEWSLETTER_UNSUBSCRIBE_URL" if settings.unsubscribe_url else "NEWSLETTER_PUBLIC_URL"


def _split_from(sender: str) -> tuple[str, str]:
    from email.utils import parseaddr

    return parseaddr(sender)


def _compile(body: str) -> list[Piece]:
    """Split a part into pre-encoded static pieces and field names."""
    pieces: list[Piece] = []
    pos = 0
    for m in PLACEHOLDER_RE.finditer(body):
        if m.start() > pos:
            pieces.append(qp_piece(unescape_braces(body[pos : m.start()]).encode("utf-8")))
        pieces.append(m.group(1))
        pos = m.end()
    # Article braces were escaped by the build (never a placeholder): the reader sees `{{`.
    tail = unescape_braces(body[pos:])
    # The CRLF before the next boundary belongs to the boundary (RFC 2046), hence one more.
    pieces.append((qp(tail.encode("utf-8")) if tail else b"") + CRLF)
    return pieces




def missing_fields(template: MessageTemplate, columns: tuple[str, ...]) -> list[str]:
    """Placeholders the build uses that neither every recipient nor the list file provides."""
    known = set(RECIPIENT_FIELDS) | set(columns)
    return [f for f in template.fields if f not in known]
