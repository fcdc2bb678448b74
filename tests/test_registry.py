from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipper.acks import Watermark
from shipper.registry import Registry, RegistryError, id_prefix


def test_roundtrip_and_lock(tmp_path: Path) -> None:
    r = Registry(tmp_path)
    st = os.stat(tmp_path)
    s = r.new_file("t", "/x.log", st, "fp", 3, 0)
    s.offset = 42
    r.save()
    with pytest.raises(RegistryError, match="another shipper"):
        Registry(tmp_path)
    r.close()
    r2 = Registry(tmp_path)
    assert r2.files[s.key].offset == 42
    assert r2.host_id == r.host_id
    r2.close()


def test_corrupt_registry_is_refused_not_reset(tmp_path: Path) -> None:
    r = Registry(tmp_path)
    r.new_file("t", "/x.log", os.stat(tmp_path), "fp", 3, 0)
    r.save()
    r.close()
    p = tmp_path / "registry.json"
    p.write_bytes(p.read_bytes().replace(b'"offset":0', b'"offset":9'))
    with pytest.raises(RegistryError, match="corrupt"):
        Registry(tmp_path)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(RegistryError, match="corrupt"):
        Registry(tmp_path)


def test_id_prefix_is_stable_and_distinct() -> None:
    a = id_prefix("h" * 32, "k1", 0)
    assert a == id_prefix("h" * 32, "k1", 0)
    assert len(a) == 22
    assert len({a, id_prefix("h" * 32, "k1", 1), id_prefix("h" * 32, "k2", 0), id_prefix("g" * 32, "k1", 0)}) == 4


def test_watermark_out_of_order() -> None:
    moved: list[int] = []
    w = Watermark(0, lambda off, gen: moved.append(off))
    a, b, c = w.add(10, 0), w.add(20, 0), w.add(30, 0)
    w.done(b)
    assert w.acked == 0 and moved == []
    w.done(a)
    assert w.acked == 20
    w.done(c)
    assert w.acked == 30 and moved == [20, 30]


def test_a_half_written_temporary_file_is_ignored(tmp_path: Path) -> None:
    """A crash while writing leaves registry.json.tmp; the registry itself is whole."""
    r = Registry(tmp_path)
    s = r.new_file("t", "/x.log", os.stat(tmp_path), "fp", 3, 0)
    s.offset = 7
    r.save()
    r.close()
    (tmp_path / "registry.json.tmp").write_bytes(b'{"format":"shipper-reg')
    r2 = Registry(tmp_path)
    assert r2.files[s.key].offset == 7
    r2.close()


def test_saves_from_the_loop_and_worker_threads_do_not_collide(tmp_path: Path) -> None:
    """A scan saves synchronously while a sender's save runs in a worker thread."""
    import asyncio

    r = Registry(tmp_path)
    s = r.new_file("t", "/x.log", os.stat(tmp_path), "fp", 3, 0)

    async def churn() -> None:
        for i in range(300):
            s.offset = i
            task = asyncio.create_task(r.ensure_saved(r.mark()))
            await asyncio.sleep(0)
            s.offset = i + 1
            r.save()
            await task

    asyncio.run(churn())
    r.close()
    r2 = Registry(tmp_path)
    assert r2.files[s.key].offset == 300  # the newest snapshot is the one on disk
    r2.close()
