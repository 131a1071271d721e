"""What email clients will do to the issue, checked before anyone receives it.

Checks return data (a list of findings), each an "error" or a "warning". `build_issue` writes
nothing when there is an error (or, with `--strict`, any finding); the CLI prints them all.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass

from newsletter.compose.issue import Issue
from newsletter.compose.markup import parse, to_html
from newsletter.compose.render import RenderedIssue
from newsletter.findings import Finding as Finding  # re-exported: build and preview import it here

#: Gmail's clip ("[Message clipped] View entire message"), roughly: its own figure is 102 KB.
GMAIL_CLIP_BYTES = 102 * 1024
#: Measured on the message as sent (headers and the encoded HTML part). Below Gmail's figure,
#: which is not documented byte for byte, and because the send adds a DKIM-Signature header.
GMAIL_CLIP_WARN_BYTES = 90 * 1024
GMAIL_CLIP_ERROR_BYTES = 100 * 1024
#: Gmail ignores a <style> block over this size (we count them together).
STYLE_MAX_BYTES = 16 * 1024
SUBJECT_MAX_CHARS = 78

_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_UNSUBSCRIBE_HREF_RE = re.compile(r"""\bhref\s*=\s*(["'])\{\{ unsubscribe_url \}\}\1""", re.I)
_HTML_TAG_RE = re.compile(r"<html\b[^>]*>", re.I)
_TABLE_RE = re.compile(r"<table\b[^>]*>", re.I)
_LINK_RE = re.compile(r"<link\b[^>]*>", re.I)
_STYLE_RE = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.I | re.S)
_FONT_FACE_RE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)
_REMOTE_URL_RE = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)
_TAG_RE = re.compile(r"<[^>]+>")
# Words that name a tracking image in its URL ("/track/open.gif", "pixel.png"), as whole
# words: "opening-hours.jpg" is an image.
_TRACKING_WORDS = frozenset(
    ["open", "opens", "opened", "track", "tracks", "tracking", "tracker", "pixel", "pixels"]
)


def error(code: str, message: str, where: str) -> Finding:
    return Finding(code, "error", message, where)


def warning(code: str, message: str, where: str) -> Finding:
    return Finding(code, "warning", message, where)


def check(
    rendered: RenderedIssue, issue: Issue, /, *, message: bytes, postal_address: str
) -> list[Finding]:
    """Every finding about the issue, in a stable order.

    `message`: the complete message as the sample reader gets it (`email.eml`), on which the
    Gmail clip is measured. `postal_address`: NEWSLETTER_POSTAL_ADDRESS.
    """
    html = rendered.html
    findings: list[Finding] = []
    findings += _gmail_clip(html, message)
    findings += _html_lang(html, issue)
    findings += _images(html)
    findings += _layout_tables(html, issue)
    styles = _STYLE_RE.findall(html)
    findings += _remote_css(html, styles)
    findings += _style_size(styles)
    if not issue.preheader.strip():
        findings.append(warning(
            "empty-preheader",
            "the preheader is empty; inboxes will show the first words of the email instead "
            "(set preheader = \"…\")",
            issue.source,
        ))
    if len(issue.subject) > SUBJECT_MAX_CHARS:
        findings.append(warning(
            "long-subject",
            f"the subject has {len(issue.subject)} characters; over {SUBJECT_MAX_CHARS} it is "
            "cut in most inboxes",
            issue.source,
        ))
    # Each part needs its own link: some clients and readers only ever show the text part.
    if not _UNSUBSCRIBE_HREF_RE.search(html):
        findings.append(error(
            "no-unsubscribe",
            "the HTML part has no unsubscribe link "
            "(put <a href=\"{{ unsubscribe_url }}\"> in the template)",
            "templates/email.mjml.j2",
        ))
    if "{{ unsubscribe_url }}" not in rendered.text:
        findings.append(error(
            "no-unsubscribe",
            "the text part has no unsubscribe link (put {{ unsubscribe_url }} in the template)",
            "templates/email.txt.j2",
        ))
    findings += _postal_address(rendered, postal_address)
    findings += _articles(issue)
    for w in rendered.mjml_warnings:
        findings.append(warning("mjml", w.message, f"email.mjml:{w.line}"))
    return findings


