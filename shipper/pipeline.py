"""From parsed chunks to bulk requests: bounded bytes in flight, batching by size and time.

Readers hand over whole parsed chunks (one `_bulk` body and its item arrays per chunk);
nothing here looks at single events unless Elasticsearch refused some of them. The
in-flight bound is what makes the log files the buffer: when the output is slow or
down, `submit` waits and the readers stop reading, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from .acks import Pending, Watermark
from .metrics import Metrics


class Capacity:
    """A byte budget that readers wait on; one chunk may always pass when nothing is in flight."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.used = 0
        self.on_wait: Callable[[], None] | None = None  # called when a reader begins to wait
        # readers waiting for room and not yet woken: nothing more is read before an
        # acknowledgement (a release wakes them all; one that still does not fit comes back)
        self._blocked: set[object] = set()
        self.closed = False  # shutting down: a reader that does not fit stops instead of waiting
        self._cond = asyncio.Condition()
        # read when scraped: a Gauge.set (a lock and a float) twice per chunk otherwise
        metrics.inflight_bytes.set_function(lambda: self.used)

    @property
    def waiting(self) -> int:
        return len(self._blocked)

    async def acquire(self, n: int) -> None:
        async with self._cond:
            while not (self.used == 0 or self.used + n <= self.limit):
                if self.closed:  # its task ends cancelled; unacknowledged, the chunk is read again next start
                    raise asyncio.CancelledError
                token = object()
                self._blocked.add(token)
                if self.on_wait is not None:
                    self.on_wait()
                try:
                    await self._cond.wait()
                finally:
                    self._blocked.discard(token)
            self.used += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= n
            self._blocked.clear()  # woken: they run before any further read is possible
            self._cond.notify_all()

    async def close(self) -> None:
        """Shutdown: readers waiting for room stop waiting (an acknowledgement may never come
        while the output is down, and the agent waited for its readers forever); what fits
        still passes."""
        async with self._cond:
            self.closed = True
            self._blocked.clear()
            self._cond.notify_all()

    async def wait_empty(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.used == 0)


class Segment:
    """One parsed chunk on its way: the items still unsettled and whom to tell when done."""

    __slots__ = ("batch", "ends", "input_id", "nbytes", "pending", "remaining", "version", "watermark")

    def __init__(self, batch: Any, watermark: Watermark, pending: Pending, input_id: str, version: int = 0) -> None:
        self.version = version  # the registry version that must be durable before this is sent
        self.batch = batch
        self.watermark = watermark
        self.pending = pending
        self.input_id = input_id
        self.nbytes = len(batch.body)
        self.remaining = batch.count
        self.ends = memoryview(batch.item_ends).cast("q") if batch.count else None

    def item(self, i: int) -> memoryview:
        assert self.ends is not None
        start = self.ends[i - 1] if i else 0
        return memoryview(self.batch.body)[start : self.ends[i]]


# The per-event arrays a parsed batch carries for the counters (about a quarter of its
# body's size, not in the in-flight budget): counted at submit, not needed after it.
_ARRAYS = (
    "ev_time",
    "ev_level",
    "ev_class",
    "ev_bytes",
    "m_item",
    "m_id",
    "m_value",
    "p_item",
    "p_label",
    "p_pred",
    "p_score",
)


def _drop_arrays(batch: Any) -> None:
    for name in _ARRAYS:
        try:
            setattr(batch, name, None)
        except AttributeError:  # a batch without them (tests' stand-ins)
            pass


class Observer(Protocol):
    """Counts batches (the anomaly watch): ``observe`` when submitted, ``settle`` when the
    file's watermark moves over them, so counts follow the checkpoint exactly."""

    def observe(self, batch: Any, owner: Any, input_id: str) -> Any: ...

    def settle(self, token: Any) -> None: ...


# A part of a bulk request: a segment and which of its items (None: all of them).
Part = tuple[Segment, "list[int] | None"]
Deliver = Callable[[list[Part]], Awaitable[None]]


