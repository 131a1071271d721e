"""`newsletter inbox` against a real IMAP server (Dovecot on 127.0.0.1), and on a Maildir."""

from __future__ import annotations

import csv
import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, RunCli
from imapserver import Dovecot
from journalseed import list_status, mailed_everyone_in

BOUNCES = FIXTURES / "bounces"


def request(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: lettre@coeursurparis.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(sender + subject))}@example.net>\r\n\r\nunsubscribe\r\n"
    ).encode()


BROKEN = b"From: MAILER-DAEMON@\r\nSubject: Undelivered Mail\r\n\r\n550 5.1.1 user unknown\r\n"
REPLY = b"From: Paul <paul@example.fr>\r\nSubject: Merci !\r\n\r\nBravo pour la lettre.\r\n"


def messages() -> list[bytes]:
    bounces = [p.read_bytes() for p in sorted(BOUNCES.glob("*.eml"))]
    return [
        *bounces,
        request("Amelie Durand <amelie.durand@example.fr>", "unsubscribe amelie.durand@example.fr"),
        request("helene.moreau@example.fr", "unsubscribe"),
        request("mallory@example.net", "unsubscribe francois.lefevre@example.com"),
        BROKEN,
        REPLY,
    ]


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    (tmp_path / "dovecot").mkdir()
    with Dovecot(tmp_path / "dovecot") as server:
        yield server


@pytest.fixture
def letter(newsletter_root: Path) -> Path:
    mailed_everyone_in(newsletter_root, BOUNCES, issue="2026-10")
    return newsletter_root


def suppressed(root: Path) -> list[str]:
    with open(root / "suppressions.csv", encoding="utf-8", newline="") as f:
        return [r["email"] for r in csv.DictReader(f)]


def test_inbox_over_imap_acts_once_and_moves_what_it_handled(
    letter: Path, dovecot: Dovecot, run_cli: RunCli
) -> None:
    dovecot.append(*messages())
    result = run_cli("inbox", root=letter, env=dovecot.env())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "#1: sophie.martin@example.com hard-bounce 550 5.1.10 (suppressed)" in lines
    assert "#5: amelie.durand@example.fr unsubscribe request (unsubscribed)" in lines
    assert "#6: helene.moreau@example.fr unsubscribe request (unsubscribed)" in lines
    assert (
        "#7: francois.lefevre@example.com unsubscribe request (not unsubscribed: not sent from "
        "francois.lefevre@example.com (sent by mallory@example.net))" in lines
    )
    assert "#8: left in place: no failed recipient found" in lines
    assert "#9: left in place: not a delivery status notification" in lines
    assert lines[-1] == (
        "9 message(s): 3 hard bounce(s), 0 complaint(s), 3 added to suppressions.csv; 2 "
        "unsubscribe request(s) applied; 7 moved to newsletter-done, 2 left in place"
    )
    assert sorted(suppressed(letter)) == [
        "jean.dupont@example.fr", "sophie.martin@example.com", "thomas.bernard@example.com"
    ]
    status = list_status(letter)
    assert status["amelie.durand@example.fr"] == "unsubscribed"
    assert status["helene.moreau@example.fr"] == "unsubscribed"
    assert status["francois.lefevre@example.com"] == "subscribed"
    from newsletter.send import changes  # logged: a running send skips them (see serve)

    assert {"amelie.durand@example.fr", "helene.moreau@example.fr"} <= (
        changes.unsubscribed_since(changes.path_in(letter / "state"), 0.0)
    )
    assert dovecot.subjects("INBOX") == ["Merci !", "Undelivered Mail"]
    assert len(dovecot.subjects("newsletter-done")) == 7

    again = run_cli("inbox", root=letter, env=dovecot.env())
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "2 message(s): 0 hard bounce(s), 0 complaint(s), 0 added to suppressions.csv; 0 "
        "unsubscribe request(s) applied; 0 moved to newsletter-done, 2 left in place"
    )
    assert len(suppressed(letter)) == 3


def test_a_wrong_password_is_one_line_without_the_password(
    letter: Path, dovecot: Dovecot, run_cli: RunCli
) -> None:
    env = dovecot.env() | {"NEWSLETTER_IMAP_PASSWORD": "not-the-password"}
    result = run_cli("inbox", root=letter, env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: 127.0.0.1:{dovecot.port}: IMAP: ")
    assert "not-the-password" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_inbox_on_a_maildir_with_a_token_request(letter: Path, run_cli: RunCli) -> None:
    from newsletter.send.subscribers import unsubscribe_token

    secret = "a-long-random-secret-for-the-tests"
    token = unsubscribe_token("noemie.garcon@example.com", secret)
    box = mailbox.Maildir(str(letter / "Maildir"), create=True)
    for raw in [*messages(), request("forwarded@example.net", f"unsubscribe {token}")]:
        box.add(raw)
    box.close()
    env = {"NEWSLETTER_SECRET_KEY": secret}
    result = run_cli("inbox", "Maildir", cwd=letter, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        "3 unsubscribe request(s) applied; 8 moved to newsletter-done, 2 left in place"
    )
    assert list_status(letter)["noemie.garcon@example.com"] == "unsubscribed"
    again = run_cli("inbox", "Maildir", cwd=letter, env=env)
    assert again.stdout.splitlines()[-1].endswith("0 moved to newsletter-done, 2 left in place")
    assert len(mailbox.Maildir(str(letter / "Maildir")).get_folder("newsletter-done")) == 8
