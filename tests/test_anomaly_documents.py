"""The window/anomaly document writer: bounded, never blocking, retries what may pass later."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import time
from typing import Any

import orjson

from shipper.anomaly.documents import DocumentWriter, doc_id, index_name, iso


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


def test_cached_ids_dates_and_index_names_equal_the_plain_formulas() -> None:
    """doc_id hashes a copied prefix, iso and index_name cache the day: same strings as
    hashing, formatting and strftime each time (the _id of a window must never change)."""
    rng = random.Random(7)
    for _ in range(2000):
        ms = rng.randrange(-(10**12), 4 * 10**12)
        host, source = rng.choice(("h", "h" * 32)), rng.choice(("job", "Ünïcode", ""))
        extra = rng.choice(((), ("loss",), ("loss", "start")))
        h = hashlib.blake2b(digest_size=16)
        h.update(
            b"\0".join(
                [b"shipper-window/1", host.encode(), source.encode(), str(ms).encode(), *(e.encode() for e in extra)]
            )
        )
        assert doc_id(host, source, ms, *extra) == base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
        sec, milli = divmod(ms, 1000)
        assert iso(ms) == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{milli:03d}Z"
        for pattern in ("shipper-metrics-%Y.%m.%d", "m-%Y.%m.%d.%H", "x-%G-W%V", "%%Y-%Y", "plain"):
            assert index_name(pattern, ms) == time.strftime(pattern, time.gmtime(ms / 1000)), pattern
    w = DocumentWriter(None)
    for index in ("shipper-metrics-2026.12.07", 'odd "index" \\ é', "shipper-metrics-2026.12.07"):
        w.add(index, "AbC-_1", {"n": 1, "s": "x"})
        action = orjson.dumps({"index": {"_index": index, "_id": "AbC-_1"}})
        assert w._queue[-1] == action + b"\n" + orjson.dumps({"n": 1, "s": "x"}) + b"\n"
