"""The service's one writer: changes from many requests, committed and applied in groups.

Requests hand their change to `Writer.submit` and await the future. The writer thread takes
every change waiting, commits them in one SQLite transaction (one fsync: group commit, as the
send journal's GroupCommitter does), applies them to the list file in one rewrite under the
list's lock, marks them applied, and only then resolves the futures: a 200 always follows
both steps. Under load a group grows with the queue, so the cost per change falls.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from newsletter.send import changes as changelog

#: A group never holds more than this many changes (bounds one list rewrite's latency).
MAX_GROUP = 500

_Item = tuple[tuple[str, changelog.Action, str, float, str], "Future[changelog.Change]"]


class Writer:
    def __init__(self, log: changelog.Changes, list_path: Path) -> None:
        self.log, self.list_path = log, list_path
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="serve-writer", daemon=True)
        self._thread.start()

    def submit(
        self, email: str, action: changelog.Action, source: str, name: str = ""
    ) -> Future[changelog.Change]:
        future: Future[changelog.Change] = Future()
        self._queue.put(((email, action, source, time.time(), name), future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._write(group)
            if stop:
                return

    def _write(self, group: list[_Item]) -> None:
        try:
            done = self.log.record_many([change for change, _ in group])
            self.log.apply(self.list_path, done)
        except BaseException as exc:  # every waiting request answers 500, none hangs
            for _, future in group:
                future.set_exception(exc)
            return
        for change, (_, future) in zip(done, group, strict=True):
            future.set_result(change)
