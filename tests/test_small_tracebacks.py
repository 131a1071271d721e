"""Issue 13, defect 13: what used to be a traceback or a wrong answer is one line."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli, snapshot
from smtpserver import TestServer


def test_a_corrupt_journal_is_one_error_line(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    (built / "state").mkdir()
    (built / "state" / "newsletter.db").write_bytes(b"not a database, garbage " * 100)
    for args in (("send", "2026-11"), ("report", "2026-11")):
        result = run_cli(*args, root=built, env=smtp_server.env())
        assert result.exit_code == 1, result.stdout
        (line,) = result.stderr.splitlines()
        assert line.startswith(
            "error: state/newsletter.db: the send journal cannot be opened: file is not a database"
        ), line
        assert "restore state/ from a backup" in line
    assert smtp_server.received == []


@pytest.fixture
def read_only_journal(built: Path) -> Iterator[Path]:
    """A journal the process may not write: mode 0444 (and immutable, as root ignores modes)."""
    from newsletter.layout import Layout
    from newsletter.send.journal import Journal

    Journal.open(Layout.at(built), "2026-11").close()  # a journal as a first send leaves it
    db = built / "state" / "newsletter.db"
    os.chmod(db, 0o444)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        yield db
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)], check=True)
        os.chmod(db, 0o644)


def test_a_read_only_journal_is_one_error_line(
    built: Path, read_only_journal: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == 1, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: state/newsletter.db: the send journal cannot be ")
    assert "readonly" in line or "read-only" in line
    assert smtp_server.received == []


def test_a_windows_1252_issue_file_is_one_error_naming_it(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    issue = newsletter_root / "issues" / "2026-11.toml"
    issue.write_bytes(issue.read_text("utf-8").replace("’", "'").encode("cp1252"))
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: issues/2026-11.toml:")
    assert "not UTF-8" in line and "save the file as UTF-8" in line


@pytest.mark.parametrize(
    "arg", ["../../etc/2026-11.toml", "/etc/2026-11.toml", "..", "content/2026-11.toml", ".x"]
)
def test_an_issue_outside_issues_is_refused(
    newsletter_root: Path, run_cli: RunCli, arg: str
) -> None:
    before = snapshot(newsletter_root)
    result = run_cli("build-issue", arg, root=newsletter_root)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {arg}: ")
    assert "issues/" in line
    assert snapshot(newsletter_root) == before


@pytest.mark.parametrize("arg", ["2026-11", "2026-11.toml", "issues/2026-11.toml"])
def test_the_usual_ways_of_naming_an_issue_still_work(
    newsletter_root: Path, run_cli: RunCli, arg: str
) -> None:
    assert run_cli("build-issue", arg, root=newsletter_root).exit_code == 0


def test_a_corrupt_journal_stops_the_archive_with_one_line(
    built: Path, run_cli: RunCli
) -> None:
    (built / "state").mkdir()
    (built / "state" / "newsletter.db").write_bytes(b"not a database, garbage " * 100)
    result = run_cli("archive", root=built)
    assert result.exit_code == 1, result.stdout
    (line,) = result.stderr.splitlines()
    assert "cannot read the send journal: file is not a database" in line
