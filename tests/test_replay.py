"""A replay after a crash rebuilds every event with the same bytes: the chunks sent but not
acknowledged are read again with their recorded boundaries and read times (so a line
without a time of its own keeps its timestamp and its day's index across midnight)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from shipper import config
from shipper.metrics import Metrics
from shipper.registry import Registry
from shipper.tail import reader as reader_mod
from shipper.tail.reader import FileReader


class Capture:
    """Stands in for the pipeline: keeps what the reader hands over, acknowledges nothing."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def submit(self, batch: Any, watermark: Any, generation: int, input_id: str, version: int = 0) -> None:
        watermark.add(batch.end_offset, generation)
        if batch.count:
            self.bodies.append(batch.body)


def reader_of(state: Any, registry: Registry, path: Path, cap: Capture) -> FileReader:
    cfg = config.from_dict({"inputs": [{"id": "t", "paths": [str(path)]}]}, env={}).inputs[0]
    return FileReader(
        state=state,
        fd=os.open(path, os.O_RDONLY),
        cfg=cfg,
        registry=registry,
        pipeline=cap,  # type: ignore[arg-type]
        metrics=Metrics(),
        host_name="h",
        on_close=lambda _: None,
    )


async def read_all(state: Any, registry: Registry, path: Path, once: bool = True) -> bytes:
    cap = Capture()
    r = reader_of(state, registry, path, cap)
    r.once = once
    await r.run()
    return b"".join(cap.bodies)


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_replay_is_byte_identical_across_midnight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", chunk)
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"line %d without a time\n" % i for i in range(50)) + b"half a line")
    clock = [1795651199_000]  # 2026-11-25T23:59:59Z
    monkeypatch.setattr(reader_mod.time, "time", lambda: clock[0] / 1000)

    reg = Registry(tmp_path / "data")
    state = reg.new_file("t", str(path), os.stat(path), "fp", 0, 0)
    reg.save()
    first = asyncio.run(read_all(state, reg, path))
    reg.save()  # what was durable when the agent was SIGKILLed: nothing acknowledged
    reg.close()

    clock[0] += 3_600_000  # restarted an hour later, on the next day
    reg2 = Registry(tmp_path / "data")
    state2 = reg2.files[state.key]
    assert state2.replay, "the read boundaries were persisted"
    again = asyncio.run(read_all(state2, reg2, path))
    assert again == first
    assert b"shipper-logs-t-2026.11.25" in again and b"2026.11.26" not in again
    assert b'"tags":["incomplete"]' in again  # the flush of the last partial line is replayed too
    reg2.close()


def test_acknowledged_chunks_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x\n" * 10)
    reg = Registry(tmp_path / "data")
    state = reg.new_file("t", str(path), os.stat(path), "fp", 0, 0)
    cfg = config.from_dict({"inputs": [{"id": "t", "paths": [str(path)]}]}, env={}).inputs[0]
    r = FileReader(
        state=state,
        fd=os.open(path, os.O_RDONLY),
        cfg=cfg,
        registry=reg,
        pipeline=Capture(),  # type: ignore[arg-type]
        metrics=Metrics(),
        host_name="h",
        on_close=lambda _: None,
    )
    state.replay = [[8, 1, 0], [20, 2, 0]]
    r._advance(10, 0)
    assert state.replay == [[20, 2, 0]] and state.offset == 10
    os.close(r.fd)
    reg.close()
    _ = time


def _reads_ahead_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Registry, Any]:
    """400 lines without a time of their own, read 64 bytes at a time: many reads a record."""
    monkeypatch.setattr(reader_mod, "CHUNK", 64)
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"line %d without a time\n" % i for i in range(400)))
    reg = Registry(tmp_path / "data")
    state = reg.new_file("t", str(path), os.stat(path), "fp", 0, 0)
    reg.save()
    return path, reg, state


