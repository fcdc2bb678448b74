"""Change hints from watchdog (inotify on Linux), delivered into the event loop.

The only module that touches threads. Hints only: after an inotify queue overflow
watchdog rebuilds its watches but reports nothing of what was lost, a truncation
arrives as a plain modification, and a directory that does not exist yet cannot be
watched at all. So every hint just wakes the agent to look (stat decides), and the
periodic rescan covers whatever no hint announced.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)

Hint = Callable[[str, bool], None]  # (path, structural): structural = created/moved/deleted
# a file appeared at path: (path, created (else moved there), the path it was moved from)
Pin = Callable[[str, bool, str], None]


class _Handler(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, hint: Hint, pin: Pin | None) -> None:
        self._loop = loop
        self._hint = hint
        self._pin = pin

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        structural = event.event_type != "modified" or event.is_directory
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        if self._pin is not None and not event.is_directory and event.event_type in ("created", "moved"):
            # before the hint: the scan it wakes finds the file pinned even if renamed away
            created = event.event_type == "created"
            self._pin(os.fsdecode(dest or event.src_path), created, "" if created else os.fsdecode(event.src_path))
        for p in paths:
            path = os.fsdecode(p)
            try:
                self._loop.call_soon_threadsafe(self._hint, path, structural)
            except RuntimeError:  # the loop closed while the observer was stopping
                return


class Notifier:
    """Watches directories; falls back to the rescan timer for what it cannot watch.

    A recursive watch costs one inotify watch per directory below the root, and the
    kernel's limit (fs.inotify.max_user_watches) is shared by every program of the
    user: the directories are counted first, and a root that would pass `max_watches`
    is polled instead, with a warning that says so.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, hint: Hint, max_watches: int = 8192, pin: Pin | None = None
    ) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        self._handler = _Handler(loop, hint, pin)
        self._watched: dict[str, bool] = {}
        self.failed: dict[str, str] = {}
        self.max_watches = max_watches
        self.used = 0
        kernel = _kernel_watch_limit()
        if kernel is not None and kernel < max_watches:
            log.warning(
                "the kernel allows %d inotify watches per user (fs.inotify.max_user_watches), fewer "
                "than max_watches %d; directories past it will be polled",
                kernel,
                max_watches,
            )

    def start(self) -> None:
        self._observer.start()

    def watch(self, root: str, recursive: bool) -> None:
        """Watch the nearest existing ancestor of root (the root may not exist yet)."""
        path = root
        while not os.path.isdir(path) and path not in ("", "/"):
            path, recursive = os.path.dirname(path), False
        if self._watched.get(path) is recursive or self._watched.get(path):
            return
        need = _count_dirs(path) if recursive else 1
        if self.used + need > self.max_watches:
            if path not in self.failed:
                log.warning(
                    "not watching %s: its %d directories would pass max_watches %d (%d in use); "
                    "polling it on the rescan timer instead",
                    path,
                    need,
                    self.max_watches,
                    self.used,
                )
            self.failed[path] = "max_watches"
            return
        try:
            self._observer.schedule(self._handler, path, recursive=recursive)
        except OSError as e:  # ENOSPC: the kernel's watch limit
            if path not in self.failed:
                log.warning("cannot watch %s (%s); polling it on the rescan timer instead", path, e)
            self.failed[path] = str(e)
            return
        self.used += need
        self._watched[path] = recursive
        self.failed.pop(path, None)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def _count_dirs(root: str) -> int:
    return sum(1 for _ in os.walk(root))


def _kernel_watch_limit() -> int | None:
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None
