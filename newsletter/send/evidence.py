"""What shows an issue was sent, apart from the journal (issue 13, defect 9).

The journal (state/newsletter.db) is the record of who was mailed. If it is lost, a send
would silently mail everyone again; so before a first send of an issue, `send` looks for:

    build/<id>/sent.json       written when a send of the build begins (`mark_started`),
                               kept by a rebuild
    the suppression file       entries whose `issue` column is this issue
    <archive>/<id>/index.html  the public archive shows the issue (not a page that
                               `archive --all` marked as never sent)

and refuses, naming them, unless --resend.

What an issue was sent with is the journal's: `sent_articles` reads the article lists that
`Journal.bind` recorded, which `build-issue` and `archive` hold a sent issue to.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any

from newsletter import fsio
from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.manifest import Manifest
from newsletter.send.journal import read_only
from newsletter.settings import Settings

MARKER = "sent.json"
#: In the head of an archive page `archive --all` writes for an issue never sent: such a page
#: is a preview, not a sign that the issue went out.
UNSENT_PAGE_META = '<meta name="newsletter-status" content="not sent">'


def mark_started(build_dir: Path, issue_id: str, *, now: float) -> None:
    """Record in build/<id>/ that a send of this build began (kept if already there)."""
    marker = build_dir / MARKER
    if marker.exists():
        return
    data = {"issue": issue_id, "send_started": int(now), "journal": "state/newsletter.db"}
    fsio.write_file(marker, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def sent_evidence(layout: Layout, issue_id: str, *, settings: Settings) -> list[str]:
    """Each thing that shows `issue_id` was sent, as a phrase naming the file; [] for none."""
    found: list[str] = []
    marker = layout.build_dir(issue_id) / MARKER
    if marker.is_file():
        found.append(f"{layout.rel(marker)} (a send began on {_started(marker)})")
    suppressions = layout.resolve(settings.suppressions)
    count = _suppressed_by(suppressions, issue_id)
    if count:
        found.append(
            f"{layout.rel(suppressions)} ({count} address{'es' if count > 1 else ''} "
            f"suppressed by issue {issue_id})"
        )
    page = layout.site_dir(settings.archive_dir) / issue_id / "index.html"
    if page.is_file() and not _marked_unsent(page):
        found.append(f"{layout.rel(page.parent)}/ (the archive shows it)")
    return found


def _marked_unsent(page: Path) -> bool:
    """Is this archive page one of `archive --all` for an issue never sent? (Its head.)"""
    try:
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(65536)
    except OSError:
        return False
    return UNSENT_PAGE_META in head.partition("</head>")[0]


def _started(marker: Path) -> str:
    try:
        when = int(json.loads(marker.read_text(encoding="utf-8"))["send_started"])
        return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown date"


def _suppressed_by(path: Path, issue_id: str) -> int:
    """Entries of the suppression file from this issue (a damaged file: what can be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            return sum(1 for row in csv.DictReader(f) if (row.get("issue") or "") == issue_id)
    except (OSError, csv.Error):
        return 0


def sent_articles(layout: Layout) -> dict[str, tuple[str, ...]]:
    """{issue: the slugs of the articles it was sent with, in order} for every issue whose
    send has begun (a `runs` row and at least one recipient tried).

    The list is what `bind` recorded from the build the first recipients got. A send begun
    before lists were recorded has none: then build/<id>/manifest.json gives it when that
    build is the one the send is bound to (same content hash); otherwise the issue is left
    out. Opens the journal read-only; nothing when there is no journal yet.
    """
    def runs(db: sqlite3.Connection) -> list[Any]:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        listed = "articles" if "articles" in columns else "NULL"
        return db.execute(
            f"SELECT issue, content_hash, {listed} FROM runs WHERE EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.issue = runs.issue)"
        ).fetchall()

    path = layout.journal_path
    rows: list[Any] = read_only(path, runs, empty=[], shown=layout.rel(path))
    out: dict[str, tuple[str, ...]] = {}
    for issue, content_hash, articles in rows:
        if articles is not None:
            with suppress(ValueError, TypeError):  # damaged by hand: as if not recorded
                out[str(issue)] = tuple(str(s) for s in json.loads(articles))
                continue
        try:
            built = Manifest.read(layout.build_dir(str(issue)))
        except NewsletterError:
            continue
        if built.content_hash == content_hash:
            out[str(issue)] = built.articles
    return out
