from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from _fastparse import _ids as ids_v2
from shipper.acks import Watermark
from shipper.registry import Registry, RegistryError, id_prefix, parser_id_contract


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


# -- `_id` contracts and the registry format's migration ---------------------------------


def _write_format_1(data_dir: Path, host_id: str, state: dict[str, object], version: int = 1) -> None:
    """A registry as an agent of format version 1 wrote it (no `id_v2_from`); or of
    `version`, with what `state` holds."""
    import hashlib

    import orjson

    (data_dir / "host_id").write_text(host_id + "\n")
    body = orjson.dumps({"host_id": host_id, "files": [state]})
    digest = hashlib.sha256(body).hexdigest()
    header = orjson.dumps({"format": "shipper-registry", "version": version, "sha256": digest})
    (data_dir / "registry.json").write_bytes(header + b"\n" + body)


def test_format_1_registry_keeps_v1_ids_until_its_next_generation(tmp_path: Path) -> None:
    host, key = "ab" * 16, "0123456789abcdef"
    old = {"key": key, "input": "t", "path": "/x.log", "dev": 1, "ino": 2, "fingerprint": "fp",
           "fp_len": 3, "generation": 4, "offset": 100, "updated": 0.0, "replay": [[200, 1764028800000, 0]]}
    _write_format_1(tmp_path, host, old)
    r = Registry(tmp_path, id_contract=2)
    s = r.files[key]
    assert (s.offset, s.replay, s.id_contract()) == (100, [[200, 1764028800000, 0]], 1)
    assert r.id_prefix(s) == id_prefix(host, key, 4)  # the replay rebuilds the ids that were sent
    with pytest.raises(ValueError, match="contract 1"):
        r.id_key(s)
    r.save()  # written as format 2; still v1 for generation 4
    r.close()
    r = Registry(tmp_path, id_contract=2)
    s = r.files[key]
    assert s.id_v2_from == 5 and s.id_contract() == 1
    s.generation += 1  # a truncation
    r.save()
    r.close()
    r = Registry(tmp_path, id_contract=2)
    s = r.files[key]
    assert s.id_contract() == 2
    assert r.id_key(s) == ids_v2.id_key(host, key, 5)
    with pytest.raises(ValueError, match="contract 2"):
        r.id_prefix(s)
    r.close()


def test_new_files_get_v2_and_v1_only_agents_refuse_them(tmp_path: Path) -> None:
    r = Registry(tmp_path, id_contract=2)
    s = r.new_file("t", "/x.log", os.stat(tmp_path), "fp", 3, 0)
    assert s.id_v2_from == 0 and s.id_contract() == 2
    r.save()
    r.close()
    with pytest.raises(RegistryError, match="contract 2"):
        Registry(tmp_path, id_contract=1)


def test_v1_agent_states_move_to_v2_at_their_next_generation(tmp_path: Path) -> None:
    r = Registry(tmp_path, id_contract=1)
    s = r.new_file("t", "/x.log", os.stat(tmp_path), "fp", 3, 0)
    assert s.id_v2_from is None and s.id_contract() == 1
    s.generation = 7
    r.save()
    r.close()
    r = Registry(tmp_path, id_contract=1)  # still a v1 agent: nothing changes
    assert r.files[s.key].id_v2_from is None
    r.close()
    r = Registry(tmp_path, id_contract=2)
    assert r.files[s.key].id_v2_from == 8
    r.close()


def test_default_contract_follows_the_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry promises v2 ids only once `_fastparse` declares it writes them."""
    import _fastparse

    monkeypatch.delattr(_fastparse, "ID_CONTRACTS", raising=False)
    assert parser_id_contract() == 1
    monkeypatch.setattr(_fastparse, "ID_CONTRACTS", (1, 2), raising=False)
    assert parser_id_contract() == 2
    r = Registry(tmp_path)
    assert r.id_contract == 2
    r.close()


def test_snapshot_bytes_are_those_of_asdict(tmp_path: Path) -> None:
    """The registry body is orjson of the dataclasses themselves: the same bytes as the
    `asdict` it replaced (so a registry written before and after reads back the same)."""
    import dataclasses

    import orjson

    r = Registry(tmp_path)
    st = os.stat(tmp_path)
    a = r.new_file("t", "/x.log", st, "fp", 3, 7)
    a.replay = [[10, 1_700_000_000_123, 0], [20, 1_700_000_000_456, 1]]
    a.copies = [[1, 2]]
    a.updated = 1234.5678
    b = r.new_file("u", "/y\u00e9.log", st, "fp2", 64, 0)
    b.id_v2_from = 5
    r.extras["anomaly"] = lambda: {"windows": [1, 2]}
    _, snap = r._snapshot()
    body = snap.partition(b"\n")[2]
    want = orjson.dumps(
        {
            "host_id": r.host_id,
            "files": [dataclasses.asdict(f) for f in r.files.values()],
            "extras": {"anomaly": {"windows": [1, 2]}},
        }
    )
    assert body == want
    r.save()
    r.close()
    r2 = Registry(tmp_path)
    assert r2.files[a.key] == a and r2.files[b.key] == b
    r2.close()


def test_format_3_copies_load_and_format_4_keys_round_trip(tmp_path: Path) -> None:
    """Format 3 recorded copies as [device, inode]; 4 as [device, inode, size, digest]
    (a 64-bit digest: orjson keeps unsigned 64-bit integers exact). Both load as written."""
    r = Registry(tmp_path)
    host_id = r.host_id
    st = os.stat(tmp_path)
    a = r.new_file("t", "/x.log", st, "fp", 3, 0)
    a.copies = [[1, 2, 300, 2**64 - 1]]
    r.save()
    r.close()
    r = Registry(tmp_path)
    assert r.files[a.key].copies == [[1, 2, 300, 2**64 - 1]]
    state = dataclasses.asdict(r.files[a.key])
    r.close()
    state["copies"] = [[1, 2]]
    _write_format_1(tmp_path, host_id, state, version=3)
    r = Registry(tmp_path)
    assert r.files[a.key].copies == [[1, 2]]
    r.close()
