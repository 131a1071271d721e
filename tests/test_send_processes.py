"""NEWSLETTER_SEND_PROCESSES: worker processes, each with a share of the list, one journal."""

from __future__ import annotations

import collections
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dkim
from conftest import RunCli, readers
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from smtpserver import Faults, TestServer, send_command
from test_dkim import dns

from newsletter.layout import Layout


def test_three_processes_mail_everyone_once_signed_and_journal_it_all(
    built: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    emails = readers(built, 45)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (built / "dkim.pem").write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )
    spki = key.public_key().public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    from base64 import b64encode

    result = run_cli(
        "send", "2026-11", root=built,
        env=smtp_server.env(
            NEWSLETTER_SEND_PROCESSES="3", NEWSLETTER_SMTP_CONCURRENCY="6",
            NEWSLETTER_DKIM_KEY_FILE="dkim.pem", NEWSLETTER_DKIM_SELECTOR="nl",
        ),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Sent 2026-11: 45 sent, 0 failed, 0 deferred" in result.stdout
    assert smtp_server.recipients() == emails  # each exactly once
    lookup = dns({"nl._domainkey.coeursurparis.example": b"v=DKIM1; k=rsa; p=" + b64encode(spki)})
    assert all(dkim.verify(r.raw, dnsfunc=lookup) for r in smtp_server.received)
    db = sqlite3.connect(Layout.at(built).journal_path)
    try:
        rows = dict(db.execute("SELECT email, status FROM deliveries"))
    finally:
        db.close()
    assert rows == dict.fromkeys(emails, "sent")
    again = run_cli("send", "2026-11", root=built, env=smtp_server.env(
        NEWSLETTER_SEND_PROCESSES="3"))
    assert again.exit_code == 0 and len(smtp_server.received) == 45  # nothing twice


def test_sigkill_of_a_multi_process_send_then_resume_skips_nobody(built: Path) -> None:
    n = 60
    emails = readers(built, n)
    server = TestServer(Faults(delay=0.02))  # slow enough to be killed part-way
    server.start()
    try:
        env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="4", NEWSLETTER_SEND_PROCESSES="2")
        cmd = send_command(built)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        server.wait_received(n // 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(1.5)  # the workers see their parent gone and stop
        killed_at = len(server.received)
        assert 0 < killed_at < n, killed_at
        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        server.stop()
    counts = collections.Counter(server.recipients())
    assert sorted(counts) == emails  # nobody skipped
    twice = sorted(a for a, c in counts.items() if c > 1)
    m = re.search(r"(\d+) message\(s\) were in flight when the last send stopped", resumed.stdout)
    assert len(twice) <= (int(m.group(1)) if m else 0) <= 4  # one per connection at most
    for address in twice:  # every duplicate was announced as in flight
        assert address in resumed.stdout


def test_limit_holds_across_processes(
    built: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    readers(built, 30)
    result = run_cli("send", "2026-11", "--limit", "5", root=built,
                     env=smtp_server.env(NEWSLETTER_SEND_PROCESSES="2"))
    assert "Sent 2026-11: 5 sent, 0 failed" in result.stdout, result.stdout + result.stderr
    assert len(smtp_server.received) == 5


def ctrl_c_part_way(
    built: Path, check: Callable[[int], None] = lambda pid: None, **settings: str
) -> None:
    """A send of 80 readers in its own process group, SIGINT to the whole group (what a
    terminal's Ctrl-C does) once 10 are in: exit 130, `Interrupted: N left`, nothing left
    `sending`, and the next run mails the rest with none named as in flight: once each.
    `check(pid)` runs on the send while it goes."""
    n = 80
    emails = readers(built, n)
    server = TestServer(Faults(delay=0.03))
    server.start()
    try:
        env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="4", **settings)
        cmd = send_command(built)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        server.wait_received(10)
        check(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, out.decode() + err.decode()
        assert b"Interrupted: " in out, out.decode() + err.decode()
        db = sqlite3.connect(Layout.at(built).journal_path)
        try:
            statuses = collections.Counter(s for (s,) in db.execute(
                "SELECT status FROM deliveries"))
        finally:
            db.close()
        assert statuses["sending"] == 0 and statuses["sent"] == len(server.received) < n
        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "in flight" not in resumed.stdout
    finally:
        server.stop()
    assert server.recipients() == emails  # once each


def test_ctrl_c_stops_every_process_after_its_messages_in_flight(built: Path) -> None:
    """One SIGINT to the parent (a terminal sends it to the whole group: the workers ignore
    it and wait for the parent's word): in-flight messages finish and are journaled, exit
    130, nothing left `sending`, and the next run mails the rest, once each."""
    ctrl_c_part_way(built, NEWSLETTER_SEND_PROCESSES="2")


def test_an_old_journal_gets_the_relay_column_and_keeps_its_rows(tmp_path: Path) -> None:
    from newsletter.send.journal import Journal, Status

    path = tmp_path / "newsletter.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE deliveries (issue TEXT NOT NULL, email_key TEXT NOT NULL, "
        "email TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "code INTEGER, reply TEXT NOT NULL DEFAULT '', message_id TEXT NOT NULL DEFAULT '', "
        "updated REAL NOT NULL, PRIMARY KEY (issue, email_key)) WITHOUT ROWID;"
        "INSERT INTO deliveries VALUES "
        "('2026-11', 'a@example.fr', 'a@example.fr', 'sent', 1, 250, 'ok', '<m>', 1.0);"
    )
    old.close()
    journal = Journal(path, "2026-11")
    try:
        assert [(r.email, r.status, r.relay) for r in journal.rows()] == [
            ("a@example.fr", Status.SENT, None)]
        assert journal.by_relay() == [("-", 1)]
    finally:
        journal.close()


def _writers_of(root: Path) -> list[int]:
    """Running journal writer processes for this folder's journal."""
    journal = str(Layout.at(root).journal_path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"newsletter.send.journal_writer" in cmdline and journal in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_the_worker_processes_share_one_journal_writer(built: Path) -> None:
    """Two SQLite writers would wait on each other's locks: one writer serves every worker,
    and it is gone when the send is."""
    emails = readers(built, 40)
    server = TestServer(Faults(delay=0.02))
    server.start()
    try:
        env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="4", NEWSLETTER_SEND_PROCESSES="2")
        cmd = send_command(built)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            seen.update(_writers_of(built))
            time.sleep(0.02)
        out, err = proc.communicate(timeout=30)
    finally:
        server.stop()
    assert proc.returncode == 0, out.decode() + err.decode()
    assert len(seen) == 1, seen
    assert sorted(server.recipients()) == emails
    assert _writers_of(built) == []


def _forked_children(pid: int) -> list[int]:
    """The children of `pid` running its own command line: forked, not started anew (the
    journal writer is `python -m newsletter.send.journal_writer`)."""
    def cmdline(p: int | str) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return b""

    mine = cmdline(pid)
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid and cmdline(entry.name) == mine:
                children.append(int(entry.name))
    return children


def test_ctrl_c_of_a_signed_send_finishes_in_flight_and_mails_nobody_twice(built: Path) -> None:
    """The DKIM signing workers are forked from the send: a terminal's Ctrl-C reached them
    too, and each caught it through the parent's inherited wakeup descriptor, so the send saw
    a second Ctrl-C and quit at once: rows left `sending` though their messages had been
    accepted, mailed again by the next run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (built / "dkim.pem").write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )

    def has_a_signing_worker(pid: int) -> None:
        assert _forked_children(pid), "no signing worker: nothing is tested"

    ctrl_c_part_way(built, has_a_signing_worker, NEWSLETTER_DKIM_KEY_FILE="dkim.pem",
                    NEWSLETTER_DKIM_SELECTOR="nl")