# -- size --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSize:
    """What Gmail's clip is measured on, as the message is sent."""

    raw: int  # email.html, UTF-8
    sent: int  # the top-level headers + the text/html part (its headers, quoted-printable body)
    eight_bit: int  # the same with the HTML as 8bit (raw, CRLF line ends) instead


def clip_size(html: str, message: bytes) -> ClipSize:
    raw = html.encode("utf-8")
    head_end = message.find(b"\r\n\r\n") + 4
    head = message[:head_end] if head_end > 3 else message
    part = _html_part(message, head)
    part_head = part[: part.find(b"\r\n\r\n") + 4]
    return ClipSize(
        raw=len(raw),
        sent=len(head) + len(part) if part else len(message),
        eight_bit=len(head) + len(part_head) + len(raw.replace(b"\n", b"\r\n")),
    )


def _html_part(message: bytes, head: bytes) -> bytes:
    """The text/html part of a multipart message: its MIME headers and its encoded body."""
    m = re.search(rb"""boundary\s*=\s*"?([^";\r\n]+)"?""", head, re.I)
    if m is None:
        return b""
    body = b"\r\n" + message[len(head) :]
    for part in body.split(b"\r\n--" + m.group(1))[1:]:
        part = part.removeprefix(b"\r\n")
        headers = part[: part.find(b"\r\n\r\n") + 2]
        if re.search(rb"(?im)^content-type:\s*text/html", headers):
            return part
    return b""


def _gmail_clip(html: str, message: bytes) -> list[Finding]:
    size = clip_size(html, message)
    if size.sent <= GMAIL_CLIP_WARN_BYTES:
        return []
    # Quoted-printable (what message.py writes) makes each `=` of the HTML `=3D`, each é
    # `=C3=A9`, and ends every 76 characters with a soft break: it is what Gmail counts.
    eight_bit = (
        f"; as 8bit, where the relay offers 8BITMIME, {_kb(size.eight_bit)}"
        if size.eight_bit < size.sent
        else ""
    )
    text = (
        f"the HTML part is {_kb(size.sent)} as sent (quoted-printable, with the headers; "
        f"email.html is {_kb(size.raw)} raw{eight_bit}); Gmail clips messages from about "
        f"{GMAIL_CLIP_ERROR_BYTES // 1024} KB, hiding the end and the unsubscribe link "
        "(use mode = \"excerpt\" or fewer articles)"
    )
    if size.sent > GMAIL_CLIP_ERROR_BYTES:
        return [error("gmail-clip", text, "email.html")]
    return [warning("gmail-clip", text, "email.html")]


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


# -- structure ---------------------------------------------------------------------------------


def _html_lang(html: str, issue: Issue) -> list[Finding]:
    tag = _HTML_TAG_RE.search(html)
    attrs = _attributes(tag.group(0)) if tag else {}
    lang, direction = attrs.get("lang", "").strip(), attrs.get("dir", "").strip().lower()
    problems = []
    # mjml writes lang="und" (undetermined) when <mjml> has no lang.
    if not lang or lang.lower() == "und":
        problems.append("no lang")
    elif lang.lower().split("-")[0] != issue.language:
        problems.append(f'lang="{lang}" for an issue in "{issue.language}"')
    if direction not in ("ltr", "rtl", "auto"):
        problems.append("no dir")
    if not problems:
        return []
    return [error(
        "html-lang",
        f"<html> has {' and '.join(problems)}; screen readers and clients need both "
        "(write <mjml lang=\"{{ issue.language }}\" dir=\"ltr\"> in the template)",
        "templates/email.mjml.j2",
    )]


