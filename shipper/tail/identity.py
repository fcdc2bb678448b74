"""Which file is which: device and inode, checked against a fingerprint of the first bytes.

Inodes are reused and files are renamed; the fingerprint tells a reused inode (new
content) from a renamed file (same first bytes). A file shorter than the fingerprint
size is fingerprinted over what it has, and the fingerprint is extended as it grows,
after checking that the shorter prefix still matches, so that nothing is guessed.
"""

from __future__ import annotations

import hashlib
import os

from ..registry import FileState


def fingerprint_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def fingerprint(fd: int, length: int) -> str:
    return fingerprint_of(os.pread(fd, length, 0) if length else b"")


def matches(state: FileState, fd: int, size: int) -> bool:
    """Does the open file still hold the bytes the state was fingerprinted on?"""
    if size < state.fp_len:
        return False
    return fingerprint(fd, state.fp_len) == state.fingerprint


def grow(fd: int, fp: str, fp_len: int, size: int, want: int) -> tuple[str, int]:
    """A fingerprint over more of the file's first bytes (up to `want`, as far as `size`),
    only while the bytes it was taken on are still there; else the one given.

    A file truncated and rewritten meanwhile is another generation: fingerprinting its new
    first bytes would vouch for content never read (and match the wrong copytruncate copy).
    """
    if fp_len >= want or size <= fp_len:
        return fp, fp_len
    n = min(size, want)
    data = os.pread(fd, n, 0)
    if len(data) < n or fingerprint_of(data[:fp_len]) != fp:
        return fp, fp_len
    return fingerprint_of(data), n


def refresh(state: FileState, fd: int, size: int, want: int) -> bool:
    """Grow a short fingerprint once the file has more bytes; True when it changed."""
    fp, n = grow(fd, state.fingerprint, state.fp_len, size, want)
    if n == state.fp_len:
        return False
    state.fingerprint, state.fp_len = fp, n
    return True
