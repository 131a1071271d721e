"""The live state of a preview: the last good build, the last error, a version pages wait on."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from newsletter.compose.build import ChecksFailed, build_issue
from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.send.subscribers import Subscriber
from newsletter.settings import Settings, load_settings
from newsletter.web.snapshot import Snapshot, snapshot_of

OnEvent = Callable[[str], None]


class LivePreview:
    """The last good build of one issue, the last error, and a version the page waits on.

    Shared by the HTTP worker threads and the watcher threads; `rebuild` is serialised.
    """

    def __init__(
        self, layout: Layout, issue_id: str, *, settings: Settings, subscriber: Subscriber,
        on_event: OnEvent,
    ) -> None:
        self.layout = layout
        self.issue_id = issue_id
        self.settings = settings
        self.subscriber = subscriber
        self.on_event = on_event
        self.snapshot: Snapshot | None = None
        self.errors: list[str] = []
        self.error_at: float | None = None
        # A new token per server: a page left open across a restart reloads once it is back.
        self._boot = uuid.uuid4().hex[:8]
        self._count = 0
        self._changed = threading.Condition()
        self._build_lock = threading.Lock()
        self.closed = False

    @property
    def version(self) -> str:
        return f"{self._boot}-{self._count}"

    def rebuild(self, *, reason: str = "", reload_settings: bool = True) -> bool:
        """Build the issue again; on success show it, else keep the last good one and the error."""
        with self._build_lock:
            start = time.perf_counter()
            try:
                if reload_settings:  # so that an edit of .env applies
                    self.settings = load_settings(self.layout)
                result = build_issue(self.layout, self.issue_id, settings=self.settings)
                snapshot = snapshot_of(
                    result.out_dir, settings=self.settings, subscriber=self.subscriber,
                    findings=result.findings,
                    build_ms=round((time.perf_counter() - start) * 1000),
                )
            except ChecksFailed as exc:  # which checks, not only how many
                lines = [f"{f.severity} [{f.code}] {f.where}: {f.message}" for f in exc.findings]
                self._failed([*lines, str(exc)])
                return False
            except NewsletterError as exc:
                self._failed(str(exc).splitlines())
                return False
            except Exception as exc:  # a bug must not stop the preview: show it, keep serving
                self._failed([f"unexpected {type(exc).__name__}: {exc}"])
                return False
            with self._changed:
                self.snapshot = snapshot
                self.errors = []
                self.error_at = None
                self._bump()
            ms = snapshot.build_ms
            self.on_event(f"rebuilt in {ms} ms{reason}" if reload_settings else f"built in {ms} ms")
            return True

    def _failed(self, lines: list[str]) -> None:
        with self._changed:
            self.errors = lines or ["the build failed"]
            self.error_at = time.time()
            self._bump()
        for line in self.errors:
            self.on_event(f"error: {line}")

    def show_last_build(self) -> None:
        """After a failed first build: show what build/<id>/ holds from an earlier build, if any."""
        try:
            snapshot = snapshot_of(
                self.layout.build_dir(self.issue_id), settings=self.settings,
                subscriber=self.subscriber,
            )
        except (NewsletterError, OSError, ValueError):
            return
        with self._changed:
            self.snapshot = snapshot
            self._bump()

    def _bump(self) -> None:
        self._count += 1
        self._changed.notify_all()

    def view(self) -> tuple[Snapshot | None, list[str], float | None, str]:
        """One consistent reading of (snapshot, error lines, error time, version)."""
        with self._changed:
            return self.snapshot, list(self.errors), self.error_at, self.version

    def wait_for_change(self, seen: str, timeout: float) -> str:
        """The version once it differs from `seen`, or the same one after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen or self.closed, timeout)
            return self.version

    def close(self) -> None:
        """Answer every waiting long poll now: the server is stopping."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()
