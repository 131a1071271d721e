"""The transaction layer (newsletter/send/wire.py + transport.py) against real servers.

A scripted SMTP server on 127.0.0.1 answers exactly what a test says, in as many TCP
segments as it says: replies split mid-line, several replies in one segment, multi-line
replies, a 421 nobody asked for, a line that is not SMTP. aiosmtpd (smtpserver.py) is the
well-behaved relay, with and without PIPELINING.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunCli, readers
from smtpserver import Faults, TestServer

from newsletter.send.journal import Status
from newsletter.send.transport import SmtpTransport
from newsletter.settings import Settings

GREETING = b"220 scripted ESMTP\r\n"
EHLO = b"250-scripted\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
MESSAGE = b"From: a@example.fr\r\nTo: b@example.fr\r\nSubject: s\r\n\r\nBonjour\r\n"

# What the scripted server does once EHLO is answered: it reads the client's bytes until
# `until` has been seen, then writes each chunk (a separate segment), or closes (None).
Step = tuple[bytes, list[bytes] | None]


class Scripted:
    """A one-connection SMTP server that plays `steps`, and records what it received."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.received = b""  # read, not yet matched by a step
        self.seen = b""  # read and matched
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        with conn:
            conn.sendall(GREETING)
            self._until(conn, b"\r\n")  # EHLO
            conn.sendall(EHLO)
            for until, chunks in self.steps:
                if not self._until(conn, until):
                    return
                if chunks is None:
                    return  # the connection closes
                for chunk in chunks:
                    conn.sendall(chunk)
                    threading.Event().wait(0.01)  # its own segment
            self._until(conn, b"QUIT\r\n")
            conn.sendall(b"221 bye\r\n")

    def _until(self, conn: socket.socket, marker: bytes) -> bool:
        while marker not in self.received:
            try:
                data = conn.recv(65536)
            except OSError:
                return False
            if not data:
                return False
            self.received += data
        # Consumed: a later step waits for a later occurrence.
        at = self.received.index(marker) + len(marker)
        self.seen += self.received[:at]
        self.received = self.received[at:]
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Step]], Scripted]]:
    servers: list[Scripted] = []

    def start(steps: list[Step]) -> Scripted:
        servers.append(Scripted(steps))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _send(port: int, data: bytes = MESSAGE, *, timeout: float = 5.0) -> tuple[str, int | None, str]:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none",
                        smtp_timeout=timeout)

    async def one() -> tuple[str, int | None, str]:
        transport = SmtpTransport(settings)
        try:
            out = await transport.send("a@example.fr", "b@example.fr", data, wire_ready=True)
        finally:
            await transport.close()
        return str(out.status), out.code, out.detail

    return asyncio.run(one())


def test_pipelined_replies_split_mid_line_and_multi_line_are_read_in_order(
    scripted: Callable[[list[Step]], Scripted],
) -> None:
    server = scripted([
        (b"DATA\r\n", [b"250 2.1.0 o", b"k\r\n250-2.1.5 first line\r\n250-2.1", b".5 second\r\n",
                       b"250 2.1.5 last\r\n354 go ahead\r\n"]),
        (b"\r\n.\r\n", [b"250 2.0.0 queued as ABC\r\n"]),
    ])
    assert _send(server.port) == (Status.SENT, 250, "2.0.0 queued as ABC")
    # The server answers nothing before it has read DATA: a client waiting for the MAIL
    # reply before writing RCPT would have timed out. MAIL, RCPT, DATA went together.
    assert b"\r\nMAIL FROM:<a@example.fr> SIZE=61\r\nRCPT TO:<b@example.fr>\r\nDATA\r\n" in (
        server.seen
    )


def test_a_refused_recipient_after_pipelining_is_a_failure_named_rcpt(
    scripted: Callable[[list[Step]], Scripted],
) -> None:
    server = scripted([
        (b"DATA\r\n", [b"250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n"]),
        (b"RSET\r\n", [b"250 reset\r\n"]),
    ])
    assert _send(server.port) == (Status.FAILED, 550, "5.1.1 no such user")
    assert b"Bonjour" not in server.seen + server.received  # the message never left


def test_a_421_before_closing_defers_and_explains(
    scripted: Callable[[list[Step]], Scripted],
) -> None:
    server = scripted([(b"DATA\r\n", [b"421 4.3.2 shutting down\r\n"]), (b"", None)])
    status, code, detail = _send(server.port)
    assert (status, code) == (Status.DEFERRED, 421)
    assert "shutting down" in detail


def test_a_line_that_is_not_smtp_defers_with_a_clear_reason(
    scripted: Callable[[list[Step]], Scripted],
) -> None:
    server = scripted([(b"DATA\r\n", [b"HTTP/1.1 400 Bad Request\r\n"])])
    status, code, detail = _send(server.port)
    assert (status, code) == (Status.DEFERRED, None)
    assert "a reply that is not SMTP" in detail and "HTTP/1.1 400" in detail


def test_a_server_silent_after_the_message_times_out(
    scripted: Callable[[list[Step]], Scripted],
) -> None:
    server = scripted([(b"DATA\r\n", [b"250 ok\r\n250 ok\r\n354 go\r\n"]), (b"\r\n.\r\n", [])])
    status, code, detail = _send(server.port, timeout=0.5)
    assert (status, code) == (Status.DEFERRED, None)
    assert detail.startswith("timed out (127.0.0.1:")


@pytest.mark.parametrize("pipelining", [True, False])
def test_every_reader_once_with_or_without_pipelining(
    pipelining: bool, built: Path, run_cli: RunCli
) -> None:
    emails = readers(built, 12)
    server = TestServer(Faults(pipelining=pipelining, rcpt={emails[3]: "550 5.1.1 no such user"}))
    server.start()
    try:
        result = run_cli("send", "2026-11", root=built,
                         env=server.env(NEWSLETTER_SMTP_CONCURRENCY="3"))
    finally:
        server.stop()
    assert "Sent 2026-11: 11 sent, 1 failed" in result.stdout, result.stdout + result.stderr
    assert server.recipients() == sorted(e for e in emails if e != emails[3])
