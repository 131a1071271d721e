"""VERP: each message's envelope sender names its recipient, through a signed journal look-up."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import RunCli, snapshot
from pydantic import SecretStr
from smtpserver import TestServer

from newsletter.cli import ExitCode
from newsletter.layout import Layout
from newsletter.send.journal import all_recipients
from newsletter.send.verp import Verp
from newsletter.settings import Settings

SECRET = "a-long-random-secret-for-the-tests"
BOUNCE_DOMAIN = "bounces.coeursurparis.example"


def verp_env(server: TestServer, **extra: str) -> dict[str, str]:
    return server.env(NEWSLETTER_BOUNCE_DOMAIN=BOUNCE_DOMAIN, NEWSLETTER_SECRET_KEY=SECRET, **extra)


def test_each_envelope_sender_decodes_back_to_its_recipient(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = run_cli("send", "2026-11", root=built, env=verp_env(smtp_server))
    assert result.exit_code == 0, result.stdout + result.stderr
    verp = Verp(domain=BOUNCE_DOMAIN, secret=SECRET)
    index = verp.index(all_recipients(Layout.at(built).journal_path))
    assert len(smtp_server.received) == len(index) > 1
    for received in smtp_server.received:
        local = received.envelope_from.partition("@")[0]
        assert re.fullmatch(r"bounce\+[0-9a-f]{20}", local) and len(local) <= 64
        assert received.envelope_from.endswith("@" + BOUNCE_DOMAIN)
        token = verp.token_of(received.envelope_from)
        assert token is not None
        assert index[token] == ("2026-11", received.rcpt[0])
        # The headers do not change: From stays the newsletter's address.
        assert received.message["From"].addresses[0].addr_spec == "lettre@coeursurparis.example"
    assert len({r.envelope_from for r in smtp_server.received}) == len(index)


def test_a_tampered_or_foreign_return_path_maps_to_nobody(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    assert run_cli("send", "2026-11", root=built, env=verp_env(smtp_server)).exit_code == 0
    verp = Verp(domain=BOUNCE_DOMAIN, secret=SECRET)
    index = verp.index(all_recipients(Layout.at(built).journal_path))
    address = smtp_server.received[0].envelope_from
    token = address[len("bounce+") : address.index("@")]
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert index.get(flipped) is None
    assert verp.token_of(address.replace(BOUNCE_DOMAIN, "example.com")) is None
    assert verp.token_of(f"bounce+{token[:-1]}@{BOUNCE_DOMAIN}") is None
    other_secret = Verp(domain=BOUNCE_DOMAIN, secret="another secret")
    assert other_secret.token("2026-11", smtp_server.received[0].rcpt[0]) != token


def test_without_a_bounce_domain_the_envelope_sender_is_the_from_address(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    assert run_cli("send", "2026-11", root=built, env=smtp_server.env()).exit_code == 0
    assert {r.envelope_from for r in smtp_server.received} == {"lettre@coeursurparis.example"}


def test_a_bounce_domain_needs_the_secret_key(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    before = snapshot(built)
    env = smtp_server.env(NEWSLETTER_BOUNCE_DOMAIN=BOUNCE_DOMAIN)
    result = run_cli("send", "2026-11", root=built, env=env)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == (
        "error: .env: NEWSLETTER_SECRET_KEY: NEWSLETTER_BOUNCE_DOMAIN is set but "
        "NEWSLETTER_SECRET_KEY is empty (set a long random secret: the return paths are "
        "signed with it)\n"
    )
    assert smtp_server.received == []
    assert snapshot(built) == before


def test_the_token_ignores_the_case_of_the_address() -> None:
    settings = Settings(bounce_domain="Bounces.Example.FR", secret_key=SecretStr(SECRET))
    verp = Verp.from_settings(settings)
    assert verp is not None and verp.domain == "bounces.example.fr"
    assert verp.token("2026-11", "Amelie@Example.fr") == verp.token("2026-11", "amelie@example.fr")
    path = verp.return_path("2026-11", "amelie@example.fr")
    assert verp.token_of(path.upper().replace("BOUNCE+", "bounce+")) == verp.token(
        "2026-11", "amelie@example.fr"
    )