class Pipeline:
    """Queues segments, cuts them into bulk requests, and settles them when acknowledged."""

    def __init__(
        self,
        *,
        max_inflight_bytes: int,
        max_bytes: int,
        max_events: int,
        flush_interval: float,
        senders: int,
        metrics: Metrics,
    ) -> None:
        self.capacity = Capacity(max_inflight_bytes, metrics)
        self.capacity.on_wait = self._reader_waits
        # segments, and None: a wake-up for the gathering sender (a reader began to wait)
        self._queue: asyncio.Queue[Segment | None] = asyncio.Queue()
        self._lingering = False
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._flush_interval = flush_interval
        self._senders = senders
        self._tasks: list[asyncio.Task[None]] = []
        self._gathering = asyncio.Lock()
        self._metrics = metrics
        self._deliver: Deliver | None = None
        self._before_send: Callable[[int], Awaitable[None]] | None = None
        self.observer: Observer | None = None

    def start(self, deliver: Deliver, before_send: Callable[[int], Awaitable[None]] | None = None) -> None:
        self._deliver = deliver
        self._before_send = before_send
        self._tasks = [asyncio.create_task(self._sender(), name=f"sender-{i}") for i in range(self._senders)]

    async def submit(self, batch: Any, watermark: Watermark, generation: int, input_id: str, version: int = 0) -> None:
        """Hand over one parsed chunk; waits while too many bytes are in flight."""
        pending = watermark.add(batch.end_offset, generation)
        if self.observer is not None and batch.count:
            pending.counts = self.observer.observe(batch, watermark.owner, input_id)
            watermark.on_settle = self.observer.settle
        _drop_arrays(batch)
        seg = Segment(batch, watermark, pending, input_id, version)
        if seg.remaining == 0:
            watermark.done(pending)
            return
        await self.capacity.acquire(seg.nbytes)
        self._queue.put_nowait(seg)

    async def settle(self, seg: Segment, n: int = 1) -> None:
        """`n` items of `seg` are done (indexed, replayed or dead-lettered)."""
        await self.settle_all(((seg, n),))

    async def settle_all(self, done: Iterable[tuple[Segment, int]]) -> None:
        """Items of several segments are done (`n` of each): one answer's worth. Their
        bytes leave the budget in one release, which wakes the waiting readers once, not
        once per segment (a request carries ~6), and the counter moves once."""
        freed = events = 0
        for seg, n in done:
            seg.remaining -= n
            if seg.remaining == 0:
                events += seg.batch.count
                seg.watermark.done(seg.pending)
                freed += seg.nbytes
        if freed:
            self._metrics.events_acked.inc(events)
            await self.capacity.release(freed)

    async def _sender(self) -> None:
        assert self._deliver is not None
        while True:
            # One sender gathers a request at a time; the others deliver theirs meanwhile.
            # Gathering all at once (each lingering flush_interval from its own first
            # segment) split a trickle between them: twice the requests, each line still
            # waiting up to flush_interval. Under load the queue holds a full request at
            # once, so the gathering is instant and the senders still overlap.
            async with self._gathering:
                parts = await self._gather()
            if self._before_send is not None:
                await self._before_send(max(seg.version for seg, _ in parts))
            await self._deliver(parts)
            # settled: their bodies are out of the budget, so let them go now, not when
            # the next request is gathered (up to max_bytes per sender held on top of it)
            del parts

    async def _gather(self) -> list[Part]:
        """The next request: the first segment, then more until a size limit or
        flush_interval after the first."""
        first = await self._queue.get()
        while first is None:  # a wake-up left from an earlier request
            first = await self._queue.get()
        parts: list[Part] = [(first, None)]
        size, events = first.nbytes, first.remaining
        deadline = time.monotonic() + self._flush_interval
        while size < self._max_bytes and events < self._max_events:
            try:
                seg = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                # a reader waiting for room adds nothing before an acknowledgement frees
                # some: lingering would only hold this request back (a bulk_max_bytes over
                # half of max_inflight_bytes: the second sender's request waited for the
                # first one's answer, or for flush_interval with nothing in flight)
                if left <= 0 or self.capacity.waiting:
                    break
                self._lingering = True
                try:
                    seg = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
                finally:
                    self._lingering = False
            if seg is None:
                continue  # a reader began to wait: look again
            parts.append((seg, None))
            size += seg.nbytes
            events += seg.remaining
        return parts

    def _reader_waits(self) -> None:
        if self._lingering:  # wake the sender that waits for more of its request
            self._lingering = False
            self._queue.put_nowait(None)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything submitted is acknowledged; False on timeout."""
        if self.capacity.used == 0:  # wait_for with no time left fails even on nothing to wait for
            return True
        try:
            await asyncio.wait_for(self.capacity.wait_empty(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
