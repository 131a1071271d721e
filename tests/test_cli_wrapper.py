"""The CLI wrapper every command shares: --root/--debug, one-line errors, exit codes, pipes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RunCli, readers
from smtpserver import Faults, TestServer, send_command

from newsletter.cli import ExitCode as CliExitCode
from newsletter.errors import ExitCode
from newsletter.layout import Layout
from newsletter.send.journal import Journal, Status, Write
from newsletter.send.report import read_report

#: `newsletter X --help` before the wrapper (captured from the nine hand-written commands):
#: usage line, then each option with its metavar. They are a contract: scripts call them.
HELP = {
    "": ("[OPTIONS] COMMAND [ARGS]...", ["--version", "-h, --help"]),
    "build-issue": ("[OPTIONS] ISSUE", ["--strict", "--root DIRECTORY", "--debug", "-h, --help"]),
    "preview": (
        "[OPTIONS] [ISSUE]",
        [
            "--port INTEGER",
            "--no-open",
            "--as TEXT",
            "--subscribers PATH",
            "--list",
            "--root DIRECTORY",
            "--debug",
            "-h, --help",
        ],
    ),
    "open": ("[OPTIONS] ISSUE", ["--root DIRECTORY", "--debug", "-h, --help"]),
    "archive": ("[OPTIONS]", ["--all", "--root DIRECTORY", "--debug", "-h, --help"]),
    "send": (
        "[OPTIONS] ISSUE",
        [
            "--subscribers PATH",
            "--dry-run",
            "--test-to ADDRESS",
            "--limit INTEGER RANGE",
            "--skip-invalid",
            "--allow-rebuilt",
            "--retry-failed",
            "--resend",
            "--root DIRECTORY",
            "--debug",
            "-h, --help",
        ],
    ),
    "report": (
        "[OPTIONS] ISSUE",
        ["--csv PATH", "--subscribers PATH", "--root DIRECTORY", "--debug", "-h, --help"],
    ),
    "unsubscribe": (
        "[OPTIONS] EMAIL_OR_TOKEN",
        ["--subscribers PATH", "--root DIRECTORY", "--debug", "-h, --help"],
    ),
    "bounces": ("[OPTIONS] FILE", ["--root DIRECTORY", "--debug", "-h, --help"]),
    "doctor": ("[OPTIONS]", ["--root DIRECTORY", "--debug", "-h, --help"]),
}
OPTION_RE = re.compile(r"^  ((?:-\w, )?--[\w-]+(?: [A-Z_]+(?: [A-Z]+)?)?)(?:  |$)", re.M)


def newsletter(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a child process (main(), not only the click group)."""
    code = "from newsletter.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, **kwargs
    )  # type: ignore[call-overload]


@pytest.mark.parametrize("command", HELP)
def test_every_command_keeps_its_arguments_and_options(command: str) -> None:
    result = newsletter(*([command] if command else []), "--help")
    usage, options = HELP[command]
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: newsletter {command} {usage}\n".replace("  ", " "))
    assert OPTION_RE.findall(result.stdout.split("\nCommands:")[0]) == options


def test_an_error_is_one_line_on_stderr_and_exit_1(newsletter_root: Path, run_cli: RunCli) -> None:
    result = run_cli("build-issue", "2026-13", root=newsletter_root)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stdout == ""
    assert result.stderr == (
        "error: issues/2026-13.toml: issue file not found (known issues: 2026-11, 2026-12)\n"
    )


def test_debug_adds_the_traceback_before_the_line(newsletter_root: Path, run_cli: RunCli) -> None:
    result = run_cli("build-issue", "2026-13", "--debug", root=newsletter_root)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert "newsletter.errors.IssueError: issues/2026-13.toml: issue file not found" in (
        result.stderr
    )
    assert result.stderr.endswith(
        "\nerror: issues/2026-13.toml: issue file not found (known issues: 2026-11, 2026-12)\n"
    )


def test_a_root_that_is_not_a_folder(tmp_path: Path, run_cli: RunCli) -> None:
    missing = tmp_path / "nowhere"
    result = run_cli("archive", root=missing)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == (
        f"error: {missing}: no such folder (pass --root DIR, a newsletter folder)\n"
    )


def test_an_os_error_is_one_line_too(built: Path, run_cli: RunCli) -> None:
    """Not ours (a bug, or the machine): named as unexpected, still one line and exit 1."""
    (built / "subscribers.csv").unlink()
    (built / "subscribers.csv").mkdir()  # a folder where the list file should be
    result = run_cli("unsubscribe", "alice@example.com", root=built)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_unknown_setting_names_are_warned_about_once(built: Path, run_cli: RunCli) -> None:
    (built / ".env").write_text("NEWSLETTER_SMTP_HOTS=relay\n", encoding="utf-8")
    result = run_cli("report", "2026-11", root=built)
    assert result.exit_code == ExitCode.OK
    assert result.stderr == (
        "warning: unknown setting NEWSLETTER_SMTP_HOTS (ignored; did you mean "
        "NEWSLETTER_SMTP_HOST?)\n"
    )
    assert result.stdout == "2026-11: never sent\n"


