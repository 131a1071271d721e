"""`newsletter doctor`: the settings checked end to end, without sending anything.

    relays, relay, tls, login   the relay or each listed relay (doctor_relay.py)
    from        the From domain can be signed for (not a free-mail domain)
    dkim        the key loads; its domain is aligned with From's; it matches the TXT record
                <selector>._domainkey.<domain> when DNS answers ("could not check" otherwise)
    list-id     List-Id under the From domain
    unsubscribe a one-click https URL with a secret key (RFC 8058)
    return-path VERP: a secret key, a domain aligned with From's (SPF alignment)

Each check is data (a `Finding`, the shape of the build's checks too); the CLI prints them
and exits 1 if any is an error. The DNS resolver is a parameter: dnspython by default, a
function in the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from newsletter.errors import NewsletterError
from newsletter.findings import Finding
from newsletter.layout import Layout
from newsletter.send import doctor_dns, reachable
from newsletter.send.doctor_dns import Resolver, check_domain
from newsletter.send.doctor_relay import check_relays, reason
from newsletter.settings import Settings

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


def related_domains(a: str, b: str) -> bool:
    """Same organisational domain, roughly: the last two labels (no public suffix list)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a) or _org(a) == _org(b)


def _org(domain: str) -> str:
    return ".".join(domain.split(".")[-2:])


def resolve_txt(name: str, *, timeout: float = 5.0) -> list[str] | None:
    """TXT records with dnspython: [] if the name has none, None if it does not exist."""
    return doctor_dns.DnsPythonResolver(timeout=timeout).query(name, "TXT")


async def diagnose(
    layout: Layout,
    settings: Settings,
    *,
    resolve: TxtResolver | None = None,
    resolver: Resolver | None = None,
) -> list[Finding]:
    """Every check, in order; never raises for what it checks."""
    checks = await check_relays(layout, settings)
    checks += check_sender(settings)
    checks += check_dkim(layout, settings, resolve=resolve or resolve_txt)
    checks += check_headers(settings)
    if settings.sender_domain:  # without a From (an error above) its domain has nothing to check
        checks += check_return_path(settings)
        checks += check_domain(layout, settings, resolver=resolver or doctor_dns.default_resolver())

    checks += await asyncio.to_thread(reachable.check_public_url, settings)  # serve (#10)
    return checks


# -- the sender, DKIM, headers --------------------------------------------------------------


def check_sender(settings: Settings) -> list[Finding]:
    if not settings.sender:
        return [Finding("from", "error", NO_SENDER)]
    domain = settings.sender_domain.lower()
    if domain in FREEMAIL:
        return [
            Finding(
                "from",
                "error",
                f"{settings.sender_address}: {domain} refuses mail sent in its name from "
                "elsewhere (DMARC p=reject); use an address at your own domain",
            )
        ]
    return [*check_identity(settings, domain), *check_postal_address(settings)]


# -- issue 11: no sample identity left in place --------------------------------------------------

NO_SENDER = 'no sender: add from = "Your Newsletter <letter@your-domain>" to newsletter.toml'
#: Reserved for documentation (RFC 2606 and the registries' own): nobody reads mail there.
EXAMPLE_DOMAINS = ("example", "example.com", "example.org", "example.net", "example.fr")


def check_identity(settings: Settings, domain: str) -> list[Finding]:
    if any(domain == d or domain.endswith("." + d) for d in EXAMPLE_DOMAINS):
        return [
            Finding(
                "from",
                "warning",
                f"{settings.sender_address}: an example domain, where nobody reads replies or "
                "bounces; set your own `from` in newsletter.toml",
            )
        ]
    return [Finding("from", "ok", settings.sender_address)]


def check_postal_address(settings: Settings) -> list[Finding]:
    if settings.postal_address.strip():
        return []
    return [
        Finding(
            "postal-address",
            "warning",
            "unset: the law wants one in every email and `send` refuses to mail without it "
            "(set postal_address in newsletter.toml)",
        )
    ]


