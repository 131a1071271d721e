"""Score a message with Debian's SpamAssassin, local tests only (`spamassassin -t -L`)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

SPAMASSASSIN = Path("/usr/bin/spamassassin")
_STATUS_RE = re.compile(
    r"^X-Spam-Status: (?P<verdict>\w+), score=(?P<score>-?[0-9.]+) required=[0-9.]+\s+"
    r"tests=(?P<tests>.*?)\s+autolearn=",
    re.M | re.S,
)


@dataclass(frozen=True)
class Score:
    score: float
    rules: tuple[str, ...]
    report: str


def with_received(raw: bytes, *, rcpt: str) -> bytes:
    """`raw` as a receiving MX stores it: a Received header from a relay with reverse DNS.

    A public address: SpamAssassin scores the documentation ranges (192.0.2.0/24...) as
    RCVD_ILLEGAL_IP, which no real relay would show.
    """
    when = format_datetime(datetime.now(UTC))
    received = (
        "Received: from smtp.coeursurparis.example (smtp.coeursurparis.example [51.15.140.25])\r\n"
        "\tby mx1.lecteurs.example (Postfix) with ESMTPS id 4Zk3x81Q2bz9sQ\r\n"
        f"\tfor <{rcpt}>; {when}\r\n"
    )
    return received.encode("ascii") + raw


def score(message: bytes) -> Score:
    assert SPAMASSASSIN.exists(), f"{SPAMASSASSIN} is missing: apt-get install spamassassin"
    proc = subprocess.run(
        [str(SPAMASSASSIN), "-t", "-L"], input=message, capture_output=True, timeout=120,
        check=True,
    )
    out = proc.stdout.decode("utf-8", "replace")
    m = _STATUS_RE.search(out)
    assert m, out[:2000]
    rules = tuple(r for r in re.sub(r"\s+", "", m.group("tests")).split(",") if r and r != "none")
    return Score(float(m.group("score")), rules, out[out.find("Content analysis details"):])
