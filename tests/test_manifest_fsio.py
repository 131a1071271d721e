"""build/<id>/manifest.json read in one place; every writer atomic and durable (fsio)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RunCli

from newsletter import fsio
from newsletter import manifest as manifest_module
from newsletter.errors import BuildError
from newsletter.manifest import FORMAT, Manifest


def test_a_built_manifest_reads_back_to_the_same_bytes(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    build_dir = newsletter_root / "build" / "2026-11"
    raw = (build_dir / "manifest.json").read_bytes()
    manifest = Manifest.read(build_dir)
    assert manifest.to_bytes() == raw
    data = json.loads(raw)
    assert data["format"] == FORMAT
    assert manifest.issue_id == "2026-11"
    assert [a.slug for a in manifest.article_details] == data["articles"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "unreadable manifest"),
        (b'{"id": "2026-11"}', "unreadable manifest (KeyError"),
        (b'{"format": 99, "id": "x"}', "manifest format 99 is newer than this tool's"),
        (b'{"format": 0, "id": "x"}', "manifest format 0 is older than this tool's"),
        (b"\xff\xfe", "unreadable manifest"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, content: bytes, message: str
) -> None:
    build_dir = tmp_path / "build" / "2026-11"
    build_dir.mkdir(parents=True)
    (build_dir / "manifest.json").write_bytes(content)
    with pytest.raises(BuildError) as caught:
        Manifest.read(build_dir)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("build/2026-11/manifest.json: ")
    assert message in line
    assert "newsletter build-issue 2026-11" in line


def test_read_takes_the_build_folder_or_the_manifest_file(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    assert run_cli("build-issue", "2026-12", root=newsletter_root).exit_code == 0
    build_dir = newsletter_root / "build" / "2026-12"
    by_dir = manifest_module.read(build_dir)
    assert manifest_module.read(build_dir / "manifest.json") == by_dir
    assert by_dir.issue_id == "2026-12"
    # The name the send wing has always used still works.
    from newsletter.send.message import Manifest as SendManifest

    assert SendManifest is Manifest


def test_a_missing_build_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"build/2026-12: the issue has not been built"):
        Manifest.read(tmp_path / "2026-12")


def test_a_send_refuses_a_corrupt_manifest_in_one_line(
    newsletter_root: Path, run_cli: RunCli
) -> None:
    assert run_cli("build-issue", "2026-11", root=newsletter_root).exit_code == 0
    (newsletter_root / "build" / "2026-11" / "manifest.json").write_text("[]")
    result = run_cli("send", "2026-11", "--dry-run", root=newsletter_root)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "manifest.json: unreadable manifest" in result.stderr


def test_write_file_replaces_whole_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"old\n")
    path.chmod(0o600)
    fsio.write_file(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]  # no temp file left


def test_a_write_that_fills_the_disk_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"old\n")
    # A real failure in the middle of the write: a child process whose file size limit is
    # 1 KB (as a full disk would), writing 64 KB. Permission bits would not stop root.
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from newsletter import fsio\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
        "try:\n"
        "    fsio.write_file(Path(sys.argv[1]), b'x' * 65536)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(errno.EFBIG)
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]


def test_a_write_whose_rename_fails_leaves_the_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "site"
    (target / "index.html").parent.mkdir()
    (target / "index.html").write_bytes(b"kept")
    # The rename onto a non-empty folder fails for real, after the temp file was written.
    with pytest.raises(OSError):
        fsio.write_file(target, b"new")
    assert (target / "index.html").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_a_write_under_a_file_fails_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "state").write_bytes(b"a file, not a folder")
    with pytest.raises(OSError):
        fsio.write_file(tmp_path / "state" / "list.csv", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert (tmp_path / "state").read_bytes() == b"a file, not a folder"


def test_replace_dir_keeps_the_old_folder_when_a_file_cannot_be_written(tmp_path: Path) -> None:
    out = tmp_path / "build" / "2026-11"
    fsio.replace_dir(out, {"email.html": b"<p>v1</p>"})
    # A name that cannot be created (its parent would be a file): the swap never happens.
    with pytest.raises(OSError):
        fsio.replace_dir(out, {"a": b"x", "a/b": b"y"})
    assert sorted(p.name for p in out.iterdir()) == ["email.html"]
    assert (out / "email.html").read_bytes() == b"<p>v1</p>"
    assert sorted(p.name for p in out.parent.iterdir()) == ["2026-11"]  # no temp folder left


def test_append_never_joins_a_line_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "suppressions.csv"
    path.write_bytes(b"email,reason\r\nold@example.org,manual")  # a hand edit, no final newline
    fsio.append(path, b"new@example.org,bounce\n")
    assert path.read_bytes().splitlines() == [
        b"email,reason",
        b"old@example.org,manual",
        b"new@example.org,bounce",
    ]
    fsio.append(tmp_path / "fresh.csv", b"a\n")
    assert (tmp_path / "fresh.csv").read_bytes() == b"a\n"


def test_write_if_changed_leaves_an_identical_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    assert fsio.write_if_changed(path, b"x")
    before = os.stat(path).st_ino
    assert not fsio.write_if_changed(path, b"x")
    assert os.stat(path).st_ino == before
    assert fsio.write_if_changed(path, b"y")
    assert path.read_bytes() == b"y"
