"""The window/anomaly document writer: bounded, never blocking, retries what may pass later."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from shipper.anomaly.documents import DocumentWriter, doc_id


class FakeClient:
    """A `_bulk` that fails the first `down` calls, then answers with `statuses` per item."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.statuses: list[list[int]] = []  # per call, the first items' statuses (others 201)
        self.calls: list[list[dict[str, Any]]] = []

    async def bulk(self, operations: bytes, filter_path: str) -> dict[str, Any]:
        lines = operations.splitlines()
        self.calls.append([orjson.loads(x) for x in lines[1::2]])
        if self.down:
            self.down -= 1
            raise ConnectionError("refused")
        n = len(lines) // 2
        st = self.statuses.pop(0)[:n] if self.statuses else []
        items = [{"index": {"status": s}} for s in st] + [{"index": {"status": 201}}] * (n - len(st))
        return {"errors": any(s >= 300 for s in st), "items": items}


async def test_written_after_elasticsearch_comes_back_and_429_retried() -> None:
    client = FakeClient(down=1)
    w = DocumentWriter(client, backoff_max=0.01)
    w.start()
    w.add("shipper-metrics-x", "a", {"n": 1})
    w.add("shipper-metrics-x", "b", {"n": 2})
    assert await w.flush(5)
    assert w.written == 2 and [d["n"] for d in client.calls[-1]] == [1, 2]
    client.statuses = [[429, 400]]
    w.add("shipper-metrics-x", "c", {"n": 3})
    w.add("shipper-metrics-x", "d", {"n": 4})
    assert await w.flush(5)
    assert [d["n"] for d in client.calls[-1]] == [3]  # the 429 went again; the 400 is refused for good
    assert w.failed_items == 1 and w.written == 3
    await w.stop()


async def test_put_never_waits_and_keeps_the_newest() -> None:
    client = FakeClient(down=10**9)
    w = DocumentWriter(client, max_queue=5, backoff_max=0.01)
    w.start()
    for i in range(50):
        w.add("shipper-metrics-x", str(i), {"n": i})
    await asyncio.sleep(0.05)
    assert len(w) == 5 and w.dropped == 45
    assert not await w.flush(0.05)
    await w.stop()


def test_ids_are_stable_and_distinct() -> None:
    a = doc_id("h" * 32, "svc", 1000)
    assert a == doc_id("h" * 32, "svc", 1000) and len(a) == 22
    assert (
        len(
            {
                a,
                doc_id("h" * 32, "svc", 2000),
                doc_id("h" * 32, "svc2", 1000),
                doc_id("x" * 32, "svc", 1000),
                doc_id("h" * 32, "svc", 1000, "events", "start"),
            }
        )
        == 5
    )
