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


def fingerprint(fd: int, length: int) -> str:
    data = os.pread(fd, length, 0) if length else b""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def matches(state: FileState, fd: int, size: int) -> bool:
    """Does the open file still hold the bytes the state was fingerprinted on?"""
    if size < state.fp_len:
        return False
    return fingerprint(fd, state.fp_len) == state.fingerprint


def refresh(state: FileState, fd: int, size: int, want: int) -> bool:
    """Grow a short fingerprint once the file has more bytes; True when it changed.

    Only while the bytes it was taken on are still there: a file truncated and rewritten
    meanwhile is another generation, and fingerprinting its new first bytes would make
    the state vouch for content it never read (and match the wrong copytruncate copy).
    """
    if state.fp_len >= want or size <= state.fp_len:
        return False
    n = min(size, want)
    data = os.pread(fd, n, 0)
    if len(data) < n or hashlib.blake2b(data[: state.fp_len], digest_size=16).hexdigest() != state.fingerprint:
        return False
    state.fingerprint = hashlib.blake2b(data, digest_size=16).hexdigest()
    state.fp_len = n
    return True
