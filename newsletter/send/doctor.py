"""`newsletter doctor`: the settings checked end to end, without sending anything.

    relay       the relay answers EHLO (NEWSLETTER_SMTP_HOST, _PORT)
    tls         STARTTLS offered and negotiated (starttls), implicit TLS (tls), or none
    login       the relay accepts the login, when NEWSLETTER_SMTP_USERNAME is set
    from        the From domain can be signed for (not a free-mail domain)
    dkim        the key loads; its domain is aligned with From's; it matches the TXT record
                <selector>._domainkey.<domain> when DNS answers ("could not check" otherwise)
    list-id     List-Id under the From domain
    unsubscribe a one-click https URL with a secret key (RFC 8058)
    return-path VERP: a secret key, a domain aligned with From's (SPF alignment)

Each check is data (`Check`); the CLI prints them and exits 1 if any is an error. The DNS
resolver is a parameter: dnspython by default, a function in the tests.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.settings import Settings

Level = Literal["ok", "warning", "error"]
TxtResolver = Callable[[str], list[str] | None]

#: Domains that publish DMARC p=reject: a newsletter sent "From" them is refused everywhere.
FREEMAIL = {
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.fr",
    "outlook.com",
    "outlook.fr",
    "hotmail.com",
    "hotmail.fr",
    "live.com",
    "live.fr",
    "aol.com",
    "icloud.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
}
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str


def related_domains(a: str, b: str) -> bool:
    """Same organisational domain, roughly: the last two labels (no public suffix list)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a) or _org(a) == _org(b)


def _org(domain: str) -> str:
    return ".".join(domain.split(".")[-2:])


def resolve_txt(name: str, *, timeout: float = 5.0) -> list[str] | None:
    """TXT records with dnspython: [] if the name has none, None if it does not exist."""
    try:
        import dns.exception
        import dns.resolver
    except ImportError:
        raise RuntimeError("dnspython is not installed") from None
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=timeout)
    except dns.resolver.NXDOMAIN:
        return None
    except dns.resolver.NoAnswer:
        return []
    except dns.exception.DNSException as exc:
        raise RuntimeError(str(exc) or type(exc).__name__) from None
    return [b"".join(r.strings).decode("ascii", "replace") for r in answer]


async def diagnose(
    layout: Layout, settings: Settings, *, resolve: TxtResolver | None = None
) -> list[Check]:
    """Every check, in order; never raises for what it checks."""
    checks = await check_relay(settings)
    checks += check_sender(settings)
    checks += check_dkim(layout, settings, resolve=resolve or resolve_txt)
    checks += check_headers(settings)
    checks += check_return_path(settings)
    return checks


# -- the relay ---------------------------------------------------------------------------------


async def check_relay(settings: Settings) -> list[Check]:
    from newsletter.send.transport import login

    s = settings
    where = f"{s.smtp_host}:{s.smtp_port}"
    smtp = aiosmtplib.SMTP(
        hostname=s.smtp_host,
        port=s.smtp_port,
        use_tls=s.smtp_tls == "tls",
        start_tls=False,  # done below, to tell "not offered" from "failed"
        timeout=s.smtp_timeout,
    )
    checks: list[Check] = []
    try:
        await smtp.connect()
        await smtp.ehlo()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        smtp.close()
        hint = " (check NEWSLETTER_SMTP_HOST, NEWSLETTER_SMTP_PORT and NEWSLETTER_SMTP_TLS)"
        return [Check("relay", "error", f"{where} does not answer: {_reason(exc)}{hint}")]
    try:
        checks.append(Check("relay", "ok", f"{where} answers EHLO ({_offers(smtp)})"))
        checks.append(await _check_tls(smtp, settings))
        if checks[-1].level == "error":
            if s.smtp_username:
                why = "not tried without TLS (the password would cross in clear)"
                checks.append(Check("login", "warning", why))
            return checks
        if s.smtp_username:
            if not smtp.supports_extension("auth"):
                checks.append(
                    Check(
                        "login",
                        "error",
                        f"the relay offers no AUTH, yet NEWSLETTER_SMTP_USERNAME is set "
                        f"('{s.smtp_username}')",
                    )
                )
            else:
                try:
                    await login(smtp, settings)
                    checks.append(
                        Check("login", "ok", f"the relay accepts user '{s.smtp_username}'")
                    )
                except NewsletterError as exc:
                    checks.append(Check("login", "error", f"{exc.message}: {exc.hint}"))
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    checks.append(Check("login", "error", f"login failed: {_reason(exc)}"))
        return checks
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()


