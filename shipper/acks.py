"""Acknowledgements to checkpoints: a contiguous watermark per file.

Bulk requests finish out of order (several in flight, retries of single items), but a
checkpoint may only move over a run of input that is acknowledged to its end. Batches
of one file are registered in read order, so the watermark is a queue whose head
advances while its first entries are done: O(1) per batch, never per event.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable


class Pending:
    """One parsed chunk of one file awaiting its acknowledgement (and its counters, if any)."""

    __slots__ = ("counts", "done", "end_offset", "generation")

    def __init__(self, end_offset: int, generation: int) -> None:
        self.end_offset = end_offset
        self.generation = generation
        self.done = False
        self.counts: object = None


def _none() -> None:
    return None


class Watermark:
    """Advances `acked` over the contiguous prefix of finished chunks of one file."""

    def __init__(self, acked: int, on_advance: Callable[[int, int], None]) -> None:
        self.acked = acked
        self._queue: deque[Pending] = deque()
        self._on_advance = on_advance
        # called with a chunk's counters when the watermark moves over it, in the same
        # step as `on_advance`: counts then cover exactly what the checkpoint covers
        self.on_settle: Callable[[object], None] | None = None
        self._owner: Callable[[], object] = _none

    @property
    def owner(self) -> object:
        """The reader (its source and parser tables, for counting), or None once it is gone.

        Held weakly: the reader holds its watermark, and a strong reference back made the
        pair a cycle, so a closed file's reader and its parser's C buffers (~0.6 MiB, which
        the collector's thresholds do not count) waited for a full cyclic collection."""
        return self._owner()

    @owner.setter
    def owner(self, reader: object) -> None:
        self._owner = _none if reader is None else weakref.ref(reader)

    def add(self, end_offset: int, generation: int) -> Pending:
        p = Pending(end_offset, generation)
        self._queue.append(p)
        return p

    def done(self, p: Pending) -> None:
        p.done = True
        q = self._queue
        moved = False
        while q and q[0].done:
            head = q.popleft()
            if head.counts is not None and self.on_settle is not None:
                self.on_settle(head.counts)
            self.acked = head.end_offset
            moved = True
            gen = head.generation
        if moved:
            self._on_advance(self.acked, gen)

    def reset(self, acked: int) -> None:
        """A new generation starts at `acked` (0); nothing of the old one may be pending."""
        assert not self._queue, "reset with chunks still in flight"
        self.acked = acked

    @property
    def outstanding(self) -> int:
        return len(self._queue)
