"""copytruncate copies: which of the input's `rotated_paths` files hold bytes of a file.

A copy whose first bytes match a generation's fingerprint holds the rest of that
generation. But a generation can also be born and copied away between two looks of the
agent (written, copied and truncated while the reader waited for room in flight, or
before its first read, or before the scan registered the file): its copy matches no
fingerprint the agent ever took. Such copies are found by elimination: every file state
remembers the copies that existed when its current generation began, or that it has
read (`FileState.copies`); a copy not among them, made after, is a generation never
seen, read whole as a generation of its own. A copy is accounted for by what it held,
not by its inode alone: device, inode, size and a digest of its first and last
`_SPAN` bytes (`key`). One `rotated_paths` name copied over in place keeps its inode,
and a copy deleted by `rotate N` frees an inode the next copy may get (ext2/ext4 reuse
them): a new generation on an inode already accounted for would otherwise be skipped.
A copy still being written is the same copy once grown (the digest covers the bytes up
to the size it had when accounted for, which a copy in progress does not change). A listing cannot tell
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

import contextlib
import glob
import hashlib
import os
import stat as stat_mod
from collections.abc import Collection, Iterable, Iterator

# gzip, bzip2, xz, zstd, lz4, zip: logrotate's `compress` makes new files of old copies
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04")
_HEAD = 64  # bytes compared with the file's own first bytes
_SPAN = 1024  # bytes of each end of a copy in its digest (key)

Ident = tuple[int, int]
#: what FileState.copies stores per copy: (device, inode, size, digest); (device, inode)
#: in registries of format 3 (any content on that inode counts as accounted for)
Key = tuple[int, ...]


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


def _digest(fd: int, size: int) -> int:
    """64 bits of BLAKE2b over the first and the last `_SPAN` bytes of the copy's first
    `size` bytes: what tells a copy rewritten in place from what it held before."""
    try:
        data = os.pread(fd, min(size, _SPAN), 0)
        if size > _SPAN:
            data += b"\0" + os.pread(fd, min(size - _SPAN, _SPAN), max(_SPAN, size - _SPAN))
    except OSError:
        data = b""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def key(fd: int, st: os.stat_result) -> Key:
    """The key of the copy open at `fd` (`st`: its fstat), as `FileState.copies` holds it."""
    return (st.st_dev, st.st_ino, st.st_size, _digest(fd, st.st_size))


@contextlib.contextmanager
def opened(path: str, st: os.stat_result) -> Iterator[tuple[int, os.stat_result] | None]:
    """The copy at `path` open (descriptor, fstat) if it is still the file `st` describes
    (the listing is a moment old); None when gone or replaced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        cst = os.fstat(fd)
        yield (fd, cst) if (cst.st_dev, cst.st_ino) == (st.st_dev, st.st_ino) else None
    finally:
        os.close(fd)


def key_of(path: str, st: os.stat_result) -> Key | None:
    """The key of the copy at `path` if it is still the file `st` describes, else None."""
    with opened(path, st) as o:
        return None if o is None else key(*o)


def keys(found: Iterable[tuple[str, os.stat_result]]) -> list[list[int]]:
    """What `FileState.copies` stores for the copies found (those still there)."""
    return [list(k) for path, st in found if (k := key_of(path, st)) is not None]


def holds(k: Key, fd: int, st: os.stat_result) -> bool:
    """Is the copy open at `fd` (`st`: its fstat) still what it held when `k` was taken?
    The same inode, at least as long (a copy in progress grows), the same digest over the
    bytes it had then; a key of format 3 (device, inode) matches any content."""
    if tuple(k[:2]) != (st.st_dev, st.st_ino):
        return False
    if len(k) < 4:
        return True
    return st.st_size >= k[2] and _digest(fd, k[2]) == k[3]


def _head(fd: int, n: int) -> bytes:
    try:
        return os.pread(fd, n, 0)
    except OSError:
        return b""


def unseen(
    found: Iterable[tuple[str, os.stat_result]],
    *,
    accounted: Collection[Key],
    tailed: Collection[Ident],
    name: str,
    live_fd: int,
) -> list[tuple[str, os.stat_result]]:
    """The copies (oldest first) that hold a generation of the file named `name` (its
    path) that the agent has never read; see the module's docstring for the guards."""
    base = os.path.basename(name)
    live = _head(live_fd, _HEAD)
    by_ident: dict[Ident, list[Key]] = {}
    for k in accounted:
        by_ident.setdefault((k[0], k[1]), []).append(k)
    out = []
    for path, st in found:
        ident = (st.st_dev, st.st_ino)
        if ident in tailed or st.st_size == 0:
            continue
        if not os.path.basename(path).startswith(base) or path == name:
            continue
        with opened(path, st) as o:
            if o is None or any(holds(k, *o) for k in by_ident.get(ident, ())):
                continue  # gone or replaced meanwhile (listed again next time), or accounted for
            head = _head(o[0], _HEAD)
        if head.startswith(_COMPRESSED):
            continue
        n = min(len(head), len(live))
        if n and head[:n] == live[:n]:
            continue  # a copy of what the file still holds: not truncated yet
        out.append((path, st))
    return out
