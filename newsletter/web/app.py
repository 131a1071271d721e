"""The HTTP layer every web page of the project goes through: the preview now, the reader-facing
service next. An app is `make_app(routes)`; it runs under uvicorn, in a thread (`Listener`, the
preview) or as the process (`uvicorn newsletter.web.<service>:app`, the service).

    make_app(routes, allowed_hosts) ─▶ Starlette
        HostGuard      only our own names (DNS rebinding gets 403)
        /static/...    newsletter/theme/static/ (CSS, JS)
        routes         pages rendered with `page(name, **context)` from newsletter/theme/web/
    archive_response(layout, settings, rest)  /archive/...: the archive generated in memory
    Listener(app, port=0)  uvicorn on 127.0.0.1 in a thread: .url, .stop()
    listen(host, port)     a bound, listening socket (`serve`), or one error naming the address

Pages are Jinja templates with autoescape on, so no handler builds HTML itself.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter import archive
from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.settings import Settings

HOST = "127.0.0.1"  # never another interface: the preview may show a subscriber's data
THEME = Path(__file__).resolve().parent.parent / "theme"
STATIC_PREFIX = "/static"
#: How long `Listener` waits for uvicorn to accept connections before giving up.
STARTUP_SECONDS = 10.0
NO_STORE = {"Cache-Control": "no-store"}  # a preview is always the latest build


# -- pages --------------------------------------------------------------------------------


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def _static_url(name: str) -> str:
    # The file's mtime in the URL: a browser never keeps an old stylesheet across an upgrade.
    stamp = int((THEME / "static" / name).stat().st_mtime)
    return f"{STATIC_PREFIX}/{name}?v={stamp}"


@cache
def environment() -> jinja2.Environment:
    """The Jinja environment of the web pages (newsletter/theme/web/), built once."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(THEME / "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a page is an error, not a blank
        trim_blocks=False,
    )
    env.filters["kb"] = _kb
    env.globals["static_url"] = _static_url
    return env


def page(name: str, /, *, status: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` of newsletter/theme/web/ rendered with `context`."""
    html = environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def text(body: str, /, *, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status, headers=NO_STORE)


# -- the app ------------------------------------------------------------------------------


class HostGuard:
    """Answers 403 unless the Host header names one of `allowed` (a name, without the port).

    Another site's page that rebinds its DNS name to 127.0.0.1 sends its own name: it gets
    nothing. (Starlette's TrustedHostMiddleware answers 400; we keep the preview's 403.)
    """

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host, _, _port = Headers(scope=scope).get("host", "").partition(":")
            if host not in self.allowed:
                response = PlainTextResponse("unexpected Host header\n", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(routes: Sequence[BaseRoute], *, allowed_hosts: Sequence[str]) -> Starlette:
    """An app serving `routes` and /static/, for requests naming one of `allowed_hosts`."""
    static = Mount(STATIC_PREFIX, app=StaticFiles(directory=THEME / "static"), name="static")
    app = Starlette(routes=[*routes, static])
    app.add_middleware(HostGuard, allowed=allowed_hosts)
    return app


def archive_response(layout: Layout, settings: Settings, rest: str) -> Response:
    """/archive/<rest>: the public archive generated in memory, built issues included."""
    try:
        site = archive.generate(layout, settings=settings, include_unsent=True)
    except NewsletterError as exc:
        return text(f"the archive cannot be generated:\n{exc}\n", status=500)
    name = rest
    if name == "" or name.endswith("/"):
        name += archive.INDEX
    if name in site.files:
        kind = archive.content_type(name)
        return Response(site.files[name], headers={**NO_STORE, "Content-Type": kind})
    if f"{name}/{archive.INDEX}" in site.files:
        return RedirectResponse(f"/archive/{rest}/", status_code=302)
    return text("not in the archive\n", status=404)


# -- running it ---------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: a free port) and listening, or NewsletterError
    naming the address and what to do. Bound here, before anything is printed, so `serve`
    announces an address only once it holds it (uvicorn would log its own error after)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restart may bind while the last run's connections are in TIME_WAIT
    # (on Linux this never lets two servers listen on one port).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hints = {
            errno.EADDRINUSE: "another program listens there: stop it, or choose another "
            "port with --port",
            errno.EACCES: "ports below 1024 need privileges: choose another with --port, "
            "behind the reverse proxy",
            errno.EADDRNOTAVAIL: "the address is not one of this machine's: check --host",
        }
        reason = (exc.strerror or str(exc)).lower()
        raise NewsletterError(
            f"cannot listen on {shown}: {reason}",
            hint=hints.get(exc.errno or 0, "check --host and --port"),
        ) from None
    return sock


class Listener:
    """`app` served by uvicorn on 127.0.0.1:`port` (0: a free one), in a daemon thread.

    The socket is bound here, so a taken port raises NewsletterError before anything starts.
    """

    def __init__(self, app: ASGIApp, *, port: int, name: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            sock.close()
            raise NewsletterError(
                f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                hint="pick another port with --port, or omit it for a free one",
            ) from None
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> None:
        """Start serving; return once uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise NewsletterError(f"the web server on {HOST}:{self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
