"""Review of the pipeline's early send (send5: f1ee2bf, 61c78bc): a request being gathered
goes out when a reader waits for room. Still: the in-flight bound holds, every reader gets
through, nothing spins while Elasticsearch does not answer (readers wait, the sender
gathering does not loop on wake-ups), and a shutdown while readers wait leaves nothing
waiting."""

from __future__ import annotations

import asyncio
import random
from array import array
from typing import Any

from shipper.acks import Watermark
from shipper.metrics import Metrics
from shipper.pipeline import Part, Pipeline

LIMIT = 1000


class _Batch:
    def __init__(self, n: int, size: int) -> None:
        self.n = n
        self.body = b"x" * size
        self.count = 1
        self.item_ends = array("q", [size]).tobytes()
        self.end_offset = 1000 * (n + 1)
        self.lines = 1


def _pipeline(max_bytes: int, flush: float) -> Pipeline:
    return Pipeline(max_inflight_bytes=LIMIT, max_bytes=max_bytes, max_events=20_000, flush_interval=flush,
                    senders=2, metrics=Metrics())


def _watch_bound(p: Pipeline) -> list[int]:
    """Check the bound after every acquire: at most LIMIT in flight, or one segment alone."""
    peaks = [0]
    acquire = p.capacity.acquire

    async def checked(n: int) -> None:
        await acquire(n)
        used = p.capacity.used
        assert used <= LIMIT or used == n, (used, n)
        peaks[0] = max(peaks[0], used)

    p.capacity.acquire = checked  # type: ignore[method-assign]
    return peaks


async def test_the_bound_holds_and_every_reader_gets_through() -> None:
    rnd = random.Random(5)
    for max_bytes, flush in ((600, 0.05), (300, 0.001), (2000, 0.01)):
        p = _pipeline(max_bytes, flush)
        peaks = _watch_bound(p)
        got: dict[str, list[int]] = {}

        async def deliver(parts: list[Part], p: Pipeline = p, got: dict[str, list[int]] = got) -> None:
            await asyncio.sleep(rnd.choice((0, 0, 0.001)))
            for seg, _ in parts:
                got.setdefault(seg.input_id, []).append(seg.batch.n)
                await p.settle(seg, 1)

        p.start(deliver)

        async def reader(name: str, p: Pipeline = p) -> None:
            wm = Watermark(0, lambda *a: None)
            for i in range(60):
                await p.submit(_Batch(i, rnd.choice((1, 50, 200, 450, 999, 1500))), wm, 0, name)
                await asyncio.sleep(0)

        names = [f"r{k}" for k in range(4)]
        await asyncio.wait_for(asyncio.gather(*(reader(n) for n in names)), 60)
        assert await p.drain(60), (max_bytes, flush, p.capacity.used, p._queue.qsize())
        await p.stop()
        assert {n: sorted(v) for n, v in got.items()} == {n: list(range(60)) for n in names}
        assert p.capacity.used == 0 and p.capacity.waiting == 0
        assert peaks[0] > 0


async def test_nothing_spins_while_nothing_is_answered_and_a_shutdown_frees_the_readers() -> None:
    """Elasticsearch down: both senders' requests hang. The readers wait (each told the
    sender once), the sender gathering waits for a segment (no loop on wake-ups); cancelling
    the readers and stopping leaves nobody waiting and the budget as it was."""
    p = _pipeline(600, 3600.0)
    peaks = _watch_bound(p)
    delivered: list[list[int]] = []
    down = asyncio.Event()

    async def deliver(parts: list[Part]) -> None:
        delivered.append([seg.batch.n for seg, _ in parts])
        await down.wait()  # never answered

    p.start(deliver)
    wakes = [0]
    reader_waits = p._reader_waits

    def counted() -> None:
        wakes[0] += 1
        reader_waits()

    p.capacity.on_wait = counted
    gets = [0]
    queue: Any = p._queue
    get = queue.get

    async def counted_get() -> Any:
        gets[0] += 1
        return await get()

    queue.get = counted_get

    async def reader(k: int) -> None:
        wm = Watermark(0, lambda *a: None)
        for i in range(100):
            await p.submit(_Batch(k * 1000 + i, 100), wm, 0, f"r{k}")

    readers = [asyncio.create_task(reader(k)) for k in range(3)]
    for _ in range(200):  # plenty of loop turns for anything that would spin
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    before = (len(delivered), wakes[0], gets[0])
    for _ in range(500):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert (len(delivered), wakes[0], gets[0]) == before  # nothing moved while nothing was answered
    assert p.capacity.waiting == 3 and wakes[0] == 3  # each reader waits, once
    assert peaks[0] <= LIMIT
    used = p.capacity.used
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    assert p.capacity.waiting == 0 and p.capacity.used == used
    await p.stop()
    assert all(t.done() for t in p._tasks)


def test_drain_with_nothing_in_flight_is_done_even_with_no_time() -> None:
    """A shutdown while the output is down drains with no time left (timeout 0): with nothing
    in flight that is not a timeout (it warned "0 bytes were not acknowledged")."""

    async def main() -> tuple[bool, bool]:
        p = _pipeline(100, 0.01)
        empty = await p.drain(0.0)
        await p.capacity.acquire(10)
        pending = await p.drain(0.0)
        return empty, pending

    assert asyncio.run(main()) == (True, False)
