"""Pipeline senders: one collects a request at a time, and max_inflight_requests are still
sent at once (issue 8: write-to-searchable latency and requests per line).

When every sender gathered at once, a trickle of segments was dealt out between them:
each request lingered flush_interval from its own first segment, so a steady stream went
out as two half-full requests per flush_interval and every line still waited up to
flush_interval. Now one sender gathers while the others deliver; under load the queue
holds a full request at once, so the senders still overlap."""

from __future__ import annotations

import asyncio
from array import array

from shipper.acks import Watermark
from shipper.metrics import Metrics
from shipper.pipeline import Capacity, Part, Pipeline


class _Batch:
    def __init__(self, n: int) -> None:
        self.n = n
        self.body = b"x" * 100
        self.count = 1
        self.item_ends = array("q", [100]).tobytes()
        self.end_offset = 100 * (n + 1)
        self.lines = 1


def _pipeline(max_bytes: int, flush: float, max_events: int = 20_000) -> Pipeline:
    return Pipeline(
        max_inflight_bytes=1 << 24,
        max_bytes=max_bytes,
        max_events=max_events,
        flush_interval=flush,
        senders=2,
        metrics=Metrics(),
    )


async def _settle(p: Pipeline, parts: list[Part]) -> None:
    for seg, _ in parts:
        await p.settle(seg, 1)


async def test_a_steady_stream_is_collected_by_one_sender_at_a_time() -> None:
    p = _pipeline(4 << 20, 0.1)
    requests: list[list[int]] = []

    async def deliver(parts: list[Part]) -> None:
        requests.append([seg.batch.n for seg, _ in parts])
        await asyncio.sleep(0.005)
        await _settle(p, parts)

    p.start(deliver)
    wm = Watermark(0, lambda *a: None)
    for i in range(40):
        await p.submit(_Batch(i), wm, 0, "in")
        await asyncio.sleep(0.01)
    assert await p.drain(10)
    await p.stop()
    flat = [n for r in requests for n in r]
    assert flat == list(range(40))  # each request a run of consecutive segments: none interleaved
    assert len(requests) < 40  # and the segments of a flush window went out together


async def test_a_trickle_goes_in_one_request() -> None:
    """Three one-event segments in a trickle, max_events 3, a long flush_interval: one
    request of three (dealt between two gathering senders, neither reached 3 and both
    lingered the whole flush_interval)."""
    p = _pipeline(4 << 20, 30.0, max_events=3)
    requests: list[list[int]] = []
    first = asyncio.Event()

    async def deliver(parts: list[Part]) -> None:
        requests.append([seg.batch.n for seg, _ in parts])
        first.set()
        await _settle(p, parts)

    p.start(deliver)
    wm = Watermark(0, lambda *a: None)
    for i in range(3):  # a trickle: the senders wait (or linger) between segments
        await asyncio.sleep(0.01)
        await p.submit(_Batch(i), wm, 0, "in")
    await asyncio.wait_for(first.wait(), 10)
    await p.stop()
    assert requests == [[0, 1, 2]]


async def test_two_requests_are_still_in_flight_at_once() -> None:
    p = _pipeline(100, 0.0)  # one segment per request
    active = 0
    peak = 0
    release = asyncio.Event()

    async def deliver(parts: list[Part]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1
        await _settle(p, parts)

    p.start(deliver)
    wm = Watermark(0, lambda *a: None)
    for i in range(4):
        await p.submit(_Batch(i), wm, 0, "in")
    for _ in range(20):
        await asyncio.sleep(0.01)
        if peak == 2:
            break
    release.set()
    assert await p.drain(10)
    await p.stop()
    assert peak == 2


async def test_a_request_goes_out_when_readers_wait_for_room() -> None:
    """bulk_max_bytes over half of max_inflight_bytes: with the first request in flight,
    the second can never fill (the readers wait for room that only the first one's answer
    frees). It goes out with what it has as soon as a reader waits, not after the first
    request's answer or flush_interval (which it waited for before)."""
    p = Pipeline(
        max_inflight_bytes=1000,
        max_bytes=600,
        max_events=20_000,
        flush_interval=3600.0,
        senders=2,
        metrics=Metrics(),
    )
    requests: list[list[int]] = []
    two = asyncio.Event()
    answer = asyncio.Event()

    async def deliver(parts: list[Part]) -> None:
        requests.append([seg.batch.n for seg, _ in parts])
        if len(requests) == 2:
            two.set()
        await answer.wait()  # no request is answered before two went out
        await _settle(p, parts)

    p.start(deliver)
    wm = Watermark(0, lambda *a: None)

    async def reader() -> None:
        for i in range(20):
            await p.submit(_Batch(i), wm, 0, "in")
            await asyncio.sleep(0)

    read = asyncio.create_task(reader())
    await asyncio.wait_for(two.wait(), 30)  # before: the second request lingered for 3600 s
    assert requests == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert p.capacity.waiting == 1
    answer.set()
    await asyncio.wait_for(read, 30)  # answered: room again, every segment submitted
    await p.stop()
    flat = [n for r in requests for n in r]
    assert flat == list(range(len(flat)))


async def test_a_reader_woken_by_an_acknowledgement_no_longer_counts_as_waiting() -> None:
    """Once room is freed the woken reader is not waiting any more, even before it runs:
    a sender gathering right after the acknowledgement must not cut its request short."""
    cap = Capacity(1000, Metrics())
    await cap.acquire(800)
    waiter = asyncio.create_task(cap.acquire(500))
    await asyncio.sleep(0)
    assert cap.waiting == 1
    await cap.release(800)
    assert cap.waiting == 0  # the reader has not run yet
    await waiter
    assert cap.used == 500
    big = asyncio.create_task(cap.acquire(600))  # woken by a release that leaves too little: waits again
    await asyncio.sleep(0)
    await cap.release(50)
    for _ in range(5):  # it runs, finds 450 + 600 over 1000 and waits again
        await asyncio.sleep(0)
    assert cap.waiting == 1 and not big.done()
    await cap.release(400)
    await big
    assert cap.used == 650 and cap.waiting == 0


async def test_an_answer_releases_its_segments_in_one_step() -> None:
    """The segments of one answered request leave the budget together: the waiting readers
    are woken once per answer (not once per segment), the watermark moves over all, and
    the acknowledged-events counter counts them all."""
    p = _pipeline(4 << 20, 0.01)
    releases: list[int] = []
    release = p.capacity.release

    async def counted(n: int) -> None:
        releases.append(n)
        await release(n)

    p.capacity.release = counted  # type: ignore[method-assign]
    advanced: list[int] = []
    wm = Watermark(0, lambda offset, gen: advanced.append(offset))
    for i in range(5):
        await p.submit(_Batch(i), wm, 0, "in")
    requests: list[list[Part]] = []

    async def deliver(parts: list[Part]) -> None:
        requests.append(parts)
        await p.settle_all((seg, 1) for seg, _ in parts)

    p.start(deliver)
    assert await p.drain(10)
    await p.stop()
    assert [len(r) for r in requests] == [5]
    assert releases == [500] and p.capacity.used == 0
    assert wm.acked == 500 and advanced[-1] == 500
    assert [v for n, _, v in p._metrics.events_acked.series() if n.endswith("_total")] == [5.0]
