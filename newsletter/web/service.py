"""`newsletter serve`: the reader-facing service (one-click unsubscribe, double opt-in, archive).

    GET  /healthz                    200 "ok"
    POST /unsubscribe?token=T        body List-Unsubscribe=One-Click (RFC 8058): 200, no cookie
                                     needed; otherwise the page's button (CSRF checked)
    GET  /unsubscribe?token=T        a page with a button; a GET never unsubscribes
    POST /resubscribe?token=T        the "subscribe again" button of the done page (CSRF)
    GET  /subscribe, POST /subscribe the form; the POST mails a confirmation link (double opt-in)
    GET  /confirm?token=T            a page with a button; its POST subscribes (CSRF)
    /, /<id>/, /feed.xml             the public archive, with the subscribe form on its pages

A change answered 200 is in state/changes.db first (send/changes.py), then in the list file
under its lock; docs/serve.md tells the whole design. Pages are theme/web/serve/ templates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import archive
from newsletter.errors import ConfigError, NewsletterError
from newsletter.labels import SERVICE_LABELS
from newsletter.layout import Layout
from newsletter.send import changes as changelog
from newsletter.send.dkim import Signer
from newsletter.send.notice import send_notice
from newsletter.send.subscribers import InvalidRow, check_address, read_rows, unsubscribe_token
from newsletter.settings import Settings
from newsletter.web import app as web
from newsletter.web.tokens import BadToken, confirm_token, csrf_ok, new_csrf, read_confirm
from newsletter.web.writer import Writer

log = logging.getLogger("newsletter.serve")

#: Bodies larger than this are refused (413) before they are read: every form here is tiny.
MAX_BODY = 8 * 1024
CSRF_COOKIE = "nl_csrf"
#: POST /subscribe: per client address, and per reader address (the mailbox being mailed).
CLIENT_LIMIT = (10, 600.0)
ADDRESS_LIMIT = (3, 3600.0)
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The archive's pages are the emails themselves: inline styles, remote images.
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the tokens are in our URLs
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every response; a response's own CSP wins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class TooLarge(Exception):
    pass


async def read_form(request: Request, *, limit: int = MAX_BODY) -> dict[str, str]:
    """The urlencoded body as {name: first value}; TooLarge past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


class Window:
    """At most `count` events per `seconds` and key; memory bounded by MAX_KEYS."""

    MAX_KEYS = 50_000

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        with self._lock:
            if len(self._events) >= self.MAX_KEYS:
                self._events.clear()  # a flood of keys: forget rather than grow without end
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.count:
                return False
            events.append(now)
            return True


class TokenIndex:
    """Unsubscribe token -> address, over the list file; rebuilt when the file is replaced."""

    def __init__(self, path: Path, secret: str) -> None:
        self.path, self.secret = path, secret
        self._map: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int]:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_ino)

    def add(self, email: str) -> None:
        with self._lock:
            self._map[unsubscribe_token(email, self.secret)] = email

    def lookup(self, token: str) -> str | None:
        token = token.strip().lower()
        if len(token) != 64:
            return None
        with self._lock:
            found = self._map.get(token)
            if found is None and self._stamp != self._stat():
                self._stamp = self._stat()
                rel = self.path.name
                for row in read_rows(self.path, rel=rel):
                    if not isinstance(row, InvalidRow):
                        self._map[unsubscribe_token(row.email, self.secret)] = row.email
                found = self._map.get(token)
            return found


