"""Soft bounces remembered across runs: one address that soft-bounces in N issues is suppressed.

    state/soft-bounces.csv   email,issue,code,date: one row per (address, issue), appended

A mailbox that is full (or a server that defers) once is normal; the same address deferring
issue after issue is a dead mailbox that nobody will empty, and receivers such as Orange and
La Poste penalise senders that keep mailing it. NEWSLETTER_SOFT_BOUNCE_LIMIT (default 3)
different issues -> suppressed with reason `soft-bounce`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from newsletter import fsio
from newsletter.send.suppressions import today

HEADER = ("email", "issue", "code", "date")


def record(path: Path, soft: Iterable[tuple[str, str, str]]) -> dict[str, int]:
    """Add (address, issue, code) rows not yet there; return {address: issues soft-bounced}."""
    seen: dict[str, set[str]] = {}
    if path.exists():
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            for row in csv.DictReader(f):
                email, issue = (row.get("email") or "").lower(), row.get("issue") or ""
                if email and issue:
                    seen.setdefault(email, set()).add(issue)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writerow(HEADER)
    fresh = 0
    for address, issue, code in soft:
        issues = seen.setdefault(address.lower(), set())
        if issue and issue not in issues:
            issues.add(issue)
            writer.writerow([address, issue, code, today()])
            fresh += 1
    if fresh:
        fsio.append(path, buf.getvalue().encode("utf-8"))
    return {email: len(issues) for email, issues in seen.items()}