async def _check_tls(smtp: aiosmtplib.SMTP, settings: Settings) -> Check:
    mode = settings.smtp_tls
    if mode == "tls":
        return Check("tls", "ok", f"implicit TLS ({_tls_version(smtp)})")
    if mode == "none":
        if settings.smtp_host in LOCAL_HOSTS:
            return Check("tls", "ok", "none (a relay on this machine)")
        return Check(
            "tls",
            "warning",
            "none: the login and the messages cross the network in clear "
            "(set NEWSLETTER_SMTP_TLS=starttls or tls)",
        )
    if not smtp.supports_extension("starttls"):
        return Check(
            "tls",
            "error",
            "the relay does not offer STARTTLS (use port 587 with starttls, port 465 with "
            "NEWSLETTER_SMTP_TLS=tls, or none for a relay on this machine only)",
        )
    try:
        await smtp.starttls()
        await smtp.ehlo()
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError, TimeoutError) as exc:
        return Check("tls", "error", f"STARTTLS failed: {_reason(exc)}")
    return Check("tls", "ok", f"STARTTLS ({_tls_version(smtp)})")


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


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- the sender, DKIM, headers --------------------------------------------------------------


def check_sender(settings: Settings) -> list[Check]:
    domain = settings.sender_domain.lower()
    if domain in FREEMAIL:
        return [
            Check(
                "from",
                "error",
                f"{settings.sender_address}: {domain} refuses mail sent in its name from "
                "elsewhere (DMARC p=reject); use an address at your own domain",
            )
        ]
    return [Check("from", "ok", settings.sender_address)]


def check_dkim(layout: Layout, settings: Settings, *, resolve: TxtResolver) -> list[Check]:
    from newsletter.send.dkim import Signer

    try:
        signer = Signer.from_settings(settings, layout=layout)
    except NewsletterError as exc:
        return [Check("dkim", "error", str(exc))]
    if signer is None:
        return [
            Check(
                "dkim",
                "warning",
                "off: messages are not signed, and Gmail and Yahoo ask bulk senders for DKIM "
                "(set NEWSLETTER_DKIM_KEY_FILE and NEWSLETTER_DKIM_SELECTOR)",
            )
        ]
    checks = [
        Check(
            "dkim",
            "ok",
            f"{signer.key.describe()} key, d={signer.domain}, s={signer.selector}",
        )
    ]
    if not related_domains(signer.domain, settings.sender_domain):
        checks.append(
            Check(
                "dkim",
                "warning",
                f"d={signer.domain} is not aligned with the From domain "
                f"{settings.sender_domain}: DMARC will not count the signature",
            )
        )
    try:
        level, message = signer.check_dns(resolve)
    except Exception as exc:  # no network, no resolver, a timeout: say so, do not fail
        checks.append(Check("dkim-dns", "warning", f"could not check: {_reason(exc)}"))
    else:
        checks.append(Check("dkim-dns", level, message))
    return checks


def check_headers(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    list_id = settings.effective_list_id
    domain = settings.sender_domain
    if any(c in list_id for c in "<> @\t"):
        checks.append(
            Check(
                "list-id",
                "error",
                f"NEWSLETTER_LIST_ID '{list_id}' must be the id alone, e.g. newsletter.{domain}",
            )
        )
    elif not related_domains(list_id, domain):
        checks.append(
            Check(
                "list-id",
                "warning",
                f"{list_id} is not under the From domain {domain} (e.g. newsletter.{domain})",
            )
        )
    else:
        checks.append(Check("list-id", "ok", list_id))

    url = settings.unsubscribe_url
    secret = settings.secret_key.get_secret_value()
    if not url:
        checks.append(
            Check(
                "unsubscribe",
                "warning",
                "mailto only: Gmail and Yahoo ask bulk senders for one-click unsubscribe "
                "(set NEWSLETTER_UNSUBSCRIBE_URL to an https page, and NEWSLETTER_SECRET_KEY)",
            )
        )
    elif not url.startswith("https://"):
        checks.append(
            Check(
                "unsubscribe",
                "error",
                f"{url}: one-click unsubscribe needs an https URL (RFC 8058)",
            )
        )
    elif not secret:
        checks.append(
            Check(
                "unsubscribe",
                "error",
                "NEWSLETTER_UNSUBSCRIBE_URL is set but NEWSLETTER_SECRET_KEY is empty "
                "(the tokens are signed with it; send refuses to start)",
            )
        )
    else:
        checks.append(Check("unsubscribe", "ok", f"one-click {url} with signed tokens"))
    return checks


def check_return_path(settings: Settings) -> list[Check]:
    from newsletter.send.verp import Verp

    try:
        verp = Verp.from_settings(settings)
    except NewsletterError as exc:
        return [Check("return-path", "error", str(exc))]
    if verp is None:
        return [
            Check(
                "return-path",
                "ok",
                f"{settings.sender_address} (set NEWSLETTER_BOUNCE_DOMAIN to know for sure "
                "whom each bounce is about)",
            )
        ]
    example = f"bounce+<token>@{verp.domain}"
    if not related_domains(verp.domain, settings.sender_domain):
        return [
            Check(
                "return-path",
                "warning",
                f"{example}: {verp.domain} is not under the From domain "
                f"{settings.sender_domain}, so SPF does not align for DMARC",
            )
        ]
    return [Check("return-path", "ok", f"{example} (VERP)")]
