"""French quotes and apostrophes: straight ones become « » and ’ in the words of a French
issue, never in code, URLs or HTML attributes; hyphenated words of a title do not break."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import RunCli
from test_content import write_article
from test_rawhtml import _issue, _parts

from newsletter.compose.markup import french_spacing, parse, to_html, to_text, typeset
from newsletter.compose.render import nowrap_hyphens

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("L'été, c'est \"la saison\" ici", f"L’été, c’est «{NBSP}la saison{NBSP}» ici"),
        ("aujourd'hui", "aujourd’hui"),
        ('"Bonjour!"', f"«{NBSP}Bonjour{NBSP}!{NBSP}»"),
        ('il a dit " oui " hier', f"il a dit «{NBSP}oui{NBSP}» hier"),
        ('le "mot".', f"le «{NBSP}mot{NBSP}»."),
        ("les années '80", "les années '80"),  # not after a letter: not surely an apostrophe
        ('voir "https://x.example/l\'a"', f"voir «{NBSP}https://x.example/l'a{NBSP}»"),
    ],
)
def test_straight_quotes_and_apostrophes_become_french(written: str, shown: str) -> None:
    assert french_spacing(written) == shown


def test_code_urls_and_attributes_keep_their_straight_quotes() -> None:
    source = (
        "Dit \"**fort**\" et `l'a\"b` puis [l'aide](https://x.example/l'a \"t'i\") "
        "et <https://y.example/c'd>.\n\n```\nprint(\"l'été\")\n```\n"
    )
    tokens = typeset(parse(source), "fr")
    html = to_html(tokens)
    assert f"Dit «{NBSP}<strong>fort</strong>{NBSP}»" in html
    assert "<code>l'a&quot;b</code>" in html
    assert '<a href="https://x.example/l\'a" title="t\'i">l’aide</a>' in html
    assert '<a href="https://y.example/c\'d">https://y.example/c\'d</a>' in html
    assert "print(&quot;l'été&quot;)" in html
    assert "print(\"l'été\")" in to_text(tokens)
    # An English issue shows them as written.
    assert to_html(typeset(parse(source), "en")) == to_html(parse(source))


def test_raw_html_attributes_keep_their_quotes(newsletter_root: Path, run_cli: RunCli) -> None:
    front = (
        "title: \"L'e-mail \\\"qui compte\\\"\"\ncategory: SEO\nauthor: claire\n"
        "date: 2026-11-20\nurl: https://blog.example/e-mail/\n"
    )
    body = 'Un <abbr title="l\'e-mail">courriel</abbr> "utile" d\'abord.\n'
    write_article(newsletter_root, "e-mail.md", front, body)
    _issue(newsletter_root, "e-mail")
    built = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert built.exit_code == 0, built.stderr
    html, text = _parts(newsletter_root)
    assert re.search(r"<abbr title=\"l'e-mail\"[^>]*>courriel</abbr>", html)
    assert f"«{NBSP}utile{NBSP}» d’abord" in html and f"«{NBSP}utile{NBSP}» d’abord" in text
    # The title: French quotes, and "e-mail" kept on one line, its hyphen an ordinary one.
    assert re.search(
        rf'L’<span style="white-space: ?nowrap;?">e-mail</span> «{NBSP}qui compte{NBSP}»', html
    )
    assert f"L’e-mail «{NBSP}qui compte{NBSP}»" in text


def test_nowrap_hyphens_escapes_and_wraps_only_hyphenated_words() -> None:
    assert str(nowrap_hyphens("Les e-mails & <co>")) == (
        'Les <span style="white-space:nowrap">e-mails</span> &amp; &lt;co&gt;'
    )
