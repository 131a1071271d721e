"""Replies classified by their enhanced status code: suppress, retry, slow down or stop."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import RunCli, mailable
from smtpserver import TestServer

from newsletter.cli import ExitCode
from newsletter.send.classify import Verdict, classify


def send(run_cli: RunCli, root: Path, server: TestServer, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return run_cli("send", "2026-11", *args, root=root, env=server.env(**env))


@pytest.mark.parametrize(
    ("code", "text", "verdict"),
    [
        (250, "2.0.0 Ok: queued", Verdict.SENT),
        (550, "5.1.1 <x@example.fr>: Recipient address rejected", Verdict.HARD_BOUNCE),
        (550, "5.2.1 Mailbox disabled", Verdict.HARD_BOUNCE),
        (552, "5.2.2 Mailbox full", Verdict.FAILED),
        (550, "5.7.1 Message rejected due to DMARC policy", Verdict.SENDER_PROBLEM),
        (452, "4.2.2 Mailbox full, try later", Verdict.DEFERRED),
        (421, "4.7.0 Try again later, closing connection", Verdict.THROTTLED),
        (454, "4.7.0 Throttling failure: Maximum sending rate exceeded", Verdict.THROTTLED),
        (451, "4.7.1 Greylisted, please retry", Verdict.THROTTLED),
        (451, "4.3.0 Local error in processing", Verdict.DEFERRED),
        (550, "Requested action not taken: mailbox unavailable", Verdict.HARD_BOUNCE),
        (554, "Transaction failed", Verdict.FAILED),
        (None, "connection lost", Verdict.DEFERRED),
    ],
)
def test_classify(code: int | None, text: str, verdict: Verdict) -> None:
    assert classify(code, text) is verdict


@pytest.mark.smtp_faults(rcpt={"francois.lefevre@example.com": "550 5.1.1 No such user here"})
def test_a_hard_bounce_is_suppressed_and_skipped_by_the_next_send(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, built, smtp_server)
    assert result.exit_code == ExitCode.OK, result.stdout  # the only failure is now suppressed
    assert "1 hard bounce(s) added to the suppression file" in result.stdout
    with open(built / "suppressions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["email"], r["reason"], r["code"], r["issue"]) for r in rows] == [
        ("francois.lefevre@example.com", "hard-bounce", "5.1.1", "2026-11")  # enhanced code
    ]
    # The next issue skips the suppressed address without asking the relay.
    (built / "issues" / "2026-11.toml").rename(built / "issues" / "2026-11b.toml")
    assert run_cli("build-issue", "2026-11b", root=built).exit_code == 0
    before = len(smtp_server.received)
    nxt = run_cli("send", "2026-11b", root=built, env=smtp_server.env())
    assert nxt.exit_code == 0, nxt.stdout
    got = sorted(r for rec in smtp_server.received[before:] for r in rec.rcpt)
    assert got == [a for a in mailable(built) if a != "francois.lefevre@example.com"]
    assert "1 suppressed address(es) skipped" in nxt.stdout


@pytest.mark.smtp_faults(
    rcpt_first={"helene.moreau@example.fr": ["452 4.2.2 Mailbox full, try later"] * 2}
)
def test_a_452_is_retried_and_delivered(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, built, smtp_server)
    assert result.exit_code == 0, result.stdout
    assert smtp_server.recipients() == mailable(built)
    assert not (built / "suppressions.csv").exists()


def test_a_sender_problem_stops_the_run_suppresses_nobody_and_resumes_later(
    built: Path, run_cli: RunCli
) -> None:
    from smtpserver import Faults

    faults = Faults(refuse_all="550 5.7.1 Sender not authorised (SPF fail)")
    server = TestServer(faults)
    server.start()
    try:
        stopped = send(run_cli, built, server, NEWSLETTER_SMTP_CONCURRENCY="1")
        assert stopped.exit_code == ExitCode.USER_ERROR
        assert stopped.stderr.startswith(
            "error: the send stopped: the relay refused the sender: 550 5.7.1 Sender not "
            "authorised (SPF fail) — a sender problem"
        )
        assert "nobody was suppressed" in stopped.stderr
        assert server.received == []
        assert not (built / "suppressions.csv").exists()
        faults.refuse_all = ""  # the sender fixed SPF
        resumed = send(run_cli, built, server)
        assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
        assert server.recipients() == mailable(built)
    finally:
        server.stop()


@pytest.mark.smtp_faults(every_nth=3)
def test_throttling_every_third_message_lowers_the_rate_and_everything_gets_through(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    rows = "".join(f"lecteur{i:02d}@example.fr,Lecteur {i}\n" for i in range(24))
    (built / "subscribers.csv").write_text("email,name\n" + rows, encoding="utf-8")
    result = send(
        run_cli,
        built,
        smtp_server,
        NEWSLETTER_RATE_PER_SECOND="40",
        NEWSLETTER_SMTP_CONCURRENCY="2",
        NEWSLETTER_RETRY_DELAY="0.05",
        NEWSLETTER_MAX_ATTEMPTS="10",
    )
    assert result.exit_code == 0, result.stdout
    assert smtp_server.recipients() == sorted(f"lecteur{i:02d}@example.fr" for i in range(24))
    line = next(x for x in result.stdout.splitlines() if "the relay throttled" in x)
    settled = float(line.split("settled at ")[1].split("/s")[0])
    lowest = float(line.split("lowest ")[1].split("/s")[0])
    # Where it settled depends on the last second: quiet, it is back at the ceiling already.
    assert lowest < 40 and settled <= 40
    # The server saw the slowdown: the last third arrived slower than the ceiling allows.
    times = sorted(r.at for r in smtp_server.received)
    assert (times[-1] - times[0]) > len(times) / 40


def test_report_groups_failures_by_code_and_domain(built: Path, run_cli: RunCli) -> None:
    from smtpserver import Faults

    server = TestServer(
        Faults(
            rcpt={
                "francois.lefevre@example.com": "550 5.1.1 No such user",
                "helene.moreau@example.fr": "550 5.1.1 No such user",
                "contact@example.com": "552 5.2.2 Mailbox full",
            }
        )
    )
    server.start()
    try:
        send(run_cli, built, server)
    finally:
        server.stop()
    report = run_cli("report", "2026-11", root=built).stdout
    assert "by code:   550 5.1.1 ×2, 552 5.2.2 ×1" in report
    assert "by domain: example.com ×2, example.fr ×1" in report
