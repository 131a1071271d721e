"""`newsletter bounces`: notifications -> who failed and why -> the suppression file.

    read_messages(path)   an mbox file, a folder of .eml files, or one .eml file
      └─ dsn.parse(raw)   one notification -> [Bounce] (who failed, classified; see `send.dsn`)
          └─ append       hard bounces to the suppression file, reason "bounce"
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.send import suppressions
from newsletter.send.dsn import Bounce, Context, parse
from newsletter.send.journal import all_recipients
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
    def skipped(self) -> list[Bounce]:
        return [b for b in self.bounces if b.skipped]

    @property
    def others(self) -> list[Bounce]:
        return [b for b in self.bounces if not b.hard and not b.skipped]


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


# -- the command's core ---------------------------------------------------------------------


def process_bounces(path: Path, *, layout: Layout, settings: Settings) -> BounceReport:
    """`newsletter bounces`: read, classify, and add the hard bounces to the suppression file."""
    messages = read_messages(path, shown=layout.rel(path))
    verp = Verp.from_settings(settings)
    index: dict[str, tuple[str, str]] | None = None

    def lookup(token: str) -> tuple[str, str] | None:
        nonlocal index
        if verp is None:
            return None
        if index is None:  # once, and only if some notification came back through VERP
            index = verp.index(all_recipients(layout.journal_path))
        return index.get(token)

    own = {settings.sender_domain.lower()}
    if verp is not None:
        own.add(verp.domain)
    context = Context(
        own_domains=own, sender_domain=settings.sender_domain, verp=verp, lookup=lookup
    )
    report = BounceReport(messages=len(messages))
    for source, raw in messages:
        report.bounces.extend(parse(raw, source=source, context=context))

    target = layout.resolve(settings.suppressions)
    report.suppression_file = layout.rel(target)
    known = suppressions.load(target, rel=report.suppression_file)
    entries = []
    for b in report.hard:
        d = suppressions.digest(b.address)
        if d not in known:
            known.add(d)
            b.added = True
            code = str(b.smtp_code) if b.smtp_code else b.status
            entries.append(
                suppressions.Suppression(b.address, "bounce", code, b.issue, suppressions.today())
            )
    report.added = suppressions.append(target, entries)
    return report
