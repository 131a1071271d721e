"""`newsletter doctor`: every setting checked against a real server, nothing sent."""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from dnsserver import DnsServer
from smtpserver import TestServer

from newsletter.cli import ExitCode

USER, PASSWORD = "lettre", "s3cret-pass-for-tests"
SELECTOR = "nl2026"
DKIM_NAME = f"{SELECTOR}._domainkey.coeursurparis.example"


#: The sample domain as it should be published (SPF, DMARC, an MX for the bounce domain).
GOOD_ZONE = {
    ("coeursurparis.example", "TXT"): ["v=spf1 mx -all"],
    ("_dmarc.coeursurparis.example", "TXT"): ["v=DMARC1; p=quarantine"],
    ("bounces.coeursurparis.example", "TXT"): ["v=spf1 ip4:192.0.2.25 -all"],
    ("bounces.coeursurparis.example", "MX"): ["10 mx.coeursurparis.example."],
}


@pytest.fixture(autouse=True)
def domain_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[DnsServer]:
    """The domain checks ask a real DNS server of the test's own (doctor_dns)."""
    from newsletter.send.doctor_dns import DnsPythonResolver

    with DnsServer(GOOD_ZONE) as server:
        monkeypatch.setattr(
            "newsletter.send.doctor_dns.default_resolver",
            lambda: DnsPythonResolver(["127.0.0.1"], server.port),
        )
        yield server


# aiosmtpd warns about AUTH without TLS at each connection: this is a test server.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def relay() -> Iterator[TestServer]:
    """The test server, requiring a login."""
    server = TestServer(auth=(USER, PASSWORD))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def key(newsletter_root: Path) -> str:
    """An Ed25519 key in the newsletter folder; returns its TXT record."""
    k = ed25519.Ed25519PrivateKey.generate()
    pem = k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    (newsletter_root / "dkim.pem").write_bytes(pem)
    raw = k.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return "v=DKIM1; k=ed25519; p=" + b64encode(raw).decode()


Resolver = Callable[[str], list[str] | None]


def resolver(monkeypatch: pytest.MonkeyPatch, answer: Resolver) -> list[str]:
    """Answer DNS from the test (this machine has none); returns the names asked."""
    asked: list[str] = []

    def resolve(name: str, *, timeout: float = 5.0) -> list[str] | None:
        asked.append(name)
        return answer(name)

    monkeypatch.setattr("newsletter.send.doctor.resolve_txt", resolve)
    return asked


def env(server: TestServer, **extra: str) -> dict[str, str]:
    settings = {
        "NEWSLETTER_SMTP_USERNAME": USER,
        "NEWSLETTER_SMTP_PASSWORD": PASSWORD,
        "NEWSLETTER_DKIM_KEY_FILE": "dkim.pem",
        "NEWSLETTER_DKIM_SELECTOR": SELECTOR,
        "NEWSLETTER_UNSUBSCRIBE_URL": "https://coeursurparis.example/desinscription",
        "NEWSLETTER_SECRET_KEY": "a-long-random-secret-for-the-tests",
        "NEWSLETTER_BOUNCE_DOMAIN": "bounces.coeursurparis.example",
    }
    settings.update(extra)
    return server.env(**settings)


def relay_line(server: TestServer) -> str:
    return (
        f"ok      relay: 127.0.0.1:{server.port} answers EHLO (offers AUTH LOGIN PLAIN, "
        "SIZE 33554432, PIPELINING, 8BITMIME, SMTPUTF8)"
    )


