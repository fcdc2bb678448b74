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


async def read_all(state: Any, registry: Registry, path: Path, once: bool = True) -> bytes:
    cfg = config.from_dict({"inputs": [{"id": "t", "paths": [str(path)]}]}, env={}).inputs[0]
    cap = Capture()
    r = FileReader(
        state=state,
        fd=os.open(path, os.O_RDONLY),
        cfg=cfg,
        registry=registry,
        pipeline=cap,  # type: ignore[arg-type]
        metrics=Metrics(),
        host_name="h",
        on_close=lambda _: None,
    )
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
