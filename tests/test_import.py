"""`newsletter import`: a feed served over HTTP on 127.0.0.1 and a WordPress export become
articles whose email keeps the posts' structure; a second import changes nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliResult, RunCli
from test_content import front_matter

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Le blog</title><link>https://blog.example/</link><description>b</description>
<item>
  <title>Réussir sa fiche Google</title>
  <link>https://blog.example/2026/11/fiche-google/</link>
  <guid isPermaLink="false">blog-post-41</guid>
  <pubDate>Mon, 02 Nov 2026 08:00:00 +0100</pubDate>
  <dc:creator>Claire Fontaine</dc:creator>
  <category>SEO</category><category>Local</category>
  <description>Trois étapes pour une fiche à jour.</description>
  <content:encoded><![CDATA[<p>Intro <em>rapide</em>.</p>
<h2>Les étapes</h2>
<ol><li>Vérifier les horaires</li><li>Ajouter des photos</li></ol>
<ul><li>un point</li></ul>
<blockquote><p>Une fiche à jour rassure.</p></blockquote>
<p>Lire <a href="/guide-local">le guide</a> et voir
<img src="img/fiche.jpg" alt="Une fiche d’établissement"></p>]]></content:encoded>
</item>
<item>
  <title>Ancien billet</title>
  <link>https://blog.example/2025/01/ancien/</link>
  <pubDate>Wed, 01 Jan 2025 08:00:00 +0000</pubDate>
  <dc:creator>erwan</dc:creator>
  <category>Réseaux</category>
  <description><![CDATA[<p>Un vieux texte.</p>]]></description>
</item>
</channel></rss>
"""

WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/"
 xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/">