def test_all_is_well(
    newsletter_root: Path,
    relay: TestServer,
    key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = resolver(monkeypatch, lambda name: ["google-site-verification=abc", key])
    result = run_cli("doctor", root=newsletter_root, env=env(relay))
    assert result.exit_code == 0, result.stdout
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        relay_line(relay),
        "ok      tls: none (a relay on this machine)",
        f"ok      login: the relay accepts user '{USER}'",
        # The sample's own address is on a reserved domain: a real newsletter must change it.
        "warning from: lettre@coeursurparis.example: an example domain, where nobody reads "
        "replies or bounces; set your own `from` in newsletter.toml",
        f"ok      dkim: Ed25519 key, d=coeursurparis.example, s={SELECTOR}",
        f"ok      dkim-dns: the key matches the TXT record at {DKIM_NAME}",
        "ok      list-id: newsletter.coeursurparis.example",
        "ok      unsubscribe: one-click https://coeursurparis.example/desinscription with "
        "signed tokens",
        "ok      return-path: bounce+<token>@bounces.coeursurparis.example (VERP)",
        "ok      spf: bounces.coeursurparis.example: v=spf1 ip4:192.0.2.25 -all (check that it "
        "allows your relay)",
        "ok      dmarc: _dmarc.coeursurparis.example: p=quarantine",
        "ok      dmarc-dkim: d=coeursurparis.example is aligned with coeursurparis.example "
        "(relaxed)",
        "ok      bounce-mx: bounces.coeursurparis.example: MX 10 mx.coeursurparis.example.",
        "warning dkim-alg: an Ed25519 key only: SpamAssassin and some receivers do not verify "
        "it; sign with RSA (2048 bits), or with both RSA and Ed25519",
        "12 ok, 2 warning(s), 0 error(s)",
    ]
    assert asked == [DKIM_NAME]
    assert relay.received == []


