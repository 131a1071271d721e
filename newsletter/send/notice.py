"""The parts of a notification: its own words, and the copy of our message it returns.

    human_text(msg)     the notification's text (plain, else HTML), without the returned copy
    original_part(msg)  the returned message (message/rfc822, or text/rfc822-headers)
    original_to(msg)    the reader the returned copy was addressed To, never a list's address
    raw_header(msg, n)  a header's values as written, for malformed headers
"""

from __future__ import annotations

import html as html_lib
import re
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses

_ADDRESS_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# Where the returned copy of the message starts in a plain-text notification.
_ORIGINAL_RE = re.compile(
    r"^[ \t]*(?:-{2,}.*?(?:original message|copy of the message|returned message|"
    r"message headers|below this line|undelivered message).*|original message headers:?)[ \t]*$",
    re.I | re.M,
)


def raw_header(msg: Message, name: str) -> list[str]:
    """A header's values as written: the default policy's parsers raise on some malformed
    ones (a group address, `From: MAILER-DAEMON@`), and a notification is often malformed."""
    return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]


def human_text(msg: EmailMessage) -> str:
    """The notification's own words: its text parts, without the returned message."""
    plain: list[str] = []
    html: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("message/") or ctype == "text/rfc822-headers":
            return  # the returned message (a "multipart" to the email package): not its words
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    visit(sub)
            return
        if ctype in ("text/plain", "text/html"):
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                return
            charset = part.get_content_charset() or "utf-8"
            try:
                text = data.decode(charset, "replace")
            except LookupError:
                text = data.decode("utf-8", "replace")
            (plain if ctype == "text/plain" else html).append(text)

    visit(msg)
    if plain:
        text = "\n".join(plain)
    else:
        text = html_lib.unescape(re.sub(r"<[^>]*>", " ", "\n".join(html)))
    m = _ORIGINAL_RE.search(text)
    return text[: m.start()] if m else text


def original_part(msg: EmailMessage) -> Message | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if ctype in ("text/rfc822-headers", "message/global-headers"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return HeaderParser().parsestr(data.decode("utf-8", "replace").lstrip())
    return None


def original_to(msg: EmailMessage, human: str) -> str:
    """The recipient as the returned copy of our message names it (its To header)."""
    original = original_part(msg)
    if original is None:  # plain text: the copy follows a marker line
        body = msg.get_body(("plain",))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        m = _ORIGINAL_RE.search(text)
        if m is None:
            return ""
        original = HeaderParser().parsestr(text[m.end() :].lstrip())
    addresses = [a for _, a in getaddresses(raw_header(original, "To"))]
    if len(addresses) != 1 or not _ADDRESS_RE.fullmatch(addresses[0]):
        return ""
    # A list's own address (a mailing list's copy sent "To" the list) is never the reader.
    list_headers = ("From", "Sender", "Reply-To", "X-BeenThere", "List-Post", "List-Id")
    named = " ".join(v for h in list_headers for v in raw_header(original, h))
    return "" if addresses[0].lower() in named.lower() else addresses[0]
