"""Raw HTML and links in an article's Markdown, made safe and absolute for an inbox.

An article's Markdown is parsed with raw HTML on (`markup.parse_article`); here, once per
article, each HTML token is cleaned to a safe subset (nh3 for blocks; inline tags, which
markdown-it gives one by one, are rebuilt tag by tag), video iframes become a thumbnail linked
to the video, WordPress `[caption]` shortcodes a figure, and every relative link or image
source is resolved against the article's `url` (else NEWSLETTER_SITE_URL). What was dropped is
returned as notes ("line: what") for the build's `html-dropped` finding; a relative address
with no base is a ContentError naming the file and line.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Literal, NamedTuple
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it.token import Token

from newsletter.errors import ContentError, NewsletterError

#: The tags kept from raw HTML (with what Markdown itself produces, for the blocks).
SAFE_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "mark", "ol", "p", "pre",
    "q", "s", "small", "span", "strong", "sub", "sup", "u", "ul",
})
SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "width", "height", "title"},
    "ol": {"start"},
}
#: Their content goes with them (ammonia's default for script and style).
_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "textarea", "select"})
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>", re.S)
_ATTR_RE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_IFRAME_RE = re.compile(r"<iframe\b([^>]*)>(?:.*?</iframe\s*>)?", re.I | re.S)
_YOUTUBE_RE = re.compile(
    r"(?:youtube(?:-nocookie)?\.com/(?:embed/|watch\?v=|shorts/)|youtu\.be/)([\w-]{11})"
)
_VIMEO_RE = re.compile(r"(?:player\.)?vimeo\.com/(?:video/)?(\d+)")
_CAPTION_RE = re.compile(r"\[caption\b([^\]]*)\](.*?)\[/caption\]", re.S)
#: Before WordPress 3.4 the caption was an attribute: [caption caption="L’atelier"]<img>[/caption].
_CAPTION_ATTR_RE = re.compile(r"""\bcaption\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_IMG_OR_LINK_RE = re.compile(r"^\s*((?:<a\b[^>]*>\s*)?<img\b[^>]*>(?:\s*</a>)?)(.*)$", re.S)
_SHORTCODE_RE = re.compile(
    r"\[/?(gallery|embed|video|audio|playlist|contact-form-7|wpforms|su_\w+|et_pb_\w+)\b[^\]]*\]"
)


def convert_shortcodes(source: str) -> tuple[str, list[tuple[int, str]]]:
    """`[caption]` -> <figure>; other known WordPress shortcodes removed and reported."""
    notes: list[tuple[int, str]] = []

    def figure(m: re.Match[str]) -> str:
        inner = _IMG_OR_LINK_RE.match(m.group(2))
        if inner is None:
            return m.group(2)
        caption = inner.group(2).strip()
        if not caption and (old := _CAPTION_ATTR_RE.search(m.group(1))):
            caption = old.group(1) if old.group(1) is not None else old.group(2)
        return f"\n\n<figure>{inner.group(1)}<figcaption>{caption}</figcaption></figure>\n\n"

    def dropped(m: re.Match[str]) -> str:
        notes.append((source.count("\n", 0, m.start()), f"shortcode [{m.group(1)}] removed"))
        return ""

    return _SHORTCODE_RE.sub(dropped, _CAPTION_RE.sub(figure, source)), notes


class VideoLink(NamedTuple):
    """What a video iframe becomes: a link to the video's page, with its thumbnail if known."""

    site: Literal["YouTube", "Vimeo"]
    href: str
    thumbnail: str | None


def video_link(src: str) -> VideoLink | None:
    """The page (and thumbnail) of a YouTube or Vimeo embed address; None for anything else."""
    if youtube := _YOUTUBE_RE.search(src):
        vid = youtube.group(1)
        return VideoLink("YouTube", f"https://www.youtube.com/watch?v={vid}",
                         f"https://img.youtube.com/vi/{vid}/hqdefault.jpg")
    if vimeo := _VIMEO_RE.search(src):
        return VideoLink("Vimeo", f"https://vimeo.com/{vimeo.group(1)}", None)
    return None


def clean_tokens(
    tokens: Sequence[Token], *, base: str, rel: str, body_line: int
) -> tuple[list[Token], list[str], list[NewsletterError]]:
    """(tokens with safe HTML and absolute links, notes of what was dropped, link errors)."""
    out: list[Token] = []
    notes: list[str] = []
    errors: list[NewsletterError] = []
    for tok in tokens:
        line = body_line + (tok.map[0] if tok.map else 0)
        fixed = _Fixer(base=base, rel=rel, line=line, notes=notes, errors=errors)
        if tok.type == "html_block":
            out.append(tok.copy(content=fixed.block(tok.content)))
        elif tok.type == "inline" and tok.children:
            out.append(tok.copy(children=fixed.inline(tok.children)))
        else:
            out.append(tok)
    return out, notes, errors


