"""Benchmark `newsletter send`: throughput against smtp-source, personalize(), memory.

    .venv/bin/python bench/send.py [--repeat 3] [--quick] [--profile] [--budget 450]

Prints figures and asserts nothing. Everything runs in a temporary copy of the sample folder
(content/, templates/, issues/), built once, and talks to 127.0.0.1 only.

(1) Throughput. `smtp-sink` (Postfix's test server: accepts and discards) is started on a free
    port of 127.0.0.1. For each concurrency C in 1, 4, 16 a whole `newsletter send 2026-11`
    process mails N recipients (3,000; French names with accents, an extra `ville` column)
    over C connections, and beside it, in the same loop and in alternating order,
    `smtp-source -d -s C` sends build/2026-11/email.eml N times into the same sink over C
    reused connections. Both are timed start to exit; rate = N / seconds; median of
    --repeat pairs; the sink's own message counter is checked after every run. Target:
    newsletter / smtp-source at C = 16 >= 0.45 unsigned, >= 0.30 signed with RSA 2048 (issue 14;
    stretch 0.6 and 0.45); --variants picks rows (two smtp-sinks as two relays: `relays`) and
    --baseline DIR adds each row run with another tree's code. The fixed cost of a send
    process (start-up, list checks, journal) is shown as a 1-recipient send, and the rate
    without it.
(2) personalize(): median µs per call over distinct recipients (target <= 500 µs), against
    the stdlib way (EmailMessage, set_content + add_alternative, as_bytes(policy=SMTP)), and
    what aiosmtplib's data() does to each message before it leaves (line endings, dots).
(3) Memory: max RSS of a `newsletter send 2026-11 --dry-run` process (getrusage in a fresh
    small interpreter that starts it) over 1,000,000 generated rows (target < 150 MB) and
    over 10,000, with durations and the growth per row.
--profile adds one send at C = 16 under py-spy (or cProfile without it) and prints where the
    main thread's time goes.

Every child is killed after a timeout, and the whole run stops starting children once
--budget seconds have passed (--quick: smaller numbers, for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NEWSLETTER_BIN = BIN / "newsletter"
SMTP_SINK = Path("/usr/sbin/smtp-sink")
SMTP_SOURCE = Path("/usr/sbin/smtp-source")
ISSUE_ID = "2026-11"
CONCURRENCIES = (1, 4, 16)
#: What (1) can measure (--variants): concurrencies, then at 16: RSA 2048, Ed25519, and two
#: smtp-sinks as two relays (8 connections each) against smtp-source into one, and
#: NEWSLETTER_SEND_PROCESSES=2 unsigned and RSA (`procs`).
VARIANTS = ("1", "4", "16", "rsa", "ed", "relays", "procs")
#: Issue 14's targets, newsletter / smtp-source at concurrency 16: (target, stretch).
TARGETS = {"16": (0.45, 0.6), "16+dkim rsa": (0.30, 0.45)}
TARGET_PERSONALIZE_US = 500.0
TARGET_RSS_MB = 150.0
SENDER = "lettre@coeursurparis.example"

FIRST_NAMES = (
    "Amélie", "François", "Hélène", "Noémie", "Jérôme", "Gaëlle", "Béatrice", "Cécile",
    "Loïc", "Zoé", "Anaïs", "Joël", "Léa", "Mathéo", "Élodie", "Rémi", "Clémence", "Benoît",
    "Maëlle", "Thérèse", "Inès", "Raphaël", "Chloé", "Gérald", "Océane", "Aurélien",
    "Solène", "Frédéric", "Maïwenn", "Stéphane", "Ève", "Anne-Laure",
)
LAST_NAMES = (
    "Lefèvre", "Moreau", "Garçon", "Benoît", "Le Roux", "Lemaître", "Dubœuf", "Château",
    "Gaudé", "Bréhat", "Pérez", "Lévêque", "Séguin", "Évrard", "Ménard", "Côté", "Thiébaut",
    "Crépin", "d’Arcy", "Fénelon", "Hervé", "Jégou", "Lacroix-Sévigné", "Mérieux", "Noël",
    "Prévost", "Quéré", "Rozière", "Lœvenbruck", "Schmitt",
)
TOWNS = (
    "Paris", "Saint-Étienne", "Orléans", "Besançon", "Nîmes", "Angoulême", "Vénissieux",
    "Périgueux", "Sète", "Béziers", "Châteauroux", "Paris, 11e",
)
DOMAINS = ("example.fr", "example.com", "exemple.org")


# -- children: timed, bounded, measured -------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # user + system, of that child alone
    max_rss_kb: int
    returncode: int
    stdout: str
    stderr: str


class Budget:
    """The whole run's time limit: each child gets at most what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, cap: float) -> float:
        left = self.left()
        if left < 1:
            raise OutOfTime
        return min(cap, left)


class OutOfTime(Exception):
    pass


