"""Several relays (NEWSLETTER_SMTP_RELAYS): shares by weight, failover, the journal's relay."""

from __future__ import annotations

import collections
import contextlib
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import RunCli, readers
from smtpserver import Faults, TestServer

from newsletter.cli import ExitCode
from newsletter.layout import Layout
from newsletter.send.relays import Relay, RelayPool

PASSWORD = "s3cret-never-shown"
#: The summary line naming the messages that may have arrived twice.
TWICE = (r"(\d+) message\(s\) lost their connection after being written, before the relay "
         r"answered, and are sent again \(a copy may arrive twice\): (.*)")


def relay(server: TestServer, name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "host": "127.0.0.1", "port": server.port, "tls": "none", **extra}


def env(*relays: dict[str, object], **extra: str) -> dict[str, str]:
    return {
        "NEWSLETTER_SMTP_RELAYS": json.dumps(relays),
        "NEWSLETTER_RETRY_DELAY": "0.05",
        "NEWSLETTER_SMTP_TIMEOUT": "5",
        **extra,
    }


@pytest.fixture
def servers() -> collections.abc.Iterator[list[TestServer]]:
    started: list[TestServer] = []
    yield started
    for server in started:
        with contextlib.suppress(Exception):  # stopped by the test already
            server.stop()


def start(servers: list[TestServer], faults: Faults | None = None,
          auth: tuple[str, str] | None = None) -> TestServer:
    server = TestServer(faults, auth=auth)
    server.start()
    servers.append(server)
    return server


def journal_relays(root: Path) -> dict[str, str | None]:
    db = sqlite3.connect(Layout.at(root).journal_path)
    try:
        return dict(db.execute("SELECT email, relay FROM deliveries"))
    finally:
        db.close()


