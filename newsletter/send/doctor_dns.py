"""`newsletter doctor`, the domain's DNS: what receivers check before they trust our mail.

    spf         the SPF record of the envelope domain (the bounce domain, else From's): shown,
                as the relay's own include cannot be known here; none or two is a problem
    dmarc       a DMARC record for the From domain (Gmail, Yahoo and Outlook require one of
                bulk senders), and DKIM d= aligned with From as its adkim asks
    bounce-mx   an MX (or an A) for the domain bounces go to: else nobody receives them
    dkim-alg    an Ed25519-only key is not verified everywhere (SpamAssassin cannot): RSA too

DNS goes through a `Resolver` (dnspython's by default), so the tests answer from a real DNS
server of their own on 127.0.0.1.
"""

from __future__ import annotations

from typing import Protocol

from newsletter.errors import NewsletterError
from newsletter.findings import Finding
from newsletter.layout import Layout
from newsletter.settings import Settings


class Resolver(Protocol):
    def query(self, name: str, rdtype: str) -> list[str] | None:
        """The records' text: [] if the name has none of that type, None if it does not exist."""
        ...


class DnsPythonResolver:
    """dnspython, with the system's name servers or given ones (tests: 127.0.0.1:port)."""

    def __init__(
        self, nameservers: list[str] | None = None, port: int = 53, *, timeout: float = 5.0
    ) -> None:
        import dns.resolver

        self._resolver = dns.resolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout

    def query(self, name: str, rdtype: str) -> list[str] | None:
        import dns.exception
        import dns.resolver

        try:
            answer = self._resolver.resolve(name, rdtype)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.DNSException as exc:
            raise RuntimeError(str(exc) or type(exc).__name__) from None
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("ascii", "replace") for r in answer]
        return [r.to_text() for r in answer]


def default_resolver() -> Resolver:
    return DnsPythonResolver()


def check_domain(layout: Layout, settings: Settings, *, resolver: Resolver) -> list[Finding]:
    """SPF, DMARC and alignment, the bounce domain's MX, the DKIM algorithm."""
    d_domain, kind = _dkim(layout, settings)
    checks: list[Finding] = []
    for check in (_spf, _dmarc, _bounce_mx):
        try:
            checks += check(settings, resolver, d_domain)
        except Exception as exc:  # no network, a timeout: say so, do not fail
            name = check.__name__.strip("_").replace("_", "-")
            checks.append(Finding(name, "warning", f"could not check: {exc}"))
    if kind == "ed25519":
        checks.append(
            Finding(
                "dkim-alg",
                "warning",
                "an Ed25519 key only: SpamAssassin and some receivers do not verify it; sign "
                "with RSA (2048 bits), or with both RSA and Ed25519",
            )
        )
    return checks


def _dkim(layout: Layout, settings: Settings) -> tuple[str, str]:
    from newsletter.send.dkim import Signer

    try:
        signer = Signer.from_settings(settings, layout=layout)
    except NewsletterError:  # reported by the dkim check
        return "", ""
    return (signer.domain, signer.key.kind) if signer else ("", "")


def _spf(settings: Settings, resolver: Resolver, d_domain: str) -> list[Finding]:
    domain = settings.bounce_domain.strip().lower() or settings.sender_domain
    records = [r for r in resolver.query(domain, "TXT") or [] if r.lower().startswith("v=spf1")]
    if not records:
        return [Finding("spf", "error", f"{domain} has no SPF record: publish one that allows "
                        "your relay, e.g. `v=spf1 include:<relay's domain> ~all`")]
    if len(records) > 1:
        return [Finding("spf", "error", f"{domain} has {len(records)} SPF records: receivers "
                        "ignore them all (permerror); merge them into one")]
    return [Finding("spf", "ok", f"{domain}: {records[0]} (check that it allows your relay)")]


def _dmarc(settings: Settings, resolver: Resolver, d_domain: str) -> list[Finding]:
    domain = settings.sender_domain
    org = ".".join(domain.split(".")[-2:])
    for name in dict.fromkeys([f"_dmarc.{domain}", f"_dmarc.{org}"]):
        records = [r for r in resolver.query(name, "TXT") or [] if r.startswith("v=DMARC1")]
        if records:
            return _dmarc_found(name, records[0], domain, d_domain)
    return [Finding("dmarc", "error", f"no DMARC record at _dmarc.{domain}: Gmail, Yahoo and "
                    "Outlook require one of bulk senders; publish `v=DMARC1; p=none; "
                    f"rua=mailto:dmarc@{domain}` to start")]


def _dmarc_found(name: str, record: str, domain: str, d_domain: str) -> list[Finding]:
    tags = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (t.partition("=") for t in record.split(";"))
    )
    checks = [Finding("dmarc", "ok", f"{name}: p={tags.get('p', '?')}")]
    if not d_domain:
        return checks
    strict = tags.get("adkim", "r").lower() == "s"
    aligned = (
        d_domain.lower() == domain.lower()
        if strict
        else ".".join(d_domain.split(".")[-2:]) == ".".join(domain.split(".")[-2:])
    )
    mode = "strict" if strict else "relaxed"
    if aligned:
        checks.append(Finding("dmarc-dkim", "ok", f"d={d_domain} is aligned with {domain} "
                              f"({mode})"))
    else:
        checks.append(Finding("dmarc-dkim", "error", f"d={d_domain} is not aligned with the From "
                              f"domain {domain} ({mode}): DMARC fails on DKIM"))
    return checks


def _bounce_mx(settings: Settings, resolver: Resolver, d_domain: str) -> list[Finding]:
    domain = settings.bounce_domain.strip().lower() or settings.sender_domain
    mx = resolver.query(domain, "MX")
    if mx:
        return [Finding("bounce-mx", "ok", f"{domain}: MX {', '.join(sorted(mx))}")]
    a = resolver.query(domain, "A") if mx is not None else None
    if a:
        return [Finding("bounce-mx", "ok", f"{domain}: no MX, its A {a[0]} receives mail")]
    return [Finding("bounce-mx", "error", f"{domain} has no MX and no A: bounces sent there are "
                    "lost; publish an MX for it")]
