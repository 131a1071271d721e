"""Screenshots of the public archive in headless Chromium, and its layout checks.

    .venv/bin/python bench/archive_screenshots.py [--issue 2026-11]

In a temporary copy of the sample folder (the repository's build/ and site/ are left alone):
builds both sample issues with NEWSLETTER_ARCHIVE_URL set, runs `newsletter archive --all`
(nothing is mailed: --all archives the built issues), then opens site/index.html and
site/<issue>/index.html at 1280 and 375 px and writes, full page:

    bench/out/archive-index-1280.png     bench/out/archive-index-375.png
    bench/out/archive-<issue>-1280.png   bench/out/archive-<issue>-375.png

Checks, exit 1 if one fails: no horizontal scroll, no console error, one banner, navigation,
main and contentinfo landmark each. The email's remote images are answered with a grey pixel
(nothing leaves the machine), so they show as grey blocks of their real size. Uses Debian's
Chromium (/usr/bin/chromium, or $CHROMIUM) through Playwright; never downloads one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
NEWSLETTER_BIN = Path(sys.executable).parent / "newsletter"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDTHS = (1280, 375)
ARCHIVE_URL = "https://lettre.example/archive/"
LANDMARKS = ("banner", "navigation", "main", "contentinfo")

MEASURE_JS = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  height: document.documentElement.scrollHeight,
})"""


def grey_pixel() -> bytes:
    """A 1x1 PNG (#d9d4cc), made here so that the script needs no image file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xd9\xd4\xcc")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def newsletter(root: Path, *args: str) -> str:
    env = {**os.environ, "NEWSLETTER_ARCHIVE_URL": ARCHIVE_URL}
    proc = subprocess.run(
        [str(NEWSLETTER_BIN), *args, "--root", str(root)],
        capture_output=True, text=True, check=False, env=env,
    )
    if proc.returncode != 0:
        sys.exit(f"newsletter {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--issue", default="2026-11", help="The issue page to capture.")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    pixel = grey_pixel()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="newsletter-archive-shots-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "letter"
        root.mkdir()
        for name in ("content", "templates", "issues"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
        for issue_id in sorted(p.stem for p in (root / "issues").glob("*.toml")):
            newsletter(root, "build-issue", issue_id)
        print(newsletter(root, "archive", "--all"), end="")
        pages = {"index": root / "site" / "index.html",
                 args.issue: root / "site" / args.issue / "index.html"}
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp / "profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_ARGS,
            )

            def offline(route: Any) -> None:
                if route.request.url.startswith(("file:", "data:")):
                    route.continue_()
                elif route.request.resource_type == "image":
                    route.fulfill(status=200, content_type="image/png", body=pixel)
                else:
                    route.abort()

            context.route("**/*", offline)
            try:
                for label, path in pages.items():
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda m, e=errors: e.append(m.text)
                            if m.type == "error" else None)
                    page.on("pageerror", lambda x, e=errors: e.append(str(x)))
                    for width in WIDTHS:
                        page.set_viewport_size({"width": width, "height": 900})
                        page.goto(path.as_uri(), wait_until="load")
                        png = OUT / f"archive-{label}-{width}.png"
                        page.screenshot(path=str(png), full_page=True)
                        m = page.evaluate(MEASURE_JS)
                        landmarks = {r: page.get_by_role(r).count() for r in LANDMARKS}
                        checks = [
                            ("no horizontal scroll", m["scrollWidth"] <= m["clientWidth"],
                             f"scrollWidth {m['scrollWidth']} <= clientWidth {m['clientWidth']}"),
                            ("landmarks", all(n == 1 for n in landmarks.values()),
                             ", ".join(f"{r} {n}" for r, n in landmarks.items())),
                        ]
                        print(f"{label} {width}px -> {png.relative_to(REPO)} "
                              f"({width}x{m['height']})")
                        for name, ok, detail in checks:
                            failed += not ok
                            print(f"    {'ok  ' if ok else 'FAIL'} {name}: {detail}")
                    ok = not errors
                    failed += not ok
                    print(f"    {'ok  ' if ok else 'FAIL'} console errors: {errors or 'none'}")
                    page.close()
            finally:
                context.close()
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