def test_messages_are_spread_by_weight_and_the_summary_and_report_say_so(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    emails = readers(built, 40)
    a, b = start(servers), start(servers)
    result = run_cli(
        "send", "2026-11", root=built,
        env=env(relay(a, "a", weight=3, concurrency=1), relay(b, "b", weight=1, concurrency=1)),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(a.recipients() + b.recipients()) == emails  # each exactly once
    assert 28 <= len(a.recipients()) <= 32, (len(a.recipients()), len(b.recipients()))
    line = re.search(r"sent by relay: a (\d+), b (\d+)", result.stdout)
    assert line is not None, result.stdout
    assert (int(line[1]), int(line[2])) == (len(a.recipients()), len(b.recipients()))
    by = journal_relays(built)
    assert {e for e, r in by.items() if r == "a"} == set(a.recipients())
    report = run_cli("report", "2026-11", root=built)
    assert f"sent by relay: a ×{len(a.recipients())}, b ×{len(b.recipients())}" in report.stdout


def test_a_relay_stopped_part_way_hands_its_messages_to_the_other(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    emails = readers(built, 60)
    a = start(servers, Faults(delay=0.02))
    b = start(servers, Faults(delay=0.02))

    def stop_a() -> None:
        deadline = time.monotonic() + 20
        while len(a.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        a.stop()

    killer = threading.Thread(target=stop_a)
    killer.start()
    result = run_cli(
        "send", "2026-11", root=built,
        env=env(relay(a, "a", concurrency=2), relay(b, "b", concurrency=2)),
    )
    killer.join()
    assert result.exit_code == 0, result.stdout + result.stderr
    counts = collections.Counter(a.recipients() + b.recipients())
    assert sorted(counts) == emails  # nobody skipped
    assert 10 <= len(a.received) < 60
    assert "relay a was taken out" in result.stdout
    # A copy twice only for a message in flight on `a` when it stopped, and named.
    m = re.search(TWICE, result.stdout)
    named = set(m[2].split(", ")) if m else set()
    assert {e for e, n in counts.items() if n > 1} <= named
    assert len(named) <= 2  # at most one per connection of `a`


def test_a_relay_refusing_connections_leaves_nobody_mailed_twice_or_named(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    """Its messages never left: they go through the other relay, and none is named as a
    possible double (it once named every message its connections had taken)."""
    emails = readers(built, 40)
    a = start(servers)
    down = TestServer()  # never started: every connection to it is refused
    result = run_cli("send", "2026-11", root=built,
                     env=env(relay(a, "a"), relay(down, "b", weight=3)))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert a.recipients() == emails
    assert "relay b was taken out: could not connect" in result.stdout
    assert "twice" not in result.stdout, result.stdout


def test_a_relay_refusing_the_login_is_taken_out_and_the_other_finishes(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    emails = readers(built, 12)
    a = start(servers, auth=("lettre", "the-right-one"))
    b = start(servers)
    result = run_cli(
        "send", "2026-11", root=built,
        env=env(relay(a, "a", username="lettre", password=PASSWORD), relay(b, "b")),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert a.recipients() == [] and b.recipients() == emails
    assert re.search(r"relay a was taken out: the relay refused the login for user 'lettre'",
                     result.stdout), result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert set(journal_relays(built).values()) <= {"a", "b"}


def test_when_every_relay_refuses_the_login_the_send_stops_and_resumes_later(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    readers(built, 5)
    a = start(servers, auth=("lettre", "x"))
    b = start(servers, auth=("lettre", "y"))
    result = run_cli(
        "send", "2026-11", root=built,
        env=env(relay(a, "a", username="lettre", password=PASSWORD),
                relay(b, "b", username="lettre", password=PASSWORD)),
    )
    assert result.exit_code == ExitCode.USER_ERROR
    assert "no relay can take messages any more" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert a.recipients() == b.recipients() == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{host: 1}]", "NEWSLETTER_SMTP_RELAYS: not JSON"),
        ('[{"host": "a.example", "port": 0, "password": "' + PASSWORD + '"}]',
         "relay 1: port: Input should be greater than or equal to 1"),
        ('[{"host": "a.example", "pasword": "' + PASSWORD + '"}]',
         "relay 1: unknown key 'pasword' (did you mean password?)"),
        ('[{"host": "a.example"}, {"host": "a.example", "port": 587}]',
         "two relays are named a.example:587"),
        ("{}", "must be a non-empty list of relays"),
    ],
)
def test_a_bad_relay_list_is_one_line_naming_the_relay_and_never_the_password(
    built: Path, run_cli: RunCli, value: str, message: str
) -> None:
    result = run_cli("send", "2026-11", root=built, env={"NEWSLETTER_SMTP_RELAYS": value})
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert PASSWORD not in result.stderr


def test_the_pool_follows_weights_skips_a_relay_out_and_brings_it_back() -> None:
    pool = RelayPool([Relay(name="a", host="a", weight=2, concurrency=1),
                      Relay(name="b", host="b", weight=1, concurrency=1)])
    order: list[str] = []
    for _ in range(30):
        label = next(x for x in ("b", "a") if pool.may_take(x, now=0.0))
        pool.took(label)
        order.append(label)
    assert 19 <= order.count("a") <= 21  # 2:1, within the one message of slack
    assert pool.failed("a", "421 busy", now=0.0, at_once=True)
    assert not pool.may_take("a", now=1.0) and pool.may_take("b", now=1.0)
    assert pool.may_take("a", now=pool.pause + 1)
    pool.give_up("b", "login refused")
    assert pool.all_gone() is None
    pool.give_up("a", "login refused")
    assert pool.all_gone() == "a: login refused; b: login refused"


def test_a_daily_quota_takes_the_relay_out_once_used() -> None:
    pool = RelayPool([Relay(name="a", host="a", daily_quota=5), Relay(name="b", host="b")],
                     used_today={"a": 3})
    pool.took("a")
    pool.took("a")
    assert not pool.may_take("a", now=0.0)
    assert ("a", "its daily quota of 5 is used up") in pool.outages()


def test_relays_from_newsletter_toml_without_passwords(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    emails = readers(built, 30)
    a, b = start(servers), start(servers)
    tables = "".join(
        f'[[relay]]\nname = "{n}"\nhost = "127.0.0.1"\nport = {s.port}\ntls = "none"\n'
        f"weight = {w}\nconcurrency = 1\n\n"
        for n, s, w in (("a", a, 2), ("b", b, 1))
    )
    toml = built / "newsletter.toml"
    project = toml.read_text(encoding="utf-8") + "\n"  # the folder's own settings stay
    tables = project + tables
    toml.write_text(tables, encoding="utf-8")
    result = run_cli("send", "2026-11", root=built, env={"NEWSLETTER_RETRY_DELAY": "0.05"})
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(a.recipients() + b.recipients()) == emails
    assert 18 <= len(a.recipients()) <= 22  # weights 2:1
    toml.write_text(tables + f'[[relay]]\nhost = "c.example"\npassword = "{PASSWORD}"\n',
                    encoding="utf-8")
    refused = run_cli("send", "2026-11", root=built)
    assert refused.exit_code == 1
    line = len((tables + '[[relay]]\nhost = "c.example"\n').splitlines()) + 1
    assert f"newsletter.toml:{line}: [[relay]].password: relay 3: a secret does not belong" in (
        refused.stderr), refused.stderr
    assert PASSWORD not in refused.stderr
    # A login without its password could only be refused by the relay: said before sending.
    toml.write_text(tables + '[[relay]]\nhost = "c.example"\nusername = "lettre"\n',
                    encoding="utf-8")
    refused = run_cli("send", "2026-11", root=built)
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1].endswith(
        f"newsletter.toml:{line}: [[relay]].username: relay 3: a login needs its password, "
        "which does "
        "not belong in newsletter.toml (list the relays that log in in NEWSLETTER_SMTP_RELAYS, "
        "in .env)"
    ), refused.stderr


# -- one message outside a send (--test-to, serve's confirmation) goes through the relays too --


def test_a_test_message_goes_through_the_relays_and_passes_over_one_down(
    built: Path, run_cli: RunCli, servers: list[TestServer]
) -> None:
    """It went through NEWSLETTER_SMTP_HOST/PORT (here: nothing listens), never a relay."""
    b = start(servers)
    down = TestServer()  # never started
    nowhere = TestServer()  # NEWSLETTER_SMTP_PORT: never started either
    result = run_cli(
        "send", "2026-11", "--test-to", "relecture@example.org", root=built,
        env=nowhere.env(**env(relay(down, "a", weight=3), relay(b, "b"))),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        "Test message to relecture@example.org: sent (through relay b)"
    )
    assert b.recipients() == ["relecture@example.org"]
    assert b.messages[0]["Subject"].startswith("[TEST] ")
    assert not Layout.at(built).journal_path.exists()  # a test leaves no trace


def test_the_confirmation_of_a_sign_up_goes_through_the_relays(
    built: Path, servers: list[TestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` sent it through NEWSLETTER_SMTP_HOST/PORT only: with the relays listed in
    NEWSLETTER_SMTP_RELAYS (where a password goes), every sign-up was lost."""
    from test_serve import in_thread

    b = start(servers)
    nowhere = TestServer()  # NEWSLETTER_SMTP_PORT: nothing listens
    relays = env(relay(b, "b"))
    with in_thread(built, nowhere, monkeypatch, **relays) as running, running.client() as http:
        answer = http.post("/subscribe", data={"email": "zoe@example.org", "name": "Zoé"})
        assert answer.status_code == 200
    assert b.recipients() == ["zoe@example.org"]
    assert "Confirmez" in b.messages[0]["Subject"]


def test_the_relays_example_init_writes_is_a_valid_relay_list() -> None:
    from importlib.resources import files

    from newsletter.send.relays import parse_relays

    text = (files("newsletter") / "theme" / "init" / "env.example").read_text(encoding="utf-8")
    (line,) = [x for x in text.splitlines() if x.startswith("# NEWSLETTER_SMTP_RELAYS=")]
    relays = parse_relays(json.loads(line.partition("=")[2]), where="example", hint="")
    assert [r.label for r in relays] == ["main", "backup"] and relays[0].weight == 3


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_typo_in_a_relay_table_names_its_line_and_stops_a_dry_run_too(
    built: Path, run_cli: RunCli, args: tuple[str, ...]
) -> None:
    """It said `relay 2: host: Field required`, without a line, and a dry run went on."""
    toml = built / "newsletter.toml"
    text = toml.read_text(encoding="utf-8") + (
        '\n[[relay]]\nhost = "10.0.0.25"\n\n[[relay]]\nname = "secours"\nhots = "10.0.0.26"\n'
    )
    toml.write_text(text, encoding="utf-8")
    line = text.splitlines().index('hots = "10.0.0.26"') + 1
    result = run_cli("send", "2026-11", *args, root=built)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: newsletter.toml:{line}: [[relay]]: relay 2: unknown key 'hots' (did you mean "
        "host?) (see docs/sending.md, Several relays)\n"
    )
