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
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from newsletter.send import detect
from newsletter.send.classify import (
    GENERIC_CODES,
    Verdict,
    classify_notification,
    enhanced_code,
)
from newsletter.send.notice import human_text, original_to, raw_header
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
    complaint: str = ""  # an ARF report's Feedback-Type (abuse, fraud...): see `send.arf`
    unsubscribed: bool = False  # the list file now says so (complaints)
    soft_issues: int = 0  # soft bounces: in how many issues (suppressed at the limit)

    @property
    def code(self) -> str:
        return " ".join(x for x in (str(self.smtp_code or ""), self.status) if x) or "-"

    @property
    def hard(self) -> bool:
        return self.verdict is Verdict.HARD_BOUNCE and bool(self.address) and not self.note

    @property
    def suppress(self) -> bool:
        """A hard bounce or a complaint about a reader we mailed: never mail them again."""
        return self.hard or (
            bool(self.complaint or self.soft_issues) and bool(self.address) and not self.note
        )


# -- one notification -------------------------------------------------------------------------


@dataclass
class Context:
    """What parsing needs to know about us."""

    own_domains: set[str]
    sender_domain: str
    verp: Verp | None = None
    lookup: Callable[[str], tuple[str, str] | None] = lambda token: None
    # Without VERP, the issue last sent to an address (the journal's `sent` rows, by time),
    # None if never: a notification about anyone else is forged or not ours. None here: no
    # such check. Used only when the notification does not name its issue (Message-ID).
    mailed: Callable[[str], str | None] | None = None
    # (issue, address) of the message with this Message-ID (the journal); complaints.
    by_message_id: Callable[[str], tuple[str, str] | None] | None = None


def parse(raw: bytes, *, source: str, context: Context) -> list[Bounce]:
    """The failed recipients of one message; one skipped Bounce if it names none."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    blocks = _delivery_status(msg)
    if blocks is None and not _looks_like_dsn(msg):
        return [Bounce(source, note=NOT_A_DSN, skipped=True)]
    issue = _issue_from_message_id(raw, msg, context.sender_domain)
    found = _from_blocks(source, blocks or [])
    _read_generic_codes(found, human_text(msg), raw)
    if not found:  # the plain-text shapes, or a report without recipient blocks
        found = _text_bounces(source, raw, msg, context)
    for b in found:
        b.issue = b.issue or issue
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
    return _checked(_unique(found), context)


def _from_blocks(source: str, blocks: list[dict[str, str]]) -> list[Bounce]:
    found: list[Bounce] = []
    for block in blocks:
        action = block.get("action", "failed").lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        address = _recipient_field(block.get("original-recipient", "")) or _recipient_field(
            block.get("final-recipient", "")
        )
        bounce = _classified(source, block.get("diagnostic-code", ""), block.get("status", ""))
        bounce.address = address
        if action == "delayed" and bounce.verdict is Verdict.HARD_BOUNCE:
            bounce.verdict = Verdict.DEFERRED  # a warning: the relay still tries
        found.append(bounce)
    return found


def _text_bounces(source: str, raw: bytes, msg: EmailMessage, context: Context) -> list[Bounce]:
    """Every recipient flufl.bounce finds in a plain-text notification, each classified by
    the reply shown next to it; else the first address of the text, or the returned To."""
    human = human_text(msg)
    own = _own_addresses(msg)
    permanent, temporary = detect.failures(raw)
    picks = [(a, False) for a in permanent] + [(a, True) for a in temporary]
    picks = [(a, t) for a, t in picks if not _is_ours(a, own, context)]
    if not picks:
        bounce = _from_text(source, human)
        bounce.address = _address_in_text(human, own, context) or original_to(msg, human)
        return [bounce]
    found: list[Bounce] = []
    for address, temporary_failure in picks:
        window = _window(human, address, [a for a, _ in picks if a != address])
        bounce = _from_text(source, window)
        if bounce.verdict is None and window != human:
            bounce = _from_text(source, human)
        if temporary_failure:
            bounce.verdict = Verdict.DEFERRED  # a warning: the relay still tries
        elif bounce.verdict is None:  # no code anywhere: Mailman's detectors judged it
            bounce.verdict = Verdict.HARD_BOUNCE
        bounce.address = address
        found.append(bounce)
    return found


def _read_generic_codes(found: list[Bounce], human: str, raw: bytes) -> None:
    """A report that says only 5.0.0 (or nothing): its text about the recipient decides,
    else Mailman's detectors (flufl.bounce) when they call the failure permanent."""
    permanent: set[str] | None = None
    for b in found:
        if b.verdict is Verdict.HARD_BOUNCE or (b.status and b.status not in GENERIC_CODES):
            continue
        window = _window(human, b.address, []) if b.address else human
        text = f"{b.diagnostic} {' '.join(window.split())}"
        verdict = classify_notification(b.smtp_code, b.status or None, text)
        delayed = b.status.startswith("4")  # a 4.x.x report stays a temporary failure
        if verdict is not None and not (delayed and verdict is Verdict.HARD_BOUNCE):
            b.verdict = verdict
        if b.verdict is not Verdict.HARD_BOUNCE and b.status in GENERIC_CODES:
            if permanent is None:
                permanent = {a.lower() for a in detect.failures(raw)[0]}
            if b.address.lower() in permanent:
                b.verdict = Verdict.HARD_BOUNCE


