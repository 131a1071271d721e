"""`newsletter init` and `newsletter new-issue` (issue 11), in-process, stdin not a terminal."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from conftest import RunCli, snapshot
from smtpserver import TestServer

from newsletter.layout import Layout
from newsletter.send.doctor import check_sender
from newsletter.settings import Settings, load_settings

TODAY = dt.date.today()
MONTH = f"{TODAY:%Y-%m}"
FILES = [
    "newsletter.toml",
    ".env.example",
    ".gitignore",
    "content/authors.toml",
    "content/articles/bienvenue.md",
    f"issues/{MONTH}.toml",
    "subscribers.csv",
]


@pytest.fixture(autouse=True)
def _no_sample_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest sets the sample's postal address in the environment: a new folder has its own."""
    monkeypatch.delenv("NEWSLETTER_POSTAL_ADDRESS")


def init(run_cli: RunCli, root: Path, *extra: str) -> tuple[int, str, str]:
    r = run_cli("init", str(root), "--name", "Cœur, de Lyon", "--from", "lettre@lyon.fr", *extra)
    return r.exit_code, r.stdout, r.stderr


def test_init_writes_the_folder_and_prints_the_next_commands(
    tmp_path: Path, run_cli: RunCli
) -> None:
    root = tmp_path / "lettre"
    code, stdout, stderr = init(run_cli, root, "--postal-address", "1 place Bellecour, Lyon")
    assert (code, stderr) == (0, "")
    assert stdout.splitlines() == [
        *(f"created {root / rel}" for rel in FILES),
        "Next:",
        f"  cd {root} && newsletter build-issue {MONTH}",
        f"  newsletter preview {MONTH}",
        "  newsletter new-issue",
    ]
    assert sorted(snapshot(root)) == sorted(FILES)
    settings = load_settings(Layout.at(root))
    assert settings.sender == '"Cœur, de Lyon" <lettre@lyon.fr>'  # quoted: a comma
    assert (settings.language, settings.postal_address) == ("fr", "1 place Bellecour, Lyon")
    authors = tomllib.loads((root / "content" / "authors.toml").read_text(encoding="utf-8"))
    assert [a["name"] for a in authors.values()] == ["Cœur, de Lyon"]
    assert (root / "subscribers.csv").read_text(encoding="utf-8") == "email,name,status\n"
    ignored = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {".env", "subscribers.csv", "/build/", "/state/", "/site/"} <= set(ignored)
    env_example = (root / ".env.example").read_text(encoding="utf-8")
    assert "NEWSLETTER_SMTP_PASSWORD=\n" in env_example


def test_the_first_issue_resolves_to_the_sample_article(tmp_path: Path, run_cli: RunCli) -> None:
    from newsletter.compose.content import load_catalog
    from newsletter.compose.issue import resolve_issue

    init(run_cli, tmp_path, "--language", "en")
    layout = Layout.at(tmp_path)
    issue = resolve_issue(layout, MONTH, load_catalog(layout), language="en")
    assert [a.slug for a in issue.articles] == ["welcome"]
    assert issue.number == 1 and issue.date == TODAY and issue.language == "en"


def test_init_never_overwrites(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "subscribers.csv").write_text("email\nme@lyon.fr\n", encoding="utf-8")
    before = snapshot(tmp_path)
    code, stdout, stderr = init(run_cli, tmp_path)
    assert (code, stdout) == (1, "")
    assert stderr == (
        f"error: {tmp_path / 'subscribers.csv'}: would overwrite files "
        "(init never overwrites: choose an empty folder, e.g. newsletter init DIR)\n"
    )
    assert snapshot(tmp_path) == before
    (tmp_path / "subscribers.csv").unlink()
    assert init(run_cli, tmp_path)[0] == 0
    code, _, stderr = init(run_cli, tmp_path)
    assert code == 1 and "newsletter.toml: already a newsletter folder" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: --name, --from: missing (pass --name and --from; stdin is not a terminal, "
         "so nothing is asked)\n"),
        (["--from", "lettre@lyon.fr"], "error: --name: missing (the newsletter's name, e.g. Ma "
         "Lettre)\n"),
        (["--name", "X"], "error: --from: missing (pass --from; stdin is not a terminal, so "
         "nothing is asked)\n"),
        (["--name", "X", "--from", "lettre"], "error: --from: 'lettre' is not an email address "
         "(e.g. lettre@my-domain.fr)\n"),
    ],
)
def test_without_a_terminal_a_missing_value_is_an_error_naming_the_option(
    tmp_path: Path, run_cli: RunCli, args: list[str], message: str
) -> None:
    result = run_cli("init", str(tmp_path), *args)
    assert (result.exit_code, result.stderr) == (1, message)
    assert snapshot(tmp_path) == {}


