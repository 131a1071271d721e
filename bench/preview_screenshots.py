"""Screenshots of `newsletter preview` in headless Chromium, and how fast an edit shows.

    .venv/bin/python bench/preview_screenshots.py [--edits 5]

Serves the sample issue 2026-11 from a temporary copy of content/, templates/ and issues/ (a
developer's own build/ is left alone) and writes into bench/out/:
  preview-2026-11-1280.png        the preview page, 1280 px wide, full page
  preview-2026-11-mobile-375.png  the 375 px email frame as the page shows it
  preview-2026-11-error-1280.png  the page while templates/email.mjml.j2 is broken
Then edits the first article's title N times and times each edit -> page reloaded with the
new title (the rebuild time the server reports is printed next to it).
Uses Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through Playwright; never downloads one.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
ISSUE = "2026-11"
ARTICLE = Path("content/articles/audit-digital-petite-entreprise.md")
TITLE = "Faire l’audit digital de sa petite entreprise en une journée"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--edits", type=int, default=5, help="timed title edits (default 5)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    from newsletter.layout import Layout
    from newsletter.settings import load_settings
    from newsletter.web.preview import serve

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsletter-preview-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "letter"
        root.mkdir()
        for name in ("content", "templates", "issues"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
        layout = Layout.at(root)
        stop = threading.Event()
        ready: queue.Queue[str] = queue.Queue()
        events: list[str] = []
        server = threading.Thread(
            target=serve,
            args=(layout, ISSUE),
            kwargs={
                "settings": load_settings(layout), "port": 0, "open_browser": False,
                "as_email": None, "subscribers_path": root / "subscribers.csv",
                "on_ready": ready.put, "on_event": events.append, "stop": stop,
            },
            daemon=True,
        )
        server.start()
        url = ready.get(timeout=30)
        print(f"preview of {ISSUE} at {url} ({events[0]})")
        try:
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(
                    str(tmp / "profile"), executable_path=str(CHROMIUM), headless=True,
                    args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
                )
                blocked: list[str] = []

                def local_only(route: Route) -> None:
                    # Nothing may leave the machine: remote images show as broken, never hang.
                    if route.request.url.startswith(url):
                        route.continue_()
                    else:
                        blocked.append(route.request.url)
                        route.abort()

                context.route("**/*", local_only)
                page = context.new_page()
                page.goto(url, wait_until="load")
                frame = page.frame_locator("iframe#desktop").locator("h1").first
                assert frame.inner_text() == TITLE, frame.inner_text()

                shot = OUT / f"preview-{ISSUE}-1280.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"  {shot.relative_to(REPO)}")
                shot = OUT / f"preview-{ISSUE}-mobile-375.png"
                page.locator("iframe#mobile").screenshot(path=str(shot))
                print(f"  {shot.relative_to(REPO)}")

                # A broken template: the banner, and the last good email still on show.
                template = root / "templates" / "email.mjml.j2"
                good = template.read_text("utf-8")
                with page.expect_event("load", timeout=5_000):
                    template.write_text(good.replace("<mj-body", "{{ nope }}<mj-body", 1))
                page.locator("#build-error").wait_for(timeout=5_000)
                shot = OUT / f"preview-{ISSUE}-error-1280.png"
                page.screenshot(path=str(shot))
                print(f"  {shot.relative_to(REPO)}")
                with page.expect_event("load", timeout=5_000):
                    template.write_text(good, "utf-8")
                page.locator("#build-error").wait_for(state="detached", timeout=5_000)

                times = time_edits(page, root / ARTICLE, args.edits, events)
                context.close()
        finally:
            stop.set()
            server.join(timeout=10)
    if times:
        print(
            f"edit -> page updated: median {statistics.median(times):.0f} ms, "
            f"min {min(times):.0f} ms, max {max(times):.0f} ms over {len(times)} edit(s)"
        )
    if blocked:
        print(f"remote requests blocked: {len(blocked)} (first: {blocked[0]})")
    return 0


def time_edits(page: Page, article: Path, n: int, events: list[str]) -> list[float]:
    """Edit the title `n` times; each time: write -> the reloaded page's frames show it."""
    times: list[float] = []
    current = TITLE
    for i in range(1, n + 1):
        new = f"{TITLE} ({i})"
        text = article.read_text("utf-8")
        before = len(events)
        with page.expect_event("load", timeout=5_000):
            start = time.perf_counter()
            article.write_text(text.replace(f'title: "{current}"', f'title: "{new}"', 1))
        for frame in ("desktop", "mobile"):
            shown = page.frame_locator(f"iframe#{frame}").locator("h1").first.inner_text()
            assert shown == new, (frame, shown)
        elapsed = (time.perf_counter() - start) * 1000
        times.append(elapsed)
        server_side = "; ".join(e.split(" (")[0] for e in events[before:])
        print(f"  edit {i}: page updated in {elapsed:.0f} ms (server: {server_side})")
        current = new
        time.sleep(0.3)  # let the page settle into its next long poll
    return times


if __name__ == "__main__":
    raise SystemExit(main())
