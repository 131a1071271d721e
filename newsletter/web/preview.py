"""`newsletter preview`: a live-reloading page on 127.0.0.1 showing one issue as readers get it.

    watchfiles: content/ templates/ issues/ .env                         (web/watch.py)
        └─ build_issue ─▶ build/<id>/ ─▶ Snapshot ─ version += 1   (web/live.py, snapshot.py)
    HTTP (web/app.py: Starlette under uvicorn, templates from newsletter/theme/web/)
          /             the page: desktop and 375 px frames, subject, From, text, size, checks
          /email.html   build/<id>/email.html, recipient placeholders filled
          /__reload     long poll: answers as soon as the version moves
          /issues       every issue; /issue/<id>/ shows what build/<id>/ holds
          /archive/     the public archive as `newsletter archive --all` would write it

The build is the one `build-issue` does (`build.build_issue`, into `build/<id>/`), and the
frames load that `email.html` with only the recipient placeholders filled. The reload script
(theme/static/preview.js) is loaded by the page around the frames, added at serve time (as
mkdocs does), so the file on disk stays byte for byte the one `send` will mail. A failed
rebuild keeps serving the last good build and shows the error in a banner (`#build-error`);
the next good build removes it.
"""

from __future__ import annotations

import datetime as dt
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from newsletter.compose.issue import load_spec
from newsletter.errors import IssueError, NewsletterError
from newsletter.layout import Layout
from newsletter.send.message import SAMPLE_READER
from newsletter.settings import Settings
from newsletter.web import app as web
from newsletter.web.issues import describe_issues, issue_ids, issue_rows, open_built
from newsletter.web.live import LivePreview, OnEvent
from newsletter.web.snapshot import Snapshot, find_subscriber, snapshot_of, who
from newsletter.web.watch import start_watchers

__all__ = ["describe_issues", "open_built", "preview_app", "serve"]

DESKTOP_FRAME_PX = 640  # the 600 px email body and its margins
MOBILE_FRAME_PX = 375
#: How long a `/__reload` request is held before it answers "no change" (the page asks again).
LONG_POLL_SECONDS = 20.0
ALLOWED_HOSTS = (web.HOST, "localhost")


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


class PreviewPages:
    """The preview's endpoints, over one LivePreview. Plain functions: Starlette runs them in
    its thread pool, where the long poll may block on the preview's condition."""

    def __init__(self, preview: LivePreview) -> None:
        self.preview = preview

    def _email_page(self, name: str, snapshot: Snapshot | None, **context: Any) -> Response:
        return web.page(
            name, s=snapshot, desktop_px=DESKTOP_FRAME_PX, mobile_px=MOBILE_FRAME_PX, **context
        )

    def index(self, request: Request) -> Response:
        """The live page of the served issue, with the reload script."""
        preview = self.preview
        snapshot, errors, error_at, version = preview.view()
        built = ""
        if snapshot is not None:
            took = f" in {snapshot.build_ms} ms" if snapshot.build_ms is not None else " (earlier)"
            built = f"built {_clock(snapshot.built_at)}{took}"
        shown = (
            f"showing the last good build ({_clock(snapshot.built_at)})"
            if snapshot else "nothing to show until a build succeeds"
        )
        return self._email_page(
            "preview.html", snapshot, issue_id=preview.issue_id, reader=who(preview.subscriber),
            built=built, errors=errors, error_at=_clock(error_at) if error_at else "",
            shown=shown, version=version,
        )

    def reload(self, request: Request) -> Response:
        seen = request.query_params.get("v", "")
        version = self.preview.wait_for_change(seen, LONG_POLL_SECONDS)
        return JSONResponse({"version": version}, headers=web.NO_STORE)

    def email(self, request: Request) -> Response:
        return _email(self.preview.snapshot, request.url.path.endswith(".html"))

    def issues(self, request: Request) -> Response:
        live = self.preview.issue_id
        rows = [
            {
                "issue_id": row.issue_id, "date": row.date, "subject": row.subject,
                "link": "/" if row.issue_id == live else f"/issue/{quote(row.issue_id)}/",
                "state": "live" if row.issue_id == live else row.state,
            }
            for row in issue_rows(self.preview.layout)
        ]
        return web.page("issues.html", live_id=live, rows=rows)

    def other_issue(self, request: Request) -> Response:
        """/issue/<id>/ and /issue/<id>/email.html: what build/<id>/ holds (no rebuild)."""
        preview = self.preview
        issue_id = request.path_params["issue_id"]
        want_email = request.url.path.endswith("/email.html")
        if issue_id == preview.issue_id and not want_email:
            return RedirectResponse("/", status_code=302)
        if issue_id not in issue_ids(preview.layout):
            return web.text("no such issue\n", status=404)
        snapshot: Snapshot | None = None
        problem: str | None = None
        try:
            snapshot = snapshot_of(
                preview.layout.build_dir(issue_id), settings=preview.settings,
                subscriber=preview.subscriber,
            )
        except (NewsletterError, OSError, ValueError) as exc:
            problem = str(exc)
        if want_email and snapshot is not None:
            return _email(snapshot, html=True)
        return self._email_page(
            "issue.html", snapshot, status=404 if problem else 200, issue_id=issue_id,
            live_id=preview.issue_id,
            build_dir=preview.layout.rel(preview.layout.build_dir(issue_id)),
            errors=[problem] if problem else [], error_at="", shown="",
            tag=str(int(snapshot.built_at)) if snapshot else "0",
        )

    def archive(self, request: Request) -> Response:
        preview = self.preview
        return web.archive_response(preview.layout, preview.settings, request.path_params["rest"])

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index), Route("/index.html", self.index),
            Route("/__reload", self.reload),
            Route("/email.html", self.email), Route("/email.txt", self.email),
            Route("/issues", self.issues), Route("/issues/", self.issues),
            Route("/issue/{issue_id}/", self.other_issue),
            Route("/issue/{issue_id}/email.html", self.other_issue),
            Route("/archive", lambda request: RedirectResponse("/archive/", status_code=302)),
            Route("/archive/{rest:path}", self.archive),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
        ]


