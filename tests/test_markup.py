"""Markdown to the HTML fragment and to the plain text a reader gets, from one token stream."""

from __future__ import annotations

import lxml.html

from newsletter.markup import WIDTH, first_paragraph_text, parse, to_html, to_text


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
