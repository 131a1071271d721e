"""The DATA payload: what goes on the wire must unstuff to exactly the message."""

from __future__ import annotations

import pytest

from newsletter.send.transport import wire_format


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\nb", b"a\r\nb\r\n.\r\n"),
        (b".a\r\n.\r\nb\r\n", b"..a\r\n..\r\nb\r\n.\r\n"),
        (b"a\nb\rc\r\n", b"a\r\nb\r\nc\r\n.\r\n"),
        (b"x\n.y\n", b"x\r\n..y\r\n.\r\n"),
    ],
)
def test_wire_format(data: bytes, wire: bytes) -> None:
    assert wire_format(data) == wire


def test_a_message_with_dotted_lines_arrives_intact(built, smtp_server, run_cli) -> None:  # type: ignore[no-untyped-def]
    article = built / "content" / "articles" / "audit-digital-petite-entreprise.md"
    article.write_text(article.read_text(encoding="utf-8") + "\n.\n\n.point\n", encoding="utf-8")
    issue = built / "issues" / "2026-11.toml"
    issue.write_text(issue.read_text(encoding="utf-8").replace('mode = "excerpt"', 'mode = "full"'))
    assert run_cli("build-issue", "2026-11", root=built).exit_code == 0
    (built / "subscribers.csv").write_text("email\na@example.fr\n", encoding="utf-8")
    result = run_cli("send", "2026-11", root=built, env=smtp_server.env())
    assert result.exit_code == 0, result.stderr
    (msg,) = smtp_server.messages
    text = msg.get_body(("plain",)).get_content()
    assert "\n.point" in text.replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content()
    assert ".point" in html
    expected = (built / "build" / "2026-11" / "email.html").read_text(encoding="utf-8")
    assert html.replace("\r\n", "\n") == expected.replace("\r\n", "\n").replace(
        "{{ greeting }}", "Bonjour,"
    ).replace("{{ unsubscribe_url }}", "mailto:lettre@coeursurparis.example?subject=unsubscribe")
