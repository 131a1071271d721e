"""`newsletter bounces`: notifications -> who failed and why -> the suppression file.

    read_messages(path)   an mbox file, a folder of .eml files, or one .eml file
      └─ dsn.parse(raw)   one notification -> [Bounce] (who failed, classified; see `send.dsn`)
          └─ append       hard bounces to the suppression file, reason "bounce"
"""

from __future__ import annotations

import email
import email.policy
import mailbox
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from newsletter.errors import NewsletterError, SubscriberError
from newsletter.layout import Layout
from newsletter.send import arf, softbounces, suppressions
from newsletter.send.changes import unsubscribe_noted
from newsletter.send.classify import Verdict
from newsletter.send.dsn import Bounce, Context, parse
from newsletter.send.journal import all_recipients, by_message_id, last_sent
from newsletter.send.verp import Verp
from newsletter.settings import Settings

__all__ = ["Bounce", "BounceReport", "Context", "parse", "process_bounces", "read_messages"]


@dataclass
class BounceReport:
    messages: int
    bounces: list[Bounce] = field(default_factory=list)
    added: int = 0
    suppression_file: str = ""

    @property
    def hard(self) -> list[Bounce]:
        return [b for b in self.bounces if b.hard]

    @property
    def complaints(self) -> list[Bounce]:
        return [b for b in self.bounces if b.complaint and b.suppress]

    @property
    def skipped(self) -> list[Bounce]:
        return [b for b in self.bounces if b.skipped]

    @property
    def others(self) -> list[Bounce]:
        return [b for b in self.bounces if not b.suppress and not b.skipped]


# -- reading -------------------------------------------------------------------------------


def read_messages(path: Path, *, shown: str) -> list[tuple[str, bytes]]:
    """(source name, raw bytes) of each message: a folder's *.eml, an mbox, or one message."""
    try:
        if path.is_dir():
            return [(p.name, p.read_bytes()) for p in sorted(path.glob("*.eml")) if p.is_file()]
        with open(path, "rb") as f:
            head = f.read(5)
        if head != b"From ":
            return [(path.name, path.read_bytes())]
        box = mailbox.mbox(str(path), create=False)
        try:
            return [(f"{path.name}#{n}", box.get_bytes(key)) for n, key in enumerate(box.keys(), 1)]
        finally:
            box.close()
    except (OSError, mailbox.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NewsletterError(
            f"cannot read: {reason}",
            path=shown,
            hint="give an mbox file, a folder of .eml files, or one .eml file",
        ) from None


def parse_or_skip(raw: bytes, *, source: str, context: Context) -> list[Bounce]:
    """A complaint (ARF) or a notification (DSN); a malformed message is reported and
    skipped, never a traceback (issue 13, defect 7)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        if arf.is_report(msg):
            return [arf.parse(msg, source=source, context=context)]
        return parse(raw, source=source, context=context)
    except Exception as exc:  # the email package and detectors raise anything
        note = f"malformed message, skipped ({type(exc).__name__})"
        return [Bounce(source, note=note, skipped=True)]


# -- the command's core ---------------------------------------------------------------------


def make_context(layout: Layout, settings: Settings) -> Context:
    """What parsing needs from the journal: VERP tokens, mailed addresses, Message-IDs."""
    verp = Verp.from_settings(settings)
    index: dict[str, tuple[str, str]] | None = None
    mailed: dict[str, str] | None = None

    def lookup(token: str) -> tuple[str, str] | None:
        nonlocal index
        if verp is None:
            return None
        if index is None:  # once, and only if some notification came back through VERP
            index = verp.index(all_recipients(layout.journal_path))
        return index.get(token)

    def last_issue(address: str) -> str | None:
        nonlocal mailed
        if mailed is None:  # once: address -> the issue last sent to it (by time, `sent` only)
            mailed = last_sent(layout.journal_path)
        return mailed.get(address.lower())

    own = {settings.sender_domain.lower()}
    if verp is not None:
        own.add(verp.domain)
    return Context(
        own_domains=own,
        sender_domain=settings.sender_domain,
        verp=verp,
        lookup=lookup,
        mailed=last_issue,
        by_message_id=lambda mid: by_message_id(layout.journal_path, mid),
    )


def process_bounces(path: Path, *, layout: Layout, settings: Settings) -> BounceReport:
    """`newsletter bounces`: read, classify, and add the hard bounces to the suppression file."""
    messages = read_messages(path, shown=layout.rel(path))
    context = make_context(layout, settings)
    report = BounceReport(messages=len(messages))
    for source, raw in messages:
        report.bounces.extend(parse_or_skip(raw, source=source, context=context))
    apply(report, layout=layout, settings=settings)
    return report


def apply(report: BounceReport, *, layout: Layout, settings: Settings) -> None:
    """Suppress hard bounces, complaints, and addresses that soft-bounced in too many
    issues; unsubscribe the readers who complained."""
    _count_soft_bounces(report.bounces, layout=layout, limit=settings.soft_bounce_limit)
    target = layout.resolve(settings.suppressions)
    report.suppression_file = layout.rel(target)
    known = suppressions.load(target, rel=report.suppression_file)
    entries = []
    for b in report.bounces:
        if not b.suppress:
            continue
        if b.complaint:
            b.unsubscribed = _unsubscribe(b.address, layout=layout, settings=settings)
        d = suppressions.digest(b.address)
        if d not in known:
            known.add(d)
            b.added = True
            # 5.1.1 says more than 550; a complaint keeps its Feedback-Type
            code = b.complaint or b.status or str(b.smtp_code or "")
            reason = "complaint" if b.complaint else "bounce" if b.hard else "soft-bounce"
            entries.append(
                suppressions.Suppression(b.address, reason, code, b.issue, suppressions.today())
            )
    report.added = suppressions.append(target, entries)


def _count_soft_bounces(found: list[Bounce], *, layout: Layout, limit: int) -> None:
    """Remember each soft bounce (state/soft-bounces.csv); at `limit` issues, suppress."""
    soft = [
        b
        for b in found
        if b.verdict is Verdict.DEFERRED and b.address and b.issue and not b.note
    ]
    if not soft:
        return
    path = layout.journal_path.parent / "soft-bounces.csv"
    counts = softbounces.record(path, ((b.address, b.issue, b.status) for b in soft))
    for b in soft:
        n = counts.get(b.address.lower(), 0)
        if n >= limit:
            b.soft_issues = n


def _unsubscribe(address: str, *, layout: Layout, settings: Settings) -> bool:
    """The list file says `unsubscribed` for `address`; False when it has no such row."""
    path = layout.resolve(settings.subscribers)
    try:  # logged too: a running send skips them, an old confirmation link never undoes it
        unsubscribe_noted(path, layout.state_dir, address, source="complaint",
                          rel=layout.rel(path))
    except SubscriberError:  # not (or no longer) in the list: the suppression still holds
        return False
    return True
