"""One input: scan its globs, match files to registry states, run a reader per file.

A scan is what decides (notifications only wake it): every matched path is stat'ed,
matched to a known file by device and inode and checked against its fingerprint, or
registered as a new file; new states are saved before their readers start, so every
file key is durable before the first event that carries it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import stat as stat_mod
import threading
import time
from dataclasses import dataclass

from ..config import InputConfig
from ..metrics import Metrics
from ..pipeline import Pipeline
from ..registry import FileState, Registry
from . import copies, identity, stall
from .parsing import INLINE, ParsePool
from .paths import PathMatcher
from .reader import FileReader

log = logging.getLogger(__name__)

MAX_PINS = 256  # descriptors held by pins per input, outside max_open_files, until a scan takes them


@dataclass
class Pin:
    """A file opened by watchdog's thread as soon as it was created or moved in."""

    fd: int
    path: str
    copies: list[list[int]] | None  # the rotated_paths copies there at that moment
    seq: int  # its place in the order of inotify's reports (InputTailer.born)


class OpenFiles:
    """The descriptor budget shared by every input (`max_open_files`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.warned = False

    def take(self) -> bool:
        if self.used >= self.limit:
            if not self.warned:
                log.warning("max_open_files (%d) reached: more files wait until inactive ones close", self.limit)
                self.warned = True
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1
        self.warned = False


class InputTailer:
    def __init__(
        self,
        cfg: InputConfig,
        *,
        registry: Registry,
        pipeline: Pipeline,
        metrics: Metrics,
        host_name: str,
        first_start: bool,
        once: bool = False,
        open_files: OpenFiles | None = None,
        parse_pool: ParsePool = INLINE,
    ) -> None:
        self.cfg = cfg
        self.registry = registry
        self.pipeline = pipeline
        self.metrics = metrics
        self.host_name = host_name
        self.matcher = PathMatcher(cfg.paths, cfg.exclude)
        self.readers: dict[tuple[int, int], FileReader] = {}
        self.by_path: dict[str, FileReader] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.rescan = asyncio.Event()
        self.first_start = first_start
        self.once = once
        self.stopping = False
        self.open_files = open_files or OpenFiles(1 << 30)
        self.parse_pool = parse_pool
        self.poll_interval = 2.0
        self._pins: dict[tuple[int, int], Pin] = {}
        self._pin_lock = threading.Lock()
        # pins a running scan took (handed to readers, under max_open_files, or closed when it
        # ends): they count against MAX_PINS, so pins never hold more than MAX_PINS descriptors
        self._pins_scanning = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rotated = PathMatcher(cfg.rotated_paths, []) if cfg.rotated_paths else None
        #: copies whose creation inotify reported while this agent ran -> their place in the
        #: order of its reports: a copy reported after a file was pinned was made after that
        #: file appeared, whatever a listing saw (so it may hold its bytes: copies.py)
        self.born: dict[tuple[int, int], int] = {}
        self._seq = 0  # reports counted (pins and copies), under _pin_lock
        self._scan_seq = 0  # _seq when the running scan took the pins
        metrics.input_bytes_behind.labels(cfg.id).set_function(self._behind)

    def _behind(self) -> float:
        return float(sum(r.behind for r in self.readers.values()))

    def hint(self, path: str, structural: bool) -> None:
        """A watchdog hint: wake the file's reader, or rescan when files came or went."""
        reader = self.by_path.get(path)
        if reader is not None:
            reader.wake.set()
        if structural or (reader is None and self.matcher.included(path)):
            self.rescan.set()

    def pin(self, path: str, created: bool = True, moved_from: str = "") -> None:
        """Watchdog's thread: open a file created or moved in under a matched name at once.

        A file that lives a moment under the watched name (written, then renamed to a name
        the globs do not match) may be gone from it before the next scan; from this
        descriptor it is still read. The scan takes the pins and closes those it does not
        need. The copies listed here are the ones made before the file existed, as far as
        the agent can tell (a copy made later holds bytes of this file: copies.py).

        A file renamed from a matched name to one not matched is pinned too, under its
        old name: when this thread lags, its creation may be reported only after that."""
        if self.stopping:
            return
        if moved_from and not self.matcher.included(path) and self.matcher.included(moved_from):
            self._pin_open(path, moved_from)
            return
        if not self.matcher.included(path):
            # a copy made (not a rotated copy renamed on: that one keeps its identity)
            if created and self._rotated is not None and self._loop is not None and self._rotated.included(path):
                with contextlib.suppress(OSError, RuntimeError):  # gone, or the loop closed
                    st = os.stat(path)
                    self._loop.call_soon_threadsafe(self._copy_born, (st.st_dev, st.st_ino), self._next_seq())
            return
        self._pin_open(path, path)

    def _pin_open(self, path: str, name: str) -> None:
        """Open `path` and pin it under `name` (the matched name it had)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        listed = copies.keys(copies.listing(self.cfg.rotated_paths)) if self.cfg.rotated_paths else None
        with self._pin_lock:
            if (
                stat_mod.S_ISREG(st.st_mode)
                and not self.stopping
                and ident not in self._pins
                and len(self._pins) + self._pins_scanning < MAX_PINS
            ):
                self._seq += 1
                self._pins[ident] = Pin(fd, name, listed, self._seq)
                return
        os.close(fd)

    def _next_seq(self) -> int:
        with self._pin_lock:
            self._seq += 1
            return self._seq

    def _copy_born(self, ident: tuple[int, int], seq: int) -> None:
        """A copy appeared under rotated_paths (its report numbered `seq`)."""
        self.born[ident] = seq
        while len(self.born) > 4096:
            del self.born[next(iter(self.born))]
        for r in self.readers.values():
            r.copy_made()

    def _born_after(self, seq: int) -> set[tuple[int, int]]:
        return {i for i, s in self.born.items() if s > seq}

    def _take_pins(self) -> dict[tuple[int, int], Pin]:
        """The pins so far; and, for files this scan registers from their path (not
        pinned yet), the point in inotify's reports they are known from: any copy reported
        later may be of them (the scan runs while watchdog's thread goes on)."""
        with self._pin_lock:
            pins, self._pins = self._pins, {}
            self._scan_seq = self._seq
            self._pins_scanning = len(pins)  # still open until the scan hands or closes them
        return pins

    def _close_pins(self, pins: dict[tuple[int, int], Pin]) -> None:
        """Close the pins a scan did not hand to a reader; new pins may take their place."""
        for pin in pins.values():
            os.close(pin.fd)
        with self._pin_lock:
            self._pins_scanning = 0

    async def run(self) -> None:
        """Scan on hints and on the timer until stopped (or, with --once, until all is read)."""
        self._loop = asyncio.get_running_loop()
        if self.stopping:  # stopped before its first step: readers opened now would never be told
            return
        stall.start()
        self.scan()
        self.first_start = False
        if self.once:
            for r in self.readers.values():
                r.once = True
            await asyncio.gather(*self.tasks, return_exceptions=True)
            return
        while not self.stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.rescan.wait(), self.cfg.scan_interval)
            await asyncio.sleep(0.05)  # coalesce a burst of hints into one scan
            self.rescan.clear()
            if not self.stopping:
                self.scan()

    def scan(self) -> None:
        pins = self._take_pins()
        try:
            self._scan(pins)
        finally:
            self._close_pins(pins)  # not needed: found by its name, or nothing to read

    def _scan(self, pins: dict[tuple[int, int], Pin]) -> None:
        """Match every file found to its state (or a new one) and start readers; `pins`
        taken are removed from it (their descriptors now the readers')."""
        found = self.matcher.scan()
        known = self.registry.by_inode()
        seen: set[tuple[int, int]] = set()
        starts: list[FileReader] = []
        for path, st in found.items():
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue  # a symlink or hard link to a file already matched
            seen.add(ident)
            reader = self.readers.get(ident)
            if reader is not None:
                if reader.state.path != path:
                    self._moved(reader, path)
                reader.orphaned = False
                reader.wake.set()
                continue
            state = known.get(ident)
            if state is not None and state.input == self.cfg.id and self._unchanged(state, st):
                continue  # closed as inactive, nothing new: no descriptor spent on it
            if not self.open_files.take():
                continue  # at max_open_files: opened by a later scan, when others closed
            r = self._open(path, st, state, pins.pop(ident, None))
            if r is None:
                self.open_files.give()
            else:
                starts.append(r)
        for ident in list(pins):  # pinned, and no longer under a matched name: renamed away
            if ident in seen or ident in self.readers:
                continue
            st = os.fstat(pins[ident].fd)
            state = known.get(ident)
            if st.st_nlink == 0 and st.st_size == 0:
                continue  # created and deleted, never written
            if state is not None and state.input == self.cfg.id and self._unchanged(state, st):
                continue
            if not self.open_files.take():
                continue
            pin = pins.pop(ident)
            r = self._open(pin.path, st, state, pin, matched=False)
            if r is None:
                self.open_files.give()
            else:
                r.orphaned = True  # read to its end, then closed
                starts.append(r)
        for ident, reader in self.readers.items():
            if ident not in seen:
                reader.orphaned = True
                reader.wake.set()
        self._clean(known, seen)
        if starts:
            self.registry.save()  # new keys and generations are durable before any send
            for r in starts:
                t = asyncio.create_task(r.run(), name=f"reader:{r.state.path}")
                self.tasks.add(t)
                t.add_done_callback(self._reader_done)

    @staticmethod
    def _unchanged(state: FileState, st: os.stat_result) -> bool:
        """Nothing to read and not written since its last checkpoint (a reused inode with a
        file of the very same size is written after it): no need to open it."""
        return st.st_size == state.offset and not state.replay and st.st_mtime <= state.updated

    def _clean(self, known: dict[tuple[int, int], FileState], seen: set[tuple[int, int]]) -> None:
        """Forget files gone (not matched, not open) for `clean_removed_after`."""
        now = time.time()
        for ident, state in known.items():
            if state.input != self.cfg.id or ident in seen or ident in self.readers:
                continue
            if now - state.updated > self.cfg.clean_removed_after:
                log.info(
                    "forgetting %s (key %s): gone since %s",
                    state.path,
                    state.key,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.updated)),
                )
                self.registry.forget(state.key)

    def _open(
        self, path: str, st: os.stat_result, state: FileState | None, pin: Pin | None = None, matched: bool = True
    ) -> FileReader | None:
        """A reader for the file (from the pin's descriptor when there is one); `matched`:
        the file is under `path` now (else it was pinned there and renamed away since)."""
        if pin is not None:
            fd = pin.fd
        else:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                log.warning("cannot open %s: %s", path, e.strerror)
                return None
        st = os.fstat(fd)
        fp_len = min(st.st_size, self.cfg.fingerprint_bytes)
        if state is not None and state.input == self.cfg.id and identity.matches(state, fd, st.st_size):
            if state.path != path:
                log.info("%s is %s renamed; continuing at offset %d", path, state.path, state.offset)
                state.path = path
        else:
            if state is not None:  # same inode, other bytes: a reused inode is a new file
                self.registry.forget(state.key)
            stale = self.cfg.ignore_older is not None and time.time() - st.st_mtime > self.cfg.ignore_older
            start = st.st_size if (self.cfg.start_at == "end" and self.first_start) or stale else 0
            state = self.registry.new_file(self.cfg.id, path, st, identity.fingerprint(fd, fp_len), fp_len, start)
            if self.cfg.rotated_paths:  # copies there before the file was first seen are not its
                state.copies = pin.copies if pin is not None and pin.copies is not None else copies.keys(
                    copies.listing(self.cfg.rotated_paths)
                )
            log.info(
                "new file %s (key %s) from offset %d%s",
                path,
                state.key,
                start,
                "" if matched else " (opened when it appeared; renamed away before the scan)",
            )
        reader = FileReader(
            state=state,
            fd=fd,
            cfg=self.cfg,
            registry=self.registry,
            pipeline=self.pipeline,
            metrics=self.metrics,
            host_name=self.host_name,
            on_close=self._closed,
            tailed=lambda: self.registry.by_inode().keys(),
            born=functools.partial(self._born_after, pin.seq if pin is not None else self._scan_seq),
            parse_pool=self.parse_pool,
        )
        reader.once = self.once
        reader.poll_interval = self.poll_interval
        self.readers[(st.st_dev, st.st_ino)] = reader
        if matched:
            self.by_path[path] = reader
        return reader

    def _moved(self, reader: FileReader, path: str) -> None:
        self.by_path.pop(reader.state.path, None)
        reader.state.path = path
        self.by_path[path] = reader
        self.registry.dirty = True

    def _closed(self, reader: FileReader) -> None:
        self.open_files.give()
        self.readers.pop((reader.state.dev, reader.state.ino), None)
        if reader.deleted:
            # Read to its end and deleted: nothing of it can be read again. Its device and
            # inode are free for the next file the file system creates, whose first bytes
            # may equal these (a fixed header): matched to this state it would be continued
            # at this offset and its first bytes never shipped. Forgotten, it is a new file.
            log.info("forgetting %s (key %s): deleted and read to its end", reader.state.path, reader.state.key)
            self.registry.forget(reader.state.key)
        if self.by_path.get(reader.state.path) is reader:
            del self.by_path[reader.state.path]

    def _reader_done(self, t: asyncio.Task[None]) -> None:
        self.tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("reader failed: %r", t.exception(), exc_info=t.exception())

    def stop(self) -> None:
        self.stopping = True
        self._close_pins(self._take_pins())
        self.rescan.set()
        for r in self.readers.values():
            r.stopping = True
            r.wake.set()
