"""Issue -> MJML (Jinja2) -> HTML (mjml-python) -> inlined CSS (premailer), and the text part.

Per-recipient fields stay in the output as placeholders (`{{ name }}`, `{{ unsubscribe_url }}`,
...), filled for each subscriber by `message.py` without rendering again.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import jinja2
from markdown_it.token import Token
from markupsafe import Markup, escape

from newsletter.compose.issue import Issue
from newsletter.compose.markup import parse, to_html, to_text, typeset
from newsletter.errors import TemplateError
from newsletter.labels import Labels, labels_for, long_date
from newsletter.layout import Layout
from newsletter.placeholders import PLACEHOLDER_RE, RECIPIENT_FIELDS, escape_braces

HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
#: The default email theme, shipped in the package. A folder's templates/ overrides it file by
#: file; `theme/<name>` always names the packaged file, so an override can extend it.
EMAIL_THEME_DIR = Path(__file__).resolve().parent.parent / "theme" / "email"
THEME_PREFIX = "theme"


@dataclass(frozen=True)
class MjmlWarning:
    line: int
    message: str


@dataclass(frozen=True)
class RenderedIssue:
    mjml: str
    html: str
    text: str
    mjml_warnings: tuple[MjmlWarning, ...] = field(default=())
    placeholders: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Newsletter:
    """What the templates know about the newsletter itself (from the settings)."""

    name: str
    sender: str
    postal_address: str
    language: str


class Placeholder(Markup):
    """A per-recipient field the template asked for: the only `{{ x }}` a build may hold.

    While a template renders it is a marker no text can spell (private-use characters around
    a per-process random key), so that `_finalize` may escape every `{{` it sees, even in the
    output of `{{ super() }}`, and `_unmark` turns the markers into `{{ name }}` afterwards.
    """


_MARK_KEY = secrets.token_hex(8)
_MARK_RE = re.compile(f"\ue000{_MARK_KEY}:([A-Za-z_][A-Za-z0-9_]*)\ue001")


def placeholder(name: str) -> Markup:
    return Placeholder(f"\ue000{_MARK_KEY}:{name}\ue001")


def _unmark(rendered: str) -> str:
    return _MARK_RE.sub(lambda m: f"{{{{ {m.group(1)} }}}}", rendered)


def _finalize(value: Any) -> Any:
    """Every `{{ expression }}` a template outputs: braces in text (an article's `{{ name }}`)
    are escaped so that they stay text and the send never fills them (issue 13)."""
    if isinstance(value, Placeholder) or not isinstance(value, str):
        return value
    escaped = escape_braces(value)
    if escaped is value:
        return value
    return Markup(escaped) if isinstance(value, Markup) else escaped


class _Subscriber:
    """`{{ subscriber.ville }}` in a template leaves `{{ ville }}` for the send to fill."""

    def __getattr__(self, name: str) -> Markup:
        if name.startswith("_"):
            raise AttributeError(name)
        return placeholder(name)

    def __getitem__(self, name: str) -> Markup:
        return placeholder(name)


def make_env(templates_dir: Path) -> jinja2.Environment:
    theme = jinja2.FileSystemLoader(str(EMAIL_THEME_DIR))
    env = jinja2.Environment(
        # As mkdocs' custom_dir: the user's file if there is one, else the theme's. The prefixed
        # loader comes first so that `{% extends "theme/email.mjml.j2" %}` in a user's
        # email.mjml.j2 reaches the packaged file, never itself.
        loader=jinja2.ChoiceLoader([
            jinja2.PrefixLoader({THEME_PREFIX: theme}),
            jinja2.FileSystemLoader(str(templates_dir)),
            theme,
        ]),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: name is not None and not name.endswith(".txt.j2"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["long_date"] = long_date
    env.filters["markdown_html"] = jinja2.pass_context(
        lambda ctx, s: Markup(to_html(_markdown(ctx, s)))
    )
    env.filters["markdown_text"] = jinja2.pass_context(lambda ctx, s: to_text(_markdown(ctx, s)))
    env.filters["nowrap_hyphens"] = nowrap_hyphens
    return env


_HYPHENATED_RE = re.compile(r"\w+(?:-\w+)+")


def nowrap_hyphens(text: str) -> Markup:
    """A title whose hyphenated words ("e-mails") cannot break at their hyphen.

    A `white-space:nowrap` span rather than U+2011 NON-BREAKING HYPHEN: copied or searched,
    the title keeps its ordinary hyphen, and no font lacks it (Outlook draws a missing U+2011
    as a box).
    """
    escaped = str(escape(text))
    return Markup(_HYPHENATED_RE.sub(
        lambda m: f'<span style="white-space:nowrap">{m.group(0)}</span>', escaped
    ))


def _markdown(context: jinja2.runtime.Context, source: str | None) -> list[Token]:
    # Typeset in the language of the issue being rendered (French spacing for "fr").
    return typeset(parse(source or ""), str(getattr(context.get("issue"), "language", "")))


def render_issue(
    issue: Issue,
    /,
    *,
    layout: Layout,
    newsletter: Newsletter,
    timings: dict[str, float] | None = None,
    archive_url: str = "",
) -> RenderedIssue:
    """Render MJML, HTML and text for `issue`. Raises TemplateError naming template and line.

    `archive_url`: the issue's public page (the "view in browser" link), "" for none.
    """
    clock = _Clock(timings)
    env = make_env(layout.templates_dir)
    labels = labels_for(issue.language)
    context = _context(issue, newsletter, labels)
    context["archive_url"] = archive_url
    mjml_source = _render_template(env, HTML_TEMPLATE, context, layout)
    clock.lap("jinja2")
    raw_html = mjml_to_html(mjml_source, layout=layout)
    warnings = tuple(lint_mjml(mjml_source))
    clock.lap("mjml")
    html = inline_css(raw_html)
    clock.lap("inline")
    text = _render_template(env, TEXT_TEMPLATE, context, layout)
    clock.lap("text")
    names = sorted(set(PLACEHOLDER_RE.findall(html)) | set(PLACEHOLDER_RE.findall(text)))
    return RenderedIssue(
        mjml=mjml_source,
        html=html,
        text=_tidy_text(text),
        mjml_warnings=warnings,
        placeholders=tuple(names),
    )


class _Clock:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def _context(issue: Issue, newsletter: Newsletter, labels: Labels) -> dict[str, Any]:
    return {
        "issue": issue,
        "articles": issue.articles,
        "signed": signed_articles(issue),
        "labels": labels,
        "newsletter": newsletter,
        "subscriber": _Subscriber(),
        **{name: placeholder(name) for name in RECIPIENT_FIELDS},
    }


def signed_articles(issue: Issue) -> frozenset[str]:
    """The slugs of the articles that end with their author's full signature: each author's
    last article of the issue (the others get a one-line "Rédigé par")."""
    last = {article.author.key: article.slug for article in issue.articles}
    return frozenset(last.values())


def newsletter_from_settings(sender: str, postal_address: str, language: str) -> Newsletter:
    name = parseaddr(sender)[0] or parseaddr(sender)[1]
    return Newsletter(name=name, sender=sender, postal_address=postal_address, language=language)


def _render_template(
    env: jinja2.Environment, name: str, context: dict[str, Any], layout: Layout
) -> str:
    rel = f"templates/{name}"
    try:
        template = env.get_template(name)
        rel = _shown(template.filename, layout) or rel
        return _unmark(template.render(context))
    except jinja2.TemplateNotFound as exc:
        in_theme = str(exc.name).startswith(f"{THEME_PREFIX}/")
        shipped = ", ".join(sorted(p.name for p in EMAIL_THEME_DIR.glob("*.j2")))
        raise TemplateError(
            f"template '{exc.name}' not found",
            path=None if in_theme else f"templates/{exc.name}",
            hint=f"the packaged theme has {THEME_PREFIX}/ + one of: {shipped}" if in_theme
            else f"put it in templates/, or name a file of the theme as '{THEME_PREFIX}/<name>'",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = _shown(exc.filename, layout) or f"templates/{exc.name or name}"
        raise TemplateError(
            f"template syntax: {exc.message}", path=where, line=exc.lineno,
            hint="fix the Jinja2 syntax",
        ) from None
    except jinja2.UndefinedError as exc:
        where, line = _template_frame(exc, layout) or (rel, None)
        raise TemplateError(
            f"undefined variable: {exc.message}",
            path=where,
            line=line,
            hint="check the spelling; docs/folder.md lists the variables templates get",
        ) from None
    except Exception as exc:  # a filter or a test raised: still one line, with the place
        where, line = _template_frame(exc, layout) or (rel, None)
        raise TemplateError(f"{type(exc).__name__}: {exc}", path=where, line=line) from None


def _shown(filename: str | None, layout: Layout) -> str | None:
    """A template in messages: templates/x, or the theme's own file (a path one can open)."""
    return layout.rel(Path(filename)) if filename else None


def _template_frame(exc: BaseException, layout: Layout) -> tuple[str, int] | None:
    # Jinja2 rewrites tracebacks so that template frames carry the template's file and line:
    # the innermost frame in a user's template or in the theme is where the error is.
    roots = (str(layout.templates_dir), str(EMAIL_THEME_DIR))
    found: tuple[str, int] | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(roots) and frame.lineno is not None:
            found = (layout.rel(Path(frame.filename)), frame.lineno)
    return found


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


def _tidy_text(text: str) -> str:
    # At most one blank line in a row, no trailing spaces: the text part is read as is.
    lines = [line.rstrip() for line in text.splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"
