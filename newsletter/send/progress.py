"""What `send` shows while it runs and when it ends (a bar on a terminal, lines otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from newsletter.errors import ExitCode
from newsletter.send.journal import Status

if TYPE_CHECKING:
    from newsletter.send.delivery import DeliveryReport
    from newsletter.send.options import SendResult


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class SendProgress:
    def __init__(self, issue_id: str, *, interactive: bool) -> None:
        self.issue_id = issue_id
        self.interactive = interactive
        self.interrupted = False
        self.total = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def start(self, result: SendResult) -> None:
        if result.resent_in_flight:
            _out(
                f"{len(result.resent_in_flight)} message(s) were in flight when the last send "
                "stopped; they are sent again (those readers may get two copies): "
                + ", ".join(result.resent_in_flight[:10])
                + (" …" if len(result.resent_in_flight) > 10 else "")
            )
        self.total = result.mailable
        self._last_line = time.monotonic()  # the first line after 2 s: a short send has none
        if self.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(f"sending {self.issue_id}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.0f}/s"),
                TimeRemainingColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task("send", total=self.total or None, rate=0.0)

    def update(self, report: DeliveryReport) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=report.done, rate=report.rate)
            return
        now = time.monotonic()
        if now - self._last_line >= 2.0:
            self._last_line = now
            _out(
                f"  {report.done} done ({report.sent} sent, {report.failed} failed), "
                f"{report.rate:.0f}/s"
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def summary(self, result: SendResult) -> int:
        """Print the summary; return the exit code."""
        r = result.report
        if result.test_to:
            ok = r.sent == 1
            why = r.failures[0][1].reply if r.failures else "?"
            through = "".join(f" (through relay {name})" for name in r.by_relay)
            status = "sent" + through if ok else "not sent: " + why
            _out(f"Test message to {result.test_to}: {status}")
            return ExitCode.OK if ok else ExitCode.SOME_RECIPIENTS_FAILED
        if result.mailable == 0:  # not "all 0 recipient(s) already have an outcome"
            head = f"Dry run of {self.issue_id}: nothing" if result.dry_run else "Nothing"
            _out(
                f"{head} to send: {result.list_file or 'the list'} has no reader to mail "
                "(a row needs a valid address and the status subscribed)"
            )
            self._list_counts(result)
            return ExitCode.OK
        if result.dry_run:
            size = result.totals.get("bytes", 0)
            done = (f", {result.already_done} already have an outcome"
                    if result.already_done else "")
            _out(
                f"Dry run of {self.issue_id}: {r.sent} message(s) would be sent "
                f"({size / max(r.sent, 1) / 1024:.1f} KB each){done}, built in "
                f"{r.duration:.1f} s; nothing was sent"
            )
            self._list_counts(result)
            return ExitCode.OK
        if r.done == 0 and not r.stopped and not self.interrupted:
            t = result.totals
            _out(
                f"Nothing to send: all {result.mailable} recipient(s) of {self.issue_id} "
                f"already have an outcome ({t.get(Status.SENT, 0)} sent, "
                f"{t.get(Status.FAILED, 0)} failed). See `newsletter report {self.issue_id}`."
            )
            return (
                ExitCode.OK
                if result.other_failures == 0 and result.remaining == 0
                else ExitCode.SOME_RECIPIENTS_FAILED
            )
        self._print_send(result)
        return self._exit_code(result)

    def _print_send(self, result: SendResult) -> None:
        """What a real send did: counts, throttling, suppressions, the first failures."""
        r = result.report
        _out(
            f"Sent {self.issue_id}: {r.sent} sent, {r.failed} failed, {r.deferred} deferred, "
            f"{result.already_done} skipped (already done), in {r.duration:.1f} s "
            f"({r.sent / r.duration if r.duration else 0:.0f} sent/s)"
        )
        self._list_counts(result)
        _print_relays(r)
        if r.limiter is not None and r.limiter.throttles:
            # rate 0: back to unlimited, the relay stopped refusing
            settled = f"{r.limiter.rate:.1f}/s" if r.limiter.rate else "no limit"
            _out(
                f"  the relay throttled {r.limiter.throttles} time(s); the rate settled at "
                f"{settled} (lowest {r.limiter.lowest:.1f}/s)"
            )
        if r.suppressed:
            _out(f"  {r.suppressed} hard bounce(s) added to the suppression file")
        for email, outcome in r.failures[:20]:
            _out(f"  {outcome.status}: {email}: {outcome.reply}")
        if len(r.failures) > 20:
            _out(f"  … {len(r.failures) - 20} more: `newsletter report {self.issue_id}`")

    def _exit_code(self, result: SendResult) -> int:
        """Why a real send stopped, on stderr, and the exit code that says it."""
        r = result.report
        if r.sender_problem:
            sys.stderr.write(
                f"error: the send stopped: {r.stopped} — a sender problem (authentication, "
                "SPF/DKIM/DMARC or the relay's policy), not the recipients'; nobody was "
                f"suppressed (fix it, then run `newsletter send {self.issue_id}` to resume)\n"
            )
            return ExitCode.USER_ERROR
        if r.stopped:
            sys.stderr.write(
                f"error: the send stopped: {r.stopped} (`newsletter doctor` checks the "
                + ("relays and their" if r.by_relay or r.relay_outages else "relay and its")
                + f" settings; then run `newsletter send {self.issue_id}` to resume)\n"
            )
            return ExitCode.USER_ERROR
        if self.interrupted:
            _out(
                f"Interrupted: {result.remaining} recipient(s) left. Resume with "
                f"`newsletter send {self.issue_id}`."
            )
            return ExitCode.INTERRUPTED
        # 0 when the only failures are hard bounces, now suppressed (issue 12)
        if result.other_failures or r.deferred or result.remaining:
            if r.deferred:
                _out(f"Deferred recipients are retried by `newsletter send {self.issue_id}`.")
            return ExitCode.SOME_RECIPIENTS_FAILED
        return ExitCode.OK

    def _list_counts(self, result: SendResult) -> None:
        extras = [
            (result.not_subscribed, "not subscribed"),
            (result.duplicates, "duplicate(s) mailed once"),
            (result.skipped_invalid, "invalid row(s) skipped"),
            (result.suppressed, "suppressed address(es) skipped"),
        ]
        shown = [f"{n} {label}" for n, label in extras if n]
        if shown:
            _out("  " + ", ".join(shown))


def _print_relays(r: DeliveryReport) -> None:
    """Several relays (issue 14): who took how many, who was taken out; then the messages
    that may arrive twice (with one relay too)."""
    if len(r.by_relay) > 1 or r.relay_outages:
        ranked = sorted(r.by_relay.items(), key=lambda kv: (-kv[1], kv[0]))
        _out("  sent by relay: " + ", ".join(f"{name} {n}" for name, n in ranked))
    for name, why in r.relay_outages:
        _out(f"  relay {name} was taken out: {why}")
    unanswered = list(dict.fromkeys(r.unanswered))  # once each, even if it happened twice
    if unanswered:
        shown = ", ".join(unanswered[:20]) + (" …" if len(unanswered) > 20 else "")
        _out(
            f"  {len(unanswered)} message(s) lost their connection after being written, before "
            f"the relay answered, and are sent again (a copy may arrive twice): {shown}"
        )