class ChildFailed(Exception):
    pass


def run(argv: Sequence[str | Path], *, env: dict[str, str], timeout: float) -> Run:
    """Run one process to its end, or kill it (and its group) after `timeout` seconds.

    The wall time stops when the child exits (waitid, not a polling loop, so a 0.3 s run is
    measured to the millisecond); the CPU time is that child's own (wait4). Its max RSS is
    not reliable here: Linux carries the parent's high-water mark over fork and exec, so
    a child of this (large) process reports at least our RSS: see `run_measured`.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=env, start_new_session=True,
            # Not the repository: a --baseline tree from before the writer was started with
            # `python -P` would take its journal writer from ./newsletter, this tree's.
            cwd=tempfile.gettempdir(),
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            # Exited but not reaped: the pid cannot be reused while the timer may still fire.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            elapsed = time.perf_counter() - start
        except BaseException:
            kill()
            raise
        finally:
            timer.cancel()
            timer.join()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(
            elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode,
            out.read().decode(errors="replace"), err.read().decode(errors="replace"),
        )
    if timed_out.is_set():
        raise ChildFailed(f"{Path(argv[0]).name} killed after {timeout:.0f} s")
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        raise ChildFailed(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n  " + "\n  ".join(tail)
        )
    return result


# A fresh, small interpreter (-S: no site) starts the child and reports the child's own
# rusage: its max RSS then starts from ~10 MB, not from this process's size.
MEASURE = """\
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[1:])
t = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"bench-rusage {u.ru_maxrss} {t} {u.ru_utime + u.ru_stime}", flush=True)
sys.exit(rc)
"""


def run_measured(argv: Sequence[str | Path], *, env: dict[str, str], timeout: float) -> Run:
    """`run`, with the max RSS, wall and CPU time of that child alone (getrusage)."""
    result = run([sys.executable, "-S", "-c", MEASURE, *argv], env=env, timeout=timeout)
    head, _, last = result.stdout.rstrip("\n").rpartition("\n")
    _, rss, seconds, cpu = last.split()
    return Run(float(seconds), float(cpu), int(rss), result.returncode, head, result.stderr)


def clean_env() -> dict[str, str]:
    # The developer's own NEWSLETTER_* variables must not change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    # An installed package has its bytecode cached; a machine that forbids writing it would
    # time the compilation of every module at each start instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # A real newsletter has one, and send refuses to mail without it.
    env["NEWSLETTER_POSTAL_ADDRESS"] = "Cœur sur Paris, 12 rue de la Roquette, 75011 Paris"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """smtp-sink on 127.0.0.1: accepts every message and throws it away; counts them (-c)."""

    def __init__(self, tmp: Path, log: str = "smtp-sink.out") -> None:
        self.log = tmp / log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> Sink:
        for _ in range(3):  # another process may take the free port before the sink binds it
            self.port = free_port()
            argv = [str(SMTP_SINK), "-c"]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]  # it refuses to keep root privileges
            argv += [f"127.0.0.1:{self.port}", "256"]
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._ready():
                return self
            self._stop()
        raise ChildFailed(f"smtp-sink did not start: {self.log.read_text(errors='replace')}")

    def _ready(self) -> bool:
        for _ in range(50):  # up to ~5 s
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(512).startswith(b"220"):
                        conn.sendall(b"QUIT\r\n")
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    def messages(self) -> int:
        """The sink's own count of messages received so far (its -c counter)."""
        found = re.findall(rb"mesg=(\d+)", self.log.read_bytes()[-4096:])
        return int(found[-1]) if found else 0

    def wait_count(self, expected: int) -> int:
        for _ in range(20):  # the counter is written when '.' is acknowledged: ~at once
            got = self.messages()
            if got >= expected:
                return got
            time.sleep(0.05)
        return self.messages()

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __exit__(self, *exc: object) -> None:
        self._stop()


# -- the sample folder and the list ------------------------------------------------------------


def make_root(tmp: Path, env: dict[str, str], budget: Budget) -> Path:
    root = tmp / "letter"
    root.mkdir()
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
    run([NEWSLETTER_BIN, "build-issue", ISSUE_ID, "--root", root], env=env,
        timeout=budget.timeout(120))
    return root