def _email(snapshot: Snapshot | None, html: bool) -> Response:
    if snapshot is None:
        return web.text("no good build yet\n", status=503)
    if html:
        return Response(snapshot.html, media_type="text/html", headers=web.NO_STORE)
    return web.text(snapshot.text)


def preview_app(preview: LivePreview) -> Starlette:
    """The ASGI app of a live preview, for requests naming 127.0.0.1 or localhost."""
    return web.make_app(PreviewPages(preview).routes(), allowed_hosts=ALLOWED_HOSTS)


def serve(
    layout: Layout,
    issue_id: str,
    *,
    settings: Settings,
    port: int,
    open_browser: bool,
    as_email: str | None,
    subscribers_path: Path,
    on_ready: Callable[[str], None],
    on_event: OnEvent,
    stop: threading.Event | None = None,
) -> None:
    """Build the issue, serve its preview on 127.0.0.1:`port` (0: a free one), rebuild on change.

    Blocks until Ctrl-C (or until `stop` is set), then closes the server and the watchers and
    returns. Raises before serving: IssueError (no such issue), SubscriberError (`as_email`
    not in the list), NewsletterError (the port is taken). A failed build, first or later,
    does not stop the preview: the page shows the error until a build succeeds.
    """
    subscriber = SAMPLE_READER
    if as_email is not None:
        subscriber = find_subscriber(subscribers_path, as_email, rel=layout.rel(subscribers_path))
    if not layout.issue_file(issue_id).is_file():
        load_spec(layout, issue_id)  # raises the IssueError that names the known issues
        raise IssueError("issue file not found", path=layout.rel(layout.issue_file(issue_id)))

    preview = LivePreview(
        layout, issue_id, settings=settings, subscriber=subscriber, on_event=on_event
    )
    # Bound first: a port in use is an error before the build replaces build/<id>/.
    listener = web.Listener(preview_app(preview), port=port, name="preview-http")
    if not preview.rebuild(reload_settings=False):
        preview.show_last_build()
    listener.start()
    closing = threading.Event()
    watchers: list[threading.Thread] = []
    try:
        watchers = start_watchers(preview, closing, on_event)
        on_ready(listener.url)
        if open_browser:  # in a thread: a console browser would block until it quits
            threading.Thread(target=webbrowser.open, args=(listener.url,), daemon=True).start()
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        closing.set()
        preview.close()  # answers the long polls now, so the server stops at once
        listener.stop()
        for thread in watchers:
            thread.join(timeout=5)
    on_event("Preview stopped.")
