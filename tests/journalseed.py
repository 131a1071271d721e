"""Put addresses in the send journal, as if the newsletter had mailed them (bounce tests)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from newsletter.layout import Layout
from newsletter.send.journal import Journal, Status, Write

_ANY_ADDRESS_RE = re.compile(rb"[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")


def mailed(root: Path, addresses: Iterable[str], *, issue: str = "2026-11") -> None:
    journal = Journal(Layout(root).journal_path, issue)
    try:
        journal.commit(Write(a, Status.SENT, 1) for a in sorted(set(addresses)))
    finally:
        journal.close()


def mailed_everyone_in(root: Path, folder: Path, *, issue: str = "2026-11") -> None:
    """Every address the files of `folder` show: the journal check then filters nothing."""
    mailed(
        root,
        {
            m.group(0).decode("ascii", "replace").strip(".'=").lower()
            for p in folder.rglob("*")
            if p.is_file()
            for m in _ANY_ADDRESS_RE.finditer(p.read_bytes())
        },
        issue=issue,
    )


def list_status(root: Path) -> dict[str, str]:
    """address -> status, as the list file says now."""
    with open(root / "subscribers.csv", encoding="utf-8", newline="") as f:
        return {r["email"]: r["status"] for r in csv.DictReader(f)}
