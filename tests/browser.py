"""Debian's headless Chromium through Playwright, offline, and the email as a sample reader sees
it: shared by the tests that open the built email in a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PLACEHOLDER_RE = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*) *\}\}")
SAMPLE_READER = {"greeting": "Bonjour Camille,", "unsubscribe_url": "#"}


@contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """Debian's headless Chromium with a fresh profile (never the user's)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def offline_chromium(profile: Path) -> Iterator[BrowserContext]:
    """`chromium`, where anything but local files is refused: the email must not need the
    network."""
    with chromium(profile) as context:
        context.route(
            "**/*",
            lambda route: route.continue_()
            if route.request.url.startswith(("file:", "data:")) else route.abort(),
        )
        yield context


def as_sample_reader(html: str) -> str:
    """`{{ greeting }}` and `{{ unsubscribe_url }}` filled as a sample reader sees them."""
    return PLACEHOLDER_RE.sub(lambda m: SAMPLE_READER.get(m.group(1), ""), html)
