"""What a reader sees in build/<id>/email.html and email.txt, parsed rather than diffed.

Expectations come from the sources (front matter, Markdown bodies, issue files, the template's
<mj-style>), never from an earlier output.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import yaml
from click.testing import CliRunner
from conftest import THEME
from test_issue import expected_selection

from newsletter.cli import app

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEPARATOR = "\n" + "=" * 72 + "\n"
MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "en": "January February March April May June July August September October November December",
}

EXTRA_ISSUES = {
    # Dated after 2026-12 so that they do not change its rule-based selection.
    "2027-01-court": (
        'subject = "Janvier : deux articles sans résumé"\npreheader = "p"\ndate = 2027-01-05\n'
        'mode = "excerpt"\n'
        'articles = ["seo-local-commerces-parisiens", "linkedin-page-entreprise-ton-juste"]\n'
    ),
    "2027-02-en": (
        'subject = "February: the English edition"\npreheader = "In English"\n'
        'date = 2027-02-01\nlanguage = "en"\nmode = "excerpt"\n'
        'articles = ["audit-digital-petite-entreprise", "calendrier-editorial-instagram"]\n'
    ),
    "2027-03-markdown": (
        'subject = "Mars : tout le Markdown"\npreheader = "p"\ndate = 2027-03-01\nmode = "full"\n'
        'articles = ["tout-le-markdown"]\n'
    ),
}


@dataclass
class Email:
    issue_id: str
    spec: dict[str, Any]
    slugs: list[str]
    raw: bytes
    doc: lxml.html.HtmlElement
    text: str

    @property
    def language(self) -> str:
        return str(self.spec.get("language", "fr"))


def words(text: str) -> str:
    """Whitespace (line wraps, non-breaking spaces) folded: what reads the same."""
    return " ".join(text.split())


def front_matter(path: Path) -> tuple[dict[str, Any], str]:
    m = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", path.read_text(encoding="utf-8"), re.S)
    assert m, path
    return yaml.safe_load(m.group(1)), m.group(2)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("render") / "letter"
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copy(FIXTURES / "articles" / "tout-le-markdown.md", root / "content" / "articles")
    for issue_id, toml in EXTRA_ISSUES.items():
        (root / "issues" / f"{issue_id}.toml").write_text(toml, encoding="utf-8")
    # Module-scoped, so built before conftest's per-test cleaning of NEWSLETTER_* variables.
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("NEWSLETTER_")})
    for issue_id in ("2026-11", "2026-12", *EXTRA_ISSUES):
        result = runner.invoke(app, ["build-issue", issue_id, "--root", str(root)])
        assert result.exit_code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def articles(root: Path) -> dict[str, tuple[dict[str, Any], str]]:
    out = {}
    for path in (root / "content" / "articles").glob("*.md"):
        meta, body = front_matter(path)
        out[meta.get("slug", path.stem)] = (meta, body)
    return out


@pytest.fixture(scope="module")
def authors(root: Path) -> dict[str, dict[str, str]]:
    return tomllib.loads((root / "content" / "authors.toml").read_text(encoding="utf-8"))


def email(root: Path, issue_id: str) -> Email:
    out = root / "build" / issue_id
    raw = (out / "email.html").read_bytes()
    spec = tomllib.loads((root / "issues" / f"{issue_id}.toml").read_text(encoding="utf-8"))
    return Email(
        issue_id=issue_id,
        spec=spec,
        slugs=expected_selection(root, issue_id),
        raw=raw,
        doc=lxml.html.document_fromstring(raw.decode("utf-8")),
        text=(out / "email.txt").read_text(encoding="utf-8"),
    )


def article_html(doc: lxml.html.HtmlElement, slug: str) -> tuple[Any, Any]:
    """The article's section (category, title, body) and the signature section after it."""
    h1 = doc.get_element_by_id(slug)
    (section,) = h1.xpath("ancestor::div[parent::div[parent::body]]")
    signature = next(s for s in section.itersiblings() if s.tag == "div")
    return section, signature


