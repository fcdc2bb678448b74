"""Senders gather requests one at a time (issue 8: write-to-searchable latency).

When every sender gathered at once, a trickle of segments was dealt out between them:
each request lingered flush_interval from its own first segment, so there were twice
the requests and every line still waited up to flush_interval. Now one sender gathers
while the others deliver; under load the queue holds a full request at once, so the
senders still overlap.
"""

from __future__ import annotations

import asyncio

from shipper.acks import Watermark
from shipper.metrics import Metrics
from shipper.pipeline import Part, Pipeline
from tests.anomaly_batches import Event, FakeBatch


def _pipeline(max_events: int, flush_interval: float, senders: int = 2) -> Pipeline:
    return Pipeline(
        max_inflight_bytes=1 << 30,
        max_bytes=1 << 30,
        max_events=max_events,
        flush_interval=flush_interval,
        senders=senders,
        metrics=Metrics(),
    )


def test_a_trickle_goes_in_one_request() -> None:
    """Three one-event segments in a trickle, max_events 3, a long flush_interval: one
    request of three (dealt between two gathering senders, neither reached 3 and both
    lingered the whole flush_interval)."""

    async def go() -> list[list[Part]]:
        p = _pipeline(max_events=3, flush_interval=30.0)
        requests: list[list[Part]] = []
        first = asyncio.Event()

        async def deliver(parts: list[Part]) -> None:
            requests.append(parts)
            first.set()
            for seg, _ in parts:
                await p.settle(seg, seg.remaining)

        p.start(deliver)
        wm = Watermark(0, lambda off, gen: None)
        for i in range(3):  # a trickle: the senders wait (or linger) between segments
            await asyncio.sleep(0.01)
            await p.submit(FakeBatch([Event(time=i)], start_offset=100 * i), wm, 0, "t")
        await asyncio.wait_for(first.wait(), 10)
        await p.stop()
        return requests

    requests = asyncio.run(go())
    assert [len(r) for r in requests] == [3]


def test_senders_still_overlap_under_load() -> None:
    """A request is gathered while the other sender's is still unacknowledged."""

    async def go() -> int:
        p = _pipeline(max_events=2, flush_interval=30.0)
        in_flight = 0
        most = 0
        release = asyncio.Event()

        async def deliver(parts: list[Part]) -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if most == 2:
                release.set()
            await release.wait()
            in_flight -= 1
            for seg, _ in parts:
                await p.settle(seg, seg.remaining)

        p.start(deliver)
        wm = Watermark(0, lambda off, gen: None)
        for i in range(4):
            await p.submit(FakeBatch([Event(time=i)], start_offset=100 * i), wm, 0, "t")
        await asyncio.wait_for(release.wait(), 10)
        assert await p.drain(10)
        await p.stop()
        return most

    assert asyncio.run(go()) == 2
