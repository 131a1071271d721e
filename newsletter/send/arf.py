"""Complaint reports (ARF, RFC 5965): a reader pressed "this is spam" -> who, and what kind.

    is_report(msg)   multipart/report; report-type=feedback-report, or a message/feedback-report
    parse(msg)       one Bounce with `complaint` set to the Feedback-Type (abuse, fraud...)

Who complained, in order of trust: the VERP token of the returned message's return path (or
Original-Mail-From); its Message-ID, looked up in the journal; then Original-Rcpt-To and the
returned message's To, taken only when the journal shows that address was mailed (a report
about anyone else may be forged). Any Feedback-Type counts: `abuse` is the usual one, and
fraud, virus or other still say the reader does not want this mail.
"""

from __future__ import annotations

import re
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from newsletter.send import detect
from newsletter.send.dsn import Bounce, Context
from newsletter.send.notice import original_part, raw_header

FEEDBACK = "message/feedback-report"
_MESSAGE_ID_RE = re.compile(r"<?([^<>\s]+@[^<>\s]+)>?")


def is_report(msg: EmailMessage) -> bool:
    if msg.get_content_type() == "multipart/report" and "feedback-report" in (
        msg.get_param("report-type") or ""
    ):
        return True
    return any(part.get_content_type() == FEEDBACK for part in msg.walk())


def parse(msg: EmailMessage, *, source: str, context: Context) -> Bounce:
    """The complaint of one feedback report: its reader, or a note saying why none."""
    fields = _feedback_fields(msg)
    kind = (fields.get("feedback-type") or "abuse").strip().lower() or "abuse"
    bounce = Bounce(source, complaint=kind)
    original = original_part(msg)
    found = _by_verp(fields, original, context) or _by_message_id(original, context)
    if found is not None:
        bounce.issue, bounce.address = found
        return bounce
    if context.verp is not None and _verp_tokens(fields, original, context):
        bounce.note = "unknown VERP token"
        return bounce
    for address in _named(fields, original):
        issue = context.mailed(address) if context.mailed is not None else ""
        if issue is not None:
            bounce.issue, bounce.address = issue, address
            return bounce
        bounce.address = bounce.address or address
    if bounce.address:
        bounce.note = "never mailed by this newsletter (not in the journal)"
    else:
        bounce.note, bounce.skipped = "complaint names no reader", True
    return bounce


def _feedback_fields(msg: EmailMessage) -> dict[str, str]:
    for part in msg.walk():
        if part.get_content_type() != FEEDBACK:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return {k.lower(): " ".join(str(v).split()) for k, v in payload[0].raw_items()}
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
        return {k.lower(): " ".join(v.split()) for k, v in HeaderParser().parsestr(text).items()}
    return {}


def _verp_tokens(fields: dict[str, str], original: Message | None, context: Context) -> list[str]:
    if context.verp is None:
        return []
    values = [fields.get("original-mail-from", "")]
    if original is not None:
        values += raw_header(original, "Return-Path")
    tokens = [context.verp.token_of(parseaddr(v)[1] or v) for v in values if v]
    return [t for t in tokens if t is not None]


def _by_verp(
    fields: dict[str, str], original: Message | None, context: Context
) -> tuple[str, str] | None:
    for token in _verp_tokens(fields, original, context):
        row = context.lookup(token)
        if row is not None:
            return row
    return None


def _by_message_id(original: Message | None, context: Context) -> tuple[str, str] | None:
    if original is None or context.by_message_id is None:
        return None
    for value in raw_header(original, "Message-ID"):
        m = _MESSAGE_ID_RE.search(value)
        if m:
            row = context.by_message_id(m.group(1))
            if row is not None:
                return row
    return None


def _named(fields: dict[str, str], original: Message | None) -> list[str]:
    """Original-Rcpt-To, then the returned message's To: cleaned, in order, once each."""
    values = [fields.get("original-rcpt-to", "")]
    if original is not None:
        values += raw_header(original, "To")
    out: list[str] = []
    for _, address in getaddresses([v for v in values if v]):
        cleaned = detect.clean(address)
        if cleaned and cleaned.lower() not in {a.lower() for a in out}:
            out.append(cleaned)
    return out