def article_text(mail: Email) -> dict[str, str]:
    """The text part cut at its separator lines: head, one block per article, footer."""
    blocks = mail.text.split(SEPARATOR)
    assert len(blocks) == len(mail.slugs) + 2
    return dict(zip(mail.slugs, blocks[1:-1], strict=True))


BLOCKS = frozenset(
    (
        "div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ol", "ul", "blockquote",
        "table", "tbody", "tr", "td", "br", "title",
    )
)


def seen(el: Any) -> str:
    """The words of an element as a reader sees them: blocks apart, inline runs joined."""
    el = copy.deepcopy(el)
    for e in el.iter():
        if e.tag in BLOCKS:
            e.text, e.tail = " " + (e.text or ""), " " + (e.tail or "")
    return words(el.text_content())


def french_spacing(text: str) -> str:
    """A title as a French issue shows it: no-break spaces before : ; ! ? » and after «."""
    return re.sub(r" ([:;!?»])", "\u00a0\\1", text).replace("« ", "«\u00a0")


def long_date(value: dt.date, language: str) -> str:
    return f"{value.day} {MONTHS[language].split()[value.month - 1]} {value.year}"


def plain(markdown: str, *, urls: bool) -> str:
    """Inline Markdown as words: emphasis dropped, links as their label (and URL in text)."""
    out = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)" if urls else r"\1", markdown)
    return words(out.replace("**", "").replace("*", ""))


ALL = ["2026-11", "2026-12", *EXTRA_ISSUES]
FULL = ["2026-12", "2027-03-markdown"]
EXCERPT = ["2026-11", "2027-01-court", "2027-02-en"]
LABELS = {
    "fr": dict(written_by="Rédigé par", read_more="Lire la suite", unsubscribe="Se désabonner"),
    "en": dict(written_by="Written by", read_more="Read more", unsubscribe="Unsubscribe"),
}
COLON = {"fr": " :", "en": ":"}


# --- every article: title, category, signature ------------------------------------------------


def signing(mail: Email, articles: dict[str, Any]) -> dict[str, bool]:
    """Each slug: True if its author signs in full under it (their last article of the issue)."""
    last = {articles[slug][0]["author"]: slug for slug in mail.slugs}
    return {slug: last[articles[slug][0]["author"]] == slug for slug in mail.slugs}


