"""One build of an issue as the preview shows it: filled for a reader, sized as Gmail sizes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.checks import GMAIL_CLIP_ERROR_BYTES, Finding, clip_size
from newsletter.errors import SubscriberError
from newsletter.manifest import Manifest
from newsletter.placeholders import fill
from newsletter.send.message import MessageTemplate
from newsletter.send.subscribers import Subscriber, read_rows
from newsletter.settings import Settings


@dataclass(frozen=True)
class SizeGauge:
    """The measure of the gmail-clip check (`checks.clip_size`), against its limit."""

    sent: int  # the headers and the quoted-printable HTML part of email.eml, in bytes
    raw: int  # email.html, UTF-8
    limit: int = GMAIL_CLIP_ERROR_BYTES

    @property
    def share(self) -> float:
        return self.sent / self.limit

    @property
    def over(self) -> bool:
        return self.sent > self.limit


@dataclass(frozen=True)
class Snapshot:
    """One good build, personalised for display: what the page and its frames show."""

    issue_id: str
    subject: str
    preheader: str
    sender: str
    recipient: str
    html: str  # build/<id>/email.html with the recipient placeholders filled (HTML-escaped)
    text: str  # build/<id>/email.txt, filled
    gauge: SizeGauge
    findings: tuple[Finding, ...]
    built_at: float
    build_ms: int | None = None


def read_manifest(build_dir: Path) -> tuple[Manifest, list[Finding]]:
    """build/<id>/manifest.json: the fields and the recorded findings. Raises BuildError.

    """
    manifest = Manifest.read(build_dir)  # raises the BuildError naming what to run
    return manifest, list(manifest.warnings)


def who(subscriber: Subscriber) -> str:
    return f"{subscriber.name} <{subscriber.email}>" if subscriber.name else subscriber.email


def find_subscriber(path: Path, email: str, *, rel: str) -> Subscriber:
    """The row of the list file for `email` (case-insensitive). Raises SubscriberError."""
    wanted = email.strip().lower()
    for row in read_rows(path, rel=rel):
        if isinstance(row, Subscriber) and row.key == wanted:
            return row
    raise SubscriberError(
        f"no subscriber '{email}' in the list",
        path=rel,
        hint="use an address of the list file, or omit --as to preview as the sample reader",
    )


def snapshot_of(
    build_dir: Path,
    *,
    settings: Settings,
    subscriber: Subscriber,
    findings: Iterable[Finding] | None = None,
    build_ms: int | None = None,
) -> Snapshot:
    """Read `build_dir` (email.html, email.txt, email.eml, manifest.json) and fill it for display.

    `findings` default to the manifest's. Raises BuildError (not built, unreadable) or
    ConfigError (settings a message cannot be made with).
    """
    manifest, recorded = read_manifest(build_dir)
    template = MessageTemplate.from_build(build_dir, settings=settings)
    html_path = build_dir / "email.html"
    html = html_path.read_text(encoding="utf-8")
    text = (build_dir / "email.txt").read_text(encoding="utf-8")
    # The sample reader's message, as the check measured it: the same figure, the same limit.
    size = clip_size(html, (build_dir / "email.eml").read_bytes())
    values = template.values(subscriber)
    return Snapshot(
        issue_id=manifest.issue_id,
        subject=template.subject,
        preheader=manifest.preheader,
        sender=settings.sender,
        recipient=who(subscriber),
        html=fill(html, values, html=True),
        text=fill(text, values, html=False),
        gauge=SizeGauge(sent=size.sent, raw=size.raw),
        findings=tuple(recorded if findings is None else findings),
        built_at=html_path.stat().st_mtime,
        build_ms=build_ms,
    )
