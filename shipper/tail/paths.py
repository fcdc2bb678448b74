"""Which files an input matches now: its globs minus its excludes.

The answer comes from walking the file system, not from notifications: a rescan is how
the agent recovers from everything inotify fails to say (queue overflow, watches it
could not add, network file systems).
"""

from __future__ import annotations

import glob
import os
import re
import stat as stat_mod
from collections.abc import Iterable


def translate(pattern: str) -> re.Pattern[str]:
    """A glob with `**` (any depth, including none) as a regex over the whole path."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("^" + "".join(out) + "$")


class PathMatcher:
    """An input's `paths` and `exclude` globs."""

    def __init__(self, paths: Iterable[str], exclude: Iterable[str]) -> None:
        self.paths = list(paths)
        self._include = [translate(p) for p in self.paths]
        self._exclude_full = [translate(p) for p in exclude if "/" in p]
        self._exclude_name = [translate(p) for p in exclude if "/" not in p]

    def excluded(self, path: str) -> bool:
        name = os.path.basename(path)
        return any(r.match(path) for r in self._exclude_full) or any(r.match(name) for r in self._exclude_name)

    def included(self, path: str) -> bool:
        return any(r.match(path) for r in self._include) and not self.excluded(path)

    def scan(self) -> dict[str, os.stat_result]:
        """Regular files that match now, with their stat (symlinks followed)."""
        found: dict[str, os.stat_result] = {}
        for pattern in self.paths:
            for path in glob.iglob(pattern, recursive=True):
                if path in found or self.excluded(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    found[path] = st
        return found

    def watch_roots(self) -> list[tuple[str, bool]]:
        """Directories to watch and whether recursively: the static prefix of each glob."""
        roots: dict[str, bool] = {}
        for pattern in self.paths:
            parts = pattern.split("/")
            static: list[str] = []
            for part in parts[:-1]:
                if glob.has_magic(part):
                    break
                static.append(part)
            root = "/".join(static) or "/"
            recursive = len(static) < len(parts) - 1
            roots[root] = roots.get(root, False) or recursive
        return sorted(roots.items())