@pytest.mark.parametrize("issue_id", ALL)
def test_html_has_every_article_in_order_with_category_title_and_signature(
    root: Path, articles: dict[str, Any], authors: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    assert [h1.get("id") for h1 in mail.doc.iter("h1") if h1.get("id")] == mail.slugs
    written_by = LABELS[mail.language]["written_by"]
    full = signing(mail, articles)
    if issue_id in ("2026-11", "2026-12"):
        assert sum(full.values()) < len(full), "the sample issues have an author twice"
    for slug in mail.slugs:
        meta, _ = articles[slug]
        author = authors[meta["author"]]
        section, after = article_html(mail.doc, slug)
        assert seen(section).startswith(words(f"{meta['category']} {meta['title']}"))
        byline = f"{author['name']} · {long_date(meta['date'], mail.language)}"
        assert words(byline) in seen(section)
        signature = words(f"{written_by} {author['name']} {author['role']} {author['bio']}")
        if full[slug]:
            assert seen(after) == signature
        else:
            # Once per author: a one-line "Rédigé par" here, the full signature further on.
            assert seen(section).endswith(words(f"{written_by} {author['name']}"))
            assert author["bio"][:40] not in seen(section) and seen(after) != signature


@pytest.mark.parametrize("issue_id", ALL)
def test_text_has_every_article_in_order_with_category_title_and_signature(
    root: Path, articles: dict[str, Any], authors: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    written_by = LABELS[mail.language]["written_by"]
    full = signing(mail, articles)
    for slug, block in article_text(mail).items():
        meta, _ = articles[slug]
        author = authors[meta["author"]]
        lines = block.splitlines()
        assert lines[:3] == [
            meta["category"].upper(),
            french_spacing(meta["title"]) if mail.language == "fr" else meta["title"],
            f"{author['name']} · {long_date(meta['date'], mail.language)}",
        ]
        if full[slug]:
            signature = f"-- {written_by} {author['name']}, {author['role']}"
            bio = re.escape(author["bio"])
            assert re.search(rf"^{re.escape(signature)}\n\n?{bio}$", block, re.M)
        else:
            assert block.rstrip().endswith(f"\n-- {written_by} {author['name']}")
            assert author["bio"] not in block


def test_table_of_contents_links_to_the_articles_pages_in_both_parts(
    root: Path, articles: dict[str, Any]
) -> None:
    mail = email(root, "2026-11")
    # No #anchor links: they fail in Orange, SFR, La Poste, Gmail iOS and others.
    assert not [a for a in mail.doc.iter("a") if (a.get("href") or "").startswith("#")]
    toc = mail.doc.cssselect(".toc a")
    expected = [(articles[s][0]["url"], articles[s][0]["title"]) for s in mail.slugs]
    assert all(url.startswith("https://") for url, _ in expected)
    assert [(a.get("href"), a.text) for a in toc] == expected
    head = mail.text.split(SEPARATOR)[0]
    for n, (url, title) in enumerate(expected, start=1):
        assert f"\n{n}. {title}\n   {url}\n" in head


# --- full mode: the body, with every Markdown construct ---------------------------------------


@pytest.mark.parametrize("issue_id", FULL)
def test_full_mode_numbered_lists_are_ol_in_html_and_numbered_lines_in_text(
    root: Path, articles: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    blocks = article_text(mail)
    total = 0
    for slug in mail.slugs:
        items = re.findall(r"^(\d+)\. (.*)$", articles[slug][1], re.M)
        section, _ = article_html(mail.doc, slug)
        assert [seen(li) for ol in section.iter("ol") for li in ol.findall("li")] == [
            plain(item, urls=False) for _, item in items
        ]
        for n, item in items:
            assert re.search(rf"^{n}\. \S", blocks[slug], re.M)
            assert f"{n}. {plain(item, urls=True)}" in words(blocks[slug])
        total += len(items)
    assert total >= 3


@pytest.mark.parametrize("issue_id", FULL)
def test_full_mode_headings_render_as_h2_h3_and_underlined_text(
    root: Path, articles: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    blocks = article_text(mail)
    for slug in mail.slugs:
        headings = re.findall(r"^(##+) (.*)$", articles[slug][1], re.M)
        assert headings
        section, _ = article_html(mail.doc, slug)
        assert [(h.tag, seen(h)) for h in section.iter("h2", "h3", "h4")] == [
            (f"h{len(hashes)}", plain(title, urls=False)) for hashes, title in headings
        ]
        for _, title in headings:
            assert f"\n{title}\n{'-' * len(title)}\n" in blocks[slug]


@pytest.mark.parametrize("issue_id", FULL)
def test_full_mode_bullets_links_emphasis_and_quotes(
    root: Path, articles: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    blocks = article_text(mail)
    for slug in mail.slugs:
        body = articles[slug][1]
        section, _ = article_html(mail.doc, slug)
        text = blocks[slug]

        bullets = re.findall(r"^- (.*)$", body, re.M)
        assert [seen(li) for ul in section.iter("ul") for li in ul.findall("li")] == [
            plain(b, urls=False) for b in bullets
        ]
        for bullet in bullets:
            assert f"- {plain(bullet, urls=True)}" in words(text)

        links = re.findall(r"\[([^\]]+)\]\(([^)]+)\)", body)
        assert links
        anchors = [(a.get("href"), seen(a)) for a in section.iter("a")]
        for label, url in links:
            assert (url, label) in anchors
            assert f"{label} ({url})" in words(text)

        strong = re.findall(r"\*\*(.+?)\*\*", body)
        emphasis = re.findall(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])", body)
        assert strong or emphasis
        assert [seen(s) for s in section.iter("strong")] == [words(s) for s in strong]
        assert [seen(e) for e in section.iter("em")] == [words(e) for e in emphasis]
        assert "**" not in text and "](" not in text

        quotes = re.findall(r"^> (.*)$", body, re.M)
        assert [seen(q) for q in section.iter("blockquote")] == [words(q) for q in quotes]
        quoted = words(" ".join(ln[2:] for ln in text.splitlines() if ln.startswith("> ")))
        assert quoted == words(" ".join(quotes))


def test_full_mode_shows_no_read_more_link(root: Path) -> None:
    mail = email(root, "2026-12")
    assert "Lire la suite" not in seen(mail.doc) and "Lire la suite" not in mail.text


def test_a_script_in_an_article_is_removed_from_both_parts(root: Path) -> None:
    mail = email(root, "2027-03-markdown")
    assert mail.doc.findall(".//script") == []
    section, _ = article_html(mail.doc, "tout-le-markdown")
    assert "alert" not in seen(section) and "<script" not in seen(section)
    assert "alert" not in mail.text and "<script" not in mail.text


# --- excerpt mode: the summary and a link to the article --------------------------------------


@pytest.mark.parametrize("issue_id", EXCERPT)
def test_excerpt_mode_shows_summary_and_read_more_link_not_the_body(
    root: Path, articles: dict[str, Any], issue_id: str
) -> None:
    mail = email(root, issue_id)
    read_more = LABELS[mail.language]["read_more"]
    blocks = article_text(mail)
    for slug in mail.slugs:
        meta, body = articles[slug]
        first_paragraph = next(p for p in body.split("\n\n") if p.strip() and p[0] != "#")
        summary = words(meta.get("summary", first_paragraph))
        first_heading = re.search(r"^## (.*)$", body, re.M)
        assert first_heading
        section, _ = article_html(mail.doc, slug)
        assert summary in seen(section)
        links = [(a.get("href"), seen(a)) for a in section.iter("a")]
        assert (meta["url"], f"{read_more} →") in links
        assert section.findall(".//h2") == []
        assert words(first_heading.group(1)) not in seen(section)

        assert summary in words(blocks[slug])
        assert f"{read_more}{COLON[mail.language]} {meta['url']}" in words(blocks[slug])
        assert first_heading.group(1) not in blocks[slug]


def test_summary_falls_back_to_the_first_paragraph_in_the_email(
    root: Path, articles: dict[str, Any]
) -> None:
    mail = email(root, "2027-01-court")
    for slug in mail.slugs:
        meta, body = articles[slug]
        assert "summary" not in meta
        first_paragraph = words(body.strip().split("\n\n")[0])
        section, _ = article_html(mail.doc, slug)
        assert first_paragraph in seen(section)
        assert first_paragraph in words(article_text(mail)[slug])


# --- characters, CSS, placeholders, language --------------------------------------------------


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_accents_and_french_quotes_survive_in_html_and_text(root: Path, issue_id: str) -> None:
    mail = email(root, issue_id)
    for part in (seen(mail.doc), mail.text):
        assert set("’éèà") <= set(part)
        assert "Ã" not in part and "â€" not in part
    assert "’".encode() in mail.raw and "é".encode() in mail.raw
    assert mail.doc.find(".//title").text == mail.spec["subject"]
    assert words(mail.spec["preheader"]) in seen(mail.doc.body)


def test_french_quotes_from_bodies_survive(root: Path, articles: dict[str, Any]) -> None:
    mail = email(root, "2026-12")
    quoted = [
        words(q)
        for slug in mail.slugs
        for q in re.findall(r"«[^»\n]+»", articles[slug][1])
    ]
    assert quoted
    for q in quoted:
        assert q in seen(mail.doc) and q in words(mail.text)


def template_style(root: Path) -> tuple[dict[str, dict[str, str]], str, str]:
    """The template's <mj-style>: its plain rules, and its @media query with the rules inside."""
    template = (THEME / "email.mjml.j2").read_text(encoding="utf-8")
    (css,) = re.findall(r"<mj-style>(.*?)</mj-style>", template, re.S)
    media = re.search(r"@media([^{]+)\{(.*?\})\s*\}", css, re.S)
    assert media
    plain_css = css[: media.start()] + css[media.end() :]
    rules = {
        sel.strip(): declarations(body)
        for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", plain_css)
    }
    return rules, words(media.group(1)), media.group(2)


MEDIA_RE = re.compile(r"@media[^{]+\{(?:[^{}]*\{[^{}]*\})*\s*\}")


def declarations(css: str) -> dict[str, str]:
    pairs = (d.split(":", 1) for d in css.split(";") if d.strip())
    return {k.strip().lower(): words(v) for k, v in pairs}


@pytest.mark.parametrize(
    ("selector", "tag"), [(".article blockquote", "blockquote"), (".article h2", "h2")]
)
def test_template_css_is_inlined_on_the_elements(root: Path, selector: str, tag: str) -> None:
    rules, _, _ = template_style(root)
    wanted = rules[selector]
    mail = email(root, "2026-12")
    elements = list(mail.doc.iter(tag))
    assert elements
    for el in elements:
        assert el.xpath("ancestor::*[contains(concat(' ', @class, ' '), ' article ')]")
        style = declarations(el.get("style") or "")
        assert {k: style.get(k) for k in wanted} == wanted
    # Media queries (mobile sizes) and the dark-mode block (never inlined) may name it again.
    styles = " ".join(
        MEDIA_RE.sub("", words(s.text or ""))
        for s in mail.doc.iter("style")
        if "color-scheme" not in (s.text or "")
    )
    assert selector not in styles, "an inlined rule should not also stay in <style>"


def test_media_queries_stay_in_a_style_block_with_important(root: Path) -> None:
    _, query, inner = template_style(root)
    mail = email(root, "2026-12")
    blocks = [words(s.text or "") for s in mail.doc.iter("style")]
    (block,) = [b for b in blocks if f"@media {query}" in b]
    important = re.findall(r"[\w-]+\s*:\s*[^;{}]+!important", inner)
    assert len(important) >= 3
    for selector, _ in re.findall(r"([^{}]+)\{([^{}]*)\}", inner):
        assert words(selector) + " {" in block
    for decl in important:
        assert words(decl) in block


@pytest.mark.parametrize("issue_id", ALL)
def test_doctype_stays_first(root: Path, issue_id: str) -> None:
    assert email(root, issue_id).raw.startswith(b"<!doctype html>\n<html")


@pytest.mark.parametrize("issue_id", ["2026-11", "2027-02-en"])
def test_recipient_placeholders_stay_literal(root: Path, issue_id: str) -> None:
    mail = email(root, issue_id)
    unsubscribe = LABELS[mail.language]["unsubscribe"]
    links = [
        (a.get("href"), seen(a))
        for a in mail.doc.iter("a")
        if "unsubscribe" in (a.get("href") or "")
    ]
    assert links == [("{{ unsubscribe_url }}", unsubscribe)]
    assert b'href="{{ unsubscribe_url }}"' in mail.raw
    assert b"%7B%7B" not in mail.raw and b"{{%20" not in mail.raw
    assert "{{ greeting }}" in seen(mail.doc) and "\n{{ greeting }}\n" in mail.text
    assert mail.text.rstrip("\n").splitlines()[-1].endswith(" {{ unsubscribe_url }}")


def test_intro_markdown_renders_in_both_parts(root: Path) -> None:
    mail = email(root, "2026-11")
    bold = re.findall(r"\*\*(.+?)\*\*", mail.spec["intro"])
    assert bold
    assert [seen(s) for s in mail.doc.iter("strong") if seen(s) in bold] == bold
    head = words(mail.text.split(SEPARATOR)[0])
    assert words(mail.spec["intro"].replace("**", "")) in head


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_html_lang_is_french_by_default(root: Path, issue_id: str) -> None:
    mail = email(root, issue_id)
    assert mail.doc.get("lang") == "fr"
    assert mail.raw.count(b"Lire la suite") == (len(mail.slugs) if issue_id == "2026-11" else 0)


def test_english_issue_has_lang_en_and_english_labels(root: Path) -> None:
    mail = email(root, "2027-02-en")
    assert mail.doc.get("lang") == "en"
    for part in (seen(mail.doc), mail.text):
        assert part.count("Written by") == len(mail.slugs)
        assert part.count("Read more") == len(mail.slugs)
        assert "1 February 2027" in part
        for french in ("Rédigé par", "Lire la suite", "Se désabonner", "février"):
            assert french not in part