<channel><title>WP</title><link>https://wp.example</link><wp:wxr_version>1.2</wp:wxr_version>
<item><title>Un billet WordPress</title><link>https://wp.example/un-billet/</link>
<pubDate>Tue, 03 Nov 2026 09:30:00 +0000</pubDate><dc:creator><![CDATA[admin]]></dc:creator>
<guid isPermaLink="false">https://wp.example/?p=12</guid><description></description>
<content:encoded><![CDATA[<h3>Section</h3><ol><li>premier</li><li>second</li></ol>
<blockquote>Citation</blockquote><p><strong>Fin</strong> <a href="https://x.example/">lien</a></p>]]>
</content:encoded><excerpt:encoded><![CDATA[Le résumé WordPress]]></excerpt:encoded>
<wp:post_id>12</wp:post_id><wp:post_name><![CDATA[un-billet-wp]]></wp:post_name>
<wp:status><![CDATA[publish]]></wp:status><wp:post_type><![CDATA[post]]></wp:post_type>
<category domain="category" nicename="seo"><![CDATA[SEO]]></category>
<category domain="post_tag" nicename="local"><![CDATA[local]]></category></item>
<item><title>À propos</title><link>https://wp.example/a-propos/</link>
<guid isPermaLink="false">https://wp.example/?page_id=2</guid>
<content:encoded><![CDATA[<p>Une page.</p>]]></content:encoded>
<wp:status>publish</wp:status><wp:post_type>page</wp:post_type></item>
<item><title>Brouillon</title><link>https://wp.example/?p=13</link>
<guid isPermaLink="false">https://wp.example/?p=13</guid>
<content:encoded><![CDATA[<p>Pas fini.</p>]]></content:encoded>
<wp:status>draft</wp:status><wp:post_type>post</wp:post_type></item>
</channel></rss>
"""


class _FeedServer(http.server.ThreadingHTTPServer):
    routes: dict[str, tuple[int, bytes]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _FeedServer

    def do_GET(self) -> None:
        status, body = self.server.routes.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client stops reading at the size limit.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_server() -> Iterator[_FeedServer]:
    server = _FeedServer(("127.0.0.1", 0), _Handler)
    server.routes = {"/feed.xml": (200, RSS.encode("utf-8"))}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _url(server: _FeedServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _import_file(
    run_cli: RunCli, root: Path, feed: Path, text: str, *args: str
) -> tuple[Path, CliResult]:
    """Write `text` to the feed file `feed` and import it into `root`."""
    feed.write_text(text, encoding="utf-8")
    return feed, run_cli("import", str(feed), *args, root=root)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "content" / "articles").glob("*.md")}


def _issue(root: Path, slugs: list[str]) -> None:
    listed = ", ".join(f'"{s}"' for s in slugs)
    (root / "issues" / "2026-12.toml").write_text(
        f'subject = "Importé"\npreheader = "Des billets"\ndate = 2026-12-01\nmode = "full"\n'
        f"articles = [{listed}]\n",
        encoding="utf-8",
    )


def _built(root: Path, run_cli: RunCli, slug: str) -> tuple[str, str]:
    """Build an issue of the article `slug` in full; its HTML and text parts as sent."""
    _issue(root, [slug])
    built = run_cli("build-issue", "2026-12", root=root)
    assert built.exit_code == 0, built.stdout + built.stderr
    html, text = _parts(root)
    # The post's numbered list and quote are still a list and a quote in the email.
    assert re.search(r"<ol\b", html) and re.search(r"<blockquote\b", html)
    return html, text


def _parts(root: Path) -> tuple[str, str]:
    msg = email.message_from_bytes(
        (root / "build" / "2026-12" / "email.eml").read_bytes(), policy=email.policy.default
    )
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content().replace("\r\n", "\n")


def test_a_feed_over_http_imports_into_articles_that_build(
    newsletter_root: Path, feed_server: _FeedServer, run_cli: RunCli
) -> None:
    before = _snapshot(newsletter_root)
    result = run_cli("import", _url(feed_server, "/feed.xml"), "--since", "2026-01-01",
                     root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "written   content/articles/fiche-google.md  Réussir sa fiche Google",
        "1 written, 0 updated, 0 unchanged",
    ]
    path = newsletter_root / "content" / "articles" / "fiche-google.md"
    meta, body = front_matter(path)
    assert meta == {
        "title": "Réussir sa fiche Google",
        "date": dt.date(2026, 11, 2),
        "category": "SEO",
        "author": "claire",  # matched by name
        "url": "https://blog.example/2026/11/fiche-google/",
        "summary": "Trois étapes pour une fiche à jour.",
        "guid": "blog-post-41",
    }
    assert "[le guide](https://blog.example/guide-local)" in body
    image = "https://blog.example/2026/11/fiche-google/img/fiche.jpg"
    assert f"![Une fiche d’établissement]({image})" in body
    assert set(_snapshot(newsletter_root)) == set(before) | {"fiche-google.md"}

    html, text = _built(newsletter_root, run_cli, "fiche-google")
    assert re.search(r"<h2\b[^>]*>Les étapes</h2>", html)
    assert 'href="https://blog.example/guide-local"' in html
    assert "Les étapes\n----------" in text
    assert "1. Vérifier les horaires\n2. Ajouter des photos" in text
    assert "> Une fiche à jour rassure." in text

    again = run_cli("import", _url(feed_server, "/feed.xml"), "--since", "2026-01-01",
                    root=newsletter_root)
    assert again.stdout.splitlines()[-1] == "0 written, 0 updated, 1 unchanged"
    snap = _snapshot(newsletter_root)
    feed_server.routes["/feed.xml"] = (200, RSS.replace("Intro", "Début").encode())
    changed = run_cli("import", _url(feed_server, "/feed.xml"), "--since", "2026-01-01",
                      root=newsletter_root)
    assert changed.stdout.splitlines() == [
        "updated   content/articles/fiche-google.md  Réussir sa fiche Google",
        "0 written, 1 updated, 0 unchanged",
    ]
    assert set(_snapshot(newsletter_root)) == set(snap)
    assert "Début *rapide*." in path.read_text(encoding="utf-8")


def test_a_second_import_changes_no_byte(newsletter_root: Path, feed_server: _FeedServer,
                                          run_cli: RunCli) -> None:
    url = _url(feed_server, "/feed.xml")
    assert run_cli("import", url, root=newsletter_root).exit_code == 0
    first = _snapshot(newsletter_root)
    articles = newsletter_root / "content/articles"
    mtimes = {p.name: p.stat().st_mtime_ns for p in articles.iterdir()}
    result = run_cli("import", url, root=newsletter_root)
    assert result.stdout.splitlines()[-1] == "0 written, 0 updated, 2 unchanged"
    assert _snapshot(newsletter_root) == first
    assert {p.name: p.stat().st_mtime_ns for p in articles.iterdir()} == mtimes


def test_a_wordpress_export_imports_its_published_posts_only(
    newsletter_root: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    _, result = _import_file(
        run_cli, newsletter_root, tmp_path / "export.xml", WXR, "--author", "erwan"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "written   content/articles/un-billet-wp.md  Un billet WordPress",
        "1 written, 0 updated, 0 unchanged",
    ]
    meta, _ = front_matter(newsletter_root / "content/articles/un-billet-wp.md")
    assert (meta["author"], meta["category"], meta["tags"], meta["summary"]) == (
        "erwan", "SEO", ["local"], "Le résumé WordPress"
    )
    html, text = _built(newsletter_root, run_cli, "un-billet-wp")
    assert re.search(r"<h3\b[^>]*>Section</h3>", html)
    assert "1. premier\n2. second" in text and "lien (https://x.example/)" in text


def test_dry_run_writes_nothing(newsletter_root: Path, feed_server: _FeedServer,
                                run_cli: RunCli) -> None:
    before = _snapshot(newsletter_root)
    result = run_cli("import", _url(feed_server, "/feed.xml"), "--dry-run", root=newsletter_root)
    assert result.stdout.splitlines()[-1] == (
        "2 written, 0 updated, 0 unchanged (dry run: nothing written)"
    )
    assert _snapshot(newsletter_root) == before


def test_an_unknown_author_without_fallback_names_the_item(
    newsletter_root: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    wxr, result = _import_file(run_cli, newsletter_root, tmp_path / "export.xml", WXR)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {wxr}: item 1 (Un billet WordPress): author 'admin' is not in "
        "content/authors.toml (add the author to content/authors.toml or pass --author KEY)\n"
    )


def test_a_server_error_and_an_oversized_feed_are_one_line(
    newsletter_root: Path, feed_server: _FeedServer, run_cli: RunCli
) -> None:
    from newsletter.compose.importer import MAX_BYTES

    missing = run_cli("import", _url(feed_server, "/nope.xml"), root=newsletter_root)
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"error: {_url(feed_server, '/nope.xml')}: the server answered 404 Not Found "
        "(check the address of the feed)\n"
    )
    feed_server.routes["/huge.xml"] = (200, b" " * (MAX_BYTES + 10))
    huge = run_cli("import", _url(feed_server, "/huge.xml"), root=newsletter_root)
    assert huge.exit_code == 1 and "larger than 20 MB" in huge.stderr
    assert huge.stderr.count("\n") == 1


def test_not_a_feed_is_one_line(newsletter_root: Path, tmp_path: Path, run_cli: RunCli) -> None:
    page, result = _import_file(
        run_cli, newsletter_root, tmp_path / "page.html", "<html><body>Hello</body></html>"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {page}: not an RSS, Atom or WordPress export")
    assert result.stderr.count("\n") == 1


def test_a_server_that_never_answers_times_out_in_one_line(newsletter_root: Path) -> None:
    from newsletter.compose.importer import ImportOptions, import_feed
    from newsletter.errors import ContentError
    from newsletter.layout import Layout

    # Accepts the connection, reads the request, never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/feed.xml"
        started = time.monotonic()
        with pytest.raises(ContentError) as info:
            import_feed(url, layout=Layout.at(newsletter_root), options=ImportOptions(timeout=0.5))
        assert time.monotonic() - started < 5
    assert str(info.value) == (
        f"{url}: cannot fetch the feed: timed out "
        "(check the address and the network; gave up after 0.5 s)"
    )


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title><id>urn:blog</id>
<updated>2026-11-05T10:00:00+01:00</updated>
<entry><title>Un billet Atom</title><id>urn:uuid:1234</id>
<link rel="alternate" href="https://atom.example/billets/atom.html"/>
<updated>2026-11-05T00:30:00+01:00</updated><author><name>Erwan Le Goff</name></author>
<category term="Réseaux"/><summary>En bref.</summary>
<content type="html">&lt;p&gt;Un &lt;strong&gt;billet&lt;/strong&gt; et
&lt;a href="../autre.html"&gt;un autre&lt;/a&gt;.&lt;/p&gt;</content></entry>
</feed>
"""


