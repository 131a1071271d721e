"""Raw HTML in articles keeps a safe subset; relative addresses are resolved or refused;
an excerpt needs a `url`."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from conftest import RunCli
from test_content import write_article

FRONT = (
    'title: "Vidéo"\ncategory: "SEO"\nauthor: claire\ndate: 2026-11-20\n'
    'url: "https://blog.example/2026/video/"\n'
)
CAPTION = (
    '[caption id="attachment_7" align="alignnone" width="300"]'
    '<img src="img/atelier.jpg" alt="L’atelier"> L’atelier en mars[/caption]'
)
BODY = f"""Premier<br>second, H<sub>2</sub>O et 10<sup>e</sup>.

<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ"
  title="Notre atelier" frameborder="0" allowfullscreen></iframe>

<div onclick="steal()"><p>Un <a href="/guide" onmouseover="x()">guide</a>.</p>
<script>alert("non")</script><form action="/x"><input name="q"></form></div>

{CAPTION}

Voir [la page](../autre/) et ![un plan](plan.png).
"""


def _issue(root: Path, slug: str, mode: str = "full") -> None:
    (root / "issues" / "2026-12.toml").write_text(
        f'subject = "S"\npreheader = "P"\ndate = 2026-12-01\nmode = "{mode}"\n'
        f'articles = ["{slug}"]\n',
        encoding="utf-8",
    )


def _parts(root: Path) -> tuple[str, str]:
    msg = email.message_from_bytes(
        (root / "build" / "2026-12" / "email.eml").read_bytes(), policy=email.policy.default
    )
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content().replace("\r\n", "\n")


def test_raw_html_keeps_a_safe_subset_and_says_what_it_dropped(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    write_article(newsletter_root, "video.md", FRONT, BODY)
    _issue(newsletter_root, "video")
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert result.exit_code == 0, result.stdout + result.stderr
    html, text = _parts(newsletter_root)
    assert re.search(r"Premier<br\b[^>]*>second", html)
    assert re.search(r"H<sub\b[^>]*>2</sub>O", html) and re.search(r"10<sup\b[^>]*>e</sup>", html)
    assert re.search(
        r'<a href="https://www\.youtube\.com/watch\?v=dQw4w9WgXcQ"[^>]*><img '
        r'src="https://img\.youtube\.com/vi/dQw4w9WgXcQ/hqdefault\.jpg" alt="Notre atelier"',
        html,
    )
    for gone in ("<iframe", "onclick", "onmouseover", "<script", "alert", "<form", "<input"):
        assert gone not in html, gone
    assert re.search(r'<a href="https://blog\.example/guide"[^>]*>guide</a>', html)
    assert re.search(
        r'<figure\b[^>]*><img src="https://blog\.example/2026/video/img/atelier\.jpg" '
        r'alt="L’atelier"[^>]*><figcaption\b[^>]*>L’atelier en mars</figcaption></figure>', html
    )
    assert 'href="https://blog.example/2026/autre/"' in html
    assert 'src="https://blog.example/2026/video/plan.png"' in html
    # The text part: a line break, the video as its title and address, no markup.
    assert "Premier\nsecond, H2O et 10e." in text
    assert "[Notre atelier] (https://www.youtube.com/watch?v=dQw4w9WgXcQ)" in text
    assert "[L’atelier] L’atelier en mars" in text
    assert "<" not in text.split("Premier")[1].split("Lire")[0]
    dropped = [line for line in result.stdout.splitlines() if "[html-dropped]" in line]
    assert dropped == [
        "  warning [html-dropped] content/articles/video.md:10: raw HTML: YouTube <iframe> "
        "shown as its thumbnail linked to the video",
        "  warning [html-dropped] content/articles/video.md:13: raw HTML: <div> removed",
        "  warning [html-dropped] content/articles/video.md:13: raw HTML: onmouseover= removed "
        "from <a>",
        "  warning [html-dropped] content/articles/video.md:13: raw HTML: <script> removed",
        "  warning [html-dropped] content/articles/video.md:13: raw HTML: <form> removed",
        "  warning [html-dropped] content/articles/video.md:13: raw HTML: <input> removed",
    ]


def test_a_relative_link_with_no_base_is_an_error_naming_file_and_line(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    write_article(
        newsletter_root, "sans-url.md", FRONT.split("url:")[0],
        "Un texte.\n\nVoir [le guide](/guide).\n",
    )
    _issue(newsletter_root, "sans-url")
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: content/articles/sans-url.md:9: relative address '/guide' cannot be resolved "
        "(set `url:` in the front matter or NEWSLETTER_SITE_URL, or write the full https:// "
        "address)\n"
    )
    resolved = run_cli("build-issue", "2026-12", root=newsletter_root,
                       env={"NEWSLETTER_SITE_URL": "https://blog.example/journal"})
    assert resolved.exit_code == 0, resolved.stderr
    html, _ = _parts(newsletter_root)
    assert 'href="https://blog.example/guide"' in html


def test_an_excerpt_without_url_is_a_build_error_naming_the_article(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    write_article(newsletter_root, "sans-lien.md", FRONT.split("url:")[0])
    _issue(newsletter_root, "sans-lien", mode="excerpt")
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert result.exit_code == 1
    assert (
        "  error [excerpt-without-url] content/articles/sans-lien.md: article 'sans-lien' is "
        "shown as an excerpt but has no `url`: readers could not read the rest (set `url` or "
        'use mode = "full")'
    ) in result.stdout.splitlines()
    assert not (newsletter_root / "build" / "2026-12").exists()


def test_an_old_caption_shortcode_gives_its_caption_attribute_as_the_figcaption(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    # Before WordPress 3.4 the caption was an attribute; exports of old blogs still hold it.
    old = ('[caption id="attachment_3" align="alignleft" width="150" caption="L’atelier en '
           '1998"]<img src="img/atelier.jpg" alt="L’atelier">[/caption]')
    write_article(newsletter_root, "video.md", FRONT, f"Avant.\n\n{old}\n")
    _issue(newsletter_root, "video")
    result = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert result.exit_code == 0, result.stdout + result.stderr
    html, text = _parts(newsletter_root)
    assert re.search(r"<figcaption\b[^>]*>L’atelier en 1998</figcaption></figure>", html)
    assert "[L’atelier] L’atelier en 1998" in text
    assert "attachment" not in html and "attachment" not in text
