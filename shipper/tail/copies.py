"""copytruncate copies: which of the input's `rotated_paths` files hold bytes of a file.

A copy whose first bytes match a generation's fingerprint holds the rest of that
generation. But a generation can also be born and copied away between two looks of the
agent (written, copied and truncated while the reader waited for room in flight, or
before its first read, or before the scan registered the file): its copy matches no
fingerprint the agent ever took. Such copies are found by elimination: every file state
remembers the copies that existed when its current generation began, or that it has
read (`FileState.copies`, by device and inode); a copy not among them, made after, is
a generation never seen, read whole as a generation of its own. A listing cannot tell
when a copy was made: one made within milliseconds of its file's creation (before the
agent listed) would look old; so the copies inotify reports as created after the file
was (InputTailer.born) are accounted for only once read.

The elimination is guarded, since reading a wrong file as a generation would ship its
lines twice or ship foreign ones: the copy's name begins with the file's own name (the
naming of logrotate and of Python's handlers: `app.log.1`, `app.log-20261207`), it is
no file the registry tails, it is not compressed, and its first bytes are not the file's
current first bytes (then it is a copy of what the file still holds: the truncation has
not happened yet, and the current generation will read those bytes itself).
"""

from __future__ import annotations

import glob
import os
import stat as stat_mod
from collections.abc import Collection, Iterable

# gzip, bzip2, xz, zstd, lz4, zip: logrotate's `compress` makes new files of old copies
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04")
_HEAD = 64  # bytes compared with the file's own first bytes

Ident = tuple[int, int]


def listing(patterns: Iterable[str]) -> list[tuple[str, os.stat_result]]:
    """Regular files under the globs, one path per inode, oldest modification first (the
    order their generations were written in)."""
    seen: dict[Ident, tuple[str, os.stat_result]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat_mod.S_ISREG(st.st_mode):
                seen.setdefault((st.st_dev, st.st_ino), (path, st))
    return sorted(seen.values(), key=lambda p: (p[1].st_mtime_ns, p[0]))


def idents(found: Iterable[tuple[str, os.stat_result]]) -> list[list[int]]:
    """What `FileState.copies` stores: [device, inode] of each copy."""
    return [[st.st_dev, st.st_ino] for _, st in found]


def _head(fd: int, n: int) -> bytes:
    try:
        return os.pread(fd, n, 0)
    except OSError:
        return b""


def unseen(
    found: Iterable[tuple[str, os.stat_result]],
    *,
    accounted: Collection[Ident],
    tailed: Collection[Ident],
    name: str,
    live_fd: int,
) -> list[tuple[str, os.stat_result]]:
    """The copies (oldest first) that hold a generation of the file named `name` (its
    path) that the agent has never read; see the module's docstring for the guards."""
    base = os.path.basename(name)
    live = _head(live_fd, _HEAD)
    out = []
    for path, st in found:
        ident = (st.st_dev, st.st_ino)
        if ident in accounted or ident in tailed or st.st_size == 0:
            continue
        if not os.path.basename(path).startswith(base) or path == name:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            head = _head(fd, _HEAD)
        finally:
            os.close(fd)
        if head.startswith(_COMPRESSED):
            continue
        n = min(len(head), len(live))
        if n and head[:n] == live[:n]:
            continue  # a copy of what the file still holds: not truncated yet
        out.append((path, st))
    return out
