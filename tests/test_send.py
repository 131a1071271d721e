"""`newsletter send` against a real SMTP server; what it received is parsed and checked."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
import socket
from pathlib import Path

import pytest
from conftest import POSTAL_ADDRESS, RunCli, own_template
from smtpserver import TestServer

from newsletter.cli import ExitCode
from newsletter.layout import Layout
from newsletter.send.journal import Journal

SECRET = "test-secret-key-0123456789"


def subscribed(root: Path) -> list[dict[str, str]]:
    """The rows the sample list says must be mailed, computed from the file itself."""
    with open(root / "subscribers.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if (r.get("status") or "subscribed") == "subscribed"]


def send(run_cli: RunCli, root: Path, server: TestServer, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return run_cli("send", "2026-11", *args, root=root, env=server.env(**env))


def subject_of(root: Path) -> str:
    manifest = json.loads((root / "build" / "2026-11" / "manifest.json").read_text("utf-8"))
    subject = manifest["subject"]
    assert isinstance(subject, str) and "d’année" in subject
    return subject


@pytest.fixture
def ready(built: Path) -> Path:
    return built


def test_every_subscribed_recipient_gets_exactly_one_complete_message(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(
        run_cli,
        ready,
        smtp_server,
        NEWSLETTER_UNSUBSCRIBE_URL="https://coeursurparis.example/desabonnement",
        NEWSLETTER_SECRET_KEY=SECRET,
    )
    assert result.exit_code == 0, result.stderr
    expected = subscribed(ready)
    assert smtp_server.recipients() == sorted(r["email"] for r in expected)
    assert "Sent 2026-11: 6 sent, 0 failed" in result.stdout

    by_to = {m["To"].addresses[0].addr_spec: m for m in smtp_server.messages}
    ids = {m["Message-ID"] for m in smtp_server.messages}
    assert len(ids) == len(expected)
    for row in expected:
        msg = by_to[row["email"]]
        assert msg["To"].addresses[0].display_name == row["name"]
        assert msg["From"].addresses[0].addr_spec == "lettre@coeursurparis.example"
        assert msg["Subject"] == subject_of(ready)
        assert msg["Date"] is not None and msg["MIME-Version"] == "1.0"
        assert re.fullmatch(r"<2026-11\.[0-9a-f]+@coeursurparis\.example>", msg["Message-ID"])
        assert msg["List-Id"].endswith("<newsletter.coeursurparis.example>")
        token = hmac.new(SECRET.encode(), row["email"].lower().encode(), hashlib.sha256).hexdigest()
        unsub = f"https://coeursurparis.example/desabonnement?token={token}"
        assert msg["List-Unsubscribe"].startswith("<mailto:lettre@coeursurparis.example?")
        assert f"<{unsub}>" in msg["List-Unsubscribe"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        first = row["name"].split(" ")[0]
        greeting = f"Bonjour {first}," if row["name"] else "Bonjour,"
        assert greeting in text
        assert greeting.replace('"', "&quot;") in html
        assert f'href="{unsub}"' in html
        assert unsub in text
        assert "{{" not in html and "{{" not in text
        assert "Rédigé par" in html and "Claire Fontaine" in text


def test_a_csv_column_personalises_both_parts(
    newsletter_root: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    tpl = own_template(newsletter_root, "email.txt.j2")
    tpl.write_text(
        tpl.read_text().replace("{{ greeting }}", "{{ greeting }} ({{ subscriber.ville }})")
    )
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    assert send(run_cli, newsletter_root, smtp_server).exit_code == 0
    for row in subscribed(newsletter_root):
        msg = next(
            m for m in smtp_server.messages if m["To"].addresses[0].addr_spec == row["email"]
        )
        assert f"({row['ville']})" in msg.get_body(("plain",)).get_content()


def test_a_column_the_list_lacks_is_refused_before_sending(
    newsletter_root: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    tpl = own_template(newsletter_root, "email.txt.j2")
    tpl.write_text(tpl.read_text() + "{{ subscriber.code_postal }}\n")
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    result = send(run_cli, newsletter_root, smtp_server)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr.startswith("error: subscribers.csv:1: the email uses {{ code_postal }}")
    assert smtp_server.received == []


def test_invalid_rows_stop_the_send_unless_skipped(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    with open(ready / "subscribers.csv", "a", encoding="utf-8") as f:
        f.write("pas-une-adresse,Bob,subscribed,Nantes\n")
        f.write('"eve@example.fr","Eve\r\nBcc: victim@example.com",subscribed,Lille\n')
    result = send(run_cli, ready, smtp_server)
    assert result.exit_code == ExitCode.USER_ERROR
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: subscribers.csv:10: invalid address 'pas-une-adresse'")
    assert lines[1] == "error: subscribers.csv:11: the name contains a line break"
    assert "2 invalid row(s)" in lines[2] and "--skip-invalid" in lines[2]
    assert smtp_server.received == []

    result = send(run_cli, ready, smtp_server, "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert smtp_server.recipients() == sorted(r["email"] for r in subscribed(ready)[:-2])
    assert all("victim" not in r.raw.decode() for r in smtp_server.received)


def test_duplicates_are_mailed_once_and_unsubscribed_never(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    with open(ready / "subscribers.csv", "a", encoding="utf-8") as f:
        f.write("AMELIE.DURAND@EXAMPLE.FR,Amélie bis,subscribed,Paris\n")
    result = send(run_cli, ready, smtp_server)
    assert result.exit_code == 0
    got = smtp_server.recipients()
    assert got.count("amelie.durand@example.fr") == 1 and len(got) == len(set(got))
    assert "jerome.benoit@example.fr" not in got and "gaelle.leroux@example.com" not in got
    assert "1 duplicate(s) mailed once" in result.stdout


def test_a_name_cannot_inject_a_header(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    (ready / "subscribers.csv").write_text(
        'email,name\nzoe@example.fr,"Zoé: x\tBcc: victim@example.com <z>"\n', encoding="utf-8"
    )
    assert send(run_cli, ready, smtp_server).exit_code == 0
    (msg,) = smtp_server.messages
    assert msg["Bcc"] is None
    assert msg["To"].addresses[0].addr_spec == "zoe@example.fr"
    assert smtp_server.recipients() == ["zoe@example.fr"]


@pytest.mark.smtp_faults(
    data_first=["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"]
)
def test_temporary_refusals_are_retried_until_delivered(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, ready, smtp_server, NEWSLETTER_SMTP_CONCURRENCY="2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert smtp_server.recipients() == sorted(r["email"] for r in subscribed(ready))
    # One 421 at the start: the rate is halved from the one measured, not dropped to the
    # 0.2/s floor (this test took ~24 s for 6 messages then; recovery: test_engine.py).
    line = next(x for x in result.stdout.splitlines() if "the relay throttled" in x)
    assert float(line.split("lowest ")[1].split("/s")[0]) >= 1.0, line


@pytest.mark.smtp_faults(rcpt={"francois.lefevre@example.com": "550 5.1.1 No such user here"})
def test_a_550_fails_that_recipient_only(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, ready, smtp_server)
    # issue 12: the only failure is a hard bounce, now suppressed: a weekly script sees 0
    assert result.exit_code == ExitCode.OK, result.stdout
    others = sorted(
        r["email"] for r in subscribed(ready) if r["email"] != "francois.lefevre@example.com"
    )
    assert smtp_server.recipients() == others
    assert "failed: francois.lefevre@example.com: 550 5.1.1 No such user here" in result.stdout
    report = run_cli("report", "2026-11", root=ready)
    assert "failed   francois.lefevre@example.com  550 5.1.1 No such user here" in report.stdout
    csv_out = ready / "out.csv"
    run_cli("report", "2026-11", "--csv", str(csv_out), root=ready)
    with open(csv_out, encoding="utf-8") as f:
        rows = {r["email"]: r for r in csv.DictReader(f)}
    assert rows["francois.lefevre@example.com"]["code"] == "550"
    assert sum(r["status"] == "sent" for r in rows.values()) == len(others)
    # A failed recipient is final: a new run sends nothing.
    again = send(run_cli, ready, smtp_server)
    assert "Nothing to send" in again.stdout and len(smtp_server.received) == len(others)


def test_a_missing_or_unreadable_list_file_is_the_same_one_line_error_for_send_and_report(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    assert send(run_cli, ready, smtp_server).exit_code == 0
    line = (
        "error: nope.csv: subscriber list not found (pass --subscribers FILE or set "
        "NEWSLETTER_SUBSCRIBERS (a CSV file whose first line is a header with at least an "
        "email column))\n"
    )
    missing, csv_out = str(ready / "nope.csv"), str(ready / "o.csv")
    reports = (("report", "2026-11"), ("report", "2026-11", "--csv", csv_out))
    for args in (("send", "2026-11"), *reports):
        result = run_cli(*args, "--subscribers", missing, root=ready, env=smtp_server.env())
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", line), args
    assert not (ready / "o.csv").exists()
    folder = "error: content: cannot read the subscriber list: Is a directory (pass --subscribers "
    for args in (("send", "2026-11"), ("report", "2026-11")):
        result = run_cli(*args, "--subscribers", str(ready / "content"), root=ready)
        assert result.exit_code == 1 and result.stderr.startswith(folder), result.stderr
    # the same for the list of the settings: report counts the untried only if it exists
    env = smtp_server.env(NEWSLETTER_SUBSCRIBERS="nope.csv")
    assert "not yet tried" not in run_cli("report", "2026-11", root=ready, env=env).stdout


@pytest.mark.smtp_faults(drop_first=2)
def test_a_connection_dropped_mid_data_is_survived(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, ready, smtp_server)
    assert result.exit_code == 0, result.stdout
    emails = sorted(r["email"] for r in subscribed(ready))
    assert smtp_server.recipients() == emails
    # Dropped after the whole message: the relay might have kept it; the summary names them.
    assert set(maybe_twice(result.stdout, 2)) <= set(emails)


@pytest.mark.smtp_faults(stall_first=1, stall_seconds=3)
def test_a_stalled_server_times_out_and_the_message_is_retried(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = send(run_cli, ready, smtp_server, NEWSLETTER_SMTP_TIMEOUT="1")
    assert result.exit_code == 0, result.stdout
    emails = sorted(r["email"] for r in subscribed(ready))
    assert smtp_server.recipients() == emails
    assert set(maybe_twice(result.stdout, 1)) <= set(emails)


def maybe_twice(stdout: str, count: int) -> list[str]:
    """The addresses the summary names as possibly mailed twice: `count` different ones."""
    m = re.search(r"  (\d+) message\(s\) lost their connection after being written, before "
                  r"the relay answered, and are sent again \(a copy may arrive twice\): (.*)",
                  stdout)
    assert m is not None, stdout
    named = m[2].split(", ")
    assert int(m[1]) == len(set(named)) == len(named) == count
    return named


def test_a_finished_issue_is_not_sent_twice(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    assert send(run_cli, ready, smtp_server).exit_code == 0
    n = len(smtp_server.received)
    again = send(run_cli, ready, smtp_server)
    assert again.exit_code == 0
    assert again.stdout.startswith(f"Nothing to send: all {n} recipient(s) of 2026-11")
    assert len(smtp_server.received) == n


@pytest.mark.parametrize("dry", [False, True])
def test_a_list_with_nobody_to_mail_says_so(
    ready: Path, smtp_server: TestServer, run_cli: RunCli, dry: bool
) -> None:
    """A new folder's list has only its header (and a reader who left): the send names the
    list, not "all 0 recipient(s) already have an outcome"."""
    (ready / "subscribers.csv").write_text(
        "email,name,status\nparti@example.fr,Parti,unsubscribed\n", encoding="utf-8"
    )
    result = send(run_cli, ready, smtp_server, *(["--dry-run"] if dry else []))
    assert result.exit_code == ExitCode.OK, result.stdout
    head = "Dry run of 2026-11: nothing" if dry else "Nothing"
    assert result.stdout.splitlines() == [
        f"{head} to send: subscribers.csv has no reader to mail "
        "(a row needs a valid address and the status subscribed)",
        "  1 not subscribed",
    ]
    assert smtp_server.received == []


def test_limit_then_resume_mails_everyone_once(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    first = send(run_cli, ready, smtp_server, "--limit", "2")
    assert len(smtp_server.received) == 2
    assert first.exit_code == ExitCode.SOME_RECIPIENTS_FAILED  # not all were sent yet
    second = send(run_cli, ready, smtp_server)
    assert second.exit_code == 0
    assert "2 skipped (already done)" in second.stdout
    assert smtp_server.recipients() == sorted(r["email"] for r in subscribed(ready))


def test_resuming_a_rebuilt_issue_needs_allow_rebuilt(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    send(run_cli, ready, smtp_server, "--limit", "1")
    issue = ready / "issues" / "2026-11.toml"
    issue.write_text(issue.read_text().replace('subject = "', 'subject = "Bis — ', 1))
    assert run_cli("build-issue", "2026-11", root=ready).exit_code == 0
    refused = send(run_cli, ready, smtp_server)
    assert refused.exit_code == ExitCode.USER_ERROR
    assert "build/2026-11/ changed since this issue's send began" in refused.stderr
    assert "--allow-rebuilt" in refused.stderr
    assert len(smtp_server.received) == 1
    assert send(run_cli, ready, smtp_server, "--allow-rebuilt").exit_code == 0
    assert smtp_server.recipients() == sorted(r["email"] for r in subscribed(ready))


def test_a_second_concurrent_send_is_refused(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    holder = Journal.open(Layout.at(ready), "2026-11")
    holder.lock()
    try:
        result = send(run_cli, ready, smtp_server)
    finally:
        holder.close()
    assert result.exit_code == ExitCode.USER_ERROR
    assert "a send of issue 2026-11 is already running" in result.stderr
    assert smtp_server.received == []


def test_dry_run_and_test_to_leave_no_trace(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    dry = send(run_cli, ready, smtp_server, "--dry-run")
    assert dry.exit_code == 0
    assert f"{len(subscribed(ready))} message(s) would be sent" in dry.stdout
    assert smtp_server.received == []
    test = send(run_cli, ready, smtp_server, "--test-to", "relecture@example.org")
    assert test.exit_code == 0, test.stderr
    (msg,) = smtp_server.messages
    assert msg["Subject"] == "[TEST] " + subject_of(ready)
    assert msg["To"].addresses[0].addr_spec == "relecture@example.org"
    first = subscribed(ready)[0]["name"].split(" ")[0]
    assert f"Bonjour {first}," in msg.get_body(("plain",)).get_content()
    # Neither left a journal entry: the real send mails everyone.
    assert send(run_cli, ready, smtp_server).exit_code == 0
    assert len(smtp_server.received) == 1 + len(subscribed(ready))


def test_a_dry_run_counts_what_the_send_would_mail_now(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    """It counted the whole list: suppressed readers, and those already mailed, too."""
    from newsletter.send import suppressions

    emails = [r["email"] for r in subscribed(ready)]
    suppressions.append(ready / "suppressions.csv", [suppressions.Suppression(
        emails[-1], "hard-bounce", "5.1.1", "2026-10", "2026-10-02")])
    assert send(run_cli, ready, smtp_server, "--limit", "2").exit_code == 3  # some left
    journal = Layout.at(ready).journal_path
    before = journal.read_bytes()
    dry = send(run_cli, ready, smtp_server, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    left = len(emails) - 2 - 1
    assert dry.stdout.startswith(
        f"Dry run of 2026-11: {left} message(s) would be sent ("), dry.stdout
    assert ", 2 already have an outcome, built in " in dry.stdout
    assert "1 suppressed address(es) skipped" in dry.stdout
    assert journal.read_bytes() == before  # read, never written
    real = send(run_cli, ready, smtp_server)
    assert f"Sent 2026-11: {left} sent," in real.stdout, real.stdout
    done = send(run_cli, ready, smtp_server, "--dry-run")
    assert done.stdout.startswith("Dry run of 2026-11: 0 message(s) would be sent"), done.stdout


def test_no_postal_address_refuses_the_send_before_anything_leaves(
    newsletter_root: Path, smtp_server: TestServer, run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = newsletter_root
    monkeypatch.delenv("NEWSLETTER_POSTAL_ADDRESS")
    assert run_cli("build-issue", "2026-11", root=root).exit_code == 0  # a warning only
    refused = send(run_cli, root, smtp_server)
    assert refused.exit_code == ExitCode.USER_ERROR
    assert refused.stderr == (
        "error: newsletter.toml: no postal address: set postal_address (or "
        "NEWSLETTER_POSTAL_ADDRESS) and rebuild; nothing was sent (CAN-SPAM and the French LCEN "
        "want one in every email; --dry-run and --test-to work without it)\n"
    )
    assert smtp_server.received == []
    assert not Layout.at(root).journal_path.exists()
    # Reading it over is allowed.
    assert send(run_cli, root, smtp_server, "--dry-run").exit_code == 0
    assert send(run_cli, root, smtp_server, "--test-to", "relecture@example.org").exit_code == 0
    assert len(smtp_server.received) == 1

    # Set now, but the build was made without it.
    stale = send(run_cli, root, smtp_server, NEWSLETTER_POSTAL_ADDRESS=POSTAL_ADDRESS)
    assert stale.exit_code == ExitCode.USER_ERROR
    assert stale.stderr == (
        "error: build/2026-11: email.html does not show NEWSLETTER_POSTAL_ADDRESS; nothing was "
        "sent (rebuild with `newsletter build-issue 2026-11`)\n"
    )
    assert len(smtp_server.received) == 1

    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", POSTAL_ADDRESS)
    assert run_cli("build-issue", "2026-11", root=root).exit_code == 0
    result = send(run_cli, root, smtp_server)
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 1 + len(subscribed(root))
    for msg in smtp_server.messages[1:]:
        for kind in ("plain", "html"):
            assert POSTAL_ADDRESS in msg.get_body((kind,)).get_content()


def test_a_relay_that_is_down_stops_the_send_which_resumes_later(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    down = send(
        run_cli,
        ready,
        smtp_server,
        NEWSLETTER_SMTP_PORT=str(dead_port),
        NEWSLETTER_MAX_CONSECUTIVE_FAILURES="3",
        NEWSLETTER_RETRY_DELAY="0.01",
    )
    assert down.exit_code == ExitCode.USER_ERROR
    assert "error: the send stopped: 3 failures in a row" in down.stderr
    assert down.stderr.endswith(
        "(`newsletter doctor` checks the relay and its settings; then run "
        "`newsletter send 2026-11` to resume)\n"
    )
    assert "done (" not in down.stdout  # no progress line for a send of a second
    up = send(run_cli, ready, smtp_server)
    assert up.exit_code == 0, up.stdout
    assert smtp_server.recipients() == sorted(r["email"] for r in subscribed(ready))


def test_the_password_never_appears(ready: Path, run_cli: RunCli) -> None:
    server = TestServer(auth=("lettre", "right-password"))
    server.start()
    try:
        for debug in ((), ("--debug",)):
            bad = run_cli(
                "send",
                "2026-11",
                *debug,
                root=ready,
                env=server.env(
                    NEWSLETTER_SMTP_USERNAME="lettre", NEWSLETTER_SMTP_PASSWORD="s3cret-Wr0ng-pw"
                ),
            )
            assert bad.exit_code == ExitCode.USER_ERROR
            assert "refused the login for user 'lettre'" in bad.stderr
            assert "s3cret-Wr0ng-pw" not in bad.stdout + bad.stderr
        good = run_cli(
            "send",
            "2026-11",
            "--debug",
            root=ready,
            env=server.env(
                NEWSLETTER_SMTP_USERNAME="lettre", NEWSLETTER_SMTP_PASSWORD="right-password"
            ),
        )
        assert good.exit_code == 0, good.stderr
        assert "right-password" not in good.stdout + good.stderr
        assert server.recipients() == sorted(r["email"] for r in subscribed(ready))
    finally:
        server.stop()


def test_rate_limit_holds_at_the_server(
    ready: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    rows = "".join(f"lecteur{i}@example.fr,Lecteur {i}\n" for i in range(30))
    (ready / "subscribers.csv").write_text("email,name\n" + rows, encoding="utf-8")
    result = send(
        run_cli,
        ready,
        smtp_server,
        NEWSLETTER_RATE_PER_SECOND="10",
        NEWSLETTER_SMTP_CONCURRENCY="4",
    )
    assert result.exit_code == 0
    times = sorted(r.at for r in smtp_server.received)
    assert len(times) == 30
    # No one-second window holds more than the rate (+1 for the window's edges).
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 11, worst
    assert times[-1] - times[0] >= 2.5


def test_unsubscribe_by_address_and_by_token(newsletter_root: Path, run_cli: RunCli) -> None:
    path = newsletter_root / "subscribers.csv"
    before = path.read_bytes().splitlines(keepends=True)
    result = run_cli("unsubscribe", "Amelie.Durand@example.fr", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    after = path.read_bytes().splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [1]
    assert after[1].decode().split(",")[2] == "unsubscribed"

    token = hmac.new(SECRET.encode(), b"noemie.garcon@example.com", hashlib.sha256).hexdigest()
    result = run_cli(
        "unsubscribe", token, root=newsletter_root, env={"NEWSLETTER_SECRET_KEY": SECRET}
    )
    assert result.exit_code == 0, result.stderr
    with open(path, encoding="utf-8-sig") as f:
        rows = {r["email"]: r for r in csv.DictReader(f)}
    assert rows["noemie.garcon@example.com"]["status"] == "unsubscribed"
    unknown = run_cli("unsubscribe", "personne@example.fr", root=newsletter_root)
    assert unknown.exit_code == ExitCode.USER_ERROR
    assert unknown.stderr.startswith("error: subscribers.csv: no subscriber with this address")


def test_the_journal_keeps_the_articles_of_the_build_first_mailed(tmp_path: Path) -> None:
    """`runs.articles`: what a sent issue is rebuilt with (see test_issue.py)."""
    from newsletter.send.evidence import sent_articles
    from newsletter.send.journal import Status, Write

    layout = Layout(tmp_path)
    journal = Journal.open(layout, "2026-11")
    try:
        journal.bind("h1", allow_rebuilt=False, articles=["a", "b"])
        assert sent_articles(layout) == {}  # nobody tried yet: not sent
        journal.bind("h2", allow_rebuilt=False, articles=["a", "c"])  # rebuilt before anyone
        journal.commit([Write("ami@example.fr", Status.SENT, 1)])
        assert sent_articles(layout) == {"2026-11": ("a", "c")}
        journal.bind("h3", allow_rebuilt=True, articles=["d"])  # resumed with another build
        assert sent_articles(layout) == {"2026-11": ("a", "c")}
    finally:
        journal.close()
