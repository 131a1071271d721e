"""Rebuild a live preview whenever its sources change (watchfiles, in daemon threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from newsletter.web.live import LivePreview, OnEvent

WATCHED_DIRS = ("content", "templates", "issues")


def _watch(
    paths: list[Path],
    *,
    recursive: bool,
    accept: Callable[[str], bool],
    on_change: Callable[[list[str]], None],
    stop: threading.Event,
    on_event: OnEvent,
) -> None:
    """Call `on_change` with the changed paths until `stop` is set; survive a vanished folder."""
    default = DefaultFilter()  # editor swap and backup files, .git, __pycache__

    def keep(change: Change, path: str) -> bool:
        return accept(path) and default(change, path)

    while not stop.is_set():
        try:
            for changes in watch(
                *paths, watch_filter=keep, stop_event=stop, recursive=recursive,
                raise_interrupt=False, debounce=800, step=50,
            ):
                on_change(sorted({path for _change, path in changes}))
        except Exception as exc:  # e.g. a watched folder removed and made again
            on_event(f"error: watching {', '.join(map(str, paths))}: {exc}")
            stop.wait(1.0)


def describe(paths: list[str], rel: Callable[[Path], str]) -> str:
    """The changed files a rebuild names: those still there (an editor's or `sed -i`'s
    temporary file, renamed over the article, is gone by then), at most three."""
    shown = [p for p in paths if Path(p).exists()] or paths
    names = ", ".join(rel(Path(p)) for p in shown[:3])
    return names + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def start_watchers(
    preview: LivePreview, stop: threading.Event, on_event: OnEvent
) -> list[threading.Thread]:
    """content/, templates/, issues/ (recursively) and .env at the root: any change rebuilds."""
    layout = preview.layout

    def changed(paths: list[str]) -> None:
        preview.rebuild(reason=f" ({describe(paths, layout.rel)})")

    dirs = [layout.root / name for name in WATCHED_DIRS if (layout.root / name).is_dir()]
    env_file = str(layout.env_file)
    # Two watchers because notify's `recursive` is one flag per watcher: the folders in depth,
    # the root only at its top level (so that a .env created later is seen, build/ is not).
    jobs: list[tuple[list[Path], bool, Callable[[str], bool]]] = [
        (dirs, True, lambda path: True),
        ([layout.root], False, lambda path: path == env_file),
    ]
    threads = []
    for paths, recursive, accept in jobs:
        if not paths:
            continue
        thread = threading.Thread(
            target=_watch,
            args=(paths,),
            kwargs={
                "recursive": recursive, "accept": accept, "on_change": changed, "stop": stop,
                "on_event": on_event,
            },
            name=f"preview-watch-{'dirs' if recursive else 'root'}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads
