"""Subscriber lists as spreadsheets export them, sent through the real SMTP test server.

Issue 12 part 5 (delimiters, encodings, French headers and statuses, the greeting by first
name) and part 6 (exit codes a weekly script can use; `report` counts who is left), issue 13
defect 12 (`report --csv` never writes a formula).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import RunCli
from smtpserver import TestServer

from newsletter.cli import ExitCode

#: (email, first name, name, status as a French export writes it, mailed?)
READERS = [
    ("amelie@example.fr", "Amélie", "Durand", "Abonné", True),
    ("francois@example.fr", "François", "Lefèvre", "abonnée", True),
    ("helene@example.fr", "Hélène", "Moreau", "Désinscrit", False),
    ("noemie@example.fr", "Noémie", "Garçon", "Abonné·e", True),
    ("zoe@example.fr", "Zoé", "Roux", "désabonnée", False),
    ("leo@example.fr", "Léo", "Petit", "Rebond", False),
    ("ines@example.fr", "Inès", "Blanc", "inscrite", True),
]


def export(path: Path, *, delimiter: str, encoding: str, header: list[str]) -> None:
    """A spreadsheet's CSV export: CRLF line endings, the given delimiter and encoding."""
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(header)
        for address, first, last, status, _ in READERS:
            writer.writerow([address, first, last, status])


