"""The registry: per file identity, the offset Elasticsearch has acknowledged.

Persisted atomically (temporary file, fsync, rename, fsync of the directory) so that a
crash leaves either the old or the new registry, never half of one; a checksum makes
a registry damaged by other means (disk, a hand edit) an error that names the file
instead of a silent restart from zero that would re-ship everything. A lock on
`data_dir` refuses a second agent: two writers of one registry would each checkpoint
the other's unacknowledged work.

Format versions: 1 had no `id_v2_from`; 2 adds it (the first generation of a file whose
`_id`s follow contract v2); 3 adds `copies` (the copytruncate copies a file's generations
have accounted for); 4 keys each copy by what it held, [device, inode, size, digest]
(shipper/tail/copies.py), where 3 had [device, inode]: a format-3 agent refuses it
instead of misreading it. Version 1 files load as they are and keep contract v1 ids
for the generation they are in, so a replay after the upgrade rebuilds the ids that were
sent; their next generation (a truncation) starts under v2, like every new file.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import _fastparse
from _fastparse import _ids as ids_v2

log = logging.getLogger(__name__)

FORMAT = "shipper-registry"
VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
ID_SCHEME = b"shipper-id/1"


class RegistryError(RuntimeError):
    """The registry cannot be used as it is; the message says what to do."""


@dataclass
class FileState:
    """What the registry remembers of one file.

    `key` names the file's events for ever (it is part of every `_id`), so it is made
    once, at first sight, and persisted before the first event is sent. Device, inode
    and fingerprint only match a file found on disk to its key.
    """

    key: str
    input: str
    path: str
    dev: int
    ino: int
    fingerprint: str
    fp_len: int
    generation: int = 0
    offset: int = 0
    updated: float = 0.0
    # [read boundary, read time ms, kind (0 feed, 1 flush)] of chunks sent but not yet
    # acknowledged: a replay after a crash re-reads the same chunks with the same times,
    # so every event comes back with the same bytes, index and `_id` (a line without a
    # time of its own is stamped with its read time, and the index follows that date).
    replay: list[list[int]] = field(default_factory=list)
    # The first generation whose `_id`s follow contract v2 (a per-event hash); earlier
    # generations keep v1 (prefix + hex offset), so that ids already sent never change.
    # None: v1 for every generation (a state made by an agent that wrote only v1 ids).
    id_v2_from: int | None = None
    # [device, inode, size, digest] (copies.key; [device, inode] in format 3: any content
    # on that inode) of the `rotated_paths` copies that existed when the current
    # generation began or that were read since (shipper/tail/copies.py): any other copy
    # holds a generation never seen. None: not known yet (a state from before format 3, or
    # an input without rotated_paths): the copies present at the first look are taken as
    # accounted for, never guessed to be new.
    copies: list[list[int]] | None = None

    def id_contract(self) -> int:
        """The `_id` contract (1 or 2) of this file's current generation."""
        return 2 if self.id_v2_from is not None and self.generation >= self.id_v2_from else 1


