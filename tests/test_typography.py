"""French typography in built issues: no-break spaces in the words, never in URLs or code.

One article written with ordinary spaces (and none at all: "Bonjour!") is built into a French
issue in full and in excerpt mode, and into an English one; both parts are parsed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from newsletter.cli import app

REPO = Path(__file__).resolve().parent.parent
NBSP = "\u00a0"

ARTICLE = """\
---
title: "Typographie : le test « complet »"
category: "Outils"
author: erwan
date: 2026-08-04
summary: "Un résumé : court ; et une question ?"
url: "https://coeursurparis.example/blog/typographie?source=lettre&partie=2"
---

Bonjour! Rendez-vous à 10:30 ; l’agenda est sur
https://coeursurparis.example/agenda?jour=lundi&h=10:30 ou
[la FAQ?](https://coeursurparis.example/faq?q=1;r=2).

Le code `a : b` et `!important` restent tels quels, comme <https://coeursurparis.example/p?q=1>.

« Citation » et «serrée».

```
x : y ; z ?
```
"""
INTRO = "Bonjour! Au programme : la typographie."
URLS = [
    "https://coeursurparis.example/agenda?jour=lundi&h=10:30",
    "https://coeursurparis.example/faq?q=1;r=2",
    "https://coeursurparis.example/p?q=1",
    "https://coeursurparis.example/blog/typographie?source=lettre&partie=2",
]
ISSUES = {
    "2027-04-fr": ("fr", "full"),
    "2027-05-resume": ("fr", "excerpt"),
    "2027-06-en": ("en", "full"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typography") / "letter"
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    (root / "content" / "articles" / "typographie.md").write_text(ARTICLE, encoding="utf-8")
    for issue_id, (language, mode) in ISSUES.items():
        (root / "issues" / f"{issue_id}.toml").write_text(
            f'subject = "Typographie"\npreheader = "p"\ndate = 2027-04-01\n'
            f'language = "{language}"\nmode = "{mode}"\nintro = "{INTRO}"\n'
            'articles = ["typographie"]\n',
            encoding="utf-8",
        )
    # Module-scoped, so built before conftest's per-test cleaning of NEWSLETTER_* variables.
    env: dict[str, str | None] = {n: None for n in os.environ if n.startswith("NEWSLETTER_")}
    env["NEWSLETTER_POSTAL_ADDRESS"] = "12 rue de l’Exemple, 75011 Paris"
    runner = CliRunner(env=env)
    for issue_id in ISSUES:
        result = runner.invoke(app, ["build-issue", issue_id, "--root", str(root)])
        assert result.exit_code == 0, result.output
    return root


def parts(root: Path, issue_id: str) -> tuple[lxml.html.HtmlElement, str]:
    out = root / "build" / issue_id
    html = (out / "email.html").read_text(encoding="utf-8")
    return lxml.html.document_fromstring(html), (out / "email.txt").read_text(encoding="utf-8")


def flowing(text: str) -> str:
    """Line wraps and runs of ordinary spaces undone; no-break spaces kept."""
    return re.sub(r"[ \t\n]+", " ", text)


def test_french_issue_has_no_break_spaces_in_both_parts(root: Path) -> None:
    doc, text = parts(root, "2027-04-fr")
    (h1,) = [h for h in doc.iter("h1") if h.get("id") == "typographie"]
    title = f"Typographie{NBSP}: le test «{NBSP}complet{NBSP}»"
    assert h1.text_content().strip() == title
    assert f"\n{title}\n" in text
    html_words = flowing(doc.body.text_content())
    for part in (html_words, flowing(text)):
        assert f"Bonjour{NBSP}! Au programme{NBSP}: la typographie." in part  # the intro
        assert f"Bonjour{NBSP}! Rendez-vous à 10:30{NBSP}; l’agenda" in part
        assert f"la FAQ{NBSP}?" in part
        assert f"«{NBSP}Citation{NBSP}» et «{NBSP}serrée{NBSP}»." in part


def test_french_excerpt_has_no_break_spaces_in_the_summary(root: Path) -> None:
    doc, text = parts(root, "2027-05-resume")
    summary = f"Un résumé{NBSP}: court{NBSP}; et une question{NBSP}?"
    assert summary in flowing(doc.body.text_content())
    assert summary in flowing(text)


@pytest.mark.parametrize("issue_id", ISSUES)
def test_urls_and_code_are_left_as_written(root: Path, issue_id: str) -> None:
    doc, text = parts(root, issue_id)
    hrefs = [a.get("href") for a in doc.iter("a")]
    srcs = [img.get("src") for img in doc.iter("img")]
    assert all(NBSP not in value for value in hrefs + srcs)
    full = ISSUES[issue_id][1] == "full"
    # Full: the links of the body and the title's; excerpt: the "read more" link only.
    assert set(URLS[1:] if full else URLS[3:]) <= set(hrefs)
    for url in URLS[:3] if full else URLS[3:]:
        assert url in text  # whole, on one line, in the text part
    if full:
        assert URLS[0] in doc.body.text_content()
        codes = [c.text_content() for c in doc.iter("code")]
        assert codes == ["a : b", "!important", "x : y ; z ?\n"]
        assert "Le code a : b et !important restent" in flowing(text)
        assert "    x : y ; z ?" in text.splitlines()


def test_english_issue_keeps_the_spaces_as_written(root: Path) -> None:
    doc, text = parts(root, "2027-06-en")
    assert NBSP not in text
    assert NBSP not in doc.body.text_content()
    (h1,) = [h for h in doc.iter("h1") if h.get("id") == "typographie"]
    assert h1.text_content().strip() == "Typographie : le test « complet »"
    assert "Bonjour! Rendez-vous à 10:30 ; l’agenda" in flowing(text)
    assert "Bonjour! Au programme : la typographie." in flowing(doc.body.text_content())
