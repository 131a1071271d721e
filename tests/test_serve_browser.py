"""`newsletter serve` in headless Chromium (Debian's, through Playwright): subscribe, confirm
and unsubscribe by clicks, in French, no console error, no horizontal scroll at 375 and
1280 px. Screenshots go to bench/out/serve-<step>-<width>.png."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium
from playwright.sync_api import BrowserContext, Page
from smtpserver import send_command
from test_serve import Running, confirm_link, running, statuses

__all__ = ["running"]  # the fixture, imported so that pytest finds it here

OUT = Path(__file__).resolve().parent.parent / "bench" / "out"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def no_horizontal_scroll(tab: Page) -> None:
    widths = tab.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{tab.url}: scrollWidth {widths[0]} > {widths[1]}"


def shot(tab: Page, step: str, width: int) -> None:
    no_horizontal_scroll(tab)
    OUT.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(OUT / f"serve-{step}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", [375, 1280])
def test_subscribe_confirm_and_unsubscribe_by_clicks_in_french(
    browser: BrowserContext, running: Running, width: int
) -> None:
    reader = f"camille.{width}@example.org"
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.route(  # only the service: nothing leaves 127.0.0.1
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(running.url) else route.abort(),
    )
    tab.set_default_timeout(10_000)
    tab.set_viewport_size({"width": width, "height": 800})
    try:
        tab.goto(running.url + "/", wait_until="load")
        assert tab.locator("#sv-email").count() == 1  # the form on the archive's index
        shot(tab, "archive", width)

        tab.goto(running.url + "/subscribe", wait_until="load")
        assert tab.locator("html").get_attribute("lang") == "fr"
        tab.get_by_label("Votre adresse e-mail").fill("pas-une-adresse")
        tab.get_by_role("button", name="S’abonner").click()
        tab.wait_for_selector("#sv-error")
        shot(tab, "subscribe-error", width)
        # The contract answers an invalid address with status 400, which Chromium logs as a
        # failed load of the page itself: that line, and only it, is expected here.
        assert errors == [
            "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        ]
        errors.clear()
        tab.get_by_label("Votre adresse e-mail").fill(reader)
        tab.get_by_label("Votre prénom (facultatif)").fill("Camille")
        tab.get_by_role("button", name="S’abonner").click()
        tab.get_by_role("heading", name="Vérifiez votre boîte de réception").wait_for()
        shot(tab, "check-inbox", width)
        assert reader not in statuses(running.root)

        tab.goto(confirm_link(running.smtp, reader), wait_until="load")
        shot(tab, "confirm", width)
        tab.get_by_role("button", name="Confirmer mon abonnement").click()
        tab.get_by_role("heading", name="Abonnement confirmé").wait_for()
        shot(tab, "confirmed", width)
        assert statuses(running.root)[reader] == "subscribed"

        # A process: Playwright's sync API keeps an event loop running in this thread.
        sent = subprocess.run(
            send_command(running.root),
            env={**os.environ, **running.env}, capture_output=True, text=True, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        (msg,) = [m.message for m in running.smtp.received if reader in m.rcpt and
                  "confirm" not in str(m.message["Subject"]).lower()]
        body = msg.get_body(("plain",))
        assert body is not None
        found = re.search(r"http://\S+/unsubscribe\?token=\w+", body.get_content())
        assert found is not None
        tab.goto(found.group(0), wait_until="load")
        assert statuses(running.root)[reader] == "subscribed"  # the page alone changes nothing
        shot(tab, "unsubscribe", width)
        tab.get_by_role("button", name="Me désabonner").click()
        tab.get_by_role("heading", name="Désabonnement effectué").wait_for()
        shot(tab, "unsubscribed", width)
        assert statuses(running.root)[reader] == "unsubscribed"
        assert tab.get_by_role("button", name="Me réabonner").count() == 1

        tab.goto(running.url + "/2026-11/", wait_until="load")  # sent: now in the archive
        assert tab.get_by_role("button", name="S’abonner").count() == 1
        shot(tab, "archive-issue", width)
    finally:
        tab.close()
    assert errors == []
