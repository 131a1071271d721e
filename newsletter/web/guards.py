"""What keeps the service safe from the open Internet: security headers on every response,
bounded request bodies read as forms (urlencoded or multipart), and sliding-window rate
limits."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncGenerator

from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Bodies larger than this are refused (413) before they are read: every form here is tiny.
MAX_BODY = 8 * 1024
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


class BadForm(ValueError):
    """A body that is no form we read (malformed multipart, a file): the request gets 400."""


#: More fields than any of our forms has (email, name, website, csrf, List-Unsubscribe).
MAX_FIELDS = 32


async def read_form(request: Request, *, limit: int = MAX_BODY) -> dict[str, str]:
    """The form in the body as {name: first value}; TooLarge past `limit` bytes, BadForm
    when it cannot be read.

    Both encodings HTML and RFC 8058 §3.2 allow: `multipart/form-data` (what the RFC says a
    one-click POST SHOULD be, and `curl -F` sends) and `application/x-www-form-urlencoded`.
    A body of any other or no Content-Type is read as urlencoded, as it always was here: a
    one-click POST from a client that forgets the header still unsubscribes. Starlette's
    parsers (python-multipart underneath) read the stream as it comes, so the limit holds
    before the body is whole. A file part is refused (BadForm): every field here is text.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge

    async def bounded() -> AsyncGenerator[bytes, None]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge
            yield chunk

    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    stream = bounded()
    try:
        if media_type == "multipart/form-data":
            parser: MultiPartParser | FormParser = MultiPartParser(
                request.headers, stream, max_files=MAX_FIELDS, max_fields=MAX_FIELDS,
                max_part_size=limit,
            )
        else:
            parser = FormParser(request.headers, stream, max_fields=MAX_FIELDS, max_part_size=limit)
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadForm(exc.message) from None
    finally:
        await stream.aclose()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            await form.close()
            raise BadForm(f"field {name!r} is a file; this form takes text only")
        fields.setdefault(name, value)
    return fields


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
