"""`newsletter archive`: the public site of the sent issues, its Atom feed, "view in browser".

The sample newsletter with both issues built and 2026-11 mailed to the sample list through the
test SMTP server (unsubscribe tokens on), then archived. Assertions parse the output (lxml,
feedparser, ElementTree, Chromium), they never diff it against a stored copy.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
import sqlite3
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import lxml.html
import pytest
from browser import chromium
from conftest import RunCli, snapshot
from playwright.sync_api import BrowserContext, Page, Route
from smtpserver import TestServer

from newsletter.archive import generate
from newsletter.layout import Layout
from newsletter.send.subscribers import unsubscribe_token
from newsletter.settings import load_settings

ARCHIVE_URL = "https://lettre.example/archive/"
SECRET = "archive-test-secret-0123456789"
UNSUBSCRIBE_URL = "https://lettre.example/desabonnement"
ENV = {
    "NEWSLETTER_ARCHIVE_URL": ARCHIVE_URL,
    "NEWSLETTER_SECRET_KEY": SECRET,
    "NEWSLETTER_UNSUBSCRIBE_URL": UNSUBSCRIBE_URL,
}
FIRST_TITLE = "Faire l’audit digital de sa petite entreprise en une journée"
FIRST_URL = "https://coeursurparis.example/blog/audit-digital-petite-entreprise"
ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
VIEW_ONLINE = "Voir dans le navigateur"

# 1x1 transparent PNG: the email's remote images, answered without the network.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)

pytestmark = pytest.mark.timeout(60)


def manifest(root: Path, issue: str) -> dict[str, Any]:
    """What the build wrote (subjects and titles as typography made them)."""
    data: dict[str, Any] = json.loads((root / "build" / issue / "manifest.json").read_text("utf-8"))
    return data


def subject(root: Path, issue: str) -> str:
    return str(manifest(root, issue)["subject"])


@pytest.fixture
def sent(newsletter_root: Path, run_cli: RunCli, smtp_server: TestServer) -> Path:
    """Both sample issues built with the archive URL, and 2026-11 mailed to the sample list."""
    env = smtp_server.env(**ENV)
    for issue in ("2026-11", "2026-12"):
        result = run_cli("build-issue", issue, root=newsletter_root, env=env)
        assert result.exit_code == 0, result.stderr
    result = run_cli("send", "2026-11", root=newsletter_root, env=env)
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 6  # the rows of the sample list that are mailed
    return newsletter_root


def archive(run_cli: RunCli, root: Path, *args: str, env: dict[str, str] = ENV) -> str:
    result = run_cli("archive", *args, root=root, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def first_sent(root: Path, issue: str) -> float:
    db = sqlite3.connect(root / "state" / "newsletter.db")
    try:
        (at,) = db.execute(
            "SELECT MIN(updated) FROM deliveries WHERE issue = ? AND status = 'sent'", (issue,)
        ).fetchone()
    finally:
        db.close()
    return float(at)


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC)


def listed(index: Path) -> list[tuple[str, str]]:
    """(href, subject) of every issue on the index page, in page order."""
    doc = lxml.html.fromstring(index.read_bytes())
    return [(a.get("href"), a.text_content()) for a in doc.cssselect("main article h2 a")]


# -- what the archive holds ---------------------------------------------------------------


def test_the_archive_holds_every_sent_issue_and_all_adds_the_unsent_one(
    sent: Path, run_cli: RunCli
) -> None:
    day = utc(first_sent(sent, "2026-11")).date().isoformat()
    november, december = subject(sent, "2026-11"), subject(sent, "2026-12")
    assert november.startswith("Novembre") and december.startswith("Décembre")
    assert archive(run_cli, sent) == (
        "Archive site/ — 1 issue(s)\n"
        f"  2026-11  2026-11-24  {november}  [sent {day}]\n"
        "  3 written, 0 unchanged\n"
    )
    site = sent / "site"
    assert sorted(snapshot(site)) == ["2026-11/index.html", "feed.xml", "index.html"]
    assert listed(site / "index.html") == [("2026-11/", november)]

    assert archive(run_cli, sent, "--all") == (
        "Archive site/ — 2 issue(s)\n"
        f"  2026-12  2026-12-15  {december}  [not sent]\n"
        f"  2026-11  2026-11-24  {november}  [sent {day}]\n"
        # the index, the feed, the new page, and 2026-11's page (it links to a newer issue now)
        "  4 written, 0 unchanged\n"
    )
    assert listed(site / "index.html") == [("2026-12/", december), ("2026-11/", november)]

    # Back to the sent issues only: the unsent issue's page goes, nothing else of site/ does.
    (site / "robots.txt").write_text("User-agent: *\n", "utf-8")
    out = archive(run_cli, sent)
    assert out.endswith("  3 written, 0 unchanged, 1 removed\n")
    assert sorted(snapshot(site)) == ["2026-11/index.html", "feed.xml", "index.html", "robots.txt"]


def test_the_index_lists_number_date_subject_preheader_articles_and_authors(
    sent: Path, run_cli: RunCli
) -> None:
    archive(run_cli, sent, "--all")
    doc = lxml.html.fromstring((sent / "site" / "index.html").read_bytes())
    assert doc.get("lang") == "fr"
    assert doc.findtext(".//title") == "Archives · Coeur sur Paris"
    for tag in ("header", "nav", "main", "footer"):
        assert len(doc.cssselect(f"body {tag}")) == 1, tag
    first = doc.cssselect("main article")[1]  # 2026-11, after 2026-12
    meta = first.cssselect(".nl-meta")[0]
    assert meta.text_content() == "Numéro 12 · 24 novembre 2026"
    assert meta.cssselect("time")[0].get("datetime") == "2026-11-24"
    assert first.cssselect(".nl-preheader")[0].text_content() == (
        "Un audit en une journée, des indicateurs qui comptent et un calendrier Instagram tenable."
    )
    items = [li.text_content() for li in first.cssselect(".nl-articles li")]
    titles = [a["title"] for a in manifest(sent, "2026-11")["article_details"]]
    assert titles[0] == FIRST_TITLE
    assert items == [
        f"{titles[0]} par Claire Fontaine",
        f"{titles[1]} par Claire Fontaine",
        f"{titles[2]} par Erwan Le Goff",
    ]
    assert first.cssselect(".nl-articles a")[0].get("href") == FIRST_URL
    feed_links = doc.cssselect('link[rel="alternate"][type="application/atom+xml"]')
    assert [link.get("href") for link in feed_links] == ["feed.xml"]


def test_an_issue_page_is_the_email_for_anyone_with_the_site_around_it(
    sent: Path, run_cli: RunCli
) -> None:
    archive(run_cli, sent, "--all")
    page = (sent / "site" / "2026-11" / "index.html").read_text("utf-8")
    doc = lxml.html.fromstring(page.encode())
    assert doc.get("lang") == "fr"
    assert doc.findtext(".//title") == f"{subject(sent, '2026-11')} · Coeur sur Paris"
    assert [link.get("href") for link in doc.cssselect('link[rel="canonical"]')] == [
        f"{ARCHIVE_URL}2026-11/"
    ]
    nav = {a.text_content(): a.get("href") for a in doc.cssselect("header nav a")}
    assert nav == {"Tous les numéros": "../", "Numéro suivant": "../2026-12/",
                   "Flux Atom": "../feed.xml"}
    main = doc.cssselect("main")[0]
    text = main.text_content()
    assert "Bonjour," in text and FIRST_TITLE in text
    assert main.cssselect("h1 a")[0].get("href") == FIRST_URL
    assert "{{" not in page
    assert "Se désabonner" not in page and "abonné·e" not in page
    # The email's footer link now leads to the archive's index.
    assert main.cssselect(".footer a")[0].get("href") == "../"
    # The "view in browser" link is the page itself: hidden there.
    (view,) = main.cssselect(".view-online a")
    assert view.get("href") == f"{ARCHIVE_URL}2026-11/"
    assert ".view-online{display:none!important}" in page


def test_no_archive_file_holds_anything_of_the_subscriber_list(
    sent: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    archive(run_cli, sent, "--all")
    with open(sent / "subscribers.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    tokens = [unsubscribe_token(row["email"], SECRET) for row in rows]
    # The tokens are the ones the send used: the needles are real.
    mailed = b"".join(r.raw for r in smtp_server.received)
    assert sum(t.encode() in mailed for t in tokens) == 6
    needles: set[str] = set(tokens) | {UNSUBSCRIBE_URL, "token=", "lecteur@", "{{"}
    for row in rows:
        needles |= {row["email"], row["email"].lower()}
        if row["name"]:
            first_name = row["name"].split(" ")[0]
            needles |= {row["name"], first_name, f"Bonjour {first_name}"}
    needles |= {html.escape(n) for n in needles} | {html.escape(html.escape(n)) for n in needles}
    files = sorted(p for p in (sent / "site").rglob("*") if p.is_file())
    assert len(files) == 4
    for path in files:
        data = path.read_bytes()
        lowered = data.lower()
        for needle in needles:
            assert needle.encode() not in data, (path, needle)
            if "@" in needle:
                assert needle.lower().encode() not in lowered, (path, needle)
        assert b"@example." not in lowered, path  # no address of the sample list's domains


# -- the feed -----------------------------------------------------------------------------


def test_the_feed_is_atom_1_0_with_titles_dates_and_links(sent: Path, run_cli: RunCli) -> None:
    archive(run_cli, sent, "--all")
    raw = (sent / "site" / "feed.xml").read_bytes()
    parsed: Any = feedparser.parse(raw)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Coeur sur Paris"
    assert parsed.feed.id == ARCHIVE_URL
    assert [e.title for e in parsed.entries] == [subject(sent, "2026-12"), subject(sent, "2026-11")]
    assert [e.link for e in parsed.entries] == [f"{ARCHIVE_URL}2026-12/", f"{ARCHIVE_URL}2026-11/"]
    assert [e.id for e in parsed.entries] == [f"{ARCHIVE_URL}2026-12/", f"{ARCHIVE_URL}2026-11/"]
    sent_at = utc(first_sent(sent, "2026-11"))
    updated = [dt.datetime(*e.updated_parsed[:6], tzinfo=dt.UTC) for e in parsed.entries]
    # The unsent issue: its date; the sent one: its first send, from the journal.
    assert updated == [dt.datetime(2026, 12, 15, tzinfo=dt.UTC), sent_at]
    feed_updated = dt.datetime(*parsed.feed.updated_parsed[:6], tzinfo=dt.UTC)
    assert feed_updated == max(updated)
    november = parsed.entries[1]
    assert [a.name for a in november.authors] == ["Claire Fontaine", "Erwan Le Goff"]
    content = november.content[0].value
    assert FIRST_TITLE in content and "Bonjour," in content and "{{" not in content
    # Relative links of the page resolve against the page (xml:base).
    assert f'href="{ARCHIVE_URL}"' in content  # the email's footer link: the index

    # RFC 4287's required elements, read without feedparser's leniency.
    root = ET.fromstring(raw)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert (root.findtext(f"{ATOM}{name}") or "").strip(), name
    assert RFC3339.match(root.findtext(f"{ATOM}updated") or "")
    feed_has_author = root.find(f"{ATOM}author/{ATOM}name") is not None
    assert feed_has_author
    self_links = [x.get("href") for x in root.findall(f"{ATOM}link") if x.get("rel") == "self"]
    assert self_links == [f"{ARCHIVE_URL}feed.xml"]
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name
        assert RFC3339.match(entry.findtext(f"{ATOM}updated") or "")
        alternates = [
            x for x in entry.findall(f"{ATOM}link") if x.get("rel", "alternate") == "alternate"
        ]
        assert len(alternates) == 1 and alternates[0].get("type") == "text/html"
        assert feed_has_author or entry.find(f"{ATOM}author/{ATOM}name") is not None
        (content_el,) = entry.findall(f"{ATOM}content")
        assert content_el.get("type") == "html"
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == len(ids)


def test_without_the_archive_url_the_feed_has_stable_urn_ids_and_relative_links(
    sent: Path, run_cli: RunCli
) -> None:
    archive(run_cli, sent, "--all", env={})
    raw = (sent / "site" / "feed.xml").read_bytes()
    root = ET.fromstring(raw)
    entries = root.findall(f"{ATOM}entry")
    ids = [root.findtext(f"{ATOM}id")] + [e.findtext(f"{ATOM}id") for e in entries]
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", i or "") for i in ids)
    assert len(set(ids)) == 3
    links = [link.get("href") for e in entries for link in e.findall(f"{ATOM}link")]
    assert links == ["2026-12/", "2026-11/"]
    assert [link.get("href") for link in root.findall(f"{ATOM}link")] == ["feed.xml", "./"]
    archive(run_cli, sent, "--all", env={})
    assert (sent / "site" / "feed.xml").read_bytes() == raw


# -- "view in browser" --------------------------------------------------------------------


def test_view_in_browser_is_in_both_parts_only_when_the_archive_url_is_set(
    sent: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    page_url = f"{ARCHIVE_URL}2026-11/"
    msg = smtp_server.messages[0]
    text = msg.get_body(("plain",)).get_content()
    assert text.splitlines()[0] == f"{VIEW_ONLINE}\u00a0: {page_url}"
    body = lxml.html.fromstring(msg.get_body(("html",)).get_content().encode())
    links = [a for a in body.cssselect("a") if a.text_content() == VIEW_ONLINE]
    assert [a.get("href") for a in links] == [page_url]
    # It comes before the issue's own content.
    assert text.index(VIEW_ONLINE) < text.index("COEUR SUR PARIS")

    result = run_cli("build-issue", "2026-11", root=sent)  # no NEWSLETTER_ARCHIVE_URL
    assert result.exit_code == 0, result.stderr
    for name in ("email.html", "email.txt", "email.eml"):
        data = (sent / "build" / "2026-11" / name).read_text("utf-8")
        assert "navigateur" not in data and "lettre.example" not in data, name
        assert "view-online" not in data, name


# -- deterministic and incremental --------------------------------------------------------


def test_a_second_run_rewrites_nothing_and_a_change_rewrites_only_what_it_touches(
    sent: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive(run_cli, sent, "--all")
    site = sent / "site"
    before = snapshot(site)
    mtimes = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    assert archive(run_cli, sent, "--all").endswith("  0 written, 4 unchanged\n")
    assert snapshot(site) == before
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == mtimes
    assert not [p for p in site.rglob(".*")]  # no temporary file left behind

    # The same inputs, generated again in memory (as the preview does): the same bytes.
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    layout = Layout.at(sent)
    files = generate(layout, settings=load_settings(layout), include_unsent=True).files
    assert files == {rel: (site / rel).read_bytes() for rel in before}

    # Edit the December issue: its page, the index and the feed change; November's page not.
    issue_file = sent / "issues" / "2026-12.toml"
    issue_file.write_text(
        issue_file.read_text("utf-8").replace("nos meilleures lectures", "nos lectures"), "utf-8"
    )
    assert run_cli("build-issue", "2026-12", root=sent, env=ENV).exit_code == 0
    out = archive(run_cli, sent, "--all")
    assert out.endswith("  3 written, 1 unchanged\n")
    after = snapshot(site)
    assert after["2026-11/index.html"] == before["2026-11/index.html"]
    assert {k for k in after if after[k] != before[k]} == {
        "2026-12/index.html", "feed.xml", "index.html",
    }


def test_nothing_sent_is_an_error_that_says_what_to_do(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    result = run_cli("archive", root=newsletter_root)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: state/newsletter.db: no issue has been sent yet: nothing to archive "
        "(send an issue first, or pass --all to archive the built issues)\n"
    )
    assert not (newsletter_root / "site").exists()


def test_a_sent_issue_without_its_build_is_named(sent: Path, run_cli: RunCli) -> None:
    for f in (sent / "build" / "2026-11").iterdir():
        f.unlink()
    (sent / "build" / "2026-11").rmdir()
    result = run_cli("archive", root=sent)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: build/2026-11: issue 2026-11 was sent but has no manifest.json "
        "(run `newsletter build-issue 2026-11`)\n"
    )


def test_a_build_with_other_articles_than_were_sent_is_not_published(
    sent: Path, run_cli: RunCli
) -> None:
    """As an older version rebuilt a sent issue, applying its rules to later articles: the
    archive must show what readers received, so it refuses until the issue is rebuilt."""
    path = sent / "build" / "2026-11" / "manifest.json"
    data = json.loads(path.read_text("utf-8"))
    sent_with = data["articles"]
    path.write_text(json.dumps({**data, "articles": [*sent_with, "un-article-de-plus"]}))
    result = run_cli("archive", root=sent, env=ENV)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: build/2026-11: issue 2026-11 was sent with other articles than this build has "
        "(un-article-de-plus) (run `newsletter build-issue 2026-11`: it rebuilds a sent issue "
        "with the articles it was sent with)\n"
    )
    assert snapshot(sent / "site") == {}  # nothing written
    assert run_cli("build-issue", "2026-11", root=sent, env=ENV).exit_code == 0
    archive(run_cli, sent)
    assert manifest(sent, "2026-11")["articles"] == sent_with


# -- in the browser, and in the preview ---------------------------------------------------


@pytest.fixture
def browser(sent: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium, started after the send (Playwright's loop would stop the CLI's asyncio.run)."""
    with chromium(tmp_path / "chromium-profile") as context:

        def offline(route: Route) -> None:
            # The email's remote images get a local pixel: no network, and no load error.
            if route.request.url.startswith(("file:", "data:")):
                route.continue_()
            elif route.request.resource_type == "image":
                route.fulfill(status=200, content_type="image/png", body=PIXEL)
            else:
                route.abort()

        context.route("**/*", offline)
        yield context