def test_the_name_may_come_with_the_address(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("init", str(tmp_path), "--from", "La Gazette <gazette@lyon.fr>")
    assert result.exit_code == 0, result.stderr
    assert load_settings(Layout.at(tmp_path)).sender == "La Gazette <gazette@lyon.fr>"


def test_new_issue_takes_the_next_id_and_number_and_the_articles_not_yet_sent(
    tmp_path: Path, run_cli: RunCli
) -> None:
    init(run_cli, tmp_path)
    articles = tmp_path / "content" / "articles"
    text = (articles / "bienvenue.md").read_text(encoding="utf-8")
    (articles / "suite.md").write_text(
        text.replace("Bienvenue dans", "La suite de"), encoding="utf-8"
    )
    # The first issue takes both articles; write it as an explicit list of the first one.
    first = tmp_path / "issues" / f"{MONTH}.toml"
    first.write_text(
        first.read_text(encoding="utf-8").replace("[select]\n", "")
        + 'articles = ["bienvenue"]\n',
        encoding="utf-8",
    )
    result = run_cli("new-issue", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"created issues/{MONTH}-2.toml",
        "It would contain 1 article(s), as of today:",
        "  La suite de Cœur, de Lyon (suite)",
    ]
    spec = tomllib.loads((tmp_path / "issues" / f"{MONTH}-2.toml").read_text(encoding="utf-8"))
    assert (spec["date"], spec["number"], spec["select"]) == (TODAY, 2, {})
    # The next one would be empty: refused, naming the file it would have written.
    before = snapshot(tmp_path)
    result = run_cli("new-issue", "2099-01", root=tmp_path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: issues/2099-01.toml: not written: every article dated up to {TODAY} is a "
        "draft or already in an issue (write the next article in content/articles/, then run "
        "new-issue again)\n"
    )
    assert snapshot(tmp_path) == before
    # With a new article (that the issue before does not take) it is written; the number goes on.
    second = tmp_path / "issues" / f"{MONTH}-2.toml"
    second.write_text(
        second.read_text(encoding="utf-8").replace("[select]\n", 'articles = ["suite"]\n'),
        encoding="utf-8",
    )
    (articles / "encore.md").write_text(
        text.replace("Bienvenue dans", "Encore"), encoding="utf-8"
    )
    result = run_cli("new-issue", "2099-01", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert tomllib.loads((tmp_path / "issues" / "2099-01.toml").read_text())["number"] == 3


def test_new_issue_refuses_to_overwrite(tmp_path: Path, run_cli: RunCli) -> None:
    init(run_cli, tmp_path)
    before = snapshot(tmp_path)
    result = run_cli("new-issue", MONTH, root=tmp_path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: issues/{MONTH}.toml: already exists (new-issue never overwrites: edit it)\n"
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("sender", "postal", "expected"),
    [
        ("", "x", [("from", "error")]),
        ("A <a@coeursurparis.example>", "x", [("from", "warning")]),
        ("A <a@news.example.com>", "x", [("from", "warning")]),
        ("A <a@example.fr>", "", [("from", "warning"), ("postal-address", "warning")]),
        ("A <a@lyon.fr>", "", [("from", "ok"), ("postal-address", "warning")]),
        ("A <a@notexample.com>", "x", [("from", "ok")]),
    ],
)
def test_doctor_warns_about_example_domains_and_no_postal_address(
    sender: str, postal: str, expected: list[tuple[str, str]]
) -> None:
    checks = check_sender(Settings(sender=sender, postal_address=postal))
    assert [(c.code, c.severity) for c in checks] == expected


def test_on_a_terminal_init_asks_for_what_is_missing(tmp_path: Path) -> None:
    """A real terminal (a pty), answers typed at each prompt; Enter keeps the default."""
    import os
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    child = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "init", str(tmp_path)],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    answers = iter([b"Ma Lettre\n", b"lettre@ma-lettre.fr\n", b"en\n", b"\n"])
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, seen.decode()
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if seen.rstrip().endswith((b":", b"]:")):
                os.write(master, next(answers, b"\n"))
                seen += b"\n"
    finally:
        os.close(master)
    assert child.wait(timeout=30) == 0, seen.decode()
    text = seen.decode().replace("\r\n", "\n")
    for prompt in ("Newsletter name", "From address (you@your-domain)", "Language (fr or en)"):
        assert prompt in text
    settings = load_settings(Layout.at(tmp_path))
    assert (settings.sender, settings.language) == ("Ma Lettre <lettre@ma-lettre.fr>", "en")
    assert settings.postal_address == ""
    assert (tmp_path / "content" / "articles" / "welcome.md").is_file()


# -- new-issue: checked first, written whole, buildable as written -------------------------------


def add_article(root: Path, slug: str, title: str, *, date: dt.date = TODAY) -> None:
    """An article like init's sample (no `url`), with its own title and date."""
    text = (root / "content" / "articles" / "bienvenue.md").read_text(encoding="utf-8")
    text = text.replace("Bienvenue dans Cœur, de Lyon", title)
    text = text.replace(f"date: {TODAY}", f"date: {date}")
    (root / "content" / "articles" / f"{slug}.md").write_text(text, encoding="utf-8")


def first_issue_lists(root: Path, *slugs: str) -> None:
    """init's first issue, its [select] turned into `articles = [...]` (it would take all)."""
    path = root / "issues" / f"{MONTH}.toml"
    listed = ", ".join(f'"{s}"' for s in slugs)
    path.write_text(
        path.read_text(encoding="utf-8").replace("[select]\n", f"articles = [{listed}]\n"),
        encoding="utf-8",
    )


def test_new_issue_without_an_articles_folder_writes_nothing(
    tmp_path: Path, run_cli: RunCli
) -> None:
    init(run_cli, tmp_path)
    (tmp_path / "content" / "articles" / "bienvenue.md").unlink()
    (tmp_path / "content" / "articles").rmdir()
    before = snapshot(tmp_path)
    result = run_cli("new-issue", "2027-01", root=tmp_path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: content/articles: no articles folder (create it, then write an article in it "
        "as docs/folder.md shows)\n"
    )
    assert snapshot(tmp_path) == before


def test_new_issue_in_an_empty_articles_folder_writes_nothing(
    tmp_path: Path, run_cli: RunCli
) -> None:
    init(run_cli, tmp_path)
    (tmp_path / "content" / "articles" / "bienvenue.md").unlink()
    before = snapshot(tmp_path)
    result = run_cli("new-issue", "2027-01", root=tmp_path)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: content/articles: no article yet, so no issue to write (write one as "
        "docs/folder.md shows, then run new-issue again)\n"
    )
    assert snapshot(tmp_path) == before


def test_an_earlier_issue_that_picks_nothing_blocks_no_later_one(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """An issue file whose [select] matches nothing (as new-issue used to write) takes
    nothing: later issues build, and each error names its own file."""
    init(run_cli, tmp_path, "--postal-address", "1 place Bellecour, Lyon")
    empty = tmp_path / "issues" / f"{MONTH}-2.toml"
    empty.write_text(
        f'subject = "Vide"\npreheader = "p"\ndate = {TODAY}\nmode = "full"\n[select]\n',
        encoding="utf-8",
    )
    later = TODAY + dt.timedelta(days=30)
    add_article(tmp_path, "plus-tard", "Plus tard", date=later)
    (tmp_path / "issues" / "2099-12.toml").write_text(
        f'subject = "Plus tard"\npreheader = "p"\ndate = {later}\nmode = "full"\n[select]\n',
        encoding="utf-8",
    )
    result = run_cli("build-issue", "2099-12", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert "  1. Plus tard (Nouvelles, Cœur, de Lyon)" in result.stdout.splitlines()
    # The empty issue's own build says so, naming its own file.
    result = run_cli("build-issue", f"{MONTH}-2", root=tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: issues/{MONTH}-2.toml: select: the [select] rules match no article not already "
        "in an earlier or sent issue (widen categories or since, or list the articles "
        "explicitly)\n"
    )
    # new-issue names the file it would write, not the empty one, and writes nothing.
    before = snapshot(tmp_path)
    result = run_cli("new-issue", root=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: issues/{MONTH}-3.toml: not written: ")
    assert snapshot(tmp_path) == before


def test_the_issue_new_issue_writes_builds_as_written(tmp_path: Path, run_cli: RunCli) -> None:
    """The previous issue's mode (init's is "full": its article has no url) and a preheader,
    so the first build passes every check."""
    init(run_cli, tmp_path, "--postal-address", "1 place Bellecour, Lyon")
    first_issue_lists(tmp_path, "bienvenue")
    add_article(tmp_path, "suite", "La suite")
    add_article(tmp_path, "encore", "Encore un article")
    result = run_cli("new-issue", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    spec = tomllib.loads((tmp_path / "issues" / f"{MONTH}-2.toml").read_text(encoding="utf-8"))
    assert (spec["mode"], spec["preheader"]) == ("full", "Encore un article · La suite")
    result = run_cli("build-issue", f"{MONTH}-2", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == "  checks: all passed"


def test_a_long_preheader_of_titles_is_cut_at_a_word(tmp_path: Path, run_cli: RunCli) -> None:
    init(run_cli, tmp_path)
    first_issue_lists(tmp_path, "bienvenue")
    for n in range(5):
        add_article(tmp_path, f"long-{n}", f"Un titre assez long pour remplir l’aperçu {n}")
    assert run_cli("new-issue", root=tmp_path).exit_code == 0
    spec = tomllib.loads((tmp_path / "issues" / f"{MONTH}-2.toml").read_text(encoding="utf-8"))
    preheader = spec["preheader"]
    assert len(preheader) <= 120 and preheader.endswith(" · Un titre assez long pour…")
    assert preheader.startswith("Un titre assez long pour remplir l’aperçu 0 · Un titre")


@pytest.mark.parametrize(("url", "mode"), [(False, "full"), (True, "excerpt")])
def test_without_an_issue_before_the_mode_suits_the_articles(
    tmp_path: Path, run_cli: RunCli, url: bool, mode: str
) -> None:
    init(run_cli, tmp_path, "--postal-address", "1 place Bellecour, Lyon")
    (tmp_path / "issues" / f"{MONTH}.toml").unlink()
    if url:
        article = tmp_path / "content" / "articles" / "bienvenue.md"
        article.write_text(
            article.read_text(encoding="utf-8").replace(
                "author: redaction\n", 'author: redaction\nurl: "https://lyon.fr/bienvenue"\n'
            ),
            encoding="utf-8",
        )
    result = run_cli("new-issue", "2027-01", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert tomllib.loads((tmp_path / "issues" / "2027-01.toml").read_text())["mode"] == mode
    result = run_cli("build-issue", "2027-01", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")


def test_after_a_send_new_articles_go_to_the_next_issue(
    tmp_path: Path, run_cli: RunCli, smtp_server: TestServer
) -> None:
    """The user's review, step by step: a sent issue keeps what it was sent with."""
    init(run_cli, tmp_path, "--postal-address", "1 place Bellecour, Lyon")
    (tmp_path / "subscribers.csv").write_text("email,name,status\nami@lyon.fr,Ami,\n")
    env = smtp_server.env()
    assert run_cli("build-issue", MONTH, root=tmp_path).exit_code == 0
    assert run_cli("send", MONTH, root=tmp_path, env=env).exit_code == 0
    add_article(tmp_path, "suite", "La suite")  # dated today: the sent issue's rules take it
    result = run_cli("build-issue", MONTH, root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[1:3] == [
        "  1. Bienvenue dans Cœur, de Lyon (Nouvelles, Cœur, de Lyon)",
        "  the articles it was sent with (state/newsletter.db)",
    ]
    result = run_cli("new-issue", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[1:] == [
        "It would contain 1 article(s), as of today:",
        "  La suite (suite)",
    ]
    assert run_cli("build-issue", f"{MONTH}-2", root=tmp_path).exit_code == 0
    result = run_cli("archive", root=tmp_path)
    assert (result.exit_code, result.stderr) == (0, "")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Bienvenue dans" in index and "La suite" not in index