def check_dkim(layout: Layout, settings: Settings, *, resolve: TxtResolver) -> list[Finding]:
    from newsletter.send.dkim import Signer

    try:
        signer = Signer.from_settings(settings, layout=layout)
    except NewsletterError as exc:
        return [Finding("dkim", "error", str(exc))]
    if signer is None:
        return [
            Finding(
                "dkim",
                "warning",
                "off: messages are not signed, and Gmail and Yahoo ask bulk senders for DKIM "
                "(set NEWSLETTER_DKIM_KEY_FILE and NEWSLETTER_DKIM_SELECTOR)",
            )
        ]
    checks = [
        Finding(
            "dkim",
            "ok",
            f"{signer.key.describe()} key, d={signer.domain}, s={signer.selector}",
        )
    ]
    if not related_domains(signer.domain, settings.sender_domain):
        checks.append(
            Finding(
                "dkim",
                "warning",
                f"d={signer.domain} is not aligned with the From domain "
                f"{settings.sender_domain}: DMARC will not count the signature",
            )
        )
    try:
        level, message = signer.check_dns(resolve)
    except Exception as exc:  # no network, no resolver, a timeout: say so, do not fail
        checks.append(Finding("dkim-dns", "warning", f"could not check: {reason(exc)}"))
    else:
        checks.append(Finding("dkim-dns", level, message))
    return checks


def check_headers(settings: Settings) -> list[Finding]:
    checks: list[Finding] = []
    list_id = settings.effective_list_id
    domain = settings.sender_domain
    if not domain:
        pass  # no From: the `from` check says so (and List-Id is made from its domain)
    elif any(c in list_id for c in "<> @\t"):
        checks.append(
            Finding(
                "list-id",
                "error",
                f"NEWSLETTER_LIST_ID '{list_id}' must be the id alone, e.g. newsletter.{domain}",
            )
        )
    elif not related_domains(list_id, domain):
        checks.append(
            Finding(
                "list-id",
                "warning",
                f"{list_id} is not under the From domain {domain} (e.g. newsletter.{domain})",
            )
        )
    else:
        checks.append(Finding("list-id", "ok", list_id))

    url = settings.effective_unsubscribe_url  # NEWSLETTER_PUBLIC_URL's page when it is set
    secret = settings.secret_key.get_secret_value()
    if not url:
        checks.append(
            Finding(
                "unsubscribe",
                "warning",
                "mailto only: Gmail and Yahoo ask bulk senders for one-click unsubscribe "
                "(set NEWSLETTER_UNSUBSCRIBE_URL to an https page, and NEWSLETTER_SECRET_KEY)",
            )
        )
    elif not url.startswith("https://"):
        checks.append(
            Finding(
                "unsubscribe",
                "error",
                f"{url}: one-click unsubscribe needs an https URL (RFC 8058)",
            )
        )
    elif not secret:
        checks.append(
            Finding(
                "unsubscribe",
                "error",
                "NEWSLETTER_UNSUBSCRIBE_URL is set but NEWSLETTER_SECRET_KEY is empty "
                "(the tokens are signed with it; send refuses to start)",
            )
        )
    else:
        checks.append(Finding("unsubscribe", "ok", f"one-click {url} with signed tokens"))
    return checks


def check_return_path(settings: Settings) -> list[Finding]:
    from newsletter.send.verp import Verp

    try:
        verp = Verp.from_settings(settings)
    except NewsletterError as exc:
        return [Finding("return-path", "error", str(exc))]
    if verp is None:
        return [
            Finding(
                "return-path",
                "ok",
                f"{settings.sender_address} (set NEWSLETTER_BOUNCE_DOMAIN to know for sure "
                "whom each bounce is about)",
            )
        ]
    example = f"bounce+<token>@{verp.domain}"
    if not related_domains(verp.domain, settings.sender_domain):
        return [
            Finding(
                "return-path",
                "warning",
                f"{example}: {verp.domain} is not under the From domain "
                f"{settings.sender_domain}, so SPF does not align for DMARC",
            )
        ]
    return [Finding("return-path", "ok", f"{example} (VERP)")]

