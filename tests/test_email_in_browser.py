"""The built email.html in real headless Chromium: the mobile layout works, nothing overflows.

Debian's Chromium (/usr/bin/chromium) through Playwright; never a downloaded browser. A
missing Chromium fails these tests: a skipped layout test would hide a broken mobile email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import as_sample_reader
from playwright.sync_api import BrowserContext, Page

FIRST_TITLE = "Faire l’audit digital de sa petite entreprise en une journée"

# Page coordinates (not viewport ones) of each signature block's two columns.
SIGNATURES_JS = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right};
  };
  return {
    names: [...document.querySelectorAll('.mj-column-per-32')].map(box),
    bios: [...document.querySelectorAll('.mj-column-per-68')].map(box),
  };
}"""


@pytest.fixture
def sample_email(built: Path) -> Path:
    """build/2026-11/email.html with the recipient fields filled as a sample reader sees them."""
    html = (built / "build" / "2026-11" / "email.html").read_text("utf-8")
    sample = built / "sample-email.html"
    sample.write_text(as_sample_reader(html), "utf-8")
    return sample


@pytest.fixture
def open_at(browser: BrowserContext, sample_email: Path) -> Iterator[Callable[[int], Page]]:
    """Open the sample email in a tab `width` px wide; the tabs close after the test."""
    pages: list[Page] = []

    def open_page(width: int) -> Page:
        page = browser.new_page()
        pages.append(page)
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(sample_email.as_uri(), wait_until="load")
        return page

    yield open_page
    for page in pages:
        page.close()


def signatures(page: Page) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = page.evaluate(SIGNATURES_JS)
    # The sample issue has three articles by two authors: one full signature block per author.
    assert (len(found["names"]), len(found["bios"])) == (2, 2)
    return list(zip(found["names"], found["bios"], strict=True))


def test_at_375px_nothing_scrolls_sideways(open_at: Callable[[int], Page]) -> None:
    page = open_at(375)
    scroll_width, client_width = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert client_width == 375
    assert scroll_width <= client_width


def test_at_375px_signature_columns_stack(open_at: Callable[[int], Page]) -> None:
    page = open_at(375)
    for name, bio in signatures(page):
        assert bio["top"] >= name["bottom"] - 0.5, (name, bio)
        assert name["right"] <= 375 and bio["right"] <= 375


def test_at_600px_signature_columns_side_by_side(open_at: Callable[[int], Page]) -> None:
    page = open_at(600)
    for name, bio in signatures(page):
        assert bio["top"] == pytest.approx(name["top"], abs=1), (name, bio)
        assert bio["left"] >= name["right"] - 1, (name, bio)


@pytest.mark.parametrize("width", [375, 600])
def test_first_article_title_is_visible_text(
    open_at: Callable[[int], Page], width: int
) -> None:
    page = open_at(width)
    title = page.locator("h1").first
    assert title.is_visible()
    assert title.inner_text().strip() == FIRST_TITLE
    box = title.bounding_box()
    assert box is not None and box["height"] > 0
    assert box["x"] >= 0 and box["x"] + box["width"] <= width  # not clipped sideways
    text = page.locator("body").inner_text()
    assert "Bonjour Camille," in text
    assert "{{" not in text