def _layout_tables(html: str, issue: Issue) -> list[Finding]:
    tables = _TABLE_RE.findall(html)  # conditional comments for Outlook included
    bare = sum(1 for t in tables if _attributes(t).get("role", "").lower() != "presentation")
    # Tables written in the Markdown of the intro or the articles are data (exempt). The
    # commonmark parser has no table syntax today, so there are none; this keeps it true.
    fragments = [to_html(parse(issue.intro or ""))]
    if issue.mode == "full":
        fragments += [a.body_html for a in issue.articles]
    from_markdown = sum(len(_TABLE_RE.findall(f)) for f in fragments)
    lacking = bare - from_markdown
    if lacking <= 0:
        return []
    return [error(
        "table-role",
        f"{lacking} of {len(tables) - from_markdown} layout table(s) lack role=\"presentation\"; "
        "screen readers would read them as data tables (add role=\"presentation\" to each "
        "<table> of the template)",
        "templates/email.mjml.j2",
    )]


def _images(html: str) -> list[Finding]:
    findings = []
    for m in _IMG_RE.finditer(html):
        attrs = _attributes(m.group(0))
        src = attrs.get("src") or "(no src)"
        if not attrs.get("alt", "").strip():
            findings.append(error(
                "missing-alt",
                f"image {src} has no alt text "
                "(set image_alt in the article's front matter, or alt=\"…\" in the template)",
                "email.html",
            ))
        why = _tracking(attrs)
        if why:
            findings.append(error(
                "tracking-pixel",
                f"image {src} looks like a tracking pixel ({why}); this newsletter does not "
                "track its readers (remove it from the template)",
                "email.html",
            ))
    return findings


def _tracking(attrs: dict[str, str]) -> str:
    style = _declarations(attrs.get("style", ""))
    width = (attrs.get("width", ""), style.get("width", ""))
    height = (attrs.get("height", ""), style.get("height", ""))
    # premailer turns height="1" into "auto" (mjml's CSS gives every img height:auto), so
    # 1 px wide at its natural height counts too: a 1×1 GIF.
    if (_at_most_1px(*width) and (_at_most_1px(*height) or _natural(*height))) or (
        _at_most_1px(*height) and _natural(*width)
    ):
        return "1×1"
    words = set(re.split(r"[^a-z0-9]+", attrs.get("src", "").lower()))
    named = sorted(words & _TRACKING_WORDS)
    return f"its URL says “{named[0]}”" if named else ""


def _natural(*values: str) -> bool:
    return all(v.strip().lower() in ("", "auto") for v in values)


def _at_most_1px(*values: str) -> bool:
    for value in values:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*", value)
        if m and float(m.group(1)) <= 1:
            return True
    return False


# -- CSS ---------------------------------------------------------------------------------------


def _remote_css(html: str, styles: list[str]) -> list[Finding]:
    findings = []
    font_links = 0
    for link in _LINK_RE.findall(html):
        attrs = _attributes(link)
        href = attrs.get("href", "")
        if re.search(r"fonts\.(?:googleapis|gstatic)\.com", href, re.I):
            font_links += 1
            findings.append(error(
                "remote-font",
                f"<link> to the web font {href}: most clients block it, and it slows the "
                "others (remove <mj-font>; name fonts the readers have in font-family)",
                "templates/email.mjml.j2",
            ))
        elif "stylesheet" in attrs.get("rel", "").lower().split():
            findings.append(error(
                "stylesheet-link",
                f"<link rel=\"stylesheet\" href=\"{href}\">: email clients drop linked "
                "stylesheets (put the CSS in <mj-style>)",
                "templates/email.mjml.j2",
            ))
    css = "\n".join(styles)
    imports = re.findall(r"@import\s+(?:url\()?\s*[\"']?([^\"');\s]*)", css, re.I)
    for url in imports:
        findings.append(error(
            "remote-font",
            f"@import of {url or 'a stylesheet'} in a <style> block: clients block remote CSS "
            "and fonts (remove it; put the CSS in <mj-style>)",
            "templates/email.mjml.j2",
        ))
    remote_faces = [f for f in _FONT_FACE_RE.findall(css) if _REMOTE_URL_RE.search(f)]
    if remote_faces:
        family = re.search(r"font-family\s*:\s*([^;}]+)", remote_faces[0], re.I)
        findings.append(error(
            "remote-font",
            f"{len(remote_faces)} @font-face rule(s) with a remote src"
            f"{' (' + family.group(1).strip() + ')' if family else ''}: clients block remote "
            "fonts (remove them; name fonts the readers have in font-family)",
            "templates/email.mjml.j2",
        ))
    return findings