def id_prefix(host_id: str, key: str, generation: int) -> str:
    """The fixed 22-character prefix of every `_id` of one file generation under contract v1.

    Contract v1: `_id = prefix + "." + hex(start offset)`, where prefix is BLAKE2b-128
    (base64url, unpadded) of the scheme tag, host id, file key and generation: no hash
    per event. Contract v2 (`_fastparse/_ids.py`: a BLAKE2b-128 per event, as issue 5
    specifies) replaces it for new files and new generations: measured against the real
    Elasticsearch (benchmarks/id_scheme.py, RESULTS.md "_id scheme") it costs the server
    no more CPU on `create` (about 20% less: shorter ids) and about the same on a replay of
    409s, for ~27 more bytes per document on disk (random ids compress worse). v1 stays
    for the generations that began under it: their replays must rebuild the same ids.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(ID_SCHEME + b"\0" + host_id.encode() + b"\0" + key.encode() + b"\0" + str(generation).encode())
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def parser_id_contract() -> int:
    """The newest `_id` contract the parser can write: 2 once `_fastparse` says it can
    (`ID_CONTRACTS`), else 1. The registry never promises ids the parser cannot write."""
    return int(max(getattr(_fastparse, "ID_CONTRACTS", (1,))))


class Registry:
    """Owns `data_dir`: the lock, the host id and the file states.

    `id_contract` is the newest `_id` contract the agent's parser writes (default: what
    `_fastparse` declares). With 2, new files and the next generation of files that were
    under v1 get per-event hash ids; a state already under v2 with an agent that can only
    write v1 is refused (its replays would double).
    """

    def __init__(self, data_dir: Path, id_contract: int | None = None) -> None:
        self.data_dir = data_dir
        self.id_contract = parser_id_contract() if id_contract is None else id_contract
        if self.id_contract not in (1, 2):
            raise ValueError(f"unknown _id contract {self.id_contract}")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RegistryError(f"cannot create data_dir {data_dir}: {e.strerror}") from None
        self._lock_fd = self._lock()
        self.host_id = self._host_id()
        self.path = data_dir / "registry.json"
        self.files: dict[str, FileState] = {}
        self.dirty = False
        self.last_error: str | None = None
        self.version = 0  # bumped by every change that must be durable before a send
        self.saved_version = 0
        self._save_lock: asyncio.Lock | None = None
        self._wlock = threading.Lock()
        self._snap_seq = 0
        self._written_seq = 0
        # other state saved in the same atomic write as the offsets (name -> provider of a
        # JSON value), so that it always matches them; what a load found, by name
        self.extras: dict[str, Callable[[], Any]] = {}
        self.loaded_extras: dict[str, Any] = {}
        self._load()

    # -- lock and host id --------------------------------------------------------------

    def _lock(self) -> int:
        path = self.data_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RegistryError(
                f"another shipper (pid {other}) is running with data_dir {self.data_dir}; "
                "two agents on one data_dir would corrupt each other's checkpoints"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _host_id(self) -> str:
        path = self.data_dir / "host_id"
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = secrets.token_hex(16)
            _atomic_write(path, (value + "\n").encode())
            return value
        if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
            raise RegistryError(f"{path} is damaged ({value[:40]!r}); it names this host's events, restore it")
        return value

    # -- load and save -----------------------------------------------------------------

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        header, _, body = raw.partition(b"\n")
        try:
            meta = orjson.loads(header)
            if meta.get("format") != FORMAT:
                raise ValueError("not a shipper registry")
            if meta.get("version") not in READABLE_VERSIONS:
                raise ValueError(f"version {meta.get('version')} is not supported (this agent reads "
                                 f"{', '.join(map(str, READABLE_VERSIONS))})")
            if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
                raise ValueError("checksum mismatch: the file was changed or damaged")
            data = orjson.loads(body)
            if data["host_id"] != self.host_id:
                raise ValueError("it belongs to another host_id")
            self.files = {f["key"]: FileState(**f) for f in data["files"]}
            self.loaded_extras = data.get("extras") or {}
        except (ValueError, KeyError, TypeError) as e:
            raise RegistryError(
                f"registry {self.path} is corrupt: {e}. Refusing to start rather than re-ship "
                "every file from the beginning; move it away to start from scratch"
            ) from None
        for f in self.files.values():
            if self.id_contract >= 2 and f.id_v2_from is None:
                # The current generation's ids may have been sent as v1: keep them; the next
                # generation starts under v2. Deterministic, so it needs no save of its own.
                f.id_v2_from = f.generation + 1
            elif self.id_contract < 2 and f.id_contract() == 2:
                raise RegistryError(
                    f"registry {self.path}: file {f.path} (key {f.key}) is under _id contract 2, which "
                    "this agent's parser cannot write; a replay would double its events. Run an agent "
                    "that writes contract 2"
                )

    def _snapshot(self) -> tuple[int, bytes]:
        """The registry as bytes, numbered in the order snapshots are taken (on the loop)."""
        # orjson writes the dataclasses itself, the same bytes as `asdict` (fields in order,
        # nested lists as they are) without its deep copy: 0.3 vs 47 ms for 1,000 files,
        # paid before every bulk request (tests/test_registry.py compares the two)
        data: dict[str, Any] = {"host_id": self.host_id, "files": list(self.files.values())}
        if self.extras:
            data["extras"] = {name: provide() for name, provide in self.extras.items()}
        body = orjson.dumps(data)
        header = orjson.dumps({"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(body).hexdigest()})
        self._snap_seq += 1
        return self._snap_seq, header + b"\n" + body

    def _write(self, snap: tuple[int, bytes]) -> None:
        """One writer at a time (the loop and worker threads share the temporary file), and
        never an older snapshot over a newer one."""
        seq, data = snap
        with self._wlock:
            if seq <= self._written_seq:
                return
            try:
                _atomic_write(self.path, data)
            except OSError as e:
                self.last_error = f"cannot write {self.path}: {e.strerror}"
                raise
            self._written_seq = seq
            self.last_error = None

    def save(self) -> None:
        """Persist every state now (atomic, blocking): at start, on truncation, at shutdown."""
        version = self.version
        self._write(self._snapshot())
        self.saved_version = max(self.saved_version, version)
        self.dirty = False

    def mark(self) -> int:
        """Record a change that must be durable before the data it covers is sent."""
        self.dirty = True
        self.version += 1
        return self.version

    async def ensure_saved(self, version: int | None = None) -> None:
        """Persist (in a worker thread) unless `version` is durable already; one write
        covers every change made before it, so concurrent callers share it."""
        want = self.version if version is None else version
        if self.saved_version >= want:
            return
        if self._save_lock is None:
            self._save_lock = asyncio.Lock()
        async with self._save_lock:
            if self.saved_version >= want:
                return
            current, snap = self.version, self._snapshot()
            self.dirty = False
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._write, snap)
            except OSError:
                self.dirty = True
                raise
            self.saved_version = max(self.saved_version, current)

    def writable(self) -> bool:
        return self.last_error is None and os.access(self.data_dir, os.W_OK)

    # -- states --------------------------------------------------------------------------

    def new_file(
        self, input_id: str, path: str, st: os.stat_result, fingerprint: str, fp_len: int, offset: int
    ) -> FileState:
        """A state for a file never seen before; the caller saves before sending from it."""
        key = secrets.token_hex(8)
        while key in self.files:
            key = secrets.token_hex(8)
        state = FileState(key, input_id, path, st.st_dev, st.st_ino, fingerprint, fp_len, 0, offset, time.time(),
                          id_v2_from=0 if self.id_contract >= 2 else None)
        self.files[key] = state
        self.dirty = True
        return state

    def by_inode(self) -> dict[tuple[int, int], FileState]:
        return {(f.dev, f.ino): f for f in self.files.values()}

    def id_prefix(self, state: FileState) -> str:
        """Contract v1: the `_id` prefix of the state's current generation."""
        if state.id_contract() != 1:
            raise ValueError(f"file {state.path} generation {state.generation} is under _id contract 2: use id_key")
        return id_prefix(self.host_id, state.key, state.generation)

    def id_key(self, state: FileState) -> bytes:
        """Contract v2: the per-generation key the parser hashes with each event's offset
        (`_fastparse._ids.event_id_from_key`, `shipper_event_id` in C)."""
        if state.id_contract() != 2:
            raise ValueError(f"file {state.path} generation {state.generation} is under _id contract 1: use id_prefix")
        return ids_v2.id_key(self.host_id, state.key, state.generation)

    def forget(self, key: str) -> None:
        if self.files.pop(key, None) is not None:
            self.dirty = True

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def stats(self) -> dict[str, Any]:
        return {"files": len(self.files), "path": str(self.path)}


# Tests only: SHIPPER_TEST_REGISTRY_PAUSE="<phase>:<n>:<marker path>" makes the n-th write
# of registry.json stop for good at <phase> ("mid": half the temporary file written;
# "rename": the temporary file complete and fsynced, not yet renamed) after creating the
# marker, so that a test can SIGKILL the agent exactly there (tests/test_registry_crash.py).
_PAUSE = os.environ.get("SHIPPER_TEST_REGISTRY_PAUSE", "")
_pause_writes = 0


def _test_pause(path: Path, phase: str) -> None:
    global _pause_writes
    if not _PAUSE or path.name != "registry.json":
        return
    want_phase, nth, marker = _PAUSE.split(":", 2)
    if phase == "mid":
        _pause_writes += 1
    if phase == want_phase and _pause_writes == int(nth):
        Path(marker).write_text(f"{os.getpid()}\n")
        log.warning("SHIPPER_TEST_REGISTRY_PAUSE: registry write %d paused at %s", _pause_writes, phase)
        while True:
            time.sleep(3600)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if _PAUSE:
            half = len(data) // 2
            os.write(fd, data[:half])
            _test_pause(path, "mid")
            data = data[half:]
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _test_pause(path, "rename")
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
