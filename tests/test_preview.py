"""`newsletter preview`: the live page in real headless Chromium, against a copy of the sample.

`serve` runs in a thread on port 0 and stops through its `stop` event. The browser may only
talk to the preview server: anything else (the email's remote images) is refused.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lxml.html
import pytest
from browser import chromium
from conftest import RunCli, own_template
from playwright.sync_api import BrowserContext, Page, expect

from newsletter.compose.checks import GMAIL_CLIP_ERROR_BYTES, clip_size
from newsletter.errors import BuildError, SubscriberError
from newsletter.layout import Layout
from newsletter.placeholders import fill
from newsletter.send.message import SAMPLE_READER, MessageTemplate
from newsletter.settings import load_settings
from newsletter.web.preview import open_built, serve

FIRST_TITLE = "Faire l’audit digital de sa petite entreprise en une journée"
FIRST_ARTICLE = Path("content/articles/audit-digital-petite-entreprise.md")
TEMPLATE = Path("templates/email.mjml.j2")
ISSUE = "2026-11"
RELOAD_TIMEOUT_MS = 5_000

pytestmark = pytest.mark.timeout(60)


@dataclass
class Running:
    url: str
    root: Path
    events: list[str] = field(default_factory=list)

    def get(self, path: str, *, host: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url.rstrip("/") + path)
        if host is not None:
            request.add_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")


@contextmanager
def running_preview(root: Path, *, as_email: str | None = None) -> Iterator[Running]:
    """`serve` in a thread, as the CLI calls it but with no browser; stopped on exit."""
    layout = Layout.at(root)
    stop = threading.Event()
    ready: queue.Queue[str] = queue.Queue()
    events: list[str] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            serve(
                layout, ISSUE, settings=load_settings(layout), port=0, open_browser=False,
                as_email=as_email, subscribers_path=root / "subscribers.csv",
                on_ready=ready.put, on_event=events.append, stop=stop,
            )
        except BaseException as exc:
            failures.append(exc)
            ready.put("")

    thread = threading.Thread(target=run, name="test-preview", daemon=True)
    thread.start()
    url = ready.get(timeout=30)
    if failures:
        raise failures[0]
    try:
        yield Running(url, root, events)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive(), "serve() did not return after stop"
    assert not failures, failures
    assert events[-1] == "Preview stopped."


@pytest.fixture
def preview(newsletter_root: Path) -> Iterator[Running]:
    with running_preview(newsletter_root) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, preview: Running) -> Iterator[Page]:
    """The preview page at 1280 px; only the preview server is reachable."""
    tab = browser.new_page()
    tab.set_default_timeout(10_000)
    tab.route(
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(preview.url) else route.abort(),
    )
    tab.set_viewport_size({"width": 1280, "height": 900})
    tab.goto(preview.url, wait_until="load")
    yield tab
    tab.close()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


def frame_title(page: Page, frame: str) -> Any:
    return page.frame_locator(f"iframe#{frame}").locator("h1").first


# -- in the browser -----------------------------------------------------------------------


def test_the_page_shows_the_issue_in_a_desktop_and_a_375px_frame(page: Page) -> None:
    for frame in ("desktop", "mobile"):
        expect(frame_title(page, frame)).to_have_text(FIRST_TITLE)
    desktop, mobile = page.frame(name="desktop"), page.frame(name="mobile")
    assert desktop is not None and mobile is not None
    assert desktop.evaluate("innerWidth") == 640
    assert mobile.evaluate("innerWidth") == 375
    # The recipient fields are filled as the sample reader's.
    expect(page.frame_locator("iframe#mobile").locator("body")).to_contain_text("Bonjour Camille,")
    expect(page.locator("#subject")).to_have_text("Novembre : faire le point avant la fin d’année")
    expect(page.locator("#preheader")).to_have_text(
        "Un audit en une journée, des indicateurs qui comptent et un calendrier Instagram tenable."
    )
    expect(page.locator("#from")).to_have_text("Coeur sur Paris <lettre@coeursurparis.example>")
    expect(page.locator("#text-part")).to_contain_text(f"1. {FIRST_TITLE}")
    expect(page.locator("#text-part")).to_contain_text("Bonjour Camille,")
    expect(page.locator("#size")).to_contain_text("against Gmail’s 100 KB clip limit")
    expect(page.locator("#findings")).to_have_text("All checks passed.")
    expect(page.locator("#build-error")).to_have_count(0)


def test_the_mobile_frame_does_not_scroll_sideways(page: Page) -> None:
    expect(frame_title(page, "mobile")).to_have_text(FIRST_TITLE)
    mobile = page.frame(name="mobile")
    assert mobile is not None
    widths = mobile.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"scrollWidth {widths[0]} > clientWidth {widths[1]}"


def test_an_edited_title_shows_in_the_page_without_a_manual_reload(
    page: Page, preview: Running
) -> None:
    expect(frame_title(page, "desktop")).to_have_text(FIRST_TITLE)
    new_title = "Un audit digital en une seule journée"
    start = time.perf_counter()
    edit(preview.root / FIRST_ARTICLE, f'title: "{FIRST_TITLE}"', f'title: "{new_title}"')
    expect(frame_title(page, "desktop")).to_have_text(new_title, timeout=RELOAD_TIMEOUT_MS)
    elapsed = time.perf_counter() - start
    expect(frame_title(page, "mobile")).to_have_text(new_title, timeout=RELOAD_TIMEOUT_MS)
    expect(page.locator("#text-part")).to_contain_text(f"1. {new_title}")
    print(f"edit -> page updated in {elapsed * 1000:.0f} ms")
    assert any(e.startswith("rebuilt in ") and str(FIRST_ARTICLE) in e for e in preview.events)


def test_a_broken_template_shows_its_error_and_a_fix_removes_it(
    page: Page, preview: Running
) -> None:
    template = own_template(preview.root, TEMPLATE.name)
    good = template.read_text("utf-8")
    edit(template, "<mj-body", "{{ nope }}<mj-body")
    banner = page.locator("#build-error")
    expect(banner).to_contain_text(f"{TEMPLATE}:", timeout=RELOAD_TIMEOUT_MS)
    expect(banner).to_contain_text("'nope' is undefined")
    expect(banner).to_be_visible()
    # The last good email stays on show.
    expect(frame_title(page, "desktop")).to_have_text(FIRST_TITLE)
    assert any(e.startswith(f"error: {TEMPLATE}:") for e in preview.events), preview.events

    template.write_text(good, "utf-8")
    expect(banner).to_have_count(0, timeout=RELOAD_TIMEOUT_MS)
    expect(frame_title(page, "desktop")).to_have_text(FIRST_TITLE)
    expect(frame_title(page, "mobile")).to_have_text(FIRST_TITLE)


# -- over HTTP ----------------------------------------------------------------------------


def test_the_build_on_disk_has_no_reload_script_and_the_frames_get_it_filled(
    preview: Running,
) -> None:
    build_dir = preview.root / "build" / ISSUE
    on_disk = (build_dir / "email.html").read_text("utf-8")
    assert "<script" not in on_disk and "__reload" not in on_disk
    assert "{{ greeting }}" in on_disk  # not personalised either

    status, index = preview.get("/")
    assert status == 200 and "/__reload" in index
    status, served = preview.get("/email.html")
    assert status == 200
    template = MessageTemplate.from_build(build_dir, settings=load_settings(Layout(preview.root)))
    assert served == fill(on_disk, template.values(SAMPLE_READER), html=True)
    assert "<script" not in served


def test_the_size_gauge_is_the_gmail_clip_measure_against_100_kb(preview: Running) -> None:
    build_dir = preview.root / "build" / ISSUE
    size = clip_size(
        (build_dir / "email.html").read_text("utf-8"), (build_dir / "email.eml").read_bytes()
    )
    assert size.sent > size.raw  # quoted-printable and the headers: not the file's size
    status, index = preview.get("/")
    assert status == 200
    gauge = lxml.html.fromstring(index).get_element_by_id("size").text_content()
    assert gauge == (
        f"The message as sent is {size.sent / 1024:.1f} KB ({size.sent:,} bytes: "
        f"quoted-printable, with the headers; email.html is {size.raw / 1024:.1f} KB raw) "
        f"against Gmail’s 100 KB clip limit: {size.sent / GMAIL_CLIP_ERROR_BYTES:.0%} of the "
        "limit."
    )


def test_the_page_loads_its_style_and_script_from_the_package(preview: Running) -> None:
    status, index = preview.get("/")
    doc = lxml.html.fromstring(index)
    [css] = doc.xpath("//link[@rel='stylesheet']/@href")
    [script] = doc.xpath("//script")
    assert "<style" not in index and script.text is None  # nothing inline
    status, body = preview.get(css)
    assert status == 200 and "#build-error" in body
    status, body = preview.get(script.get("src"))
    assert status == 200 and "location.reload()" in body
    assert script.get("data-reload") == "/__reload"
    status, answer = preview.get(f"/__reload?v={script.get('data-version')}-other")
    assert status == 200 and answer == f'{{"version":"{script.get("data-version")}"}}'


def test_the_server_listens_on_127_0_0_1_only(preview: Running) -> None:
    url = urlsplit(preview.url)
    assert url.hostname == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", url.port or 0), timeout=5):
        pass
    # Linux routes all of 127/8 to lo: a socket bound to 0.0.0.0 would answer on 127.0.0.2.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", url.port or 0), timeout=5).close()
    # A page from another site rebinding its name to 127.0.0.1 gets nothing.
    assert preview.get("/email.html", host=f"evil.example:{url.port}")[0] == 403


def test_as_a_subscriber_fills_their_fields(newsletter_root: Path) -> None:
    with running_preview(newsletter_root, as_email="Amelie.Durand@example.fr") as running:
        status, served = running.get("/email.html")
        assert status == 200 and "Bonjour Amélie," in served
        status, index = running.get("/")
        assert "Amélie Durand &lt;amelie.durand@example.fr&gt;" in index


def test_as_an_unknown_address_is_refused_naming_the_list(newsletter_root: Path) -> None:
    with pytest.raises(SubscriberError) as info, running_preview(
        newsletter_root, as_email="nobody@example.org"
    ):
        pass
    assert str(info.value).startswith("subscribers.csv: no subscriber 'nobody@example.org'")
    assert not (newsletter_root / "build").exists()


def test_a_first_build_that_fails_still_serves_the_error_until_fixed(
    newsletter_root: Path,
) -> None:
    template = own_template(newsletter_root, TEMPLATE.name)
    good = template.read_text("utf-8")
    edit(template, "<mj-body", "{{ nope }}<mj-body")
    with running_preview(newsletter_root) as running:
        status, index = running.get("/")
        assert status == 200
        line = good[: good.index("<mj-body")].count("\n") + 1
        assert 'id="build-error"' in index and f"{TEMPLATE}:{line}: undefined variable" in index
        assert running.get("/email.html")[0] == 503  # nothing built yet
        template.write_text(good, "utf-8")
        deadline = time.monotonic() + RELOAD_TIMEOUT_MS / 1000
        while running.get("/email.html")[0] != 200:
            assert time.monotonic() < deadline, running.events
            time.sleep(0.05)
        assert 'id="build-error"' not in running.get("/")[1]


def test_a_build_stopped_by_a_check_shows_which_check(newsletter_root: Path) -> None:
    edit(
        own_template(newsletter_root, TEMPLATE.name),
        "<p>{{ greeting }}</p>",
        '<p>{{ greeting }}</p><img src="https://coeursurparis.example/logo.png">',
    )
    with running_preview(newsletter_root) as running:
        status, index = running.get("/")
        assert status == 200
        assert 'id="build-error"' in index
        assert (
            "error [missing-alt] email.html: image https://coeursurparis.example/logo.png has "
            "no alt text" in index
        )
        assert "1 check(s) failed; build/ was not changed (fix the errors above)" in index


def test_the_issue_list_links_every_issue(preview: Running) -> None:
    status, page = preview.get("/issues")
    assert status == 200
    assert '<a href="/">2026-11</a>' in page and '<a href="/issue/2026-12/">2026-12</a>' in page
    status, other = preview.get("/issue/2026-12/")
    assert status == 404
    assert "run `newsletter build-issue 2026-12` first" in other


# -- the CLI and `open` -------------------------------------------------------------------


def test_preview_list_prints_every_issue(newsletter_root: Path, run_cli: RunCli) -> None:
    result = run_cli("preview", "--list", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-11  2026-11-24  Novembre\u00a0: faire le point avant la fin d’année  [not built]",
        "2026-12  2026-12-15  Décembre\u00a0: nos meilleures lectures pour bien finir l’année"
        "  [not built]",
    ]


def test_open_an_issue_not_built_says_how_to_build_it(newsletter_root: Path) -> None:
    with pytest.raises(BuildError) as info:
        open_built(Layout.at(newsletter_root), ISSUE)
    assert str(info.value) == (
        "build/2026-11/email.html: the issue has not been built "
        "(run newsletter build-issue 2026-11)"
    )


def test_open_a_built_issue_opens_its_file(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def fake_open(url: str, *args: object, **kwargs: object) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", fake_open)
    path = open_built(Layout.at(built), ISSUE)
    assert path == built.resolve() / "build" / ISSUE / "email.html"
    assert opened == [path.as_uri()]


def test_an_edit_through_a_temporary_file_names_the_article(preview: Running) -> None:
    """`sed -i` and many editors write a temporary file and rename it over the article: the
    log said `rebuilt … (content/articles/sedc8Q2vr)`, a file that no longer exists."""
    article = preview.root / FIRST_ARTICLE
    temporary = article.parent / "sedXq81Zp"
    text = article.read_text("utf-8")
    temporary.write_text(text.replace(FIRST_TITLE, "Un autre titre", 1), "utf-8")
    temporary.replace(article)
    deadline = time.monotonic() + 20
    while not any(e.startswith("rebuilt in ") for e in preview.events):
        assert time.monotonic() < deadline, preview.events
        time.sleep(0.05)
    time.sleep(1.0)  # the watcher's debounce: any later event is in too
    rebuilt = [e for e in preview.events if e.startswith("rebuilt in ")]
    assert any(str(FIRST_ARTICLE) in e for e in rebuilt), rebuilt
    assert not any(temporary.name in e for e in rebuilt), rebuilt


def test_a_port_in_use_is_an_error_before_the_build(newsletter_root: Path) -> None:
    """The preview built build/2026-11/ first, then found its port taken."""
    from newsletter.errors import NewsletterError

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        layout = Layout.at(newsletter_root)
        with pytest.raises(NewsletterError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: "):
            serve(layout, ISSUE, settings=load_settings(layout), port=port, open_browser=False,
                  as_email=None, subscribers_path=newsletter_root / "subscribers.csv",
                  on_ready=lambda url: None, on_event=lambda event: None)
    assert not (newsletter_root / "build").exists()
