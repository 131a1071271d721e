"""`newsletter inbox`: the bounce mailbox read and acted on, each message once.

    open_mailbox          IMAP (NEWSLETTER_IMAP_*), or a Maildir / mbox path
      └─ each message     an unsubscribe request (our List-Unsubscribe mailto), else a
                          bounce or complaint (`send.bounces`, exactly as `newsletter bounces`)
          └─ apply        suppressions and unsubscribes, durable first
              └─ done     handled messages move to the done folder; others stay for a human

A request unsubscribes the reader it names only when it comes from that address, or names
the reader's unsubscribe token (Subject `unsubscribe <address or token>`, as our mailto
link writes it; a bare `unsubscribe` names its sender). A crash between `apply` and `done`
handles the message again next time, which changes nothing (both steps are idempotent).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from newsletter.errors import SubscriberError
from newsletter.layout import Layout
from newsletter.send import bounces
from newsletter.send.changes import unsubscribe_noted
from newsletter.send.dsn import NOT_A_DSN
from newsletter.send.liststore import address_of
from newsletter.send.mailboxes import open_mailbox
from newsletter.send.notice import raw_header
from newsletter.settings import Settings

_REQUEST_RE = re.compile(r"^\s*unsubscribe\b\s*(\S*)\s*$", re.I)


@dataclass
class Request:
    source: str
    address: str
    done: bool = False
    note: str = ""


@dataclass
class InboxReport:
    bounces: bounces.BounceReport = field(default_factory=lambda: bounces.BounceReport(0))
    requests: list[Request] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # (source, why) not moved
    moved: int = 0
    done_folder: str = ""


def process_inbox(path: Path | None, *, layout: Layout, settings: Settings) -> InboxReport:
    """Read the mailbox, act on what it holds, and move what was handled to the done folder."""
    box = open_mailbox(path, settings=settings, shown=layout.rel(path) if path else "")
    report = InboxReport(done_folder=settings.imap_done_folder)
    context = bounces.make_context(layout, settings)
    handled: list[str] = []
    try:
        for key, raw in box.messages():
            report.bounces.messages += 1
            source = f"#{key}" if path is None else key
            request = _request(raw, source)
            if request is not None:
                report.requests.append(request)
                handled.append(key)
                continue
            found = bounces.parse_or_skip(raw, source=source, context=context)
            skipped = [b for b in found if b.skipped]
            if skipped and len(skipped) == len(found):
                report.left.append((source, skipped[0].note))
                continue
            report.bounces.bounces.extend(found)
            handled.append(key)
        bounces.apply(report.bounces, layout=layout, settings=settings)
        _unsubscribe(report.requests, layout=layout, settings=settings)
        for key in handled:  # only once what they asked for is on disk
            box.done(key)
            report.moved += 1
    finally:
        box.close()
    return report


def _request(raw: bytes, source: str) -> Request | None:
    """An unsubscribe request (Subject `unsubscribe [address or token]`), None otherwise."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    m = _REQUEST_RE.match(" ".join(" ".join(raw_header(msg, "Subject")).split()))
    if m is None:
        return None
    sender = parseaddr(" ".join(raw_header(msg, "From")))[1]
    named = m.group(1)
    if not named or named.lower() == sender.lower():
        return Request(source, sender) if sender else Request(source, "", note="no sender")
    if "@" in named:
        return Request(source, named, note=f"not sent from {named} (sent by {sender or '?'})")
    return Request(source, named)  # a token: looked up in the list (`address_of`)


def _unsubscribe(requests: list[Request], *, layout: Layout, settings: Settings) -> None:
    path = layout.resolve(settings.subscribers)
    secret = settings.secret_key.get_secret_value()
    for r in requests:
        if r.note:
            continue
        if "@" not in r.address and not secret:
            r.note = "a token, but NEWSLETTER_SECRET_KEY is empty"
            continue
        rel = layout.rel(path)
        address = r.address
        if "@" not in address:
            address = address_of(path, address, secret=secret, rel=rel) or ""
        try:  # logged too: a running send skips them, an old confirmation link never undoes it
            unsubscribe_noted(path, layout.state_dir, address, source="inbox", rel=rel)
        except SubscriberError:
            r.note = "no subscriber with this address or token"
            continue
        r.address, r.done = address, True


__all__ = ["NOT_A_DSN", "InboxReport", "Request", "process_inbox"]
