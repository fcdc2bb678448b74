"""A closed file's reader is freed by reference counting, not by the cyclic collector.

A reader holds its watermark; the watermark used to hold the reader back (``owner`` and
the bound ``_advance``), so every closed file's reader, with its parser's C buffers
(~0.6 MiB the collector's thresholds do not count), waited for a full collection: a
steady agent that opened a file a minute grew ~1.2 MiB a minute (benchmarks/steady_soak.py).
These tests run with the collector off: what is not freed by refcounting stays alive.
"""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper import config
from shipper.acks import Watermark
from shipper.metrics import Metrics
from shipper.registry import Registry
from shipper.tail.reader import FileReader


class Held:
    """Stands in for the pipeline: keeps each chunk in flight until ``ack_all``."""

    def __init__(self, ack_now: bool) -> None:
        self.ack_now = ack_now
        self.inflight: list[tuple[Watermark, Any]] = []

    async def submit(self, batch: Any, watermark: Watermark, generation: int, input_id: str, version: int = 0) -> None:
        p = watermark.add(batch.end_offset, generation)
        if self.ack_now:
            watermark.done(p)
        else:
            self.inflight.append((watermark, p))

    def ack_all(self) -> None:
        for wm, p in self.inflight:
            wm.done(p)
        self.inflight.clear()


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _read_once(tmp_path: Path, pipeline: Held) -> tuple[weakref.ref[FileReader], Any, Registry]:
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
    reg = Registry(tmp_path / "data")
    state = reg.new_file("t", str(path), os.stat(path), "fp", 0, 0)
    cfg = config.from_dict({"inputs": [{"id": "t", "paths": [str(path)]}]}, env={}).inputs[0]
    closed: list[str] = []
    parts: dict[str, Any] = {"state": state, "cfg": cfg, "registry": reg, "pipeline": pipeline, "host_name": "h"}
    r = FileReader(
        fd=os.open(path, os.O_RDONLY), metrics=Metrics(), on_close=lambda rd: closed.append(rd.state.path), **parts
    )
    r.once = True  # read to the end, then close
    asyncio.run(r.run())
    assert closed == [str(path)]
    return weakref.ref(r), state, reg


@pytest.mark.usefixtures("no_gc")
def test_closed_reader_freed_without_the_collector(tmp_path: Path) -> None:
    ref, state, reg = _read_once(tmp_path, Held(ack_now=True))
    assert state.offset == (tmp_path / "a.log").stat().st_size
    assert ref() is None, f"a closed reader is kept alive by {[type(o).__name__ for o in gc.get_referrers(ref())]}"
    reg.close()


@pytest.mark.usefixtures("no_gc")
def test_reader_closed_with_chunks_in_flight_is_freed_and_its_checkpoint_still_moves(tmp_path: Path) -> None:
    """--once and a deleted file close without waiting for their acknowledgements: the
    watermark (held by the requests in flight) must still move the file's checkpoint."""
    held = Held(ack_now=False)
    ref, state, reg = _read_once(tmp_path, held)
    assert held.inflight and state.offset == 0
    assert ref() is None
    assert held.inflight[0][0].owner is None  # the counters see no reader: it is gone
    held.ack_all()
    assert state.offset == (tmp_path / "a.log").stat().st_size and reg.dirty
    reg.close()


def test_owner_is_the_reader_while_it_lives() -> None:
    class Owner:
        pass

    o = Owner()
    wm = Watermark(0, lambda off, gen: None)
    assert wm.owner is None
    wm.owner = o
    assert wm.owner is o
    wm.owner = None
    assert wm.owner is None
