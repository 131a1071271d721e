"""Benchmark `newsletter build-issue` on a 5-article issue; prints figures, asserts nothing.

    .venv/bin/python bench/build.py [--runs 7] [--warm 5]

(a) the wall time of a whole `newsletter build-issue` process against the official MJML CLI
    rendering the same email.mjml alone, alternated in one loop so that both see the same
    machine load; target: build / mjml <= 0.5.
(b) the in-process warm build, split by stage (BuildResult.timings).
(c) `newsletter --help` against `python -c pass`: what importing the CLI costs.

The MJML CLI is installed into bench/.node (gitignored) on the first run; without npm the
comparison in (a) is skipped and the rest still runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_PREFIX = REPO / "bench" / ".node"
MJML_BIN = NODE_PREFIX / "node_modules" / ".bin" / "mjml"
NEWSLETTER_BIN = Path(sys.executable).parent / "newsletter"
ISSUE_ID = "bench-5"
# Five of the six sample articles, named explicitly so no selection rule changes the count.
ARTICLES = (
    "audit-digital-petite-entreprise",
    "newsletter-mesurer-ce-qui-compte",
    "calendrier-editorial-instagram",
    "seo-local-commerces-parisiens",
    "linkedin-page-entreprise-ton-juste",
)
STAGES = ("select", "jinja2", "mjml", "inline", "text", "checks", "message", "write")
TARGET_RATIO = 0.5


def make_root(tmp: Path) -> Path:
    """A copy of the sample folder with one more issue: 5 articles, mode full."""
    root = tmp / "letter"
    root.mkdir()
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
    names = ", ".join(f'"{slug}"' for slug in ARTICLES)
    (root / "issues" / f"{ISSUE_ID}.toml").write_text(
        'subject = "Banc d’essai : cinq articles en version intégrale"\n'
        'preheader = "Un numéro plus long que d’habitude, pour mesurer la construction."\n'
        "date = 2026-12-20\n"
        "number = 99\n"
        'mode = "full"\n'
        f"articles = [{names}]\n",
        encoding="utf-8",
    )
    return root


def clean_env() -> dict[str, str]:
    # The developer's own NEWSLETTER_* variables must not change what is measured.
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}


def timed_run(argv: Sequence[str], *, env: dict[str, str]) -> float:
    """Seconds for one process, start to exit; a failure stops the benchmark with its output."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def ensure_mjml_cli() -> str | None:
    """The path of the MJML CLI, installed on first use; None (and why) when npm fails."""
    if MJML_BIN.exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    print(f"installing mjml@4 into {NODE_PREFIX.relative_to(REPO)}/ ...", flush=True)
    try:
        proc = subprocess.run(
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "mjml@4"],
            capture_output=True, text=True, timeout=300, check=False,
        )
    except subprocess.TimeoutExpired:
        return "npm install timed out after 300 s"
    if proc.returncode != 0 or not MJML_BIN.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return f"npm install failed ({proc.returncode}): " + " | ".join(tail)
    return None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def bench_process(root: Path, runs: int, env: dict[str, str]) -> None:
    build_argv = [str(NEWSLETTER_BIN), "build-issue", ISSUE_ID, "--root", str(root)]
    # One untimed build: it writes build/<id>/email.mjml for the MJML CLI and warms the disk cache.
    timed_run(build_argv, env=env)
    mjml_file = root / "build" / ISSUE_ID / "email.mjml"
    problem = ensure_mjml_cli()
    mjml_argv = [str(MJML_BIN), str(mjml_file), "-o", str(root / "mjml-cli.html")]
    if problem is None:
        timed_run(mjml_argv, env=env)  # untimed as well, for the same reason

    builds: list[float] = []
    mjmls: list[float] = []
    for _ in range(runs):
        builds.append(timed_run(build_argv, env=env))
        if problem is None:
            mjmls.append(timed_run(mjml_argv, env=env))

    size = mjml_file.stat().st_size / 1024
    print(f"(a) whole process, {len(ARTICLES)} articles (full), median of {runs} runs, alternated")
    print(f"    newsletter build-issue     {ms(statistics.median(builds))}"
          f"   (min {ms(min(builds)).strip()}, max {ms(max(builds)).strip()})")
    if problem is not None:
        print(f"    mjml CLI                   skipped: {problem}")
        return
    build_s, mjml_s = statistics.median(builds), statistics.median(mjmls)
    print(f"    mjml CLI, email.mjml alone {ms(mjml_s)}"
          f"   (min {ms(min(mjmls)).strip()}, max {ms(max(mjmls)).strip()}; {size:.0f} KB of MJML)")
    ratio = build_s / mjml_s
    verdict = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"    ratio build / mjml         {ratio:8.2f}      (target <= {TARGET_RATIO}: {verdict})")


