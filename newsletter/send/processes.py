"""More than one core for a large send: worker processes that each own a share of the list.

    deliver_in_processes(spec, processes=N, ...)  -> DeliveryReport (the shares added up)

Process i mails the pending recipients whose address digest is i modulo N, with its own
event loop, its own connections (each relay's `concurrency` and rate divided by N, at least
one connection) and its own connection to the one journal (SQLite in WAL mode: writers from
several processes take turns). Each process journals exactly as a single send does (`sending`
committed before a message leaves, its outcome before the next one), so the crash guarantees
are the same: nobody skipped, duplicates only among the messages in flight, named by the next
run. The parent holds the journal's lock, forwards a stop (Ctrl-C) to every process, adds
their progress up for the progress line, and their reports up at the end; a process that
dies takes the send down with an error (run it again to resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import subprocess
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from newsletter.errors import DeliveryError, NewsletterError
from newsletter.layout import Layout
from newsletter.send.delivery import DeliveryReport, ProgressHook
from newsletter.send.letters import Outgoing
from newsletter.send.pipes import as_helper_process, ctrl_c_ignored, exit_with_parent
from newsletter.send.share import Share
from newsletter.send.transport import Outcome
from newsletter.settings import Settings

PROGRESS_EVERY = 0.2  # seconds between a process's progress messages


@dataclass(frozen=True)
class ShareSpec:
    """What a worker process needs to mail its share (inherited: the workers are forked)."""

    root: str
    issue_id: str
    settings: Settings
    options: Any  # run.SendOptions (not imported here: run imports this module)
    outgoing: Outgoing  # built and checked once, by the parent: the workers are forked


def _child(
    spec: ShareSpec, share: Share, conn: Connection, link: tuple[int, int], others: list[int]
) -> None:
    """A worker process (forked): its share, then its report to the parent."""
    as_helper_process()  # the parent tells us when to stop
    for fd in others:  # the other workers' pipe ends: each closes when its owner ends
        os.close(fd)
    exit_with_parent()  # a parent killed with SIGKILL: the journal names what was in flight
    try:
        report, counts = asyncio.run(_child_send(spec, share, conn, link))
        conn.send(("done", _pack(report), counts))
    except NewsletterError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:  # anything else: named, the parent stops the send with it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


async def _child_send(
    spec: ShareSpec, share: Share, conn: Connection, link: tuple[int, int]
) -> tuple[DeliveryReport, dict[str, int]]:
    from newsletter.send.share import deliver_share

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_message() -> None:
        try:
            if conn.poll() and conn.recv() == "stop":
                stop.set()
        except (EOFError, OSError):  # the parent is gone
            stop.set()
            loop.remove_reader(conn.fileno())

    loop.add_reader(conn.fileno(), on_message)
    last = 0.0

    def progress(report: DeliveryReport) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY:
            last = now
            conn.send(("progress", report.sent, report.failed, report.deferred))

    layout = Layout.at(spec.root)
    return await deliver_share(
        layout, spec.outgoing, settings=spec.settings, options=spec.options,
        share=share, stop=stop, on_progress=progress, writer_link=link,
    )


def _pack(report: DeliveryReport) -> dict[str, Any]:
    return {
        "sent": report.sent,
        "failed": report.failed,
        "deferred": report.deferred,
        "retries": report.retries,
        "suppressed": report.suppressed,
        "stopped": report.stopped,
        "sender_problem": report.sender_problem,
        "failures": [(email, tuple(outcome)) for email, outcome in report.failures],
        "by_relay": report.by_relay,
        "relay_outages": report.relay_outages,
        "unanswered": report.unanswered,
    }


def _add(total: DeliveryReport, part: dict[str, Any]) -> None:
    for name in ("sent", "failed", "deferred", "retries", "suppressed"):
        setattr(total, name, getattr(total, name) + part[name])
    total.stopped = total.stopped or part["stopped"]
    total.sender_problem = total.sender_problem or part["sender_problem"]
    total.failures += [(email, Outcome(*o)) for email, o in part["failures"]]
    for relay, n in part["by_relay"].items():
        total.by_relay[relay] = total.by_relay.get(relay, 0) + n
    total.relay_outages += [o for o in map(tuple, part["relay_outages"])
                            if o not in total.relay_outages]
    total.unanswered += part["unanswered"]


async def deliver_in_processes(
    spec: ShareSpec,
    *,
    processes: int,
    stop: asyncio.Event | None,
    on_progress: ProgressHook | None,
) -> tuple[DeliveryReport, dict[str, int]]:
    """Run `processes` worker processes over the list; their reports added up, and the
    counts of what their lists held (already done, suppressed)."""
    writer, links = _start_writer(spec, processes)
    try:
        children = _spawn(spec, processes, links)
    finally:
        for fd in (fd for link in links for fd in link):
            os.close(fd)  # the workers have theirs: the writer ends when they are done
    parent = _Parent(processes, on_progress)

    async def forward_stop() -> None:
        if stop is None:
            return
        await stop.wait()
        for _, _, conn in children:
            with contextlib.suppress(OSError):  # that one has finished already
                conn.send("stop")

    stopper = asyncio.create_task(forward_stop())
    try:
        await asyncio.gather(*(parent.follow(i, p, c) for i, p, c in children))
    finally:
        stopper.cancel()
        for _, proc, conn in children:
            conn.close()
            if proc.is_alive():
                proc.terminate()
        await _wait_writer(writer, parent)
    total = parent.total
    total.finished = total.clock.now()
    total.interrupted = stop is not None and stop.is_set()
    if parent.errors:
        raise DeliveryError(
            parent.errors[0],
            hint="run `newsletter send` again to resume (the journal is complete)",
        )
    return total, parent.counts


def _start_writer(
    spec: ShareSpec, processes: int
) -> tuple[subprocess.Popen[bytes], list[tuple[int, int]]]:
    """One journal writer for all the workers (two SQLite writers would wait on each other's
    locks), with a pair of pipes per worker; the workers' ends, (read, write) each."""
    from newsletter.send.committer import WRITER_COMMAND

    links: list[tuple[int, int]] = []
    writer_fds: list[int] = []
    for _ in range(processes):
        batches_r, batches_w = os.pipe()  # worker -> writer
        answers_r, answers_w = os.pipe()  # writer -> worker
        writer_fds += [batches_r, answers_w]
        links.append((answers_r, batches_w))
    path = Layout.at(spec.root).journal_path
    try:
        proc = subprocess.Popen(
            [*WRITER_COMMAND, str(path), "--fds", ",".join(map(str, writer_fds))],
            pass_fds=writer_fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        for fd in writer_fds:
            os.close(fd)
    return proc, links


async def _wait_writer(writer: subprocess.Popen[bytes], parent: _Parent) -> None:
    """The shared writer exits once every worker has closed its pipes; bounded."""
    try:
        code = await asyncio.wait_for(asyncio.to_thread(writer.wait), 10)
    except TimeoutError:
        writer.kill()
        code = await asyncio.to_thread(writer.wait)
    if code != 0 and not parent.errors:
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        parent.errors.append(f"the journal writer process stopped ({how})")


def _spawn(
    spec: ShareSpec, processes: int, links: list[tuple[int, int]]
) -> list[tuple[int, Any, Connection]]:
    """The worker processes, each with the parent's end of its pipe. Forked: a worker starts
    at once, with the parent's modules, settings and list checks already done."""
    ctx = multiprocessing.get_context("fork")
    children: list[tuple[int, Any, Connection]] = []
    everyone = [fd for link in links for fd in link]
    with ctrl_c_ignored():  # the workers stop when the parent tells them
        for i in range(processes):
            mine, theirs = ctx.Pipe()
            # A fork inherits every descriptor: the parent's ends of this worker's pipe and
            # of the earlier ones' too, which would hide the parent's death from them.
            others = [fd for fd in everyone if fd not in links[i]]
            others += [conn.fileno() for _, _, conn in children] + [mine.fileno()]
            proc = ctx.Process(
                target=_child, args=(spec, Share(i, processes), theirs, links[i], others),
                daemon=True,
            )
            proc.start()
            theirs.close()
            children.append((i, proc, mine))
    return children


class _Parent:
    """What the workers report, added up: live progress, the final reports, their errors."""

    def __init__(self, processes: int, on_progress: ProgressHook | None) -> None:
        self.processes = processes
        self.on_progress = on_progress
        self.total = DeliveryReport()
        self.live = DeliveryReport()
        self.counts: dict[str, int] = {}
        self.progress: dict[int, tuple[int, int, int]] = {}
        self.errors: list[str] = []

    async def follow(self, i: int, proc: Any, conn: Connection) -> None:
        while True:
            try:
                message = await asyncio.to_thread(conn.recv)
            except (EOFError, OSError):
                await asyncio.to_thread(proc.join)
                self.errors.append(
                    f"send process {i + 1} of {self.processes} died (exit code {proc.exitcode})"
                )
                return
            if message[0] == "progress":
                self._progress(i, message[1:])
                continue
            if message[0] == "done":
                _add(self.total, message[1])
                for name, n in message[2].items():
                    self.counts[name] = self.counts.get(name, 0) + n
            else:
                self.errors.append(message[1])
            await asyncio.to_thread(proc.join)
            return

    def _progress(self, i: int, counts: tuple[int, int, int]) -> None:
        self.progress[i] = counts
        if self.on_progress is not None:
            live = self.live
            live.sent, live.failed, live.deferred = (
                sum(p[k] for p in self.progress.values()) for k in range(3)
            )
            self.on_progress(live)
