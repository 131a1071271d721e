"""Issue 13, defects 7 and 8: malformed and forged notifications, and the property test."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import FIXTURES, RunCli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journalseed import mailed

from newsletter.send.bounces import Context, parse_or_skip
from newsletter.send.dsn import parse

BOUNCES = FIXTURES / "bounces"
CORPUS = FIXTURES / "flufl_bounce" / "data"
SAMPLES = [p.read_bytes() for p in sorted(BOUNCES.glob("*.eml"))] + [
    (CORPUS / n).read_bytes() for n in ("qmail_01.txt", "yahoo_04.txt", "dsn_04.txt")
]

FORGED = """\
From: MAILER-DAEMON@mx.example.net
To: anything@coeursurparis.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {victim}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--B--
"""

BROKEN = [
    b"From: MAILER-DAEMON@\r\nSubject: Undelivered Mail\r\n\r\n550 5.1.1 user unknown\r\n",
    b"From: undisclosed-recipients:;\r\nTo: a group: x@example.fr;\r\n"
    b"Content-Type: multipart/report; boundary=\"\r\n\r\n--\r\n",
]


def _inbox(root: Path, **victims: str) -> None:
    """root/in/<name>.eml: a notification about each victim; reader@ was mailed."""
    folder = root / "in"
    folder.mkdir()
    for name, victim in victims.items():
        (folder / f"{name}.eml").write_text(FORGED.format(victim=victim))
    mailed(root, ["reader@example.org"])


def test_a_forged_bounce_about_someone_never_mailed_suppresses_nobody(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    _inbox(newsletter_root, forged="victim@example.org", real="reader@example.org")
    result = run_cli("bounces", "in", cwd=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "forged.eml: victim@example.org hard-bounce 550 5.1.1 (not suppressed: never mailed "
        "by this newsletter (not in the journal))",
        "real.eml: reader@example.org hard-bounce 550 5.1.1 (suppressed)",
        "2 message(s): 1 hard bounce(s), 1 added to suppressions.csv; 1 other(s) not "
        "suppressed; 0 skipped",
    ]


def test_with_verp_on_a_notification_without_a_token_suppresses_nobody(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    _inbox(newsletter_root, forged="reader@example.org")
    env = {
        "NEWSLETTER_BOUNCE_DOMAIN": "bounces.coeursurparis.example",
        "NEWSLETTER_SECRET_KEY": "a-long-random-secret-for-the-tests",
    }
    result = run_cli("bounces", "in", cwd=newsletter_root, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "forged.eml: reader@example.org hard-bounce 550 5.1.1 (not suppressed: no VERP token: "
        "not a return path of ours)"
    )
    assert not (newsletter_root / "suppressions.csv").exists()


def test_a_malformed_message_is_reported_and_skipped_and_the_others_handled(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    folder = newsletter_root / "in"
    shutil.copytree(BOUNCES, folder)
    for n, raw in enumerate(BROKEN):
        (folder / f"broken-{n}.eml").write_bytes(raw)
    mailed(newsletter_root, ["jean.dupont@example.fr", "thomas.bernard@example.com"])
    result = run_cli("bounces", "in", cwd=newsletter_root)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("broken-0.eml: ")
    assert lines[1].startswith("broken-1.eml: ")
    assert "jean.dupont@example.fr hard-bounce 550 5.1.1 (suppressed)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def _context() -> Context:
    return Context(
        own_domains={"coeursurparis.example"},
        sender_domain="coeursurparis.example",
        mailed=lambda address: "2026-11",
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A fixture with bytes flipped, cut short, or a header line mangled."""
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    if draw(st.booleans()):
        junk = draw(st.sampled_from([b"From: <@>", b"To: a:;", b"Content-Type: multipart/",
                                     b"Subject: =?x?Q?\xff?=", b"\x00\r\n\r\n", b"To: \"\r\n"]))
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = junk + b"\r\n"
    return bytes(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated())
def test_any_mutated_notification_never_raises(raw: bytes) -> None:
    bounces = parse_or_skip(raw, source="x.eml", context=_context())
    assert bounces and all(b.source == "x.eml" for b in bounces)
    # The guard is not what saves it: the parser itself never raises on these.
    parse(raw, source="x.eml", context=_context())


def test_soft_bounces_in_three_issues_suppress_the_address(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    full = (BOUNCES / "postfix-mailbox-full.eml").read_bytes()
    mailed(newsletter_root, ["claire.petit@example.fr"])
    outcomes = []
    for issue in ("2026-09", "2026-10", "2026-10", "2026-11"):
        folder = newsletter_root / f"in-{len(outcomes)}"
        folder.mkdir()
        (folder / "full.eml").write_bytes(full.replace(b"<2026-11.", f"<{issue}.".encode()))
        result = run_cli("bounces", folder.name, cwd=newsletter_root)
        assert result.exit_code == 0, result.stderr
        outcomes.append(result.stdout.splitlines()[0])
    assert outcomes == [
        "full.eml: claire.petit@example.fr deferred 452 4.2.2 (not suppressed)",
        "full.eml: claire.petit@example.fr deferred 452 4.2.2 (not suppressed)",
        "full.eml: claire.petit@example.fr deferred 452 4.2.2 (not suppressed)",  # same issue
        "full.eml: claire.petit@example.fr deferred 452 4.2.2 (suppressed: soft bounces in 3 "
        "issues)",
    ]
    rows = (newsletter_root / "suppressions.csv").read_text().splitlines()
    assert rows[1].startswith("claire.petit@example.fr,soft-bounce,4.2.2,2026-11,")


def test_picked_addresses_carry_no_quote_or_smtp_prefix() -> None:
    from newsletter.send.detect import clean

    assert clean("'userx@example.com'") == "userx@example.com"
    assert clean("SMTP=userx@example.com") == "userx@example.com"
    assert clean("<rfc822;userx@example.com>") == "userx@example.com"
    assert clean("not an address") == ""
