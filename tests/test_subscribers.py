from __future__ import annotations

from pathlib import Path

from newsletter.send.subscribers import (
    InvalidRow,
    Subscriber,
    read_rows,
    summarize,
    unique_mailable,
)


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


def test_the_fast_address_check_agrees_with_email_validator() -> None:
    import random

    from email_validator import EmailNotValidError, validate_email

    from newsletter.send.subscribers import check_address

    rng = random.Random(5)
    letters = ["a", "Z", "0", "x", "mo", "b"] * 4
    pieces = [*letters, ".", "-", "+", "_", "é", "@", "..", "-.", "xn--", " ", '"']
    tlds = ["fr", "com", "f", "123", "local", "test", "co.uk", "x-", "museum"]
    checked = 0
    for _ in range(4000):
        local = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        domain = "".join(rng.choice(pieces[:-3]) for _ in range(rng.randint(0, 5)))
        address = f"{local}@{domain}.{rng.choice(tlds)}"
        try:
            ref = validate_email(address, check_deliverability=False, allow_smtputf8=False)
            expected: str | None = ref.ascii_email or ref.normalized
        except EmailNotValidError:
            expected = None
        try:
            got: str | None = check_address(address)
        except ValueError:
            got = None
        assert got == expected, address
        checked += expected is not None
    assert checked > 400  # the corpus exercises the accepting side too


def test_digest_set_behaves_like_a_set() -> None:
    import random

    from newsletter.send.digests import DigestSet, digest

    rng = random.Random(1)
    ours, ref = DigestSet(), set()
    for _ in range(20000):
        d = digest(f"user{rng.randint(0, 8000)}@example.fr")
        assert ours.add(d) == (d not in ref)
        ref.add(d)
    assert len(ours) == len(ref)
    assert all(d in ours for d in ref)
    assert digest("x@example.fr") not in ours


def _emails(path: Path) -> list[str]:
    return [s.email for s in unique_mailable(path, rel="list.csv")]


def test_the_send_pass_after_summarize_reads_the_rows_it_kept(tmp_path: Path) -> None:
    from newsletter.send import subscribers

    path = write(tmp_path, "email,name,status\na@x.fr,A,\nb@x.fr,B,\nA@X.fr,A2,\nc@x.fr,C,non\n")
    streamed = _emails(path)
    assert summarize(path, rel="list.csv").mailable == 2
    kept = subscribers._mailable_cache[0][1]
    # The pass after it hands out the very rows the summary counted, not a second parse.
    again = list(unique_mailable(path, rel="list.csv"))
    assert [s.email for s in again] == streamed == ["a@x.fr", "b@x.fr"]
    assert all(x is y for x, y in zip(again, kept, strict=True))


def test_a_list_changed_after_summarize_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, "email,name,status\na@x.fr,A,\nb@x.fr,B,\n")
    summarize(path, rel="list.csv")
    path.write_text("email,name,status\na@x.fr,A,désinscrit\nb@x.fr,B,\nd@x.fr,D,\n")
    assert _emails(path) == ["b@x.fr", "d@x.fr"]


def test_a_long_list_is_streamed_not_kept(tmp_path: Path) -> None:
    from newsletter.send import subscribers

    path = write(tmp_path, "email\n" + "".join(f"r{i}@x.fr\n" for i in range(5)))
    old = subscribers.KEEP_ROWS
    subscribers.KEEP_ROWS = 4
    try:
        assert summarize(path, rel="list.csv").mailable == 5
        assert subscribers._mailable_cache == []
        assert _emails(path) == [f"r{i}@x.fr" for i in range(5)]
    finally:
        subscribers.KEEP_ROWS = old


def test_a_summary_stopped_early_keeps_nothing(tmp_path: Path) -> None:
    from newsletter.send import subscribers
    from newsletter.send.subscribers import ListSummary

    path = write(tmp_path, "email\na@x.fr\nb@x.fr\n")
    subscribers._mailable_cache.clear()
    rows = unique_mailable(path, rel="list.csv", summary=ListSummary())
    assert next(rows).email == "a@x.fr"
    rows.close()
    assert subscribers._mailable_cache == []