def test_an_atom_file_imports_with_its_author_by_name(
    newsletter_root: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    _, result = _import_file(run_cli, newsletter_root, tmp_path / "atom.xml", ATOM)
    assert result.stdout.splitlines() == [
        "written   content/articles/atom.md  Un billet Atom",
        "1 written, 0 updated, 0 unchanged",
    ]
    meta, body = front_matter(newsletter_root / "content/articles/atom.md")
    assert (meta["author"], meta["category"], meta["summary"], meta["guid"]) == (
        "erwan", "Réseaux", "En bref.", "urn:uuid:1234"
    )
    assert meta["date"] == dt.date(2026, 11, 5)  # 00:30 in Paris, still the 4th in UTC
    assert body == "\nUn **billet** et\n[un autre](https://atom.example/autre.html).\n"


# -- every item checked before anything is written; --since first; --category fills in --------

FIXTURES = Path(__file__).parent / "fixtures" / "import"
ORCHARD = FIXTURES / "orchard.rss"  # item 1 fine; item 2: no category, unknown author


def test_a_feed_with_bad_items_writes_nothing_and_names_every_problem(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    before = _snapshot(newsletter_root)
    for dry_run in ((), ("--dry-run",)):
        result = run_cli("import", str(ORCHARD), *dry_run, root=newsletter_root)
        assert (result.exit_code, result.stdout) == (1, "")
        assert result.stderr == (
            f"error: {ORCHARD}: item 2 (Élaguer sans abîmer) has no category "
            "(pass --category NAME)\n"
            f"error: {ORCHARD}: item 2 (Élaguer sans abîmer): author 'Jean Inconnu' is not in "
            "content/authors.toml (add the author to content/authors.toml or pass --author KEY)\n"
        )
        assert _snapshot(newsletter_root) == before  # item 1, fine, is not written either


def test_since_leaves_out_old_posts_before_they_are_checked(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    dry = run_cli("import", str(ORCHARD), "--since", "2026-11-05", "--dry-run",
                  root=newsletter_root)
    assert (dry.exit_code, dry.stderr) == (0, "")
    assert dry.stdout.splitlines() == [
        "written   content/articles/tailler-les-pommiers.md  Tailler les pommiers",
        "1 written, 0 updated, 0 unchanged (dry run: nothing written)",
    ]
    result = run_cli("import", str(ORCHARD), "--since", "2026-11-05", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert not (newsletter_root / "content/articles/elaguer.md").exists()


def test_category_fills_in_only_the_posts_without_one(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    first = run_cli("import", str(ORCHARD), "--since", "2026-11-05", root=newsletter_root)
    assert first.exit_code == 0, first.stderr
    pommiers = newsletter_root / "content/articles/tailler-les-pommiers.md"
    written = pommiers.read_bytes()
    # What the error's hints say to do: the post that has a category keeps it.
    result = run_cli("import", str(ORCHARD), "--category", "Jardin", "--author", "erwan",
                     root=newsletter_root)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "unchanged content/articles/tailler-les-pommiers.md  Tailler les pommiers",
        "written   content/articles/elaguer.md  Élaguer sans abîmer",
        "1 written, 0 updated, 1 unchanged",
    ]
    assert pommiers.read_bytes() == written
    assert front_matter(pommiers)[0]["category"] == "Fruits"
    meta, _ = front_matter(newsletter_root / "content/articles/elaguer.md")
    assert (meta["category"], meta["author"]) == ("Jardin", "erwan")


def test_an_unknown_author_option_is_one_line_even_when_no_post_needs_it(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    before = _snapshot(newsletter_root)
    result = run_cli("import", str(ORCHARD), "--author", "jean", "--category", "Jardin",
                     root=newsletter_root)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: --author 'jean' is not in content/authors.toml (known: claire, erwan)\n"
    )
    assert _snapshot(newsletter_root) == before


# -- what WordPress shows: paragraphs, captions, videos --------------------------------------

WORDPRESS_CLASSIC = FIXTURES / "wordpress-classic.xml"  # a classic-editor post, a block one


def test_a_classic_wordpress_post_keeps_its_paragraphs_caption_and_video(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    result = run_cli("import", str(WORDPRESS_CLASSIC), root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    item = f"{WORDPRESS_CLASSIC}: item 1 (Planter un pommier)"
    assert result.stderr.splitlines() == [
        f"warning: {item}: shortcode [gallery] removed",
        f"warning: {item}: <iframe> of https://maps.example/embed?pb=verger removed "
        "(link to it in the article by hand if readers need it)",
    ]
    _, body = front_matter(newsletter_root / "content/articles/planter-un-pommier.md")
    # Blank line: a paragraph; a single newline: a line break (WordPress's wpautop).
    assert body.startswith(
        "\nChoisir le bon moment compte plus que tout.  \nNovembre est idéal.\n\n<figure>"
    )
    assert (
        '<figure><a href="https://jardin.example/wp-content/uploads/pommier.jpg"><img '
        'alt="Un pommier en fleur" height="200" '
        'src="https://jardin.example/wp-content/uploads/pommier-300x200.jpg" width="300"></a>'
        "<figcaption>Le pommier du verger, en avril</figcaption></figure>\n"
    ) in body
    assert "attachment" not in body and "caption" not in body.replace("figcaption", "")
    assert (
        "[![Planter en cinq minutes](https://img.youtube.com/vi/dQw4w9WgXcQ/hqdefault.jpg)]"
        "(https://www.youtube.com/watch?v=dQw4w9WgXcQ)"
    ) in body
    assert "> Qui plante un arbre\n>\n> plante un espoir." in body
    assert "```\narroser\n\npailler\n```" in body  # a <pre> keeps its blank line
    assert body.endswith("\nDernier paragraphe, *avec* un [guide](https://jardin.example/guide/).\n")
    # A block-editor post already has its <p>: WordPress does not add any, nor do we.
    _, blocks = front_matter(newsletter_root / "content/articles/tailler-en-hiver.md")
    assert blocks == "\nUn billet de l’éditeur de blocs.\nSa ligne suit.\n\nSecond bloc.\n"

    _issue(newsletter_root, ["planter-un-pommier"])
    built = run_cli("build-issue", "2026-12", root=newsletter_root)
    assert built.exit_code == 0, built.stdout + built.stderr
    assert "checks: all passed" in built.stdout  # nothing for the build to drop or rewrite
    html, text = _parts(newsletter_root)
    assert re.search(r"<p\b[^>]*>Choisir le bon moment compte plus que tout\.<br\b[^>]*>\s*"
                     r"Novembre est idéal\.</p>", html)
    assert re.search(r"<figcaption\b[^>]*>Le pommier du verger, en avril</figcaption>", html)
    assert re.search(r'<a href="https://www\.youtube\.com/watch\?v=dQw4w9WgXcQ"[^>]*><img\b[^>]*'
                     r'src="https://img\.youtube\.com/vi/dQw4w9WgXcQ/hqdefault\.jpg"', html)
    assert "Le pommier du verger, en avril" in " ".join(text.split())
    assert "[Planter en cinq minutes] (https://www.youtube.com/watch?v=dQw4w9WgXcQ)" in text


def test_a_feed_post_keeps_its_figure_and_videos_and_loses_its_scripts(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    atom = FIXTURES / "garden.atom"
    result = run_cli("import", str(atom), root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"warning: {atom}: item 1 (La haie en novembre): <iframe> of "
        "https://maps.example/embed?pb=jardin removed (link to it in the article by hand if "
        "readers need it)\n"
    )
    _, body = front_matter(newsletter_root / "content/articles/haie.md")
    assert body == (
        "\nAvant la taille.\n\n"
        '<figure><img alt="Une haie" height="480" src="https://jardin.example/img/haie.jpg" '
        'width="640"><figcaption>La haie, <em>taillée</em></figcaption></figure>\n\n'
        "[La taille pas à pas](https://vimeo.com/76979871)\n\n"
        "[![Tailler une haie](https://img.youtube.com/vi/dQw4w9WgXcQ/hqdefault.jpg)]"
        "(https://www.youtube.com/watch?v=dQw4w9WgXcQ)\n\n"
        "Après la taille.\n"
    )


def test_a_refused_connection_does_not_say_it_waited(newsletter_root: Path) -> None:
    """It said `gave up after 20 s` to a connection refused at once."""
    from newsletter.compose.importer import ImportOptions, import_feed
    from newsletter.errors import ContentError
    from newsletter.layout import Layout

    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed.xml"  # nothing listens there any more
    with pytest.raises(ContentError) as info:
        import_feed(url, layout=Layout.at(newsletter_root), options=ImportOptions(timeout=5))
    assert str(info.value).startswith(f"{url}: cannot fetch the feed: ")
    assert str(info.value).endswith("(check the address and the network)")
