"""How bytes leave: one SMTP connection (aiosmtplib), reused for many messages.

Every reply becomes an `Outcome`; only a fatal condition (bad credentials, TLS refused)
raises. Credentials never appear in an outcome or an error.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Literal, NamedTuple

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from newsletter.errors import DeliveryError
from newsletter.settings import Settings

Status = Literal["sent", "deferred", "failed"]


class Outcome(NamedTuple):
    status: Status
    code: int | None
    detail: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.detail}".strip() if self.code else self.detail


def outcome_for(code: int, message: str) -> Outcome:
    """4xx: try again later; 5xx: permanent for this recipient."""
    text = " ".join(message.split())[:500]
    if 200 <= code < 300:
        return Outcome("sent", code, text)
    if 400 <= code < 500:
        return Outcome("deferred", code, text)
    return Outcome("failed", code, text)


class SmtpTransport:
    """One connection to the relay; reconnects on demand after any failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._sent_on_connection = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout,
        )
        await smtp.connect()
        if s.smtp_username:
            try:
                await smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            except SMTPAuthenticationError as exc:
                smtp.close()
                raise DeliveryError(
                    f"the relay refused the login for user '{s.smtp_username}' "
                    f"({exc.code} {' '.join(exc.message.split())[:200]})",
                    field="NEWSLETTER_SMTP_USERNAME",
                    hint="check NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD",
                ) from None
        self._sent_on_connection = 0
        return smtp

    async def send(self, sender: str, recipient: str, data: bytes) -> Outcome:
        """Send one message to one recipient; never raises for a per-message problem."""
        limit = self.settings.max_per_connection
        if self._smtp is not None and limit and self._sent_on_connection >= limit:
            await self.close()
        try:
            if self._smtp is None or not self._smtp.is_connected:
                self._smtp = await self._connect()
            smtp = self._smtp
            await smtp.mail(
                sender, options=[f"SIZE={len(data)}"] if smtp.supports_extension("size") else None
            )
            await smtp.rcpt(recipient)
            response = await smtp.data(data)
            self._sent_on_connection += 1
            return outcome_for(response.code, response.message)
        except DeliveryError:
            raise
        except SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            await self._reset()
            return outcome_for(refused.code, refused.message)
        except SMTPResponseException as exc:
            if exc.code == 421 or exc.code < 400:
                await self.close()  # 421: the server is closing the channel
            else:
                await self._reset()
            out = outcome_for(exc.code, exc.message)
            return out if exc.code >= 400 else Outcome("deferred", exc.code, out.detail)
        except ssl.SSLError as exc:
            await self.close()
            raise DeliveryError(
                f"TLS with {self.settings.smtp_host}:{self.settings.smtp_port} failed: "
                f"{exc.reason or exc}",
                field="NEWSLETTER_SMTP_TLS",
                hint="check NEWSLETTER_SMTP_TLS (starttls, tls or none) and the port",
            ) from None
        except (SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
            return Outcome("deferred", None, _describe(exc, where))

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
