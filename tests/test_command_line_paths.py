"""Paths typed on the command line start from the current folder; paths in settings from the
newsletter folder (docs/commands.md, "Paths").

Every command here runs from `content/`, a subfolder of the newsletter (found by walking up,
no --root), with files that exist only where the typed path points from there: a command
that took them from the newsletter folder instead would not find them, or find another file.
"""

from __future__ import annotations

import csv
import mailbox
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, RunCli
from journalseed import mailed
from smtpserver import TestServer
from test_import import WXR

POSTFIX_BOUNCE = FIXTURES / "flufl_bounce" / "data" / "postfix_01.txt"
BOUNCED = "xxxxx@local.ie"  # the address it says does not exist (550 5.1.1)


@pytest.fixture
def here(built: Path) -> Path:
    """The sample folder with 2026-11 built; the tests run in its content/ folder."""
    mailed(built, [BOUNCED])
    return built / "content"


def suppressed(root: Path) -> list[str]:
    with open(root / "suppressions.csv", encoding="utf-8", newline="") as f:
        return [r["email"] for r in csv.DictReader(f)]


def test_bounces_reads_the_file_next_to_the_current_folder(here: Path, run_cli: RunCli) -> None:
    root = here.parent
    (root / "bounces").mkdir()
    shutil.copy(POSTFIX_BOUNCE, root / "bounces" / "b1.eml")
    result = run_cli("bounces", "../bounces/b1.eml", cwd=here)
    assert result.exit_code == 0, result.stderr
    line = f"b1.eml#1: {BOUNCED} hard-bounce 550 5.1.1 (suppressed)"
    assert result.stdout.splitlines()[0] == line
    # NEWSLETTER_SUPPRESSIONS, a setting, stays relative to the newsletter folder
    assert suppressed(root) == [BOUNCED]
    assert not (here / "suppressions.csv").exists()


def test_a_path_that_is_not_there_is_named_from_the_newsletter_folder(
    here: Path, run_cli: RunCli
) -> None:
    (here.parent / "b1.eml").write_bytes(POSTFIX_BOUNCE.read_bytes())  # not where it points
    result = run_cli("bounces", "b1.eml", cwd=here)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: content/b1.eml: cannot read: No such file or directory "
        "(give an mbox file, a folder of .eml files, or one .eml file)\n"
    )
    outside = run_cli("bounces", "../../elsewhere/b1.eml", cwd=here)
    missing = (here / "../../elsewhere/b1.eml").resolve()
    assert outside.stderr.startswith(f"error: {missing}: cannot read: ")  # no `..` shown


def test_inbox_reads_the_maildir_next_to_the_current_folder(here: Path, run_cli: RunCli) -> None:
    box = mailbox.Maildir(str(here.parent / "Maildir"), create=True)
    box.add(POSTFIX_BOUNCE.read_bytes())
    box.close()
    result = run_cli("inbox", "../Maildir", cwd=here)
    assert result.exit_code == 0, result.stderr
    assert suppressed(here.parent) == [BOUNCED]


def test_report_writes_its_csv_here_and_reads_the_list_given_from_here(
    here: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    root = here.parent
    assert run_cli("send", "2026-11", "--limit", "2", cwd=here, env=smtp_server.env()).exit_code
    shutil.copy(root / "subscribers.csv", here / "others.csv")  # only here, not in the root
    given = ("--csv", "out.csv", "--subscribers", "others.csv")
    result = run_cli("report", "2026-11", *given, cwd=here)
    assert result.exit_code == 0, result.stderr
    assert "  not yet tried: 4 (in content/others.csv;" in result.stdout
    assert result.stdout.splitlines()[-1] == "wrote content/out.csv"
    assert (here / "out.csv").is_file() and not (root / "out.csv").exists()
    # without --subscribers: NEWSLETTER_SUBSCRIBERS (subscribers.csv), from the root
    plain = run_cli("report", "2026-11", cwd=here)
    assert "  not yet tried: 4 (in subscribers.csv;" in plain.stdout


def test_send_and_unsubscribe_take_the_list_given_from_here(
    here: Path, run_cli: RunCli
) -> None:
    (here / "two.csv").write_text(
        "email,name\nun@example.fr,Un\ndeux@example.fr,Deux\n", encoding="utf-8"
    )
    dry = run_cli("send", "2026-11", "--dry-run", "--subscribers", "two.csv", cwd=here)
    assert dry.exit_code == 0, dry.stderr
    assert "2 message(s) would be sent" in dry.stdout
    result = run_cli("unsubscribe", "un@example.fr", "--subscribers", "two.csv", cwd=here)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "un@example.fr is now unsubscribed in content/two.csv (1 row(s) changed)\n"
    )


def test_preview_takes_the_list_given_from_here(here: Path, run_cli: RunCli) -> None:
    (here / "two.csv").write_text("email,name\nun@example.fr,Un\n", encoding="utf-8")
    result = run_cli(
        "preview", "2026-11", "--no-open", "--as", "personne@example.fr",
        "--subscribers", "two.csv", cwd=here,
    )  # fails before serving: the reader is not in that list (which was found)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: content/two.csv: "), result.stderr
    assert "personne@example.fr" in result.stderr


def test_import_reads_the_file_given_from_here(here: Path, run_cli: RunCli) -> None:
    (here.parent / "export.xml").write_text(WXR, encoding="utf-8")
    found = run_cli("import", "../export.xml", "--author", "erwan", "--dry-run", cwd=here)
    assert found.exit_code == 0, found.stderr
    assert found.stdout.splitlines()[-1] == (
        "1 written, 0 updated, 0 unchanged (dry run: nothing written)"
    )
    # export.xml is in the newsletter folder, not here: not taken from there
    missing = run_cli("import", "export.xml", "--author", "erwan", "--dry-run", cwd=here)
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"error: {here / 'export.xml'}: cannot read the feed: No such file or directory "
        "(give a feed file or an http(s):// address)\n"
    )
