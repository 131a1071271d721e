"""The suppression file read strictly, appended safely (issue 13, defect 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli
from smtpserver import TestServer

from newsletter.errors import NewsletterError
from newsletter.send import suppressions
from newsletter.send.digests import digest

HEADER = "email,reason,code,issue,date\n"


def entry(address: str) -> suppressions.Suppression:
    return suppressions.Suppression(address, "hard-bounce", "550", "2026-11", "2026-11-25")


def test_an_append_after_a_hand_edit_without_a_final_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "suppressions.csv"
    path.write_text(HEADER + "old@example.org,manual,,,", encoding="utf-8")
    assert suppressions.append(path, [entry("new@example.org")]) == 1
    known = suppressions.load(path, rel="suppressions.csv")
    assert digest("old@example.org") in known and digest("new@example.org") in known
    assert path.read_text(encoding="utf-8").splitlines()[-1].startswith("new@example.org,")


def test_a_stray_quote_is_an_error_naming_its_line_never_a_swallowed_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "suppressions.csv"
    path.write_text(
        HEADER + 'a@example.org,"manual,,,\nb@example.org,bounce,,,\nc@example.org,bounce,,,\n',
        encoding="utf-8",
    )
    with pytest.raises(NewsletterError) as caught:
        suppressions.load(path, rel="suppressions.csv")
    assert str(caught.value).startswith("suppressions.csv:2: a quote opened on this line")


def test_bad_lines_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "suppressions.csv"
    path.write_text(HEADER + "a@example.org,x\nnot-an-address,x\n,x\nb@example.org\n")
    with pytest.raises(NewsletterError) as caught:
        suppressions.load(path, rel="suppressions.csv")
    assert str(caught.value).splitlines() == [
        "suppressions.csv:3: 'not-an-address' is not an address (fix or remove the line)",
        "suppressions.csv:4: no address (fix or remove the line)",
    ]


def test_a_windows_1252_suppression_file_is_one_line_and_nobody_is_mailed(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    (built / "suppressions.csv").write_bytes(
        (HEADER + "amelie.durand@example.fr,désinscrite à la main,,,\n").encode("cp1252")
    )
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == 1
    assert result.stderr == (
        "error: suppressions.csv:2: not UTF-8 (a Windows-1252 edit?) "
        "(save the suppression file as UTF-8 CSV)\n"
    )
    assert smtp_server.received == []
