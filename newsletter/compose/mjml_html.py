"""MJML -> HTML (mjml-python), the CSS inlined (premailer), and the MJML a template produced
checked for elements mjml-python does not know."""

from __future__ import annotations

import functools
import logging
import re
import sys
import types
from dataclasses import dataclass
from typing import Any

from newsletter.errors import TemplateError
from newsletter.layout import Layout

HTML_TEMPLATE = "email.mjml.j2"


@dataclass(frozen=True)
class MjmlWarning:
    line: int
    message: str


def mjml_to_html(source: str, *, layout: Layout) -> str:
    import mjml

    try:
        # fonts={}: no Google Fonts <link> (remote fonts are blocked or slow in most clients).
        html = str(mjml.mjml2html(source, fonts={}))
    except ValueError as exc:
        raise TemplateError(
            f"MJML could not be rendered: {exc}",
            path="build/email.mjml",
            hint=f"check the tags in {layout.rel(layout.templates_dir / HTML_TEMPLATE)}",
        ) from None
    return _ARIA_LABEL_RE.sub(_unescape_rust, html)


# mjml-python (mrml) writes the title into the body's aria-label with Rust's debug escapes
# (`Novembre\u{a0}: …`), which a screen reader would read out; put the characters back.
_ARIA_LABEL_RE = re.compile(r'aria-label="[^"]*\\u\{[0-9a-f]{1,6}\}[^"]*"')
_RUST_ESCAPE_RE = re.compile(r"\\u\{([0-9a-f]{1,6})\}")


def _unescape_rust(m: re.Match[str]) -> str:
    return _RUST_ESCAPE_RE.sub(lambda e: chr(int(e.group(1), 16)), m.group(0))


_PROTECT_RE = re.compile(r"\{\{ ([A-Za-z_][A-Za-z0-9_]*) \}\}")
_TOKEN_RE = re.compile(r"NLFIELDx([A-Za-z_][A-Za-z0-9_]*)xNLFIELD")
_DOCTYPE_RE = re.compile(r"^\s*<!doctype[^>]*>\s*", re.I)


def inline_css(html: str) -> str:
    """Inline the CSS with premailer, keeping what email clients need.

    Premailer's defaults would strip `!important` in the media queries it keeps (the mobile
    layout would be lost), drop a lowercase doctype, and URL-quote `{{ x }}` in hrefs;
    each is prevented here and tested.
    """
    Premailer = _premailer()
    protected = _PROTECT_RE.sub(r"NLFIELDx\1xNLFIELD", html)
    body = _DOCTYPE_RE.sub("", protected)
    inliner = Premailer(
        body,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        disable_validation=True,
        allow_network=False,
        session=_NoNetwork(),
        cssutils_logging_level=logging.CRITICAL,
        method="html",
    )
    out = inliner.transform(pretty_print=False)
    out = _DOCTYPE_RE.sub("", out)
    out = _TOKEN_RE.sub(r"{{ \1 }}", out)
    return "<!doctype html>\n" + out.strip() + "\n"


class _NoNetwork:
    """premailer's HTTP session: remote stylesheets are never fetched."""

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        raise TemplateError(
            f"the email links a remote stylesheet ({url})",
            hint="put the CSS in <mj-style> in the template; email clients drop <link>",
        )


def _premailer() -> Any:
    """premailer's Premailer class, without paying for `requests` at import time.

    premailer imports requests only to fetch remote stylesheets, which we never allow (we
    pass allow_network=False and our own `_NoNetwork` session). Importing requests costs
    about 60 ms, a tenth of a whole build-issue process, so premailer is imported against an
    empty stand-in module, removed right after so that anything else gets the real one.
    """
    if "premailer" not in sys.modules and "requests" not in sys.modules:
        stand_in = types.ModuleType("requests", "stand-in: premailer never fetches here")
        sys.modules["requests"] = stand_in
        try:
            import premailer  # noqa: F401
        finally:
            if sys.modules.get("requests") is stand_in:
                del sys.modules["requests"]
    from premailer import Premailer, merge_style

    # premailer validates every inline style against cssutils' CSS profiles only to log
    # warnings, which we silence anyway (cssutils_logging_level=CRITICAL); compiling those
    # profiles' regular expressions costs ~150 ms per process. Same output without it
    # (tests/test_render.py compares both).
    if not getattr(merge_style, "_newsletter_unvalidated", False):
        validating = merge_style.csstext_to_pairs
        unvalidated: Any = functools.partial(validating, validate=False)
        unvalidated._lock = validating._lock  # the function looks its lock up by its own name
        merge_style.csstext_to_pairs = unvalidated
        merge_style._newsletter_unvalidated = True
    return Premailer


_KNOWN_TAGS = frozenset(
    [
     "mjml", "mj-head", "mj-body", "mj-attributes", "mj-all", "mj-class", "mj-breakpoint",
     "mj-font", "mj-html-attributes", "mj-html-attribute", "mj-selector", "mj-preview",
     "mj-style", "mj-title", "mj-include", "mj-accordion", "mj-accordion-element",
     "mj-accordion-title", "mj-accordion-text", "mj-button", "mj-carousel", "mj-carousel-image",
     "mj-column", "mj-divider", "mj-group", "mj-hero", "mj-image", "mj-navbar", "mj-navbar-link",
     "mj-raw", "mj-section", "mj-social", "mj-social-element", "mj-spacer", "mj-table",
     "mj-text", "mj-wrapper",
    ]
)
_TAG_RE = re.compile(r"<(mj-[a-z-]+)([^>]*)>")


def lint_mjml(source: str) -> list[MjmlWarning]:
    """What mjml-python accepts silently but renders wrong: unknown tags, images without alt."""
    warnings: list[MjmlWarning] = []
    for m in _TAG_RE.finditer(source):
        tag, attrs = m.group(1), m.group(2)
        line = source.count("\n", 0, m.start()) + 1
        if tag not in _KNOWN_TAGS:
            warnings.append(MjmlWarning(line, f"unknown MJML element <{tag}>"))
        elif tag == "mj-image" and not re.search(r'\balt="[^"]+"', attrs):
            warnings.append(MjmlWarning(line, "<mj-image> has no alt text"))
    return warnings
