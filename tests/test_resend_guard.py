"""A deleted state/ is not a silent full re-send (issue 13, defect 9).

The journal is the record of who was mailed. Without it, `send` looks at what else shows the
issue went out (the send marker in build/<id>/, the suppressions from that issue, the
archive's page) and refuses, naming them, unless --resend.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import RunCli, mailable
from smtpserver import TestServer

from newsletter.cli import ExitCode


@pytest.mark.smtp_faults(rcpt={"francois.lefevre@example.com": "550 5.1.1 No such user"})
def test_a_deleted_state_folder_refuses_to_send_again_unless_resend(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    first = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    # The one failure is a hard bounce, now suppressed: nothing left to do, exit 0 (issue 12).
    assert first.exit_code == ExitCode.OK, first.stderr
    n = len(smtp_server.received)
    assert n == len(mailable(built)) - 1
    shutil.rmtree(built / "state")
    refused = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert refused.exit_code == ExitCode.USER_ERROR, refused.stdout
    assert refused.stderr.startswith(
        "error: state/newsletter.db: issue 2026-11 was already sent but the send journal has no "
        "record of it: build/2026-11/sent.json (a send began on "
    )
    assert "suppressions.csv (1 address suppressed by issue 2026-11)" in refused.stderr
    assert "pass --resend to mail everyone again" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert len(smtp_server.received) == n
    # With --resend the list is mailed again (the suppressed address still is not).
    again = run_cli("send", "2026-11", "--resend", root=built, env=smtp_server.env())
    assert again.exit_code == 0, again.stdout + again.stderr
    assert len(smtp_server.received) == 2 * n


def test_the_marker_alone_refuses_and_a_first_send_is_not_refused(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    (built / "subscribers.csv").write_text("email\na@example.fr\n", encoding="utf-8")
    assert run_cli("send", "2026-11", root=built, env=smtp_server.env()).exit_code == 0
    assert (built / "build" / "2026-11" / "sent.json").is_file()
    # A resumed send (state/ intact) is never refused.
    assert run_cli("send", "2026-11", root=built, env=smtp_server.env()).exit_code == 0
    (built / "state" / "newsletter.db").unlink()
    # A rebuild replaces build/2026-11/ whole: the marker stays (it was lost with it).
    assert run_cli("build-issue", "2026-11", root=built).exit_code == 0
    refused = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert refused.exit_code == ExitCode.USER_ERROR
    assert "build/2026-11/sent.json" in refused.stderr
    assert len(smtp_server.received) == 1


def test_the_archive_page_is_evidence(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    page = built / "site" / "2026-11" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<!doctype html>", encoding="utf-8")
    refused = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert refused.exit_code == ExitCode.USER_ERROR
    assert "site/2026-11/ (the archive shows it)" in refused.stderr
    assert smtp_server.received == []


def test_archive_all_before_the_first_send_does_not_block_it_but_a_sent_page_does(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    """`archive --all` publishes issues never sent too: its page of 2026-11 made the first
    send refuse ("already sent … the archive shows it"), leading the user to --resend."""
    (built / "subscribers.csv").write_text("email\na@example.fr\n", encoding="utf-8")
    preview = run_cli("archive", "--all", root=built)
    assert preview.exit_code == 0, preview.stderr
    page = built / "site" / "2026-11" / "index.html"
    assert '<meta name="newsletter-status" content="not sent">' in page.read_text("utf-8")
    first = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert first.exit_code == 0, first.stdout + first.stderr
    assert run_cli("archive", root=built).exit_code == 0  # now sent: the page says so no more
    assert "newsletter-status" not in page.read_text("utf-8")
    (built / "state" / "newsletter.db").unlink()
    (built / "build" / "2026-11" / "sent.json").unlink()
    refused = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert refused.exit_code == ExitCode.USER_ERROR
    assert "site/2026-11/ (the archive shows it)" in refused.stderr
    assert len(smtp_server.received) == 1
