"""Markdown to the HTML fragment and to the plain text a reader gets, from one token stream."""

from __future__ import annotations

import re

import lxml.html
import pytest

from newsletter.compose.markup import (
    NBSP,
    WIDTH,
    first_paragraph_text,
    french_spacing,
    parse,
    to_html,
    to_text,
    typeset,
)


def html_of(source: str) -> lxml.html.HtmlElement:
    return lxml.html.fragment_fromstring(to_html(parse(source)), create_parent="div")


def text_of(source: str) -> str:
    return to_text(parse(source))


def words(text: str) -> str:
    return " ".join(text.split())


NUMBERED = (
    "Une méthode :\n\n"
    "1. Répondre à la question dès le premier paragraphe.\n"
    "2. Détailler ensuite les cas particuliers, avec des intertitres explicites et assez longs "
    "pour être repliés.\n"
    "3. Ajouter un exemple concret.\n"
)


def test_numbered_list_is_an_ol_in_html() -> None:
    doc = html_of(NUMBERED)
    (ol,) = doc.findall(".//ol")
    assert [words(li.text_content()) for li in ol.findall("li")] == [
        "Répondre à la question dès le premier paragraphe.",
        "Détailler ensuite les cas particuliers, avec des intertitres explicites et assez "
        "longs pour être repliés.",
        "Ajouter un exemple concret.",
    ]
    assert doc.findall(".//ul") == []


def test_numbered_list_is_numbered_lines_in_text_with_wrapped_items_indented() -> None:
    lines = text_of(NUMBERED).splitlines()
    assert lines[0] == "Une méthode :"
    assert lines[1] == ""
    assert lines[2] == "1. Répondre à la question dès le premier paragraphe."
    assert lines[3].startswith("2. Détailler ensuite")
    # The rest of item 2 is under its first word, not at the margin and not a new item.
    assert lines[4].startswith("   ") and not lines[4].strip()[0].isdigit()
    assert lines[5] == "3. Ajouter un exemple concret."
    assert all(len(line) <= WIDTH for line in lines)


def test_a_list_starting_at_five_keeps_its_numbers_in_text() -> None:
    text = text_of("5. cinq\n6. six\n")
    assert text.splitlines() == ["5. cinq", "6. six"]
    assert html_of("5. cinq\n6. six\n").find(".//ol").get("start") == "5"


def test_bullets_are_a_ul_in_html_and_dashes_in_text_nested_ones_indented() -> None:
    source = "- le site web ;\n  - ses pages ;\n- les réseaux sociaux.\n"
    doc = html_of(source)
    top = doc.find("ul")
    assert [words(li.text) for li in top.findall("li")] == ["le site web ;", "les réseaux sociaux."]
    assert [li.text for li in top.findall("li/ul/li")] == ["ses pages ;"]
    assert text_of(source).splitlines() == [
        "- le site web ;",
        "   - ses pages ;",
        "- les réseaux sociaux.",
    ]


def test_headings_are_h_elements_in_html_and_underlined_in_text() -> None:
    source = "# Le bilan\n\n## L’après-midi : l’œil du client\n\nTexte.\n"
    doc = html_of(source)
    assert [(h.tag, h.text) for h in doc.iter("h1", "h2")] == [
        ("h1", "Le bilan"),
        ("h2", "L’après-midi : l’œil du client"),
    ]
    assert text_of(source).splitlines() == [
        "Le bilan",
        "========",
        "",
        "L’après-midi : l’œil du client",
        "-" * len("L’après-midi : l’œil du client"),
        "",
        "Texte.",
    ]


def test_links_are_anchors_in_html_and_label_with_url_in_text() -> None:
    source = (
        "Un passage sur [PageSpeed Insights](https://pagespeed.web.dev/) suffit ; "
        "voir aussi <https://www.cnil.fr/>.\n"
    )
    doc = html_of(source)
    assert [(a.get("href"), a.text) for a in doc.iter("a")] == [
        ("https://pagespeed.web.dev/", "PageSpeed Insights"),
        ("https://www.cnil.fr/", "https://www.cnil.fr/"),
    ]
    text = words(text_of(source))
    assert "PageSpeed Insights (https://pagespeed.web.dev/) suffit" in text
    # A bare URL is written once, not "url (url)".
    assert text.endswith("voir aussi https://www.cnil.fr/.")


def test_a_long_url_is_never_broken_across_lines() -> None:
    url = "https://coeursurparis.example/blog/" + "tres-long-" * 8 + "fin"
    text = text_of(f"Lisez [notre article sur le sujet, avec un titre long]({url}) ce soir.\n")
    assert any(url in line for line in text.splitlines())


def test_emphasis_is_strong_and_em_in_html_and_plain_words_in_text() -> None:
    source = "Il faut une **seule journée**, si *personne ne sait plus* pourquoi.\n"
    doc = html_of(source)
    assert [s.text for s in doc.iter("strong")] == ["seule journée"]
    assert [e.text for e in doc.iter("em")] == ["personne ne sait plus"]
    assert text_of(source) == "Il faut une seule journée, si personne ne sait plus pourquoi."


def test_blockquote_is_a_blockquote_in_html_and_quoted_lines_in_text() -> None:
    source = (
        "> Un audit réussi ne produit pas un diagnostic parfait. Il produit une décision "
        "que l’on est capable de tenir.\n"
    )
    doc = html_of(source)
    (quote,) = doc.iter("blockquote")
    assert words(quote.text_content()).startswith("Un audit réussi")
    lines = text_of(source).splitlines()
    assert len(lines) > 1
    assert all(line.startswith("> ") for line in lines)
    assert words(" ".join(line[2:] for line in lines)) == words(source.lstrip("> "))


