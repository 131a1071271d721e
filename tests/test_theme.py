"""The packaged email theme: used when templates/ has no file, overridden file by file, extended
by blocks, and errors in an override named by its own file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import RunCli

ISSUE = "2026-11"


def built(root: Path, name: str) -> str:
    return (root / "build" / ISSUE / name).read_text("utf-8")


def test_a_folder_without_templates_builds_with_the_packaged_theme(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    shutil.rmtree(newsletter_root / "templates")
    result = run_cli("build-issue", ISSUE, root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    html, text = built(newsletter_root, "email.html"), built(newsletter_root, "email.txt")
    assert "{{ unsubscribe_url }}" in html and "{{ unsubscribe_url }}" in text
    assert "Répondez simplement" not in html + text  # the sample's override is gone


def test_the_sample_override_extends_the_theme_block_by_block(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    assert run_cli("build-issue", ISSUE, root=newsletter_root).exit_code == 0
    html, text = built(newsletter_root, "email.html"), built(newsletter_root, "email.txt")
    for part in (html, text):
        # The override's line comes before the theme's footer, which is still there.
        assert part.index("Répondez simplement") < part.index("{{ unsubscribe_url }}")


def test_one_file_overrides_and_the_other_still_comes_from_the_theme(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    (newsletter_root / "templates" / "email.txt.j2").unlink()
    (newsletter_root / "templates" / "email.mjml.j2").write_text(
        '{% extends "theme/email.mjml.j2" %}\n'
        "{% block masthead %}<mj-section><mj-column><mj-text>MASTHEAD À MOI</mj-text>"
        "</mj-column></mj-section>{% endblock %}\n",
        "utf-8",
    )
    assert run_cli("build-issue", ISSUE, root=newsletter_root).exit_code == 0
    html, text = built(newsletter_root, "email.html"), built(newsletter_root, "email.txt")
    assert "MASTHEAD À MOI" in html and "MASTHEAD À MOI" not in text
    assert "Répondez simplement" not in text and "COEUR SUR PARIS" in text


def test_an_error_in_an_override_block_names_the_override_and_its_line(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    (newsletter_root / "templates" / "email.txt.j2").write_text(
        '{% extends "theme/email.txt.j2" %}\n\n{% block footer %}\n{{ nope.x }}\n{% endblock %}\n',
        "utf-8",
    )
    result = run_cli("build-issue", ISSUE, root=newsletter_root)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: templates/email.txt.j2:4: undefined variable: 'nope' is undefined"
    ), result.stderr


def test_an_error_met_in_the_theme_names_the_theme_file(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    # The user's block is fine, but an include of a missing theme file is the theme's name.
    (newsletter_root / "templates" / "email.txt.j2").write_text(
        '{% extends "theme/email.txt.j2" %}\n{% block footer %}{% include "theme/nope.j2" %}'
        "{% endblock %}\n",
        "utf-8",
    )
    result = run_cli("build-issue", ISSUE, root=newsletter_root)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: template 'theme/nope.j2' not found (the packaged theme has theme/ + one of: "
        "email.mjml.j2, email.txt.j2)\n"
    )


def test_an_undefined_variable_in_the_theme_names_the_theme_file_and_line(
    newsletter_root: Path,
) -> None:
    from newsletter.compose.render import EMAIL_THEME_DIR, _render_template, make_env
    from newsletter.errors import TemplateError
    from newsletter.layout import Layout

    layout = Layout.at(newsletter_root)
    with pytest.raises(TemplateError) as caught:
        _render_template(make_env(layout.templates_dir), "theme/email.txt.j2", {}, layout)
    theme = (EMAIL_THEME_DIR / "email.txt.j2").read_text("utf-8").splitlines()
    first_use = next(n for n, line in enumerate(theme, 1) if "archive_url" in line)
    assert caught.value.path == str(EMAIL_THEME_DIR / "email.txt.j2")
    assert caught.value.line == first_use
