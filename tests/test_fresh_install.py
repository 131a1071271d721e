"""A new user's first minutes (issue 11): `pip install` of the checkout into a fresh venv (not
editable, no system site-packages: a dependency missing from pyproject.toml fails here), then
`newsletter init` in an empty folder and the first build, from the root and from a subfolder.

pip builds the wheel from a copy of the sources (so the checkout gets no build/ or egg-info)
and installs the declared dependencies from the package index, as a user's `pip install` does.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

MONTH = f"{dt.date.today():%Y-%m}"
IDENTITY = ("coeursurparis", "coeur sur paris", "cœur sur paris")

pytestmark = pytest.mark.timeout(600)  # a cold package cache: minutes, not seconds


@dataclass(frozen=True)
class Installed:
    bin: Path
    timings: dict[str, float]

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        # The developer's NEWSLETTER_* (and conftest's sample postal address) stay out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        return subprocess.run(
            [str(self.bin / "newsletter"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,  # not a terminal: init asks nothing
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("fresh")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "newsletter", src / "newsletter", ignore=shutil.ignore_patterns("__pycache__")
    )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # From the dev venv's python, `-m venv` still makes a venv of the base interpreter: it sees
    # neither the dev venv's packages nor the editable install. Without pip (ensurepip takes
    # 40 times longer than the venv itself): the dev venv's pip installs into it (--python).
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    timings["venv"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--disable-pip-version-check", str(src)],
        capture_output=True, text=True, timeout=540,
    )
    timings["pip install"] = time.perf_counter() - t0
    assert pip.returncode == 0, pip.stdout + pip.stderr
    yield Installed(venv / "bin", timings)


def test_the_install_is_the_packaged_distribution_not_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    version = installed.run("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, "newsletter 0.1.0\n")
    probe = subprocess.run(
        [str(installed.bin / "python"), "-c",
         "import importlib.metadata as m, newsletter; "
         "print(m.distribution('newsletter-press').metadata['Name']); print(newsletter.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    name, where = probe.stdout.splitlines()
    assert name == "newsletter-press"
    assert "site-packages" in where and str(REPO) not in where
    print(f"timings: {installed.timings}")  # shown with -s; the note quotes them


def test_init_in_an_empty_folder_then_the_one_line_error_outside_it(
    installed: Installed, tmp_path: Path
) -> None:
    root = tmp_path / "ma-lettre"
    result = installed.run(
        "init", str(root), "--name", "Ma Lettre", "--from", "lettre@ma-lettre.fr",
        "--postal-address", "1 rue de la Paix, 75002 Paris", cwd=tmp_path,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[-3:] == [
        f"  cd {root} && newsletter build-issue {MONTH}",
        f"  newsletter preview {MONTH}",
        "  newsletter new-issue",
    ]
    assert (root / "newsletter.toml").is_file() and (root / f"issues/{MONTH}.toml").is_file()
    # A subfolder finds its root: the report of an issue never sent.
    report = installed.run("report", MONTH, cwd=root / "content" / "articles")
    assert (report.returncode, report.stdout) == (0, f"{MONTH}: never sent\n"), report.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = installed.run("build-issue", MONTH, cwd=outside)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "error: not in a newsletter folder (no newsletter.toml here or above): "
        "run `newsletter init`\n",
    )


def test_the_first_issue_builds_with_the_packaged_theme_from_the_root_and_a_subfolder(
    installed: Installed, tmp_path: Path
) -> None:
    root = tmp_path / "ma-lettre"
    init = installed.run(
        "init", str(root), "--name", "Ma Lettre", "--from", "lettre@ma-lettre.fr",
        "--postal-address", "1 rue de la Paix, 75002 Paris", cwd=tmp_path,
    )
    assert init.returncode == 0, init.stderr
    for cwd in (root, root / "content"):
        shutil.rmtree(root / "build", ignore_errors=True)
        result = installed.run("build-issue", MONTH, cwd=cwd)
        assert result.returncode == 0, result.stderr
        out = root / "build" / MONTH
        assert (out / "email.html").is_file() and (out / "email.eml").is_file()
        assert not (cwd / "build").exists() or cwd == root
        for path in out.rglob("*"):
            if path.is_file():
                text = path.read_bytes().decode("utf-8", "replace").lower()
                assert not [w for w in IDENTITY if w in text], path
        assert "Ma Lettre" in (out / "email.html").read_text(encoding="utf-8")
