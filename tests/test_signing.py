"""DKIM signing workers (newsletter/send/signing.py): real forked processes, real faults."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from base64 import b64encode
from pathlib import Path

import pytest
from conftest import readers
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from smtpserver import Faults, TestServer, send_command

from newsletter.send.dkim import Signer, load_key
from newsletter.send.signing import OffLoopSigner, pack, unpack

MESSAGE = b"From: a@example.fr\r\nTo: b@example.fr\r\nSubject: s\r\n\r\nBonjour\r\n"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("key") / "k.pem"
    path.write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )
    return path


def _signer(key_file: Path) -> Signer:
    return Signer(load_key(key_file, shown="k.pem"), selector="nl", domain="example.fr")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_frames_round_trip() -> None:
    items = [b"", b"a", bytes(range(256)) * 40]
    framed = pack(items)
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    assert unpack(framed[4:]) == items


def test_signatures_from_the_workers_equal_the_ones_made_here(key_file: Path) -> None:
    signer = _signer(key_file)
    pool = OffLoopSigner(signer, processes=2).start()

    async def sign_all() -> list[bytes]:
        return await asyncio.gather(*(pool.sign(MESSAGE + b"%d\r\n" % i) for i in range(40)))

    try:
        signed = asyncio.run(sign_all())
        pids = pool.pids
    finally:
        pool.close()
    assert len(pids) == 2 and os.getpid() not in pids
    now = [int(raw.split(b"t=")[1].split(b";")[0]) for raw in signed]
    expected = [signer.sign(MESSAGE + b"%d\r\n" % i, now=t) for i, t in enumerate(now)]
    assert signed == expected  # RSA PKCS#1 v1.5 is deterministic: the same bytes
    assert not any(_alive(pid) for pid in pids)  # close() waited for them


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policy")
def test_workers_run_as_batch_jobs_and_the_event_loop_does_not(key_file: Path) -> None:
    """The workers' wake-ups must not preempt the event loop or the journal writer: they run
    SCHED_BATCH; the sending process itself keeps the normal policy."""
    pool = OffLoopSigner(_signer(key_file), processes=2).start()
    try:
        deadline = time.monotonic() + 10  # each sets it first thing once forked
        policies = [os.sched_getscheduler(pid) for pid in pool.pids]
        while policies != [os.SCHED_BATCH] * 2 and time.monotonic() < deadline:
            time.sleep(0.01)
            policies = [os.sched_getscheduler(pid) for pid in pool.pids]
        here = os.sched_getscheduler(0)
        asyncio.run(pool.sign(MESSAGE))  # and they still sign
    finally:
        pool.close()
    assert policies == [os.SCHED_BATCH, os.SCHED_BATCH]
    assert here == os.SCHED_OTHER


def test_messages_signed_ahead_are_the_same_and_the_unused_are_dropped_at_close(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signer = _signer(key_file)
    pool = OffLoopSigner(signer, processes=1).start()

    async def sign_ahead() -> list[bytes]:
        for i in range(6):
            pool.sign_ahead(f"<m{i}>", MESSAGE + b"%d\r\n" % i)
        taken = [pool.signed_ahead(f"<m{i}>") for i in range(4)]
        assert pool.signed_ahead("<m0>") is None  # each is taken once
        assert pool.signed_ahead("<never>") is None
        return [await future for future in taken if future is not None]

    try:
        signed = asyncio.run(sign_ahead())
    finally:
        pool.close()
    stamps = [int(raw.split(b"t=")[1].split(b";")[0]) for raw in signed]
    assert len(signed) == 4
    assert signed == [signer.sign(MESSAGE + b"%d\r\n" % i, now=t) for i, t in enumerate(stamps)]
    assert pool.signed_ahead("<m4>") is None  # signed ahead, never taken: dropped at close
    assert "never retrieved" not in caplog.text


def test_a_message_signed_too_long_before_its_turn_is_signed_again(key_file: Path) -> None:
    """A slow rate or a pause: its Date and t= would be stale; it is not handed out."""
    pool = OffLoopSigner(_signer(key_file), processes=1, max_age=0.05).start()

    async def late() -> tuple[bool, bool]:
        pool.sign_ahead("<fresh>", MESSAGE)
        pool.sign_ahead("<late>", MESSAGE)
        fresh = pool.signed_ahead("<fresh>")
        await asyncio.sleep(0.1)
        return fresh is not None, pool.signed_ahead("<late>") is None

    try:
        fresh_taken, late_refused = asyncio.run(late())
    finally:
        pool.close()
    assert fresh_taken and late_refused


def test_a_killed_worker_hands_its_work_over_and_nothing_is_lost(key_file: Path) -> None:
    """Its batch waiting for a signature is signed elsewhere (here, once no worker is left):
    the same signatures as made here."""
    signer = _signer(key_file)
    pool = OffLoopSigner(signer, processes=1).start()
    (pid,) = pool.pids

    async def sign_across_a_kill() -> list[bytes]:
        first = await pool.sign(MESSAGE)  # a working worker first
        os.kill(pid, signal.SIGKILL)
        rest = await asyncio.gather(*(pool.sign(MESSAGE + b"%d\r\n" % i) for i in range(8)))
        return [first, *rest]

    try:
        signed = asyncio.run(asyncio.wait_for(sign_across_a_kill(), timeout=20))
    finally:
        pool.close()
    bodies = [MESSAGE] + [MESSAGE + b"%d\r\n" % i for i in range(8)]
    stamps = [int(raw.split(b"t=")[1].split(b";")[0]) for raw in signed]
    assert signed == [signer.sign(b, now=t) for b, t in zip(bodies, stamps, strict=True)]
    assert pool.lost and "a signing process died" in pool.lost[0]


def test_workers_never_outlive_a_parent_killed_with_sigkill(key_file: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from newsletter.send.dkim import Signer, load_key
        from newsletter.send.signing import OffLoopSigner
        key = load_key(Path({str(key_file)!r}), shown="k.pem")
        pool = OffLoopSigner(Signer(key, selector="nl", domain="example.fr"), processes=2)
        print(*pool.start().pids, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_workers_close_the_descriptors_they_are_told_to(key_file: Path) -> None:
    """A worker forked after the journal writer started must not keep the writer's input
    open: the writer would never see its end, and the send would wait for it."""
    import select

    read_end, write_end = os.pipe()
    pool = OffLoopSigner(_signer(key_file), processes=1, close_in_worker=[write_end]).start()
    try:
        os.close(write_end)  # ours: now nobody should hold it
        ready, _, _ = select.select([read_end], [], [], 5)
        assert ready and os.read(read_end, 1) == b""  # end of file: the worker closed its copy
    finally:
        pool.close()
        os.close(read_end)


def _forked_children(pid: int) -> list[int]:
    """Children of `pid` running the same program (forked, not exec'd): signing workers."""
    try:
        own = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == pid and cmdline == own:
            found.append(int(entry.name))
    return found


def _signed_send(built: Path, key_file: Path, server: TestServer, concurrency: int) -> tuple[
    list[str], dict[str, str]
]:
    """The command that sends 2026-11 from `built` through `server`, signed with
    `key_file`, and its environment."""
    (built / "keys").mkdir(exist_ok=True)
    (built / "keys" / "k.pem").write_bytes(key_file.read_bytes())
    env = server.process_env(
        NEWSLETTER_SMTP_CONCURRENCY=str(concurrency), NEWSLETTER_DKIM_KEY_FILE="keys/k.pem",
        NEWSLETTER_DKIM_SELECTOR="nl",
    )
    return send_command(built), env


def _all_verified(key_file: Path, server: TestServer) -> bool:
    """Every message the server received carries a DKIM signature dkimpy verifies."""
    import dkim
    from test_dkim import dns

    public = ser.load_pem_private_key(key_file.read_bytes(), None).public_key()
    spki = public.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    lookup = dns({"nl._domainkey.coeursurparis.example": b"v=DKIM1; k=rsa; p=" + b64encode(spki)})
    return all(dkim.verify(r.raw, dnsfunc=lookup) for r in server.received)


def test_a_signing_worker_killed_mid_send_costs_nothing(built: Path, key_file: Path) -> None:
    """The send goes on (signing on the event loop), every message still signed and
    verified by dkimpy, everyone mailed once, exit 0."""
    emails = readers(built, 60)
    server = TestServer(Faults(delay=0.03))
    server.start()
    try:
        cmd, env = _signed_send(built, key_file, server, concurrency=2)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        server.wait_received(5)
        workers = _forked_children(proc.pid)
        assert workers, "no signing worker found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 0, out + err
    assert "Sent 2026-11: 60 sent, 0 failed" in out
    counts = collections.Counter(server.recipients())
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert _all_verified(key_file, server)


def test_a_signed_send_stopped_by_its_limit_mails_only_those_and_the_rest_next_run(
    built: Path, key_file: Path
) -> None:
    """Messages are signed ahead of their turn: those past --limit are signed and never
    sent, never journaled; the next run mails exactly the others, every message verified
    by dkimpy, nobody twice."""
    emails = readers(built, 40)
    server = TestServer()
    server.start()
    try:
        cmd, env = _signed_send(built, key_file, server, concurrency=4)
        first = subprocess.run([*cmd, "--limit", "7"], env=env, capture_output=True, text=True,
                               timeout=60)
        with sqlite3.connect(built / "state" / "newsletter.db") as db:
            journaled = db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
            after_first = dict(journaled.fetchall())
        mailed_first = len(server.received)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert first.returncode == 3, first.stdout + first.stderr  # readers left: documented 3
    assert "Sent 2026-11: 7 sent, 0 failed" in first.stdout
    assert mailed_first == 7 and after_first == {"sent": 7}  # nothing signed ahead went out
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Sent 2026-11: 33 sent, 0 failed" in second.stdout
    for run in (first, second):
        assert "never retrieved" not in run.stderr and "destroyed" not in run.stderr
    counts = collections.Counter(server.recipients())
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert _all_verified(key_file, server)
