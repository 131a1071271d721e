"""What email clients will do to the issue, checked before anyone receives it.

Checks return data (a list of findings); the CLI decides what is fatal (`--strict`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from newsletter.issue import Issue
from newsletter.render import RenderedIssue

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_MAX_CHARS = 78

_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_ALT_RE = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_SRC_RE = re.compile(r"""\bsrc\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_UNSUBSCRIBE_HREF_RE = re.compile(r"""\bhref\s*=\s*(["'])\{\{ unsubscribe_url \}\}\1""", re.I)


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    where: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(rendered: RenderedIssue, issue: Issue) -> list[Finding]:
    findings: list[Finding] = []
    size = len(rendered.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        findings.append(Finding(
            "gmail-clip",
            f"email.html is {size / 1024:.0f} KB; Gmail clips messages above 102 KB "
            "(use mode = \"excerpt\" or fewer articles)",
            "email.html",
        ))
    for m in _IMG_RE.finditer(rendered.html):
        alt = _ALT_RE.search(m.group(0))
        if alt is None or not alt.group(2).strip():
            src = _SRC_RE.search(m.group(0))
            findings.append(Finding(
                "missing-alt",
                f"image {src.group(2) if src else '(no src)'} has no alt text "
                "(set image_alt in the article's front matter)",
                "email.html",
            ))
    if not issue.preheader.strip():
        findings.append(Finding(
            "empty-preheader",
            "the preheader is empty; inboxes will show the first words of the email instead "
            "(set preheader = \"…\")",
            issue.source,
        ))
    if len(issue.subject) > SUBJECT_MAX_CHARS:
        findings.append(Finding(
            "long-subject",
            f"the subject has {len(issue.subject)} characters; over {SUBJECT_MAX_CHARS} it is "
            "cut in most inboxes",
            issue.source,
        ))
    # Each part needs its own link: some clients and readers only ever show the text part.
    if not _UNSUBSCRIBE_HREF_RE.search(rendered.html):
        findings.append(Finding(
            "no-unsubscribe",
            "the HTML part has no unsubscribe link "
            "(put <a href=\"{{ unsubscribe_url }}\"> in the template)",
            "templates/email.mjml.j2",
        ))
    if "{{ unsubscribe_url }}" not in rendered.text:
        findings.append(Finding(
            "no-unsubscribe",
            "the text part has no unsubscribe link (put {{ unsubscribe_url }} in the template)",
            "templates/email.txt.j2",
        ))
    for w in rendered.mjml_warnings:
        findings.append(Finding("mjml", w.message, f"email.mjml:{w.line}"))
    return findings
