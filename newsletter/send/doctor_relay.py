"""`newsletter doctor`, the relays: each answers EHLO, negotiates TLS as set, takes the login.

    relays      the relays listed (NEWSLETTER_SMTP_RELAYS or [[relay]]), when they are, with
                the shares the send will use
    relay       the relay answers EHLO (NEWSLETTER_SMTP_HOST, _PORT), or each listed one (all
                at once)
    tls         STARTTLS offered and negotiated (starttls), implicit TLS (tls), or none
    login       the relay accepts the login, when a username is set (transport.login: the
                send's own check, so both say the same)

Nothing is sent: the connection ends with QUIT after the checks.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import aiosmtplib

from newsletter.errors import NewsletterError
from newsletter.findings import Finding
from newsletter.layout import Layout
from newsletter.settings import Settings

if TYPE_CHECKING:
    from newsletter.send.relays import Relay

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class _Target:
    """One relay to check, and how its findings name it and its fix: the one relay of the
    NEWSLETTER_SMTP_* settings (the defaults), or one listed in NEWSLETTER_SMTP_RELAYS or
    newsletter.toml's [[relay]] tables."""

    settings: Settings  # pointed at this relay
    where: str  # host:port, or "name (host:port)"
    prefix: str = ""  # "name: " before the tls and login findings of a listed relay
    fix_address: str = "check NEWSLETTER_SMTP_HOST, NEWSLETTER_SMTP_PORT and NEWSLETTER_SMTP_TLS"
    tls_in: str = ""  # where a listed relay's tls is set
    fix_login: str | None = None  # None: the hint of transport.login, about the settings


async def check_relays(layout: Layout, settings: Settings) -> list[Finding]:
    """The relay of the NEWSLETTER_SMTP_* settings, or each listed relay (side by side)."""
    from newsletter.send.relays import listed_relays

    try:
        listed = listed_relays(settings, project_file=layout.toml_file)
    except NewsletterError as exc:
        return [Finding("relays", "error", str(exc))]
    if listed is None:
        s = settings
        return await check_relay(_Target(s, f"{s.smtp_host}:{s.smtp_port}"))
    targets = []
    for r in listed.relays:
        address = f"{r.host}:{r.port}"
        where = f"{r.name} ({address})" if r.name else address
        targets.append(
            _Target(
                r.settings(settings),
                where,
                prefix=f"{r.label}: ",
                fix_address=f"check its host, port and tls in {listed.where}",
                tls_in=listed.where,
                fix_login=f"check its username and password in {listed.where}",
            )
        )
    found = await asyncio.gather(*(check_relay(t) for t in targets))
    shares = ", ".join(_share(r) for r in listed.relays)
    summary = Finding("relays", "ok", f"{len(listed.relays)} from {listed.where}: {shares}")
    return [summary, *(f for findings in found for f in findings)]


def _share(relay: Relay) -> str:
    parts = [f"weight {relay.weight:g}", f"{relay.concurrency} connection(s)"]
    if relay.rate:
        parts.append(f"{relay.rate:g}/s")
    if relay.daily_quota is not None:
        parts.append(f"{relay.daily_quota} a day")
    return f"{relay.label} ({', '.join(parts)})"


async def check_relay(target: _Target) -> list[Finding]:
    s, where = target.settings, target.where
    smtp = aiosmtplib.SMTP(
        hostname=s.smtp_host,
        port=s.smtp_port,
        use_tls=s.smtp_tls == "tls",
        start_tls=False,  # done below, to tell "not offered" from "failed"
        timeout=s.smtp_timeout,
    )
    checks: list[Finding] = []
    try:
        await smtp.connect()
        await smtp.ehlo()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        smtp.close()
        why = f"{where} does not answer: {reason(exc)} ({target.fix_address})"
        return [Finding("relay", "error", why)]
    try:
        checks.append(Finding("relay", "ok", f"{where} answers EHLO ({_offers(smtp)})"))
        tls = await _check_tls(smtp, target)
        checks.append(replace(tls, message=target.prefix + tls.message))
        if tls.severity == "error":
            if s.smtp_username:
                why = "not tried without TLS (the password would cross in clear)"
                checks.append(Finding("login", "warning", target.prefix + why))
            return checks
        if s.smtp_username:
            checks.append(await _check_login(smtp, target))
        return checks
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()


async def _check_login(smtp: aiosmtplib.SMTP, target: _Target) -> Finding:
    from newsletter.send.transport import login

    s, prefix = target.settings, target.prefix
    try:
        await login(smtp, s)
    except NewsletterError as exc:
        return Finding("login", "error", f"{prefix}{exc.message}: {target.fix_login or exc.hint}")
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Finding("login", "error", f"{prefix}login failed: {reason(exc)}")
    return Finding("login", "ok", f"{prefix}the relay accepts user '{s.smtp_username}'")


async def _check_tls(smtp: aiosmtplib.SMTP, target: _Target) -> Finding:
    settings = target.settings
    mode = settings.smtp_tls
    if mode == "tls":
        return Finding("tls", "ok", f"implicit TLS ({_tls_version(smtp)})")
    if mode == "none":
        if settings.smtp_host in LOCAL_HOSTS:
            return Finding("tls", "ok", "none (a relay on this machine)")
        fix = (f"its tls to starttls or tls in {target.tls_in}" if target.tls_in
               else "NEWSLETTER_SMTP_TLS=starttls or tls")
        return Finding(
            "tls", "warning", f"none: the login and the messages cross the network in clear "
            f"(set {fix})"
        )
    if not smtp.supports_extension("starttls"):
        tls = f"tls, in {target.tls_in}" if target.tls_in else "NEWSLETTER_SMTP_TLS=tls"
        return Finding(
            "tls",
            "error",
            f"the relay does not offer STARTTLS (use port 587 with starttls, port 465 with "
            f"{tls}, or none for a relay on this machine only)",
        )
    try:
        await smtp.starttls()
        await smtp.ehlo()
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError, TimeoutError) as exc:
        return Finding("tls", "error", f"STARTTLS failed: {reason(exc)}")
    return Finding("tls", "ok", f"STARTTLS ({_tls_version(smtp)})")


def _offers(smtp: aiosmtplib.SMTP) -> str:
    extensions = smtp.esmtp_extensions
    shown = []
    for name in ("starttls", "auth", "size", "pipelining", "8bitmime", "smtputf8"):
        if name in extensions:
            value = " ".join(extensions[name].split())
            shown.append(f"{name.upper()} {value}".strip())
    return "offers " + ", ".join(shown) if shown else "no extensions"


def _tls_version(smtp: aiosmtplib.SMTP) -> str:
    transport = smtp.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return str(ssl_object.version()) if ssl_object is not None else "TLS"


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
