"""A send killed with SIGKILL part-way, then resumed: nobody skipped, duplicates only in flight."""

from __future__ import annotations

import collections
import re
import signal
import subprocess
from pathlib import Path

from conftest import RunCli, readers
from smtpserver import Faults, TestServer, send_command


def test_sigkill_then_resume_mails_everyone_once_but_the_reported_in_flight(
    built: Path, run_cli: RunCli
) -> None:
    n = 60
    emails = readers(built, n)
    server = TestServer(Faults(delay=0.02))  # slow enough to be killed part-way
    server.start()
    try:
        env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="4")
        cmd = send_command(built)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        server.wait_received(n // 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = len(server.received)
        assert 0 < killed_at < n, killed_at

        resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        server.stop()

    counts = collections.Counter(server.recipients())
    assert sorted(counts) == emails  # nobody skipped
    twice = sorted(a for a, c in counts.items() if c > 1)
    assert all(c <= 2 for c in counts.values())
    m = re.search(r"(\d+) message\(s\) were in flight when the last send stopped", resumed.stdout)
    in_flight = int(m.group(1)) if m else 0
    assert in_flight <= 4  # at most one per connection
    # Every duplicate was announced as in flight.
    for address in twice:
        assert address in resumed.stdout
