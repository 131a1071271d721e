"""The public archive as the service serves it: `newsletter archive`'s files, generated in
memory again whenever a send, a build or an issue file changes, with the sign-up form added
to every page at serve time (site/ on disk stays as `newsletter archive` writes it)."""

from __future__ import annotations

import logging
import threading

from newsletter import archive, archive_feed
from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.settings import Settings
from newsletter.web import app as web

log = logging.getLogger("newsletter.serve")


class PublicSite:
    def __init__(
        self, layout: Layout, settings: Settings, *, words: dict[str, str], newsletter: str
    ) -> None:
        self.layout, self.settings = layout, settings
        self.words, self.newsletter = words, newsletter
        self._site: tuple[tuple[int, ...], dict[str, bytes]] | None = None
        self._lock = threading.Lock()

    def stamp(self) -> tuple[int, ...]:
        """What the archive depends on: a send (the journal), a build, an issue file."""
        journal = self.layout.journal_path
        paths = [journal, journal.with_name(journal.name + "-wal"), self.layout.build_root,
                 self.layout.issues_dir]
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in paths)

    def files(self) -> dict[str, bytes]:
        """The archive's files by relative path ({} when it cannot be generated: logged)."""
        with self._lock:
            stamp = self.stamp()
            if self._site is not None and self._site[0] == stamp:
                return self._site[1]
            try:
                site = archive.generate(self.layout, settings=self.settings)
            except NewsletterError as exc:
                log.error("the archive cannot be generated: %s", exc)
                return {}
            title = self.words["subscribe_title"].format(name=self.newsletter)
            snippet = web.environment().get_template("serve/_archive_subscribe.html").render(
                w=self.words, lang=self.settings.language, title=title, action="/subscribe",
                error="", email="", name="",
            )
            files = {
                name: inject(data, snippet) if name.endswith(".html") else data
                for name, data in site.files.items()
            }
            self._site = (stamp, files)
            return files


def inject(page: bytes, snippet: str) -> bytes:
    """The form before the page's </main>: added at serve time, site/ on disk stays as is."""
    html = page.decode("utf-8")
    at = html.rfind(archive_feed.MAIN_CLOSE)
    if at < 0:
        return page
    return (html[:at] + snippet + html[at:]).encode("utf-8")