def _ascii(text: str) -> str:
    text = text.replace("œ", "oe").replace("ß", "ss").replace("’", "")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def subscriber_rows(count: int) -> Iterator[tuple[str, str, str, str]]:
    """`count` distinct subscribed rows: (email, name, status, ville), generated, not stored."""
    firsts = [(n, _ascii(n)) for n in FIRST_NAMES]
    lasts = [(n, _ascii(n)) for n in LAST_NAMES]
    for i in range(count):
        first, first_a = firsts[i % len(firsts)]
        last, last_a = lasts[(i // len(firsts)) % len(lasts)]
        # Every 11th name is "Last, First" (a quoted CSV field with a comma).
        name = f"{last}, {first}" if i % 11 == 0 else f"{first} {last}"
        email = f"{first_a}.{last_a}.{i}@{DOMAINS[i % len(DOMAINS)]}"
        yield email, name, "subscribed", TOWNS[i % len(TOWNS)]


def write_subscribers(path: Path, count: int) -> None:
    """Streams the CSV to disk: a million rows never sit in memory."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("email", "name", "status", "ville"))
        writer.writerows(subscriber_rows(count))


# -- (1) throughput -------------------------------------------------------------------------


def send_env(base: dict[str, str], port: int, concurrency: int) -> dict[str, str]:
    return {
        **base,
        "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(port),
        "NEWSLETTER_SMTP_TLS": "none",
        "NEWSLETTER_SMTP_CONCURRENCY": str(concurrency),
        # smtp-source -d keeps each connection for all its messages: so does the send here.
        "NEWSLETTER_MAX_PER_CONNECTION": "0",
        "NEWSLETTER_RATE_PER_SECOND": "0",
    }


def newsletter_send(
    root: Path, subscribers: Path, count: int, env: dict[str, str], sink: Sink | list[Sink],
    budget: Budget,
) -> Run:
    sinks = sink if isinstance(sink, list) else [sink]
    shutil.rmtree(root / "state", ignore_errors=True)  # a fresh journal: everyone is pending
    # ... and no marker of an earlier send (else `send` refuses a re-send without --resend)
    (root / "build" / ISSUE_ID / "sent.json").unlink(missing_ok=True)
    before = [s.messages() for s in sinks]
    result = run(
        [NEWSLETTER_BIN, "send", ISSUE_ID, "--root", root, "--subscribers", subscribers],
        env=env, timeout=budget.timeout(180),
    )
    sent = re.search(r"^Sent \S+: (\d+) sent, (\d+) failed", result.stdout, re.MULTILINE)
    if sent is None or int(sent[1]) != count:
        raise ChildFailed(f"newsletter send did not send {count}:\n{result.stdout[-500:]}")
    received = sum(s.wait_count(b + count) - b for s, b in zip(sinks, before, strict=True))
    if len(sinks) > 1:  # wait_count waits for all of them on each sink: give the rest a moment
        time.sleep(0.1)
        received = sum(s.messages() - b for s, b in zip(sinks, before, strict=True))
    if received != count:
        raise ChildFailed(f"smtp-sink received {received} messages from newsletter, not {count}")
    return result


def relays_env(base: dict[str, str], sinks: list[Sink], concurrency: int) -> dict[str, str]:
    """Two smtp-sinks as two relays of equal weight, `concurrency` connections in all."""
    relays = [
        {"name": f"sink{i}", "host": "127.0.0.1", "port": s.port, "tls": "none",
         "concurrency": concurrency // len(sinks)}
        for i, s in enumerate(sinks)
    ]
    return {**send_env(base, sinks[0].port, concurrency),
            "NEWSLETTER_SMTP_RELAYS": json.dumps(relays)}


def source_send(eml_lf: Path, count: int, concurrency: int, sink: Sink, budget: Budget) -> float:
    before = sink.messages()
    result = run(
        [SMTP_SOURCE, "-d", "-s", str(concurrency), "-m", str(count), "-f", SENDER,
         "-t", "lecteur@example.com", "-M", "localhost", "-F", eml_lf,
         f"127.0.0.1:{sink.port}"],
        env=clean_env(), timeout=budget.timeout(120),
    )
    received = sink.wait_count(before + count) - before
    if received != count:
        raise ChildFailed(f"smtp-sink received {received} messages from smtp-source, not {count}")
    return result.seconds


def bench_throughput(
    root: Path, tmp: Path, *, count: int, repeat: int, budget: Budget,
    variants_wanted: Sequence[str] = VARIANTS, baseline: Path | None = None, steady: int = 0,
) -> None:
    print(f"(1) messages/s, {count:,} recipients of {ISSUE_ID}, into smtp-sink on 127.0.0.1; "
          f"whole processes, median of {repeat}, alternated")
    if not (SMTP_SINK.exists() and SMTP_SOURCE.exists()):
        print("    skipped: /usr/sbin/smtp-sink or smtp-source missing (apt-get install postfix)")
        return
    subscribers = tmp / f"subscribers-{count}.csv"
    write_subscribers(subscribers, count)
    big = tmp / f"subscribers-{steady}.csv"
    if steady:
        write_subscribers(big, steady)
    one = tmp / "subscribers-1.csv"
    write_subscribers(one, 1)
    eml = root / "build" / ISSUE_ID / "email.eml"
    # smtp-source reads -F line by line and ends each line with CRLF itself: give it LF lines,
    # so that the same bytes go over the wire as from the send.
    eml_lf = tmp / "email-lf.eml"
    eml_lf.write_bytes(eml.read_bytes().replace(b"\r\n", b"\n"))
    base = clean_env()
    keys = write_dkim_keys(tmp)
    # (label, concurrency, DKIM key or None): DKIM on and off are measured in the same run.
    named = {
        **{str(c): (str(c), c, None) for c in CONCURRENCIES},
        "rsa": ("16+dkim rsa", 16, keys["rsa"]),
        "ed": ("16+dkim ed", 16, keys["ed25519"]),
        "relays": ("16, 2 relays", 16, None),
    }
    variants = [named[v] for v in VARIANTS if v in named and v in variants_wanted]
    if "procs" in variants_wanted:  # NEWSLETTER_SEND_PROCESSES=2, unsigned and RSA
        variants += [("16, 2 procs", 16, None), ("16+dkim rsa, 2 procs", 16, keys["rsa"])]
    if baseline is not None:  # the same variants, with the code of another tree, in this run
        variants += [(f"{label} before", c, key) for label, c, key in variants
                     if not label.endswith(("2 relays", "2 procs"))]
    ours: dict[str, list[Run]] = {v[0]: [] for v in variants}
    theirs: dict[str, list[float]] = {v[0]: [] for v in variants}
    # The same rows with `steady` recipients: the rate between the two sizes is the speed
    # once started, for both tools (what a list large enough for speed to matter sees).
    ours_big: dict[str, list[Run]] = {v[0]: [] for v in variants}
    theirs_big: dict[str, list[float]] = {v[0]: [] for v in variants}
    fixed: list[float] = []
    with Sink(tmp) as sink, Sink(tmp, "smtp-sink-2.out") as sink2:
        try:
            for r in range(repeat):
                for i, (label, c, key) in enumerate(variants):
                    two = label.endswith("2 relays")
                    env = (relays_env(base, [sink, sink2], c) if two
                           else send_env(base, sink.port, c))
                    if label.endswith("2 procs"):
                        env["NEWSLETTER_SEND_PROCESSES"] = "2"
                    if label.endswith(" before") and baseline is not None:
                        env["PYTHONPATH"] = str(baseline)
                    if key is not None:
                        env.update(NEWSLETTER_DKIM_KEY_FILE=str(key),
                                   NEWSLETTER_DKIM_SELECTOR="bench")
                    # Alternate who goes first, so that neither always meets a warmer machine.
                    order = ("ours", "theirs") if (r + i) % 2 == 0 else ("theirs", "ours")
                    sizes = [(count, subscribers, ours, theirs)]
                    if steady and _steady_row(label):
                        sizes.append((steady, big, ours_big, theirs_big))
                    for n, path, mine, other in sizes:
                        for who in order:
                            if who == "ours":
                                mine[label].append(newsletter_send(
                                    root, path, n, env, [sink, sink2] if two else sink, budget))
                            else:
                                other[label].append(source_send(eml_lf, n, c, sink, budget))
                fixed.append(newsletter_send(
                    root, one, 1, send_env(base, sink.port, 1), sink, budget).seconds)
        except OutOfTime:
            print(f"    (budget reached after {len(fixed)} complete repeat(s); "
                  "medians of what ran)")
    size = eml.stat().st_size / 1024
    fixed_s = statistics.median(fixed) if fixed else 0.0
    print(f"    {'conc':>21}  {'newsletter':>17}  {'cpu/wall':>8}  {'smtp-source':>17}  "
          f"{'ratio':>5}  {'newsletter w/o fixed cost':>25}  {'cpu µs/msg':>10}")
    for label, _c, _key in variants:
        if not ours[label] or not theirs[label]:
            continue
        t_ours = statistics.median(r.seconds for r in ours[label])
        busy = statistics.median(r.cpu_seconds / r.seconds for r in ours[label])
        # CPU per message (the send and its worker processes): what a loaded box changes least.
        cpu_us = statistics.median(r.cpu_seconds for r in ours[label]) / count * 1e6
        t_theirs = statistics.median(theirs[label])
        ratio = t_theirs / t_ours
        target = target_verdict(label, ratio)
        net = count / (t_ours - fixed_s) if fixed and t_ours > fixed_s else float("nan")
        print(f"    {label:>21}  {count / t_ours:7.0f}/s {t_ours:6.2f} s  {busy:8.0%}  "
              f"{count / t_theirs:7.0f}/s {t_theirs:6.2f} s  {ratio:5.2f}  "
              f"{net:15.0f}/s  {cpu_us:7.0f}{target}")
    if fixed:
        print(f"    fixed cost of a send process (1 recipient, start-up + list check + journal): "
              f"{fixed_s:.2f} s")
    if steady:
        print_steady(variants, count, steady, ours, theirs, ours_big, theirs_big)
    print(f"    message {size:.1f} KB; both reuse each connection for all its messages; "
          "smtp-source speaks HELO, newsletter EHLO + MAIL SIZE; +dkim: every message signed "
          "(RSA 2048 or Ed25519), smtp-source sends the same unsigned bytes")


def target_verdict(label: str, ratio: float) -> str:
    """Issue 14's verdict for a row's ratio to smtp-source, or "" for rows without a target."""
    if label not in TARGETS:
        return ""
    goal, stretch = TARGETS[label]
    met = "stretch met" if ratio >= stretch else "ok" if ratio >= goal else "MISSED"
    return f"  target >= {goal} (stretch {stretch}): {met}"


def _steady_row(label: str) -> bool:
    """Rows also timed with the --steady list: concurrency 16, one relay, one process."""
    return label.removesuffix(" before") in ("16", "16+dkim rsa", "16+dkim ed")


def print_steady(
    variants: Sequence[tuple[str, int, Path | None]], count: int, steady: int,
    ours: dict[str, list[Run]], theirs: dict[str, list[float]],
    ours_big: dict[str, list[Run]], theirs_big: dict[str, list[float]],
) -> None:
    """The speed once started: (steady - count) messages over the difference of the median
    times at the two sizes, for each tool; start-up (Python's imports, the list check, the
    journal) and the last connections' goodbyes cancel out."""
    extra = steady - count
    print(f"    at {steady:,} recipients, and the steady rate: the {extra:,} messages between "
          f"{count:,} and {steady:,}, over the difference of the median times")
    print(f"    {'conc':>21}  {'newsletter':>17}  {'smtp-source':>17}  {'ratio':>5}  "
          f"{'steady newsletter':>17}  {'steady smtp-source':>18}  {'ratio':>5}")
    for label, _c, _key in variants:
        if not (ours_big[label] and theirs_big[label] and ours[label] and theirs[label]):
            continue
        t_ours = statistics.median(r.seconds for r in ours_big[label])
        t_theirs = statistics.median(theirs_big[label])
        d_ours = t_ours - statistics.median(r.seconds for r in ours[label])
        d_theirs = t_theirs - statistics.median(theirs[label])
        if d_ours <= 0 or d_theirs <= 0:
            continue
        ratio = d_theirs / d_ours
        target = target_verdict(label, ratio)
        print(f"    {label:>21}  {steady / t_ours:7.0f}/s {t_ours:6.2f} s  "
              f"{steady / t_theirs:7.0f}/s {t_theirs:6.2f} s  {t_theirs / t_ours:5.2f}  "
              f"{extra / d_ours:15.0f}/s  {extra / d_theirs:16.0f}/s  {ratio:5.2f}{target}")


def write_dkim_keys(tmp: Path) -> dict[str, Path]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    out: dict[str, Path] = {}
    for kind, key in (
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
    ):
        path = tmp / f"dkim-{kind}.pem"
        path.write_bytes(
            key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
        )
        out[kind] = path
    return out


# -- (2) personalize() ------------------------------------------------------------------------


def per_call_us(call: Callable[[Any], object], items: Sequence[Any], warm: int = 50) -> list[float]:
    """Microseconds of each call of call(item), after a few untimed warm-up calls."""
    for item in items[:warm]:
        call(item)
    clock = time.perf_counter_ns
    out: list[float] = []
    for item in items:
        t0 = clock()
        call(item)
        out.append((clock() - t0) / 1000)
    return out


def bench_personalize(root: Path, *, calls: int) -> None:
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import formatdate
    from html import escape

    from newsletter.compose.render import PLACEHOLDER_RE
    from newsletter.layout import Layout
    from newsletter.manifest import Manifest
    from newsletter.send.message import MessageTemplate
    from newsletter.send.subscribers import Subscriber
    from newsletter.settings import load_settings

    layout = Layout.at(root)
    settings = load_settings(layout)
    build_dir = layout.build_dir(ISSUE_ID)
    template = MessageTemplate.from_build(build_dir, settings=settings)
    subscribers = [
        Subscriber(email=email, name=name, fields={"ville": ville})
        for email, name, _, ville in subscriber_rows(calls)
    ]
    html = (build_dir / "email.html").read_text(encoding="utf-8")
    text = (build_dir / "email.txt").read_text(encoding="utf-8")
    subject = Manifest.read(build_dir).subject

    def stdlib(sub: Subscriber) -> bytes:
        values = template.values(sub)
        msg = EmailMessage()
        msg["From"] = settings.sender
        msg["To"] = Address(sub.name, addr_spec=sub.email)
        msg["Subject"] = subject
        msg["Date"] = formatdate()
        msg["Message-ID"] = template.message_id(sub)
        msg["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
        msg.set_content(PLACEHOLDER_RE.sub(lambda m: values.get(m[1], ""), text))
        msg.add_alternative(
            PLACEHOLDER_RE.sub(lambda m: escape(values.get(m[1], "")), html), subtype="html"
        )
        return msg.as_bytes(policy=SMTP)

    ours = per_call_us(template.personalize, subscribers)
    n_std = max(calls // 10, 20)
    theirs = per_call_us(stdlib, subscribers[:n_std], warm=10)
    ours_us, theirs_us = statistics.median(ours), statistics.median(theirs)
    size = len(template.personalize(subscribers[0])) / 1024
    verdict = "ok" if ours_us <= TARGET_PERSONALIZE_US else "ABOVE TARGET"
    print(f"(2) per message, {ISSUE_ID} ({size:.1f} KB), median over distinct recipients")
    print(f"    personalize()                    {ours_us:8.1f} µs  "
          f"(mean {statistics.fmean(ours):.1f}, p90 {statistics.quantiles(ours, n=10)[-1]:.1f} µs, "
          f"{len(ours):,} calls; "
          f"target <= {TARGET_PERSONALIZE_US:.0f} µs: {verdict})")
    print(f"    stdlib EmailMessage + as_bytes   {theirs_us:8.1f} µs  ({len(theirs):,} calls)")
    print(f"    ratio personalize / stdlib       {ours_us / theirs_us:8.3f}")
    try:
        from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
    except ImportError:
        return
    data = template.personalize(subscribers[0])

    def prepare(_: object) -> bytes:
        # What SMTPProtocol.execute_data_command does to every message before writing it.
        return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"

    prep = statistics.median(per_call_us(prepare, range(min(calls, 2000))))
    from newsletter.send.transport import wire_format

    ours = statistics.median(per_call_us(lambda _: wire_format(data), range(2000)))
    print(f"    aiosmtplib data() preparation    {prep:8.1f} µs  (its regexes; transport.py "
          "skips them: messages are wire-ready)")
    print(f"    transport.wire_format() check    {ours:8.1f} µs  (for bytes not from message.py)")


def bench_transactions(root: Path, tmp: Path, *, count: int, repeat: int) -> None:
    """(2b) The transaction layer alone, in this process, into smtp-sink over 16 connections:
    aiosmtplib's `sendmail` against `SmtpTransport` (aiosmtplib opens, wire.py transacts)."""
    import aiosmtplib

    from newsletter.send.transport import SmtpTransport
    from newsletter.settings import Settings

    if not SMTP_SINK.exists():
        return
    data = (root / "build" / ISSUE_ID / "email.eml").read_bytes()
    per_connection = count // 16

    async def with_aiosmtplib(port: int) -> None:
        async def one() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            await smtp.connect()
            for i in range(per_connection):
                await smtp.sendmail(SENDER, [f"lecteur{i}@example.com"], data)
            await smtp.quit()

        await asyncio.gather(*(one() for _ in range(16)))

    async def with_wire(port: int) -> None:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none",
                            max_per_connection=0)

        async def one() -> None:
            transport = SmtpTransport(settings)
            for i in range(per_connection):
                out = await transport.send(SENDER, f"lecteur{i}@example.com", data,
                                           wire_ready=True)
                assert out.code == 250, out
            await transport.close()

        await asyncio.gather(*(one() for _ in range(16)))

    runs: dict[str, list[tuple[float, float]]] = {"aiosmtplib": [], "wire.py": []}
    with Sink(tmp, "smtp-sink-transactions.out") as sink:
        for _ in range(repeat):
            for name, fn in (("aiosmtplib", with_aiosmtplib), ("wire.py", with_wire)):
                before, cpu = time.perf_counter(), time.process_time()
                asyncio.run(fn(sink.port))
                runs[name].append((time.perf_counter() - before, time.process_time() - cpu))
    n = per_connection * 16
    cpu_us = {k: statistics.median(c for _, c in v) / n * 1e6 for k, v in runs.items()}
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        print(f"    {name + ' transactions':<32} {cpu_us[name]:8.1f} µs CPU a message  "
              f"({n / wall:,.0f}/s, {n:,} messages, 16 connections into smtp-sink)")
    print(f"    ratio wire.py / aiosmtplib       {cpu_us['wire.py'] / cpu_us['aiosmtplib']:8.3f}")


# -- (3) memory -----------------------------------------------------------------------------------


def bench_memory(root: Path, tmp: Path, *, sizes: Sequence[int], budget: Budget) -> None:
    print(f"(3) `newsletter send {ISSUE_ID} --dry-run`: max RSS of the process, and its time")
    print(f"    {'rows':>10}  {'max RSS':>9}  {'time':>8}  {'rows/s':>8}  {'CSV':>8}")
    base = clean_env()
    measured: list[tuple[int, Run]] = []
    for rows in sizes:
        path = tmp / f"subscribers-{rows}.csv"
        try:
            if not path.exists():
                write_subscribers(path, rows)
            result = run_measured(
                [NEWSLETTER_BIN, "send", ISSUE_ID, "--root", root, "--subscribers", path,
                 "--dry-run"],
                env=base, timeout=budget.timeout(360),
            )
        except (OutOfTime, ChildFailed) as exc:
            print(f"    {rows:>10,}  skipped: {exc or 'budget reached'}")
            continue
        finally:
            csv_mb = path.stat().st_size / 1e6 if path.exists() else 0.0
            path.unlink(missing_ok=True)
        reported = re.search(r"([\d,]+) message\(s\) would be sent", result.stdout)
        if reported is None or int(reported[1].replace(",", "")) != rows:
            print(f"    warning: the dry run did not report {rows:,} messages: "
                  f"{result.stdout.strip().splitlines()[-1:]}")
        measured.append((rows, result))
        mb = result.max_rss_kb / 1024
        flag = ""
        if rows == max(sizes):
            verdict = "ok" if mb < TARGET_RSS_MB else "ABOVE"
            flag = f"  target < {TARGET_RSS_MB:.0f} MB: {verdict}"
        print(f"    {rows:>10,}  {mb:6.1f} MB  {result.seconds:6.1f} s  "
              f"{rows / result.seconds:8,.0f}  {csv_mb:5.1f} MB{flag}")
    if len(measured) >= 2:
        (small, a), (big, b) = measured[0], measured[-1]
        growth = (b.max_rss_kb - a.max_rss_kb) * 1024 / (big - small)
        print(f"    growth: {growth:.0f} bytes of RSS per row "
              f"({(b.seconds - a.seconds) / (big - small) * 1e6:.1f} µs per row)")


# -- --profile ------------------------------------------------------------------------------------


def bench_profile(
    root: Path, tmp: Path, *, count: int, budget: Budget, dkim: str = "unsigned"
) -> None:
    concurrency = CONCURRENCIES[-1]
    print(f"(4) where the time goes: one send of {count:,} at concurrency {concurrency}, "
          f"{dkim}")
    subscribers = tmp / f"subscribers-{count}.csv"
    if not subscribers.exists():
        write_subscribers(subscribers, count)
    send_argv: list[str | Path] = [
        "send", ISSUE_ID, "--root", root, "--subscribers", subscribers]
    py_spy = BIN / "py-spy" if (BIN / "py-spy").exists() else shutil.which("py-spy")
    shutil.rmtree(root / "state", ignore_errors=True)
    (root / "build" / ISSUE_ID / "sent.json").unlink(missing_ok=True)
    with Sink(tmp) as sink:
        env = send_env(clean_env(), sink.port, concurrency)
        if dkim != "unsigned":
            env.update(NEWSLETTER_DKIM_KEY_FILE=str(write_dkim_keys(tmp)[dkim]),
                       NEWSLETTER_DKIM_SELECTOR="bench")
        if py_spy is None:
            out = tmp / "send.prof"
            result = run([sys.executable, "-m", "cProfile", "-o", out, NEWSLETTER_BIN,
                          *send_argv], env=env, timeout=budget.timeout(240))
            _print_cprofile(out, result.seconds, count)
            return
        rate = 200  # --nonblocking at a higher rate loses samples on 2 cores
        out = tmp / "send.stacks"
        result = run(
            [py_spy, "record", "--idle", "--threads", "--rate", str(rate),
             "--format", "raw", "-o", out, "--", NEWSLETTER_BIN, *send_argv],
            env=env, timeout=budget.timeout(240),
        )
    _print_stacks(out, 1 / rate, result.seconds, count)


#: Where a main-thread sample goes: the first bucket, in this order, with a frame in its stack
#: whose function name contains one of the names (the leaf is the last frame).
BUCKETS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    # (label, function names, leaf only)
    ("aiosmtplib data(): line-ending + dot regexes",
     ("normalize_message_line_endings", "SMTPProtocol.execute_data_command"), True),
    ("socket writes", ("_SelectorSocketTransport.write",), True),
    ("idle: waiting in epoll", ("EpollSelector.select",), True),
    ("socket reads + reply parsing", ("_read_ready",), False),
    ("personalize()", ("MessageTemplate.personalize",), False),
    ("DKIM: body hash + headers (event loop)", ("Signer.prepare", "IssueSigner.body_hash"), False),
    ("DKIM: key operation", ("DkimKey.sign",), False),
    ("DKIM: trips to the signing pool", ("OffLoopSigner", "_results"), False),
    ("list: read + validate rows", ("unique_mailable", "summarize", "read_rows"), False),
    ("SMTP MAIL + RCPT (address parsing)", ("SMTP.mail", "SMTP.rcpt"), False),
    ("SMTP DATA, the rest", ("SMTP.data",), False),
    ("connect / quit", ("SmtpTransport._connect", "SmtpTransport.close"), False),
    ("journal, event-loop side", ("GroupCommitter", "Journal"), False),
    ("delivery loop, the rest", ("deliver",), False),
)


def _bucket(frames: list[str]) -> str:
    names = [f.split(" (")[0] for f in frames]
    for label, wanted, leaf_only in BUCKETS:
        candidates = names[-1:] if leaf_only else names
        if any(w in n for n in candidates for w in wanted):
            return label
    return "other: " + names[-1]


def _print_stacks(path: Path, sample_s: float, wall: float, count: int) -> None:
    """The main thread's samples by bucket, from py-spy's collapsed stacks (--threads)."""
    main_total = 0
    journal = 0
    buckets: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n_text = line.rpartition(" ")
        thread, *frames = stack.split(";")
        n = int(n_text)
        if "Journal.commit" in stack:
            journal += n
        if "MainThread" not in thread or not frames:
            continue
        main_total += n
        buckets[_bucket(frames)] += n
        selfs[frames[-1]] += n

    def fig(n: int) -> str:
        return (f"{n * sample_s * 1000:6.0f} ms {n / max(main_total, 1):4.0%} "
                f"{n * sample_s / count * 1e6:6.1f} µs/msg")

    print(f"    py-spy --idle: {wall:.2f} s wall under the profiler; the main thread (event loop) "
          f"{fig(main_total)}")
    print("    (py-spy attaches after the interpreter starts: start-up is the fixed cost of (1))")
    for label, n in buckets.most_common():
        if n * 100 >= main_total or not label.startswith("other"):
            print(f"      {label:<44} {fig(n)}")
    print(f"    thread pool, Journal.commit (SQLite, synchronous=FULL), alongside: "
          f"{journal * sample_s * 1000:.0f} ms, {journal * sample_s / count * 1e6:.0f} µs/msg")
    print("    main thread, self time by source line (top 8):")
    for frame, n in selfs.most_common(8):
        print(f"      {fig(n)}  {frame[:80]}")


def _print_cprofile(path: Path, wall: float, count: int) -> None:
    import pstats

    print(f"    cProfile (py-spy not found), {wall:.2f} s wall under the profiler; top 15 by "
          "own time:")
    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in rows[:15]:
        print(f"      {tottime * 1000:7.0f} ms {tottime / count * 1e6:7.1f} µs/msg  "
              f"cum {cumtime * 1000:7.0f} ms  {ncalls:>7}  {func} ({Path(file).name}:{line})")


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="pairs per concurrency in (1), median taken (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 300 recipients, 1 repeat, 20,000 rows for memory")
    parser.add_argument("--profile", nargs="?", const="unsigned",
                        choices=("unsigned", "rsa", "ed25519"),
                        help="add one send at concurrency 16 under py-spy (or cProfile), "
                        "unsigned (the default) or signed with an RSA or Ed25519 key")
    parser.add_argument("--budget", type=float, default=450,
                        help="seconds after which no new child is started (default 450)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"what (1) measures, of {','.join(VARIANTS)} (default: all)")
    parser.add_argument("--baseline", type=Path,
                        help="a source tree of the package (e.g. `git archive main`): each "
                        "variant also runs with its code (PYTHONPATH), as '<variant> before'")
    parser.add_argument("--steady", type=int, default=15_000,
                        help="(1) also sends this many recipients at concurrency 16 (unsigned, "
                        "RSA, Ed25519), for the rate once started (default 15,000; 0: not)")
    parser.add_argument("--skip", action="append", default=[], choices=("1", "2", "3"),
                        help="leave out a part (may be repeated)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not NEWSLETTER_BIN.exists():
        sys.exit(f"{NEWSLETTER_BIN} not found: run this with the venv's python")
    count, repeat, calls, sizes = 3000, args.repeat, 5000, (10_000, 1_000_000)
    steady = args.steady
    if args.quick:
        count, repeat, calls, sizes = 300, 1, 500, (2_000, 20_000)
        steady = min(steady, 1500)
    if steady and steady <= count:
        parser.error(f"--steady must be more than the {count:,} recipients of (1), or 0")
    # The in-process part loads settings like the CLI does: from the temporary root only.
    for name in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
        del os.environ[name]
    budget = Budget(args.budget)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            root = make_root(tmp, clean_env(), budget)
            if "1" not in args.skip:
                bench_throughput(root, tmp, count=count, repeat=repeat, budget=budget,
                                 variants_wanted=args.variants.split(","),
                                 baseline=args.baseline, steady=steady)
            if "2" not in args.skip:
                bench_personalize(root, calls=calls)
                bench_transactions(root, tmp, count=count, repeat=repeat)
            if "3" not in args.skip:
                bench_memory(root, tmp, sizes=sizes, budget=budget)
            if args.profile:
                bench_profile(root, tmp, count=count, budget=budget, dkim=args.profile)
        except ChildFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OutOfTime:
            print(f"stopped: --budget {args.budget:.0f} s reached", file=sys.stderr)
            return 1
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
