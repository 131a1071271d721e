"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1, a free port) that can misbehave.

Faults are injected into the server, never into the client: per-recipient replies, temporary
refusals for the first N messages, a connection dropped in the middle of DATA, a stall longer
than the client's timeout.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Faults:
    rcpt: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 no such user"
    data_first: list[str] = field(default_factory=list)  # replies to the first DATA commands
    drop_first: int = 0  # close the connection in the middle of the first N DATA commands
    stall_first: int = 0  # sleep `stall_seconds` in the first N DATA commands
    stall_seconds: float = 0.0
    delay: float = 0.0  # time spent on every message (to kill a send part-way)
    rcpt_first: dict[str, list[str]] = field(default_factory=dict)  # replies, then accept
    every_nth: int = 0  # answer `every_nth_reply` to every Nth DATA command
    every_nth_reply: str = "454 4.7.0 Throttling, slow down"
    refuse_all: str = ""  # answer this to every RCPT until cleared (a sender problem)
    mail_from: str = ""  # answer this to every MAIL FROM until cleared (a refused sender)
    offer_starttls: bool = False  # advertise STARTTLS without TLS: aiosmtpd answers it 454
    pipelining: bool = True  # advertise PIPELINING (aiosmtpd reads pipelined commands in order)


@dataclass
class Received:
    envelope_from: str
    rcpt: list[str]
    raw: bytes
    at: float

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class RecordingHandler:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.received: list[Received] = []
        self.data_commands = 0
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        if self.faults.offer_starttls:
            responses.insert(-1, "250-STARTTLS")
        if self.faults.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.faults.mail_from:
            return self.faults.mail_from
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.faults.rcpt.get(address.lower())
        if reply:
            return reply
        if self.faults.refuse_all:
            return self.faults.refuse_all
        queued = self.faults.rcpt_first.get(address.lower())
        if queued:
            return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_commands += 1
            n = self.data_commands
        f = self.faults
        if f.delay:
            await asyncio.sleep(f.delay)
        if n <= f.drop_first:
            assert server.transport is not None
            server.transport.close()
            return "421 dropped"  # never reaches the client
        if n <= f.stall_first:
            await asyncio.sleep(f.stall_seconds)
            return "451 4.4.2 too late"
        if n <= len(f.data_first):
            return f.data_first[n - 1]
        if f.every_nth and n % f.every_nth == 0:
            return f.every_nth_reply
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, time.time())
            )
        return "250 2.0.0 OK queued"

    # -- what the tests look at -------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def recipients(self) -> list[str]:
        return sorted(r for rec in self.received for r in rec.rcpt)


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestServer:
    """aiosmtpd in a thread: for tests that run the CLI, which has its own event loop."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, faults: Faults | None = None, auth: tuple[str, str] | None = None) -> None:
        self.handler = RecordingHandler(faults or Faults())
        kwargs: dict[str, Any] = {}
        if auth is not None:
            kwargs.update(
                authenticator=Authenticator(*auth), auth_require_tls=False, auth_required=True
            )
        # aiosmtpd's Controller checks its own port after starting, so port 0 will not do:
        # take a free port from the OS first.
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10, **kwargs
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def env(self, **extra: str) -> dict[str, str]:
        """The settings that point `newsletter send` at this server."""
        env = {
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(self.port),
            "NEWSLETTER_SMTP_TLS": "none",
            "NEWSLETTER_RETRY_DELAY": "0.05",
            "NEWSLETTER_SMTP_TIMEOUT": "5",
        }
        env.update(extra)
        return env

    def process_env(self, **extra: str) -> dict[str, str]:
        """`env` on top of this process's environment: for a send run as a process."""
        return {**os.environ, **self.env(**extra)}

    # -- passthrough for the tests --------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def wait_received(self, n: int, *, seconds: float = 30) -> int:
        """Wait (bounded) until `n` messages have arrived; how many have."""
        deadline = time.monotonic() + seconds
        while len(self.handler.received) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.handler.received)

    def recipients(self) -> list[str]:
        return self.handler.recipients()


def send_command(root: Path) -> list[str]:
    """`newsletter send 2026-11` on `root`, as a process of its own (for the tests that
    signal it, kill it or watch its children)."""
    return [sys.executable, "-m", "newsletter", "send", "2026-11", "--root", str(root)]
