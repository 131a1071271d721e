"""A sent sample message scored by SpamAssassin (local tests, no network): 0 or below.

Before the theme's preheader was hidden without colour, this scored 0.7: HTML_FONT_LOW_CONTRAST
(the white preheader text on the page). Now 0.0 (HTML_MESSAGE only).
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from smtpserver import TestServer
from spamassassin import score, with_received


def test_a_sent_issue_scores_zero_or_below(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = run_cli(
        "send", "2026-11", root=built,
        env=smtp_server.env(
            NEWSLETTER_UNSUBSCRIBE_URL="https://coeursurparis.example/desabonnement",
            NEWSLETTER_SECRET_KEY="test-secret-key-0123456789",
        ),
    )
    assert result.exit_code == 0, result.stderr
    first = smtp_server.received[0]
    scored = score(with_received(first.raw, rcpt=first.rcpt[0]))
    print(f"SpamAssassin: {scored.score} {', '.join(scored.rules)}")
    assert scored.score <= 0, scored.report
    assert "HTML_FONT_LOW_CONTRAST" not in scored.rules
