"""Parsing in a worker thread (shipper/tail/parsing.py) changes nothing the reader hands
over: the same bodies, offsets and replay records as parsing on the loop; the parser is
never read by the loop while a feed runs; a cancelled feed ends before the reader unwinds."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import _fastparse
from shipper import config
from shipper.anomaly.watch import _at_end, _owner_info
from shipper.metrics import Metrics
from shipper.registry import Registry
from shipper.tail import parsing
from shipper.tail import reader as reader_mod
from shipper.tail.parsing import INLINE, ParsePool, releases_gil
from shipper.tail.reader import FileReader

COMPILED = _fastparse.IMPLEMENTATION == "cython"
THREADED = COMPILED and parsing.cpus() > 1  # what ParsePool(1) does here


class Capture:
    """Stands in for the pipeline: what the reader hands over, in order."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, int, int, int]] = []

    async def submit(self, batch: Any, watermark: Any, generation: int, input_id: str, version: int = 0) -> None:
        watermark.add(batch.end_offset, generation)
        self.got.append((batch.body, batch.count, batch.start_offset, batch.end_offset))
        await asyncio.sleep(0)  # a real submit may wait: the loop runs other tasks here


class CountingPool(ParsePool):
    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.fed = 0

    def start(self, parser: Any, data: bytes, read_ms: int) -> Any:
        self.fed += 1
        return super().start(parser, data, read_ms)


def corpus(n: int) -> bytes:
    """Python logging lines with metrics, a traceback every 50 lines (multiline groups
    that cross chunk boundaries), and a last line without newline."""
    out = []
    for i in range(n):
        out.append(
            b"2026-11-25 07:30:%02d,%03d - trainer - INFO - step %d loss=%.3f lr=0.001" % (i % 60, i % 1000, i, i / 7)
        )
        if i % 50 == 7:
            out.append(b"2026-11-25 07:30:01,000 - trainer - ERROR - step failed")
            out.append(b"Traceback (most recent call last):")
            out.append(b'  File "train.py", line %d, in step' % i)
            out.append(b"ValueError: nan loss at step %d" % i)
    return b"\n".join(out) + b"\npartial last line"


def reader_for(reg: Registry, path: Path, pool: ParsePool, fmt: str = "python") -> tuple[FileReader, Capture]:
    """A reader of `path` from offset 0, its file key the same each time (so are the `_id`s)."""
    cfg = config.from_dict({"inputs": [{"id": "t", "paths": [str(path)], "format": fmt, "multiline": "auto"}]}, env={})
    state = reg.new_file("t", str(path), os.stat(path), "fp", 0, 0)
    state.key = "0123456789abcdef"
    cap = Capture()
    r = FileReader(
        state=state,
        fd=os.open(path, os.O_RDONLY),
        cfg=cfg.inputs[0],
        registry=reg,
        pipeline=cap,  # type: ignore[arg-type]
        metrics=Metrics(),
        host_name="h",
        on_close=lambda _: None,
        parse_pool=pool,
    )
    r.once = True
    return r, cap


@pytest.mark.parametrize("chunk", [20_000, 128 * 1024])
def test_threaded_reads_hand_over_what_inline_reads_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", chunk)
    monkeypatch.setattr(reader_mod, "WORKER_READS", 1)  # the same reads (test_worker_reads_are_longer)
    monkeypatch.setattr(reader_mod.time, "time", lambda: 1795651199.0)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    results = []
    reg = Registry(tmp_path / "data")
    for pool in (INLINE, CountingPool(1)):
        r, cap = reader_for(reg, path, pool)
        asyncio.run(r.run())
        results.append((cap.got, r.state.replay, r.position))
        pool.close()
    reg.close()
    assert results[0] == results[1]
    assert results[0][2] == path.stat().st_size  # the partial last line flushed at the end
    assert isinstance(pool, CountingPool)
    size = path.stat().st_size
    big = size // chunk + (size % chunk >= parsing.INLINE_BELOW)  # reads worth a thread
    assert pool.fed == (big if THREADED else 0)  # the twin holds the GIL: never in a thread


