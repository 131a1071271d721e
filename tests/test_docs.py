"""The documentation is part of the contract: every setting and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.cli import app
from newsletter.settings import Settings, env_name

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_env_example_with_a_comment_and_in_readme(field: str) -> None:
    name = env_name(field)
    lines = ENV_EXAMPLE.splitlines()
    (i,) = [n for n, line in enumerate(lines) if line.startswith(f"{name}=")]
    assert lines[i - 1].startswith("#"), f"{name} has no comment above it in .env.example"
    assert f"`{name}`" in README


def test_env_example_names_only_real_settings() -> None:
    known = {env_name(f) for f in Settings.model_fields}
    named = set(re.findall(r"^(NEWSLETTER_[A-Z_]+)=", ENV_EXAMPLE, re.M))
    assert named == known


def test_env_example_values_are_valid_settings(tmp_path: Path) -> None:
    from newsletter.layout import Layout
    from newsletter.settings import load_settings

    (tmp_path / ".env").write_text(ENV_EXAMPLE, encoding="utf-8")
    settings = load_settings(Layout.at(tmp_path))
    assert settings.smtp_password.get_secret_value() == ""
    assert settings.language == "fr"


def test_every_command_is_documented_in_readme() -> None:
    commands = sorted(app.commands)
    assert {"build-issue", "send", "preview", "report", "unsubscribe", "open"} <= set(commands)
    for name in commands:
        assert f"`newsletter {name}" in README, name


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert "pip install" in install and "build-issue 2026-11" in install
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == tests
