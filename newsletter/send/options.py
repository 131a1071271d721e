"""What `newsletter send` was asked (SendOptions) and what it did (SendResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from newsletter.send.delivery import DeliveryReport


@dataclass(frozen=True)
class SendOptions:
    subscribers: Path
    dry_run: bool = False
    test_to: str | None = None
    limit: int | None = None
    skip_invalid: bool = False
    allow_rebuilt: bool = False
    retry_failed: bool = False
    resend: bool = False  # mail everyone again although the issue shows it was sent


@dataclass
class SendResult:
    issue_id: str
    report: DeliveryReport
    mailable: int = 0
    already_done: int = 0
    resent_in_flight: list[str] = field(default_factory=list)
    skipped_invalid: int = 0
    suppressed: int = 0
    not_subscribed: int = 0
    duplicates: int = 0
    dry_run: bool = False
    test_to: str | None = None
    remaining: int = 0
    # failed for another reason than a hard bounce now suppressed: `send` exits 3 (issue 12)
    other_failures: int = 0
    list_warning: str = ""  # e.g. the list was read as Windows-1252
    list_file: str = ""  # as the user knows it (relative to the folder)
    totals: dict[str, int] = field(default_factory=dict)