@pytest.mark.skipif(not THREADED, reason="the twin (or one CPU) never parses in a thread")
def test_worker_reads_are_longer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker is handed WORKER_READS chunks a read (a hand-off costs the loop ~200 us): the
    same events, bytes and end position as chunk by chunk on the loop, a quarter of the feeds."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    monkeypatch.setattr(reader_mod, "WORKER_READS", 4)
    monkeypatch.setattr(reader_mod.time, "time", lambda: 1795651199.0)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    size = path.stat().st_size
    results = []
    reg = Registry(tmp_path / "data")
    for pool in (INLINE, CountingPool(1)):
        r, cap = reader_for(reg, path, pool)
        asyncio.run(r.run())
        body = b"".join(b for b, _, _, _ in cap.got)
        results.append((body, sum(c for _, c, _, _ in cap.got), r.position, len(cap.got)))
        pool.close()
    reg.close()
    assert results[0][:3] == results[1][:3]
    assert results[0][2] == size
    reads = -(-size // (20_000 * reader_mod.WORKER_READS))
    assert results[1][3] == reads + 1  # and the partial last line's flush
    assert isinstance(pool, CountingPool) and pool.fed == reads


def test_json_and_start_patterns_parse_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled parser hands these to its twin, which holds the GIL: no thread for them."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b'{"message": "m %d", "level": "info"}\n' % i for i in range(3000)))
    pool = CountingPool(1)
    reg = Registry(tmp_path / "data")
    r, cap = reader_for(reg, path, pool, fmt="json")
    asyncio.run(r.run())
    assert pool.fed == 0 and sum(c for _, c, _, _ in cap.got) == 3000
    reg.close()


def test_what_releases_the_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in ("plain", "python", "%(asctime)s %(levelname)s %(message)s"):
        assert releases_gil({"format": fmt, "multiline": "auto"}) == COMPILED
        assert releases_gil({"format": fmt, "multiline": "none"}) == COMPILED
    assert not releases_gil({"format": "python", "multiline": {"start": "^20"}})
    assert not releases_gil({"format": "json", "multiline": "none"})
    assert not releases_gil({"format": "logfmt", "multiline": "none"})
    monkeypatch.setattr(parsing._fastparse, "IMPLEMENTATION", "python")
    assert not releases_gil({"format": "plain", "multiline": "none"})


def test_small_reads_no_threads_and_one_cpu_stay_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "cpus", lambda: 2)
    pool = ParsePool(1)
    assert pool.use(parsing.INLINE_BELOW, True)
    assert not pool.use(parsing.INLINE_BELOW - 1, True)  # a live trickle
    assert not pool.use(1 << 20, False)  # the twin
    assert not ParsePool(0).use(1 << 20, True)
    monkeypatch.setattr(parsing, "cpus", lambda: 1)
    assert not ParsePool(1).use(1 << 20, True)


