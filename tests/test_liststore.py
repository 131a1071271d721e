"""The list file's one writer (`liststore`) and one reader (`subscribers.read_rows`) agree.

Issue 13, defects 2, 3, 4 and the small ones of part 13; the property test writes with
`set_status` and reads with `send`'s reader, for any text the cells may hold.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RunCli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.errors import SubscriberError
from newsletter.send.liststore import add, lock, set_status
from newsletter.send.subscribers import (
    InvalidRow,
    Subscriber,
    read_rows,
    unique_mailable,
    unsubscribe_token,
)

SECRET = "test-secret-key-0123456789"


def rows_of(path: Path) -> list[tuple[str, str, str, dict[str, str]] | str]:
    """What `send`'s reader sees: each row as (email, name, status, fields), or its error."""
    out: list[tuple[str, str, str, dict[str, str]] | str] = []
    for item in read_rows(path, rel="l.csv"):
        if isinstance(item, InvalidRow):
            out.append(f"{item.line}: {item.message}")
        else:
            out.append((item.email, item.name, item.status, item.fields))
    return out


def test_every_row_of_an_address_changes_and_the_others_keep_their_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.csv"
    lines = [
        b"\xef\xbb\xbfemail,name,status,ville\r\n",
        b"jane@example.org,Jane,subscribed,Paris\r\n",
        b'bob@example.org,"Bob, Jr",,"Lyon ""centre"""\r\n',
        b"Jane@Example.org,Jane D,,Nice\r\n",
        b"zoe@example.org,Zo\xc3\xa9,subscribed,Caen",  # no final newline
    ]
    path.write_bytes(b"".join(lines))
    assert set_status(path, "JANE@example.org", "unsubscribed") == 2
    data = path.read_bytes().split(b"\r\n")
    assert data[0] == lines[0].rstrip(b"\r\n")
    assert data[1] == b"jane@example.org,Jane,unsubscribed,Paris"
    assert data[2] == lines[2].rstrip(b"\r\n")
    assert data[3] == b"Jane@Example.org,Jane D,unsubscribed,Nice"
    assert data[4] == lines[4]
    assert [s.email for s in unique_mailable(path, rel="l.csv")] == [
        "bob@example.org",
        "zoe@example.org",
    ]
    # Already unsubscribed: nothing changes, and it says so (0 rows).
    before = path.read_bytes()
    assert set_status(path, "jane@example.org", "unsubscribed") == 0
    assert path.read_bytes() == before


def test_a_non_subscribed_row_keeps_the_address_from_being_mailed_whichever_comes_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.csv"
    path.write_text(
        "email,status\njane@example.org,subscribed\nJane@Example.org,unsubscribed\n"
        "bob@example.org,\nBOB@example.org,bounced\nann@example.org,\nann@example.org,\n"
        "eve@example.org,\neve@example.org,paused\n",
        encoding="utf-8",
    )
    mailed = [s.email for s in unique_mailable(path, rel="l.csv")]
    # eve's second row is invalid (unknown status) but names her: she is not mailed either
    assert mailed == ["ann@example.org"]


