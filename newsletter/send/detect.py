"""Who failed, as flufl.bounce (GNU Mailman's detectors, maintained) reads a notification.

Our own parser reads RFC 3464 reports; for the many plain-text shapes relays still send
(qmail, Exim, Yahoo, Exchange, Postfix without DSN...) flufl.bounce's provider-specific
detectors find the recipients, every one of a multi-recipient report, and tell permanent
from temporary. Addresses are cleaned (a stray quote, an `SMTP=` prefix) and never ours.
"""

from __future__ import annotations

import email
import logging
import re

from flufl.bounce import all_failures

# flufl.bounce logs a detector's exception with its traceback before raising it: we report
# the message as ours instead (never a traceback on the user's terminal).
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())
logging.getLogger("flufl.bounce").propagate = False

_PREFIX_RE = re.compile(r"^(?:smtp|rfc822|x400)[=:;]\s*", re.I)
_ADDRESS_RE = re.compile(r"^[^@\s<>\"'(),;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def clean(address: str) -> str:
    """`'x@example.fr'`, `<x@example.fr>`, `SMTP=x@example.fr` -> x@example.fr; "" if not one."""
    a = address.strip().strip("<>\"'`.,;:()[] ")
    a = _PREFIX_RE.sub("", a).strip("<>\"'` ")
    return a if _ADDRESS_RE.match(a) else ""


def failures(raw: bytes) -> tuple[list[str], list[str]]:
    """(permanent, temporary) failed recipients flufl.bounce finds, cleaned, in order."""
    msg = email.message_from_bytes(raw)  # compat32: what the detectors are written for
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector's bug on a mangled header (found by the
        # property test: a non-ASCII From gives sina.py a Header, not a str): our own parser
        # still reads the message
        return [], []
    perm = _cleaned(permanent)
    temp = [a for a in _cleaned(temporary) if a.lower() not in {p.lower() for p in perm}]
    return perm, temp


def _cleaned(found: frozenset[bytes] | object) -> list[str]:
    out: dict[str, str] = {}
    for item in sorted(found) if isinstance(found, frozenset) else []:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        address = clean(text)
        if address:
            out.setdefault(address.lower(), address)
    return list(out.values())
