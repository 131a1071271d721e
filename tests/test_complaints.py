"""Complaint reports (ARF, RFC 5965): the reader who pressed "spam" is unsubscribed and
suppressed, found by VERP, by the returned Message-ID, by Original-Rcpt-To or by To."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import RunCli
from journalseed import list_status, mailed
from smtpserver import TestServer

SECRET = "a-long-random-secret-for-the-tests"
BOUNCE_DOMAIN = "bounces.coeursurparis.example"

ARF = """\
From: feedback@fbl.example.net
To: abuse@coeursurparis.example
Subject: Complaint about message
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARF
Content-Type: message/feedback-report

Feedback-Type: {kind}
User-Agent: SomeGenerator/1.0
Version: 1
{fields}
--ARF
Content-Type: message/rfc822

Return-Path: <{return_path}>
From: Coeur sur Paris <lettre@coeursurparis.example>
To: {to}
Subject: Novembre
Message-ID: {message_id}

Bonjour.

--ARF--
"""


def arf(kind: str = "abuse", fields: str = "", return_path: str = "lettre@coeursurparis.example",
        to: str = "redacted@example.net", message_id: str = "<x@elsewhere.example>") -> str:
    return ARF.format(kind=kind, fields=fields, return_path=return_path, to=to,
                      message_id=message_id)


def suppressed(root: Path) -> list[tuple[str, str, str]]:
    with open(root / "suppressions.csv", encoding="utf-8", newline="") as f:
        return [(r["email"], r["reason"], r["code"]) for r in csv.DictReader(f)]


def test_complaints_without_verp_by_rcpt_to_and_to(newsletter_root: Path, run_cli: RunCli) -> None:
    folder = newsletter_root / "in"
    folder.mkdir()
    (folder / "1-abuse.eml").write_text(
        arf(fields="Original-Rcpt-To: amelie.durand@example.fr\nOriginal-Rcpt-To: "
            "amelie.durand@example.fr\n")
    )
    (folder / "2-fraud.eml").write_text(arf("fraud", to="helene.moreau@example.fr"))
    (folder / "3-forged.eml").write_text(arf(to="francois.lefevre@example.com"))
    mailed(newsletter_root, ["amelie.durand@example.fr", "helene.moreau@example.fr"])
    result = run_cli("bounces", "in", cwd=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "1-abuse.eml: amelie.durand@example.fr complaint - (abuse, unsubscribed, suppressed)",
        "2-fraud.eml: helene.moreau@example.fr complaint - (fraud, unsubscribed, suppressed)",
        "3-forged.eml: francois.lefevre@example.com complaint - (abuse, not acted on: never "
        "mailed by this newsletter (not in the journal))",
        "3 message(s): 0 hard bounce(s), 2 complaint(s), 2 added to suppressions.csv; 1 "
        "other(s) not suppressed; 0 skipped",
    ]
    status = list_status(newsletter_root)
    assert status["amelie.durand@example.fr"] == "unsubscribed"
    assert status["helene.moreau@example.fr"] == "unsubscribed"
    assert status["francois.lefevre@example.com"] == "subscribed"
    assert suppressed(newsletter_root) == [
        ("amelie.durand@example.fr", "complaint", "abuse"),
        ("helene.moreau@example.fr", "complaint", "fraud"),
    ]
    # Logged with its time, as `serve` and `newsletter unsubscribe` log theirs: a send
    # already running skips them, and an older confirmation link never subscribes them again.
    from newsletter.send import changes

    log = changes.path_in(newsletter_root / "state")
    assert changes.unsubscribed_since(log, 0.0) == {
        "amelie.durand@example.fr", "helene.moreau@example.fr"
    }


def test_complaints_by_verp_and_by_message_id(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    env = smtp_server.env(NEWSLETTER_BOUNCE_DOMAIN=BOUNCE_DOMAIN, NEWSLETTER_SECRET_KEY=SECRET)
    assert run_cli("send", "2026-11", root=built, env=env).exit_code == 0
    by_rcpt = {r.rcpt[0]: r for r in smtp_server.received}
    folder = built / "in"
    folder.mkdir()
    verp = by_rcpt["amelie.durand@example.fr"].envelope_from
    (folder / "verp.eml").write_text(arf(return_path=verp))
    helene = by_rcpt["helene.moreau@example.fr"].message
    (folder / "mid.eml").write_text(arf(message_id=helene["Message-ID"]))
    result = run_cli("bounces", "in", cwd=built, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "mid.eml: helene.moreau@example.fr complaint - (abuse, unsubscribed, suppressed)",
        "verp.eml: amelie.durand@example.fr complaint - (abuse, unsubscribed, suppressed)",
    ]
    assert suppressed(built) == [
        ("helene.moreau@example.fr", "complaint", "abuse"),
        ("amelie.durand@example.fr", "complaint", "abuse"),
    ]
