"""Screenshots of the sample issues in headless Chromium, light and dark, and layout checks.

    .venv/bin/python bench/screenshots.py [2026-11 2026-12]

Builds each issue with the CLI into a temporary copy of the sample folder (so a developer's
own build/ is left alone), fills the per-recipient placeholders as a sample reader would see
them, and writes bench/out/<id>-<width>-<scheme>.png for widths 600 and 375 and schemes light
and dark (`prefers-color-scheme` emulated), full page.
Checks, exit 1 if one fails:
  - at 375 px the page does not scroll sideways (scrollWidth <= clientWidth);
  - each author signature block (columns .mj-column-per-32 and .mj-column-per-68) is stacked
    at 375 px (the bio starts below the name) and side by side at 600 px (same top).
Uses Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through Playwright; never downloads one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
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
WIDTHS = (600, 375)
SCHEMES = ("light", "dark")
PLACEHOLDER_RE = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*) *\}\}")
SAMPLE_READER = {"greeting": "Bonjour Camille,", "unsubscribe_url": "#"}

# Positions in page coordinates, so that a full-page layout is compared, not the viewport.
MEASURE_JS = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right};
  };
  const de = document.documentElement;
  const imgs = [...document.images];
  return {
    scrollWidth: de.scrollWidth,
    clientWidth: de.clientWidth,
    names: [...document.querySelectorAll('.mj-column-per-32')].map(box),
    bios: [...document.querySelectorAll('.mj-column-per-68')].map(box),
    images: imgs.length,
    brokenImages: imgs.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.src),
    leftoverPlaceholders: (document.body.innerText.match(/\\{\\{[^}]*\\}\\}/g) || []),
    height: de.scrollHeight,
  };
}"""


def fill_placeholders(html: str) -> str:
    """`{{ greeting }}` and `{{ unsubscribe_url }}` as a sample reader sees them; others empty."""
    return PLACEHOLDER_RE.sub(lambda m: SAMPLE_READER.get(m.group(1), ""), html)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def layout_checks(width: int, m: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if width < 480:  # below MJML's breakpoint: the mobile layout
        checks.append(Check(
            f"{width}px no horizontal scroll",
            m["scrollWidth"] <= m["clientWidth"],
            f"scrollWidth {m['scrollWidth']} <= clientWidth {m['clientWidth']}",
        ))
    pairs = list(zip(m["names"], m["bios"], strict=False))
    if not pairs or len(m["names"]) != len(m["bios"]):
        checks.append(Check(
            f"{width}px signature columns found", False,
            f"{len(m['names'])} .mj-column-per-32, {len(m['bios'])} .mj-column-per-68",
        ))
        return checks
    for n, (name, bio) in enumerate(pairs, start=1):
        if width < 480:
            ok = bio["top"] >= name["bottom"] - 0.5
            detail = f"bio top {bio['top']:.0f} >= name bottom {name['bottom']:.0f}"
            label = "stacked"
        else:
            ok = abs(bio["top"] - name["top"]) < 1 and bio["left"] >= name["right"] - 1
            detail = (f"tops {name['top']:.0f} / {bio['top']:.0f}, "
                      f"name right {name['right']:.0f} <= bio left {bio['left']:.0f}")
            label = "side by side"
        checks.append(Check(f"{width}px signature {n} {label}", ok, detail))
    return checks


def build(root: Path, issue_id: str) -> Path:
    proc = subprocess.run(
        [str(NEWSLETTER_BIN), "build-issue", issue_id, "--root", str(root)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"newsletter build-issue {issue_id} exited {proc.returncode}:\n{proc.stderr}")
    return root / "build" / issue_id / "email.html"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issues", nargs="*", default=["2026-11", "2026-12"])
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="newsletter-shots-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "letter"
        root.mkdir()
        for name in ("content", "templates", "issues"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp / "profile"),  # a fresh profile every run
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            )
            blocked: list[str] = []

            def offline(route: Any) -> None:
                # Nothing may leave the machine: a remote image shows as broken, never hangs.
                url = route.request.url
                if url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    blocked.append(url)
                    route.abort()

            context.route("**/*", offline)
            try:
                for issue_id in args.issues:
                    html_path = build(root, issue_id)
                    sample = tmp / f"{issue_id}-sample.html"
                    sample.write_text(fill_placeholders(html_path.read_text("utf-8")), "utf-8")
                    print(f"{issue_id}: {html_path.stat().st_size / 1024:.1f} KB email.html")
                    page = context.new_page()
                    for width in WIDTHS:
                        for scheme in SCHEMES:
                            page.emulate_media(color_scheme=scheme)
                            page.set_viewport_size({"width": width, "height": 900})
                            page.goto(sample.as_uri(), wait_until="load")
                            png = OUT / f"{issue_id}-{width}-{scheme}.png"
                            page.screenshot(path=str(png), full_page=True)
                            m = page.evaluate(MEASURE_JS)
                            print(f"  {width}px {scheme} -> {png.relative_to(REPO)} "
                                  f"({width}x{m['height']}); {m['images']} image(s), "
                                  f"{len(m['brokenImages'])} broken; "
                                  f"placeholders left: {m['leftoverPlaceholders'] or 'none'}")
                        for c in layout_checks(width, m):
                            failed += not c.ok
                            print(f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
                    page.close()
            finally:
                context.close()
        if blocked:
            print(f"remote requests blocked: {len(blocked)} (first: {blocked[0]})")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
