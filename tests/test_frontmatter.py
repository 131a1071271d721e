"""Front matter as Hugo and Jekyll write it builds as it is; drafts and tags in issues."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import RunCli
from test_content import catalog, errors, write_article

from newsletter.errors import ContentError

HUGO = """title: "Fiche Google : le guide"
date: 2026-11-03T10:30:00+01:00
lastmod: 2026-11-04T08:00:00+01:00
draft: false
description: "Tout sur la fiche."
categories: ["SEO", "Local"]
tags: ["google", "local"]
author: "Claire Fontaine"
slug: fiche-google-hugo
url: "https://blog.example/fiche-google/"
aliases: ["/old/fiche"]
weight: 10
toc: true
"""

JEKYLL = """layout: post
title: "Instagram en hiver"
date: 2026-11-02 23:30:00 +0100
categories: Réseaux
tags: instagram hiver
author: erwan
permalink: /blog/instagram-hiver/
comments: true
"""


def test_a_hugo_post_builds_as_it_is(newsletter_root: Path) -> None:
    write_article(newsletter_root, "fiche.md", HUGO)
    article = catalog(newsletter_root).articles["fiche-google-hugo"]
    assert (article.title, article.category, article.author.key, article.date) == (
        "Fiche Google : le guide", "SEO", "claire", dt.date(2026, 11, 3)
    )
    assert (article.summary, article.tags, article.draft) == (
        "Tout sur la fiche.", ("google", "local"), False
    )


def test_a_jekyll_post_builds_as_it_is_with_its_date_in_its_own_zone(
    newsletter_root: Path,
) -> None:
    write_article(newsletter_root, "2026-11-02-instagram-hiver.md", JEKYLL)
    # Jekyll's file name is the date, then the slug: the slug is the name without the date.
    article = catalog(newsletter_root).articles["instagram-hiver"]
    assert (article.category, article.author.key, article.tags) == (
        "Réseaux", "erwan", ("instagram", "hiver")
    )
    assert article.date == dt.date(2026, 11, 2)  # 23:30 +0100 is still the 2nd where written


def test_category_wins_over_categories(newsletter_root: Path) -> None:
    write_article(newsletter_root, "x.md", HUGO + 'category: "Local"\n')
    assert catalog(newsletter_root).articles["fiche-google-hugo"].category == "Local"


def test_every_error_of_one_file_in_one_run(newsletter_root: Path) -> None:
    front = HUGO.replace("weight: 10", "poids: 10").replace("draft: false", "draft: peut-être")
    write_article(newsletter_root, "fiche.md", front)
    found = errors(newsletter_root)
    assert all(isinstance(e, ContentError) for e in found)
    assert [(e.path, e.line, e.field, e.message) for e in found] == [
        ("content/articles/fiche.md", 5, "draft",
         "Input should be a valid boolean, unable to interpret input"),
        ("content/articles/fiche.md", 13, "poids", "unknown field"),
    ]


@pytest.fixture
def with_draft(newsletter_root: Path) -> Path:
    write_article(newsletter_root, "brouillon-hugo.md", HUGO.replace("draft: false", "draft: true"))
    return newsletter_root


def test_a_draft_is_left_out_and_the_build_says_so(with_draft: Path, run_cli: RunCli) -> None:
    (with_draft / "issues" / "2026-12.toml").write_text(
        'subject = "S"\npreheader = "P"\ndate = 2026-12-01\n[select]\ntags = ["google"]\n',
        encoding="utf-8",
    )
    result = run_cli("build-issue", "2026-12", root=with_draft)
    assert result.exit_code == 1
    assert "match no article" in result.stderr  # the only article tagged google is a draft
    (with_draft / "issues" / "2026-12.toml").write_text(
        'subject = "S"\npreheader = "P"\ndate = 2026-12-01\n[select]\nlimit = 2\n',
        encoding="utf-8",
    )
    built = run_cli("build-issue", "2026-12", root=with_draft)
    assert built.exit_code == 0, built.stderr
    assert "  left out (draft: true): fiche-google-hugo" in built.stdout.splitlines()
    assert "Fiche Google" not in built.stdout


def test_select_by_tags(newsletter_root: Path, run_cli: RunCli) -> None:
    write_article(newsletter_root, "fiche.md", HUGO)
    (newsletter_root / "issues" / "2026-12.toml").write_text(
        'subject = "S"\npreheader = "P"\ndate = 2026-12-01\n[select]\ntags = ["local"]\n',
        encoding="utf-8",
    )
    built = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert built.exit_code == 0, built.stderr
    listed = [line for line in built.stdout.splitlines() if line.startswith("  1. ")]
    assert listed == ["  1. Fiche Google\u00a0: le guide (SEO, Claire Fontaine)"]


HUGO_TOML = """title = "Fiche Google : le guide"
date = 2026-11-03T10:30:00+01:00
draft = false
description = "Tout sur la fiche."
categories = ["SEO", "Local"]
tags = ["google", "local"]
author = "Claire Fontaine"
weight = 10
"""


def test_a_hugo_post_with_toml_front_matter_builds_as_it_is(newsletter_root: Path) -> None:
    """`hugo new` writes TOML between `+++` lines: it was `no front matter`."""
    path = newsletter_root / "content" / "articles" / "fiche-toml.md"
    path.write_text(f"+++\n{HUGO_TOML}+++\nUn texte.\n", encoding="utf-8")
    article = catalog(newsletter_root).articles["fiche-toml"]
    assert (article.title, article.category, article.author.key, article.date) == (
        "Fiche Google : le guide", "SEO", "claire", dt.date(2026, 11, 3)
    )
    assert (article.summary, article.tags) == ("Tout sur la fiche.", ("google", "local"))
    path.write_text(f"+++\n{HUGO_TOML.replace('draft = false', 'draft = peut-être')}+++\nx\n",
                    encoding="utf-8")
    (error,) = errors(newsletter_root)
    assert (error.path, error.line) == ("content/articles/fiche-toml.md", 4)
    assert error.message.startswith("front matter is not valid TOML: ")
    path.write_text(f"+++\n{HUGO_TOML.replace('weight', 'poids')}+++\nx\n", encoding="utf-8")
    (error,) = errors(newsletter_root)
    assert (error.line, error.field, error.message) == (9, "poids", "unknown field")


def test_jekyll_categories_as_words_give_the_first_word(newsletter_root: Path) -> None:
    write_article(newsletter_root, "graines.md", JEKYLL.replace("Réseaux", "jardin graines"))
    assert catalog(newsletter_root).articles["graines"].category == "jardin"


@pytest.mark.parametrize("fence", ["---", "+++"])
def test_front_matter_without_its_closing_line_says_so(newsletter_root: Path, fence: str) -> None:
    """It said `no front matter (start the file with a '---' line…)` to a file that did."""
    path = newsletter_root / "content" / "articles" / "ouverte.md"
    path.write_text(f"{fence}\ntitle: Ouverte\n\nLe texte.\n", encoding="utf-8")
    (error,) = errors(newsletter_root)
    assert str(error) == (
        f"content/articles/ouverte.md:1: the front matter has no closing '{fence}' line (end "
        f"the front matter with a '{fence}' line, then write the article)"
    )


def test_a_key_written_twice_is_an_error_naming_its_second_line(newsletter_root: Path) -> None:
    """PyYAML kept the last `title:` silently: the issue showed one the writer did not mean."""
    write_article(newsletter_root, "deux.md", JEKYLL.replace("layout: post", "title: Premier"))
    (error,) = errors(newsletter_root)
    assert str(error) == (
        "content/articles/deux.md:3: front matter: 'title' is written twice (keep one "
        "of the two lines)"
    )
