"""Parsing off the event loop: a reader's `feed` in a worker thread while the loop sends.

The compiled parser scans a chunk without the GIL (`_scan` and `_materialize` under
`nogil`; only building the Batch takes it back), so on a machine with a second core the
event loop can send, acknowledge and count the previous chunks while a worker parses the
next one. What stays the same:

- one feed in flight per reader at most: the reader awaits it before it reads on, so the
  order of chunks, their offsets and the replay records are what they were on the loop;
- the parser is touched by one thread at a time (the compiled one raises if not): while
  its feed runs, the reader's `position` is the one from before the feed (what the
  anomaly watch and the `input_bytes_behind` gauge read), and nothing else on the loop
  calls into that parser (its own task is the one awaiting); the name tables the watch
  reads (`metric_names`, `error_classes`) are a list appended under the GIL and a tuple
  fixed at construction, so a snapshot of them taken meanwhile is whole;
- delivery: the batches are submitted by the reader in order, each after its feed (a
  chunk's batch while the worker parses the reader's next chunk: `start`, then
  `result`), so checkpoints, backpressure and the in-flight budget do not change; two
  chunks (their bytes, at most `CHUNK * WORKER_READS` each, reader.py) per worker, the
  one it parses and the next one, and a parsed batch held back per turn taken, are the
  only memory added: a reader takes a turn (`turn`) before it reads a chunk for a
  worker, and submits what it holds before it waits for one (`waits`), so readers
  catching up at once (a backfill of many files) do not each read a chunk and queue it
  behind the workers (one chunk per open file, up to `max_open_files` of them); the next
  chunk read ahead keeps a worker from waiting for the loop's read between two feeds.

Not threaded: a read smaller than `INLINE_BELOW` (a live trickle: the handoff to a
thread and back costs more than parsing a few lines), the pure-Python parser and the
formats the compiled parser hands to its pure-Python twin (json, logfmt, multiline with
a `start` pattern): those hold the GIL throughout, so a thread would only add switches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import weakref
from typing import Any

import _fastparse

#: reads smaller than this parse on the loop (a thread handoff is ~50-100 us of wake-ups)
INLINE_BELOW = 16 * 1024


def releases_gil(options: dict[str, Any]) -> bool:
    """Does a parser made with these options (InputConfig.parser_options) parse without the
    GIL? The compiled one does for the formats it compiles itself: the same test as in
    `_cparser.Parser.__init__` (which hands json, logfmt and multiline `start` patterns to
    the twin)."""
    if _fastparse.IMPLEMENTATION != "cython":
        return False
    from _fastparse._formats import FMT_PLAIN, FMT_PROGRAM, compile_format
    from _fastparse._multiline import parse_config

    try:
        fmt = compile_format(options.get("format", "plain"))
        ml = parse_config(options.get("multiline"))
    except (TypeError, ValueError):
        return False
    if ml is not None and ml.start is not None:
        return False
    return fmt.kind in (FMT_PLAIN, FMT_PROGRAM)


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ParsePool:
    """The worker threads shared by every reader (`parse_threads`; 0: parse on the loop).
    On one CPU there is no second core to parse on: the loop parses (a thread would only
    add its hand-offs)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads if threads == 0 or cpus() > 1 else 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: the turns, per event loop (an asyncio.Semaphore belongs to the first loop that
        #: waits on it: a pool outlives a loop when an agent runs again in one process)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    def use(self, nbytes: int, gil_free: bool) -> bool:
        """Is a feed of `nbytes` worth a thread?"""
        return self.threads > 0 and gil_free and nbytes >= INLINE_BELOW

    async def turn(self, nbytes: int, gil_free: bool) -> bool:
        """Before reading `nbytes` to feed in a worker: wait while each worker has a chunk
        and one more waiting for it (True: the turn is taken; `end_turn` once the feed
        is done). False: the read will parse on the loop, nothing to wait for."""
        if not self.use(nbytes, gil_free):
            return False
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(2 * self.threads)
        await turns.acquire()
        return True

    def waits(self, nbytes: int, gil_free: bool) -> bool:
        """Would `turn` wait now (every turn taken on this loop)?"""
        if not self.use(nbytes, gil_free):
            return False
        turns = self._turns.get(asyncio.get_running_loop())
        return turns is not None and turns.locked()

    def end_turn(self) -> None:
        """The turn taken by `turn` (True) on this loop is over."""
        self._turns[asyncio.get_running_loop()].release()

    async def feed(self, parser: Any, data: bytes, read_ms: int) -> Any:
        """`parser.feed(data, read_ms)` in a worker (`start`, then `result`)."""
        return await self.result(self.start(parser, data, read_ms))

    def start(self, parser: Any, data: bytes, read_ms: int) -> concurrent.futures.Future[Any]:
        """Hand `parser.feed(data, read_ms)` to a worker now (the loop may go on with other
        work before it awaits `result`). RuntimeError once the pool is closed (its threads
        would never be shut down)."""
        if self._closed:
            raise RuntimeError("the parse pool is closed")
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="parse")
        return self._executor.submit(parser.feed, data, read_ms)

    async def result(self, fut: concurrent.futures.Future[Any]) -> Any:
        """The batch of a feed `start`ed. On cancellation it still waits for the feed to end
        (a few ms for a chunk): the caller's parser must not be in use once it unwinds (a
        flush at shutdown, or the next reader of the state, would meet it busy)."""
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()  # not started yet: never will be
            concurrent.futures.wait([fut])  # started: let it end
            raise

    def close(self) -> None:
        """Wait for the feeds in flight and end the threads; the pool takes no feed after."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


#: parsing on the loop: what readers made without a pool use (tests, tools)
INLINE = ParsePool(0)
