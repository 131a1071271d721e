"""Which issue a bounce is recorded against, with real sends and real bounces.

A reader got issues 2026-11-2 and 2026-11-11; issue 2026-11-5 was never delivered to anyone
(the relay was down: every row `deferred`), and its failed attempt is the latest journal row.
A bounce that does not carry the returned message (flufl.bounce's postfix_01, an mbox of one
message: "Message removed") is about the issue last *sent* to its address, by send time:
2026-11-11, not 2026-11-5 (the highest id as a string, and never delivered) nor 2026-11-2.
"""

from __future__ import annotations

import csv
import mailbox
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, RunCli
from smtpserver import TestServer, free_port

CORPUS = FIXTURES / "flufl_bounce" / "data"
READER = "xxxxx@local.ie"  # the address postfix_01 says does not exist (550 5.1.1)
ISSUES = ("2026-11-2", "2026-11-11", "2026-11-5")  # in the order they were sent


def suppressions(root: Path) -> list[tuple[str, str, str, str]]:
    with open(root / "suppressions.csv", encoding="utf-8", newline="") as f:
        return [(r["email"], r["reason"], r["code"], r["issue"]) for r in csv.DictReader(f)]


@pytest.fixture
def mailed(newsletter_root: Path, run_cli: RunCli, smtp_server: TestServer) -> Path:
    """2026-11-2 and 2026-11-11 sent to the reader, then 2026-11-5 with the relay down."""
    root = newsletter_root
    (root / "subscribers.csv").write_text(
        f"email,name\n{READER},Reader\namelie.durand@example.fr,Amélie\n", encoding="utf-8"
    )
    for issue in ISSUES:
        shutil.copy(root / "issues" / "2026-11.toml", root / "issues" / f"{issue}.toml")
        assert run_cli("build-issue", issue, root=root).exit_code == 0
    for issue in ISSUES[:2]:
        result = run_cli("send", issue, root=root, env=smtp_server.env())
        assert result.exit_code == 0, result.stdout + result.stderr
    down = smtp_server.env(NEWSLETTER_SMTP_PORT=str(free_port()), NEWSLETTER_MAX_ATTEMPTS="1")
    result = run_cli("send", ISSUES[2], root=root, env=down)
    assert result.exit_code != 0
    assert "0 sent, 0 failed, 2 deferred" in result.stdout
    return root


def test_a_bounce_without_the_message_is_about_the_last_issue_sent_to_it(
    mailed: Path, run_cli: RunCli
) -> None:
    shutil.copy(CORPUS / "postfix_01.txt", mailed / "b1.eml")
    result = run_cli("bounces", str(mailed / "b1.eml"), root=mailed)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"b1.eml#1: {READER} hard-bounce 550 5.1.1 (suppressed)"
    )
    assert suppressions(mailed) == [(READER, "bounce", "5.1.1", "2026-11-11")]


def test_the_inbox_finds_the_same_issue(mailed: Path, run_cli: RunCli) -> None:
    box = mailbox.Maildir(str(mailed / "Maildir"), create=True)
    box.add((CORPUS / "postfix_01.txt").read_bytes())
    box.close()
    result = run_cli("inbox", str(mailed / "Maildir"), root=mailed)
    assert result.exit_code == 0, result.stderr
    assert suppressions(mailed) == [(READER, "bounce", "5.1.1", "2026-11-11")]


def test_a_bounce_returning_the_message_names_its_issue(
    mailed: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    """The returned message's headers say 2026-11-2 (its Message-ID): that issue, although
    2026-11-11 was sent to the reader after it."""
    (first,) = [
        r for r in smtp_server.received if r.rcpt == [READER] and b"2026-11-2." in r.raw
    ]
    headers = first.raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    raw = (CORPUS / "postfix_01.txt").read_bytes()
    (mailed / "b1.eml").write_bytes(raw.replace(b"Message removed\n", headers + b"\n"))
    result = run_cli("bounces", str(mailed / "b1.eml"), root=mailed)
    assert result.exit_code == 0, result.stderr
    assert suppressions(mailed) == [(READER, "bounce", "5.1.1", "2026-11-2")]
