"""`newsletter build-issue` as a user runs it: the summary, one line per problem, build/ intact."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RunCli, own_template, snapshot
from test_issue import articles_meta, expected_selection

ARTICLE = "content/articles/seo-local-commerces-parisiens.md"


def edit(root: Path, rel: str, pattern: str, replacement: str) -> None:
    if rel.startswith("templates/"):
        own_template(root, rel.removeprefix("templates/"))
    path = root / rel
    text, n = re.subn(pattern, replacement, path.read_text(encoding="utf-8"), count=1, flags=re.M)
    assert n == 1, (rel, pattern)
    path.write_text(text, encoding="utf-8")


def line_number(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if needle in line)


def test_build_prints_what_it_built(newsletter_root: Path, run_cli: RunCli) -> None:
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert result.exit_code == 0
    assert result.stderr == ""
    meta = articles_meta(newsletter_root)
    authors = tomllib.loads((newsletter_root / AUTHORS).read_text(encoding="utf-8"))
    subject = tomllib.loads((newsletter_root / "issues/2026-12.toml").read_text("utf-8"))["subject"]
    lines = result.stdout.splitlines()
    assert lines[0] == f"Built build/2026-12/ — {subject}"
    listed = [line for line in lines if re.match(r"  \d+\. ", line)]
    assert listed == [
        f"  {n}. {meta[s]['title']} ({meta[s]['category']}, {authors[meta[s]['author']]['name']})"
        for n, s in enumerate(expected_selection(newsletter_root, "2026-12"), start=1)
    ]
    assert lines[-1] == "  checks: all passed"


@pytest.mark.parametrize("arg", ["2026-11", "issues/2026-11.toml", "2026-11.toml"])
def test_issue_is_an_id_or_its_file(newsletter_root: Path, run_cli: RunCli, arg: str) -> None:
    result = run_cli("build-issue", arg, root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in (newsletter_root / "build").iterdir()] == ["2026-11"]


# --- bad inputs: exit 1, one line naming the file and line or field with a hint, build/ intact --


@dataclass
class Bad:
    change: Callable[[Path], None]
    expected: Callable[[Path], str]  # the stderr line, computed from the broken folder
    issue: str = "2026-11"


def without(field: str) -> Bad:
    return Bad(
        lambda root: edit(root, ARTICLE, rf"^{field}: .*\n", ""),
        lambda root: f"error: {ARTICLE}:1: front matter has no '{field}' (",
    )


ISSUE = "issues/2026-11.toml"
AUTHORS = "content/authors.toml"
MJML = "templates/email.mjml.j2"
TEXT = "templates/email.txt.j2"


def at(root: Path, rel: str, needle: str) -> str:
    """`rel:line`, the line of `rel` that holds `needle`."""
    return f"{rel}:{line_number(root, rel, needle)}"


def known_slugs(root: Path) -> str:
    return ", ".join(sorted(articles_meta(root)))


BAD = {
    "no-front-matter": Bad(
        lambda root: (root / "content/articles/brouillon.md").write_text("# Brouillon\n\nTexte.\n"),
        lambda root: "error: content/articles/brouillon.md:1: no front matter (start the file "
        "with a '---' line, title/category/author/date, then '---')",
    ),
    "no-title": without("title"),
    "no-category": without("category"),
    "no-author": without("author"),
    "no-date": without("date"),
    "unknown-author": Bad(
        lambda root: edit(root, ARTICLE, r"^author: claire$", "author: clara"),
        lambda root: f"error: {at(root, ARTICLE, 'author:')}: author: unknown author 'clara' "
        "(use a key of content/authors.toml (known: claire, erwan))",
    ),
    "unknown-slug": Bad(
        lambda root: edit(root, ISSUE, '"calendrier-editorial-instagram"', '"cal"'),
        lambda root: f"error: {at(root, ISSUE, chr(34) + 'cal' + chr(34))}: articles: unknown "
        f"article 'cal' (known: {known_slugs(root)})",
    ),
    "malformed-issue-toml": Bad(
        lambda root: edit(root, ISSUE, r'^mode = "excerpt"$', 'mode = "excerpt'),
        lambda root: f"error: {at(root, ISSUE, 'mode =')}: malformed TOML: ",
    ),
    "malformed-authors-toml": Bad(
        lambda root: edit(root, AUTHORS, r"^\[claire\]$", "[claire"),
        lambda root: f"error: {at(root, AUTHORS, '[claire')}: malformed TOML: ",
    ),
    "malformed-yaml": Bad(
        lambda root: edit(root, ARTICLE, r'^title: "SEO local', 'title: SEO: "local'),
        lambda root: f"error: {at(root, ARTICLE, 'title:')}: front matter is not valid YAML: ",
    ),
    "date-not-a-date": Bad(
        lambda root: edit(root, ARTICLE, r"^date: .*$", "date: 2026-13-45"),
        lambda root: f"error: {at(root, ARTICLE, 'date:')}: date: ",
    ),
    "misspelt-variable": Bad(
        lambda root: edit(root, MJML, r"\{\{ article\.category \}\}", "{{ article.categroy }}"),
        lambda root: f"error: {at(root, MJML, 'categroy')}: undefined variable: ",
    ),
    "misspelt-variable-in-text": Bad(
        lambda root: edit(root, TEXT, r"\{\{ issue\.date", "{{ isue.date"),
        lambda root: f"error: {at(root, TEXT, 'isue')}: undefined variable: 'isue' is undefined (",
    ),
    "jinja-syntax": Bad(
        lambda root: edit(root, MJML, r"\{% endfor %\}", "{% endfro %}"),
        lambda root: f"error: {at(root, MJML, 'endfro')}: template syntax: ",
    ),
    "unknown-issue": Bad(
        lambda root: None,
        lambda root: "error: issues/2026-13.toml: issue file not found "
        "(known issues: 2026-11, 2026-12)",
        issue="2026-13",
    ),
}


@pytest.mark.parametrize("previous_build", [False, True], ids=["no-build", "previous-build"])
@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_exit_1_and_build_unchanged(
    newsletter_root: Path, run_cli: RunCli, case: Bad, previous_build: bool
) -> None:
    root = newsletter_root
    if previous_build:
        assert run_cli("build-issue", "2026-11", root=root).exit_code == 0
    before = snapshot(root / "build")
    assert bool(before) == previous_build
    case.change(root)

    result = run_cli("build-issue", case.issue, root=root)

    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(case.expected(root))
    assert re.search(r" \(.+\)$", line), "the line ends with a hint in parentheses"
    assert "Traceback" not in result.stderr
    assert snapshot(root / "build") == before
    if previous_build:
        assert [p.name for p in (root / "build").iterdir()] == ["2026-11"]


def test_every_bad_article_is_reported_in_one_run(newsletter_root: Path, run_cli: RunCli) -> None:
    second = "content/articles/audit-digital-petite-entreprise.md"
    edit(newsletter_root, ARTICLE, r"^author: claire$", "author: clara")
    edit(newsletter_root, second, r"^title: .*\n", "")
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {second}:1: front matter has no 'title' (")
    assert lines[1].startswith(f"error: {ARTICLE}:")
    assert "unknown author 'clara'" in lines[1]
    assert not (newsletter_root / "build").exists()


def test_debug_shows_the_traceback_then_the_line(newsletter_root: Path, run_cli: RunCli) -> None:
    edit(newsletter_root, ARTICLE, r"^author: claire$", "author: clara")
    quiet = run_cli("build-issue", "2026-11", root=newsletter_root)
    loud = run_cli("build-issue", "2026-11", "--debug", root=newsletter_root)
    assert loud.exit_code == quiet.exit_code == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.endswith(quiet.stderr)


def test_missing_root_folder(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("build-issue", "2026-11", root=tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path / 'nowhere'}: no such folder (pass --root DIR, a newsletter folder)\n"
    )


# --- help without the rendering stack --------------------------------------------------------

HEAVY = ("mjml", "premailer", "jinja2", "markdown_it")
PROBE = """
import sys
from newsletter.cli import main
sys.argv = ["newsletter", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED", sorted(m for m in {heavy!r} if m in sys.modules), code, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["build-issue", "--help"]])
def test_help_lists_the_commands_without_importing_the_rendering_stack(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stderr.strip().splitlines()[-1] == "LOADED [] 0"
    if args == ["--help"]:
        for command in ("build-issue", "preview", "send"):
            assert re.search(rf"^\s+{command}\s+\S", proc.stdout, re.M), command
    else:
        assert "--strict" in proc.stdout and "--root" in proc.stdout


def test_the_probe_would_see_the_rendering_stack_after_a_build(newsletter_root: Path) -> None:
    # The help test above is only meaningful if the probe does see these modules when loaded.
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "build-issue", "2026-11", "--root",
         str(newsletter_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stderr.strip().splitlines()[-1] == f"LOADED {sorted(HEAVY)} 0"


# --- settings ---------------------------------------------------------------------------------


def test_unknown_setting_in_env_file_is_a_warning(newsletter_root: Path, run_cli: RunCli) -> None:
    (newsletter_root / ".env").write_text("NEWSLETTER_LANGAGE=en\n", encoding="utf-8")
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: unknown setting NEWSLETTER_LANGAGE (ignored; did you mean NEWSLETTER_LANGUAGE?)\n"
    )
    html = (newsletter_root / "build" / "2026-11" / "email.html").read_text(encoding="utf-8")
    assert '<html lang="fr"' in html


def test_bad_setting_value_is_one_error_naming_it(built: Path, run_cli: RunCli) -> None:
    before = snapshot(built / "build")
    (built / ".env").write_text("NEWSLETTER_LANGUAGE=de\n", encoding="utf-8")
    result = run_cli("build-issue", "2026-11", root=built)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: .env: NEWSLETTER_LANGUAGE: ")
    assert "'fr' or 'en'" in line and line.endswith(")")
    assert snapshot(built / "build") == before


@pytest.mark.parametrize("where", ["env-file", "environment"])
def test_language_setting_applies_to_issues_without_one(
    newsletter_root: Path, run_cli: RunCli, where: str
) -> None:
    env = None
    if where == "env-file":
        (newsletter_root / ".env").write_text("NEWSLETTER_LANGUAGE=en\n", encoding="utf-8")
    else:
        env = {"NEWSLETTER_LANGUAGE": "en"}
    result = run_cli("build-issue", "2026-11", root=newsletter_root, env=env)
    assert result.exit_code == 0, result.stderr
    html = (newsletter_root / "build" / "2026-11" / "email.html").read_text(encoding="utf-8")
    assert '<html lang="en"' in html and "Written by" in html and "Rédigé par" not in html


def test_a_dry_run_send_never_imports_the_rendering_stack(newsletter_root: Path) -> None:
    """The send wing mails what the build wrote: jinja2, mjml, premailer, markdown-it stay out."""
    build = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "build-issue", "2026-11", "--root",
         str(newsletter_root)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert build.stderr.strip().splitlines()[-1].endswith(" 0")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "send", "2026-11", "--dry-run",
         "--root", str(newsletter_root)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert "dry run" in proc.stdout.lower()
    assert proc.stderr.strip().splitlines()[-1] == "LOADED [] 0"
