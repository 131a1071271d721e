"""Markdown to an HTML fragment and to readable plain text, from one token stream."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

WIDTH = 72


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Raw HTML in articles is escaped: the email's markup comes from the templates only.
    return MarkdownIt("commonmark", {"html": False})


def parse(source: str) -> list[Token]:
    return _parser().parse(source)


def to_html(tokens: Sequence[Token]) -> str:
    return str(_parser().renderer.render(tokens, _parser().options, {}))


def inline_text(tokens: Sequence[Token] | None) -> str:
    """The words of an inline run, links written as `text (url)`."""
    out: list[str] = []
    href_stack: list[str] = []
    start_stack: list[int] = []
    for tok in tokens or ():
        if tok.type in ("text", "code_inline", "html_inline"):
            out.append(tok.content)
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
    blocks: list[str] = []
    joined: list[bool] = []  # True: the block follows the previous one without a blank line
    in_list_run = False
    lists: list[list[int | None]] = []  # a counter per open list; None for bullets
    prefix_stack: list[str] = []
    pending_item_marker: str | None = None

    def emit(text: str) -> None:
        nonlocal pending_item_marker, in_list_run
        joined.append(bool(lists) and in_list_run)
        in_list_run = bool(lists)
        indent = "   " * max(len(lists) - 1, 0)
        quote = "".join(prefix_stack)
        if pending_item_marker is not None:
            first = quote + indent + pending_item_marker
            rest = quote + indent + " " * len(pending_item_marker)
            pending_item_marker = None
        else:
            first = rest = quote + indent + ("  " if lists else "")
        lines: list[str] = []
        for i, para_line in enumerate(text.split("\n")):
            wrapped = textwrap.wrap(
                para_line,
                width=max(width - len(first), 20),
                break_long_words=False,
                break_on_hyphens=False,
            ) or [""]
            for j, w in enumerate(wrapped):
                lines.append((first if i == 0 and j == 0 else rest) + w)
        blocks.append("\n".join(lines))

    def add(block: str) -> None:
        nonlocal in_list_run
        joined.append(False)
        in_list_run = False
        blocks.append(block)

    for tok in tokens:
        t = tok.type
        if t == "heading_open":
            continue
        if t == "inline":
            # Headings are underlined; everything else is a paragraph or list item.
            text = inline_text(tok.children)
            emit(text)
        elif t == "heading_close":
            title = blocks[-1]
            blocks[-1] = f"{title}\n{('=' if tok.tag == 'h1' else '-') * min(len(title), width)}"
        elif t == "bullet_list_open":
            lists.append([None])
        elif t == "ordered_list_open":
            lists.append([int(tok.attrGet("start") or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                in_list_run = False
        elif t == "list_item_open":
            counter = lists[-1]
            if counter[0] is None:
                pending_item_marker = "- "
            else:
                pending_item_marker = f"{counter[0]}. "
                counter[0] += 1
        elif t == "blockquote_open":
            prefix_stack.append("> ")
        elif t == "blockquote_close":
            prefix_stack.pop()
        elif t in ("fence", "code_block"):
            add("\n".join("    " + line for line in tok.content.rstrip("\n").split("\n")))
        elif t == "hr":
            add("-" * 20)
    out: list[str] = []
    for block, join in zip(blocks, joined, strict=True):
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
