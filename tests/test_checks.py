"""What email clients would do to the issue.

Errors stop every build (nothing written); warnings are printed and listed in the manifest,
and fatal with --strict. Each check fires on a copy of the sample broken on purpose and stays
quiet on both sample issues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import POSTAL_ADDRESS, RunCli, own_template, snapshot
from test_issue import expected_selection

from newsletter.compose.checks import (
    GMAIL_CLIP_ERROR_BYTES,
    GMAIL_CLIP_WARN_BYTES,
    STYLE_MAX_BYTES,
    SUBJECT_MAX_CHARS,
)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def set_issue_line(root: Path, issue_id: str, key: str, value: str) -> None:
    path = root / "issues" / f"{issue_id}.toml"
    text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", path.read_text("utf-8"))
    assert n == 1
    path.write_text(text, encoding="utf-8")


# About 120 bytes of email.html and 140 bytes sent (quoted-printable) per paragraph, from the
# 46 KB sent of 2026-12: 370 paragraphs put it mid-way between 90 and 100 KB as sent, 450
# over 100 KB sent while email.html itself stays under 100 KB.
WARN_PARAGRAPHS = 370
ERROR_PARAGRAPHS = 450


def make_huge(root: Path, paragraphs: int = ERROR_PARAGRAPHS) -> None:
    slug = expected_selection(root, "2026-12")[0]
    path = root / "content" / "articles" / f"{slug}.md"
    filler = "".join(
        f"\n\nParagraphe de remplissage n° {n}, écrit pour dépasser la limite de Gmail."
        for n in range(paragraphs)
    )
    path.write_text(path.read_text("utf-8") + filler, encoding="utf-8")


def in_template(root: Path, html: str, *, head: bool = False) -> None:
    """Add raw markup to the email template: in <mj-head>, or after the greeting."""
    template = own_template(root, "email.mjml.j2")
    if head:
        replace_in(template, "<mj-style>", f"{html}\n    <mj-style>")
    else:
        replace_in(template, "<p>{{ greeting }}</p>", f"<p>{{{{ greeting }}}}</p>{html}")


def image_without_alt(root: Path, alt: str = "") -> None:
    in_template(root, f'<img src="https://coeursurparis.example/logo.png"{alt}>')


def no_unsubscribe_in_html(root: Path) -> None:
    replace_in(
        own_template(root, "email.mjml.j2"),
        '<a href="{{ unsubscribe_url }}">{{ labels.unsubscribe }}</a>',
        "",
    )


def no_unsubscribe_in_text(root: Path) -> None:
    replace_in(
        own_template(root, "email.txt.j2"),
        "{{ labels.unsubscribe }}{{ labels.colon }} {{ unsubscribe_url }}",
        "",
    )


def unknown_mjml_element(root: Path) -> None:
    replace_in(
        own_template(root, "email.mjml.j2"),
        'width="600px" css-class="page">',
        'width="600px" css-class="page">\n    <mj-foo>?</mj-foo>',
    )


def mjml_tag(root: Path, new: str) -> None:
    replace_in(
        own_template(root, "email.mjml.j2"), '<mjml lang="{{ issue.language }}" dir="ltr">', new
    )


def no_postal_address_in(template: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = own_template(root, template)
        text, n = re.subn(r"\{\{ newsletter\.postal_address \}\}", "", path.read_text("utf-8"))
        assert n == 1
        path.write_text(text, encoding="utf-8")

    return change


def big_media_query(root: Path) -> None:
    rules = "".join(
        f"      .rule-{n} div {{ font-size: 16px !important; }}\n"
        for n in range(STYLE_MAX_BYTES // 40)
    )
    in_template(root, f"<mj-style>\n@media only screen and (max-width: 480px) {{\n{rules}}}\n"
                      "</mj-style>", head=True)


def unparsed_style(css: str) -> str:
    # premailer drops @import and @font-face from the <style> blocks it reads; a block it is
    # told to ignore reaches the email as written, as it would from other tools.
    return f'<mj-raw><style data-premailer="ignore">{css}</style></mj-raw>'


@dataclass
class Case:
    issue: str
    change: Callable[[Path], None]
    code: str
    where: str
    says: str


WARNINGS = {
    "gmail-clip-near": Case(
        "2026-12", lambda root: make_huge(root, WARN_PARAGRAPHS), "gmail-clip", "email.html",
        "Gmail clips messages from about 100 KB",
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
    "mjml": Case(
        "2026-11", unknown_mjml_element, "mjml", "email.mjml:", "unknown MJML element <mj-foo>"
    ),
}

ERRORS = {
    "gmail-clip": Case(
        "2026-12", make_huge, "gmail-clip", "email.html", "Gmail clips messages from about 100 KB"
    ),
    "missing-alt": Case(
        "2026-11", image_without_alt, "missing-alt", "email.html",
        "image https://coeursurparis.example/logo.png has no alt text",
    ),
    "empty-alt": Case(
        "2026-11", lambda root: image_without_alt(root, ' alt=" "'), "missing-alt", "email.html",
        "image https://coeursurparis.example/logo.png has no alt text",
    ),
    "no-unsubscribe-html": Case(
        "2026-11", no_unsubscribe_in_html, "no-unsubscribe", "templates/email.mjml.j2",
        "the HTML part has no unsubscribe link",
    ),
    "no-unsubscribe-text": Case(
        "2026-11", no_unsubscribe_in_text, "no-unsubscribe", "templates/email.txt.j2",
        "the text part has no unsubscribe link",
    ),
    "no-postal-address-html": Case(
        "2026-11", no_postal_address_in("email.mjml.j2"), "no-postal-address",
        "templates/email.mjml.j2", "the HTML part does not show NEWSLETTER_POSTAL_ADDRESS",
    ),
    "no-postal-address-text": Case(
        "2026-11", no_postal_address_in("email.txt.j2"), "no-postal-address",
        "templates/email.txt.j2", "the text part does not show NEWSLETTER_POSTAL_ADDRESS",
    ),
    "no-lang": Case(
        "2026-11", lambda root: mjml_tag(root, "<mjml>"), "html-lang", "templates/email.mjml.j2",
        "<html> has no lang;",
    ),
    "wrong-lang": Case(
        "2026-11", lambda root: mjml_tag(root, '<mjml lang="en" dir="ltr">'), "html-lang",
        "templates/email.mjml.j2", '<html> has lang="en" for an issue in "fr";',
    ),
    "no-dir": Case(
        "2026-11", lambda root: mjml_tag(root, '<mjml lang="{{ issue.language }}" dir="">'),
        "html-lang", "templates/email.mjml.j2", "<html> has no dir;",
    ),
    "table-role": Case(
        "2026-11", lambda root: in_template(root, "<table><tr><td>·</td></tr></table>"),
        "table-role", "templates/email.mjml.j2: 1 of", 'layout table(s) lack role="presentation"',
    ),
    "google-font": Case(
        "2026-11",
        lambda root: in_template(
            root, '<mj-font name="Lora" href="https://fonts.googleapis.com/css?family=Lora" />'
            '<mj-attributes><mj-text font-family="Lora, Georgia, serif" /></mj-attributes>',
            head=True,
        ),
        "remote-font", "templates/email.mjml.j2",
        "<link> to the web font https://fonts.googleapis.com/css?family=Lora",
    ),
    "css-import": Case(
        "2026-11",
        lambda root: in_template(root, unparsed_style("@import url(https://x.example/f.css);"),
                                 head=True),
        "remote-font", "templates/email.mjml.j2",
        "@import of https://x.example/f.css in a <style> block",
    ),
    "font-face": Case(
        "2026-11",
        lambda root: in_template(
            root,
            unparsed_style('@font-face { font-family: "Lora"; '
                           'src: url("https://x.example/lora.woff2") format("woff2"); }'),
            head=True,
        ),
        "remote-font", "templates/email.mjml.j2", '1 @font-face rule(s) with a remote src ("Lora")',
    ),
    "stylesheet-link": Case(
        "2026-11",
        lambda root: in_template(
            root, '<mj-raw><link rel="stylesheet" href="https://x/y.css"></mj-raw>', head=True
        ),
        "stylesheet-link", "templates/email.mjml.j2",
        '<link rel="stylesheet" href="https://x/y.css">: email clients drop linked stylesheets',
    ),
    "style-size": Case(
        "2026-11", big_media_query, "style-size", "templates/email.mjml.j2",
        "Gmail drops them from 16 KB",
    ),
    "pixel-1x1": Case(
        "2026-11",
        lambda root: in_template(
            root, '<img src="https://coeursurparis.example/p.gif" width="1" height="1" alt="·">'
        ),
        "tracking-pixel", "email.html",
        "image https://coeursurparis.example/p.gif looks like a tracking pixel (1×1)",
    ),
    "pixel-style": Case(
        "2026-11",
        lambda root: in_template(
            root, '<img src="https://coeursurparis.example/p.gif" alt="·" '
            'style="display:block;width:1px;height:0">'
        ),
        "tracking-pixel", "email.html",
        "image https://coeursurparis.example/p.gif looks like a tracking pixel (1×1)",
    ),
    "pixel-url": Case(
        "2026-11",
        lambda root: in_template(
            root, '<img src="https://stats.example/track?c=12&amp;u={{ email }}" width="600" '
            'alt="Coeur sur Paris">'
        ),
        "tracking-pixel", "email.html", "looks like a tracking pixel (its URL says “track”)",
    ),
}


def finding_lines(stdout: str) -> list[str]:
    return [
        line.strip()
        for line in stdout.splitlines()
        if line.strip().startswith(("warning [", "error ["))
    ]


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_sample_issues_pass_every_check(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    result = run_cli("build-issue", issue_id, "--strict", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert "checks: all passed" in result.stdout
    manifest = json.loads((newsletter_root / "build" / issue_id / "manifest.json").read_text())
    assert manifest["warnings"] == []


@pytest.mark.parametrize("case", WARNINGS.values(), ids=WARNINGS.keys())
def test_warning_is_written_and_strict_makes_it_fatal_without_touching_build(
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
    assert "  checks: 1 warning(s)\n" in strict.stdout
    (line,) = finding_lines(strict.stdout)
    assert line.startswith(f"warning [{case.code}] {case.where}")
    assert snapshot(root / "build") == before
    assert sorted(p.name for p in (root / "build").iterdir()) == [case.issue]

    loose = run_cli("build-issue", case.issue, root=root)
    assert loose.exit_code == 0, loose.stderr
    assert loose.stderr == ""
    assert finding_lines(loose.stdout) == [line]
    assert case.says in line
    assert snapshot(root / "build") != before
    manifest = json.loads((root / "build" / case.issue / "manifest.json").read_text())
    (warning,) = manifest["warnings"]
    assert warning["severity"] == "warning"
    assert line == f"warning [{warning['code']}] {warning['where']}: {warning['message']}"


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_error_is_fatal_without_strict_and_leaves_build_untouched(
    newsletter_root: Path, run_cli: RunCli, case: Case
) -> None:
    root = newsletter_root
    assert run_cli("build-issue", case.issue, root=root).exit_code == 0
    before = snapshot(root / "build")
    case.change(root)

    for args, stderr in [
        ((), "error: 1 check(s) failed; build/ was not changed (fix the errors above)\n"),
        (
            ("--strict",),
            "error: 1 check(s) failed with --strict; build/ was not changed "
            "(fix the findings above)\n",
        ),
    ]:
        result = run_cli("build-issue", case.issue, *args, root=root)
        assert result.exit_code == 1
        assert result.stderr == stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert "  checks: 1 error(s)\n" in result.stdout
        (line,) = finding_lines(result.stdout)
        assert line.startswith(f"error [{case.code}] {case.where}")
        assert case.says in line
        assert snapshot(root / "build") == before
        assert sorted(p.name for p in (root / "build").iterdir()) == [case.issue]


def test_gmail_clip_is_measured_on_the_message_as_sent(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    make_huge(newsletter_root, WARN_PARAGRAPHS)
    assert run_cli("build-issue", "2026-12", root=newsletter_root).exit_code == 0
    out = newsletter_root / "build" / "2026-12"
    raw = (out / "email.html").stat().st_size
    # The top-level headers, then the text/html part from its Content-Type to the closing
    # boundary: quoted-printable, as `send` writes it.
    eml = (out / "email.eml").read_bytes()
    head = eml.index(b"\r\n\r\n") + 4
    part = eml[eml.index(b"Content-Type: text/html") : eml.rindex(b"\r\n--")]
    sent = head + len(part)
    assert b"=3D" in part and b"=C3=A9" in part
    assert raw < sent
    assert GMAIL_CLIP_WARN_BYTES < sent <= GMAIL_CLIP_ERROR_BYTES
    (warning,) = json.loads((out / "manifest.json").read_text())["warnings"]
    assert warning["message"].startswith(
        f"the HTML part is {sent / 1024:.1f} KB as sent (quoted-printable, with the headers; "
        f"email.html is {raw / 1024:.1f} KB raw; as 8bit, where the relay offers 8BITMIME, "
    )


def test_gmail_clip_error_even_when_email_html_is_under_the_limit(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    make_huge(newsletter_root)
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert result.exit_code == 1
    (line,) = finding_lines(result.stdout)
    m = re.search(r"the HTML part is ([\d.]+) KB as sent .*email\.html is ([\d.]+) KB raw", line)
    assert m, line
    sent, raw = float(m.group(1)), float(m.group(2))
    assert raw < GMAIL_CLIP_ERROR_BYTES / 1024 < sent


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
    assert finding_lines(result.stdout) == []


def test_ordinary_images_are_not_tracking_pixels(newsletter_root: Path, run_cli: RunCli) -> None:
    in_template(
        newsletter_root,
        # "open" inside a word of the URL; a 600×1 rule (premailer makes its height "auto").
        '<img src="https://coeursurparis.example/img/opening-hours.jpg" width="64" alt="Horaires">'
        '<img src="https://coeursurparis.example/img/rule.gif" width="600" height="1" alt="—">',
    )
    result = run_cli("build-issue", "2026-11", "--strict", root=newsletter_root)
    assert result.exit_code == 0, result.stdout
    assert finding_lines(result.stdout) == []


def test_no_postal_address_is_a_warning_naming_the_setting(
    newsletter_root: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_POSTAL_ADDRESS")
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert finding_lines(result.stdout) == [
        "warning [no-postal-address] newsletter.toml: no postal address: set postal_address "
        "(or NEWSLETTER_POSTAL_ADDRESS; the law wants it in every email; `newsletter send` "
        "refuses to send without it)"
    ]
    strict = run_cli("build-issue", "2026-11", "--strict", root=newsletter_root)
    assert strict.exit_code == 1
    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", POSTAL_ADDRESS)
    assert run_cli("build-issue", "2026-11", "--strict", root=newsletter_root).exit_code == 0
    out = newsletter_root / "build" / "2026-11"
    for name in ("email.html", "email.txt"):
        assert POSTAL_ADDRESS in (out / name).read_text(encoding="utf-8")


def test_every_finding_is_listed_and_counted(newsletter_root: Path, run_cli: RunCli) -> None:
    set_issue_line(newsletter_root, "2026-11", "preheader", '""')
    no_unsubscribe_in_text(newsletter_root)
    image_without_alt(newsletter_root)
    expected = ["error [missing-alt", "warning [empty-preheader", "error [no-unsubscribe"]

    loose = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert loose.exit_code == 1
    assert loose.stderr == (
        "error: 2 check(s) failed; build/ was not changed (fix the errors above)\n"
    )
    assert "  checks: 2 error(s), 1 warning(s)\n" in loose.stdout
    assert [line.split("]")[0] for line in finding_lines(loose.stdout)] == expected

    strict = run_cli("build-issue", "2026-11", "--strict", root=newsletter_root)
    assert strict.exit_code == 1
    assert strict.stderr.startswith("error: 3 check(s) failed with --strict")
    assert [line.split("]")[0] for line in finding_lines(strict.stdout)] == expected
    assert not (newsletter_root / "build").exists()
