"""What email clients would do to the issue: warnings by default, fatal with --strict."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RunCli, snapshot
from test_issue import expected_selection

from newsletter.checks import GMAIL_CLIP_BYTES, SUBJECT_MAX_CHARS


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def set_issue_line(root: Path, issue_id: str, key: str, value: str) -> None:
    path = root / "issues" / f"{issue_id}.toml"
    text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", path.read_text("utf-8"))
    assert n == 1
    path.write_text(text, encoding="utf-8")


def make_huge(root: Path) -> None:
    slug = expected_selection(root, "2026-12")[0]
    path = root / "content" / "articles" / f"{slug}.md"
    filler = "".join(
        f"\n\nParagraphe de remplissage n° {n}, écrit pour dépasser la limite de Gmail."
        for n in range(900)
    )
    path.write_text(path.read_text("utf-8") + filler, encoding="utf-8")


def image_without_alt(root: Path, alt: str = "") -> None:
    replace_in(
        root / "templates" / "email.mjml.j2",
        "<p>{{ greeting }}</p>",
        f'<p>{{{{ greeting }}}}</p><img src="https://coeursurparis.example/logo.png"{alt}>',
    )


def no_unsubscribe_in_html(root: Path) -> None:
    replace_in(
        root / "templates" / "email.mjml.j2",
        '<a href="{{ unsubscribe_url }}">{{ labels.unsubscribe }}</a>',
        "",
    )


def no_unsubscribe_in_text(root: Path) -> None:
    replace_in(
        root / "templates" / "email.txt.j2",
        "{{ labels.unsubscribe }}{{ labels.colon }} {{ unsubscribe_url }}",
        "",
    )


def unknown_mjml_element(root: Path) -> None:
    replace_in(
        root / "templates" / "email.mjml.j2",
        '<mj-body background-color="#f4f1ec" width="600px">',
        '<mj-body background-color="#f4f1ec" width="600px">\n    <mj-foo>?</mj-foo>',
    )


@dataclass
class Case:
    issue: str
    change: Callable[[Path], None]
    code: str
    where: str
    says: str


CASES = {
    "gmail-clip": Case("2026-12", make_huge, "gmail-clip", "email.html", "Gmail clips"),
    "missing-alt": Case(
        "2026-11", image_without_alt, "missing-alt", "email.html",
        "image https://coeursurparis.example/logo.png has no alt text",
    ),
    "empty-alt": Case(
        "2026-11", lambda root: image_without_alt(root, ' alt=" "'), "missing-alt", "email.html",
        "image https://coeursurparis.example/logo.png has no alt text",
    ),
    "empty-preheader": Case(
        "2026-11", lambda root: set_issue_line(root, "2026-11", "preheader", '""'),
        "empty-preheader", "issues/2026-11.toml", "the preheader is empty",
    ),
    "long-subject": Case(
        "2026-11",
        lambda root: set_issue_line(root, "2026-11", "subject", '"' + "é" * 79 + '"'),
        "long-subject", "issues/2026-11.toml", "the subject has 79 characters",
    ),
    "no-unsubscribe-html": Case(
        "2026-11", no_unsubscribe_in_html, "no-unsubscribe", "templates/email.mjml.j2",
        "the HTML part has no unsubscribe link",
    ),
    "no-unsubscribe-text": Case(
        "2026-11", no_unsubscribe_in_text, "no-unsubscribe", "templates/email.txt.j2",
        "the text part has no unsubscribe link",
    ),
    "mjml": Case(
        "2026-11", unknown_mjml_element, "mjml", "email.mjml:", "unknown MJML element <mj-foo>"
    ),
}


def warning_lines(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.strip().startswith("warning [")]


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_sample_issues_pass_every_check(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    result = run_cli("build-issue", issue_id, "--strict", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert "checks: all passed" in result.stdout
    manifest = json.loads((newsletter_root / "build" / issue_id / "manifest.json").read_text())
    assert manifest["warnings"] == []


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_finding_is_a_warning_and_strict_makes_it_fatal_without_touching_build(
    newsletter_root: Path, run_cli: RunCli, case: Case
) -> None:
    root = newsletter_root
    assert run_cli("build-issue", case.issue, root=root).exit_code == 0
    before = snapshot(root / "build")
    case.change(root)

    strict = run_cli("build-issue", case.issue, "--strict", root=root)
    assert strict.exit_code == 1
    assert strict.stderr == (
        "error: 1 check(s) failed with --strict; build/ was not changed "
        "(fix the findings above, or build without --strict)\n"
    )
    assert "Traceback" not in strict.stderr + strict.stdout
    (line,) = warning_lines(strict.stdout)
    assert line.startswith(f"warning [{case.code}] {case.where}")
    assert snapshot(root / "build") == before
    assert sorted(p.name for p in (root / "build").iterdir()) == [case.issue]

    loose = run_cli("build-issue", case.issue, root=root)
    assert loose.exit_code == 0, loose.stderr
    assert loose.stderr == ""
    assert warning_lines(loose.stdout) == [line]
    assert case.says in line
    assert snapshot(root / "build") != before
    manifest = json.loads((root / "build" / case.issue / "manifest.json").read_text())
    (warning,) = manifest["warnings"]
    assert line == f"warning [{warning['code']}] {warning['where']}: {warning['message']}"


def test_gmail_clip_reports_the_real_size(newsletter_root: Path, run_cli: RunCli) -> None:
    make_huge(newsletter_root)
    assert run_cli("build-issue", "2026-12", root=newsletter_root).exit_code == 0
    size = (newsletter_root / "build" / "2026-12" / "email.html").stat().st_size
    assert size > GMAIL_CLIP_BYTES
    manifest = json.loads((newsletter_root / "build" / "2026-12" / "manifest.json").read_text())
    (warning,) = manifest["warnings"]
    assert warning["message"].startswith(f"email.html is {size / 1024:.0f} KB;")


def test_mjml_warning_names_the_line_of_email_mjml(newsletter_root: Path, run_cli: RunCli) -> None:
    unknown_mjml_element(newsletter_root)
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    out = newsletter_root / "build" / "2026-11"
    (warning,) = json.loads((out / "manifest.json").read_text())["warnings"]
    line = int(warning["where"].removeprefix("email.mjml:"))
    mjml = (out / "email.mjml").read_text(encoding="utf-8").splitlines()
    assert "<mj-foo>" in mjml[line - 1]
    assert sum("<mj-foo>" in text for text in mjml) == 1


def test_a_subject_of_78_characters_is_fine(newsletter_root: Path, run_cli: RunCli) -> None:
    set_issue_line(newsletter_root, "2026-11", "subject", '"' + "é" * SUBJECT_MAX_CHARS + '"')
    result = run_cli("build-issue", "2026-11", "--strict", root=newsletter_root)
    assert result.exit_code == 0, result.stdout
    assert warning_lines(result.stdout) == []


def test_every_finding_is_listed_and_counted(newsletter_root: Path, run_cli: RunCli) -> None:
    set_issue_line(newsletter_root, "2026-11", "preheader", '""')
    no_unsubscribe_in_text(newsletter_root)
    image_without_alt(newsletter_root)
    strict = run_cli("build-issue", "2026-11", "--strict", root=newsletter_root)
    assert strict.exit_code == 1
    assert strict.stderr.startswith("error: 3 check(s) failed with --strict")
    assert [line.split("]")[0] for line in warning_lines(strict.stdout)] == [
        "warning [missing-alt", "warning [empty-preheader", "warning [no-unsubscribe"
    ]
    assert not (newsletter_root / "build").exists()