def _window(human: str, address: str, others: list[str]) -> str:
    """The text about `address`: from where it appears to where the next address does."""
    lower = human.lower()
    at = lower.find(address.lower())
    if at < 0:
        return human
    start = lower.rfind("\n", 0, at) + 1
    ends = [lower.find(o.lower(), at + len(address)) for o in others]
    end = min([e for e in ends if e > at] + [at + 600])
    return human[start:end]


def _unique(found: list[Bounce]) -> list[Bounce]:
    """One Bounce per address: a report naming one address N times counts once."""
    seen: set[str] = set()
    out: list[Bounce] = []
    for b in found:
        if b.address and b.address.lower() in seen:
            continue
        seen.add(b.address.lower())
        out.append(b)
    return out


def _checked(found: list[Bounce], context: Context) -> list[Bounce]:
    """Defect 8 (forged bounces): act only on addresses this newsletter mailed."""
    for b in found:
        if not b.address:
            b.note, b.skipped = NO_RECIPIENT, True
        elif context.verp is not None:
            b.note = "no VERP token: not a return path of ours"
        elif context.mailed is not None:
            issue = context.mailed(b.address)
            if issue is None:
                b.note = "never mailed by this newsletter (not in the journal)"
            b.issue = b.issue or issue or ""
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
    bounce = _bounce(source, None, sm.group(1) if sm else None, " ".join(human.split()))
    bounce.diagnostic = ""
    return bounce


def _bounce(source: str, code: int | None, enhanced: str | None, text: str) -> Bounce:
    verdict = classify_notification(code, enhanced, text)
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
                {k.lower(): " ".join(str(v).split()) for k, v in b.raw_items()}
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
    local = parseaddr(" ".join(raw_header(msg, "From")))[1].partition("@")[0].lower()
    return local in _DAEMONS or bool(_DSN_SUBJECT_RE.search(" ".join(raw_header(msg, "Subject"))))


def _recipient_field(value: str) -> str:
    """`rfc822; x@example.fr` -> x@example.fr."""
    kind, sep, address = value.partition(";")
    address = (address if sep else kind).strip().strip("<>").strip()
    return address if _ADDRESS_RE.fullmatch(address) else ""


def _own_addresses(msg: EmailMessage) -> set[str]:
    """The notification's own header addresses: its sender, us, the return path."""
    headers = ("From", "To", "Cc", "Reply-To", "Sender", "Return-Path", *_VERP_HEADERS)
    values = [v for h in headers for v in raw_header(msg, h)]
    return {a.lower() for _, a in getaddresses(values)}


def _is_ours(address: str, own: set[str], context: Context) -> bool:
    local, _, domain = address.lower().rpartition("@")
    return address.lower() in own or local in _DAEMONS or domain in context.own_domains


def _address_in_text(human: str, own: set[str], context: Context) -> str:
    """The first address in the notification's text that is not ours, a daemon's or its own."""
    for m in _ADDRESS_RE.finditer(human):
        address = detect.clean(m.group(0))
        if address and not _is_ours(address, own, context):
            return address
    return ""


def _verp_address(msg: EmailMessage, context: Context) -> tuple[str, str] | None:
    """(token, address) of the VERP return path the notification was delivered to."""
    if context.verp is None:
        return None
    for name in _VERP_HEADERS:
        for _, address in getaddresses(raw_header(msg, name)):
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
