"""The documentation is part of the contract: every setting, command and option is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from pydantic import SecretStr

from newsletter.cli import app
from newsletter.settings import Settings, env_name

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")
COMMANDS_MD = (DOCS / "commands.md").read_text(encoding="utf-8")
SETTINGS_MD = (DOCS / "settings.md").read_text(encoding="utf-8")
#: The section of commands.md that documents what every command (or the group) takes.
COMMON_SECTION = "Options of every command"


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_env_example_with_a_comment(field: str) -> None:
    name = env_name(field)
    lines = ENV_EXAMPLE.splitlines()
    (i,) = [n for n, line in enumerate(lines) if line.startswith(f"{name}=")]
    assert lines[i - 1].startswith("#"), f"{name} has no comment above it in .env.example"


def _settings_row(name: str) -> str:
    rows = [line for line in SETTINGS_MD.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name}: expected one row in docs/settings.md, found {len(rows)}"
    return rows[0]


def _shown(value: object) -> str:
    """A default as the docs write it: 30.0 -> 30."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_docs_settings_with_its_default(field: str) -> None:
    row = _settings_row(env_name(field))
    default_cell = row.split(" | ")[1]
    default = Settings.model_fields[field].default
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default == "":
        assert default_cell.startswith("empty"), row
    else:
        assert default_cell.startswith(f"`{_shown(default)}`"), row


def test_docs_settings_names_only_real_settings() -> None:
    known = {env_name(f) for f in Settings.model_fields}
    named = set(re.findall(r"^\| `(NEWSLETTER_[A-Z_]+)` \|", SETTINGS_MD, re.M))
    assert named == known


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


# -- commands --------------------------------------------------------------------------------


def _sections(markdown: str) -> dict[str, str]:
    """`## heading` -> the text under it, up to the next `## `."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


SECTIONS = _sections(COMMANDS_MD)


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under `group`, nested groups included, with its path of names."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _spellings(param: click.Parameter) -> list[str]:
    """How a user types the parameter: every flag of an option, the metavar of an argument."""
    if isinstance(param, click.Option):
        return [*param.opts, *param.secondary_opts]
    return [param.human_readable_name]


COMMANDS = list(_commands(app))
COMMAND_IDS = [" ".join(path) for path, _ in COMMANDS]


def test_the_walk_sees_every_command_and_the_options_of_every_command() -> None:
    assert {"build-issue", "send", "preview", "report", "unsubscribe", "open", "archive",
            "bounces", "doctor"} <= set(COMMAND_IDS)
    # --root/--debug may sit on each command or on the group: either way the walk sees them.
    seen = {s for p in app.params for s in _spellings(p)}
    for _, command in COMMANDS:
        seen |= {s for p in command.params for s in _spellings(p)}
    assert {"--root", "--debug", "--strict", "--dry-run", "--test-to", "--csv"} <= seen


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_and_option_is_documented_in_docs_commands(
    path: tuple[str, ...], command: click.Command
) -> None:
    title = "newsletter " + " ".join(path)
    assert title in SECTIONS, f"docs/commands.md has no `## {title}` section"
    section, common = SECTIONS[title], SECTIONS[COMMON_SECTION]
    usage = re.search(r"```\n(.*?)\n```", section, re.S)
    assert usage is not None and title in usage.group(1), f"{title}: no usage block"
    for param in command.params:
        if isinstance(param, click.Argument):
            name = param.human_readable_name
            assert re.search(rf"\b{re.escape(name)}\b", usage.group(1)), f"{title}: {name}"
            continue
        for spelling in _spellings(param):
            # Options every command shares may be documented once, in the common section.
            assert f"`{spelling}" in section or f"`{spelling}" in common, (
                f"{title}: {spelling} is not documented in docs/commands.md"
            )


def test_the_options_of_the_group_are_documented_in_docs_commands() -> None:
    common = SECTIONS[COMMON_SECTION]
    for param in app.params:
        for spelling in _spellings(param):
            assert f"`{spelling}" in common, f"{spelling} is not in docs/commands.md"
    for spelling in ("--root", "--debug", "--help"):
        assert f"`{spelling}" in common


def test_docs_commands_documents_no_command_that_does_not_exist() -> None:
    documented = {t.removeprefix("newsletter ") for t in SECTIONS if t.startswith("newsletter ")}
    assert documented == set(COMMAND_IDS)


def test_every_command_is_in_the_readme_tour() -> None:
    for name in COMMAND_IDS:
        assert f"`newsletter {name}" in README, name


# -- the pages and their links -----------------------------------------------------------------


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", markdown)


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_every_relative_link_resolves(page: str) -> None:
    path = REPO / page if page == "README.md" else DOCS / page
    for target in _links(path.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{page}: broken link {target}"


def test_readme_links_every_docs_page() -> None:
    linked = {t for t in _links(README) if t.startswith("docs/")}
    assert linked == {f"docs/{p.name}" for p in DOCS.glob("*.md")}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert "pip install" in install and "build-issue 2026-11" in install
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == tests


def test_bench_readme_lists_every_script_with_the_venv_python() -> None:
    bench = REPO / "bench"
    text = (bench / "README.md").read_text(encoding="utf-8")
    for script in sorted(p.name for p in bench.glob("*.py")):
        assert f"| `{script}` |" in text, f"bench/README.md does not list {script}"
        assert f".venv/bin/python bench/{script}" in text, script
    assert "/work/" not in text
