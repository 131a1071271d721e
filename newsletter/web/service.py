"""`newsletter serve`: the reader-facing service (one-click unsubscribe, double opt-in, archive).

    GET  /healthz                    200 "ok"
    POST /unsubscribe?token=T        body List-Unsubscribe=One-Click (RFC 8058): 200, no cookie
                                     needed; otherwise the page's button (CSRF checked)
                                     (every form: multipart/form-data or urlencoded)
    GET  /unsubscribe?token=T        a page with a button; a GET never unsubscribes
    POST /resubscribe?token=T        the "subscribe again" button of the done page (CSRF)
    GET  /subscribe, POST /subscribe the form; the POST mails a confirmation link (double opt-in)
    GET  /confirm?token=T            a page with a button; its POST subscribes (CSRF)
    /, /<id>/, /feed.xml             the public archive, with the subscribe form on its pages

A change answered 200 is in state/changes.db first (send/changes.py), then in the list file
under its lock, both by one writer thread in groups (web/writer.py); docs/serve.md tells the
whole design. Beside it: guards.py (headers, body limit, rate limits), tokens.py (signed
values, token -> address), confirmation.py (the email), public_site.py (the archive). Pages
are theme/web/serve/ templates, words from labels.SERVICE_LABELS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from newsletter import archive, archive_pages
from newsletter.errors import ConfigError
from newsletter.labels import SERVICE_LABELS
from newsletter.layout import Layout
from newsletter.send import changes as changelog
from newsletter.send.dkim import Signer
from newsletter.send.relays import load_relays
from newsletter.send.single import send_notice
from newsletter.send.subscribers import check_address
from newsletter.settings import Settings
from newsletter.web import app as web
from newsletter.web.confirmation import SignUpState, confirmation_email, sign_up_state
from newsletter.web.guards import (
    ARCHIVE_CSP,
    BadForm,
    SecurityHeaders,
    TooLarge,
    Window,
    read_form,
)
from newsletter.web.public_site import PublicSite
from newsletter.web.tokens import (
    BadToken,
    Confirmation,
    TokenIndex,
    csrf_ok,
    new_csrf,
    read_confirm,
)
from newsletter.web.writer import Writer

log = logging.getLogger("newsletter.serve")

CSRF_COOKIE = "nl_csrf"
#: POST /subscribe: per client address, and per reader address (the mailbox being mailed).
CLIENT_LIMIT = (10, 600.0)
ADDRESS_LIMIT = (3, 3600.0)


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
        self.newsletter = archive_pages.newsletter_name(settings.sender)
        self.signer = Signer.from_settings(settings, layout=layout)
        self.relays = load_relays(settings, project_file=layout.toml_file)  # a bad list: now
        self.changes = changelog.Changes(changelog.path_in(layout.state_dir))
        self.changes.apply(self.list_path)  # what a killed server recorded but did not apply
        self.writer = Writer(self.changes, self.list_path)
        self.tokens = TokenIndex(self.list_path, self.secret)
        self.per_client = Window(*CLIENT_LIMIT)
        self.per_address = Window(*ADDRESS_LIMIT)
        self.public_site = PublicSite(
            layout, settings, words=self.words, newsletter=self.newsletter
        )
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

    async def read_form(self, request: Request) -> dict[str, str] | Response:
        """The body's fields (urlencoded or multipart), or the 413/400 answer to send."""
        try:
            return await read_form(request)
        except TooLarge:
            return web.text("request body too large\n", status=413)
        except BadForm as exc:
            return web.text(f"the form cannot be read: {exc}\n", status=400)

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
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
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
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
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
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
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
        data = confirmation_email(
            email, name, settings=self.settings, words=self.words, newsletter=self.newsletter,
            now=now,
        )
        outcome = await send_notice(
            data, recipient=email, settings=self.settings, signer=self.signer,
            relays=self.relays,
        )
        if outcome.code is None or outcome.code >= 400:
            log.warning("confirmation to a reader not sent: %s", outcome.reply)
        return done

    def read_confirm(self, request: Request) -> Confirmation | None:
        try:
            return read_confirm(
                request.query_params.get("token", ""), secret=self.secret, now=time.time(),
                lifetime=self.settings.confirm_hours * 3600,
            )
        except BadToken:
            return None

    def sign_up_state(self, found: Confirmation) -> SignUpState:
        return sign_up_state(
            found, list_path=self.list_path, rel=self.layout.rel(self.list_path),
            last_change=self.changes.last_at(found.email),
        )

    def not_pending(self, state: str, found: Confirmation) -> HTMLResponse:
        """The page of a confirmation link that has nothing left to confirm: changes nothing."""
        key = "already_subscribed" if state == "subscribed" else "link_used"
        line = self.words[key].format(email=found.email, name=self.newsletter)
        return self.message("already_confirmed_title", [line])

    async def confirm_page(self, request: Request) -> Response:
        found = self.read_confirm(request)
        if found is None:
            return self.bad_link()
        state = await run_in_threadpool(self.sign_up_state, found)
        if state != "pending":
            return self.not_pending(state, found)
        token = quote(request.query_params["token"])
        intro = self.words["confirm_intro"].format(email=found.email, name=self.newsletter)
        return self.message(
            "confirm_title", [intro], button=self.words["confirm_button"],
            action=f"/confirm?token={token}",
        )

    async def confirm(self, request: Request) -> Response:
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
        found = self.read_confirm(request)
        if found is None:
            return self.bad_link()
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return self.message("confirm_title", [self.words["expired_form"]], status=403)
        state = await run_in_threadpool(self.sign_up_state, found)
        if state != "pending":  # a replay: the first confirmation, or what followed, stands
            return self.not_pending(state, found)
        await self.change(found.email, "subscribe", "form", found.name)
        return self.message("confirmed_title", [self.words["confirmed"].format(email=found.email)])

    async def site(self, request: Request) -> Response:
        """The archive as `newsletter archive` writes it, the subscribe form on its pages."""
        files = await run_in_threadpool(self.public_site.files)
        rest = request.path_params.get("rest", "")
        name = rest + archive.INDEX if rest == "" or rest.endswith("/") else rest
        if f"{name}/{archive.INDEX}" in files:  # a fixed path of ours: never an open redirect
            return Response(status_code=308, headers={"Location": "/" + quote(name) + "/"})
        if name not in files:
            return web.text("not found\n", status=404)
        headers = {"Content-Type": archive.content_type(name), "Cache-Control": "max-age=60"}
        headers["Content-Security-Policy"] = ARCHIVE_CSP
        return Response(files[name], headers=headers)

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
    """Serve until SIGINT/SIGTERM (uvicorn's own handlers: a graceful stop).

    `on_ready(url)` is called once the socket is bound and listening, with its real port;
    a port that cannot be had raises NewsletterError first (`app.listen`)."""
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
    sock = web.listen(host, port)
    try:
        if on_ready is not None:
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{bound}/")
        server.run(sockets=[sock])
    finally:
        sock.close()
