"""Articles and authors: what `content` reads from the folder, and how it says what is wrong."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsletter.compose.content import Catalog, load_catalog
from newsletter.errors import ContentError, ErrorGroup, NewsletterError
from newsletter.layout import Layout

GOOD_FRONT = 'title: "Un titre d’essai"\ncategory: "SEO"\nauthor: claire\ndate: 2026-10-01\n'


def front_matter(path: Path) -> tuple[dict[str, Any], str]:
    """The front matter and body of an article, read independently of `compose.content`."""
    text = path.read_text(encoding="utf-8")
    m = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, re.S)
    assert m, path
    return yaml.safe_load(m.group(1)), m.group(2)


def write_article(root: Path, name: str, front: str, body: str = "Un texte.\n") -> Path:
    path = root / "content" / "articles" / name
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


def catalog(root: Path) -> Catalog:
    return load_catalog(Layout.at(root))


def errors(root: Path) -> list[NewsletterError]:
    with pytest.raises(NewsletterError) as info:
        catalog(root)
    exc = info.value
    return exc.errors if isinstance(exc, ErrorGroup) else [exc]


def test_every_sample_article_is_read_as_its_front_matter_says(newsletter_root: Path) -> None:
    authors = tomllib.loads((newsletter_root / "content" / "authors.toml").read_text("utf-8"))
    paths = sorted((newsletter_root / "content" / "articles").glob("*.md"))
    articles = catalog(newsletter_root).articles
    assert len(paths) == len(articles) >= 6
    for path in paths:
        meta, _body = front_matter(path)
        article = articles[meta.get("slug", path.stem)]
        assert article.title == meta["title"]
        assert article.category == meta["category"]
        assert article.date == meta["date"]
        assert article.url == meta.get("url")
        assert article.author.key == meta["author"]
        assert article.author.name == authors[meta["author"]]["name"]
        assert article.author.bio == authors[meta["author"]]["bio"]
        assert article.source == f"content/articles/{path.name}"
        if "summary" in meta:
            assert article.summary == meta["summary"]


def test_summary_falls_back_to_the_first_paragraph_of_a_sample_article(
    newsletter_root: Path,
) -> None:
    path = newsletter_root / "content" / "articles" / "linkedin-page-entreprise-ton-juste.md"
    meta, body = front_matter(path)
    assert "summary" not in meta
    first = next(p for p in body.split("\n\n") if p.strip() and not p.startswith("#"))
    article = catalog(newsletter_root).articles["linkedin-page-entreprise-ton-juste"]
    assert article.summary == first.strip().replace("\n", " ")  # non-breaking spaces kept
    assert "«" in article.summary and "’" in article.summary


def test_summary_fallback_is_plain_text_and_skips_headings(newsletter_root: Path) -> None:
    write_article(
        newsletter_root,
        "sans-resume.md",
        GOOD_FRONT,
        "## Un intertitre\n\nPremier paragraphe, avec **du gras**\net [un lien](https://x.example/a).\n"
        "\nSecond paragraphe.\n",
    )
    article = catalog(newsletter_root).articles["sans-resume"]
    assert article.summary == "Premier paragraphe, avec du gras et un lien (https://x.example/a)."


def test_slug_falls_back_to_the_file_name(newsletter_root: Path) -> None:
    write_article(newsletter_root, "mon-article-2026.md", GOOD_FRONT)
    article = catalog(newsletter_root).articles["mon-article-2026"]
    assert article.title == "Un titre d’essai"


def test_slug_in_front_matter_wins_over_the_file_name(newsletter_root: Path) -> None:
    write_article(newsletter_root, "brouillon-3.md", GOOD_FRONT + "slug: titre-final\n")
    articles = catalog(newsletter_root).articles
    assert "titre-final" in articles and "brouillon-3" not in articles


def test_body_is_kept_as_html_and_as_text(newsletter_root: Path) -> None:
    write_article(newsletter_root, "corps.md", GOOD_FRONT, "## Partie\n\n1. un\n2. deux\n")
    article = catalog(newsletter_root).articles["corps"]
    assert "<h2>Partie</h2>" in article.body_html and "<ol>" in article.body_html
    assert article.body_text.splitlines() == ["Partie", "------", "", "1. un", "2. deux"]


# (file, front matter, expected message, line, field, words of the hint). Front matter starts
# on line 2 of the file.
BAD_ARTICLES = [
    pytest.param(
        GOOD_FRONT.replace('title: "Un titre d’essai"\n', ""),
        "front matter has no 'title'", 1, None, "title:", id="no-title",
    ),
    pytest.param(
        GOOD_FRONT.replace('category: "SEO"\n', ""),
        "front matter has no 'category'", 1, None, "category:", id="no-category",
    ),
    pytest.param(
        GOOD_FRONT.replace("author: claire\n", ""),
        "front matter has no 'author'", 1, None, "authors.toml", id="no-author",
    ),
    pytest.param(
        GOOD_FRONT.replace("date: 2026-10-01\n", ""),
        "front matter has no 'date'", 1, None, "YYYY-MM-DD", id="no-date",
    ),
    pytest.param(
        GOOD_FRONT.replace("claire", "clara"),
        "unknown author 'clara'", 4, "author", "known: claire, erwan", id="unknown-author",
    ),
    pytest.param(
        GOOD_FRONT.replace("2026-10-01", "2026-13-45"),
        "month", 5, "date", "YYYY-MM-DD", id="month-13",
    ),
    pytest.param(
        GOOD_FRONT.replace("2026-10-01", "2026-02-30"),
        "day", 5, "date", "YYYY-MM-DD", id="february-30",
    ),
    pytest.param(
        GOOD_FRONT.replace("2026-10-01", "2026-10-01 25:00"),
        "", 5, "date", "YYYY-MM-DD", id="datetime",
    ),
    pytest.param(
        GOOD_FRONT.replace("2026-10-01", "'1er octobre'"),
        "valid date", 5, "date", "YYYY-MM-DD", id="words-for-a-date",
    ),
    pytest.param(
        GOOD_FRONT.replace('"Un titre d’essai"', "Le SEO: local"),
        "not valid YAML", 2, None, "quote", id="malformed-yaml",
    ),
    pytest.param(
        GOOD_FRONT + "categorie: SEO\n",
        "unknown field", 6, "categorie", "remove it", id="unknown-field",
    ),
    pytest.param(
        GOOD_FRONT + 'image: "https://x.example/a.jpg"\n',
        "image has no image_alt", 6, "image_alt", "image_alt:", id="image-without-alt",
    ),
    pytest.param(
        GOOD_FRONT + 'image: "https://x.example/a.jpg"\nimage_alt: ""\n',
        "image has no image_alt", 6, "image_alt", "image_alt:", id="image-with-empty-alt",
    ),
    pytest.param(
        GOOD_FRONT + "slug: Mon_Article\n",
        "lowercase", 6, "slug", "lowercase", id="bad-slug",
    ),
]


@pytest.mark.parametrize(("front", "message", "line", "field", "hint"), BAD_ARTICLES)
def test_a_bad_article_is_one_error_naming_file_line_field_and_hint(
    newsletter_root: Path, front: str, message: str, line: int, field: str | None, hint: str
) -> None:
    write_article(newsletter_root, "a-corriger.md", front)
    (error,) = errors(newsletter_root)
    assert isinstance(error, ContentError)
    assert error.path == "content/articles/a-corriger.md"
    assert message in error.message
    assert (error.line, error.field) == (line, field)
    assert error.hint is not None and hint in error.hint


def test_article_without_front_matter(newsletter_root: Path) -> None:
    (newsletter_root / "content" / "articles" / "brouillon.md").write_text(
        "# Juste un brouillon\n\nSans en-tête.\n", encoding="utf-8"
    )
    (error,) = errors(newsletter_root)
    assert (error.path, error.line, error.message) == (
        "content/articles/brouillon.md", 1, "no front matter"
    )
    assert error.hint is not None and "---" in error.hint


def test_article_with_an_empty_body(newsletter_root: Path) -> None:
    write_article(newsletter_root, "vide.md", GOOD_FRONT, "\n\n")
    (error,) = errors(newsletter_root)
    assert (error.path, error.line, error.message) == (
        "content/articles/vide.md", 7, "the article has no text"
    )


def test_article_that_is_not_utf8(newsletter_root: Path) -> None:
    path = write_article(newsletter_root, "latin1.md", GOOD_FRONT)
    path.write_bytes(path.read_text("utf-8").encode("cp1252", errors="replace"))
    (error,) = errors(newsletter_root)
    assert error.path == "content/articles/latin1.md" and "UTF-8" in error.message


def test_two_articles_with_one_slug_name_both_files(newsletter_root: Path) -> None:
    front = GOOD_FRONT + "slug: seo-local-commerces-parisiens\n"
    write_article(newsletter_root, "zz-copie.md", front)
    (error,) = errors(newsletter_root)
    assert error.path == "content/articles/zz-copie.md" and error.field == "slug"
    assert "content/articles/seo-local-commerces-parisiens.md" in error.message


def test_every_bad_article_is_reported_in_one_pass_in_file_order(newsletter_root: Path) -> None:
    write_article(newsletter_root, "b-sans-titre.md", GOOD_FRONT.replace("title:", "titre:"))
    write_article(newsletter_root, "a-mauvais-auteur.md", GOOD_FRONT.replace("claire", "zoe"))
    found = errors(newsletter_root)
    assert [(e.path, e.message) for e in found] == [
        ("content/articles/a-mauvais-auteur.md", "unknown author 'zoe'"),
        # All of a file's errors, in one run: the misspelt key and the title it leaves out.
        ("content/articles/b-sans-titre.md", "front matter has no 'title'"),
        ("content/articles/b-sans-titre.md", "unknown field"),
    ]


def test_malformed_authors_toml_names_its_line(newsletter_root: Path) -> None:
    path = newsletter_root / "content" / "authors.toml"
    lines = path.read_text("utf-8").splitlines()
    n = lines.index("[claire]")
    lines[n] = "[claire"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (error,) = errors(newsletter_root)
    assert (error.path, error.line) == ("content/authors.toml", n + 1)
    assert error.message.startswith("malformed TOML")


def test_author_without_bio_names_the_author_and_field(newsletter_root: Path) -> None:
    path = newsletter_root / "content" / "authors.toml"
    text = path.read_text("utf-8")
    path.write_text(re.sub(r"(?m)^bio = .*\n", "", text, count=1), encoding="utf-8")
    (error,) = errors(newsletter_root)
    first = next(line for line in text.splitlines() if line.startswith("["))
    assert error.path == "content/authors.toml"
    assert error.field == f"{first.strip('[]')}.bio"
    assert error.line == text.splitlines().index(first) + 1


def test_missing_authors_toml(newsletter_root: Path) -> None:
    (newsletter_root / "content" / "authors.toml").unlink()
    (error,) = errors(newsletter_root)
    assert (error.path, error.message) == ("content/authors.toml", "file not found")