def _style_size(styles: list[str]) -> list[Finding]:
    size = sum(len(s.encode("utf-8")) for s in styles)
    if size < STYLE_MAX_BYTES:
        return []
    return [error(
        "style-size",
        f"the <style> blocks hold {_kb(size)} of CSS; Gmail drops them from "
        f"{STYLE_MAX_BYTES // 1024} KB (trim the media queries of <mj-style> and any <style> "
        "in <mj-raw>; the rules premailer inlines do not count)",
        "templates/email.mjml.j2",
    )]


def _articles(issue: Issue) -> list[Finding]:
    findings = []
    for a in issue.articles:
        if issue.mode == "excerpt" and not a.url:
            findings.append(error(
                "excerpt-without-url",
                f"article '{a.slug}' is shown as an excerpt but has no `url`: readers could not "
                "read the rest (set `url` or use mode = \"full\")", a.source,
            ))
        for note in a.html_notes:
            line, _, what = note.partition(": ")
            findings.append(warning("html-dropped", f"raw HTML: {what}", f"{a.source}:{line}"))
    return findings


# -- the law -----------------------------------------------------------------------------------


def _postal_address(rendered: RenderedIssue, address: str) -> list[Finding]:
    # CAN-SPAM (US) and the LCEN (France) want the sender's postal address in every email.
    if not address.strip():
        return [warning(
            "no-postal-address",
            "no postal address: set postal_address (or NEWSLETTER_POSTAL_ADDRESS; the law wants "
            "it in every email; `newsletter send` refuses to send without it)",
            "newsletter.toml",
        )]
    findings = []
    for part, where in (("HTML", "templates/email.mjml.j2"), ("text", "templates/email.txt.j2")):
        body = rendered.html if part == "HTML" else rendered.text
        if not shows(body, address, html=part == "HTML"):
            findings.append(error(
                "no-postal-address",
                f"the {part} part does not show NEWSLETTER_POSTAL_ADDRESS "
                "(put {{ newsletter.postal_address }} in the footer of the template)",
                where,
            ))
    return findings


def shows(body: str, text: str, *, html: bool) -> bool:
    """Whether `text` is in `body` as a reader sees it (tags removed, whitespace folded)."""
    if html:
        body = html_lib.unescape(_TAG_RE.sub(" ", body))
    return " ".join(text.split()) in " ".join(body.split())


# -- helpers -----------------------------------------------------------------------------------

_ATTR_RE = re.compile(r"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")


def _attributes(tag: str) -> dict[str, str]:
    """The attributes of a start tag, names lowercased, values unescaped."""
    inner = re.sub(r"^<[a-zA-Z0-9]+|/?>$", "", tag)
    out: dict[str, str] = {}
    for name, value in _ATTR_RE.findall(inner):
        out.setdefault(name.lower(), html_lib.unescape(value.strip("\"'")))
    return out


def _declarations(css: str) -> dict[str, str]:
    pairs = (d.split(":", 1) for d in css.split(";") if ":" in d)
    return {k.strip().lower(): v.strip() for k, v in pairs}
