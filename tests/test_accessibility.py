"""What a screen reader gets from the email."""

from __future__ import annotations

import json
import re
from pathlib import Path


def test_the_aria_label_is_the_subject_with_no_escape_codes(built: Path) -> None:
    out = built / "build" / "2026-11"
    html = (out / "email.html").read_text(encoding="utf-8")
    subject = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["subject"]
    labels = re.findall(r'aria-label="([^"]*)"', html)
    assert labels and "\u00a0" in subject  # the sample subject has a French non-breaking space
    assert all("\\u{" not in label for label in labels)
    assert subject in labels
