"""A refusal of the sender (issue 13, defect 1) stops the run and suppresses nobody.

The relay refuses at MAIL FROM (`553 5.1.7`), or at each RCPT with a sender text
(`550 5.1.8 <addr>: Sender address rejected: Domain not found`, Postfix's
reject_unknown_sender_domain): the recipients are not at fault.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli, mailable
from hypothesis import given, settings
from hypothesis import strategies as st
from smtpserver import Faults, TestServer

from newsletter.cli import ExitCode
from newsletter.send.classify import Verdict, classify
from newsletter.send.engine import Policy, decide
from newsletter.send.transport import Outcome, outcome_for

POLICY = Policy(max_attempts=3, retry_delay=1.0, max_consecutive_failures=10)


def _send_against(built: Path, run_cli: RunCli, faults: Faults):  # type: ignore[no-untyped-def]
    server = TestServer(faults)
    server.start()
    try:
        stopped = run_cli(
            "send", "2026-11", root=built, env=server.env(NEWSLETTER_SMTP_CONCURRENCY="2")
        )
        return stopped, server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "faults",
    [
        Faults(refuse_all="550 5.1.8 <lettre@coeursurparis.example>: Sender address rejected: "
               "Domain not found"),
        Faults(mail_from="553 5.1.7 <lettre@coeursurparis.example>: Sender address rejected: "
               "not owned by user"),
        Faults(refuse_all="550 Sender address rejected: Domain not found"),
        Faults(mail_from="550 Requested action not taken: mailbox unavailable"),
    ],
    ids=["rcpt-5.1.8", "mail-5.1.7", "rcpt-no-enhanced-code", "mail-any-550"],
)
def test_a_refused_sender_stops_the_run_and_suppresses_nobody(
    built: Path, run_cli: RunCli, faults: Faults
) -> None:
    stopped, server = _send_against(built, run_cli, faults)
    assert stopped.exit_code == ExitCode.USER_ERROR, stopped.stdout + stopped.stderr
    assert stopped.stderr.startswith("error: the send stopped: the relay refused the sender: ")
    assert "nobody was suppressed" in stopped.stderr
    assert "hard bounce" not in stopped.stdout
    assert server.received == []
    assert not (built / "suppressions.csv").exists()
    # Fixed: the next run mails everyone.
    resumed, server = _send_against(built, run_cli, Faults())
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert server.recipients() == mailable(built)


def test_the_refused_command_reaches_the_outcome() -> None:
    assert outcome_for(553, "5.1.7 bad sender", command="MAIL").command == "MAIL"
    assert outcome_for(550, "5.1.1 no such user", command="RCPT").command == "RCPT"


@pytest.mark.parametrize(
    ("code", "text", "command", "verdict"),
    [
        (550, "5.1.1 <a@b.fr>: Recipient address rejected: User unknown", "RCPT",
         Verdict.HARD_BOUNCE),
        (550, "5.1.8 <a@b.fr>: Sender address rejected: Domain not found", "RCPT",
         Verdict.SENDER_PROBLEM),
        (553, "5.1.7 <a@b.fr>: Sender address rejected", "MAIL", Verdict.SENDER_PROBLEM),
        (550, "5.1.1 mailbox unavailable", "MAIL", Verdict.SENDER_PROBLEM),
        (550, "Sender address rejected: Domain not found", "RCPT", Verdict.SENDER_PROBLEM),
        (450, "4.1.8 Sender address rejected: Domain not found", "RCPT", Verdict.DEFERRED),
        (451, "4.3.0 try later", "MAIL", Verdict.DEFERRED),
    ],
)
def test_the_verdict_knows_sender_codes_and_commands(
    code: int, text: str, command: str, verdict: Verdict
) -> None:
    assert classify(code, text, command=command) is verdict


SENDER_TEXTS = st.sampled_from(
    ["Sender address rejected", "sender domain unknown", "5.1.7", "5.1.8", "4.1.8", "5.7.1", ""]
)


@settings(max_examples=300, deadline=None)
@given(
    code=st.integers(min_value=100, max_value=599),
    enhanced=st.tuples(st.sampled_from("245"), st.integers(0, 9), st.integers(0, 20)),
    with_enhanced=st.booleans(),
    sender_text=SENDER_TEXTS,
    noise=st.text(max_size=80),
    command=st.sampled_from(["MAIL", "RCPT"]),
)
def test_no_reply_suppresses_a_reader_for_a_sender_problem(
    code: int,
    enhanced: tuple[str, int, int],
    with_enhanced: bool,
    sender_text: str,
    noise: str,
    command: str,
) -> None:
    """At MAIL nothing is the reader's fault; at RCPT a sender text or code never suppresses."""
    prefix = ".".join(map(str, enhanced)) + " " if with_enhanced else ""
    text = f"{prefix}{noise} {sender_text}"
    outcome = outcome_for(code, text, command=command)
    verdict = classify(outcome.code, outcome.detail, command=outcome.command)
    decision = decide(outcome, verdict, 1, POLICY)
    about_sender = command == "MAIL" or "sender" in text.lower() or any(
        c in prefix for c in ("5.1.7", "5.1.8", "4.1.7", "4.1.8")
    )
    if about_sender:
        assert not decision.suppress, (code, text, command, verdict)
    if command == "MAIL" and 500 <= code < 600:
        assert decision.sender_problem and decision.stop


def test_decide_never_suppresses_at_mail_from_whatever_the_verdict() -> None:
    outcome = Outcome("failed", 550, "5.1.1 no such user", command="MAIL")  # type: ignore[arg-type]
    assert not decide(outcome, Verdict.HARD_BOUNCE, 1, POLICY).suppress
