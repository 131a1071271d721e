"""Issue files and the articles they resolve to, in the order the email shows them."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import snapshot

from newsletter.compose.content import load_catalog
from newsletter.compose.issue import Issue, resolve_issue
from newsletter.errors import IssueError, NewsletterError
from newsletter.layout import Layout

# ---------------------------------------------------------------------------------------------
# The selection rules of README.md ("Issue files"), computed here from the front matter and the
# issue files alone, so that the tests do not take the code's own answer as the expectation.


def articles_meta(root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "content" / "articles").glob("*.md")):
        m = re.match(r"\A---\n(.*?)\n---\n", path.read_text(encoding="utf-8"), re.S)
        assert m, path
        meta = yaml.safe_load(m.group(1))
        out[meta.get("slug", path.stem)] = meta
    return out


def issue_specs(root: Path) -> dict[str, dict[str, Any]]:
    return {
        p.stem: tomllib.loads(p.read_text(encoding="utf-8"))
        for p in sorted((root / "issues").glob("*.toml"))
    }


def matching(spec: dict[str, Any], meta: dict[str, dict[str, Any]]) -> list[str]:
    """Articles the [select] rules accept, newest first, before leaving any out or cutting."""
    rules = spec["select"]
    found = [
        slug
        for slug, m in meta.items()
        if ("categories" not in rules or m["category"] in rules["categories"])
        and ("since" not in rules or m["date"] >= rules["since"])
        and m["date"] <= spec["date"]
    ]
    return sorted(found, key=lambda s: (-meta[s]["date"].toordinal(), s))


def pick(spec: dict[str, Any], meta: dict[str, dict[str, Any]], used: set[str]) -> list[str]:
    if "articles" in spec:
        return list(spec["articles"])
    found = [s for s in matching(spec, meta) if s not in used]
    return found[: spec["select"].get("limit", len(found))]


def expected_selection(root: Path, issue_id: str) -> list[str]:
    """The slugs issue `issue_id` should have, in order."""
    meta, specs = articles_meta(root), issue_specs(root)
    spec = specs[issue_id]
    used: set[str] = set()
    if "select" in spec:
        earlier = sorted(
            (other["date"], other_id)
            for other_id, other in specs.items()
            if (other["date"], other_id) < (spec["date"], issue_id)
        )
        for _date, other_id in earlier:
            used |= set(pick(specs[other_id], meta, used))
    return pick(spec, meta, used)


# ---------------------------------------------------------------------------------------------


def resolve(root: Path, issue_id: str, *, language: str = "fr") -> Issue:
    layout = Layout.at(root)
    return resolve_issue(layout, issue_id, load_catalog(layout), language=language)


def slugs(issue: Issue) -> list[str]:
    return [a.slug for a in issue.articles]


def edit_issue(root: Path, issue_id: str, pattern: str, replacement: str) -> None:
    path = root / "issues" / f"{issue_id}.toml"
    text, n = re.subn(pattern, replacement, path.read_text(encoding="utf-8"), flags=re.M)
    assert n == 1, (pattern, text)
    path.write_text(text, encoding="utf-8")


def add_issue(root: Path, issue_id: str, toml: str) -> None:
    (root / "issues" / f"{issue_id}.toml").write_text(toml, encoding="utf-8")


def add_article(root: Path, slug: str, *, category: str, date: str) -> None:
    (root / "content" / "articles" / f"{slug}.md").write_text(
        f'---\ntitle: "Article {slug}"\ncategory: "{category}"\nauthor: erwan\ndate: {date}\n'
        f"---\nLe texte de {slug}.\n",
        encoding="utf-8",
    )


def test_rules_pick_newest_first_in_the_categories_since_the_date_leaving_out_2026_11(
    newsletter_root: Path,
) -> None:
    specs, meta = issue_specs(newsletter_root), articles_meta(newsletter_root)
    rules = specs["2026-12"]["select"]
    expected = expected_selection(newsletter_root, "2026-12")

    assert slugs(resolve(newsletter_root, "2026-12")) == expected
    # Each rule matters in the sample: were it ignored, the answer would differ.
    assert {meta[s]["category"] for s in expected} <= set(rules["categories"])
    assert any(m["category"] not in rules["categories"] for m in meta.values())
    assert all(meta[s]["date"] >= rules["since"] for s in expected)
    assert [meta[s]["date"] for s in expected] == sorted(
        (meta[s]["date"] for s in expected), reverse=True
    )
    in_november = set(specs["2026-11"]["articles"]) & set(matching(specs["2026-12"], meta))
    assert in_november, "the sample should have an article both issues' rules accept"
    assert not in_november & set(expected)
    assert len(expected) == rules["limit"]


def test_limit_cuts_after_the_newest(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-12", r"^limit = \d+$", "limit = 2")
    expected = expected_selection(newsletter_root, "2026-12")
    assert len(expected) == 2
    assert slugs(resolve(newsletter_root, "2026-12")) == expected
    edit_issue(newsletter_root, "2026-12", r"^limit = 2$", "limit = 1")
    assert slugs(resolve(newsletter_root, "2026-12")) == expected[:1]


def test_since_leaves_out_older_articles(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-12", r"^since = .*$", "since = 2026-10-01")
    expected = expected_selection(newsletter_root, "2026-12")
    meta = articles_meta(newsletter_root)
    assert expected and all(meta[s]["date"] >= dt.date(2026, 10, 1) for s in expected)
    assert slugs(resolve(newsletter_root, "2026-12")) == expected


def test_without_categories_every_category_is_taken(newsletter_root: Path) -> None:
    add_article(newsletter_root, "bilan-annuel", category="Stratégie digitale", date="2026-12-01")
    assert "bilan-annuel" not in slugs(resolve(newsletter_root, "2026-12"))
    edit_issue(newsletter_root, "2026-12", r"^categories = .*$", "")
    expected = expected_selection(newsletter_root, "2026-12")
    assert expected[0] == "bilan-annuel"
    assert slugs(resolve(newsletter_root, "2026-12")) == expected


def test_articles_dated_after_the_issue_are_not_taken(newsletter_root: Path) -> None:
    add_article(newsletter_root, "apres-le-numero", category="SEO", date="2026-12-20")
    add_article(newsletter_root, "le-jour-du-numero", category="SEO", date="2026-12-15")
    got = slugs(resolve(newsletter_root, "2026-12"))
    assert got[0] == "le-jour-du-numero" and "apres-le-numero" not in got
    assert got == expected_selection(newsletter_root, "2026-12")


def test_same_date_articles_are_ordered_by_slug(newsletter_root: Path) -> None:
    add_article(newsletter_root, "b-meme-jour", category="SEO", date="2026-12-01")
    add_article(newsletter_root, "a-meme-jour", category="SEO", date="2026-12-01")
    assert slugs(resolve(newsletter_root, "2026-12"))[:2] == ["a-meme-jour", "b-meme-jour"]


def test_earlier_rule_based_issue_is_left_out_too(newsletter_root: Path) -> None:
    add_issue(
        newsletter_root,
        "2026-10",
        'subject = "Octobre"\npreheader = "p"\ndate = 2026-10-30\n'
        '[select]\ncategories = ["SEO"]\nlimit = 1\n',
    )
    october = expected_selection(newsletter_root, "2026-10")
    assert slugs(resolve(newsletter_root, "2026-10")) == october
    december = slugs(resolve(newsletter_root, "2026-12"))
    assert december == expected_selection(newsletter_root, "2026-12")
    assert not set(october) & set(december)


def test_later_issue_does_not_take_articles_away(newsletter_root: Path) -> None:
    before = slugs(resolve(newsletter_root, "2026-12"))
    add_issue(
        newsletter_root,
        "2027-01",
        f'subject = "Janvier"\npreheader = "p"\ndate = 2027-01-12\narticles = ["{before[0]}"]\n',
    )
    assert slugs(resolve(newsletter_root, "2026-12")) == before


def test_explicit_list_keeps_its_order(newsletter_root: Path) -> None:
    listed = issue_specs(newsletter_root)["2026-11"]["articles"]
    meta = articles_meta(newsletter_root)
    by_date = sorted(listed, key=lambda s: meta[s]["date"], reverse=True)
    assert listed not in (by_date, sorted(listed)), "the sample's order is neither date nor slug"
    assert slugs(resolve(newsletter_root, "2026-11")) == listed

    reordered = list(reversed(listed))
    toml_list = "[" + ", ".join(f'"{s}"' for s in reordered) + "]"
    edit_issue(newsletter_root, "2026-11", r"^articles = .*$", f"articles = {toml_list}")
    assert slugs(resolve(newsletter_root, "2026-11")) == reordered


def test_explicit_list_may_repeat_an_article_of_an_earlier_issue(newsletter_root: Path) -> None:
    december = slugs(resolve(newsletter_root, "2026-12"))
    add_issue(
        newsletter_root,
        "2027-01",
        f'subject = "Janvier"\npreheader = "p"\ndate = 2027-01-12\narticles = ["{december[0]}"]\n',
    )
    assert slugs(resolve(newsletter_root, "2027-01")) == [december[0]]


def test_explicit_list_builds_even_if_another_issue_file_is_broken(newsletter_root: Path) -> None:
    # Next month's half-written draft must not stop this month's issue.
    add_issue(newsletter_root, "2026-12", 'subject = "Décembre\n')
    assert slugs(resolve(newsletter_root, "2026-11")) == (
        issue_specs_without(newsletter_root, "2026-12")["2026-11"]["articles"]
    )


def issue_specs_without(root: Path, broken: str) -> dict[str, dict[str, Any]]:
    return {
        p.stem: tomllib.loads(p.read_text(encoding="utf-8"))
        for p in sorted((root / "issues").glob("*.toml"))
        if p.stem != broken
    }


def test_issue_fields_and_modes(newsletter_root: Path) -> None:
    specs = issue_specs(newsletter_root)
    for issue_id in ("2026-11", "2026-12"):
        issue = resolve(newsletter_root, issue_id)
        spec = specs[issue_id]
        assert (issue.id, issue.subject, issue.preheader, issue.date, issue.number) == (
            issue_id, spec["subject"], spec["preheader"], spec["date"], spec["number"]
        )
        assert issue.mode == spec["mode"]
        assert issue.source == f"issues/{issue_id}.toml"
    assert {resolve(newsletter_root, i).mode for i in ("2026-11", "2026-12")} == {"excerpt", "full"}


def test_language_comes_from_the_issue_else_from_the_settings(newsletter_root: Path) -> None:
    assert resolve(newsletter_root, "2026-11", language="fr").language == "fr"
    assert resolve(newsletter_root, "2026-11", language="en").language == "en"
    edit_issue(newsletter_root, "2026-11", r"^mode = .*$", 'mode = "excerpt"\nlanguage = "en"')
    assert resolve(newsletter_root, "2026-11", language="fr").language == "en"


# ---------------------------------------------------------------------------------------------
# Errors: each names the issue file, the line or field, and what to do.


def issue_error(root: Path, issue_id: str) -> NewsletterError:
    with pytest.raises(NewsletterError) as info:
        resolve(root, issue_id)
    return info.value


def line_of(root: Path, issue_id: str, needle: str) -> int:
    lines = (root / "issues" / f"{issue_id}.toml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if needle in line)


def test_unknown_slug_names_file_line_and_known_slugs(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-11", '"calendrier-editorial-instagram"', '"calendrier-insta"')
    error = issue_error(newsletter_root, "2026-11")
    assert isinstance(error, IssueError)
    assert error.message == "unknown article 'calendrier-insta'"
    assert (error.path, error.field) == ("issues/2026-11.toml", "articles")
    assert error.line == line_of(newsletter_root, "2026-11", "calendrier-insta")
    assert error.hint is not None
    assert all(slug in error.hint for slug in articles_meta(newsletter_root))


def test_unknown_issue_id_lists_the_known_ones(newsletter_root: Path) -> None:
    error = issue_error(newsletter_root, "2026-13")
    assert (error.path, error.message) == ("issues/2026-13.toml", "issue file not found")
    assert error.hint == "known issues: 2026-11, 2026-12"


def test_malformed_toml_names_the_line(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-11", r'^mode = "excerpt"$', 'mode = "excerpt')
    error = issue_error(newsletter_root, "2026-11")
    assert error.path == "issues/2026-11.toml"
    assert error.line == line_of(newsletter_root, "2026-11", "mode =")
    assert error.message.startswith("malformed TOML")


@pytest.mark.parametrize(
    ("pattern", "replacement", "field", "message"),
    [
        (r'^mode = "excerpt"$', 'mode = "court"', "mode", "'full' or 'excerpt'"),
        (r"^date = .*$", 'date = "24 novembre"', "date", "date"),
        (r"^subject = .*$", "", "subject", "missing"),
        (r"^number = 12$", 'number = 12\nnumero = 12', "numero", "unknown field"),
        (r"^articles = .*$", "articles = []", None, "`articles` is empty"),
        (r"^articles = (.*)$", "articles = \\1\n[select]\nlimit = 1", None, "not both"),
    ],
)
def test_bad_issue_field_is_named(
    newsletter_root: Path, pattern: str, replacement: str, field: str | None, message: str
) -> None:
    edit_issue(newsletter_root, "2026-11", pattern, replacement)
    error = issue_error(newsletter_root, "2026-11")
    assert isinstance(error, IssueError)
    assert error.path == "issues/2026-11.toml"
    assert error.field == field
    assert message in error.message
    assert error.hint


def test_unknown_category_in_rules(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-12", r'"SEO"\]', '"Référencement"]')
    error = issue_error(newsletter_root, "2026-12")
    assert error.message == "no article has category 'Référencement'"
    assert (error.field, error.line) == (
        "select.categories", line_of(newsletter_root, "2026-12", '"Référencement"')
    )
    categories = sorted({m["category"] for m in articles_meta(newsletter_root).values()})
    assert error.hint == "known: " + ", ".join(categories)


def test_rules_matching_nothing(newsletter_root: Path) -> None:
    edit_issue(newsletter_root, "2026-12", r"^since = .*$", "since = 2026-12-16")
    error = issue_error(newsletter_root, "2026-12")
    assert (error.path, error.field) == ("issues/2026-12.toml", "select")
    assert "match no article" in error.message


# ---------------------------------------------------------------------------------------------
# Earlier issues that pick nothing, or cannot pick, take nothing: they never stop another issue.


def test_an_earlier_issue_matching_nothing_takes_nothing(newsletter_root: Path) -> None:
    expected = expected_selection(newsletter_root, "2026-12")
    add_issue(
        newsletter_root,
        "2026-12-01",
        'subject = "Vide"\npreheader = "p"\ndate = 2026-12-01\n[select]\nsince = 2026-12-02\n',
    )
    assert slugs(resolve(newsletter_root, "2026-12")) == expected
    # Its own resolution is the error, naming its own file.
    error = issue_error(newsletter_root, "2026-12-01")
    assert (error.path, error.field) == ("issues/2026-12-01.toml", "select")


@pytest.mark.parametrize(
    "toml",
    [
        'articles = ["renamed-since"]\n',
        '[select]\ncategories = ["Gone"]\n',
    ],
)
def test_an_earlier_issue_that_cannot_pick_does_not_stop_a_later_one(
    newsletter_root: Path, toml: str
) -> None:
    expected = expected_selection(newsletter_root, "2026-12")
    add_issue(
        newsletter_root, "2026-12-01", f'subject = "S"\npreheader = "p"\ndate = 2026-12-01\n{toml}'
    )
    assert slugs(resolve(newsletter_root, "2026-12")) == expected


# ---------------------------------------------------------------------------------------------
# A sent issue is the articles it was sent with: its rules are not applied again.


@pytest.fixture
def december_sent(newsletter_root: Path, run_cli: Any, smtp_server: Any) -> list[str]:
    """2026-12 (rules) built and mailed to the sample list; the slugs it was sent with."""
    env = smtp_server.env()
    assert run_cli("build-issue", "2026-12", root=newsletter_root).exit_code == 0
    result = run_cli("send", "2026-12", root=newsletter_root, env=env)
    assert result.exit_code == 0, result.stderr
    built = json.loads((newsletter_root / "build" / "2026-12" / "manifest.json").read_text())
    sent: list[str] = built["articles"]
    assert sent == expected_selection(newsletter_root, "2026-12")
    return sent


def test_a_sent_issue_keeps_its_articles_and_later_ones_go_to_later_issues(
    newsletter_root: Path, december_sent: list[str], run_cli: Any
) -> None:
    add_article(newsletter_root, "bilan-seo", category="SEO", date="2026-12-10")
    add_article(newsletter_root, "fin-novembre", category="SEO", date="2026-11-30")
    # Its rules would now take the new article (newest first, limit 3)...
    assert expected_selection(newsletter_root, "2026-12")[0] == "bilan-seo"
    # ...but it was sent without it.
    issue = resolve(newsletter_root, "2026-12")
    assert (slugs(issue), issue.as_sent) == (december_sent, True)
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert (result.exit_code, result.stderr) == (0, "")
    assert "  the articles it was sent with (state/newsletter.db)" in result.stdout.splitlines()
    built = json.loads((newsletter_root / "build" / "2026-12" / "manifest.json").read_text())
    assert built["articles"] == december_sent
    # The next issue takes it; an unsent issue, even dated before, takes nothing sent.
    rules = '[select]\ncategories = ["Marketing social", "SEO"]\n'
    for issue_id, date in (("2027-01", "2027-01-12"), ("2026-12-a", "2026-12-01")):
        add_issue(
            newsletter_root, issue_id, f'subject = "S"\npreheader = "p"\ndate = {date}\n{rules}'
        )
    early = slugs(resolve(newsletter_root, "2026-12-a"))
    assert early == ["fin-novembre"]
    january = slugs(resolve(newsletter_root, "2027-01"))
    assert january[0] == "bilan-seo"
    assert not set(january) & (set(december_sent) | set(early))


def test_a_sent_issue_whose_article_is_gone_is_not_rebuilt(
    newsletter_root: Path, december_sent: list[str], run_cli: Any
) -> None:
    gone = december_sent[1]
    (newsletter_root / "content" / "articles" / f"{gone}.md").unlink()
    before = snapshot(newsletter_root / "build")
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: issues/2026-12.toml: articles: this issue was sent with '{gone}', no longer in "
        "content/articles/ (put the article back (same slug): a sent issue is rebuilt with "
        "exactly the articles it was sent with)\n"
    )
    assert snapshot(newsletter_root / "build") == before


def test_a_sent_explicit_list_edited_afterwards_is_not_used(
    newsletter_root: Path, run_cli: Any, smtp_server: Any
) -> None:
    listed = issue_specs(newsletter_root)["2026-11"]["articles"]
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    assert run_cli("send", "2026-11", root=newsletter_root, env=smtp_server.env()).exit_code == 0
    edit_issue(newsletter_root, "2026-11", r"^articles = .*$", f'articles = ["{listed[0]}"]')
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert (result.exit_code, result.stderr) == (0, "")
    assert (
        "  the articles it was sent with (state/newsletter.db); issues/2026-11.toml's `articles` "
        "list differs and is ignored"
    ) in result.stdout.splitlines()
    assert slugs(resolve(newsletter_root, "2026-11")) == listed


def test_a_send_begun_before_lists_were_recorded_keeps_its_build_articles(
    newsletter_root: Path, december_sent: list[str]
) -> None:
    """A journal written before `runs.articles`: the build the send is bound to tells."""
    db = sqlite3.connect(newsletter_root / "state" / "newsletter.db")
    with db:
        db.execute("UPDATE runs SET articles = NULL")
    db.close()
    add_article(newsletter_root, "bilan-seo", category="SEO", date="2026-12-10")
    assert slugs(resolve(newsletter_root, "2026-12")) == december_sent
    # A build the send is not bound to tells nothing: the rules again.
    manifest = newsletter_root / "build" / "2026-12" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "content_hash": "0" * 64}))
    assert slugs(resolve(newsletter_root, "2026-12")) == expected_selection(
        newsletter_root, "2026-12"
    )


def test_a_sent_list_naming_a_draft_is_not_taken_for_an_edited_one(
    newsletter_root: Path, run_cli: Any, smtp_server: Any
) -> None:
    add_article(newsletter_root, "brouillon", category="SEO", date="2026-11-20")
    draft = newsletter_root / "content" / "articles" / "brouillon.md"
    draft.write_text(draft.read_text().replace("author: erwan\n", "author: erwan\ndraft: true\n"))
    edit_issue(newsletter_root, "2026-11", r'^articles = \[', 'articles = ["brouillon", ')
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    assert run_cli("send", "2026-11", root=newsletter_root, env=smtp_server.env()).exit_code == 0
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert (result.exit_code, result.stderr) == (0, "")
    assert "  the articles it was sent with (state/newsletter.db)" in result.stdout.splitlines()
