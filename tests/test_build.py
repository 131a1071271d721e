"""build/<id>/: the five files, the test message, the manifest; whole, and reproducible."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from conftest import RunCli
from test_issue import articles_meta, expected_selection

OUTPUTS = ["email.eml", "email.html", "email.mjml", "email.txt", "manifest.json"]


def build(root: Path, run_cli: RunCli, issue_id: str) -> Path:
    result = run_cli("build-issue", issue_id, root=root)
    assert result.exit_code == 0, result.stderr
    return root / "build" / issue_id


def spec(root: Path, issue_id: str) -> dict[str, Any]:
    return tomllib.loads((root / "issues" / f"{issue_id}.toml").read_text(encoding="utf-8"))


def words(text: str) -> str:
    return " ".join(text.split())


def without_per_message_headers(eml: bytes) -> bytes:
    head, sep, body = eml.partition(b"\r\n\r\n")
    assert sep, "no blank line after the headers"
    kept, n = re.subn(rb"(?m)^(Date|Message-ID): [^\r\n]*\r\n", b"", head + b"\r\n")
    assert n == 2, "both Date and Message-ID should be there"
    return kept + sep + body


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_build_writes_exactly_the_five_outputs_and_nothing_else(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    out = build(newsletter_root, run_cli, issue_id)
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    # No temporary or old folder left beside it.
    assert [p.name for p in (newsletter_root / "build").iterdir()] == [issue_id]


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_two_builds_are_identical_but_for_date_and_message_id(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    out = build(newsletter_root, run_cli, issue_id)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    build(newsletter_root, run_cli, issue_id)
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == sorted(second) == OUTPUTS
    for name in OUTPUTS:
        if name == "email.eml":
            assert without_per_message_headers(first[name]) == without_per_message_headers(
                second[name]
            )
        else:
            assert first[name] == second[name], name
    ids = [email.message_from_bytes(b["email.eml"])["Message-ID"] for b in (first, second)]
    assert ids[0] != ids[1], "each build's test message gets its own Message-ID"


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_manifest_describes_the_build(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    out = build(newsletter_root, run_cli, issue_id)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    wanted = spec(newsletter_root, issue_id)
    assert manifest["id"] == issue_id
    assert manifest["subject"] == wanted["subject"]
    assert manifest["preheader"] == wanted["preheader"]
    assert manifest["date"] == wanted["date"].isoformat()
    assert manifest["number"] == wanted["number"]
    assert manifest["mode"] == wanted["mode"]
    assert manifest["language"] == "fr"
    assert manifest["articles"] == expected_selection(newsletter_root, issue_id)
    assert manifest["sizes"] == {
        name: (out / name).stat().st_size for name in OUTPUTS if name != "manifest.json"
    }
    assert manifest["warnings"] == []
    assert sorted(manifest["placeholders"]) == ["greeting", "unsubscribe_url"]


@pytest.mark.parametrize("issue_id", ["2026-11", "2026-12"])
def test_test_message_decodes_to_the_issue_with_its_accents(
    newsletter_root: Path, run_cli: RunCli, issue_id: str
) -> None:
    out = build(newsletter_root, run_cli, issue_id)
    msg = email.message_from_bytes((out / "email.eml").read_bytes(), policy=email.policy.default)
    assert str(msg["Subject"]) == spec(newsletter_root, issue_id)["subject"]
    assert msg["MIME-Version"] == "1.0"
    assert email.utils.parseaddr(str(msg["From"]))[1].count("@") == 1
    assert email.utils.parsedate_to_datetime(str(msg["Date"])) is not None
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(msg["Message-ID"]))

    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)

    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    html_text = words(lxml.html.document_fromstring(html).text_content())
    meta = articles_meta(newsletter_root)
    titles = [meta[s]["title"] for s in expected_selection(newsletter_root, issue_id)]
    assert any(set(t) & set("éèàù’") for t in titles)
    for title in titles:
        assert title in plain
        assert words(title) in html_text
    for part in (plain, html_text):
        assert "Rédigé par" in part
        assert "{{" not in part, "the test message has every placeholder filled"


def test_the_test_message_carries_the_built_parts(built: Path) -> None:
    out = built / "build" / "2026-11"
    msg = email.message_from_bytes((out / "email.eml").read_bytes(), policy=email.policy.default)
    plain = msg.get_body(("plain",)).get_content()
    text = (out / "email.txt").read_text(encoding="utf-8")
    # Only the placeholder lines differ between email.txt and the reader's copy.
    fixed = [line for line in text.splitlines() if "{{" not in line]
    assert fixed and all(line in plain.splitlines() for line in fixed)


def test_a_rebuild_replaces_the_previous_output(built: Path, run_cli: RunCli) -> None:
    root = built
    path = root / "content" / "articles" / "audit-digital-petite-entreprise.md"
    old_title = articles_meta(root)["audit-digital-petite-entreprise"]["title"]
    new_title = "L’audit digital, révisé «\u00a0en une journée\u00a0»"  # typeset as French
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f'title: "{old_title}"', f'title: "{new_title}"'), "utf-8")

    out = build(root, run_cli, "2026-11")
    for name in ("email.html", "email.txt", "email.mjml"):
        content = (out / name).read_text(encoding="utf-8")
        assert new_title in content and old_title not in content, name
    assert [p.name for p in (root / "build").iterdir()] == ["2026-11"]