class _Fixer:
    """Resolves and cleans the HTML and links of one block, recording what it drops."""

    def __init__(
        self, *, base: str, rel: str, line: int, notes: list[str], errors: list[NewsletterError]
    ) -> None:
        self.base, self.rel, self.line, self.notes, self.errors = base, rel, line, notes, errors

    def url(self, value: str) -> str:
        value = value.strip()
        if not value or value.startswith("#") or urlsplit(value).scheme:
            return value
        if not self.base:
            self.errors.append(ContentError(
                f"relative address '{value}' cannot be resolved", path=self.rel, line=self.line,
                hint="set `url:` in the front matter or NEWSLETTER_SITE_URL, or write the "
                "full https:// address",
            ))
            return value
        return urljoin(self.base, value)

    def note(self, what: str) -> None:
        self.notes.append(f"{self.line}: {what}")

    def inline(self, children: Sequence[Token]) -> list[Token]:
        out: list[Token] = []
        skipping = ""
        for child in children:
            if skipping:
                closes = re.match(rf"</{skipping}\b", child.content, re.I)
                if child.type == "html_inline" and closes:
                    skipping = ""
                continue
            if child.type in ("link_open", "image"):
                attr = "href" if child.type == "link_open" else "src"
                child = child.copy()
                child.attrSet(attr, self.url(str(child.attrGet(attr) or "")))
            elif child.type == "html_inline":
                content, skipping = self.inline_tag(child.content)
                child = child.copy(content=content)
            out.append(child)
        return out

    def inline_tag(self, tag: str) -> tuple[str, str]:
        """(the tag rebuilt from its safe part or "", a tag whose content to skip)."""
        m = _TAG_RE.fullmatch(tag.strip())
        if m is None:  # a comment, a declaration
            return "", ""
        closing, name = m.group(1), m.group(2).lower()
        if name == "iframe" and not closing:
            return self.block(tag), ""
        if name not in SAFE_TAGS:
            if not closing:
                self.note(f"<{name}> removed")
            return "", name if name in _WITH_CONTENT and not closing else ""
        if closing:
            return f"</{name}>", ""
        return f"<{name}{self.attributes(name, m.group(3))}>", ""

    def attributes(self, name: str, text: str) -> str:
        kept: list[str] = []
        for attr, raw in _ATTR_RE.findall(text):
            attr = attr.lower()
            value = html_lib.unescape(raw.strip("\"'"))
            if attr not in SAFE_ATTRIBUTES.get(name, set()):
                self.note(f"{attr}= removed from <{name}>")
                continue
            if attr in ("href", "src"):
                value = self.url(value)
                if urlsplit(value).scheme not in ("http", "https", "mailto"):
                    self.note(f"{attr}={value!r} removed from <{name}>")
                    continue
            kept.append(f' {attr}="{html_lib.escape(value)}"')
        return "".join(kept)

    def block(self, content: str) -> str:
        content = _IFRAME_RE.sub(self.iframe, content)
        _Report(self).feed(content)
        return str(nh3.clean(
            content,
            tags=set(SAFE_TAGS),
            attributes=SAFE_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel=None,
            attribute_filter=self.filter,
        ))

    def filter(self, element: str, attribute: str, value: str) -> str | None:
        return self.url(value) if attribute in ("href", "src") else value

    def iframe(self, m: re.Match[str]) -> str:
        attrs = dict((a.lower(), html_lib.unescape(v.strip("\"'"))) for a, v in
                     _ATTR_RE.findall(m.group(1)))
        src, title = attrs.get("src", ""), attrs.get("title") or "Vidéo"
        video, alt = video_link(src), html_lib.escape(title)
        if video is not None and video.thumbnail is not None:
            self.note(f"{video.site} <iframe> shown as its thumbnail linked to the video")
            return f'<a href="{video.href}"><img src="{video.thumbnail}" alt="{alt}"></a>'
        if video is not None:
            self.note(f"{video.site} <iframe> shown as a link to the video")
            return f'<p><a href="{video.href}">{alt}</a></p>'
        self.note(f"<iframe> of {src or 'no source'} removed")
        return ""


class _Report(HTMLParser):
    """Notes every tag and attribute nh3 is about to drop from a block."""

    def __init__(self, fixer: _Fixer) -> None:
        super().__init__(convert_charrefs=True)
        self.fixer = fixer

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.fixer.note(f"<{tag}> removed")
            return
        for attr, _ in attrs:
            if attr not in SAFE_ATTRIBUTES.get(tag, set()):
                self.fixer.note(f"{attr}= removed from <{tag}>")


# -- the text part -------------------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "br":
            self.parts.append("\n")
        elif tag == "img":
            self.parts.append(f"[{values.get('alt') or 'image'}]")
        elif tag == "a":
            self.hrefs.append(values.get("href", ""))
        elif tag in ("p", "figcaption", "li", "div") and self.parts:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.hrefs:
            href = self.hrefs.pop()
            if href:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(fragment: str) -> str:
    """What a reader of the text part gets for a piece of (cleaned) HTML."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    lines = "".join(parser.parts).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines).strip(" ")
