"""What a check found: one shape for the build's checks and for `newsletter doctor`.

    Finding("gmail-clip", "warning", "the message is 95 KB; Gmail clips …", "email.html")
    Finding("relay", "ok", "127.0.0.1:25 answers EHLO (…)")

Checks return findings; they never print and never exit. The CLI prints them and decides what
is fatal (an error always; a warning with `build-issue --strict`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

#: "ok" is for doctor, which also says what passed; the build reports only problems.
Severity = Literal["error", "warning", "ok"]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    where: str = ""

    def as_dict(self) -> dict[str, str]:
        """The entry of manifest.json's "warnings": this key order is the file's format."""
        return {
            "code": self.code,
            "message": self.message,
            "where": self.where,
            "severity": self.severity,
        }


def tally(findings: Iterable[Finding]) -> Counter[Severity]:
    """How many of each severity (absent ones count 0)."""
    return Counter(f.severity for f in findings)
