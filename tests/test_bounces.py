"""`newsletter bounces`: notifications as real relays send them -> hard bounces suppressed."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, RunCli
from journalseed import mailed_everyone_in
from smtpserver import TestServer

from newsletter.cli import ExitCode
from newsletter.send.bounces import Context, parse, read_messages
from newsletter.send.classify import Verdict

BOUNCES = FIXTURES / "bounces"
SECRET = "a-long-random-secret-for-the-tests"
BOUNCE_DOMAIN = "bounces.coeursurparis.example"


def rows(root: Path) -> list[tuple[str, ...]]:
    with open(root / "suppressions.csv", encoding="utf-8", newline="") as f:
        return [
            (r["email"], r["reason"], r["code"], r["issue"], r["date"]) for r in csv.DictReader(f)
        ]


@pytest.fixture
def letter(newsletter_root: Path) -> Path:
    """The sample folder with the notifications copied in (the tests run in it)."""
    shutil.copytree(BOUNCES, newsletter_root / "bounces")
    # an earlier issue went to them: the bounces are about addresses this newsletter mailed
    mailed_everyone_in(newsletter_root, newsletter_root / "bounces", issue="2026-10")
    return newsletter_root


def test_a_folder_of_eml_files(letter: Path, run_cli: RunCli) -> None:
    result = run_cli("bounces", "bounces", cwd=letter)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "exchange-recipient-not-found.eml: sophie.martin@example.com hard-bounce 550 5.1.10 "
        "(suppressed)",
        "gmail-no-such-user.eml: thomas.bernard@example.com hard-bounce 550 5.1.1 (suppressed)",
        "postfix-mailbox-full.eml: claire.petit@example.fr deferred 452 4.2.2 (not suppressed)",
        "postfix-user-unknown.eml: jean.dupont@example.fr hard-bounce 550 5.1.1 (suppressed)",
        "4 message(s): 3 hard bounce(s), 3 added to suppressions.csv; 1 other(s) not "
        "suppressed; 0 skipped",
    ]
    today = dt.date.today().isoformat()
    assert rows(letter) == [
        ("sophie.martin@example.com", "bounce", "5.1.10", "2026-11", today),
        ("thomas.bernard@example.com", "bounce", "5.1.1", "2026-11", today),
        ("jean.dupont@example.fr", "bounce", "5.1.1", "2026-11", today),
    ]
    again = run_cli("bounces", "bounces", cwd=letter)
    assert again.exit_code == 0
    assert "jean.dupont@example.fr hard-bounce 550 5.1.1 (already suppressed)" in again.stdout
    assert again.stdout.splitlines()[-1].startswith("4 message(s): 3 hard bounce(s), 0 added")
    assert len(rows(letter)) == 3


def test_an_mbox_with_a_delay_warning_an_auto_reply_and_plain_text(
    letter: Path, run_cli: RunCli
) -> None:
    result = run_cli("bounces", "bounces/december.mbox", cwd=letter)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "december.mbox#1: luc.moreau@example.fr hard-bounce 550 5.1.1 (suppressed)",
        "december.mbox#2: nadia.haddad@example.com deferred 4.4.1 (not suppressed)",
        "december.mbox#3: skipped: not a delivery status notification",
        "december.mbox#4: marc.lambert@example.fr hard-bounce 550 5.1.10 (suppressed)",
        "4 message(s): 2 hard bounce(s), 2 added to suppressions.csv; 1 other(s) not "
        "suppressed; 1 skipped",
    ]
    assert [r[:4] for r in rows(letter)] == [
        ("luc.moreau@example.fr", "bounce", "5.1.1", "2026-11"),
        ("marc.lambert@example.fr", "bounce", "5.1.10", "2026-11"),
    ]


def test_a_suppressed_address_is_not_mailed_by_the_next_send(
    letter: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    with open(letter / "subscribers.csv", "a", encoding="utf-8") as f:
        f.write("jean.dupont@example.fr,Jean Dupont,subscribed,Nantes\n")
    assert run_cli("bounces", "bounces", cwd=letter).exit_code == 0
    assert run_cli("build-issue", "2026-11", root=letter).exit_code == 0
    # Bounces from 2026-11 but no journal: `send` would refuse a re-send without --resend.
    result = run_cli("send", "2026-11", "--resend", root=letter, env=smtp_server.env())
    assert result.exit_code == 0, result.stdout
    assert "jean.dupont@example.fr" not in smtp_server.recipients()
    assert "1 suppressed address(es) skipped" in result.stdout


def test_an_unreadable_file_is_one_error_line(letter: Path, run_cli: RunCli) -> None:
    result = run_cli("bounces", "bounces/absent.mbox", cwd=letter)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stdout == ""
    assert result.stderr == (
        "error: bounces/absent.mbox: cannot read: No such file or directory "
        "(give an mbox file, a folder of .eml files, or one .eml file)\n"
    )
    assert not (letter / "suppressions.csv").exists()


# -- VERP: the return path names the recipient -------------------------------------------------

DSN = """\
Return-Path: <>
Delivered-To: {verp}
X-Original-To: {verp}
From: MAILER-DAEMON@mail.coeursurparis.example (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Type: text/plain

<{final}>: host mx.example.net[192.0.2.9] said: 550 5.1.1 User unknown

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.coeursurparis.example

Final-Recipient: rfc822; {final}
Original-Recipient: rfc822; {final}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{final}>: Recipient address rejected: User unknown

--B0UND--
"""


def test_a_forwarded_address_bounces_and_verp_names_the_subscriber(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    env = smtp_server.env(NEWSLETTER_BOUNCE_DOMAIN=BOUNCE_DOMAIN, NEWSLETTER_SECRET_KEY=SECRET)
    assert run_cli("send", "2026-11", root=built, env=env).exit_code == 0
    by_rcpt = {r.rcpt[0]: r.envelope_from for r in smtp_server.received}
    verp = by_rcpt["amelie.durand@example.fr"]
    folder = built / "in"
    folder.mkdir()
    # Amélie forwards to another mailbox, which no longer exists: Final-Recipient names it.
    (folder / "forwarded.eml").write_text(DSN.format(verp=verp, final="amelie.d@example.net"))
    forged = verp[: len("bounce+")] + "0" * 20 + verp[verp.index("@") :]
    (folder / "forged.eml").write_text(DSN.format(verp=forged, final="contact@example.com"))
    result = run_cli("bounces", "in", cwd=built, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"forged.eml: contact@example.com hard-bounce 550 5.1.1 (not suppressed: unknown VERP "
        f"token in {forged})",
        "forwarded.eml: amelie.durand@example.fr hard-bounce 550 5.1.1 (suppressed)",
        "2 message(s): 1 hard bounce(s), 1 added to suppressions.csv; 1 other(s) not "
        "suppressed; 0 skipped",
    ]
    assert [r[:4] for r in rows(built)] == [
        ("amelie.durand@example.fr", "bounce", "5.1.1", "2026-11")
    ]


# -- the parser on its own ---------------------------------------------------------------------


def _context() -> Context:
    return Context(own_domains={"coeursurparis.example"}, sender_domain="coeursurparis.example")


def test_the_gmail_multiline_diagnostic_is_read_whole() -> None:
    ((source, raw),) = read_messages(BOUNCES / "gmail-no-such-user.eml", shown="x")
    (b,) = parse(raw, source=source, context=_context())
    assert (b.address, b.verdict, b.smtp_code, b.status, b.issue) == (
        "thomas.bernard@example.com",
        Verdict.HARD_BOUNCE,
        550,
        "5.1.1",
        "2026-11",
    )
    assert b.diagnostic.startswith(
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces."
    )
    assert "550-" not in b.diagnostic


def test_a_notification_without_any_code_is_reported_not_suppressed() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.fr\r\nSubject: Mail delivery failed\r\n"
        b"To: lettre@coeursurparis.example\r\n\r\n"
        b"Your message to paul@example.fr could not be delivered.\r\n"
    )
    (b,) = parse(raw, source="x.eml", context=_context())
    assert (b.address, b.verdict, b.code, b.hard) == ("paul@example.fr", None, "-", False)
