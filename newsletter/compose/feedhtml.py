"""A post's HTML, from a feed or a WordPress export (WXR), as the Markdown of an article.

markdownify does the conversion; around it, what a post holds that Markdown has no word for:
an image figure stays a cleaned <figure> (the raw HTML the build keeps), a video iframe becomes
what the build makes of one (rawhtml.video_link), any other iframe is removed and noted. A WXR
post is stored as typed: its [caption] shortcodes and its paragraphs (`autop`) are made here
as WordPress makes them when it shows the post.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import nh3
from bs4 import BeautifulSoup, Comment, Tag
from bs4.element import NavigableString, PageElement
from markdownify import MarkdownConverter

from newsletter.compose import rawhtml

#: Where WordPress's wpautop starts no paragraph: its block-level tags (`$allblocks`).
_BLOCK_TAGS = frozenset({
    "address", "area", "article", "aside", "blockquote", "caption", "col", "colgroup", "dd",
    "details", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
    "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "legend", "li", "map", "math",
    "menu", "nav", "ol", "p", "pre", "section", "style", "summary", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "ul",
})
#: The blocks whose own text wpautop makes paragraphs of too.
_FLOW_CONTAINERS = frozenset({"article", "aside", "blockquote", "div", "section"})
#: A post written in the block editor (Gutenberg): WordPress does not run wpautop on it.
_BLOCK_EDITOR_RE = re.compile(r"<!--\s*wp:")


def autop(html: str) -> BeautifulSoup:
    """The post parsed, with the paragraphs WordPress makes when it shows a classic-editor post
    (`wpautop`).

    A WXR export holds the post as typed: paragraphs separated by blank lines, line breaks
    as single newlines. Each run of text and inline tags between block-level elements (and
    inside a quote or a div) becomes <p> paragraphs at its blank lines, with <br> at its
    other newlines; blocks, <pre> among them, are left as they are. No maintained library
    does this (the PHP is a page of regular expressions); it is done on the parsed tree, which
    markdownify then converts without parsing again.
    """
    if _BLOCK_EDITOR_RE.search(html):
        return BeautifulSoup(html, "html.parser")
    # The parser keeps a blank line between two tags as a single "\n": mark it first.
    soup = BeautifulSoup(_BLANK_LINE_RE.sub(f"\n<!--{_BREAK}-->\n", html), "html.parser")
    _autop_children(soup, soup)
    for mark in soup.find_all(string=lambda text: isinstance(text, Comment)):
        if str(mark) == _BREAK:
            mark.extract()  # in a <pre> or a list: the newlines around it stay
    return soup


_BREAK = "newsletter-autop-break"
_BLANK_LINE_RE = re.compile(r"\n(?:[ \t\r]*\n)+")


def _autop_children(parent: Tag, soup: BeautifulSoup) -> None:
    paragraphs: list[list[PageElement]] = [[]]

    def flush(before: PageElement | None) -> None:
        for nodes in paragraphs:
            if any(isinstance(n, Tag) or str(n).strip() for n in nodes):
                para = soup.new_tag("p")
                if before is None:
                    parent.append(para)
                else:
                    before.insert_before(para)
                for node in nodes:
                    para.append(node.extract())
                _line_breaks(para, soup)
            else:
                for node in nodes:
                    node.extract()
        paragraphs[:] = [[]]

    for node in list(parent.children):
        if isinstance(node, Tag) and node.name in _BLOCK_TAGS:
            flush(node)
            if node.name in _FLOW_CONTAINERS:
                _autop_children(node, soup)
        elif isinstance(node, Comment):
            if str(node) == _BREAK:
                paragraphs.append([])
            node.extract()  # <!--more-->: nothing a reader sees
        else:
            paragraphs[-1].append(node)
    flush(None)


def _line_breaks(para: Tag, soup: BeautifulSoup) -> None:
    """Trim the paragraph and make each newline of its own text a <br>."""
    texts = [n for n in para.children if isinstance(n, NavigableString)]
    for node in texts:
        text = str(node)
        if node is para.contents[0]:
            text = text.lstrip()
        if node is para.contents[-1]:
            text = text.rstrip()
        lines = re.split(r"[ \t\r]*\n[ \t\r]*", text)
        if len(lines) == 1 and text == str(node):
            continue
        anchor: PageElement = node
        for i, line in enumerate(lines):
            if i:
                br = soup.new_tag("br")
                anchor.insert_after(br)
                anchor = br
            if line:
                piece = NavigableString(line)
                anchor.insert_after(piece)
                anchor = piece
        node.extract()


class _Converter(MarkdownConverter):
    """markdownify, with an image figure kept as the HTML the build shows as a figure."""

    def convert_figure(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if "_inline" in parent_tags or not _is_image_figure(el):
            return f"\n\n{text.strip()}\n\n"
        cleaned = nh3.clean(
            str(el),
            tags=set(rawhtml.SAFE_TAGS),
            attributes=rawhtml.SAFE_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel=None,
        )
        # One line: a blank line would end the raw HTML block in the Markdown.
        return "\n\n" + " ".join(str(cleaned).split()) + "\n\n"


def _is_image_figure(el: Tag) -> bool:
    """An image (perhaps linked) and its caption, nothing else: a WordPress caption."""
    if el.find("img") is None:
        return False
    for child in el.children:
        if isinstance(child, Tag):
            if child.name in ("img", "figcaption") or (child.name == "a" and child.find("img")):
                continue
            return False
        elif not isinstance(child, Comment) and str(child).strip():
            return False  # text beside the image, outside the caption
    return True


# No `strip=["script", "style"]`: that keeps their text (code, CSS) as the post's, where
# markdownify's own converters drop them with their content.
_CONVERTER = _Converter(heading_style="ATX", bullets="-")


def to_markdown(html: str, *, base: str, wordpress: bool = False) -> tuple[str, list[str]]:
    """(the post's HTML as Markdown, what could not be kept: one note each).

    Links and image sources are made absolute against `base`. `wordpress`: the post comes
    from a WXR export, written as typed: its [caption] shortcodes become figures and its
    paragraphs are made as WordPress shows them (`autop`).
    """
    notes: list[str] = []
    if wordpress:
        html, dropped = rawhtml.convert_shortcodes(html)
        notes.extend(what for _, what in dropped)
        soup = autop(html)
    else:
        soup = BeautifulSoup(html, "html.parser")
    for tag, attr in (("a", "href"), ("img", "src")):
        for node in soup.find_all(tag):
            value = node.get(attr)
            if isinstance(value, str) and base:
                node[attr] = urljoin(base, value.strip())
    for frame in soup.find_all("iframe"):
        notes.extend(_replace_iframe(soup, frame))
    # The soup already parsed: converting it saves markdownify a second parse (half the time).
    text = _CONVERTER.convert_soup(soup)
    # markdownify leaves runs of blank lines where block elements met.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n", notes


def _replace_iframe(soup: BeautifulSoup, frame: Tag) -> list[str]:
    """A YouTube iframe becomes its thumbnail linked to the video, a Vimeo one a link (as the
    build does with an article's raw iframe); any other is removed, and noted."""
    src = str(frame.get("src") or "").strip()
    video = rawhtml.video_link(src)
    if video is None:
        frame.decompose()
        return [f"<iframe> of {src or 'no source'} removed (link to it in the article by hand "
                "if readers need it)"]
    title = str(frame.get("title") or "").strip() or "Vidéo"
    link = soup.new_tag("a", href=video.href)
    if video.thumbnail is not None:
        link.append(soup.new_tag("img", src=video.thumbnail, alt=title))
    else:
        link.string = title
    frame.replace_with(link)
    return []