def bench_in_process(root: Path, warm: int) -> None:
    start = time.perf_counter()
    from newsletter.compose.build import build_issue
    from newsletter.layout import Layout
    from newsletter.settings import load_settings

    import_s = time.perf_counter() - start
    layout = Layout.at(root)
    settings = load_settings(layout)
    # The cold call is what one `build-issue` process pays; it is shown, not in the median.
    start = time.perf_counter()
    cold = build_issue(layout, ISSUE_ID, settings=settings).timings
    cold_total = time.perf_counter() - start
    per_stage: dict[str, list[float]] = {}
    totals: list[float] = []
    for _ in range(warm):
        start = time.perf_counter()
        result = build_issue(layout, ISSUE_ID, settings=settings)
        totals.append(time.perf_counter() - start)
        for name in set(STAGES) | set(result.timings):
            per_stage.setdefault(name, []).append(result.timings.get(name, 0.0))

    print(f"(b) in-process build_issue(): warm = median of {warm} calls after the cold one")
    print(f"    {'stage':<26} {'warm':>11} {'cold (1st)':>13}")
    names = [*STAGES, *sorted(set(per_stage) - set(STAGES))]  # a stage added later still shows
    stage_sum = 0.0
    for name in names:
        median = statistics.median(per_stage[name])
        stage_sum += median
        print(f"    {name:<26} {ms(median)} {ms(cold.get(name, 0.0)):>13}")
    total = statistics.median(totals)
    print(f"    {'sum of stages':<26} {ms(stage_sum)} {ms(sum(cold.values())):>13}")
    print(f"    {'total (wall, whole call)':<26} {ms(total)} {ms(cold_total):>13}")
    print(f"    {'import newsletter.compose.build':<26} {'':>11} {ms(import_s):>13}")


def bench_startup(runs: int, env: dict[str, str]) -> None:
    help_argv = [str(NEWSLETTER_BIN), "--help"]
    pass_argv = [sys.executable, "-c", "pass"]
    timed_run(help_argv, env=env)
    timed_run(pass_argv, env=env)
    helps: list[float] = []
    passes: list[float] = []
    for _ in range(runs):
        helps.append(timed_run(help_argv, env=env))
        passes.append(timed_run(pass_argv, env=env))
    help_s, pass_s = statistics.median(helps), statistics.median(passes)
    print(f"(c) start-up, median of {runs} runs, alternated")
    print(f"    newsletter --help          {ms(help_s)}")
    print(f"    python -c pass             {ms(pass_s)}")
    print(f"    ratio help / bare python   {help_s / pass_s:8.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7,
                        help="process runs for (a) and (c), median taken (default 7)")
    parser.add_argument("--warm", type=int, default=5,
                        help="in-process warm builds for (b) (default 5)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warm < 1:
        parser.error("--runs and --warm must be at least 1")
    if not NEWSLETTER_BIN.exists():
        sys.exit(f"{NEWSLETTER_BIN} not found: run this with the venv's python")

    env = clean_env()
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            del os.environ[name]  # (b) runs in this process: same rule as the subprocesses
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        root = make_root(Path(tmp))
        print(f"python {sys.version.split()[0]} · {os.cpu_count()} CPUs · issue {ISSUE_ID}: "
              f"{len(ARTICLES)} of 6 sample articles, mode full")
        bench_process(root, args.runs, env)
        bench_in_process(root, args.warm)
        bench_startup(args.runs, env)
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
