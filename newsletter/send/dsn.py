"""One delivery status notification -> the recipients that failed, and why.

    parse(raw)   RFC 3464 multipart/report (message/delivery-status), else the plain-text
                 shapes (Outlook/Exchange, qmail, old Gmail): [Bounce], each classified by
                 `send.classify` on the remote reply (Diagnostic-Code, else Status)

Who failed, in order of trust: the VERP return path the notification came back to (when
NEWSLETTER_BOUNCE_DOMAIN is set: signed, looked up in the journal, and naming our subscriber
even when the mail was forwarded to another address); then Original-Recipient and
Final-Recipient; then the first address in the notification's text that is neither ours nor
a mailer daemon's; then the To of the returned message. A VERP address with a token the
journal does not know is reported and never suppressed (it may be forged).
"""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from newsletter.send.classify import Verdict, classify, enhanced_code
from newsletter.send.verp import Verp

NOT_A_DSN = "not a delivery status notification"
NO_RECIPIENT = "no failed recipient found"

_ADDRESS_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# "550 5.1.1", "550-5.1.1", "#550 5.1.10", "550 #5.1.1"
_REPLY_RE = re.compile(r"(?<![\d.])([245]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_STATUS_RE = re.compile(r"(?<![\d.])#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_DSN_SUBJECT_RE = re.compile(
    r"undeliver|not (been )?delivered|could not be delivered|delivery (status notification|"
    r"has failed|failure|failed|problem|notification)|returned mail|returned to sender|"
    r"failure notice|non-?delivery|mail delivery (failed|system|subsystem)|"
    r"message not delivered|non remis|non distribuable|échec de (la )?remise",
    re.I,
)
_DAEMONS = {"mailer-daemon", "mail-daemon", "mailerdaemon", "postmaster", "mdaemon"}
# Where the returned copy of the message starts in a plain-text notification.
_ORIGINAL_RE = re.compile(
    r"^[ \t]*(?:-{2,}.*?(?:original message|copy of the message|returned message|"
    r"message headers|below this line|undelivered message).*|original message headers:?)[ \t]*$",
    re.I | re.M,
)
_VERP_HEADERS = ("Delivered-To", "X-Original-To", "To", "Envelope-To", "X-Envelope-To")


@dataclass
class Bounce:
    """One failed (or delayed) recipient of one notification, or a skipped message."""

    source: str
    address: str = ""
    verdict: Verdict | None = None  # None: the notification gives no status code
    smtp_code: int | None = None
    status: str = ""  # enhanced status code, 5.1.1
    diagnostic: str = ""
    issue: str = ""
    note: str = ""  # set: not suppressed, and why
    added: bool = False  # added to the suppression file by this run
    skipped: bool = False  # not a notification, or no recipient in it

    @property
    def code(self) -> str:
        return " ".join(x for x in (str(self.smtp_code or ""), self.status) if x) or "-"

    @property
    def hard(self) -> bool:
        return self.verdict is Verdict.HARD_BOUNCE and bool(self.address) and not self.note


# -- one notification -------------------------------------------------------------------------


@dataclass
class Context:
    """What parsing needs to know about us."""

    own_domains: set[str]
    sender_domain: str
    verp: Verp | None = None
    lookup: Callable[[str], tuple[str, str] | None] = lambda token: None


def parse(raw: bytes, *, source: str, context: Context) -> list[Bounce]:
    """The failed recipients of one message; one skipped Bounce if it names none."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    blocks = _delivery_status(msg)
    if blocks is None and not _looks_like_dsn(msg):
        return [Bounce(source, note=NOT_A_DSN, skipped=True)]
    issue = _issue_from_message_id(raw, msg, context.sender_domain)
    found: list[Bounce] = []
    for block in blocks or []:
        action = block.get("action", "failed").lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        address = _recipient_field(block.get("original-recipient", "")) or _recipient_field(
            block.get("final-recipient", "")
        )
        bounce = _classified(source, block.get("diagnostic-code", ""), block.get("status", ""))
        bounce.address, bounce.issue = address, issue
        found.append(bounce)
    if not found:  # the plain-text shapes, or a report without recipient blocks
        human = _human_text(msg)
        bounce = _from_text(source, human)
        bounce.address = _address_in_text(human, msg, context) or _original_to(msg, human)
        bounce.issue = issue
        found.append(bounce)

    verp = _verp_address(msg, context)
    if verp is not None:
        token, address = verp
        row = context.lookup(token)
        first = found[0]
        if row is None:
            first.note = f"unknown VERP token in {address}"
            return [first]
        first.issue, first.address = row
        return [first]  # one message, one recipient: the return path says which
    for b in found:
        if not b.address:
            b.note, b.skipped = NO_RECIPIENT, True
    return found


def _classified(source: str, diagnostic: str, status: str) -> Bounce:
    """A Bounce with its code and class from a Diagnostic-Code and a Status field."""
    kind, sep, text = diagnostic.partition(";")
    text = " ".join((text if sep else kind).split())
    m = re.match(r"([245]\d\d)(?:[ -]+|$)(.*)", text)
    code = int(m.group(1)) if m else None
    rest = m.group(2) if m else text
    enhanced = enhanced_code(rest)
    if code is not None:  # multi-line replies repeat "550-5.1.1" on every line
        repeat = rf"\s{code}[ -]{re.escape(enhanced)}(?=\s|$)" if enhanced else rf"\s{code}-"
        rest = " ".join(re.sub(repeat, " ", rest).split())
    sm = _STATUS_RE.search(status)
    enhanced = enhanced or (sm.group(1) if sm else None)
    return _bounce(source, code, enhanced, rest)


def _from_text(source: str, human: str) -> Bounce:
    """Code and diagnostic from a notification's text: the first `550 5.1.1` it shows."""
    m = _REPLY_RE.search(human)
    if m:
        line_end = human.find("\n", m.end())
        rest = human[m.start(2) : line_end if line_end >= 0 else None]
        rest = " ".join(rest.split()).strip(" '\"#")
        return _bounce(source, int(m.group(1)), m.group(2), rest)
    sm = _STATUS_RE.search(human)
    return _bounce(source, None, sm.group(1) if sm else None, "")