def _read_after_restart(tmp_path: Path, reg: Registry, state: Any, path: Path, save: bool = True) -> bytes:
    """The registry closed (saved first unless the agent died), reopened, the file read again."""
    if save:
        reg.save()
    reg.close()
    reg2 = Registry(tmp_path / "data")
    try:
        return asyncio.run(read_all(reg2.files[state.key], reg2, path))
    finally:
        reg2.close()


def test_reads_ahead_share_one_record_and_replay_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file far ahead of its reader: one replay record (one registry write before a send)
    for up to LEASE_READS reads, not one per read; the replay still rebuilds every byte."""
    clock = [1795651199_000]
    monkeypatch.setattr(reader_mod.time, "time", lambda: clock[0] / 1000)
    path, reg, state = _reads_ahead_file(tmp_path, monkeypatch)
    first = asyncio.run(read_all(state, reg, path))
    reads = -(-path.stat().st_size // 64)
    boundaries = [b for b, _, _ in state.replay]
    assert boundaries == sorted(boundaries) and boundaries[-1] == path.stat().st_size
    # a record per LEASE_READS reads, the last reads (less than a read ahead) one each, the flush
    assert len(state.replay) <= reads // reader_mod.LEASE_READS + 4, state.replay
    assert reg.version == len(state.replay)  # one durable version per record, not per read
    clock[0] += 3_600_000
    assert _read_after_restart(tmp_path, reg, state, path) == first


def test_a_record_of_reads_ahead_is_cut_when_its_read_time_grows_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader held back (Elasticsearch slow) longer than LEASE_MS under one record: the
    record is cut where the reader is, the next reads get the time they are read at, and a
    replay rebuilds what was sent."""
    clock = [1795651199_000]

    def now() -> float:
        clock[0] += 300  # each read 300 ms after the one before
        return clock[0] / 1000

    monkeypatch.setattr(reader_mod.time, "time", now)
    path, reg, state = _reads_ahead_file(tmp_path, monkeypatch)
    first = asyncio.run(read_all(state, reg, path))
    boundaries = [b for b, _, _ in state.replay]
    assert boundaries == sorted(boundaries) and boundaries[-1] == path.stat().st_size
    times = [t for _, t, _ in state.replay]
    assert len(set(times)) == len(times) > 5  # cut: no read time is stretched over more than LEASE_MS
    assert _read_after_restart(tmp_path, reg, state, path) == first


def test_a_crash_under_a_record_of_reads_ahead_replays_what_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILLed after a few reads of a record of reads ahead (the record durable, nothing
    acknowledged): the restart, a day later, rebuilds the bytes that were sent and reads the
    rest of the record with its read time (those lines were in the file at that time)."""
    clock = [1795651199_000]
    monkeypatch.setattr(reader_mod.time, "time", lambda: clock[0] / 1000)
    path, reg, state = _reads_ahead_file(tmp_path, monkeypatch)
    sent: list[bytes] = []

    class Dies(Capture):
        async def submit(self, batch: Any, watermark: Any, generation: int, input_id: str, version: int = 0) -> None:
            await super().submit(batch, watermark, generation, input_id, version)
            sent.append(batch.body)
            if len(sent) == 5:
                reg.save()  # what the sender made durable before sending these
                r.stopping = True

    r = reader_of(state, reg, path, Dies())
    asyncio.run(r.run())
    assert len(state.replay) == 1 and state.replay[0][0] > 5 * 64  # one record, ahead of the reads
    boundary = state.replay[0][0]
    clock[0] += 86_400_000
    again = _read_after_restart(tmp_path, reg, state, path, save=False)  # dies: no final save
    assert again.startswith(b"".join(sent))
    # the record's lines keep its read time and day; the lines after it are read now
    before = path.read_bytes()[:boundary].count(b"\n")
    assert again.count(b"shipper-logs-t-2026.11.25") == before
    assert again.count(b"shipper-logs-t-2026.11.26") == 400 - before > 0
