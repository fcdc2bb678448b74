"""Reading one file: appended bytes in chunks, parsed per chunk, handed to the pipeline.

A reader owns one open descriptor and one parser (which carries a partial last line
across chunks). It reads from where its parser stopped, not from the checkpoint: the
checkpoint trails behind by what is in flight. On a truncation it waits until all it
sent is acknowledged, then starts a new generation at offset 0, persisted before the
first event of it is sent, so `_id`s of the new bytes never meet the old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from _fastparse import Parser

from ..acks import Watermark
from ..config import InputConfig, source_of
from ..metrics import Metrics
from ..pipeline import Pipeline
from ..registry import FileState, Registry
from . import copies, identity, stall
from .parsing import INLINE, ParsePool, releases_gil

if TYPE_CHECKING:  # both implementations have this interface
    from _fastparse._pyparser import Parser as ParserType
else:
    ParserType = Parser

log = logging.getLogger(__name__)

# bytes per read: a chunk parses into a bulk body ~4x its size, which the parser's
# buffers grow to and keep; 128 KiB cost no CPU over 256 KiB and ~2 MiB less peak RSS
# in a 2 M-line backfill (benchmarks/RESULTS.md, issue 8)
CHUNK = 128 * 1024
# reads parsed in a worker thread (parse_threads) are this many chunks. Each read is a
# hand-off to the worker and back (a future, a wake-up of each thread, the GIL passed twice:
# ~200 us of the loop's time, py-spy); 4 (512 KiB reads) paid it a quarter as often: loop
# thread 1.01 -> 0.82 and process 1.94 -> 1.71 CPU-s per M lines on one file. But the
# parser's buffers grow to ~4x a read and stay (`_KEEP_BYTES`), per open file: a backfill of
# 40 files of 4 MiB peaked at 299 MiB against 145 (RESULTS.md, branch tail5). 1 until a
# parser gives back what a large read grew
WORKER_READS = 1
IDLE_CHECK = 2.0  # seconds between checks of an idle file when no hint arrives
# A file far ahead of its reader (a backfill) takes one replay record for many reads: the
# record promises the bytes up to a boundary `LEASE_READS` reads ahead (those already in
# the file) to be read with one read time, and is made durable once, before the first of
# them is sent. Per read, each request waited for a registry write of its own (temporary
# file, two fsyncs: ~0.6 ms of CPU and ~9 ms of the sender's wall time each): 250 writes
# for 269 requests per 2 M lines; 59 with 32 reads a record, 37 with 64. The read time
# of a line without a time of its own is then a time at which the line was in the file,
# at most `LEASE_MS` before its actual read (after that, the record is cut where the
# reader is and a new one begins).
LEASE_READS = 64
LEASE_MS = 1000


def _advance(state: FileState, registry: Registry, offset: int, generation: int) -> None:
    """The watermark moved: the file's checkpoint follows (within the same generation)."""
    if generation == state.generation:
        state.offset = offset
        state.updated = time.time()
        replay = state.replay
        while replay and replay[0][0] <= offset:
            replay.pop(0)
        registry.dirty = True


