"""How bytes leave: one SMTP connection (aiosmtplib), reused for many messages.

Every reply becomes an `Outcome`; only a fatal condition (bad credentials, TLS refused)
raises. Credentials never appear in an outcome or an error.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Literal, NamedTuple

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStatus,
    SMTPTimeoutError,
)

from newsletter.errors import DeliveryError
from newsletter.send.classify import Command
from newsletter.send.journal import Status
from newsletter.settings import Settings

#: The private parts of aiosmtplib's SMTPProtocol that `_data` uses (see there).
PROTOCOL_INTERNALS = ("_command_lock", "_response_pending")


class Outcome(NamedTuple):
    status: Literal[Status.SENT, Status.DEFERRED, Status.FAILED]
    code: int | None
    detail: str
    command: Command | None = None  # what the reply answered: a MAIL refusal is the sender's

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


class SmtpTransport:
    """One connection to the relay; reconnects on demand after any failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._command: Command | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
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
        self._sent_on_connection = 0
        return smtp

    async def _starttls(self, smtp: aiosmtplib.SMTP) -> None:
        """STARTTLS, or RelayUnusable: a relay without it, or refusing it (even with 454, which
        is not throttling here), would fail every recipient the same way."""
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        try:
            await smtp.ehlo()
        except SMTPHeloError:
            await smtp.helo()
        if not smtp.supports_extension("starttls"):
            smtp.close()
            raise RelayUnusable(
                f"the relay {where} does not offer STARTTLS",
                field="NEWSLETTER_SMTP_TLS",
                hint=TLS_HINT,
            )
        try:
            await smtp.starttls()
        except SMTPResponseException as exc:
            smtp.close()
            raise RelayUnusable(
                f"the relay {where} refused STARTTLS: {exc.code} {' '.join(exc.message.split())}",
                field="NEWSLETTER_SMTP_TLS",
                hint=TLS_HINT,
            ) from None

    async def send(
        self, sender: str, recipient: str, data: bytes, *, wire_ready: bool = False
    ) -> Outcome:
        """Send one message to one recipient; never raises for a per-message problem.

        `wire_ready`: `data` already has CRLF line endings and no line starting with a dot
        (what `message.py` produces, property-tested), so it is sent without being scanned.
        Addresses were validated before they got here (subscribers.check_address, the
        settings), and aiosmtplib still refuses control characters in any command.
        """
        limit = self.settings.max_per_connection
        if self._smtp is not None and limit and self._sent_on_connection >= limit:
            await self.close()
        self._command = None  # the command a refusal answered
        try:
            return await self._transact(sender, recipient, data, wire_ready=wire_ready)
        except DeliveryError:
            raise
        except SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            await self._reset()
            return outcome_for(refused.code, refused.message, command="RCPT")
        except SMTPResponseException as exc:
            if exc.code == 421 or exc.code < 400:
                await self.close()  # 421: the server is closing the channel
            else:
                await self._reset()
            out = outcome_for(exc.code, exc.message, command=self._command)
            if exc.code >= 400:
                return out
            return Outcome(Status.DEFERRED, exc.code, out.detail, self._command)
        except ssl.SSLError as exc:
            await self.close()
            # Before MAIL FROM no message was in flight (the journal says so).
            raise (RelayUnusable if self._command is None else DeliveryError)(
                f"TLS with {self.settings.smtp_host}:{self.settings.smtp_port} failed: "
                f"{exc.reason or exc}",
                field="NEWSLETTER_SMTP_TLS",
                hint="check NEWSLETTER_SMTP_TLS (starttls, tls or none) and the port",
            ) from None
        except (SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
            return Outcome(Status.DEFERRED, None, _describe(exc, where), self._command)

    async def _transact(
        self, sender: str, recipient: str, data: bytes, *, wire_ready: bool
    ) -> Outcome:
        """MAIL, RCPT, DATA on the (re)opened connection; a refusal raises, naming its command."""
        if self._smtp is None or not self._smtp.is_connected:
            self._smtp = await self._connect()
        smtp = self._smtp
        self._command = "MAIL"
        timeout = self.settings.smtp_timeout
        size = [f"SIZE={len(data)}".encode()] if smtp.supports_extension("size") else []
        reply = await smtp.execute_command(
            b"MAIL", b"FROM:<" + sender.encode() + b">", *size, timeout=timeout
        )
        if reply.code != SMTPStatus.completed:
            raise SMTPSenderRefused(reply.code, reply.message, sender)
        self._command = "RCPT"
        reply = await smtp.execute_command(
            b"RCPT", b"TO:<" + recipient.encode() + b">", timeout=timeout
        )
        if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            raise SMTPRecipientRefused(reply.code, reply.message, recipient)
        self._command = "DATA"
        payload = data + b".\r\n" if wire_ready else wire_format(data)
        response = await _data(smtp, payload, timeout=timeout)
        self._sent_on_connection += 1
        return outcome_for(response.code, response.message, command="DATA")

    async def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            await self._smtp.rset()
        except (SMTPException, OSError, TimeoutError):
            await self.close()

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await asyncio.wait_for(smtp.quit(), timeout=min(self.settings.smtp_timeout, 5))
        except (SMTPException, OSError, TimeoutError):
            pass
        finally:
            smtp.close()


async def login(smtp: aiosmtplib.SMTP, settings: Settings) -> None:
    """AUTH with the configured user; a refusal is a DeliveryError that never shows the password.

    Also used by `newsletter doctor`, so that the password is read in this module only.
    """
    try:
        await smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
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


async def _data(smtp: aiosmtplib.SMTP, payload: bytes, *, timeout: float) -> SMTPResponse:
    """DATA with a payload already in wire format (see `wire_format`).

    Mirrors aiosmtplib 5's `SMTPProtocol.execute_data_command` minus its rewriting; the
    version is pinned in pyproject.toml and every SMTP test goes through here.
    """
    protocol = smtp.protocol
    if protocol is not None:
        check_protocol(protocol)
    if protocol is None or protocol._command_lock is None:
        raise SMTPServerDisconnected("Server not connected")
    try:
        async with protocol._command_lock:
            protocol._response_pending = True
            protocol.write(b"DATA\r\n")
            start = await protocol.read_response(timeout=timeout)
            if start.code != SMTPStatus.start_input:
                raise SMTPDataError(start.code, start.message)
            protocol._response_pending = True
            protocol.write(payload)
            response = await protocol.read_response(timeout=timeout)
            if response.code != SMTPStatus.completed:
                raise SMTPDataError(response.code, response.message)
            return response
    except (SMTPServerDisconnected, SMTPTimeoutError):
        smtp.close()
        raise


def check_protocol(protocol: object) -> None:
    """Refuse to send with an aiosmtplib whose protocol lacks what `_data` relies on.

    Without this, another aiosmtplib would fail with an AttributeError in the middle of a send.
    """
    missing = [name for name in PROTOCOL_INTERNALS if not hasattr(protocol, name)]
    if missing:
        raise DeliveryError(
            f"this aiosmtplib ({aiosmtplib.__version__}) has no SMTPProtocol."
            f"{', '.join(missing)}, which the send's DATA step uses",
            hint="install the aiosmtplib version pinned in pyproject.toml",
        )


def _describe(exc: BaseException, where: str) -> str:
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
