"""The send journal's writer process: rows committed in order, its death stops the send, and
it never outlives the send."""

from __future__ import annotations

import asyncio
import collections
import marshal
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunCli, mailable, readers
from smtpserver import Faults, TestServer, send_command

from newsletter.errors import DeliveryError
from newsletter.layout import Layout
from newsletter.send.committer import GroupCommitter
from newsletter.send.journal import Journal, Status, Write
from newsletter.send.pipes import HEADER, frame

WRITER = "newsletter.send.journal_writer"


def writer_of(parent: int) -> int | None:
    """The pid of `parent`'s journal writer process, if it has one running."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and WRITER.encode() in cmdline:
            return int(entry.name)
    return None


def running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped has stopped running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_concurrent_writes_are_committed_in_order_by_a_writer_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "newsletter.db", "2026-11")
    committer = GroupCommitter(journal)
    assert not committer.in_thread
    seen: list[int | None] = []

    async def worker(i: int) -> None:
        email = f"Lecteur{i:02d}@Example.fr"
        await committer.write(Write(email, Status.SENDING, 1))
        seen.append(writer_of(os.getpid()))
        await committer.write(Write(email, Status.SENT, 1, 250, "2.0.0 ok", f"<m{i}@x>", "r"))

    async def main() -> None:
        committer.start()
        try:
            await asyncio.gather(*(worker(i) for i in range(16)))
        finally:
            await committer.close()

    asyncio.run(main())
    assert committer.process is not None
    assert set(seen) == {committer.process.pid}  # a process, not a thread, committed them
    assert not running(committer.process.pid)  # close() waited for it to exit
    assert writer_of(os.getpid()) is None
    assert 2 <= committer.commits < 32  # grouped
    rows = list(Journal(journal.path, "2026-11").rows())
    assert [(r.email, r.status, r.attempts, r.code, r.reply, r.message_id, r.relay) for r in rows] \
        == [(f"Lecteur{i:02d}@Example.fr", Status.SENT, 1, 250, "2.0.0 ok", f"<m{i}@x>", "r")
            for i in range(16)]
    journal.close()


def test_the_writer_is_our_code_even_from_a_folder_holding_a_newsletter_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` looks in the current directory first: a `newsletter` package there (a
    checkout of another version, a folder of the user's) must not be the writer we run."""
    decoy = tmp_path / "here" / "newsletter" / "send"
    decoy.mkdir(parents=True)
    (decoy.parent / "__init__.py").write_text("")
    (decoy / "__init__.py").write_text("")
    (decoy / "journal_writer.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(decoy.parent.parent)
    journal = Journal(tmp_path / "state" / "newsletter.db", "2026-11")
    committer = GroupCommitter(journal)

    async def main() -> None:
        committer.start()
        try:
            await committer.write(Write("a@example.fr", Status.SENT, 1))
        finally:
            await committer.close()

    asyncio.run(main())  # the decoy would exit 3 at once: the commit would fail
    assert {r.email: r.status for r in journal.rows()} == {"a@example.fr": Status.SENT}
    journal.close()


def test_a_batch_the_writer_refuses_fails_its_writers_and_the_next_batch_is_written(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "newsletter.db", "2026-11")
    committer = GroupCommitter(journal)

    async def main() -> str:
        committer.start()
        try:
            with pytest.raises(DeliveryError) as caught:
                # The table's CHECK refuses an unknown status: a real SQLite error in the writer.
                await committer.write(Write("a@example.fr", "bogus", 1))  # type: ignore[arg-type]
            await committer.write(Write("b@example.fr", Status.SENT, 1))
        finally:
            await committer.close()
        return str(caught.value)

    error = asyncio.run(main())
    assert error == (
        f"{journal.path}: the send journal could not be written: CHECK constraint failed: "
        "status IN ('sending', 'sent', 'deferred', 'failed') (check the disk; run send again "
        "to resume)"
    )
    assert {r.email: r.status for r in journal.rows()} == {"b@example.fr": Status.SENT}
    journal.close()


def test_the_writer_exits_when_its_stdin_closes_even_mid_frame(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.db"
    Journal(path, "2026-11").close()  # the schema, as a send creates it
    row = ("2026-11", "a@example.fr", "a@example.fr", "sent", 1, 250, "ok", "<m>", 1.0, "r")
    proc = subprocess.Popen(
        [sys.executable, "-m", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(frame(marshal.dumps([row])))
    proc.stdin.flush()
    (size,) = HEADER.unpack(proc.stdout.read(HEADER.size))
    assert marshal.loads(proc.stdout.read(size)) is None  # committed
    half = frame(marshal.dumps([(*row[:1], "b@example.fr", *row[2:])]))
    proc.stdin.write(half[: len(half) // 2])
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == b""  # no answer to half a batch
    db = sqlite3.connect(path)
    assert db.execute("SELECT email_key, status FROM deliveries").fetchall() == [
        ("a@example.fr", "sent")]
    db.close()


def test_a_send_journals_every_recipient_through_the_writer(
    built: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == 0, result.stderr
    ids = {m["To"].addresses[0].addr_spec: m["Message-ID"] for m in smtp_server.messages}
    journal = Journal.open(Layout.at(built), "2026-11")
    rows = list(journal.rows())
    journal.close()
    assert sorted(r.email for r in rows) == mailable(built) == sorted(ids)
    for r in rows:
        assert (r.status, r.attempts, r.code, r.message_id) == (Status.SENT, 1, 250, ids[r.email])
        assert r.relay == f"127.0.0.1:{smtp_server.port}"


def slow_send(built: Path, n: int) -> tuple[TestServer, list[str], dict[str, str]]:
    readers(built, n)
    server = TestServer(Faults(delay=0.02))  # slow enough to act part-way
    server.start()
    env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="4")
    cmd = send_command(built)
    return server, cmd, env


def test_a_killed_writer_stops_the_send_with_one_line_and_a_rerun_mails_the_rest(
    built: Path,
) -> None:
    n = 60
    server, cmd, env = slow_send(built, n)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert wait_until(lambda: len(server.received) >= n // 4, seconds=30)
        writer = writer_of(proc.pid)
        assert writer is not None
        os.kill(writer, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode != 0
        assert stderr.strip().splitlines() == [
            f"error: {built / 'state' / 'newsletter.db'}: the send journal could not be "
            "written: the journal writer process stopped (killed by signal 9) (check the disk; "
            "run send again to resume)"
        ]
        stopped_at = len(server.received)
        assert stopped_at < n

        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        server.stop()
    counts = collections.Counter(server.recipients())
    assert sorted(counts) == mailable(built)  # nobody skipped
    assert all(c <= 2 for c in counts.values())


def test_a_sigkilled_send_leaves_no_writer_behind(built: Path) -> None:
    server, cmd, env = slow_send(built, 60)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert wait_until(lambda: len(server.received) >= 10, seconds=30)
        writer = writer_of(proc.pid)
        assert writer is not None and running(writer)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: not running(writer), seconds=5)
    finally:
        server.stop()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_sent_to_the_whole_group_lets_the_writer_commit_the_messages_in_flight(
    built: Path, signum: int
) -> None:
    """A terminal's Ctrl-C (or a service manager's SIGTERM) reaches the writer too: it keeps
    committing until the send has finished the messages in flight."""
    server, cmd, env = slow_send(built, 60)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert wait_until(lambda: len(server.received) >= 10, seconds=30)
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=30)
    finally:
        server.stop()
    assert proc.returncode == 130, out + err
    assert "journal" not in err
    journal = Journal.open(Layout.at(built), "2026-11")
    statuses = collections.Counter(r.status for r in journal.rows())
    journal.close()
    assert statuses[Status.SENDING] == 0
    assert statuses[Status.SENT] == len(server.received) < 60


def test_one_writer_commits_the_batches_of_several_workers_together(tmp_path: Path) -> None:
    """`--fds`: a pair of pipes per worker; batches waiting from both are answered, and
    every row is in the journal; the writer ends when both workers have closed theirs."""
    path = tmp_path / "journal.sqlite"
    Journal(path, "2026-11").close()  # the schema
    pairs = [(os.pipe(), os.pipe()) for _ in range(2)]  # (to the writer, back)
    fds = [fd for (batches, answers) in pairs for fd in (batches[0], answers[1])]
    proc = subprocess.Popen(
        [sys.executable, "-m", WRITER, str(path), "--fds", ",".join(map(str, fds))],
        pass_fds=fds,
    )
    for fd in fds:
        os.close(fd)
    for i, (batches, _) in enumerate(pairs):
        rows = [("2026-11", f"r{i}.{k}@example.fr", f"r{i}.{k}@example.fr", "sent", 1, 250,
                 "250 ok", "", 0.0, None) for k in range(5)]
        os.write(batches[1], frame(marshal.dumps(rows)))
    for batches, answers in pairs:
        head = os.read(answers[0], HEADER.size)
        (size,) = HEADER.unpack(head)
        assert marshal.loads(os.read(answers[0], size)) is None
        os.close(batches[1])
        os.close(answers[0])
    assert proc.wait(timeout=10) == 0
    db = sqlite3.connect(path)
    try:
        count = db.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()
    finally:
        db.close()
    assert count == (10,)


def test_a_send_refused_by_its_checks_leaves_no_journal_and_no_writer(
    built: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    """The writer starts before the list is checked (its start-up overlaps the checks) but
    opens the journal at the first commit only: a refused send leaves neither behind."""
    (built / "subscribers.csv").write_text(
        "email,name,status\nnot-an-address,Zoé,subscribed\n", encoding="utf-8"
    )
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "invalid" in result.stdout + result.stderr
    assert not Layout.at(built).journal_path.exists()
    assert writer_of(os.getpid()) is None
    assert smtp_server.received == []