def listen_for_errors(page: Page, errors: list[str]) -> None:
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))


def test_the_pages_load_without_errors_and_fit_375px(
    sent: Path, run_cli: RunCli, browser: BrowserContext
) -> None:
    archive(run_cli, sent, "--all")
    site = sent / "site"
    for rel in ("index.html", "2026-11/index.html", "2026-12/index.html"):
        page = browser.new_page()
        errors: list[str] = []
        listen_for_errors(page, errors)
        try:
            for width in (1280, 375):
                page.set_viewport_size({"width": width, "height": 800})
                page.goto((site / rel).as_uri(), wait_until="load")
                size = page.evaluate(
                    "() => [document.documentElement.scrollWidth,"
                    " document.documentElement.clientWidth]"
                )
                assert size[0] <= size[1], (rel, width, size)
                for role in ("banner", "navigation", "main", "contentinfo"):
                    assert page.get_by_role(role).count() == 1, (rel, role)
                assert page.evaluate("document.documentElement.lang") == "fr"
                if rel != "index.html":
                    assert not page.get_by_text(VIEW_ONLINE).is_visible()
                    assert page.get_by_role("heading", level=1).first.is_visible()
            assert errors == [], (rel, errors)
        finally:
            page.close()


def test_preview_serves_the_archive_with_the_built_issues(sent: Path) -> None:
    from newsletter.web.preview import serve

    layout = Layout.at(sent)
    stop = threading.Event()
    ready: list[str] = []
    got = threading.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        got.set()

    thread = threading.Thread(
        target=serve,
        args=(layout, "2026-11"),
        kwargs={
            "settings": load_settings(layout), "port": 0, "open_browser": False,
            "as_email": None, "subscribers_path": sent / "subscribers.csv",
            "on_ready": on_ready, "on_event": lambda line: None, "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    try:
        assert got.wait(30)
        base = ready[0].rstrip("/")

        def get(path: str) -> tuple[int, str, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    return r.status, r.headers["Content-Type"], r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers["Content-Type"], exc.read().decode()

        status, kind, body = get("/archive/")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        index = lxml.html.fromstring(body.encode())
        assert [a.get("href") for a in index.cssselect("main article h2 a")] == [
            "2026-12/", "2026-11/",
        ]
        status, kind, body = get("/archive/2026-12")  # redirected to 2026-12/
        assert status == 200 and html.escape(subject(sent, "2026-12"), quote=False) in body
        status, kind, body = get("/archive/feed.xml")
        assert (status, kind) == (200, "application/atom+xml; charset=utf-8")
        assert feedparser.parse(body).version == "atom10"
        assert get("/archive/nothing.html")[0] == 404
        assert not (sent / "site").exists()  # served from memory, never written
    finally:
        stop.set()
        thread.join(timeout=10)