def test_accents_and_french_quotes_are_kept_as_characters() -> None:
    source = "« Il faudrait qu’on refasse le site. » C’est l’été, déjà.\n"
    assert "« Il faudrait qu’on refasse le site. » C’est l’été, déjà." in to_html(parse(source))
    assert text_of(source) == source.strip()


def test_raw_html_in_an_article_is_shown_as_text_not_markup() -> None:
    source = "Voici <script>alert(1)</script> et <b>gras</b>.\n"
    doc = html_of(source)
    assert doc.findall(".//script") == [] and doc.findall(".//b") == []
    assert "<script>alert(1)</script>" in doc.text_content()


def test_first_paragraph_skips_headings_and_keeps_link_urls() -> None:
    tokens = parse(
        "## Un intertitre\n\nPremier paragraphe, avec *emphase*\net [un lien](https://x.example).\n\n"
        "Second paragraphe.\n"
    )
    assert first_paragraph_text(tokens) == (
        "Premier paragraphe, avec emphase et un lien (https://x.example)."
    )


def test_first_paragraph_of_a_text_without_paragraph_is_empty() -> None:
    assert first_paragraph_text(parse("## Seulement un titre\n")) == ""


# -- French typography --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("Titre : sous-titre", "Titre_: sous-titre"),
        ("les horaires ; les photos", "les horaires_; les photos"),
        ("Bonjour!", "Bonjour_!"),
        ("Vraiment ?", "Vraiment_?"),
        ("Quoi?!", "Quoi_?!"),
        ("(voir plus bas):", "(voir plus bas)_:"),
        ("« Citation »", "«_Citation_»"),
        ("«serrée»", "«_serrée_»"),
        ("« Super! »", "«_Super_!_»"),
        ("mot  :", "mot_:"),
        # Left alone: times, ratios, words joined by a colon, and what is already no-break.
        ("à 10:30 précises", "à 10:30 précises"),
        ("un ratio 16:9", "un ratio 16:9"),
        ("std::vector et a:b", "std::vector et a:b"),
        ("Déjà_: fait_!", "Déjà_: fait_!"),
        ("Étroite\u202f; fine\u202f?", "Étroite\u202f; fine\u202f?"),
        # URLs as written, the punctuation after them spaced.
        ("Voir https://x.example/a?b=c;d=1 !", "Voir https://x.example/a?b=c;d=1_!"),
        ("Voir https://x.example/page?", "Voir https://x.example/page_?"),
        ("http://x.example:8080/p et mailto:a@b.example?subject=oui", None),
        ("sur www.example.fr/?q=1:", "sur www.example.fr/?q=1_:"),
    ],
)
def test_french_spacing(written: str, shown: str | None) -> None:
    written = written.replace("_", NBSP)
    expected = written if shown is None else shown.replace("_", NBSP)
    assert french_spacing(written) == expected


FRENCH = (
    "# Un titre : le voici\n\n"
    "Bonjour! Le code `a : b` et `!important`, [la FAQ?](https://x.example/faq?q=1;r=2) "
    "puis <https://x.example/p?q=1>, ![un schéma : flux](https://x.example/s.png) "
    "et « **gras** ».\n\n"
    "```\nx : y ; z ?\n```\n"
)


def test_typeset_changes_text_tokens_only_in_both_parts() -> None:
    tokens = parse(FRENCH)
    html = to_html(typeset(tokens, "fr"))
    doc = lxml.html.fragment_fromstring(html, create_parent="div")
    assert doc.find("h1").text == f"Un titre{NBSP}: le voici"
    assert [c.text for c in doc.iter("code")] == ["a : b", "!important", "x : y ; z ?\n"]
    assert [a.get("href") for a in doc.iter("a")] == [
        "https://x.example/faq?q=1;r=2", "https://x.example/p?q=1"
    ]
    assert [a.text_content() for a in doc.iter("a")] == [
        f"la FAQ{NBSP}?", "https://x.example/p?q=1"
    ]
    (img,) = doc.iter("img")
    assert img.get("alt") == "un schéma : flux" and img.get("src") == "https://x.example/s.png"
    assert f"Bonjour{NBSP}! Le code" in doc.text_content()
    assert f"«{NBSP}gras{NBSP}»" in doc.text_content()

    text = to_text(typeset(tokens, "fr"))
    assert text.splitlines()[0] == f"Un titre{NBSP}: le voici"
    flowing = re.sub(r"[ \n]+", " ", text)  # line wraps undone, no-break spaces kept
    assert f"Bonjour{NBSP}! Le code a : b et !important, la FAQ{NBSP}? " in flowing
    assert "(https://x.example/faq?q=1;r=2)" in flowing and " https://x.example/p?q=1," in flowing
    assert "    x : y ; z ?" in text.splitlines()
    # The tokens given are not changed: the catalog's article serves every issue.
    assert to_html(tokens) == to_html(parse(FRENCH))


def test_typeset_leaves_english_as_written() -> None:
    tokens = parse(FRENCH)
    assert NBSP not in to_html(typeset(tokens, "en"))
    assert to_text(typeset(tokens, "en")) == to_text(tokens)


def test_a_no_break_space_never_breaks_a_line_of_the_text_part() -> None:
    source = "Une phrase assez longue pour être repliée, qui se termine par une question ?\n"
    lines = to_text(typeset(parse(source), "fr"), width=40).splitlines()
    assert lines[-1].endswith(f"question{NBSP}?")
