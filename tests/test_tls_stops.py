"""A relay that cannot give the TLS asked for stops the send at once, leaves no message
marked in flight, and the next run warns of no duplicates (issue 13, defect 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli, mailable
from smtpserver import TestServer

from newsletter.layout import Layout
from newsletter.send.journal import Journal, Status


def rows_by_status(root: Path) -> dict[str, int]:
    journal = Journal.open(Layout.at(root), "2026-11")
    try:
        return {k: v for k, v in journal.counts().items() if v}
    finally:
        journal.close()


def send(run_cli: RunCli, root: Path, server: TestServer, tls: str):  # type: ignore[no-untyped-def]
    env = server.env(NEWSLETTER_SMTP_TLS=tls, NEWSLETTER_SMTP_CONCURRENCY="2",
                     NEWSLETTER_MAX_ATTEMPTS="3")
    return run_cli("send", "2026-11", root=root, env=env)


@pytest.mark.parametrize(
    ("tls", "faults", "message"),
    [
        ("starttls", {}, "the relay 127.0.0.1:{port} does not offer STARTTLS"),
        ("starttls", {"offer_starttls": True},
         "the relay 127.0.0.1:{port} refused STARTTLS: 454 TLS not available"),
        ("tls", {}, "TLS with 127.0.0.1:{port} failed"),
    ],
    ids=["no-starttls", "starttls-454", "tls-handshake"],
)
def test_a_tls_problem_stops_at_once_and_leaves_nothing_in_flight(
    built: Path, run_cli: RunCli, tls: str, faults: dict[str, bool], message: str
) -> None:
    from smtpserver import Faults

    server = TestServer(Faults(**faults))  # type: ignore[arg-type]
    server.start()
    try:
        stopped = send(run_cli, built, server, tls)
        assert stopped.exit_code == 1, stopped.stdout + stopped.stderr
        (line,) = stopped.stderr.splitlines()
        assert line.startswith(f"error: NEWSLETTER_SMTP_TLS: {message.format(port=server.port)}")
        assert "throttl" not in stopped.stdout + stopped.stderr
        assert server.received == []
        counts = rows_by_status(built)
        assert Status.SENDING not in counts
        assert Status.SENT not in counts and Status.FAILED not in counts
        # Fixed: the next run mails everyone and warns of no message in flight.
        resumed = send(run_cli, built, server, "none")
        assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
        assert "in flight" not in resumed.stdout + resumed.stderr
        assert server.recipients() == mailable(built)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("auth", "password", "line"),
    [
        (None, "some-password",
         "error: NEWSLETTER_SMTP_USERNAME: the relay 127.0.0.1:{port} offers no AUTH, yet user "
         "'lettre' is set (unset the username if the relay needs no login; otherwise use its "
         "submission port (587 with starttls, 465 with tls): many offer AUTH only over TLS)"),
        (("lettre", "some-password"), "",
         "error: NEWSLETTER_SMTP_PASSWORD: no password for user 'lettre' (set "
         "NEWSLETTER_SMTP_PASSWORD in .env (with several relays: the relay's password in "
         "NEWSLETTER_SMTP_RELAYS))"),
    ],
    ids=["relay-without-auth", "no-password"],
)
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_that_cannot_happen_stops_at_once(
    built: Path, run_cli: RunCli, auth: tuple[str, str] | None, password: str, line: str
) -> None:
    """It was retried as a temporary failure, recipient after recipient (13 s for one reader,
    exit 3; a big list churned until 25 failures in a row)."""
    server = TestServer(auth=auth)
    server.start()
    try:
        env = server.env(NEWSLETTER_SMTP_USERNAME="lettre", NEWSLETTER_SMTP_PASSWORD=password,
                         NEWSLETTER_MAX_ATTEMPTS="3")
        stopped = run_cli("send", "2026-11", root=built, env=env)
        assert stopped.exit_code == 1, stopped.stdout + stopped.stderr
        assert stopped.stderr.splitlines() == [line.format(port=server.port)]
        assert server.received == []
        assert Status.SENDING not in rows_by_status(built)
        assert "some-password" not in stopped.stdout + stopped.stderr
    finally:
        server.stop()
