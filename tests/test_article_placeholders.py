"""Article text is text (issue 13, defect 11): only the templates hold per-recipient fields.

An article that shows `{{ name }}` in a code span is sent with those very characters, not
the reader's name; `{{ prenom }}` (no such column) neither stops the send nor vanishes.
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from smtpserver import TestServer

from newsletter.placeholders import fill


def test_braces_in_an_article_are_sent_as_written(
    newsletter_root: Path, smtp_server: TestServer, run_cli: RunCli
) -> None:
    root = newsletter_root
    article = root / "content" / "articles" / "audit-digital-petite-entreprise.md"
    source = article.read_text(encoding="utf-8")
    source = source.replace(
        'title: "Faire', 'title: "{{ email }} Faire', 1
    ) + "\nDans le modèle, écrivez `{{ name }}` puis {{ prenom }} et {{{ ville }}}.\n"
    article.write_text(source, encoding="utf-8")
    issue = root / "issues" / "2026-11.toml"
    issue.write_text(issue.read_text(encoding="utf-8").replace('mode = "excerpt"', 'mode = "full"'))
    built = run_cli("build-issue", "2026-11", root=root)
    assert built.exit_code == 0, built.stderr
    (root / "subscribers.csv").write_text("email,name,ville\na@example.fr,Zoé,Lyon\n", "utf-8")
    result = run_cli("send", "2026-11", root=root, env=smtp_server.env())
    assert result.exit_code == 0, result.stdout + result.stderr
    (msg,) = smtp_server.messages
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert "{{ name }}" in part and "{{ prenom }}" in part and "{{{ ville }}}" in part
        assert "{{ email }} Faire" in part
        assert "\u2060" not in part  # the escape never reaches the reader
    assert "Bonjour Zoé" in text  # the template's own fields are still filled
    # The preview and the archive fill the same way.
    filled = fill((root / "build" / "2026-11" / "email.txt").read_text("utf-8"),
                  {"name": "Zoé"}, html=False)
    assert "{{ name }}" in filled and "{{ prenom }}" in filled and "\u2060" not in filled