class FileReader:
    def __init__(
        self,
        *,
        state: FileState,
        fd: int,
        cfg: InputConfig,
        registry: Registry,
        pipeline: Pipeline,
        metrics: Metrics,
        host_name: str,
        on_close: Callable[[FileReader], None],
        tailed: Callable[[], Collection[tuple[int, int]]] = tuple,
        born: Callable[[], Collection[tuple[int, int]]] = tuple,
        parse_pool: ParsePool = INLINE,
    ) -> None:
        self.state = state
        self.fd = fd
        self.cfg = cfg
        self.registry = registry
        self.pipeline = pipeline
        self.metrics = metrics
        self.host_name = host_name
        self.wake = asyncio.Event()
        self.orphaned = False
        #: closed after it was deleted (no name left): its inode may be the next file's
        self.deleted = False
        self.stopping = False
        self.once = False
        self._on_close = on_close
        self._tailed = tailed  # (device, inode) of the files tailed: never taken for copies
        self._born = born  # copies inotify saw made after this file appeared: accounted for once read
        self._read_copies: set[copies.Key] = set()  # keys of the copies this reader read
        self._copy_made = False
        self._copies_looked = 0.0
        self._head = b""  # the bytes the fingerprint was taken on, once looked at (_note_head)
        self._lines = metrics.input_lines.labels(cfg.id)
        self._bytes = metrics.input_bytes.labels(cfg.id)
        self._generations = metrics.input_generations.labels(cfg.id)
        # not self._advance: the watermark outlives a reader closed with chunks in flight,
        # and a bound method made the pair a cycle (freed only by a full collection)
        self.watermark = Watermark(state.offset, functools.partial(_advance, state, registry))
        #: the file's `path_fields` captures (its events' `labels`)
        self.labels: dict[str, str] = cfg.path_fields.labels(state.path) if cfg.path_fields else {}
        #: what the anomaly counters call this file's events: `source` over the captures, or the input id
        self.source: str = source_of(cfg.source, self.labels, cfg.id)
        self.watermark.owner = self  # the anomaly counters read the source and parser tables through it
        self._pool = parse_pool
        self._gil_free = releases_gil(cfg.parser_options())
        self._threaded = parse_pool.threads > 0 and self._gil_free  # its reads are fed to a worker
        #: while a feed runs in a worker: the position before it (the parser is not read meanwhile)
        self._feeding: int | None = None
        self.parser = self._new_parser(state.offset)
        self._note_head()
        self.size = 0
        self.poll_interval = IDLE_CHECK
        self._last_feed_ms: int | None = None
        self._expired_after: int | None = None
        # chunks sent before a crash or stop and not acknowledged: read again exactly so
        state.replay = [e for e in state.replay if e[0] > state.offset]
        self._replay = [tuple(e) for e in state.replay]
        # the replay record (in state.replay) of reads ahead under one read time, its
        # boundary, read time and registry version, while the reader is under it
        self._lease: tuple[list[int], int, int] | None = None
        # A generation not read from yet looks for copies of itself first (its bytes may
        # have been copied away and truncated before this reader's first read); not after
        # a crash that left chunks of it sent (those continue where they were).
        self._look_for_copies = bool(cfg.rotated_paths) and state.offset == 0 and not state.replay

    def _new_parser(self, offset: int) -> ParserType:
        v2 = self.state.id_contract() == 2  # else v1: a generation begun by an older agent
        return Parser(
            input_id=self.cfg.id,
            path=self.state.path,
            host_name=self.host_name,
            id_prefix="" if v2 else self.registry.id_prefix(self.state),
            id_key=self.registry.id_key(self.state) if v2 else None,
            start_offset=offset,
            labels=self.labels or None,
            **self.cfg.parser_options(),
        )

    def _advance(self, offset: int, generation: int) -> None:
        _advance(self.state, self.registry, offset, generation)

    def _record(self, boundary: int, read_ms: int, kind: int) -> int:
        """Remember a chunk's boundary and read time; the registry version to persist first."""
        self._end_lease(boundary)  # records stay in the order of their boundaries
        self.state.replay.append([boundary, read_ms, kind])
        return self.registry.mark()

    def _drop_replayed(self, pos: int) -> None:
        while self._replay and self._replay[0][0] <= pos and self._replay[0][2] == 0:
            self._replay.pop(0)

    def _next_read(self, pos: int, size: int) -> tuple[int, int, int]:
        """(bytes to read, read time, action) for the next step: a recorded chunk, flush (1)
        or expiry (2) while replaying what was sent before, else up to a read's bytes now
        (CHUNK; WORKER_READS of them when a worker parses)."""
        self._drop_replayed(pos)
        if self._replay:
            boundary, read_ms, kind = self._replay[0]
            if kind and boundary <= pos:
                self._replay.pop(0)
                return 0, read_ms, kind
            if boundary <= size:
                # a read's bytes at most: a record of reads ahead spans many (the parser's
                # output does not depend on where the reads end, only on the read time)
                chunk = CHUNK * WORKER_READS if self._threaded else CHUNK
                return min(boundary - pos, chunk), read_ms, 0
            self._replay.clear()  # the file no longer has those bytes (truncated): nothing to replay
        chunk = CHUNK * WORKER_READS if self._threaded else CHUNK
        now_ms = int(time.time() * 1000)
        if self._lease is not None:
            record, read_ms, _ = self._lease
            if pos < record[0] and now_ms - read_ms <= LEASE_MS:
                return min(chunk, record[0] - pos, size - pos), read_ms, 0
            self._end_lease(pos)
        return min(chunk, size - pos), now_ms, 0

    def _end_lease(self, pos: int) -> None:
        """Reads under the record of reads ahead stop at `pos`: the record is cut there (what
        follows gets records of its own, durable before any of it is sent)."""
        if self._lease is not None:
            record = self._lease[0]
            if pos < record[0]:
                record[0] = pos
                self.registry.dirty = True
            self._lease = None

    def _record_read(self, start: int, end: int, size: int, read_ms: int, fd: int | None) -> int:
        """The replay record of the read of [start, end) (or of reads ahead, when the file
        holds several reads' bytes more); the registry version to persist before sending it."""
        if self._lease is not None:
            record, lease_ms, version = self._lease
            if read_ms == lease_ms and end <= record[0]:
                if end == record[0]:
                    self._lease = None
                return version
            self._end_lease(start)
        chunk = CHUNK * WORKER_READS if self._threaded else CHUNK
        ahead = (min(size - start, LEASE_READS * chunk + chunk) - chunk) // chunk * chunk
        if fd is None and not self._replay and end - start == chunk and ahead > chunk:
            boundary = start + ahead
            version = self._record(boundary, read_ms, 0)
            self._lease = (self.state.replay[-1], read_ms, version)
            return version
        return self._record(end, read_ms, 0)

    async def _act(self, kind: int, read_ms: int) -> None:
        if kind == 1:
            await self._flush_partial(read_ms)
        else:
            await self._expire(read_ms)

    async def _expire(self, now_ms: int) -> None:
        """A multiline event left open longer than its timeout is shipped as it is."""
        self._expired_after = self._last_feed_ms  # asked once per quiet spell, not in a loop
        batch = self.parser.expire(now_ms)
        self._lines.inc(batch.lines)
        if batch.count or batch.end_offset != batch.start_offset:
            version = self._record(self.position, now_ms, 2)
            await self.pipeline.submit(batch, self.watermark, self.state.generation, self.cfg.id, version)

    def _expiry_wait(self) -> float | None:
        """Seconds until the open multiline event times out (0: now), None when none is open."""
        if (
            self.cfg.multiline == "none"
            or not self.parser.pending
            or self._last_feed_ms is None
            or self._expired_after == self._last_feed_ms
        ):
            return None
        timeout_ms = self.cfg.multiline.get("timeout_ms", 2000) if isinstance(self.cfg.multiline, dict) else 2000
        return max(0.0, (self._last_feed_ms + timeout_ms) / 1000 - time.time())

    def _same_start(self, size: int) -> bool:
        """Do the first bytes still match? A file truncated and written past our position
        between two looks shows only by its fingerprint."""
        return self.state.fp_len == 0 or identity.matches(self.state, self.fd, size)

    def _settled(self) -> bool:
        """Nothing of this file in flight: closing now loses no watermark."""
        return not self.watermark.outstanding

    @property
    def position(self) -> int:
        """Where the next read starts: parsed bytes plus the partial line held."""
        if self._feeding is not None:
            return self._feeding
        return self.parser.offset + self.parser.pending

    @property
    def behind(self) -> int:
        return max(0, self.size - self.position)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            os.close(self.fd)
            self._on_close(self)

    async def _run(self) -> None:
        idle_since = time.monotonic()
        while not self.stopping:
            st = os.fstat(self.fd)
            self.size = st.st_size
            if st.st_size < self.position or not self._same_start(st.st_size):
                await self._truncated(st.st_size)
                continue
            if st.st_size > self.position:
                if self._look_for_copies:
                    self._look_for_copies = False
                    if self.position == 0 and self._unseen(self._copies()):
                        await self._truncated(st.st_size, before_first_read=True)
                        continue
                await self._read_to(st.st_size)
                idle_since = time.monotonic()
                continue
            self._drop_replayed(self.position)
            if self._replay and self._replay[0][2] and self._replay[0][0] <= self.position:
                _, read_ms, kind = self._replay.pop(0)  # a flush or expiry made before a restart
                await self._act(kind, read_ms)
                continue
            expiry = self._expiry_wait()
            if expiry == 0:
                await self._expire(int(time.time() * 1000))
                continue
            if identity.refresh(self.state, self.fd, st.st_size, self.cfg.fingerprint_bytes):
                self.registry.dirty = True
                self._note_head()
            if self._empty_and_copied():
                await self._truncated(st.st_size, before_first_read=True)
                continue
            # at the end of the file
            idle = time.monotonic() - idle_since
            if not self.once and not self.orphaned and idle >= self.cfg.close_inactive:
                if self.parser.pending:
                    # a last line without newline for all of close_inactive: shipped as it is,
                    # tagged `incomplete` (as at a delete), so that closing holds nothing back;
                    # what a writer appends later is read from there as a line of its own
                    await self._flush_partial()
                    continue
                if self._settled():
                    log.info("closing %s at offset %d: inactive for %.0fs", self.state.path, self.position, idle)
                    return  # reopened by a scan when it changes
            if self.once or (self.orphaned and idle >= self.cfg.close_removed):
                # deleted or renamed away: read to its end, and closed once idle (a writer may
                # still hold it open and append; the descriptor keeps a deleted file's space)
                await self._flush_partial()
                self.deleted = os.fstat(self.fd).st_nlink == 0
                log.info(
                    "closing %s at offset %d (%s)",
                    self.state.path,
                    self.position,
                    "read to its end" if self.once else "no longer matched, read to its end",
                )
                return
            self.wake.clear()
            wait = self.poll_interval if expiry is None else min(self.poll_interval, expiry + 0.01)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)

    async def _read_to(self, size: int, fd: int | None = None) -> None:
        pos = self.position
        # With a parse worker a chunk's batch is held until the next chunk's feed is under
        # way: the loop counts and hands over one batch while the worker parses the next
        # (else each waits for the other: the loop idles during a feed, the worker during
        # the batch's anomaly counting and submit). Batches are submitted in order, each
        # once, before anything else this reader submits (a flush, an expiry, the next
        # generation): `_read_to` returns with none held. A batch is held only with a turn
        # taken, or about to be (so at most two per worker in all).
        held: tuple[Any, int, int] | None = None
        while pos < size and not self.stopping:
            n, read_ms, action = self._next_read(pos, size)
            if action:
                await self._submit(held)
                held = None
                await self._act(action, read_ms)
                continue
            if held is not None and self._pool.waits(n, self._gil_free):
                # no turn free: handed over now, not held while this reader waits for one
                # (every reader of a backfill would hold a batch then)
                await self._submit(held)
                held = None
            # a parse worker's turn first: read now, the chunk would wait in memory for it
            turn = await self._pool.turn(n, self._gil_free)
            try:
                data = os.pread(self.fd if fd is None else fd, n, pos)
                if not data:
                    break
                stall.point("read")  # tests: the file changes right after this read
                end = pos + len(data)
                if fd is None and not self._ours(pos, data, end):
                    # truncated and written past us while this read waited for room in flight:
                    # these bytes are the next generation's; the caller's loop sees the change
                    break
                batch = await self._feed(pos, data, read_ms, held)
                held = None
            finally:
                if turn:
                    self._pool.end_turn()
            self._last_feed_ms = read_ms
            pos += len(data)
            self._lines.inc(batch.lines)
            self._bytes.inc(len(data))
            if fd is None and self.state.fp_len < self.cfg.fingerprint_bytes:
                # at once, not at the end of the file: a generation begun empty is otherwise
                # fingerprinted on 0 bytes, and a copytruncate copy is "matched" by any copy
                self._grow_fingerprint(pos - len(data), data)
            version = self._record_read(pos - len(data), pos, size, read_ms, fd)
            held = (batch, self.state.generation, version)
            if not self._threaded:
                await self._submit(held)
                held = None
        await self._submit(held)

    async def _submit(self, held: tuple[Any, int, int] | None) -> None:
        """Hand a batch held by `_read_to` (batch, generation, registry version) to the pipeline."""
        if held is not None:
            batch, generation, version = held
            await self.pipeline.submit(batch, self.watermark, generation, self.cfg.id, version)

    async def _feed(self, pos: int, data: bytes, read_ms: int, held: tuple[Any, int, int] | None = None) -> Any:
        """`parser.feed`, in a worker thread when that pays (parsing.py); `pos`: where
        `data` starts (the position until the feed is done). `held`: the previous batch,
        submitted while the worker parses (before the feed when it is on the loop)."""
        if not self._pool.use(len(data), self._gil_free):
            await self._submit(held)
            return self.parser.feed(data, read_ms)
        self._feeding = pos
        try:
            fut = self._pool.start(self.parser, data, read_ms)
            try:
                await self._submit(held)
            finally:
                batch = await self._pool.result(fut)  # also when the submit failed: the parser is busy till then
            return batch
        finally:
            self._feeding = None

    async def _flush_partial(self, read_ms: int | None = None) -> None:
        """The last line has no newline and never will (file gone, or --once): ship it tagged."""
        if self.parser.pending:
            read_ms = int(time.time() * 1000) if read_ms is None else read_ms
            batch = self.parser.flush(read_ms)
            self._lines.inc(batch.lines)
            version = self._record(self.position, read_ms, 1)
            await self.pipeline.submit(batch, self.watermark, self.state.generation, self.cfg.id, version)

    def copy_made(self) -> None:
        """inotify reported a new copy under rotated_paths: maybe of this file."""
        self._copy_made = True
        self.wake.set()

    def _empty_and_copied(self) -> bool:
        """Nothing read of this generation and the file empty: written, copied and truncated
        before the first read shows only by the copy (a look on each report of a new copy,
        and once per poll interval for copies inotify cannot report)."""
        if not self.cfg.rotated_paths or self.position != 0:
            return False
        now = time.monotonic()
        if not self._copy_made and now - self._copies_looked < self.poll_interval:
            return False
        self._copy_made, self._copies_looked = False, now
        return bool(self._unseen(self._copies()))

    def _copies(self) -> list[tuple[str, os.stat_result]]:
        return copies.listing(self.cfg.rotated_paths) if self.cfg.rotated_paths else []

    def _accounted(self, found: list[tuple[str, os.stat_result]]) -> set[copies.Key]:
        """The copies (keys: what they held) this file has accounted for; when not known
        yet (a registry of an older format), every copy there now: a copy is never
        guessed to be new. Those inotify saw made after the file appeared count once read."""
        if self.state.copies is None:
            self.state.copies = copies.keys(found)
            self.registry.dirty = True
        born = {*self._born()}
        return {k for k in map(tuple, self.state.copies) if k[:2] not in born or k in self._read_copies}

    def _account(self, accounted: set[copies.Key], key: copies.Key) -> None:
        """A copy read: its key replaces what its inode held before (a copy rewritten in
        place at each rotation would otherwise add a key per rotation, for ever)."""
        accounted.difference_update([k for k in accounted if k[:2] == key[:2]])
        accounted.add(key)
        self._read_copies.add(key)

    def _unseen(self, found: list[tuple[str, os.stat_result]]) -> list[tuple[str, os.stat_result]]:
        return copies.unseen(
            found, accounted=self._accounted(found), tailed=self._tailed(), name=self.state.path, live_fd=self.fd
        )

    def _note_head(self, fd: int | None = None) -> None:
        """Keep the bytes the fingerprint was taken on (at most `fingerprint_bytes`), read
        when it changes, before a truncation takes them: a copy shorter than the
        fingerprint is matched to this generation by its whole content."""
        n = self.state.fp_len
        if len(self._head) == n:
            return
        data = os.pread(self.fd if fd is None else fd, n, 0) if n else b""
        ok = len(data) == n and identity.fingerprint_of(data) == self.state.fingerprint
        self._head = data if ok else b""

    def _ours(self, pos: int, data: bytes, end: int) -> bool:
        """Are the bytes just read from the file at `pos` this generation's? Its first bytes
        (those known) must be where the read overlaps them, and still in the file."""
        n = self.state.fp_len
        if pos < n and len(self._head) == n and data[: n - pos] != self._head[pos:n][: len(data)]:
            return False
        return not (0 < n <= end and not identity.matches(self.state, self.fd, end))

    def _grow_fingerprint(self, start: int, data: bytes) -> None:
        """Extend a short fingerprint over the bytes just read from `start`, not over what
        the file holds now: it may have been copied, truncated and rewritten since this
        read (the parser is slow on a big chunk), and a fingerprint of those bytes would
        tie the next generation to this one (its first bytes never read, and this one's
        copy then taken for a generation never seen: read twice)."""
        n, want = self.state.fp_len, self.cfg.fingerprint_bytes
        if len(self._head) == n and start <= n < start + len(data):
            head = self._head + data[n - start : want - start]
            self.state.fingerprint, self.state.fp_len = identity.fingerprint_of(head), len(head)
            self._head = head
            self.registry.dirty = True
        elif identity.refresh(self.state, self.fd, start + len(data), want):  # first bytes not known here
            self._note_head()

    def _holds_ours(self, fd: int, size: int) -> bool:
        """Does the copy open at `fd` begin with this generation's first bytes (what it was
        fingerprinted on; the whole copy, when it is shorter than that)?"""
        n = self.state.fp_len
        if n == 0:
            return False  # nothing read, nothing to match: a copy of it is one never seen
        if size >= n:
            return identity.matches(self.state, fd, size)
        if len(self._head) != n or size == 0:
            return False
        return self._head.startswith(os.pread(fd, size, 0))

    async def _read_rotated_copy(self, found: list[tuple[str, os.stat_result]]) -> list[copies.Key]:
        """copytruncate: the copy holds what this file had past our position; read it first,
        under this file's key and generation, so that only the lines written between the
        copy and the truncation (which no agent can see) are missed. The identities of the
        copies found to be this generation's (their keys: copies.key).

        A copy may also end before our position: the reader read live, before the
        truncation, lines written after the copy was taken. It is still this generation's
        (its first bytes are), with nothing left in it to read; taken for a generation
        never seen it would be read whole and every line of it shipped twice."""
        ours: list[tuple[str, int, copies.Key]] = []
        for path, _ in found:  # by content only: a copy may be rewritten in place (same inode)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                cst = os.fstat(fd)
                if self._holds_ours(fd, cst.st_size):
                    ours.append((path, cst.st_size, copies.key(fd, cst)))
            finally:
                os.close(fd)
        if not ours:
            return []
        path, size, _ = max(ours, key=lambda o: o[1])
        if size < self.position:
            log.info(
                "%s was copied to %s and truncated; %s ends before what was already read "
                "(%d < %d: read live before the truncation): nothing left in it",
                self.state.path,
                path,
                path,
                size,
                self.position,
            )
        else:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return []
            try:
                cst = os.fstat(fd)
                if not self._holds_ours(fd, cst.st_size):
                    return []  # replaced meanwhile
                ours = [o for o in ours if o[0] != path] + [(path, size, copies.key(fd, cst))]
                log.info(
                    "%s was copied to %s and truncated: reading the copy from %d to %d first",
                    self.state.path,
                    path,
                    self.position,
                    size,
                )
                await self._read_to(size, fd)
            finally:
                os.close(fd)
        if not self.stopping:
            await self._flush_partial()
        return [ident for _, _, ident in ours]

    async def _copy_generation(self, path: str, st: os.stat_result) -> copies.Key | None:
        """A copy of a generation never read: read whole, as a generation of its own (its
        key, generation and fingerprint persisted first, like any generation's). The
        copy's key as read (None: not read, gone or replaced)."""
        with copies.opened(path, st) as o:
            if o is None:
                return None
            fd, cst = o
            n = min(cst.st_size, self.cfg.fingerprint_bytes)
            self._begin(identity.fingerprint(fd, n), n, fd)
            log.warning(
                "%s: %s holds a generation never read (written, copied and truncated between two looks); "
                "reading it whole as generation %d",
                self.state.path,
                path,
                self.state.generation,
            )
            await self._read_to(cst.st_size, fd)
            if not self.stopping:
                await self._flush_partial()
            return copies.key(fd, cst)

    async def _settle(self, fp: str, fp_len: int) -> tuple[str, int]:
        """Wait until nothing of this generation is in flight (a new one may start only
        then), extending the next generation's fingerprint meanwhile."""
        while True:
            fp, fp_len = identity.grow(self.fd, fp, fp_len, os.fstat(self.fd).st_size, self.cfg.fingerprint_bytes)
            if not self.watermark.outstanding or self.stopping:
                return fp, fp_len
            await asyncio.sleep(0.05)

    def _begin(self, fp: str, fp_len: int, fd: int | None = None) -> None:
        """The next generation, at offset 0: durable before any event of it is sent (its
        first bytes read from `fd`, the copy it is read from, else the file)."""
        self.state.generation += 1
        self._generations.inc()
        self.state.offset = 0
        self.state.replay.clear()
        self._replay.clear()
        self._lease = None
        self.state.fingerprint, self.state.fp_len = fp, fp_len
        self._head = b""
        self._note_head(fd)
        self.registry.save()
        self.watermark.reset(0)
        self.parser = self._new_parser(0)

    async def _truncated(self, size: int, before_first_read: bool = False) -> None:
        if before_first_read:
            log.warning(
                "%s: copies of it were made and it was truncated before its first read; reading those first",
                self.state.path,
            )
        else:
            log.warning(
                "%s was truncated (size %d, read up to %d, or its first bytes changed); "
                "reading it from the start as a new generation",
                self.state.path,
                size,
                self.position,
            )
        # The new generation's first bytes, taken while the old one is finished (its copy
        # read, its acknowledgements awaited: seconds when Elasticsearch is slow): if the
        # file is copied and truncated again meanwhile, this fingerprint finds that copy.
        fp, fp_len = identity.grow(
            self.fd, identity.fingerprint(self.fd, 0), 0, os.fstat(self.fd).st_size, self.cfg.fingerprint_bytes
        )
        found = self._copies()
        accounted = self._accounted(found)
        for used in await self._read_rotated_copy(found):
            self._account(accounted, used)
        self.state.copies = [list(i) for i in accounted]
        for path, st in self._unseen(found):  # generations born and copied away unseen
            if self.stopping:
                return
            fp, fp_len = await self._settle(fp, fp_len)
            if self.stopping:
                return
            read = await self._copy_generation(path, st)
            if read is not None:
                self._account(accounted, read)
                self.state.copies = [list(i) for i in accounted]
        fp, fp_len = await self._settle(fp, fp_len)
        if self.stopping:
            return  # the next start sees the truncation again
        present = {(st.st_dev, st.st_ino) for _, st in found}
        self.state.copies = [list(k) for k in accounted if k[:2] in present]
        self._begin(fp, fp_len)
        self._look_for_copies = bool(self.cfg.rotated_paths)
