"""Markdown to an HTML fragment and to readable plain text, from one token stream."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.compose.rawhtml import html_text

WIDTH = 72


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Raw HTML in articles is escaped: the email's markup comes from the templates only.
    return MarkdownIt("commonmark", {"html": False})


def parse(source: str) -> list[Token]:
    return _parser().parse(source)


@lru_cache(maxsize=1)
def _article_parser() -> MarkdownIt:
    # Articles may hold raw HTML (a <br>, a figure, a video): rawhtml.clean_tokens cleans every
    # HTML token to a safe subset before anything renders it.
    return MarkdownIt("commonmark", {"html": True})


def parse_article(source: str) -> list[Token]:
    """An article's body, raw HTML tokens included (to be cleaned by rawhtml.clean_tokens)."""
    return _article_parser().parse(source)


def to_html(tokens: Sequence[Token]) -> str:
    return str(_parser().renderer.render(tokens, _parser().options, {}))


def inline_text(tokens: Sequence[Token] | None) -> str:
    """The words of an inline run, links written as `text (url)`."""
    out: list[str] = []
    href_stack: list[str] = []
    start_stack: list[int] = []
    for tok in tokens or ():
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type == "html_inline":
            out.append(html_text(tok.content))  # <br> a line break, <img> its alt
        elif tok.type in ("softbreak",):
            out.append(" ")
        elif tok.type == "hardbreak":
            out.append("\n")
        elif tok.type == "image":
            out.append(f"[{tok.content or tok.attrGet('alt') or 'image'}]")
        elif tok.type == "link_open":
            href_stack.append(str(tok.attrGet("href") or ""))
            start_stack.append(len(out))
        elif tok.type == "link_close":
            href = href_stack.pop()
            start = start_stack.pop()
            label = "".join(out[start:])
            if href and href != label and f"mailto:{label}" != href:
                out.append(f" ({href})")
    return "".join(out)


def to_text(tokens: Sequence[Token], width: int = WIDTH) -> str:
    """Plain text for the text/plain part: paragraphs, underlined headings, lists, quotes."""
    writer = _TextWriter(width)
    for tok in tokens:
        writer.token(tok)
    return writer.text()