def _bounce(source: str, code: int | None, enhanced: str | None, text: str) -> Bounce:
    code_for_class = code
    if code is None and enhanced is not None:
        code_for_class = {"5": 550, "4": 450, "2": 250}[enhanced[0]]
    verdict = None
    if code_for_class is not None:
        reply = text if enhanced is None or enhanced_code(text) else f"{enhanced} {text}"
        verdict = classify(code_for_class, reply)
    return Bounce(source, verdict=verdict, smtp_code=code, status=enhanced or "", diagnostic=text)


def _delivery_status(msg: EmailMessage) -> list[dict[str, str]] | None:
    """The per-recipient fields of the message/delivery-status part, None if there is none."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = [
                {k.lower(): " ".join(str(v).split()) for k, v in b.items()}
                for b in payload
                if isinstance(b, Message)
            ]
        else:  # message/global-delivery-status: UTF-8 text, parsed here
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
            blocks = [
                {k.lower(): " ".join(str(v).split()) for k, v in HeaderParser().parsestr(b).items()}
                for b in re.split(r"\r?\n[ \t]*\r?\n", text.strip())
            ]
        return [b for b in blocks if "final-recipient" in b or "original-recipient" in b]
    return None


def _looks_like_dsn(msg: EmailMessage) -> bool:
    if msg.get_content_type() == "multipart/report":
        return True
    local = parseaddr(str(msg.get("From", "")))[1].partition("@")[0].lower()
    return local in _DAEMONS or bool(_DSN_SUBJECT_RE.search(str(msg.get("Subject", ""))))


def _recipient_field(value: str) -> str:
    """`rfc822; x@example.fr` -> x@example.fr."""
    kind, sep, address = value.partition(";")
    address = (address if sep else kind).strip().strip("<>").strip()
    return address if _ADDRESS_RE.fullmatch(address) else ""


def _human_text(msg: EmailMessage) -> str:
    """The notification's own words: its text parts, without the returned message."""
    plain: list[str] = []
    html: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    visit(sub)
            return
        if ctype.startswith("message/") or ctype == "text/rfc822-headers":
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


def _original_part(msg: EmailMessage) -> Message | None:
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


def _original_to(msg: EmailMessage, human: str) -> str:
    """The recipient as the returned copy of our message names it (its To header)."""
    original = _original_part(msg)
    if original is None:  # plain text: the copy follows a marker line
        body = msg.get_body(("plain",))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        m = _ORIGINAL_RE.search(text)
        if m is None:
            return ""
        original = HeaderParser().parsestr(text[m.end() :].lstrip())
    addresses = [a for _, a in getaddresses([str(v) for v in original.get_all("To", [])])]
    return addresses[0] if len(addresses) == 1 and _ADDRESS_RE.fullmatch(addresses[0]) else ""


def _address_in_text(human: str, msg: EmailMessage, context: Context) -> str:
    """The first address in the notification's text that is not ours, a daemon's or its own."""
    headers = ("From", "To", "Cc", "Reply-To", "Sender", "Return-Path", *_VERP_HEADERS)
    own = {
        a.lower() for _, a in getaddresses([str(v) for h in headers for v in msg.get_all(h, [])])
    }
    for m in _ADDRESS_RE.finditer(human):
        address = m.group(0).strip(".")
        local, _, domain = address.lower().rpartition("@")
        if address.lower() in own or local in _DAEMONS or domain in context.own_domains:
            continue
        return address
    return ""


def _verp_address(msg: EmailMessage, context: Context) -> tuple[str, str] | None:
    """(token, address) of the VERP return path the notification was delivered to."""
    if context.verp is None:
        return None
    for name in _VERP_HEADERS:
        for _, address in getaddresses([str(v) for v in msg.get_all(name, [])]):
            token = context.verp.token_of(address)
            if token is not None:
                return token, address
    return None


def _issue_from_message_id(raw: bytes, msg: EmailMessage, domain: str) -> str:
    """The issue of the returned message, from its Message-ID <issue.hash@domain>."""
    if not domain:
        return ""
    pattern = re.compile(rb"<([^<>\s@]+)\.[0-9a-f]{24}@" + re.escape(domain.encode()) + rb">", re.I)
    m = pattern.search(raw)
    if m is None:  # an encoded copy (base64 text part)
        for part in msg.walk():
            data = part.get_payload(decode=True) if not part.is_multipart() else None
            if isinstance(data, bytes):
                m = pattern.search(data)
                if m:
                    break
    return m.group(1).decode("utf-8", "replace") if m else ""