def test_a_wrong_password_is_an_error_that_never_shows_it(
    newsletter_root: Path,
    relay: TestServer,
    key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver(monkeypatch, lambda name: [key])
    wrong = "not-the-password-42"
    result = run_cli("doctor", root=newsletter_root, env=env(relay, NEWSLETTER_SMTP_PASSWORD=wrong))
    assert result.exit_code == ExitCode.USER_ERROR
    lines = result.stdout.splitlines()
    assert lines[2] == (
        f"error   login: the relay refused the login for user '{USER}' (535 5.7.8 "
        "Authentication credentials invalid): check NEWSLETTER_SMTP_USERNAME and "
        "NEWSLETTER_SMTP_PASSWORD"
    )
    assert lines[-1] == "11 ok, 2 warning(s), 1 error(s)"  # a warning: the example domain
    assert wrong not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_starttls_asked_but_not_offered(
    newsletter_root: Path,
    relay: TestServer,
    key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver(monkeypatch, lambda name: [key])
    result = run_cli("doctor", root=newsletter_root, env=env(relay, NEWSLETTER_SMTP_TLS="starttls"))
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stdout.splitlines()[1:3] == [
        "error   tls: the relay does not offer STARTTLS (use port 587 with starttls, port 465 "
        "with NEWSLETTER_SMTP_TLS=tls, or none for a relay on this machine only)",
        "warning login: not tried without TLS (the password would cross in clear)",
    ]


def test_a_relay_that_does_not_answer(
    newsletter_root: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = TestServer()
    port = server.port  # never started: nothing listens there
    result = run_cli("doctor", root=newsletter_root, env=server.env(NEWSLETTER_SMTP_TIMEOUT="2"))
    assert result.exit_code == ExitCode.USER_ERROR
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"error   relay: 127.0.0.1:{port} does not answer: ")
    assert first.endswith(
        "(check NEWSLETTER_SMTP_HOST, NEWSLETTER_SMTP_PORT and NEWSLETTER_SMTP_TLS)"
    )


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (
            "unreachable",
            "warning dkim-dns: could not check: The DNS operation timed out after 5.0 seconds",
        ),
        (
            "nxdomain",
            "warning dkim-dns: could not check: the DNS knows neither "
            f"{DKIM_NAME} nor coeursurparis.example (no network, or the domain is not "
            "registered)",
        ),
        ("none", f"error   dkim-dns: no DKIM record at {DKIM_NAME} (publish: {{key}})"),
        (
            "other",
            f"error   dkim-dns: the TXT record at {DKIM_NAME} holds another key (publish: {{key}})",
        ),
        (
            "revoked",
            f"error   dkim-dns: the key at {DKIM_NAME} is revoked (empty p=; publish: {{key}})",
        ),
    ],
    ids=["unreachable", "nxdomain", "none", "other", "revoked"],
)
def test_the_published_dkim_key(
    answer: str,
    line: str,
    newsletter_root: Path,
    relay: TestServer,
    key: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def dns(name: str) -> list[str] | None:
        if answer == "unreachable":
            raise RuntimeError("The DNS operation timed out after 5.0 seconds")
        if answer == "other":
            return ["v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]
        if answer == "revoked":
            return ["v=DKIM1; k=ed25519; p="]
        if answer == "nxdomain":
            return None
        return None if name == DKIM_NAME else ["v=spf1 mx -all"]

    resolver(monkeypatch, dns)
    result = run_cli("doctor", root=newsletter_root, env=env(relay))
    assert line.format(key=key) in result.stdout.splitlines()
    assert result.exit_code == (0 if answer in ("unreachable", "nxdomain") else ExitCode.USER_ERROR)


def test_inconsistent_headers_and_a_bad_key(
    newsletter_root: Path, relay: TestServer, run_cli: RunCli
) -> None:
    (newsletter_root / "dkim.pem").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    result = run_cli(
        "doctor",
        root=newsletter_root,
        env=env(
            relay,
            NEWSLETTER_FROM="Coeur sur Paris <coeursurparis@gmail.com>",
            NEWSLETTER_LIST_ID="lettre.autre-domaine.example",
            NEWSLETTER_UNSUBSCRIBE_URL="http://coeursurparis.example/desinscription",
            NEWSLETTER_SECRET_KEY="",
        ),
    )
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stdout.splitlines()[3:] == [
        "error   from: coeursurparis@gmail.com: gmail.com refuses mail sent in its name from "
        "elsewhere (DMARC p=reject); use an address at your own domain",
        "error   dkim: dkim.pem: NEWSLETTER_DKIM_KEY_FILE: the file is a public key, not a "
        "private key (make one with `openssl genpkey -algorithm RSA -pkeyopt "
        "rsa_keygen_bits:2048 -out dkim.pem`)",
        "warning list-id: lettre.autre-domaine.example is not under the From domain gmail.com "
        "(e.g. newsletter.gmail.com)",
        "error   unsubscribe: http://coeursurparis.example/desinscription: one-click "
        "unsubscribe needs an https URL (RFC 8058)",
        "error   return-path: .env: NEWSLETTER_SECRET_KEY: NEWSLETTER_BOUNCE_DOMAIN is set but "
        "NEWSLETTER_SECRET_KEY is empty (set a long random secret: the return paths are signed "
        "with it)",
        "ok      spf: bounces.coeursurparis.example: v=spf1 ip4:192.0.2.25 -all (check that it "
        "allows your relay)",
        "error   dmarc: no DMARC record at _dmarc.gmail.com: Gmail, Yahoo and Outlook require "
        "one of bulk senders; publish `v=DMARC1; p=none; rua=mailto:dmarc@gmail.com` to start",
        "ok      bounce-mx: bounces.coeursurparis.example: MX 10 mx.coeursurparis.example.",
        "5 ok, 1 warning(s), 5 error(s)",
    ]


# -- several relays (issue 14): each listed relay is checked, never the NEWSLETTER_SMTP_* one --


def relay_lines(stdout: str) -> list[str]:
    codes = ("relays:", "relay:", "tls:", "login:")
    return [line for line in stdout.splitlines() if line[8:].startswith(codes)]


def test_each_relay_of_newsletter_toml_is_checked(
    newsletter_root: Path, relay: TestServer, run_cli: RunCli
) -> None:
    down = TestServer()  # never started: nothing listens on its port
    elsewhere = TestServer()  # NEWSLETTER_SMTP_PORT points here: never asked, as never sent to
    with (newsletter_root / "newsletter.toml").open("a", encoding="utf-8") as toml:
        toml.write(
            f'\n[[relay]]\nname = "bureau"\nhost = "127.0.0.1"\nport = {relay.port}\n'
            f'tls = "none"\nweight = 3\nconcurrency = 8\n'
            f'daily_quota = 50000\n'
            f'\n[[relay]]\nhost = "127.0.0.1"\nport = {down.port}\ntls = "none"\n'
        )
    result = run_cli(
        "doctor", root=newsletter_root,
        env=elsewhere.env(NEWSLETTER_SMTP_TIMEOUT="2"),
    )
    assert result.exit_code == ExitCode.USER_ERROR
    lines = relay_lines(result.stdout)
    assert lines[:2] == [
        "ok      relays: 2 from [[relay]] in newsletter.toml: bureau (weight 3, 8 "
        f"connection(s), 50000 a day), 127.0.0.1:{down.port} (weight 1, 4 connection(s))",
        relay_line(relay).replace(f"127.0.0.1:{relay.port}", f"bureau (127.0.0.1:{relay.port})"),
    ]
    assert lines[2] == "ok      tls: bureau: none (a relay on this machine)"
    assert lines[3].startswith(f"error   relay: 127.0.0.1:{down.port} does not answer: ")
    assert lines[3].endswith("(check its host, port and tls in [[relay]] in newsletter.toml)")
    assert len(lines) == 4
    assert f":{elsewhere.port}" not in result.stdout


def test_relays_of_the_environment_log_in_and_never_show_the_password(
    newsletter_root: Path, relay: TestServer, run_cli: RunCli
) -> None:
    wrong = "not-the-password-42"
    relays = [
        {"name": "a", "host": "127.0.0.1", "port": relay.port, "tls": "none",
         "username": USER, "password": PASSWORD},
        {"name": "b", "host": "127.0.0.1", "port": relay.port, "tls": "none",
         "username": USER, "password": wrong, "rate": 2.5},
    ]
    result = run_cli(
        "doctor", root=newsletter_root,
        env=relay.env(NEWSLETTER_SMTP_RELAYS=json.dumps(relays)),
    )
    assert result.exit_code == ExitCode.USER_ERROR
    assert relay_lines(result.stdout) == [
        "ok      relays: 2 from NEWSLETTER_SMTP_RELAYS: a (weight 1, 4 connection(s)), "
        "b (weight 1, 4 connection(s), 2.5/s)",
        relay_line(relay).replace(f"127.0.0.1:{relay.port}", f"a (127.0.0.1:{relay.port})"),
        "ok      tls: a: none (a relay on this machine)",
        f"ok      login: a: the relay accepts user '{USER}'",
        relay_line(relay).replace(f"127.0.0.1:{relay.port}", f"b (127.0.0.1:{relay.port})"),
        "ok      tls: b: none (a relay on this machine)",
        f"error   login: b: the relay refused the login for user '{USER}' (535 5.7.8 "
        "Authentication credentials invalid): check its username and password in "
        "NEWSLETTER_SMTP_RELAYS",
    ]
    assert wrong not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert relay.received == []


def test_a_bad_relay_list_is_one_finding_and_the_other_checks_still_run(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    secret = "never-shown-secret"
    bad = json.dumps([{"host": "127.0.0.1", "pasword": secret}])
    result = run_cli("doctor", root=newsletter_root, env={"NEWSLETTER_SMTP_RELAYS": bad})
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "error   relays: NEWSLETTER_SMTP_RELAYS: relay 1: unknown key 'pasword' (did you mean "
        'password?) (a JSON list such as [{"host": "smtp.example.org", "port": 587, '
        '"weight": 2}])'
    )
    assert relay_lines(result.stdout) == lines[:1]
    assert any(line[8:].startswith("dkim:") for line in lines)  # the rest is checked
    assert secret not in result.stdout


def test_without_a_from_its_domain_is_not_checked(
    newsletter_root: Path, relay: TestServer, run_cli: RunCli, domain_dns: DnsServer
) -> None:
    """A new folder without `from`: one error that says what to add, not a page of checks of
    an empty domain (`spf:  has no SPF record`, `_dmarc.`, `newsletter.`)."""
    toml = newsletter_root / "newsletter.toml"
    toml.write_text(
        "".join(line for line in toml.read_text(encoding="utf-8").splitlines(keepends=True)
                if not line.startswith("from ")),
        encoding="utf-8",
    )
    result = run_cli("doctor", root=newsletter_root, env=relay.env())
    assert result.exit_code == ExitCode.USER_ERROR
    codes = [line[8:].partition(":")[0] for line in result.stdout.splitlines()[:-1]]
    assert codes == ["relay", "tls", "from", "dkim", "unsubscribe"]
    assert "error   from: no sender: add from = " in result.stdout
