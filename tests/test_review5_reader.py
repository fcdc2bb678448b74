"""Review of the reader's overlap with a parse worker (tail5: 7f01283, 8fabf29): a batch
held while the next chunk parses is never lost when the reader stops mid-file or its file
is deleted mid-read: what is handed over is contiguous, in order, and ends where the
parser stands (nothing parsed and kept back), as parsing on the loop does."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from shipper.registry import Registry
from shipper.tail import reader as reader_mod
from shipper.tail.parsing import INLINE, ParsePool
from tests.test_parse_threads import corpus, reader_for


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Registry]:
    """Chunks of 20,000 bytes, one a read; a fixed clock; the corpus of test_parse_threads."""
    monkeypatch.setattr(reader_mod, "CHUNK", 20_000)
    monkeypatch.setattr(reader_mod, "WORKER_READS", 1)
    monkeypatch.setattr(reader_mod.time, "time", lambda: 1795651199.0)
    path = tmp_path / "a.log"
    path.write_bytes(corpus(6000))
    return path, Registry(tmp_path / "data")


def _contiguous(got: list[tuple[bytes, int, int, int]]) -> None:
    for a, b in itertools.pairwise(got):
        assert b[2] == a[3]  # each batch starts where the one before ended


@pytest.mark.parametrize("threads", [0, 1])
@pytest.mark.parametrize("after", [1, 3])
def test_a_reader_stopped_mid_file_hands_over_what_it_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int, after: int
) -> None:
    path, reg = _setup(tmp_path, monkeypatch)
    pool = ParsePool(threads) if threads else INLINE
    r, cap = reader_for(reg, path, pool)
    r.once = False
    submit = cap.submit

    async def stop_after(batch: Any, *args: Any) -> None:
        await submit(batch, *args)
        if len(cap.got) == after:
            r.stopping = True  # what Input.stop does

    cap.submit = stop_after  # type: ignore[method-assign]
    asyncio.run(r.run())
    pool.close()
    reg.close()
    assert cap.got and cap.got[0][2] == 0
    _contiguous(cap.got)
    assert cap.got[-1][3] == r.parser.offset  # nothing parsed is kept back
    assert r.position < path.stat().st_size  # stopped mid-file


@pytest.mark.parametrize("threads", [0, 1])
def test_a_file_deleted_mid_read_is_handed_over_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    path, reg = _setup(tmp_path, monkeypatch)
    size = path.stat().st_size
    r0, cap0 = reader_for(reg, path, INLINE)
    asyncio.run(r0.run())
    pool = ParsePool(threads) if threads else INLINE
    r, cap = reader_for(reg, path, pool)
    submit = cap.submit

    async def delete_once(batch: Any, *args: Any) -> None:
        if path.exists():
            os.unlink(path)  # deleted while the next chunk may be parsing
        await submit(batch, *args)

    cap.submit = delete_once  # type: ignore[method-assign]
    asyncio.run(r.run())
    pool.close()
    reg.close()
    assert not path.exists()
    assert cap.got == cap0.got
    _contiguous(cap.got)
    assert r.position == size and cap.got[-1][3] == size
    assert r.deleted