@pytest.mark.parametrize("argv", [["bulid-issue", "2026-11"], ["report", "--nope", "2026-11"]])
def test_a_usage_error_exits_2(argv: list[str], newsletter_root: Path) -> None:
    result = newsletter(*argv, "--root", str(newsletter_root))
    assert result.returncode == ExitCode.USAGE_ERROR
    assert result.stdout == ""
    assert "Error: No such" in result.stderr


def test_the_exit_codes_are_one_enum() -> None:
    assert CliExitCode is ExitCode  # `from newsletter.cli import ExitCode` still works
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130, 141]


def _journal_with_failures(root: Path, n: int) -> None:
    journal = Journal.open(Layout.at(root), "2026-11")
    try:
        journal.commit(
            Write(f"reader{i:05d}@example.fr", Status.FAILED, 1, 550, "550 5.1.1 no such user")
            for i in range(n)
        )
        journal.commit([Write("slow@example.com", Status.DEFERRED, 2, 421, "421 4.7.0 try later")])
    finally:
        journal.close()


def test_report_piped_into_head_exits_quietly(built: Path) -> None:
    """More than a pipe's buffer (64 KB) of lines, so the write after head leaves must fail."""
    _journal_with_failures(built, 3000)
    report = f"{sys.executable} -m newsletter report 2026-11 --root {built}"
    script = f"set -o pipefail; {report} | head -1"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout == "2026-11: 3001 recipient(s) — 1 deferred, 3000 failed\n"
    assert result.stderr == ""  # no "unexpected BrokenPipeError", no "Exception ignored"
    assert result.returncode == ExitCode.BROKEN_PIPE  # as `yes | head -1` under pipefail


def test_a_reader_gone_before_the_first_line(built: Path) -> None:
    """The pipe's read end closed before `newsletter` writes anything at all."""
    cmd = [sys.executable, "-m", "newsletter", "report", "2026-11", "--root", str(built)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(timeout=60) == ExitCode.BROKEN_PIPE
    assert proc.stderr.read() == b""


def test_the_report_groups_the_problems(built: Path) -> None:
    _journal_with_failures(built, 3)
    report = read_report(Layout.at(built), "2026-11")
    assert report is not None
    assert report.total == 4
    assert report.counts == {"sending": 0, "sent": 0, "deferred": 1, "failed": 3}
    assert report.by_code == [("550 5.1.1", 3), ("421 4.7.0", 1)]
    assert report.by_domain == [("example.fr", 3), ("example.com", 1)]
    first = ["reader00000@example.fr", "reader00001@example.fr"]
    assert [r.email for r in report.problems][:2] == first
    assert read_report(Layout.at(built), "2026-12") is None  # never sent


def test_a_second_ctrl_c_leaves_at_once_with_130(built: Path) -> None:
    n = 40
    readers(built, n)
    server = TestServer(Faults(delay=0.3))  # each message takes long enough to be in flight
    server.start()
    try:
        env = server.process_env(NEWSLETTER_SMTP_CONCURRENCY="2")
        cmd = send_command(built)
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        server.wait_received(1)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        server.stop()
    assert proc.returncode == ExitCode.INTERRUPTED, stdout + stderr
    assert stderr == (
        "stopping: finishing the messages in flight (Ctrl-C again to quit now)\ninterrupted\n"
    )
    assert len(server.received) < n


PLUGINS_SEEN = """
import os, sys
from newsletter.cli import main
sys.argv = ["newsletter", "--version"]
try:
    main()
finally:
    print("PYDANTIC_DISABLE_PLUGINS=" + repr(os.environ.get("PYDANTIC_DISABLE_PLUGINS")))
"""


@pytest.mark.parametrize(("given", "seen"), [(None, "'__all__'"), ("", "''"), ("1", "'1'")])
def test_the_command_skips_pydantic_plugins_unless_told_otherwise(
    given: str | None, seen: str
) -> None:
    """pydantic scans every installed distribution for plugins before its first model (~20
    ms of each start): the command turns that off, but keeps a value the user set."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    out = subprocess.run(
        [sys.executable, "-c", PLUGINS_SEEN], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f"PYDANTIC_DISABLE_PLUGINS={seen}" in out.stdout


@pytest.mark.parametrize("command", ["report", "open"])
def test_an_issue_that_does_not_exist_is_an_error_naming_the_known_ones(
    built: Path, run_cli: RunCli, command: str
) -> None:
    """`report 2062-11` (a typo) said "never sent" with exit 0, and `open` told to build it."""
    result = run_cli(command, "2062-11", root=built)
    assert result.exit_code == ExitCode.USER_ERROR
    known = ", ".join(sorted(p.stem for p in (built / "issues").glob("*.toml")))
    assert result.stderr == (
        f"error: issues/2062-11.toml: issue file not found (known issues: {known})\n"
    )


@pytest.mark.parametrize(("browser", "code"), [("true", 0), ("false", 1)])
def test_open_says_opened_only_when_a_browser_started(
    built: Path, browser: str, code: int
) -> None:
    """In a child process: the browser command is read from BROWSER once per process."""
    env = {**os.environ, "BROWSER": browser}
    result = newsletter("open", "2026-11", "--root", str(built), env=env)
    assert result.returncode == code, result.stderr
    if code == 0:
        assert result.stdout == "Opened build/2026-11/email.html\n"
    else:
        assert result.stdout == ""
        assert result.stderr == (
            "error: build/2026-11/email.html: no browser could be started (open the file "
            "yourself, or set BROWSER to your browser's command)\n"
        )
