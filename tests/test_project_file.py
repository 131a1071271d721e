"""newsletter.toml (issue 11): its precedence under .env and the environment, its errors, and the
root found from any subfolder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, RunCli

from newsletter.cli import ExitCode
from newsletter.errors import ConfigError
from newsletter.layout import Layout
from newsletter.settings import Settings, load_settings, toml_key

NOT_A_FOLDER = (
    "error: not in a newsletter folder (no newsletter.toml here or above): "
    "run `newsletter init`\n"
)


def folder(tmp_path: Path, toml: str, env: str | None = None) -> Layout:
    (tmp_path / "newsletter.toml").write_text(toml, encoding="utf-8")
    if env is not None:
        (tmp_path / ".env").write_text(env, encoding="utf-8")
    return Layout.at(tmp_path)


def test_precedence_environment_then_env_file_then_toml_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = folder(
        tmp_path,
        'smtp_host = "toml.example"\nsmtp_port = 2525\nsmtp_timeout = 7\nlanguage = "en"\n',
        env="NEWSLETTER_SMTP_HOST=dotenv.example\nNEWSLETTER_SMTP_PORT=2526\n",
    )
    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", "environ.example")
    s = load_settings(layout)
    assert s.smtp_host == "environ.example"  # environment > .env > toml
    assert s.smtp_port == 2526  # .env > toml
    assert s.smtp_timeout == 7.0 and s.language == "en"  # toml > default
    assert s.max_attempts == Settings.model_fields["max_attempts"].default  # the default


def test_from_in_toml_is_the_sender_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = folder(tmp_path, 'from = "Ma Lettre <lettre@ma-lettre.fr>"\n')
    assert load_settings(layout).sender == "Ma Lettre <lettre@ma-lettre.fr>"
    monkeypatch.setenv("NEWSLETTER_FROM", "Autre <autre@ma-lettre.fr>")
    assert load_settings(layout).sender == "Autre <autre@ma-lettre.fr>"


def test_every_setting_has_a_toml_name_without_the_prefix() -> None:
    assert toml_key("sender") == "from"
    assert toml_key("smtp_port") == "smtp_port"
    names = [toml_key(f) for f in Settings.model_fields]
    assert len(set(names)) == len(names)


def test_an_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    layout = folder(tmp_path, '# comment\nlanguage = "fr"\n\n  smtp_hots = "relay"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(layout)
    assert str(exc.value) == (
        "newsletter.toml:4: smtp_hots: unknown setting "
        "(docs/settings.md lists the names (those of .env without NEWSLETTER_))"
    )


def test_an_unknown_table_is_an_error_with_its_line(tmp_path: Path) -> None:
    layout = folder(tmp_path, 'language = "fr"\n[smtp]\nhost = "x"\n')
    with pytest.raises(ConfigError, match=r"^newsletter\.toml:2: smtp: unknown setting"):
        load_settings(layout)


@pytest.mark.parametrize(
    ("key", "variable"),
    [("smtp_password", "NEWSLETTER_SMTP_PASSWORD"), ("secret_key", "NEWSLETTER_SECRET_KEY")],
)
def test_a_secret_in_the_toml_is_refused_and_never_shown(
    tmp_path: Path, key: str, variable: str
) -> None:
    layout = folder(tmp_path, f'language = "fr"\n{key} = "hunter2-secret"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(layout)
    assert str(exc.value) == (
        f"newsletter.toml:2: {key}: a secret does not belong in newsletter.toml "
        f"(put it in .env as {variable}=… (never committed))"
    )
    assert "hunter2" not in str(exc.value)


def test_a_windows_1252_file_is_one_line_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_bytes(
        b'language = "fr"\nfrom = "C\x9cur <lettre@ma-lettre.fr>"\n'  # "Cœur" in cp1252
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(Layout.at(tmp_path))
    assert str(exc.value) == (
        "newsletter.toml:2: not UTF-8 text (byte 0x9c) (save the file as UTF-8)"
    )


def test_malformed_toml_names_its_line(tmp_path: Path) -> None:
    layout = folder(tmp_path, 'language = "fr"\nfrom = \n')
    with pytest.raises(ConfigError, match=r"^newsletter\.toml:2: malformed TOML: "):
        load_settings(layout)


def test_a_bad_value_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = folder(tmp_path, 'language = "fr"\nsmtp_port = 70000\n')
    with pytest.raises(ConfigError, match=r"^newsletter\.toml:2: smtp_port: Input should be"):
        load_settings(layout)
    (tmp_path / ".env").write_text("NEWSLETTER_SMTP_PORT=80000\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^\.env: NEWSLETTER_SMTP_PORT: Input should be"):
        load_settings(layout)
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", "90000")
    with pytest.raises(ConfigError, match=r"^environment: NEWSLETTER_SMTP_PORT: Input should"):
        load_settings(layout)


def test_a_bad_from_in_the_toml_is_named_by_its_toml_name(tmp_path: Path) -> None:
    layout = folder(tmp_path, 'from = "Ma Lettre"\n')
    with pytest.raises(ConfigError, match=r"^newsletter\.toml:1: from: must be an"):
        load_settings(layout)


def test_the_sample_identity_lives_in_the_sample_toml_not_in_the_code(tmp_path: Path) -> None:
    assert Settings.model_fields["sender"].default == ""
    assert load_settings(Layout.at(REPO)).sender == "Coeur sur Paris <lettre@coeursurparis.example>"
    for path in (REPO / "newsletter").rglob("*"):
        if path.is_file() and path.suffix != ".pyc":
            text = path.read_text(encoding="utf-8").lower()
            assert not re.search(r"coeur ?sur ?paris|cœur sur paris", text), path


# -- root discovery (through the CLI) ------------------------------------------------------------


def test_a_command_finds_the_root_from_a_subfolder(
    newsletter_root: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(newsletter_root / "content" / "articles")
    result = run_cli("build-issue", "2026-11")
    assert result.exit_code == 0, result.stderr
    assert (newsletter_root / "build" / "2026-11" / "email.html").is_file()
    assert not (newsletter_root / "content" / "articles" / "build").exists()


def test_outside_a_newsletter_folder_one_line_and_exit_1(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "content").mkdir()
    monkeypatch.chdir(tmp_path / "content")
    result = run_cli("build-issue", "2026-11")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", NOT_A_FOLDER)


def test_root_without_newsletter_toml_is_an_error_too(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("report", "2026-11", root=tmp_path)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == (
        f"error: {tmp_path}: not a newsletter folder (no newsletter.toml) "
        f"(run `newsletter init {tmp_path}`, or pass the folder that has one)\n"
    )


def test_without_a_from_build_and_send_say_where_to_set_it(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    toml = newsletter_root / "newsletter.toml"
    toml.write_text('language = "fr"\n', encoding="utf-8")
    expected = (
        "error: newsletter.toml: from: no sender configured "
        '(add from = "Your Newsletter <letter@your-domain>" (or NEWSLETTER_FROM))\n'
    )
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert (result.exit_code, result.stderr) == (1, expected)
    assert not (newsletter_root / "build" / "2026-11").exists()
    # A build made with a From, then the From removed: --test-to refuses as well.
    toml.write_text('from = "Ma Lettre <lettre@ma-lettre.fr>"\n', encoding="utf-8")
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    toml.write_text('language = "fr"\n', encoding="utf-8")
    result = run_cli("send", "2026-11", "--test-to", "moi@ma-lettre.fr", root=newsletter_root)
    assert (result.exit_code, result.stderr) == (1, expected)
