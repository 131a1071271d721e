"""Links and images in the content are http(s) only (issue 13, defect 10), and content files
that are not UTF-8 are one error naming the file (defect 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_content import GOOD_FRONT, catalog, errors, write_article

from newsletter.errors import ContentError

BAD = [
    "javascript:alert(document.domain)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "https://",
]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("field", ["url", "image"])
def test_an_article_link_or_image_that_is_not_http_is_refused(
    newsletter_root: Path, field: str, value: str
) -> None:
    extra = 'image_alt: "Une image"\n' if field == "image" else ""
    write_article(newsletter_root, "piege.md", GOOD_FRONT + f"{field}: {value!r}\n" + extra)
    (error,) = errors(newsletter_root)
    assert isinstance(error, ContentError)
    assert (error.path, error.field, error.line) == ("content/articles/piege.md", field, 6)
    assert "http" in error.message


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("field", ["url", "avatar"])
def test_an_author_link_or_avatar_that_is_not_http_is_refused(
    newsletter_root: Path, field: str, value: str
) -> None:
    path = newsletter_root / "content" / "authors.toml"
    escaped = value.replace("\t", "\\t")
    path.write_text(
        path.read_text("utf-8") + f'\n[pirate]\nname = "P"\nbio = "B"\n{field} = "{escaped}"\n',
        encoding="utf-8",
    )
    (error,) = errors(newsletter_root)
    assert (error.path, error.field) == ("content/authors.toml", f"pirate.{field}")
    assert "http" in error.message


def test_http_https_and_mailto_links_pass(newsletter_root: Path) -> None:
    write_article(
        newsletter_root, "bon.md",
        GOOD_FRONT + 'url: "mailto:redaction@example.fr"\nimage: "http://x.example/a.png"\n'
        'image_alt: "A"\n',
    )
    article = catalog(newsletter_root).articles["bon"]
    assert (article.url, article.image) == ("mailto:redaction@example.fr", "http://x.example/a.png")


def test_a_mailto_image_is_refused(newsletter_root: Path) -> None:
    write_article(
        newsletter_root, "img.md", GOOD_FRONT + 'image: "mailto:a@b.fr"\nimage_alt: "A"\n'
    )
    (error,) = errors(newsletter_root)
    assert error.field == "image"


def test_a_windows_1252_authors_file_is_one_error_naming_it(newsletter_root: Path) -> None:
    path = newsletter_root / "content" / "authors.toml"
    path.write_bytes(path.read_text("utf-8").replace("’", "'").encode("cp1252") + "é\n".encode(
        "cp1252"))
    (error,) = errors(newsletter_root)
    assert error.path == "content/authors.toml"
    assert "not UTF-8" in error.message
    assert error.hint is not None and "UTF-8" in error.hint


def test_a_relative_image_is_resolved_against_the_articles_url(newsletter_root: Path) -> None:
    """Hugo and Jekyll posts often give `image: img/photo.jpg`: it was refused, though the
    body's relative images are resolved against `url`."""
    write_article(
        newsletter_root, "photo.md",
        GOOD_FRONT + 'url: "https://blog.example/2026/photo/"\nimage: "img/photo.jpg"\n'
        'image_alt: "Une photo"\n',
    )
    article = catalog(newsletter_root).articles["photo"]
    assert article.image == "https://blog.example/2026/photo/img/photo.jpg"
    write_article(newsletter_root, "photo.md", GOOD_FRONT + 'image: "/img/photo.jpg"\n'
                  'image_alt: "Une photo"\n')
    (error,) = errors(newsletter_root)
    assert str(error) == (
        "content/articles/photo.md:6: image: relative address '/img/photo.jpg' cannot be "
        "resolved (set `url:` in the front matter or NEWSLETTER_SITE_URL, or write the full "
        "https:// address)"
    )
