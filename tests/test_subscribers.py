from __future__ import annotations

from pathlib import Path

from newsletter.subscribers import InvalidRow, Subscriber, read_rows, summarize, unique_mailable


def write(tmp_path: Path, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / "list.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_bom_header_case_and_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "Email,Name,Status,ville\nA@Example.fr,Zoé,,Lyon\n", bom=True)
    (sub,) = list(read_rows(path, rel="list.csv"))
    assert isinstance(sub, Subscriber)
    assert (sub.email, sub.name, sub.status, sub.fields, sub.line) == (
        "A@example.fr",
        "Zoé",
        "subscribed",
        {"ville": "Lyon"},
        2,
    )


def test_bad_rows_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'email,name,status\nok@example.fr,Ok,\n"multi\nline@x",X,\nbad@,B,\n'
        "c@example.fr,C,paused\n\n,empty,\n",
    )
    items = list(read_rows(path, rel="list.csv"))
    bad = [(i.line, i.message.split(" ")[0]) for i in items if isinstance(i, InvalidRow)]
    assert bad == [(3, "invalid"), (5, "invalid"), (6, "unknown"), (8, "no")]


def test_only_subscribed_unique_addresses_are_mailed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "email,status\na@example.fr,subscribed\nA@EXAMPLE.FR,\nb@example.fr,unsubscribed\n"
        "c@example.fr,bounced\nd@example.fr,\n",
    )
    assert [s.email for s in unique_mailable(path, rel="l")] == ["a@example.fr", "d@example.fr"]
    summary = summarize(path, rel="l")
    assert (summary.mailable, summary.duplicates, summary.not_subscribed) == (2, 1, 2)