class Watched:
    """A parser that says when the loop reads its state while a feed runs in the worker."""

    def __init__(self, parser: Any) -> None:
        self._p = parser
        self.busy = False
        self.started = 0
        self.read_while_busy: list[str] = []

    def feed(self, data: bytes, read_ms: int) -> Any:
        self.busy = True
        self.started += 1
        try:
            time.sleep(0.002)  # long enough for the loop to look meanwhile
            return self._p.feed(data, read_ms)
        finally:
            self.busy = False

    def _look(self, name: str) -> Any:
        if self.busy and threading.current_thread() is threading.main_thread():
            self.read_while_busy.append(name)
        return getattr(self._p, name)

    @property
    def offset(self) -> int:
        return int(self._look("offset"))

    @property
    def pending(self) -> int:
        return int(self._look("pending"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


@pytest.mark.skipif(not THREADED, reason="the twin (or one CPU) never parses in a thread")
def test_the_loop_never_reads_a_parser_in_a_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the anomaly watch and the bytes-behind gauge read of a reader (its position, the
    parser's name tables) while its feed runs: the position from before the feed, and
    never the parser's offsets, which the worker is changing."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    pool = ParsePool(1)
    reg = Registry(tmp_path / "data")
    r, _ = reader_for(reg, path, pool)
    r.parser = watched = Watched(r.parser)  # type: ignore[assignment]
    seen: list[int] = []

    async def main() -> None:
        task = asyncio.create_task(r.run())
        while not task.done():
            pos = r.position
            seen.append(pos)
            assert r.behind >= 0
            _owner_info(r, "t")  # what the watch's observe and tick read
            _at_end(r)
            await asyncio.sleep(0)
        await task

    asyncio.run(main())
    assert not watched.read_while_busy
    assert seen == sorted(seen)  # never backwards, never a torn value
    assert r.position == path.stat().st_size
    reg.close()
    pool.close()


@pytest.mark.skipif(not THREADED, reason="the twin (or one CPU) never parses in a thread")
def test_a_batch_is_handed_over_while_the_next_chunk_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a worker, the loop submits batch n while the worker parses chunk n+1 (the
    overlap that lets a second core pay): same batches, same order as on the loop, and
    none held back when the reader stops at the end of the file."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    monkeypatch.setattr(reader_mod, "WORKER_READS", 1)
    monkeypatch.setattr(reader_mod.time, "time", lambda: 1795651199.0)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    reg = Registry(tmp_path / "data")
    r0, cap0 = reader_for(reg, path, INLINE)
    asyncio.run(r0.run())
    pool = ParsePool(1)
    r, cap = reader_for(reg, path, pool)
    r.parser = watched = Watched(r.parser)  # type: ignore[assignment]
    during: list[bool] = []
    submit = cap.submit

    async def seen(batch: Any, *args: Any) -> None:
        started = watched.started
        time.sleep(0.005)  # the loop's work on a batch (the anomaly counts; its syscalls let a worker in)
        during.append(watched.started > started)  # the next chunk's feed began meanwhile
        await submit(batch, *args)

    cap.submit = seen  # type: ignore[method-assign]
    asyncio.run(r.run())
    pool.close()
    reg.close()
    assert cap.got == cap0.got and r.state.replay == r0.state.replay
    size = path.stat().st_size
    reads, last = -(-size // 20_000), size % 20_000
    # every batch but the last chunk's, and the one before a last read too short for a worker
    overlapped = reads - 1 - (0 < last < parsing.INLINE_BELOW)
    assert during == [True] * overlapped + [False] * (len(during) - overlapped)  # the flush last
    assert not watched.read_while_busy


@pytest.mark.skipif(not THREADED, reason="the twin (or one CPU) never parses in a thread")
def test_a_failed_hand_over_waits_for_the_feed_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit that fails while the next chunk parses: the reader unwinds only once that
    feed is done (the parser is free for whoever looks at it next)."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    reg = Registry(tmp_path / "data")
    pool = ParsePool(1)
    r, cap = reader_for(reg, path, pool)

    class Slow(Watched):
        def feed(self, data: bytes, read_ms: int) -> Any:
            self.busy = True
            time.sleep(0.05)  # still parsing when the submit fails
            return super().feed(data, read_ms)

    r.parser = watched = Slow(r.parser)  # type: ignore[assignment]

    async def fails(batch: Any, *args: Any) -> None:
        await asyncio.sleep(0.01)  # the next feed starts meanwhile
        if watched.busy:
            raise OSError("the pipeline failed")

    cap.submit = fails  # type: ignore[method-assign]
    with pytest.raises(OSError, match="pipeline failed"):
        asyncio.run(r.run())
    assert not watched.busy and watched.started >= 2
    reg.close()
    pool.close()


def test_a_cancelled_feed_ends_before_the_caller_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "cpus", lambda: 2)
    ended = threading.Event()

    class Slow:
        def feed(self, data: bytes, read_ms: int) -> bytes:
            time.sleep(0.2)
            ended.set()
            return data

    pool = ParsePool(1)

    async def main() -> None:
        t = asyncio.create_task(pool.feed(Slow(), b"x", 0))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert ended.is_set()  # the parser is free again when the cancellation arrives

    asyncio.run(main())
    pool.close()


def test_parse_threads_option() -> None:
    base = {"inputs": [{"id": "t", "paths": ["/x"]}]}
    assert config.from_dict(base, env={}).parse_threads == 0
    assert config.from_dict({**base, "parse_threads": 2}, env={}).parse_threads == 2
    with pytest.raises(config.ConfigError, match="parse_threads"):
        config.from_dict({**base, "parse_threads": -1}, env={})


def test_turns_work_on_each_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool outlives an event loop (an agent run again in the same process, tests with
    several loops): the turns a loop waits on are that loop's, not the first one's."""
    monkeypatch.setattr(parsing, "cpus", lambda: 2)
    pool = ParsePool(1)

    async def crowd() -> int:
        """More readers than turns (2 per worker): the third waits for one to end."""
        order: list[int] = []

        async def one(i: int) -> None:
            assert await pool.turn(1 << 20, True)
            order.append(i)
            await asyncio.sleep(0.01)
            pool.end_turn()

        await asyncio.gather(*(one(i) for i in range(3)))
        return len(order)

    assert asyncio.run(crowd()) == 3
    assert asyncio.run(crowd()) == 3  # a second loop: RuntimeError (bound to a different event loop) before
    pool.close()


def test_feed_after_close_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed pool starts no threads again (its owner shut it down: a feed now is a bug,
    and a new executor would never be shut down)."""
    monkeypatch.setattr(parsing, "cpus", lambda: 2)

    class Echo:
        def feed(self, data: bytes, read_ms: int) -> bytes:
            return data

    pool = ParsePool(1)
    assert asyncio.run(pool.feed(Echo(), b"x", 0)) == b"x"
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(pool.feed(Echo(), b"x", 0))
    assert pool._executor is None
    pool.close()  # twice: nothing to do
