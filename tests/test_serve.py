"""`newsletter serve` against the real thing: uvicorn on a free 127.0.0.1 port, httpx as the
client, the test SMTP server as the relay, `newsletter send` reading the same list file."""

from __future__ import annotations

import base64
import csv
import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import RunCli
from smtpserver import TestServer, free_port, send_command

from newsletter.layout import Layout
from newsletter.send import changes
from newsletter.settings import load_settings
from newsletter.web.app import Listener
from newsletter.web.service import service_app

SECRET = "a-long-random-secret-for-the-tests"
READER = "amelie.durand@example.fr"


@dataclass
class Running:
    root: Path
    url: str
    smtp: TestServer
    env: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)


def statuses(root: Path) -> dict[str, str]:
    with open(root / "subscribers.csv", encoding="utf-8-sig", newline="") as f:
        return {r["email"]: (r.get("status") or "subscribed") for r in csv.DictReader(f)}


def service_env(smtp: TestServer, port: int) -> dict[str, str]:
    return smtp.env(
        NEWSLETTER_SECRET_KEY=SECRET,
        NEWSLETTER_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )


@contextmanager
def in_thread(
    root: Path, smtp: TestServer, monkeypatch: pytest.MonkeyPatch, **extra: str
) -> Iterator[Running]:
    """The service of `root` under uvicorn in a thread, on a free port of 127.0.0.1."""
    port = free_port()
    env = service_env(smtp, port) | extra
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    layout = Layout.at(root)
    listener = Listener(service_app(layout, load_settings(layout)), port=port, name="serve")
    listener.start()
    try:
        yield Running(root, listener.url.rstrip("/"), smtp, env)
    finally:
        listener.stop()


@pytest.fixture
def running(
    built: Path, smtp_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Running]:
    with in_thread(built, smtp_server, monkeypatch) as r:
        yield r


def send(run_cli: RunCli, r: Running, issue: str = "2026-11") -> list[str]:
    before = len(r.smtp.received)
    result = run_cli("send", issue, root=r.root, env=r.env)
    assert result.exit_code == 0, result.stderr
    return sorted(rcpt for m in r.smtp.received[before:] for rcpt in m.rcpt)


def one_click_url(r: Running, address: str) -> str:
    """The https link of the List-Unsubscribe header of the message `address` received."""
    (msg,) = [m.message for m in r.smtp.received if address in m.rcpt]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    links = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    (url,) = [u for u in links if u.startswith("http")]
    return url


def test_one_click_from_the_header_unsubscribes_and_the_next_send_skips_them(
    running: Running, run_cli: RunCli
) -> None:
    assert READER in send(run_cli, running)
    url = one_click_url(running, READER)
    assert urlsplit(url).path == "/unsubscribe" and READER not in url
    with running.client() as http:
        first = http.post(url, data={"List-Unsubscribe": "One-Click"})
        again = http.post(url, data={"List-Unsubscribe": "One-Click"})
    assert (first.status_code, again.status_code) == (200, 200)  # idempotent, never a redirect
    assert statuses(running.root)[READER] == "unsubscribed"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in first.headers["content-security-policy"]
    assert run_cli("build-issue", "2026-12", root=running.root).exit_code == 0
    mailed = send(run_cli, running, "2026-12")
    assert READER not in mailed and len(mailed) >= 3


