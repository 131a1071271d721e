"""The doctor's domain checks (SPF, DMARC and alignment, the bounce MX, the DKIM algorithm)
against a real DNS server of the test's own on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from dnsserver import DnsServer, Zone

from newsletter.layout import Layout
from newsletter.send.doctor_dns import DnsPythonResolver, check_domain
from newsletter.settings import Settings


def run(root: Path, zone: Zone, **settings: str) -> list[str]:
    with DnsServer(zone) as server:
        s = Settings(**settings)  # type: ignore[arg-type]
        found = check_domain(
            Layout(root), s, resolver=DnsPythonResolver(["127.0.0.1"], server.port)
        )
    return [f"{f.severity} {f.code}: {f.message}" for f in found]


@pytest.fixture
def rsa_key(newsletter_root: Path) -> Path:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    (newsletter_root / "dkim.pem").write_bytes(pem)
    return newsletter_root


def test_nothing_published_is_three_errors(newsletter_root: Path) -> None:
    zone = {("coeursurparis.example", "A"): ["192.0.2.1"]}
    assert run(newsletter_root, zone, sender="lettre@coeursurparis.example") == [
        "error spf: coeursurparis.example has no SPF record: publish one that allows your "
        "relay, e.g. `v=spf1 include:<relay's domain> ~all`",
        "error dmarc: no DMARC record at _dmarc.coeursurparis.example: Gmail, Yahoo and Outlook "
        "require one of bulk senders; publish `v=DMARC1; p=none; "
        "rua=mailto:dmarc@coeursurparis.example` to start",
        "ok bounce-mx: coeursurparis.example: no MX, its A 192.0.2.1 receives mail",
    ]


def test_a_missing_bounce_domain_and_two_spf_records(newsletter_root: Path) -> None:
    zone = {
        ("bounces.lettre.example", "TXT"): ["v=spf1 -all", "v=spf1 mx -all"],
        ("_dmarc.lettre.example", "TXT"): ["v=DMARC1; p=reject"],
    }
    lines = run(
        newsletter_root, zone, sender="info@lettre.example",
        bounce_domain="bounces.lettre.example", secret_key="s" * 32,
    )
    assert lines == [
        "error spf: bounces.lettre.example has 2 SPF records: receivers ignore them all "
        "(permerror); merge them into one",
        "ok dmarc: _dmarc.lettre.example: p=reject",
        "error bounce-mx: bounces.lettre.example has no MX and no A: bounces sent there are "
        "lost; publish an MX for it",
    ]


def test_strict_dkim_alignment_and_an_rsa_key(rsa_key: Path) -> None:
    zone = {
        ("news.lettre.example", "TXT"): ["v=spf1 ip4:192.0.2.25 -all"],
        ("news.lettre.example", "MX"): ["10 mx.lettre.example."],
        ("_dmarc.lettre.example", "TXT"): ["v=DMARC1; p=quarantine; adkim=s"],
    }
    lines = run(
        rsa_key, zone, sender="info@news.lettre.example", dkim_key_file="dkim.pem",
        dkim_selector="s1", dkim_domain="lettre.example",
    )
    assert lines == [
        "ok spf: news.lettre.example: v=spf1 ip4:192.0.2.25 -all (check that it allows your "
        "relay)",
        "ok dmarc: _dmarc.lettre.example: p=quarantine",
        "error dmarc-dkim: d=lettre.example is not aligned with the From domain "
        "news.lettre.example (strict): DMARC fails on DKIM",
        "ok bounce-mx: news.lettre.example: MX 10 mx.lettre.example.",
    ]  # an RSA key: no dkim-alg warning


def test_a_server_that_does_not_answer_is_a_warning_not_a_crash(newsletter_root: Path) -> None:
    resolver = DnsPythonResolver(["127.0.0.1"], 9, timeout=0.3)  # discard port: no answer
    found = check_domain(
        Layout(newsletter_root), Settings(sender="a@lettre.example"), resolver=resolver
    )
    assert [(f.code, f.severity) for f in found] == [
        ("spf", "warning"), ("dmarc", "warning"), ("bounce-mx", "warning")
    ]
    assert all(f.message.startswith("could not check: ") for f in found)
