"""How bytes leave: one SMTP connection (aiosmtplib), reused for many messages.

Every reply becomes an `Outcome`; only a fatal condition (bad credentials, TLS refused)
raises. Credentials never appear in an outcome or an error.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable
from typing import Literal, NamedTuple, cast

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPStatus,
)

from newsletter.errors import DeliveryError
from newsletter.send.classify import Command
from newsletter.send.journal import Status
from newsletter.send.wire import Reply, Wire, WireError
from newsletter.settings import Settings


class Outcome(NamedTuple):
    status: Literal[Status.SENT, Status.DEFERRED, Status.FAILED]
    code: int | None
    detail: str
    command: Command | None = None  # what the reply answered: a MAIL refusal is the sender's
    # The message was written and the connection failed before its reply: the relay may have
    # taken it (RFC 1047), so sending it again may deliver a second copy.
    unanswered: bool = False

    @property
    def reply(self) -> str:
        return f"{self.code} {self.detail}".strip() if self.code else self.detail


def outcome_for(code: int, message: str, *, command: Command | None = None) -> Outcome:
    """4xx: try again later; 5xx: permanent for this recipient (unless `classify` says the
    sender was refused, which `engine.decide` turns into a stop)."""
    text = " ".join(message.split())[:500]
    if 200 <= code < 300:
        return Outcome(Status.SENT, code, text, command)
    if 400 <= code < 500:
        return Outcome(Status.DEFERRED, code, text, command)
    return Outcome(Status.FAILED, code, text, command)


class RelayUnusable(DeliveryError):
    """The relay cannot be used at all (TLS, STARTTLS, login), found before MAIL FROM: no
    message was in flight, and no recipient is at fault (issue 13)."""


TLS_HINT = (
    "use port 587 with starttls, port 465 with NEWSLETTER_SMTP_TLS=tls, or none for a relay "
    "on this machine only"
)


class Refused(Exception):
    """A reply that ends the transaction: which command it answered, and the reply."""

    def __init__(self, command: Command, reply: Reply) -> None:
        super().__init__(command, reply)
        self.command = command
        self.reply = reply


#: What each command of a transaction is answered with when it goes well.
ACCEPTED: dict[Command, tuple[int, ...]] = {
    "MAIL": (SMTPStatus.completed,),
    "RCPT": (SMTPStatus.completed, SMTPStatus.will_forward),
    "DATA": (SMTPStatus.start_input,),
}


class SmtpTransport:
    """One connection to the relay; reconnects on demand after any failure.

    aiosmtplib opens it (EHLO, STARTTLS, AUTH); a `Wire` then carries the transactions,
    pipelined when the relay offers PIPELINING (see wire.py).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wire: Wire | None = None
        self._pipelining = False
        self._size = False
        self._sent_on_connection = 0
        self._command: Command | None = None
        self._written = False  # the current message went out whole: only its reply is awaited

    @property
    def _where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    async def _connect(self) -> Wire:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=False,  # done below: a refusal stops the send instead of a retry
            timeout=s.smtp_timeout,
        )
        try:
            await smtp.connect()
        except SMTPConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                raise exc.__cause__ from None  # a TLS failure, not an unreachable relay
            raise
        if s.smtp_tls == "starttls":
            await self._starttls(smtp)
        if smtp.last_ehlo_response is None:  # STARTTLS or login said EHLO already
            try:
                await smtp.ehlo()
            except SMTPHeloError:
                await smtp.helo()  # an old relay without ESMTP
        if s.smtp_username:
            try:
                await login(smtp, s)
            except DeliveryError:
                smtp.close()
                raise
        self._pipelining = smtp.supports_extension("pipelining")
        self._size = smtp.supports_extension("size")
        self._sent_on_connection = 0
        transport = smtp.transport
        if transport is None or transport.is_closing():
            smtp.close()
            raise SMTPServerDisconnected("connection lost after EHLO")
        return Wire.take_over(cast(asyncio.Transport, transport))  # uvloop's: not a subclass

    async def _starttls(self, smtp: aiosmtplib.SMTP) -> None:
        """STARTTLS, or RelayUnusable: a relay without it, or refusing it (even with 454, which
        is not throttling here), would fail every recipient the same way."""
        try:
            await smtp.ehlo()
        except SMTPHeloError:
            await smtp.helo()
        if not smtp.supports_extension("starttls"):
            smtp.close()
            raise RelayUnusable(
                f"the relay {self._where} does not offer STARTTLS",
                field="NEWSLETTER_SMTP_TLS",
                hint=TLS_HINT,
            )
        try:
            await smtp.starttls()
        except SMTPResponseException as exc:
            smtp.close()
            raise RelayUnusable(
                f"the relay {self._where} refused STARTTLS: {exc.code} "
                f"{' '.join(exc.message.split())}",
                field="NEWSLETTER_SMTP_TLS",
                hint=TLS_HINT,
            ) from None

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        wire_ready: bool = False,
        before_data: Awaitable[None] | None = None,
    ) -> Outcome:
        """Send one message to one recipient; never raises for a per-message problem.

        `wire_ready`: `data` already has CRLF line endings and no line starting with a dot
        (what `message.py` produces, property-tested), so it is sent without being scanned.
        Addresses were validated before they got here (subscribers.check_address, the
        settings); a line break in one is still refused here, never written.
        """
        limit = self.settings.max_per_connection
        if self._wire is not None and limit and self._sent_on_connection >= limit:
            await self.close()
        self._command = None  # the command a refusal answered
        self._written = False
        try:
            return await self._transact(
                sender, recipient, data, wire_ready=wire_ready, before_data=before_data
            )
        except DeliveryError:
            raise
        except Refused as refused:
            code, text = refused.reply
            if code == 421 or code < 400:
                await self.close()  # 421: the server is closing the channel
            else:
                await self._reset()
            out = outcome_for(code, text, command=refused.command)
            if code >= 400:
                return out
            return Outcome(Status.DEFERRED, code, out.detail, refused.command)
        except ssl.SSLError as exc:
            await self.close()
            # Before MAIL FROM no message was in flight (the journal says so).
            raise (RelayUnusable if self._command is None else DeliveryError)(
                f"TLS with {self._where} failed: {exc.reason or exc}",
                field="NEWSLETTER_SMTP_TLS",
                hint="check NEWSLETTER_SMTP_TLS (starttls, tls or none) and the port",
            ) from None
        except (WireError, SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            return Outcome(Status.DEFERRED, None, _describe(exc, self._where), self._command,
                           unanswered=self._written)

    async def _transact(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        wire_ready: bool,
        before_data: Awaitable[None] | None = None,
    ) -> Outcome:
        """MAIL, RCPT, DATA on the (re)opened connection, then the message; a refusal raises
        Refused, naming its command."""
        if self._wire is None or not self._wire.is_open:
            self._wire = await self._connect()
        wire = self._wire
        timeout = self.settings.smtp_timeout
        payload = data + b".\r\n" if wire_ready else wire_format(data)
        size = b" SIZE=%d" % len(data) if self._size else b""
        envelope: list[tuple[Command, bytes]] = [
            ("MAIL", b"MAIL FROM:<" + _address(sender) + b">" + size + b"\r\n"),
            ("RCPT", b"RCPT TO:<" + _address(recipient) + b">\r\n"),
            ("DATA", b"DATA\r\n"),
        ]
        self._command = "MAIL"
        if self._pipelining:  # RFC 2920: one write, the three replies read in order
            replies = await wire.send(*(line for _, line in envelope), timeout=timeout)
        else:
            replies = []
            for command, line in envelope:
                self._command = command
                replies += await wire.send(line, timeout=timeout)
                if replies[-1].code not in ACCEPTED[command]:
                    break
        for (command, _), reply in zip(envelope, replies, strict=False):
            if reply.code not in ACCEPTED[command]:
                self._command = command
                if replies[-1].code == SMTPStatus.start_input:
                    # A relay that said 354 after refusing the envelope: an empty message ends it.
                    await wire.send(b".\r\n", timeout=timeout)
                raise Refused(command, reply)
        self._command = "DATA"
        if before_data is not None:
            try:
                await before_data
            except BaseException:  # the relay waits for the message: it must not get one
                self._wire = None
                wire.close()
                raise
        self._written = True  # from here on, a lost connection leaves the outcome unknown
        (reply,) = await wire.send(payload, timeout=timeout)
        self._sent_on_connection += 1
        if reply.code != SMTPStatus.completed:
            raise Refused("DATA", reply)
        return outcome_for(reply.code, reply.text, command="DATA")

    async def _reset(self) -> None:
        if self._wire is None:
            return
        try:
            await self._wire.send(b"RSET\r\n", timeout=self.settings.smtp_timeout)
        except WireError:
            await self.close()

    async def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is None:
            return
        try:
            if wire.is_open:
                await wire.send(b"QUIT\r\n", timeout=min(self.settings.smtp_timeout, 5))
        except WireError:
            pass
        finally:
            wire.close()


def _address(address: str) -> bytes:
    """An envelope address as bytes; a control character would end the command early."""
    if not address.isprintable():  # CR, LF, NUL, any control character
        raise SMTPException(f"an address with a control character: {address!r}")
    return address.encode()


async def login(smtp: aiosmtplib.SMTP, settings: Settings) -> None:
    """AUTH with the configured user; a refusal, a relay without AUTH or no password is a
    RelayUnusable (the send stops, or takes that relay out) that never shows the password.

    Also used by `newsletter doctor`, so that the password is read in this module only.
    """
    user, password = settings.smtp_username, settings.smtp_password.get_secret_value()
    if not password:
        raise RelayUnusable(
            f"no password for user '{user}'",
            field="NEWSLETTER_SMTP_PASSWORD",
            hint="set NEWSLETTER_SMTP_PASSWORD in .env (with several relays: the relay's "
            "password in NEWSLETTER_SMTP_RELAYS)",
        )
    if not smtp.supports_extension("auth"):
        # aiosmtplib raises a bare SMTPException: it would be retried as a temporary failure
        raise RelayUnusable(
            f"the relay {settings.smtp_host}:{settings.smtp_port} offers no AUTH, yet user "
            f"'{user}' is set",
            field="NEWSLETTER_SMTP_USERNAME",
            hint="unset the username if the relay needs no login; otherwise use its "
            "submission port (587 with starttls, 465 with tls): many offer AUTH only over TLS",
        )
    try:
        await smtp.login(user, password)
    except SMTPAuthenticationError as exc:
        raise RelayUnusable(
            f"the relay refused the login for user '{settings.smtp_username}' "
            f"({exc.code} {' '.join(exc.message.split())[:200]})",
            field="NEWSLETTER_SMTP_USERNAME",
            hint="check NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD",
        ) from None


def wire_format(data: bytes) -> bytes:
    """The DATA payload: CRLF line endings, leading dots doubled, the final `.` line.

    aiosmtplib's `data()` runs two regular expressions over every message for this (half of
    the CPU of a send at concurrency 16). Our messages are CRLF-only and `message.py` never
    starts a line with a dot, so two fast byte scans confirm it and nothing is rewritten.
    """
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\r\n"):
        data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = (b"." if data.startswith(b".") else b"") + data.replace(b"\n.", b"\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _describe(exc: BaseException, where: str) -> str:
    if isinstance(exc, WireError):  # "connection lost" or "connection lost: why"
        kind, _, detail = str(exc).partition(": ")
        return f"{kind} ({where}): {detail}" if detail else f"{kind} ({where})"
    kind = {
        "SMTPServerDisconnected": "connection lost",
        "SMTPConnectError": "could not connect",
        "SMTPConnectTimeoutError": "connection timed out",
        "SMTPTimeoutError": "timed out",
        "TimeoutError": "timed out",
        "ConnectionRefusedError": "connection refused",
        "ConnectionResetError": "connection reset",
    }.get(type(exc).__name__, type(exc).__name__)
    if kind in ("could not connect", "connection timed out", "connection refused"):
        return f"{kind} to {where}"  # aiosmtplib's own text repeats host and port
    detail = " ".join(str(exc).split())[:200]
    return f"{kind} ({where}): {detail}" if detail and detail != kind else f"{kind} ({where})"