EXPORTS = {
    "windows-1252 with semicolons": (";", "cp1252", ["Adresse e-mail", "Prénom", "Nom", "Statut"]),
    "utf-8 with a bom and commas": (",", "utf-8-sig", ["E-mail", "prénom", "NOM", "État"]),
    "tab-separated": ("\t", "utf-8", ["Courriel", "First name", "Name", "Statut d'abonnement"]),
}


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_exactly_the_subscribed_readers_are_mailed_greeted_by_first_name(
    kind: str, built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    delimiter, encoding, header = EXPORTS[kind]
    export(built / "subscribers.csv", delimiter=delimiter, encoding=encoding, header=header)
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.OK, result.stderr + result.stdout
    expected = sorted(r[0] for r in READERS if r[4])
    assert smtp_server.recipients() == expected
    by_to = {m["To"].addresses[0].addr_spec: m for m in smtp_server.messages}
    for address, first, last, _, mailed in READERS:
        if not mailed:
            continue
        msg = by_to[address]
        assert msg["To"].addresses[0].display_name == f"{first} {last}"
        assert f"Bonjour {first}," in msg.get_body(("plain",)).get_content()
    if encoding == "cp1252":
        assert "read as Windows-1252" in result.stderr
    else:
        assert "Windows-1252" not in result.stderr


def test_an_unknown_status_value_stops_the_send_naming_its_line(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    path = built / "subscribers.csv"
    export(path, delimiter=";", encoding="cp1252", header=["Courriel", "Prénom", "Nom", "Statut"])
    text = path.read_bytes().decode("cp1252").replace("Désinscrit", "En pause")
    path.write_bytes(text.encode("cp1252"))
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr.splitlines()[0].startswith(
        "error: subscribers.csv:4: unknown Statut 'En pause'"
    )
    assert smtp_server.received == []
    # --test-to still works: it mails one address given on the command line.
    test = run_cli(
        "send", "2026-11", "--test-to", "me@example.org", root=built, env=smtp_server.env()
    )
    assert test.exit_code == ExitCode.OK, test.stderr
    assert smtp_server.recipients() == ["me@example.org"]


def test_an_unknown_header_shows_what_was_read_and_the_delimiter(
    built: Path, run_cli: RunCli
) -> None:
    (built / "subscribers.csv").write_text("Contact;Prénom\nx@example.org;X\n", encoding="utf-8")
    result = run_cli("send", "2026-11", "--dry-run", root=built)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr.startswith(
        "error: subscribers.csv:1: no email column in the header 'Contact;Prénom' "
        "(read with the delimiter ';')"
    )


@pytest.mark.smtp_faults(rcpt={"francois.lefevre@example.com": "552 5.2.2 Mailbox full"})
def test_a_failure_that_is_not_a_suppressed_hard_bounce_exits_3(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.SOME_RECIPIENTS_FAILED, result.stdout
    report = run_cli("report", "2026-11", root=built)
    assert "  not yet tried: 0 (in subscribers.csv" in report.stdout


def test_report_counts_the_recipients_not_yet_tried(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    result = run_cli("send", "2026-11", "--limit", "2", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.SOME_RECIPIENTS_FAILED  # four are left
    report = run_cli("report", "2026-11", root=built)
    assert report.exit_code == 0
    assert "  not yet tried: 4 (in subscribers.csv; `newsletter send 2026-11`)" in report.stdout


def test_report_csv_neutralises_cells_a_spreadsheet_would_run(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    formula = "=cmd|'/Ccalc'!A0@example.org"
    with open(built / "subscribers.csv", "a", encoding="utf-8") as f:
        f.write(f'"{formula}",Mallory,subscribed,Paris\n')
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.OK, result.stderr
    out = built / "out.csv"
    assert run_cli("report", "2026-11", "--csv", str(out), root=built).exit_code == 0
    with open(out, encoding="utf-8", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert "'" + formula in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)


def test_a_date_of_subscription_and_a_postal_address_stay_personalisation_fields(
    tmp_path: Path,
) -> None:
    from newsletter.send.subscribers import Subscriber, read_rows

    path = tmp_path / "l.csv"
    path.write_text(
        "Adresse;Date d'inscription;Courriel;Statut d'abonnement\n"
        "12 rue X;2026-01-02;a@example.org;Inscrite\n",
        encoding="utf-8",
    )
    (sub,) = list(read_rows(path, rel="l.csv"))
    assert isinstance(sub, Subscriber)
    assert (sub.email, sub.status) == ("a@example.org", "subscribed")
    assert sub.fields == {"Adresse": "12 rue X", "Date d'inscription": "2026-01-02"}


def test_excels_sep_line_is_read_and_kept_when_the_list_is_changed(
    built: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    """Excel writes `sep=;` before the header of a CSV made for another locale: it was read
    as the header (`no email column in the header 'sep=;'`)."""
    path = built / "subscribers.csv"
    export(path, delimiter=";", encoding="cp1252", header=["Adresse e-mail", "Prénom", "Nom",
                                                           "Statut"])
    path.write_bytes(b"sep=;\r\n" + path.read_bytes())
    before = path.read_bytes()
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == ExitCode.OK, result.stderr + result.stdout
    assert smtp_server.recipients() == sorted(r[0] for r in READERS if r[4])
    gone = run_cli("unsubscribe", "amelie@example.fr", root=built)
    assert gone.exit_code == 0, gone.stderr
    lines, old = path.read_bytes().split(b"\r\n"), before.split(b"\r\n")
    assert lines[:2] == old[:2]  # `sep=;` and the header, as they were
    assert lines[2] == "amelie@example.fr;Amélie;Durand;Désinscrit".encode("cp1252")
    assert lines[3:] == old[3:]
    path.write_bytes(b"sep=;\r\nAdresse;Statut\r\nx@example.fr;Abonn\xe9\r\n")
    bad = run_cli("send", "2026-11", "--dry-run", root=built)
    assert bad.stderr == (
        "error: subscribers.csv:2: no email column in the header 'Adresse;Statut' (read with "
        "the delimiter ';') (name a column email, e-mail, courriel or 'adresse e-mail')\n"
    )


def test_excels_unicode_text_is_one_error_saying_how_to_save_it(
    built: Path, run_cli: RunCli
) -> None:
    """UTF-16 was read as Windows-1252: `no email column in the header 'ÿþA\\x00d\\x00r…'`."""
    text = "Adresse e-mail\tPrénom\r\namelie@example.fr\tAmélie\r\n"
    (built / "subscribers.csv").write_bytes(text.encode("utf-16"))  # a BOM, as Excel writes
    result = run_cli("send", "2026-11", "--dry-run", root=built)
    assert result.exit_code == ExitCode.USER_ERROR
    assert result.stderr == (
        "error: subscribers.csv:1: UTF-16 text (what Excel saves as 'Unicode Text'), not a CSV "
        "file (save it as 'CSV UTF-8 (comma delimited)' ('CSV UTF-8 (délimité par des "
        "virgules)'))\n"
    )
