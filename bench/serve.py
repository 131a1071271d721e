"""Benchmark `newsletter serve`: 1,000 one-click unsubscribes against /healthz, same server.

    .venv/bin/python bench/serve.py [--readers 1000] [--concurrency 50] [--repeat 3] [--budget 120]

A temporary copy of the sample folder gets a list of N readers (French names, an extra
`ville` column); a `newsletter serve` process listens on a free port of 127.0.0.1. An httpx
client then makes, C at a time:

(1) N GET /healthz: the baseline (the same server, the same client, the same run);
(2) N RFC 8058 POSTs /unsubscribe?token=<token> (body List-Unsubscribe=One-Click), one per
    reader, each token as the emails carry it.

Every POST must answer 200 and be applied: the list file shows N `unsubscribed` rows and
state/changes.db holds N applied changes (exit 1 otherwise). Printed: requests/s and p50/p99
latency of both, and the ratios unsubscribe/healthz (goal: requests/s ratio >= 0.5), over
--repeat runs (3), each with a fresh folder and server, and the median ratios. Each run is
bounded by --budget seconds; the server is stopped at the end of each.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from smtpserver import free_port  # noqa: E402

from newsletter.send.subscribers import unsubscribe_token  # noqa: E402

SECRET = "bench-secret-not-for-production"


def make_folder(root: Path, readers: int) -> list[str]:
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    emails = [f"lecteur.{i:05d}@exemple-{i % 7}.fr" for i in range(readers)]
    with open(root / "subscribers.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "status", "ville"])
        for i, e in enumerate(emails):
            w.writerow([e, f"Hélène Lefèvre {i}", "subscribed", "Paris, 11e"])
    return emails


Run = tuple[float, list[float], list[int]]  # seconds, latencies, status codes


async def hammer(
    client: httpx.AsyncClient, requests: list[tuple[str, str]], concurrency: int
) -> Run:
    """Each (method, url) once, `concurrency` at a time: (seconds, latencies, statuses)."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    codes: list[int] = []

    async def worker() -> None:
        while queue:
            method, url = queue.pop()
            t = time.perf_counter()
            try:
                if method == "POST":
                    r = await client.post(url, data={"List-Unsubscribe": "One-Click"})
                else:
                    r = await client.get(url)
            except httpx.TransportError as exc:  # counted as lost (0), never retried
                print(f"  {method} {url[:40]}: {type(exc).__name__}", file=sys.stderr)
                codes.append(0)
                continue
            latencies.append(time.perf_counter() - t)
            codes.append(r.status_code)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, codes


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def measure(base: str, emails: list[str], concurrency: int, budget: float) -> dict[str, Run]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Warm the connections and the server's token index, outside the timings.
        await hammer(client, [("GET", "/healthz")] * concurrency, concurrency)
        health = await asyncio.wait_for(
            hammer(client, [("GET", "/healthz")] * len(emails), concurrency), budget / 2
        )
        posts = [("POST", f"/unsubscribe?token={unsubscribe_token(e, SECRET)}") for e in emails]
        unsub = await asyncio.wait_for(hammer(client, posts, concurrency), budget / 2)
    return {"healthz": health, "unsubscribe": unsub}


def one_run(readers: int, concurrency: int, budget: float) -> tuple[dict[str, Run], int, int]:
    """A fresh folder and server: (the timings, rows unsubscribed, changes applied)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    root = tmp / "letter"
    root.mkdir()
    emails = make_folder(root, readers)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_SECRET_KEY=SECRET, NEWSLETTER_PUBLIC_URL=f"http://127.0.0.1:{port}",
        NEWSLETTER_POSTAL_ADDRESS="1 rue de l’Exemple, 75011 Paris",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--root", str(root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("serve did not start")
            time.sleep(0.05)
        results = asyncio.run(measure(base, emails, concurrency, budget))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with open(root / "subscribers.csv", encoding="utf-8", newline="") as f:
        unsubscribed = sum(1 for r in csv.DictReader(f) if r["status"] == "unsubscribed")
    db = sqlite3.connect(root / "state" / "changes.db")
    applied = db.execute("SELECT COUNT(*) FROM changes WHERE applied_at IS NOT NULL").fetchone()[0]
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return results, unsubscribed, int(applied)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median ratio is kept")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per run, at most")
    args = parser.parse_args()
    print(f"{args.readers} readers, {args.concurrency} at a time, one server process per run")
    ratios: list[tuple[float, float, float]] = []
    good = True
    for n in range(args.repeat):
        results, unsubscribed, applied = one_run(args.readers, args.concurrency, args.budget)
        rates = {}
        print(f"run {n + 1}:")
        for name, (seconds, lat, codes) in results.items():
            rates[name] = (len(codes) / seconds, pct(lat, 50), pct(lat, 99))
            ok = sum(1 for c in codes if c == 200)
            good = good and ok == len(codes)
            print(
                f"  {name:12s} {rates[name][0]:8.0f} req/s   p50 {rates[name][1] * 1000:6.1f} ms"
                f"   p99 {rates[name][2] * 1000:6.1f} ms   200: {ok}/{len(codes)}   "
                f"mean {statistics.mean(lat) * 1000:.1f} ms"
            )
        h, u = rates["healthz"], rates["unsubscribe"]
        ratios.append((u[0] / h[0], u[1] / h[1], u[2] / h[2]))
        print(f"  applied: {unsubscribed}/{args.readers} rows unsubscribed, {applied} changes")
        good = good and unsubscribed == applied == args.readers
    rps, p50, p99 = (statistics.median(r[i] for r in ratios) for i in range(3))
    print(
        f"median ratio unsubscribe/healthz over {args.repeat} runs: requests/s {rps:.2f} "
        f"(goal >= 0.5), p50 latency x{p50:.2f}, p99 latency x{p99:.2f}"
    )
    print("every POST answered 200 and applied" if good else "SOME POSTS FAILED OR WERE LOST")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