class _TextWriter:
    """The state of `to_text` as it walks the tokens: open lists, quotes, the blocks so far."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.blocks: list[str] = []
        self.joined: list[bool] = []  # True: the block follows the previous one, no blank line
        self.in_list_run = False
        self.lists: list[list[int | None]] = []  # a counter per open list; None for bullets
        self.prefix_stack: list[str] = []
        self.pending_item_marker: str | None = None

    def emit(self, text: str) -> None:
        """A paragraph or a list item, wrapped, indented and quoted as it is nested."""
        lists = self.lists
        self.joined.append(bool(lists) and self.in_list_run)
        self.in_list_run = bool(lists)
        indent = "   " * max(len(lists) - 1, 0)
        quote = "".join(self.prefix_stack)
        if self.pending_item_marker is not None:
            first = quote + indent + self.pending_item_marker
            rest = quote + indent + " " * len(self.pending_item_marker)
            self.pending_item_marker = None
        else:
            first = rest = quote + indent + ("  " if lists else "")
        lines: list[str] = []
        for i, para_line in enumerate(text.split("\n")):
            wrapped = textwrap.wrap(
                para_line,
                width=max(self.width - len(first), 20),
                break_long_words=False,
                break_on_hyphens=False,
            ) or [""]
            for j, w in enumerate(wrapped):
                lines.append((first if i == 0 and j == 0 else rest) + w)
        self.blocks.append("\n".join(lines))

    def add(self, block: str) -> None:
        """A block kept as it is (code, a rule), apart from its neighbours."""
        self.joined.append(False)
        self.in_list_run = False
        self.blocks.append(block)

    def token(self, tok: Token) -> None:
        t = tok.type
        if t == "inline":
            # Headings are underlined; everything else is a paragraph or list item.
            self.emit(inline_text(tok.children))
        elif t == "heading_close":
            title = self.blocks[-1]
            rule = ("=" if tok.tag == "h1" else "-") * min(len(title), self.width)
            self.blocks[-1] = f"{title}\n{rule}"
        elif t == "bullet_list_open":
            self.lists.append([None])
        elif t == "ordered_list_open":
            self.lists.append([int(tok.attrGet("start") or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            if not self.lists:
                self.in_list_run = False
        elif t == "list_item_open":
            counter = self.lists[-1]
            if counter[0] is None:
                self.pending_item_marker = "- "
            else:
                self.pending_item_marker = f"{counter[0]}. "
                counter[0] += 1
        elif t == "blockquote_open":
            self.prefix_stack.append("> ")
        elif t == "blockquote_close":
            self.prefix_stack.pop()
        elif t in ("fence", "code_block"):
            self.add("\n".join("    " + line for line in tok.content.rstrip("\n").split("\n")))
        elif t == "hr":
            self.add("-" * 20)
        elif t == "html_block" and html_text(tok.content):
            self.emit(html_text(tok.content))

    def text(self) -> str:
        out: list[str] = []
        for block, join in zip(self.blocks, self.joined, strict=True):
            if out and join:
                out[-1] += "\n" + block
            else:
                out.append(block)
        return "\n\n".join(out).strip("\n")


def first_paragraph_text(tokens: Sequence[Token]) -> str:
    """The text of the first paragraph (the summary when the front matter has none)."""
    for i, tok in enumerate(tokens):
        if tok.type == "paragraph_open" and i + 1 < len(tokens):
            return inline_text(tokens[i + 1].children).replace("\n", " ")
    return ""


# -- French typography -------------------------------------------------------------------------
#
# In French, `: ; ! ?` and `»` take a space before them and `«` one after, which must not break
# (a line starting with `?` or ending with `«` is wrong). We use U+00A0 NO-BREAK SPACE for all
# of them, as labels.py does for its colon: every email font has it, whereas the narrow U+202F
# is missing from some (Outlook on Windows draws it wide or as a box). A U+202F or U+00A0
# already in the source is kept as written.

NBSP = "\u00a0"
#: The languages `typeset` changes anything for.
TYPESET_LANGUAGES = frozenset({"fr"})
_NO_BREAK = "\u00a0\u202f"
_MARKS = ":;!?"
# After these, a mark gets no space: "?!", "(?)", a mark at the start of a line.
_NO_SPACE_AFTER = frozenset(" \t\n\r«([{/" + _NO_BREAK + _MARKS)
# A mark gets a space inserted only when it ends a word: "Bonjour!", "Quoi?!" but not "10:30",
# "a:b", "std::vector".
_ENDS_AFTER = frozenset(".,…)]}»'\"’”")
_PUNCT_RE = re.compile(r"[:;!?«»]")
_SPACES_BEFORE_RE = re.compile(r"[ \t]+(?=[:;!?»])")
_SPACES_AFTER_OPEN_RE = re.compile(r"(?<=«)[ \t]+")
# URLs are left exactly as written, trailing punctuation excepted (as linkifiers do).
_URL_RE = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.|\bmailto:)[^\s<>«»\"]*[^\s<>«»\".,;:!?)'’]", re.I
)


def french_spacing(text: str, *, before: str = "", after: str = "") -> str:
    """`text` with no-break spaces before `: ; ! ?` and `»` and after `«`, straight quotes
    made French (`_quoted`), URLs untouched.

    An ordinary space there becomes a no-break one; where there is none, one is inserted,
    except inside URLs and between non-space characters ("10:30", "std::vector").
    `before` / `after`: the characters around `text` (the neighbouring Markdown tokens).
    """
    out: list[str] = []
    pos = 0
    for m in _URL_RE.finditer(text):
        out.append(_spaced(text[pos : m.start()], before=_last(out, before), after=m.group(0)[0]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_spaced(text[pos:], before=_last(out, before), after=after))
    return "".join(out)


def _last(parts: list[str], default: str) -> str:
    for part in reversed(parts):
        if part:
            return part[-1]
    return default


def _quoted(text: str, *, before: str, after: str) -> str:
    """Straight quotes made French: `'` after a letter -> ’, `"` -> « or » by its side.

    A `"` opens where nothing or a space (or an opening bracket) is before it, else it closes;
    `before` is the character of the previous token, so `"**mot**"` pairs across the markup.
    A `'` not after a letter (`'80`) is left: it is no apostrophe we can be sure of.
    """
    if "'" not in text and '"' not in text:
        return text
    out: list[str] = []
    depth = 0  # quotes opened in this text and not yet closed: `" oui "` closes the second
    for i, ch in enumerate(text):
        prev = out[-1] if out else before
        if ch == "'" and prev and (prev.isalpha() or prev == "’"):
            out.append("’")
        elif ch == '"':
            nxt = text[i + 1] if i + 1 < len(text) else after
            space_before = not prev or prev.isspace() or prev in _NO_BREAK + "([{/—–-"
            space_after = not nxt or nxt.isspace() or nxt in _NO_BREAK + ".,;:!?)]}…"
            opens = space_before and not (space_after and depth > 0)
            depth += 1 if opens else -1
            out.append("«" if opens else "»")
        else:
            out.append(ch)
    return "".join(out)


def _spaced(text: str, *, before: str, after: str) -> str:
    if not text:
        return text
    text = _quoted(text, before=before, after=after)
    text = _SPACES_BEFORE_RE.sub(NBSP, text)
    text = _SPACES_AFTER_OPEN_RE.sub(NBSP, text)
    # Spaces at the edges whose mark is in the neighbouring token.
    if before == "«" and text[0] in " \t":
        text = NBSP + text.lstrip(" \t")
    if after and after in _MARKS + "»" and text[-1] in " \t":
        text = text.rstrip(" \t") + NBSP
    out: list[str] = []
    pos, n = 0, len(text)
    for m in _PUNCT_RE.finditer(text):
        i, ch = m.start(), m.group(0)
        prev = text[i - 1] if i else before
        nxt = text[i + 1] if i + 1 < n else after
        out.append(text[pos:i])
        pos = i + 1
        if ch in _MARKS:
            ends = (
                not nxt
                or nxt.isspace()
                or nxt in _NO_BREAK
                or nxt in _ENDS_AFTER
                or (ch in "!?" and nxt in "!?")
            )
            if prev and prev not in _NO_SPACE_AFTER and ends:
                out.append(NBSP)
            out.append(ch)
        elif ch == "»":
            if prev and not prev.isspace() and prev not in _NO_BREAK and prev != "«":
                out.append(NBSP)
            out.append(ch)
        else:  # «
            out.append(ch)
            if nxt and not nxt.isspace() and nxt not in _NO_BREAK and nxt != "»":
                out.append(NBSP)
    out.append(text[pos:])
    return "".join(out)


def typeset(tokens: Sequence[Token], language: str) -> list[Token]:
    """The tokens with `language`'s typography applied to their text (French: `french_spacing`).

    Only `text` tokens change: code spans and blocks, link targets, image alt text and
    autolinks are left as they are. The input tokens are not modified.
    """
    if language not in TYPESET_LANGUAGES:
        return list(tokens)
    return [
        tok.copy(children=_typeset_inline(tok.children))
        if tok.type == "inline" and tok.children
        else tok
        for tok in tokens
    ]


def typeset_text(text: str, language: str) -> str:
    """A plain-text string (a title, a summary from front matter) typeset for `language`."""
    return french_spacing(text) if language in TYPESET_LANGUAGES else text


def _visible(tok: Token) -> str:
    """What a token shows, for the characters around a text token."""
    if tok.type == "text":
        return tok.content
    if tok.type in ("code_inline", "image"):
        return "x"  # a word: "`ls`!" is spaced, but a `!` inside code is not a mark
    if tok.type == "softbreak":
        return " "
    if tok.type == "hardbreak":
        return "\n"
    return ""


def _typeset_inline(children: Sequence[Token]) -> list[Token]:
    out = list(children)
    in_autolink = False
    shown = [_visible(tok) for tok in children]
    for i, tok in enumerate(children):
        if tok.type == "link_open":
            in_autolink = tok.markup == "autolink"
        elif tok.type == "link_close":
            in_autolink = False
        elif tok.type == "text" and not in_autolink:
            before = next((s[-1] for s in reversed(shown[:i]) if s), "")
            after = next((s[0] for s in shown[i + 1 :] if s), "")
            content = french_spacing(tok.content, before=before, after=after)
            if content != tok.content:
                out[i] = tok.copy(content=content)
                shown[i] = content
    return out
