"""Shared fixtures: a copy of the sample newsletter folder, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from smtpserver import Faults, TestServer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
THEME = REPO / "newsletter" / "theme" / "email"


#: The sample newsletter's From, as its newsletter.toml sets it (the code has no default).
SAMPLE_FROM = "Coeur sur Paris <lettre@coeursurparis.example>"

#: The sample newsletter's postal address (fictional): `send` refuses to mail without one.
POSTAL_ADDRESS = "Coeur sur Paris, 12 rue de l’Exemple, 75011 Paris, France"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own NEWSLETTER_* variables must not change what a test sees.

    Only the postal address is set, as a real newsletter must: a test of its absence
    removes it.
    """
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", POSTAL_ADDRESS)


@pytest.fixture
def newsletter_root(tmp_path: Path) -> Path:
    """A copy of the repository's sample newsletter (newsletter.toml, content, templates, issues,
    subscribers)."""
    root = tmp_path / "letter"
    root.mkdir()
    for name in ("content", "templates", "issues"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.csv")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")  # its identity, its root
    return root


def own_template(root: Path, name: str) -> Path:
    """`root/templates/<name>` as a full copy of the packaged theme's file, ready to edit.

    What a user does to change the whole email: copy the theme's template into templates/. It
    replaces the sample's small override (which extends the theme); a copy already made, and
    perhaps edited, is kept.
    """
    path = root / "templates" / name
    if not path.exists() or f'{{% extends "theme/{name}" %}}' in path.read_text("utf-8"):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(THEME / name, path)
    return path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli() -> RunCli:
    """Run `newsletter ARGS...` in-process; `root=` adds --root; `cwd=` runs it from that
    folder (where relative paths on the command line start), as a user's shell would."""
    from newsletter.cli import app

    def run(
        *args: str,
        root: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CliResult:
        argv = list(args)
        if root is not None:
            argv += ["--root", str(root)]
        with contextlib.chdir(cwd or Path.cwd()):
            result = CliRunner().invoke(app, argv, env=env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def readers(root: Path, n: int) -> list[str]:
    """A list file of `n` readers (lecteur000@example.fr, ...) in `root`; their addresses."""
    emails = [f"lecteur{i:03d}@example.fr" for i in range(n)]
    rows = "".join(f"{e},Lecteur {i}\n" for i, e in enumerate(emails))
    (root / "subscribers.csv").write_text("email,name\n" + rows, encoding="utf-8")
    return emails


def mailable(root: Path) -> list[str]:
    """The addresses the list file says must be mailed, computed from the file itself."""
    with open(root / "subscribers.csv", encoding="utf-8-sig", newline="") as f:
        rows = csv.DictReader(f)
        return sorted(r["email"] for r in rows if (r.get("status") or "subscribed") == "subscribed")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its bytes: to assert nothing changed."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def built(newsletter_root: Path, run_cli: RunCli) -> Iterator[Path]:
    """The sample folder with issue 2026-11 built."""
    result = run_cli("build-issue", "2026-11", root=newsletter_root)
    assert result.exit_code == 0, result.stderr
    yield newsletter_root


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium, offline, one per test module (tests/browser.py)."""
    from browser import offline_chromium  # Playwright only for the tests that open a page

    with offline_chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    """A real SMTP server on 127.0.0.1; `@pytest.mark.smtp_faults(...)` makes it misbehave."""
    marker = request.node.get_closest_marker("smtp_faults")
    faults = Faults(**marker.kwargs) if marker else Faults()
    server = TestServer(faults)
    server.start()
    try:
        yield server
    finally:
        server.stop()
