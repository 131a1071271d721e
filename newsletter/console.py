"""What the commands print: one small printer per result type. Only the CLI calls these.

Every line is flushed as it is written, so that a long send or preview shows its progress in a
pipe too, and a reader that went away (`| head`) is noticed at the line that follows.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.archive import ArchiveResult
    from newsletter.compose.build import BuildResult
    from newsletter.findings import Finding
    from newsletter.layout import Layout
    from newsletter.send.bounces import Bounce, BounceReport
    from newsletter.send.inbox import InboxReport
    from newsletter.send.report import SendReport


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def print_build(result: BuildResult, layout: Layout) -> None:
    issue = result.issue
    out(f"Built {layout.rel(result.out_dir)}/ — {issue.subject}")
    for n, article in enumerate(issue.articles, start=1):
        out(f"  {n}. {article.title} ({article.category}, {article.author.name})")
    if issue.drafts:
        out(f"  left out (draft: true): {', '.join(issue.drafts)}")
    if issue.as_sent:
        ignored = f"; {issue.source}'s `articles` list differs and is ignored" * issue.list_ignored
        out(f"  the articles it was sent with ({layout.rel(layout.journal_path)}){ignored}")
    sizes = result.sizes
    out(
        f"  email.html {sizes['email.html'] / 1024:.1f} KB · email.txt "
        f"{sizes['email.txt'] / 1024:.1f} KB · email.eml {sizes['email.eml'] / 1024:.1f} KB"
    )
    print_findings(result.findings)


def print_findings(findings: Sequence[Finding]) -> None:
    """The build's checks: a count, then one line per finding (only problems are listed)."""
    from newsletter.findings import tally

    if not findings:
        out("  checks: all passed")
        return
    n = tally(findings)
    counts = [f"{n['error']} error(s)"] if n["error"] else []
    if len(findings) > n["error"]:
        counts.append(f"{len(findings) - n['error']} warning(s)")
    out(f"  checks: {', '.join(counts)}")
    for f in findings:
        out(f"  {f.severity} [{f.code}] {f.where}: {f.message}")


def print_checks(checks: Sequence[Finding]) -> None:
    """Doctor's checks: one line each, the passed ones included, then the count."""
    from newsletter.findings import tally

    for c in checks:
        out(f"{c.severity:<7} {c.code}: {c.message}")
    n = tally(checks)
    out(f"{n['ok']} ok, {n['warning']} warning(s), {n['error']} error(s)")


def print_archive(result: ArchiveResult, layout: Layout) -> None:
    out(f"Archive {layout.rel(result.site_dir)}/ — {len(result.issues)} issue(s)")
    for issue in result.issues:
        sent = f"sent {_date(issue.sent_at)}" if issue.sent_at is not None else "not sent"
        out(f"  {issue.id}  {issue.date.isoformat()}  {issue.subject}  [{sent}]")
    report = result.report
    removed = f", {len(report.removed)} removed" if report.removed else ""
    out(f"  {len(report.written)} written, {len(report.unchanged)} unchanged{removed}")


def _date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).date().isoformat()


def print_report(report: SendReport) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in report.counts.items() if n)
    out(f"{report.issue_id}: {report.total} recipient(s) — {counts}")
    if report.problems:
        out("  by code:   " + _tally(report.by_code))
        out("  by domain: " + _tally(report.by_domain))
    if report.by_relay:  # sent, by the relay that took them (issue 14)
        out("  sent by relay: " + _tally(report.by_relay))
    for row in report.problems:
        out(f"  {row.status:<8} {row.email}  {row.reply or '(no reply)'}")


def _tally(ranked: list[tuple[str, int]]) -> str:
    return ", ".join(f"{key} ×{n}" for key, n in ranked)


def print_bounces(report: BounceReport, *, summary: bool = True) -> None:
    for b in report.bounces:
        if b.skipped:
            out(f"{b.source}: skipped: {b.note}")
        elif b.complaint:
            out(f"{b.source}: {b.address or '-'} complaint - ({_complaint_state(b)})")
        else:
            out(f"{b.source}: {b.address} {b.verdict or 'unknown'} {b.code} ({_state(b)})")
    if not summary:
        return
    complaints = f"{len(report.complaints)} complaint(s), " if report.complaints else ""
    out(
        f"{report.messages} message(s): {len(report.hard)} hard bounce(s), {complaints}"
        f"{report.added} added to {report.suppression_file}; {len(report.others)} other(s) "
        f"not suppressed; {len(report.skipped)} skipped"
    )


def _state(b: Bounce) -> str:
    if b.note:
        return f"not suppressed: {b.note}"
    if b.hard:
        return "suppressed" if b.added else "already suppressed"
    if b.soft_issues:
        done = "suppressed" if b.added else "already suppressed"
        return f"{done}: soft bounces in {b.soft_issues} issues"
    return "not suppressed"


def _complaint_state(b: Bounce) -> str:
    if b.note:
        return f"{b.complaint}, not acted on: {b.note}"
    done = "unsubscribed, " if b.unsubscribed else ""
    return f"{b.complaint}, {done}{'suppressed' if b.added else 'already suppressed'}"


def print_inbox(report: InboxReport) -> None:
    print_bounces(report.bounces, summary=False)
    for r in report.requests:
        state = "unsubscribed" if r.done else f"not unsubscribed: {r.note}"
        out(f"{r.source}: {r.address or '-'} unsubscribe request ({state})")
    for source, why in report.left:
        out(f"{source}: left in place: {why}")
    b = report.bounces
    done = sum(r.done for r in report.requests)
    out(
        f"{b.messages} message(s): {len(b.hard)} hard bounce(s), {len(b.complaints)} "
        f"complaint(s), {b.added} added to {b.suppression_file}; {done} unsubscribe "
        f"request(s) applied; {report.moved} moved to {report.done_folder}, "
        f"{len(report.left)} left in place"
    )
