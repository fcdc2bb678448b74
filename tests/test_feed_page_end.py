"""A feed whose bytes end at the end of a memory page, the next page unreadable.

The compiled parser scans a feed's line ends 64 bytes at a time and loads 16 bytes at
once only where they stay in the page; the last block of a feed that ends 1-15 bytes into
the end of a page takes the byte loop. That path once started from an uninitialised index
(found by the lead's differential run: a line end missed now and then, the line shipped as
truncated and incomplete). Here the feed is a view of an mmap that ends exactly at a
PROT_NONE page, for every tail length, so that path runs on every case and a read past the
end faults instead of passing by luck.
"""

from __future__ import annotations

import ctypes
import mmap
from types import ModuleType

import pytest

from tests.test_fastparse import T0, impl, make

__all__ = ["impl"]  # the fixture: every case on both parsers

PAGE = mmap.PAGESIZE


def _guarded(data: bytes) -> tuple[mmap.mmap, memoryview]:
    """``data`` at the end of a page whose next page cannot be read."""
    assert len(data) <= PAGE
    m = mmap.mmap(-1, 2 * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(base + PAGE, PAGE, 0) != 0:
        pytest.skip("mprotect refused")
    m[PAGE - len(data):PAGE] = data
    return m, memoryview(m)[PAGE - len(data):PAGE]


LINES = [
    b"2026-11-25 07:30:01,123 - t - INFO - loss=0.5 acc=0.9\n",
    b"step=1\r\r\n",
    b"\x1b[1;31mERROR:root:x\x1b[0m\n",
    b"a\rb\rc\n",
    b"plain words here\n",
]


@pytest.mark.parametrize("progress", ["last", "drop"])
def test_feed_ending_at_a_page_end_reads_like_bytes(impl: ModuleType, progress: str) -> None:
    for tail in range(1, 80):
        body = b"".join(LINES[i % len(LINES)] for i in range(tail // 7 + 1))
        for extra in (b"", b"\n", b"\r\n", b"\r", b"x"):
            data = (body + b"z" * tail)[-tail:] if tail < len(body) else body
            data = data + extra
            kw = dict(format="python", progress=progress, max_line_bytes=40, timezone="UTC")
            want = make(impl, **kw)
            wb = [want.feed(b"head\n", T0).body, want.feed(data, T0).body, want.flush(T0).body]
            got = make(impl, **kw)
            m, view = _guarded(data)
            try:
                gb = [got.feed(b"head\n", T0).body, got.feed(view, T0).body, got.flush(T0).body]
            finally:
                view.release()
                m.close()
            assert gb == wb, (tail, extra, data)
