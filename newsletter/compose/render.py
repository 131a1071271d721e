"""Issue -> MJML (Jinja2) -> HTML (mjml-python) -> inlined CSS (premailer), and the text part.

Per-recipient fields stay in the output as placeholders (`{{ name }}`, `{{ unsubscribe_url }}`,
...), filled for each subscriber by `message.py` without rendering again.
"""

from __future__ import annotations

import re
import secrets
import time
import traceback
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import jinja2
from markdown_it.token import Token
from markupsafe import Markup, escape

from newsletter.compose import mjml_html
from newsletter.compose.issue import Issue
from newsletter.compose.markup import parse, to_html, to_text, typeset
from newsletter.compose.mjml_html import MjmlWarning, inline_css, lint_mjml, mjml_to_html
from newsletter.errors import TemplateError
from newsletter.labels import Labels, labels_for, long_date
from newsletter.layout import Layout
from newsletter.placeholders import PLACEHOLDER_RE, RECIPIENT_FIELDS, escape_braces

HTML_TEMPLATE = mjml_html.HTML_TEMPLATE
TEXT_TEMPLATE = "email.txt.j2"
#: The default email theme, shipped in the package. A folder's templates/ overrides it file by
#: file; `theme/<name>` always names the packaged file, so an override can extend it.
EMAIL_THEME_DIR = Path(__file__).resolve().parent.parent / "theme" / "email"
THEME_PREFIX = "theme"


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


def _tidy_text(text: str) -> str:
    # At most one blank line in a row, no trailing spaces: the text part is read as is.
    lines = [line.rstrip() for line in text.splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"
