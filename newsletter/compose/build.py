"""build-issue: content -> issue -> render -> checks -> build/<id>/, written whole or not at all."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import fsio
from newsletter.compose.checks import Finding, check
from newsletter.compose.content import load_catalog
from newsletter.compose.issue import Issue, resolve_issue
from newsletter.compose.render import RenderedIssue, newsletter_from_settings, render_issue
from newsletter.errors import NewsletterError
from newsletter.layout import Layout
from newsletter.manifest import ArticleDetail, Manifest
from newsletter.send.evidence import MARKER
from newsletter.send.message import MessageTemplate
from newsletter.settings import Settings

OUTPUTS = ("email.html", "email.txt", "email.mjml", "email.eml", "manifest.json")


class ChecksFailed(NewsletterError):
    """A check found an error (or, with --strict, anything): nothing was written.

    `findings` holds them all, warnings included, so that all can be shown in one run.
    """

    def __init__(self, findings: list[Finding], *, strict: bool = False) -> None:
        errors = sum(f.severity == "error" for f in findings)
        failed = len(findings) if strict else errors
        super().__init__(
            f"{failed} check(s) failed{' with --strict' if strict else ''}; "
            "build/ was not changed",
            hint="fix the errors above"
            if not strict
            else "fix the findings above" + ("" if errors else ", or build without --strict"),
        )
        self.findings = findings


@dataclass
class BuildResult:
    issue: Issue
    rendered: RenderedIssue
    findings: list[Finding]
    out_dir: Path
    sizes: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def build_issue(
    layout: Layout, issue_id: str, *, settings: Settings, strict: bool = False
) -> BuildResult:
    """Build `build/<id>/` from `issues/<id>.toml`.

    Raises a NewsletterError (or an ErrorGroup) before anything is written; on success the
    new folder replaces the old one in one rename, so a reader never sees half a build.
    """
    timings: dict[str, float] = {}
    with _stage(timings, "select"):
        catalog = load_catalog(layout, site_url=settings.site_url)
        issue = resolve_issue(layout, issue_id, catalog, language=settings.language)
    newsletter = newsletter_from_settings(
        settings.require_sender(), settings.postal_address, issue.language
    )
    rendered = render_issue(
        issue, layout=layout, newsletter=newsletter, timings=timings,
        archive_url=settings.archive_page_url(issue.id),
    )
    with _stage(timings, "message"):
        template = MessageTemplate(
            issue_id=issue.id, subject=issue.subject, html=rendered.html, text=rendered.text,
            language=issue.language, settings=settings,
        )
        eml = template.test_message()
    with _stage(timings, "checks"):
        # The Gmail clip is measured on the message as sent, not on email.html.
        findings = check(rendered, issue, message=eml, postal_address=settings.postal_address)
    if any(f.severity == "error" for f in findings) or (strict and findings):
        raise ChecksFailed(findings, strict=strict)
    with _stage(timings, "write"):
        files: dict[str, bytes] = {
            "email.html": rendered.html.encode("utf-8"),
            "email.txt": rendered.text.encode("utf-8"),
            "email.mjml": rendered.mjml.encode("utf-8"),
            "email.eml": eml,
        }
        sizes = {name: len(data) for name, data in files.items()}
        files["manifest.json"] = _manifest(issue, rendered, findings, sizes)
        out_dir = layout.build_dir(issue.id)
        # A rebuild keeps the record that a send of the issue began (send/evidence.py): with
        # the journal lost, it is what stops `send` from mailing everyone a second time.
        marker = out_dir / MARKER
        if marker.is_file():
            files[MARKER] = marker.read_bytes()
        fsio.replace_dir(out_dir, files)
    return BuildResult(issue, rendered, findings, out_dir, sizes, timings)


def content_hash(subject: str, html: str, text: str) -> str:
    """What a send is bound to: resuming against a different build is refused."""
    h = hashlib.sha256()
    for part in (subject, html, text):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _manifest(
    issue: Issue, rendered: RenderedIssue, findings: list[Finding], sizes: dict[str, int]
) -> bytes:
    return Manifest(
        id=issue.id,
        subject=issue.subject,
        preheader=issue.preheader,
        date=issue.date.isoformat(),
        number=issue.number,
        language=issue.language,
        mode=issue.mode,
        articles=tuple(a.slug for a in issue.articles),
        article_details=tuple(
            ArticleDetail(a.slug, a.title, a.category, a.author.name, a.url)
            for a in issue.articles
        ),
        placeholders=tuple(rendered.placeholders),
        content_hash=content_hash(issue.subject, rendered.html, rendered.text),
        sizes=sizes,
        warnings=tuple(findings),
    ).to_bytes()
