"""Files that appear whole or not at all, and appends that survive a power cut.

Every writer of the project goes through here, so every file has the same guarantee:

    write_file(path, data)     temp file in the same folder, fsync, rename over, fsync the folder
    replace_dir(path, files)   temp folder filled and fsynced, renamed into place (the old one
                               renamed aside first, then removed)
    append(path, data)         O_APPEND write, flush, fsync (fsync the folder when it was created)

A reader (the web server, a send, a mail client) sees the old bytes or the new ones, never half.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a creation in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically and durably.

    `mode`: the new file's permissions; by default the old file's, else 0o644.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_if_changed(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """`write_file` unless `path` already holds exactly `data`; True when it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    write_file(path, data, mode=mode)
    return True


def replace_dir(path: Path, files: Mapping[str, bytes]) -> None:
    """Make `path` a folder holding exactly `files` (name -> bytes), swapped in by rename.

    Any failure before the swap leaves `path` as it was and removes the temporary folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        for name, data in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        tmp.chmod(0o755)
        fsync_dir(tmp)
        old = path.with_name(f".{path.name}-old-{tmp.name[-8:]}")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def append(path: Path, data: bytes) -> None:
    """Append `data` to `path` (created if missing) and fsync before returning.

    If the file does not end with a newline (a hand edit), one is written first, so the
    appended record never joins the last line.
    """
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        if not created and f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) not in (b"\n", b"\r"):
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_dir(path.parent)