def test_a_get_never_unsubscribes_and_an_altered_token_changes_nothing(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    before = (running.root / "subscribers.csv").read_bytes()
    token = urlsplit(url).query.removeprefix("token=")
    altered = url.replace(token, ("0" if token[0] != "0" else "1") + token[1:])
    with running.client() as http:
        page = http.get(url)
        bad = http.post(altered, data={"List-Unsubscribe": "One-Click"})
        no_token = http.post("/unsubscribe", data={"List-Unsubscribe": "One-Click"})
        no_csrf = http.post(url, data={"csrf": "guess"})
    assert page.status_code == 200 and "<form" in page.text and "Me désabonner" in page.text
    assert bad.status_code == 400 and no_token.status_code == 400
    assert no_csrf.status_code == 403
    assert (running.root / "subscribers.csv").read_bytes() == before


def test_the_button_post_with_its_csrf_cookie_unsubscribes_and_offers_to_come_back(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    with running.client() as http:
        page = http.get(url)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        done = http.post(url, data={"csrf": csrf.group(1)})
        assert done.status_code == 200 and "Me réabonner" in done.text
        assert statuses(running.root)[READER] == "unsubscribed"
        csrf2 = re.search(r'name="csrf" value="([^"]+)"', done.text)
        assert csrf2 is not None
        back = http.post(url.replace("/unsubscribe", "/resubscribe"), data={"csrf": csrf2.group(1)})
    assert back.status_code == 200
    assert statuses(running.root)[READER] == "subscribed"


def confirm_link(smtp: TestServer, address: str) -> str:
    (msg,) = [m.message for m in smtp.received if address in m.rcpt]
    text = msg.get_body(("plain",))
    assert text is not None
    found = re.search(r"http://\S+/confirm\?token=\S+", text.get_content())
    assert found is not None
    return found.group(0)


def test_subscribe_then_confirm_then_the_next_send_mails_the_new_reader(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    new = "zoe.martin@example.org"
    before = (running.root / "subscribers.csv").read_bytes().splitlines(keepends=True)
    with running.client() as http:
        form = http.get("/subscribe")
        assert form.status_code == 200 and 'name="email"' in form.text
        answer = http.post("/subscribe", data={"email": new, "name": "Zoé", "website": ""})
        assert answer.status_code == 200
        same = http.post("/subscribe", data={"email": READER, "name": ""})
        assert same.text.replace(READER, new) == answer.text  # tells nobody who is subscribed
        assert new not in statuses(running.root)  # nothing before the confirmation
        link = confirm_link(running.smtp, new)
        msg = next(m.message for m in running.smtp.received if new in m.rcpt)
        assert msg["List-Id"] and "Confirmez" in msg["Subject"]
        page = http.get(link)
        assert new not in statuses(running.root)  # a GET (a mail scanner) subscribes nobody
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        done = http.post(link, data={"csrf": csrf.group(1)})
    assert done.status_code == 200
    assert statuses(running.root)[new] == "subscribed"
    after = (running.root / "subscribers.csv").read_bytes().splitlines(keepends=True)
    assert after[0] == before[0].rstrip(b"\r\n") + b",consent_at,source\n"
    assert after[1 : len(before)] == before[1:]  # every other row byte for byte
    with open(running.root / "subscribers.csv", encoding="utf-8", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["email"] == new)
    assert row["name"] == "Zoé" and row["source"] == "form"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["consent_at"])
    assert send(run_cli, running) == [new]


def test_subscribe_refuses_a_bad_address_and_ignores_the_honeypot(running: Running) -> None:
    with running.client() as http:
        bad = http.post("/subscribe", data={"email": "not-an-address", "name": "x"})
        bot = http.post("/subscribe", data={"email": "bot@example.org", "website": "spam"})
        big = http.post("/subscribe", content=b"email=" + b"a" * 20_000,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        altered = http.get("/confirm?token=eyJlIjoiYUBiLmMifQ.AAAA")
        archive = http.get("/")
        health = http.get("/healthz")
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text
    assert bot.status_code == 200 and running.smtp.received == []
    assert big.status_code == 413
    assert altered.status_code == 400
    assert health.status_code == 200 and health.text == "ok\n"
    assert archive.status_code == 200 and 'action="/subscribe"' in archive.text


def test_a_running_send_stops_mailing_a_reader_who_unsubscribed(
    built: Path, tmp_path: Path
) -> None:
    path = changes.path_in(Layout.at(built).state_dir)
    now = [0.0]
    recent = changes.Recent(path, clock=lambda: now[0])
    assert READER not in recent
    log = changes.Changes(path)
    log.record(READER, "unsubscribe", "one-click", time.time())
    assert READER not in recent  # cached: asked again within REFRESH_SECONDS
    now[0] = changes.REFRESH_SECONDS
    assert READER.upper() in recent
    log.record(READER, "subscribe", "resubscribe", time.time())
    now[0] *= 2
    assert READER not in recent
    log.close()


@contextmanager
def serve_process(root: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`newsletter serve` as a process on `port`, once it answers /healthz; killed after."""
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--root", str(root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.05)
        yield server
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_sigkill_right_after_a_200_loses_nothing(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    port = free_port()
    env = {**os.environ, **service_env(smtp_server, port)}
    assert run_cli("send", "2026-11", root=built, env=env).exit_code == 0
    addresses = [a for a in statuses(built) if statuses(built)[a] == "subscribed"]
    urls = {a: one_click_url(Running(built, "", smtp_server, env), a) for a in addresses}
    with serve_process(built, env, port) as server, httpx.Client(timeout=10) as http:
        answers = [
            http.post(u, data={"List-Unsubscribe": "One-Click"}).status_code
            for u in urls.values()
        ]
        server.send_signal(signal.SIGKILL)  # right after the last 200
        server.wait(timeout=10)
    assert answers == [200] * len(urls)
    after = statuses(built)
    assert all(after[a] == "unsubscribed" for a in addresses)
    db = changes.path_in(Layout.at(built).state_dir)
    assert changes.unsubscribed_since(db, 0) == {a.lower() for a in addresses}


def test_doctor_says_whether_the_public_url_answers(running: Running) -> None:
    from newsletter.send.reachable import check_public_url

    layout = Layout.at(running.root)
    (ok,) = check_public_url(load_settings(layout))
    assert ok.severity == "ok" and ok.message == f"{running.url}/healthz answers"
    dead = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(layout).model_copy(update={"public_url": dead})
    (down,) = check_public_url(settings, timeout=2)
    assert down.severity == "error"
    assert down.message.startswith(f"{dead}/healthz does not answer")
    assert f"unsubscribe link points at {dead}/unsubscribe" in down.message
    own = settings.model_copy(update={"public_url": "", "unsubscribe_url": dead + "/u"})
    (nobody,) = check_public_url(own, timeout=2)
    assert nobody.message.startswith(f"nothing answers at {dead}/u: readers cannot unsubscribe")


LAST = "beatrice.oconnell@example.fr"  # the last mailable row of the sample list


@pytest.mark.smtp_faults(delay=0.8)
def test_a_running_send_stops_mailing_a_reader_unsubscribed_in_the_middle(
    running: Running,
) -> None:
    from newsletter.send.subscribers import unsubscribe_token

    env = {**os.environ, **running.env, "NEWSLETTER_SMTP_CONCURRENCY": "1"}
    sending = subprocess.Popen(
        send_command(running.root),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not running.smtp.received:  # the send is under way
            assert time.monotonic() < deadline and sending.poll() is None
            time.sleep(0.02)
        with running.client() as http:
            url = f"/unsubscribe?token={unsubscribe_token(LAST, SECRET)}"
            assert http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert sending.wait(timeout=30) == 0
    finally:
        sending.kill()
        sending.wait()
    mailed = running.smtp.recipients()
    assert READER in mailed and LAST not in mailed
    assert statuses(running.root)[LAST] == "unsubscribed"


def test_a_change_recorded_but_not_applied_is_applied_when_serve_starts(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a SIGKILL between the commit and the list rewrite leaves: applied at next start."""
    layout = Layout.at(built)
    log = changes.Changes(changes.path_in(layout.state_dir))
    log.record(READER, "unsubscribe", "one-click", time.time())
    log.close()
    assert statuses(built)[READER] == "subscribed"
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_PUBLIC_URL", "https://lettre.example.org")
    service_app(layout, load_settings(layout))
    assert statuses(built)[READER] == "unsubscribed"
    assert changes.Changes(changes.path_in(layout.state_dir)).pending() == []


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_for_counts_only_from_a_trusted_proxy(
    built: Path, smtp_server: TestServer, trusted: str
) -> None:
    port = free_port()
    env = {**os.environ, **service_env(smtp_server, port), "NEWSLETTER_TRUSTED_PROXIES": trusted}
    with serve_process(built, env, port), httpx.Client(timeout=10) as http:
        codes = [
            http.post(
                f"http://127.0.0.1:{port}/subscribe",
                data={"email": f"reader{i}@example.org"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(12)
        ]
        again = [
            http.post(f"http://127.0.0.1:{port}/subscribe", data={"email": "same@example.org"})
            for _ in range(4)
        ]
    if trusted:  # twelve clients behind the proxy: each within its limit
        assert codes == [200] * 12
    else:  # the forwarded header is ignored: one client, limited after ten
        assert codes == [200] * 10 + [429] * 2
    if trusted:  # one mailbox: three confirmations an hour, the same answer for the fourth
        assert [r.status_code for r in again] == [200] * 4
        assert smtp_server.recipients().count("same@example.org") == 3


def test_serve_without_a_public_url_is_a_one_line_error(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    result = run_cli("serve", "--port", "0", root=newsletter_root,
                     env={"NEWSLETTER_SECRET_KEY": SECRET})
    assert result.exit_code == 1
    assert result.stderr == (
        "error: .env: NEWSLETTER_PUBLIC_URL: `serve` needs NEWSLETTER_PUBLIC_URL and "
        "NEWSLETTER_SECRET_KEY (set the public https address of the service and a long "
        "random secret)\n"
    )


def test_the_confirmation_is_dkim_signed_in_english_when_the_letter_is(
    built: Path, smtp_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    (built / "dkim.pem").write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )
    public = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    with in_thread(
        built, smtp_server, monkeypatch, NEWSLETTER_DKIM_KEY_FILE="dkim.pem",
        NEWSLETTER_DKIM_SELECTOR="nl2026", NEWSLETTER_LANGUAGE="en",
    ) as r, r.client() as http:
        form = http.get("/subscribe")
        answer = http.post("/subscribe", data={"email": "sam@example.org", "name": "Sam"})
    assert '<html lang="en">' in form.text and "Subscribe to Coeur sur Paris" in form.text
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (received,) = smtp_server.received
    msg = received.message
    assert msg["Subject"] == "Confirm your subscription to Coeur sur Paris"
    assert msg["List-Id"] == "<newsletter.coeursurparis.example>"
    assert received.envelope_from == "lettre@coeursurparis.example"

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        return record if text.rstrip(".") == "nl2026._domainkey.coeursurparis.example" else None

    assert dkim.verify(received.raw, dnsfunc=lookup)


def test_no_open_redirect_from_the_archive(running: Running) -> None:
    with running.client() as http:
        for path in ("//evil.example/", "/%2F%2Fevil.example", "/\\evil.example"):
            answer = http.get(running.url + path)  # absolute: httpx would merge "//host"
            assert answer.request.url.path.startswith("/")
            assert answer.status_code == 404 and "location" not in answer.headers, path


# -- forms as multipart/form-data (RFC 8058 §3.2: the one-click POST SHOULD be multipart) --


def multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """httpx `files=`: one multipart/form-data part per field, no filename (what `curl -F
    name=value` sends)."""
    return {name: (None, value) for name, value in fields.items()}


def test_one_click_as_multipart_unsubscribes_without_a_cookie(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    with running.client() as http:
        answer = http.post(url, files=multipart(**{"List-Unsubscribe": "One-Click"}))
    assert answer.request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert "cookie" not in answer.request.headers
    assert (answer.status_code, answer.text) == (200, "unsubscribed\n")
    assert statuses(running.root)[READER] == "unsubscribed"


def test_a_multipart_body_that_is_too_big_a_file_or_malformed_changes_nothing(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    before = (running.root / "subscribers.csv").read_bytes()
    with running.client() as http:
        big = http.post(url, files=multipart(**{"List-Unsubscribe": "One-Click", "x": "a" * 9000}))
        a_file = http.post(url, files={"List-Unsubscribe": ("o.txt", b"One-Click", "text/plain")})
        no_boundary = http.post(url, content=b"List-Unsubscribe=One-Click",
                                headers={"Content-Type": "multipart/form-data"})
        cut = http.post(url, content=b"--b\r\nContent-Disposition: form-data\r\n\r\nx",
                        headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert big.status_code == 413
    assert (a_file.status_code, a_file.text) == (
        400, "the form cannot be read: field 'List-Unsubscribe' is a file; this form takes "
        "text only\n")
    assert (no_boundary.status_code, no_boundary.text) == (
        400, "the form cannot be read: Missing boundary in multipart.\n")
    assert cut.status_code == 400 and cut.text.count("\n") == 1
    assert (running.root / "subscribers.csv").read_bytes() == before


def test_the_unsubscribe_button_as_multipart_still_needs_its_csrf_cookie(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    with running.client() as http:
        forged = http.post(url, files=multipart(csrf="guess"))
        assert forged.status_code == 403 and statuses(running.root)[READER] == "subscribed"
        page = http.get(url)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        done = http.post(url, files=multipart(csrf=csrf.group(1)))
    assert done.status_code == 200 and "Me réabonner" in done.text
    assert statuses(running.root)[READER] == "unsubscribed"


def test_sign_up_and_confirm_as_multipart(running: Running) -> None:
    new = "multi@exemple-test.fr"
    with running.client() as http:
        answer = http.post("/subscribe", files=multipart(email=new, name="Gaëlle", website=""))
        assert answer.status_code == 200, answer.text
        assert "Vérifiez votre boîte" in answer.text
        link = confirm_link(running.smtp, new)
        forged = http.post(link, files=multipart(csrf="guess"))
        assert forged.status_code == 403 and new not in statuses(running.root)
        page = http.get(link)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        done = http.post(link, files=multipart(csrf=csrf.group(1)))
    assert done.status_code == 200
    assert statuses(running.root)[new] == "subscribed"
    with open(running.root / "subscribers.csv", encoding="utf-8", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["email"] == new)
    assert row["name"] == "Gaëlle" and row["source"] == "form"


def test_a_one_click_post_without_a_content_type_still_unsubscribes(
    running: Running, run_cli: RunCli
) -> None:
    send(run_cli, running)
    url = one_click_url(running, READER)
    with running.client() as http:
        answer = http.post(url, content=b"List-Unsubscribe=One-Click")
    assert "content-type" not in answer.request.headers
    assert answer.status_code == 200 and statuses(running.root)[READER] == "unsubscribed"


# -- `newsletter serve` on a port: announced once held, one line when it cannot be had ------


def test_serve_on_a_port_in_use_says_so_in_one_line_and_exits_1(
    newsletter_root: Path, smtp_server: TestServer
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        env = {**os.environ, **service_env(smtp_server, port)}
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port),
             "--root", str(newsletter_root)],
            env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (another program "
        "listens there: stop it, or choose another port with --port)\n"
    )
    assert result.stdout == ""


def test_serve_announces_the_address_it_holds_then_answers_there(
    newsletter_root: Path, smtp_server: TestServer
) -> None:
    env = {**os.environ, **service_env(smtp_server, 0)}
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", "0",
         "--root", str(newsletter_root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        found = re.fullmatch(r"Serving http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops\)\n", line)
        assert found is not None and found.group(1) != "0", line
        # Announced once bound and listening: the first request is queued, never refused.
        health = httpx.get(f"http://127.0.0.1:{found.group(1)}/healthz", timeout=10)
        assert health.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- the confirmation email: the reader's name, RFC 3834 --------------------------------------


def confirmation_to(smtp: TestServer, address: str) -> EmailMessage:
    (msg,) = [
        email.message_from_bytes(m.raw, policy=email.policy.default)
        for m in smtp.received if address in m.rcpt
    ]
    assert isinstance(msg, EmailMessage)
    return msg


def test_the_confirmation_greets_by_the_name_given_and_is_auto_generated(
    running: Running,
) -> None:
    with running.client() as http:
        for address, name in [("gaelle@example.org", "Gaëlle"), ("anon@example.org", ""),
                              ("lea@example.org", "Léa <b>&</b>"),
                              ("jp@example.org", "J.-P. O’Neil"),
                              ("pub@example.org", "Gagnez 1000 € sur www.promo.example"),
                              ("pub2@example.org", "Voir promo.example")]:
            answer = http.post("/subscribe", data={"email": address, "name": name})
            assert answer.status_code == 200
    named = confirmation_to(running.smtp, "gaelle@example.org")
    # RFC 3834 §5: triggered by a web form, not in response to a message.
    assert named["Auto-Submitted"] == "auto-generated"
    plain, html = named.get_body(("plain",)), named.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().splitlines()[0] == "Bonjour Gaëlle,"
    assert "<p>Bonjour Gaëlle,</p>" in html.get_content()
    anon = confirmation_to(running.smtp, "anon@example.org").get_body(("plain",))
    assert anon is not None and anon.get_content().splitlines()[0] == "Bonjour,"
    initials = confirmation_to(running.smtp, "jp@example.org").get_body(("plain",))
    assert initials is not None and initials.get_content().splitlines()[0] == (
        "Bonjour J.-P. O’Neil,"
    )
    # What does not read as a name never reaches the mail: it goes to any address typed.
    for address, text in [("lea@example.org", "Léa"), ("pub@example.org", "promo"),
                          ("pub2@example.org", "promo")]:
        msg = confirmation_to(running.smtp, address)
        body = msg.get_body(("plain",))
        assert body is not None and body.get_content().splitlines()[0] == "Bonjour,"
        assert text not in msg.as_string()


# -- confirmation links: they confirm a pending sign-up, and nothing once it is confirmed ------


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def fresh_csrf(http: httpx.Client) -> str:
    """A valid CSRF pair (the cookie in `http`, the value returned), as anyone gets one from a
    page with a button: what a replayed confirmation POST would carry."""
    from newsletter.send.subscribers import unsubscribe_token

    return csrf_of(http.get(f"/unsubscribe?token={unsubscribe_token(READER, SECRET)}"))


def sign_up(http: httpx.Client, smtp: TestServer, address: str, name: str = "") -> str:
    """POST /subscribe; the confirmation link mailed for it (the latest if several)."""
    before = len(smtp.received)
    assert http.post("/subscribe", data={"email": address, "name": name}).status_code == 200
    (mail,) = [m.message for m in smtp.received[before:] if address in m.rcpt]
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://\S+/confirm\?token=\S+", body.get_content())
    assert found is not None
    return found.group(0)


def confirm(http: httpx.Client, link: str) -> httpx.Response:
    """Open the link, press its button."""
    return http.post(link, data={"csrf": csrf_of(http.get(link))})


@pytest.mark.parametrize("how", ["one-click", "cli"])
def test_a_replayed_confirmation_link_never_undoes_a_later_unsubscribe(
    running: Running, run_cli: RunCli, how: str
) -> None:
    from newsletter.send.subscribers import unsubscribe_token

    new = "zoe.martin@example.org"
    with running.client() as http:
        link = sign_up(http, running.smtp, new, "Zoé")
        assert confirm(http, link).status_code == 200
        assert statuses(running.root)[new] == "subscribed"
        before = (running.root / "subscribers.csv").read_bytes()
        again = http.post(link, data={"csrf": fresh_csrf(http)})  # while subscribed: a no-op
        assert again.status_code == 200 and "Abonnement déjà confirmé" in again.text
        assert f"{new} est déjà abonné à Coeur sur Paris" in again.text
        assert (running.root / "subscribers.csv").read_bytes() == before
        if how == "one-click":
            url = f"/unsubscribe?token={unsubscribe_token(new, SECRET)}"
            assert http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        else:
            result = run_cli("unsubscribe", new, root=running.root, env=running.env)
            assert result.exit_code == 0, result.stderr
        assert statuses(running.root)[new] == "unsubscribed"
        unsubscribed = (running.root / "subscribers.csv").read_bytes()
        page = http.get(link)  # within its 48 hours, signature intact
        replay = http.post(link, data={"csrf": fresh_csrf(http)})
    for answer in (page, replay):
        assert answer.status_code == 200 and "Ce lien a déjà servi" in answer.text
        assert 'action="/confirm' not in answer.text  # no button to press
    assert statuses(running.root)[new] == "unsubscribed"
    assert (running.root / "subscribers.csv").read_bytes() == unsubscribed


def test_a_link_mailed_before_an_unsubscribe_does_not_undo_it(
    running: Running, run_cli: RunCli
) -> None:
    """A reader on the list (no consent_at: imported) asks for a link, then unsubscribes with
    `newsletter unsubscribe`: the link, pressed later, leaves them unsubscribed."""
    with running.client() as http:
        link = sign_up(http, running.smtp, READER)
        result = run_cli("unsubscribe", READER, root=running.root, env=running.env)
        assert result.exit_code == 0, result.stderr
        replay = http.post(link, data={"csrf": fresh_csrf(http)})
    assert replay.status_code == 200 and "Ce lien a déjà servi" in replay.text
    assert statuses(running.root)[READER] == "unsubscribed"


def test_a_link_asked_for_after_an_unsubscribe_subscribes_again(
    running: Running, run_cli: RunCli
) -> None:
    """What the replay guard must not block: a new sign-up after an unsubscribe, at once."""
    gone = "jerome.benoit@example.fr"  # unsubscribed in the sample list
    new = "zoe.martin@example.org"
    with running.client() as http:
        assert confirm(http, sign_up(http, running.smtp, gone)).status_code == 200
        first = sign_up(http, running.smtp, new)
        assert confirm(http, first).status_code == 200
        assert run_cli("unsubscribe", new, root=running.root, env=running.env).exit_code == 0
        second = sign_up(http, running.smtp, new)
        done = confirm(http, second)
    assert done.status_code == 200 and "Abonnement confirmé" in done.text
    assert statuses(running.root)[gone] == "subscribed"
    assert statuses(running.root)[new] == "subscribed"


def test_without_the_change_log_the_lists_consent_at_still_stops_a_replay(
    built: Path, smtp_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state/ lost, the reader set to unsubscribed by hand in the list: consent_at decides."""
    new = "zoe.martin@example.org"
    with in_thread(built, smtp_server, monkeypatch) as r, r.client() as http:
        link = sign_up(http, smtp_server, new)
        assert confirm(http, link).status_code == 200
    path = built / "subscribers.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(
        f"{new},,subscribed,", f"{new},,unsubscribed,"), encoding="utf-8")
    assert statuses(built)[new] == "unsubscribed"
    for db in (Layout.at(built).state_dir).glob("changes.db*"):
        db.unlink()
    with in_thread(built, smtp_server, monkeypatch) as r, r.client() as http:
        parts = urlsplit(link)  # the same link, on this server's port
        replay = http.post(f"{parts.path}?{parts.query}", data={"csrf": fresh_csrf(http)})
    assert replay.status_code == 200 and "Ce lien a déjà servi" in replay.text
    assert statuses(built)[new] == "unsubscribed"


def test_a_link_mailed_before_the_issue_time_was_signed_in_counts_from_its_expiry() -> None:
    import json

    from newsletter.web import tokens

    payload = json.dumps({"e": "a@example.org", "n": "", "x": 1_000_000}).encode()
    old = f"{tokens._b64(payload)}.{tokens._b64(tokens._sign(SECRET, 'confirm', payload))}"
    found = tokens.read_confirm(old, secret=SECRET, now=999_000, lifetime=48 * 3600)
    assert found.issued == 1_000_000 - 48 * 3600
    new = tokens.confirm_token("a@example.org", "", issued=5.25, expires=9, secret=SECRET)
    assert tokens.read_confirm(new, secret=SECRET, now=6, lifetime=1).issued == 5.25