class Service:
    """The service's state: settings, the list, the change log, the limits, the archive."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.secret = settings.secret_key.get_secret_value()
        if not settings.public_url or not self.secret:
            missing = "PUBLIC_URL" if not settings.public_url else "SECRET_KEY"
            raise ConfigError(
                "`serve` needs NEWSLETTER_PUBLIC_URL and NEWSLETTER_SECRET_KEY",
                path=".env", field=f"NEWSLETTER_{missing}",
                hint="set the public https address of the service and a long random secret",
            )
        self.layout, self.settings = layout, settings
        self.list_path = layout.resolve(settings.subscribers)
        if not self.list_path.is_file():
            raise ConfigError(
                "the subscriber list file does not exist", path=layout.rel(self.list_path),
                hint="create it with a header line `email,name,status`",
            )
        self.words = SERVICE_LABELS[settings.language]
        self.newsletter = archive.newsletter_name(settings.sender)
        self.signer = Signer.from_settings(settings, layout=layout)
        self.changes = changelog.Changes(changelog.path_in(layout.state_dir))
        self.changes.apply(self.list_path)  # what a killed server recorded but did not apply
        self.writer = Writer(self.changes, self.list_path)
        self.tokens = TokenIndex(self.list_path, self.secret)
        self.per_client = Window(*CLIENT_LIMIT)
        self.per_address = Window(*ADDRESS_LIMIT)
        self._site: tuple[tuple[int, ...], dict[str, bytes]] | None = None
        self._secure = settings.public_url.startswith("https://")

    # -- changes -------------------------------------------------------------------------

    async def change(
        self, email: str, action: changelog.Action, source: str, name: str = ""
    ) -> None:
        """Durable first (SQLite, synchronous=FULL), then applied to the list under its lock,
        in groups by the writer thread; returns once both are done."""
        await asyncio.wrap_future(self.writer.submit(email, action, source, name))
        if action == "subscribe":
            self.tokens.add(email)

    # -- pages ---------------------------------------------------------------------------

    def page(
        self, template: str, title: str, /, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return web.page(
            f"serve/{template}", status=status, lang=self.settings.language, w=self.words,
            newsletter=self.newsletter, title=title, **context,
        )

    def message(
        self, title_key: str, lines: list[str], *, status: int = 200, button: str = "",
        action: str = "",
    ) -> HTMLResponse:
        csrf = new_csrf() if button else ""
        response = self.page(
            "message.html", self.words[title_key], status=status, lines=lines, button=button,
            button_action=action, csrf=csrf,
        )
        if csrf:
            response.set_cookie(
                CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=self._secure,
                path="/", max_age=3600,
            )
        return response

    def bad_link(self) -> HTMLResponse:
        return self.message("bad_link_title", [self.words["bad_link"]], status=400)

    def form(
        self, *, status: int = 200, error: str = "", email: str = "", name: str = ""
    ) -> Response:
        title = self.words["subscribe_title"].format(name=self.newsletter)
        return self.page(
            "subscribe.html", title, status=status, action="/subscribe", error=error,
            email=email, name=name,
        )

    # -- routes --------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return web.text("ok\n")

    async def unsubscribe_page(self, request: Request) -> Response:
        email = self.tokens.lookup(request.query_params.get("token", ""))
        if email is None:
            return self.bad_link()
        token = quote(request.query_params["token"])
        intro = self.words["unsubscribe_intro"].format(name=self.newsletter)
        return self.message(
            "unsubscribe_title", [intro], button=self.words["unsubscribe_button"],
            action=f"/unsubscribe?token={token}",
        )

    async def unsubscribe(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except TooLarge:
            return web.text("request body too large\n", status=413)
        token = request.query_params.get("token", "")
        email = await run_in_threadpool(self.tokens.lookup, token)
        if email is None:
            return web.text("invalid or altered token: nothing changed\n", status=400)
        if form.get("List-Unsubscribe") == "One-Click":  # RFC 8058: no cookie, no redirect
            await self.change(email, "unsubscribe", "one-click")
            return web.text("unsubscribed\n")
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return self.message("unsubscribe_title", [self.words["expired_form"]], status=403)
        await self.change(email, "unsubscribe", "page")
        return self.message(
            "unsubscribed_title", [self.words["unsubscribed"]],
            button=self.words["resubscribe_button"], action=f"/resubscribe?token={quote(token)}",
        )

    async def resubscribe(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except TooLarge:
            return web.text("request body too large\n", status=413)
        email = self.tokens.lookup(request.query_params.get("token", ""))
        if email is None:
            return self.bad_link()
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return self.message("confirm_title", [self.words["expired_form"]], status=403)
        await self.change(email, "subscribe", "resubscribe")
        return self.message("confirmed_title", [self.words["confirmed"].format(email=email)])

    async def subscribe_page(self, request: Request) -> Response:
        return self.form()

    async def subscribe(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except TooLarge:
            return web.text("request body too large\n", status=413)
        raw, name = form.get("email", "").strip(), " ".join(form.get("name", "").split())[:100]
        now = time.time()
        client = request.client.host if request.client else "?"
        if not self.per_client.allow(client, now):
            return self.message("subscribe_title", [self.words["too_many"]], status=429)
        try:
            email = check_address(raw)
        except ValueError:  # email-validator's reason is English: the page says it its way
            error = self.words["invalid_email"]
            return self.form(status=400, error=error, email=raw[:254], name=name)
        done = self.message("check_inbox_title", [self.words["check_inbox"].format(email=email)])
        # The same answer for a bot (honeypot filled), a flood on one mailbox, a new reader,
        # a pending or a subscribed one: the page tells nobody who is on the list.
        if form.get("website") or not self.per_address.allow(email.lower(), now):
            return done
        data = self.confirmation(email, name, now=now)
        outcome = await send_notice(
            data, recipient=email, settings=self.settings, signer=self.signer
        )
        if outcome.code is None or outcome.code >= 400:
            log.warning("confirmation to a reader not sent: %s", outcome.reply)
        return done

    def confirmation(self, email: str, name: str, *, now: float) -> bytes:
        """The confirmation email, rendered from theme/web/serve/confirm_email.*."""
        hours = self.settings.confirm_hours
        token = confirm_token(email, name, expires=int(now + hours * 3600), secret=self.secret)
        link = f"{self.settings.public_url}/confirm?token={token}"
        subject = self.words["mail_subject"].format(name=self.newsletter)
        context = {
            "w": self.words, "lang": self.settings.language, "link": link, "subject": subject,
            "newsletter": self.newsletter, "postal": self.settings.postal_address,
            "body": self.words["mail_body"].format(name=self.newsletter, email=email, hours=hours),
        }
        env = web.environment()
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = email
        msg["Subject"] = subject
        msg["Date"] = formatdate(now)
        msg["Message-ID"] = make_msgid(domain=self.settings.sender_domain)
        msg["List-Id"] = f"<{self.settings.effective_list_id}>"
        msg["Auto-Submitted"] = "auto-replied"  # an answer to the reader's request
        msg.set_content(env.get_template("serve/confirm_email.txt").render(**context))
        msg.add_alternative(
            env.get_template("serve/confirm_email.html").render(**context), subtype="html"
        )
        return msg.as_bytes(policy=SMTP)

    async def confirm_page(self, request: Request) -> Response:
        try:
            found = read_confirm(
                request.query_params.get("token", ""), secret=self.secret, now=time.time()
            )
        except BadToken:
            return self.bad_link()
        token = quote(request.query_params["token"])
        intro = self.words["confirm_intro"].format(email=found.email, name=self.newsletter)
        return self.message(
            "confirm_title", [intro], button=self.words["confirm_button"],
            action=f"/confirm?token={token}",
        )

    async def confirm(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except TooLarge:
            return web.text("request body too large\n", status=413)
        try:
            found = read_confirm(
                request.query_params.get("token", ""), secret=self.secret, now=time.time()
            )
        except BadToken:
            return self.bad_link()
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return self.message("confirm_title", [self.words["expired_form"]], status=403)
        await self.change(found.email, "subscribe", "form", found.name)
        return self.message("confirmed_title", [self.words["confirmed"].format(email=found.email)])

    async def site(self, request: Request) -> Response:
        """The archive as `newsletter archive` writes it, the subscribe form on its pages."""
        files = await run_in_threadpool(self._archive)
        rest = request.path_params.get("rest", "")
        name = rest + archive.INDEX if rest == "" or rest.endswith("/") else rest
        if f"{name}/{archive.INDEX}" in files:  # a fixed path of ours: never an open redirect
            return Response(status_code=308, headers={"Location": "/" + quote(name) + "/"})
        if name not in files:
            return web.text("not found\n", status=404)
        headers = {"Content-Type": archive.content_type(name), "Cache-Control": "max-age=60"}
        headers["Content-Security-Policy"] = ARCHIVE_CSP
        return Response(files[name], headers=headers)

    def _archive_stamp(self) -> tuple[int, ...]:
        """What the archive depends on: a send (the journal), a build, an issue file."""
        journal = self.layout.journal_path
        paths = [journal, journal.with_name(journal.name + "-wal"), self.layout.build_root,
                 self.layout.issues_dir]
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in paths)

    def _archive(self) -> dict[str, bytes]:
        stamp = self._archive_stamp()
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
            name: _inject(data, snippet) if name.endswith(".html") else data
            for name, data in site.files.items()
        }
        self._site = (stamp, files)
        return files

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz),
            Route("/unsubscribe", self.unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe", self.unsubscribe, methods=["POST"]),
            Route("/resubscribe", self.resubscribe, methods=["POST"]),
            Route("/subscribe", self.subscribe_page, methods=["GET"]),
            Route("/subscribe", self.subscribe, methods=["POST"]),
            Route("/confirm", self.confirm_page, methods=["GET"]),
            Route("/confirm", self.confirm, methods=["POST"]),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            # Before the archive's catch-all (make_app mounts /static/ after our routes).
            Mount(web.STATIC_PREFIX, app=StaticFiles(directory=web.THEME / "static")),
            Route("/{rest:path}", self.site, methods=["GET", "HEAD"]),
        ]


def _inject(page: bytes, snippet: str) -> bytes:
    """The form before the page's </main>: added at serve time, site/ on disk stays as is."""
    html = page.decode("utf-8")
    at = html.rfind(archive.MAIN_CLOSE)
    if at < 0:
        return page
    return (html[:at] + snippet + html[at:]).encode("utf-8")


def service_app(layout: Layout, settings: Settings) -> Starlette:
    """The service's ASGI app, for requests naming the public host (or 127.0.0.1, localhost)."""
    service = Service(layout, settings)
    public_host = urlsplit(settings.public_url).hostname or ""
    app = web.make_app(service.routes(), allowed_hosts=[public_host, web.HOST, "localhost"])
    app.add_middleware(SecurityHeaders)
    app.state.service = service
    return app


def run(
    layout: Layout, settings: Settings, *, host: str, port: int, on_ready: Any = None
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handlers: a graceful stop)."""
    import uvicorn

    app = service_app(layout, settings)
    trusted = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        # Forwarded headers only from the configured proxies; uvicorn's default trusts 127.0.0.1.
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted or [],
        server_header=False, timeout_graceful_shutdown=5,
        # Longer than a proxy's idle upstream connections (nginx: 60 s), so the server never
        # closes one just as the proxy sends a request on it (the client would see a reset).
        timeout_keep_alive=75,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/")
    server.run()
