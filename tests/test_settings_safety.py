"""Settings that would reach a header raw or make a send endless are refused, and each error
says where the value came from (issue 13, defect 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSLETTER_LIST_ID", "lettre.example\r\nBcc: everyone@example.org"),
        ("NEWSLETTER_LIST_ID", "lettre.example\nX: y"),
        ("NEWSLETTER_UNSUBSCRIBE_MAILTO", "stop@example.fr\r\nBcc: x@example.org"),
        ("NEWSLETTER_REPLY_TO", "a@example.fr\nBcc: x@example.org"),
    ],
)
def test_a_line_break_in_a_header_setting_is_refused(
    built: Path, run_cli: RunCli, name: str, value: str
) -> None:
    result = run_cli("send", "2026-11", "--dry-run", root=built, env={name: value})
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: environment: {name}: ")
    assert "line break" in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSLETTER_RETRY_DELAY", "inf"),
        ("NEWSLETTER_RETRY_DELAY", "nan"),
        ("NEWSLETTER_RETRY_DELAY", "1e9"),
        ("NEWSLETTER_SMTP_TIMEOUT", "inf"),
        ("NEWSLETTER_SMTP_TIMEOUT", "Infinity"),
        ("NEWSLETTER_SMTP_TIMEOUT", "86400"),
        ("NEWSLETTER_RATE_PER_SECOND", "inf"),
    ],
)
def test_an_endless_delay_or_timeout_is_refused(
    built: Path, run_cli: RunCli, name: str, value: str
) -> None:
    result = run_cli("send", "2026-11", "--dry-run", root=built, env={name: value})
    assert result.exit_code == 1, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: environment: {name}: ")


def test_an_error_in_env_file_names_env_file_and_one_from_the_environment_names_it(
    built: Path, run_cli: RunCli
) -> None:
    (built / ".env").write_text("NEWSLETTER_SMTP_TIMEOUT=abc\n", encoding="utf-8")
    from_file = run_cli("send", "2026-11", "--dry-run", root=built)
    assert from_file.stderr.startswith("error: .env: NEWSLETTER_SMTP_TIMEOUT: ")
    (built / ".env").write_text("NEWSLETTER_SMTP_PORT=25\n", encoding="utf-8")
    from_env = run_cli(
        "send", "2026-11", "--dry-run", root=built, env={"NEWSLETTER_SMTP_TIMEOUT": "abc"}
    )
    assert from_env.stderr.startswith("error: environment: NEWSLETTER_SMTP_TIMEOUT: ")


def test_a_windows_1252_env_file_is_one_error_naming_it(built: Path, run_cli: RunCli) -> None:
    (built / ".env").write_bytes("NEWSLETTER_POSTAL_ADDRESS=Café, Paris\n".encode("cp1252"))
    result = run_cli("send", "2026-11", "--dry-run", root=built)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: .env:1: not UTF-8")
    assert "save the file as UTF-8" in line


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("NEWSLETTER_SMTP_HOST=relay.example\nthis line is the password hunter2\n",
         "error: .env:2: not a NAME=value line"),
        ('# the relay\nexport NEWSLETTER_SMTP_PASSWORD="hunter2 no closing quote\n',
         "error: .env:2: NEWSLETTER_SMTP_PASSWORD: its value cannot be read (an unclosed "
         "quote?)"),
    ],
    ids=["bare-line", "unclosed-quote"],
)
def test_an_env_line_that_cannot_be_read_is_one_error_that_never_shows_it(
    built: Path, run_cli: RunCli, text: str, error: str
) -> None:
    """python-dotenv skipped such a line with a warning printed three times, unsetting the
    setting silently, and the command went on (exit 0)."""
    (built / ".env").write_text(text, encoding="utf-8")
    result = run_cli("send", "2026-11", "--dry-run", root=built)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{error} (write NAME=value, quoting a value that has spaces or #; start a comment "
        "with #)"
    ]
    assert "hunter2" not in result.stdout + result.stderr
    assert not (built / "state").exists()  # nothing was started
