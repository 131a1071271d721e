"""What an SMTP reply means for a recipient, by its enhanced status code (RFC 3463).

    2.x.x                      sent
    a refused sender           MAIL FROM refused, X.1.7/X.1.8, "Sender address rejected":
                               5xx a sender problem (stop the run), 4xx deferred; never a
                               hard bounce: the readers are not at fault
    5.1.x, 5.2.1               hard bounce: no such mailbox, disabled; suppress the address
    5.7.x                      sender problem (authentication, DMARC, policy): stop the run
    421, 454, 451 4.7.x        throttling: slow down, retry later
    other 4.x.x, no reply      deferred: retry later (dropped connection, timeout, 452 4.2.2)
    other 5.x.x                failed for this recipient (not suppressed)

Without an enhanced code the basic code and the text decide, as the fallback.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

#: The SMTP command a reply answered (None: no command, e.g. the connection or TLS).
Command = Literal["MAIL", "RCPT", "DATA"]


class Verdict(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    THROTTLED = "throttled"
    HARD_BOUNCE = "hard-bounce"
    FAILED = "failed"
    SENDER_PROBLEM = "sender-problem"


ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_NO_MAILBOX_RE = re.compile(
    r"user unknown|no such (user|mailbox|recipient)|does not exist|unknown (user|recipient)|"
    r"mailbox (unavailable|not found|disabled)|invalid (recipient|mailbox)|recipient rejected|"
    r"address rejected|account (disabled|has been disabled)",
    re.I,
)


#: Postfix's reject_unknown_sender_domain and kin, with or without an enhanced code.
_SENDER_RE = re.compile(
    r"sender (address|domain)|\bsender\b.{0,40}\b(rejected|refused|denied|unknown|not found|"
    r"not allowed|blocked|invalid)",
    re.I,
)


def about_sender(code: int, text: str, command: Command | None) -> bool:
    """True if the reply refuses the sender, not the recipient (issue 13, defect 1)."""
    if command == "MAIL":
        return True  # nothing at MAIL FROM is about a recipient
    enhanced = enhanced_code(text)
    if enhanced is not None and enhanced.split(".")[1:] in (["1", "7"], ["1", "8"]):
        return True
    return bool(_SENDER_RE.search(text))


def enhanced_code(text: str) -> str | None:
    m = ENHANCED_RE.search(text[:40])
    return ".".join(m.groups()) if m else None


def classify(code: int | None, text: str, *, command: Command | None = None) -> Verdict:
    """The verdict for one reply (`code` None: no reply at all: disconnect or timeout).

    `command`: the command the reply answered; a refusal at MAIL FROM is never a bounce.
    """
    if code is None:
        return Verdict.DEFERRED
    if 200 <= code < 300:  # every message but a few: no regex for them
        return Verdict.SENT
    enhanced = enhanced_code(text)
    if about_sender(code, text, command):
        if code >= 500:
            return Verdict.SENDER_PROBLEM
        return Verdict.THROTTLED if code in (421, 454) else Verdict.DEFERRED
    if enhanced is not None:
        cls, subject, detail = enhanced.split(".")
        if cls == "5" and (subject == "1" or (subject, detail) == ("2", "1")):
            return Verdict.HARD_BOUNCE
        if cls == "5" and subject == "7":
            return Verdict.SENDER_PROBLEM
        if code in (421, 454) or (code == 451 and subject == "7"):
            return Verdict.THROTTLED
        if cls == "4" or 400 <= code < 500:
            return Verdict.DEFERRED
        return Verdict.FAILED
    if code in (421, 454):
        return Verdict.THROTTLED
    if 400 <= code < 500:
        return Verdict.DEFERRED
    if code in (550, 551, 553) and _NO_MAILBOX_RE.search(text):
        return Verdict.HARD_BOUNCE
    return Verdict.FAILED


# -- notifications (`newsletter bounces`): the reply text decides when the code does not ----------

_UNKNOWN_USER_RE = re.compile(
    r"user(name)? (is )?unknown|unknown (user|recipient|local[- ]part|address|mailbox)|"
    r"no such (user|mailbox|recipient|address|account)|mailbox (is )?(unavailable|not found|"
    r"disabled|does not exist)|does ?n[o']t exist|recipient (address )?rejected|"
    r"no mailbox here|not a valid (user|mailbox|recipient|address)|invalid (recipient|mailbox|"
    r"address|user)|user (not found|doesn't have|does not have|account is (unavailable|"
    r"disabled|expired))|address (unknown|not found)|unrouteable address|no longer (active|"
    r"valid|available)|account (is )?(disabled|closed|inactive|has been disabled)|"
    r"not (a )?known user|unknown or illegal alias|is not a valid|"
    r"recipient (not found|unknown)|bad destination mailbox|not listed in|"
    r"(permanent|fatal) (error|failure)s?\b.*|unknown local|addressee unknown|"
    r"n'existe pas|inconnu",
    re.I,
)


# "Other or undefined" status (RFC 3463): says nothing about the mailbox, the text decides.
GENERIC_CODES = ("5.0.0", "5.3.0")


def classify_notification(code: int | None, enhanced: str | None, text: str) -> Verdict | None:
    """The verdict for one recipient of a bounce notification; None when nothing says.

    The enhanced code decides (RFC 3463); when it is missing or only says 5.0.0 or 5.3.0 ("other"),
    the basic code and the reply text do: a 5xx (or no code at all) whose text says the
    mailbox does not exist is a hard bounce.
    """
    if enhanced is not None and enhanced not in GENERIC_CODES:
        basic = code if code is not None else {"5": 550, "4": 450, "2": 250}[enhanced[0]]
        return classify(basic, f"{enhanced} {text}")
    if (code is None or 500 <= code < 600) and _UNKNOWN_USER_RE.search(text):
        return Verdict.HARD_BOUNCE
    if code is None:
        return Verdict.FAILED if enhanced else None
    return classify(code, text)
