"""The parse pool bounds what waits for it: a reader reads a chunk for a worker only when
the worker has at most one other chunk (the one it parses), so that many readers catching
up at once (a backfill of many files) hold at most two read chunks per worker. Before,
every reader read its chunk and queued it behind the worker: one chunk per open file
(max_open_files, 1024 by default) held in memory, where parsing on the loop held none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shipper.registry import Registry
from shipper.tail import reader as reader_mod
from shipper.tail.parsing import ParsePool

from .test_parse_threads import THREADED, corpus, reader_for


class Outstanding(ParsePool):
    """Counts the chunks read and handed to the pool that have not come back yet."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.now = self.most = 0
        self.unsent: set[int] = set()  # batches parsed here and not submitted yet (their ids)
        self.unsent_most = 0

    def start(self, parser: Any, data: bytes, read_ms: int) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        return super().start(parser, data, read_ms)

    async def result(self, fut: Any) -> Any:
        try:
            batch = await super().result(fut)
        finally:
            self.now -= 1
        self.unsent.add(id(batch))
        self.unsent_most = max(self.unsent_most, len(self.unsent))
        return batch


def counted(submit: Any, pool: Outstanding) -> Any:
    async def wrapped(batch: Any, *args: Any) -> None:
        pool.unsent.discard(id(batch))
        await submit(batch, *args)

    return wrapped


@pytest.mark.skipif(not THREADED, reason="the compiled parser on two CPUs or more parses in a worker")
def test_readers_catching_up_queue_no_more_chunks_than_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    pool = Outstanding(1)
    reg = Registry(tmp_path / "data")
    readers, caps = [], []
    for i in range(8):
        path = tmp_path / f"{i}.log"
        path.write_bytes(corpus(3000))
        r, cap = reader_for(reg, path, pool)
        cap.submit = counted(cap.submit, pool)  # type: ignore[method-assign]
        readers.append(r)
        caps.append(cap)

    async def main() -> None:
        await asyncio.gather(*(r.run() for r in readers))

    asyncio.run(main())
    assert 0 < pool.most <= 2  # the one parsed and the next one
    # a reader holds a parsed batch back (to submit it while its next chunk parses) only with
    # a turn: not while it waits for one (every file's reader would hold one then)
    assert 0 < pool.unsent_most <= 2
    for r, cap in zip(readers, caps, strict=True):
        assert cap.got[-1][3] == Path(r.state.path).stat().st_size  # every file read to its end
    reg.close()
    pool.close()