def test_a_stray_quote_u2028_and_a_form_feed_survive_an_unsubscribe(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    text = (
        "email,name,status\n"
        'a@example.org,Ab"c,\n'  # a quote inside an unquoted field: a literal quote
        "b@example.org,Line\u2028sep,\n"
        "c@example.org,Form\ffeed,\n"
        "d@example.org,Dee,\n"
    )
    path.write_text(text, encoding="utf-8")
    before = rows_of(path)
    for address in ("a@example.org", "b@example.org", "c@example.org", "d@example.org"):
        assert set_status(path, address, "unsubscribed") == 1
    after = rows_of(path)
    assert [r[:2] for r in after if isinstance(r, tuple)] == [
        r[:2] for r in before if isinstance(r, tuple)
    ]
    assert {r[2] for r in after if isinstance(r, tuple)} == {"unsubscribed"}
    assert len(after) == 4


def test_a_stray_quote_at_a_field_start_is_an_error_naming_its_line(
    tmp_path: Path, newsletter_root: Path, run_cli: RunCli
) -> None:
    path = newsletter_root / "subscribers.csv"
    rows = [f"r{i}@example.org,R{i},subscribed" for i in range(30)]
    rows[4] = '"r4@example.org,R4,subscribed'
    path.write_text("email,name,status\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(SubscriberError) as caught:
        list(read_rows(path, rel="subscribers.csv"))
    assert caught.value.line == 6
    assert "swallows line 7" in str(caught.value)
    # --skip-invalid cannot skip 26 rows as "1 invalid row": the send stops, naming line 6.
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    result = run_cli("send", "2026-11", "--dry-run", "--skip-invalid", root=newsletter_root)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: subscribers.csv:6: a quote opened on this line")
    assert "Traceback" not in result.stderr


def test_a_windows_1252_list_reports_the_right_line(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    text = "email;nom;statut\na@example.org;Zoé;Abonné\nb@example.org;Léa;\nbad@;X;\n"
    path.write_bytes(text.encode("cp1252"))
    items = list(read_rows(path, rel="l.csv"))
    assert isinstance(items[0], Subscriber) and items[0].name == "Zoé"
    assert isinstance(items[2], InvalidRow) and items[2].line == 4


def test_add_appends_with_the_lists_columns_and_resubscribes(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("Courriel;Prénom;Statut\r\nzoe@example.org;Zoé;Désinscrit".encode("cp1252"))
    assert add(path, "new@example.org", "", fields={"Prénom": "Noé", "source": "web"}) is True
    text = path.read_bytes().decode("cp1252")
    assert text == (
        "Courriel;Prénom;Statut;source\r\n"
        "zoe@example.org;Zoé;Désinscrit\r\n"
        "new@example.org;Noé;Abonné;web\r\n"
    )
    assert add(path, "ZOE@example.org", "Zoé", fields={}) is False
    assert "zoe@example.org;Zoé;Abonné\r\n" in path.read_bytes().decode("cp1252")
    with pytest.raises(SubscriberError, match="no column 'ville'"):
        add(path, "x@example.org", "", fields={"ville": "Caen"})
    # The lock is re-entrant in a thread: the web service may hold it around both calls.
    with lock(path):
        assert set_status(path, "new@example.org", "unsubscribed") == 1
    # Signing up again after leaving: the new consent is the record (it kept the old one).
    path.write_bytes(
        "Courriel;Prénom;Statut;consent_at;source\r\n"
        "zoe@example.org;Zoé;Désinscrit;2025-01-02T03:04:05Z;import\r\n"
        "ines@example.org;Inès;Abonné;2025-02-02T03:04:05Z;form\r\n".encode("cp1252"))
    proof = {"consent_at": "2026-11-26T06:00:00Z", "source": "form"}
    assert add(path, "zoe@example.org", "Zoé", fields=proof) is False
    assert add(path, "ines@example.org", "Inès", fields=proof) is False  # subscribed: as it was
    assert path.read_bytes().decode("cp1252").splitlines()[1:] == [
        "zoe@example.org;Zoé;Abonné;2026-11-26T06:00:00Z;form",
        "ines@example.org;Inès;Abonné;2025-02-02T03:04:05Z;form",
    ]


def test_unsubscribe_by_token_and_a_non_ascii_argument_with_a_secret(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    env = {"NEWSLETTER_SECRET_KEY": SECRET}
    token = unsubscribe_token("amelie.durand@example.fr", SECRET)
    result = run_cli("unsubscribe", token, root=newsletter_root, env=env)
    assert result.exit_code == 0, result.stderr
    assert "is now unsubscribed" in result.stdout
    assert "amelie.durand@example.fr,Amélie Durand,unsubscribed,Paris" in (
        newsletter_root / "subscribers.csv"
    ).read_text(encoding="utf-8")
    result = run_cli("unsubscribe", "é", root=newsletter_root, env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: subscribers.csv: no subscriber with this address")
    # Without a secret, a word with no @ is neither an address nor a token we can check.
    result = run_cli("unsubscribe", "é", root=newsletter_root)
    assert result.exit_code == 1 and "NEWSLETTER_SECRET_KEY" in result.stderr


def test_the_web_cannot_pass_a_raw_address_as_a_token(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("email\njane@example.org\n", encoding="utf-8")
    with pytest.raises(SubscriberError, match="no subscriber with this address or token"):
        set_status(path, "jane@example.org", "unsubscribed", secret=SECRET, by_token=True)


def test_five_concurrent_unsubscribes_on_a_100k_row_list_are_all_kept(
    newsletter_root: Path,
) -> None:
    path = newsletter_root / "subscribers.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("email,name,status,ville\n")
        for i in range(100_000):
            f.write(f"reader{i}@example.org,Reader {i},subscribed,Paris\n")
    targets = [f"reader{i}@example.org" for i in (3, 25_000, 50_000, 75_000, 99_999)]

    def command(address: str) -> list[str]:
        root = str(newsletter_root)
        return [sys.executable, "-m", "newsletter", "unsubscribe", address, "--root", root]

    t0 = time.perf_counter()
    one = subprocess.run(command("reader7@example.org"), capture_output=True, text=True)
    single = time.perf_counter() - t0
    assert one.returncode == 0, one.stderr
    t0 = time.perf_counter()
    procs = [subprocess.Popen(command(a), stdout=subprocess.PIPE, text=True) for a in targets]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    five = time.perf_counter() - t0
    assert all(p.returncode == 0 for p in procs)
    assert all("is now unsubscribed" in o for o in outputs)
    with open(path, encoding="utf-8", newline="") as f:
        status = {r["email"]: r["status"] for r in csv.DictReader(f)}
    assert len(status) == 100_000
    gone = {a for a, s in status.items() if s == "unsubscribed"}
    assert gone == {*targets, "reader7@example.org"}
    print(
        f"unsubscribe on 100k rows: one {single:.2f} s, five at once {five:.2f} s "
        f"({five / single:.1f}x one)"
    )


# Any text a cell may hold except a line break (a row with one is invalid by design, and
# `set_status` copies such rows as they are): quotes, delimiters, U+2028, form feeds...
CELL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
    | st.sampled_from(['"', ",", ";", "\t", "\u2028", "\f", "é", " ", "'"]),
    max_size=12,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(CELL, min_size=1, max_size=6),
    villes=st.lists(CELL, min_size=6, max_size=6),
    delimiter=st.sampled_from([",", ";", "\t"]),
    crlf=st.booleans(),
    pick=st.integers(min_value=0, max_value=5),
)
def test_a_list_written_by_set_status_reads_as_the_same_rows(
    tmp_path: Path,
    names: list[str],
    villes: list[str],
    delimiter: str,
    crlf: bool,
    pick: int,
) -> None:
    path = tmp_path / "prop.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["email", "name", "status", "ville"])
    emails = [f"r{i}@example.org" for i in range(len(names))]
    for address, name, ville in zip(emails, names, villes, strict=False):
        writer.writerow([address, name, "", ville])
    path.write_text(buf.getvalue(), encoding="utf-8")
    before = rows_of(path)
    target = emails[pick % len(emails)]
    assert set_status(path, target, "unsubscribed") == 1
    after = rows_of(path)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        if isinstance(old, tuple) and old[0] == target:
            assert isinstance(new, tuple) and new[2] == "unsubscribed"
            assert (new[0], new[1], new[3]) == (old[0], old[1], old[3])
        else:
            assert new == old
