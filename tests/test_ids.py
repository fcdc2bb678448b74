"""`_id` contract v2: the C hash (blake2b.h) and the Python twin (_ids.py) agree with each
other and with hashlib for random inputs, and the contract's bytes are pinned (a change
to them would double every replayed event)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import random
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _fastparse import _ids

try:  # built by setup.py with the Cython extension; the twin's tests run without it
    idcheck: Any = importlib.import_module("_fastparse._idcheck")
except ImportError:  # pragma: no cover - a build without the C extension
    idcheck = None

needs_c = pytest.mark.skipif(idcheck is None, reason="the test extension _fastparse._idcheck is not built")

HEX = "0123456789abcdef"


def test_pinned_vector() -> None:
    """The contract's exact value for one input: changing it is a new contract version."""
    key = _ids.id_key("00112233445566778899aabbccddeeff", "0123456789abcdef", 3)
    assert key == (b"shipper-id/2\0" + b"00112233445566778899aabbccddeeff\0" + b"0123456789abcdef\0"
                   + struct.pack("<Q", 3))
    expected = base64.urlsafe_b64encode(
        hashlib.blake2b(key + struct.pack("<Q", 0x1234), digest_size=16).digest()).rstrip(b"=").decode()
    assert _ids.event_id("00112233445566778899aabbccddeeff", "0123456789abcdef", 3, 0x1234) == expected
    if idcheck is not None:
        assert idcheck.event_id(key, 0x1234) == expected
    assert len(expected) == _ids.ID_LEN == 22


@needs_c
def test_c_blake2b_matches_hashlib_any_length() -> None:
    """The general (multi-block) path of the C code, block boundaries included."""
    assert idcheck is not None
    rng = random.Random(5)
    for n in [0, 1, 63, 64, 111, 112, 119, 120, 127, 128, 129, 255, 256, 257, 1000, 4096]:
        data = rng.randbytes(n)
        for size in (1, 16, 32, 64):
            assert idcheck.blake2b(data, size) == hashlib.blake2b(data, digest_size=size).digest(), (n, size)


@settings(max_examples=500, deadline=None)
@given(
    host=st.text(HEX, min_size=1, max_size=64),
    key=st.text(HEX, min_size=1, max_size=64),
    generation=st.integers(0, 2**64 - 1),
    offset=st.integers(0, 2**64 - 1),
)
def test_c_and_twin_agree(host: str, key: str, generation: int, offset: int) -> None:
    """Random ids through the twin, the C code and hashlib: one value. Long host/file keys
    take the C code's multi-block path."""
    k = _ids.id_key(host, key, generation)
    want = base64.urlsafe_b64encode(
        hashlib.blake2b(k + offset.to_bytes(8, "little"), digest_size=16).digest()).rstrip(b"=").decode()
    assert _ids.event_id_from_key(k, offset) == want
    if idcheck is not None:
        assert idcheck.event_id(k, offset) == want


def test_distinct_per_field() -> None:
    """Host, file, generation and offset each change the id."""
    base = ("00112233445566778899aabbccddeeff", "0123456789abcdef", 0, 0)
    ids = {_ids.event_id(*base)}
    ids.add(_ids.event_id("10112233445566778899aabbccddeeff", *base[1:]))
    ids.add(_ids.event_id(base[0], "1123456789abcdef", 0, 0))
    ids.add(_ids.event_id(base[0], base[1], 1, 0))
    ids.add(_ids.event_id(base[0], base[1], 0, 1))
    assert len(ids) == 5
    k = _ids.id_key(base[0], base[1], 0)
    assert _ids.event_ids(k, [0, 1, 97]) == [_ids.event_id_from_key(k, o) for o in (0, 1, 97)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=200), st.lists(st.integers(0, 2**64 - 1), max_size=40))
def test_id_batcher_is_event_id_bytes(key: bytes, offsets: list[int]) -> None:
    """The twin's batched ids (one base64 pass, cut by struct) are the one-by-one ids."""
    assert list(_ids.id_batcher(key)(offsets)) == [_ids.event_id_bytes(key, o) for o in offsets]


def test_key_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        _ids.id_key("ab\0", "cd", 0)
    with pytest.raises(ValueError):
        _ids.id_key("ab", "cd", -1)


# Every path of blake2b_id.h this CPU runs (portable always; sse41, avx2 where present).
PATHS = ["portable", "sse41", "avx2"]


@pytest.fixture(params=PATHS)
def b2b_path(request: pytest.FixtureRequest) -> Any:
    """Forces one path of the C `_id` hash for the test, restoring the default after."""
    if idcheck is None:
        pytest.skip("the test extension _fastparse._idcheck is not built")
    want = request.param
    if want not in idcheck.blake2b_impls():
        pytest.skip(f"this CPU has no {want}")
    assert idcheck.set_blake2b_impl(want) == want
    yield want
    idcheck.set_blake2b_impl(None)


def _want_id(key: bytes, offset: int) -> str:
    digest = hashlib.blake2b(key + offset.to_bytes(8, "little"), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@needs_c
def test_every_path_matches_hashlib(b2b_path: str) -> None:
    """Each path against hashlib over random keys and offsets, every key length of the
    one-block code (0..120, the short-message case <= 72 and its edge) and past it
    (121 and more: two blocks, the generic code)."""
    assert idcheck is not None and idcheck.blake2b_impl() == b2b_path
    rng = random.Random(b2b_path)
    lengths = [*range(0, 136), 71, 72, 73, 119, 120, 121, 128, 200, 255, 256, 1000]
    for n in lengths:
        for _ in range(8):
            key = rng.randbytes(n)
            offset = rng.choice([0, 1, 2**63, 2**64 - 1, rng.getrandbits(64), rng.getrandbits(20)])
            assert idcheck.event_id(key, offset) == _want_id(key, offset), (b2b_path, n, offset)


@needs_c
def test_every_path_agent_keys(b2b_path: str) -> None:
    """The agent's own keys (71 bytes) and consecutive offsets, as the parser makes them."""
    assert idcheck is not None
    k = _ids.id_key("00112233445566778899aabbccddeeff", "0123456789abcdef", 3)
    assert len(k) == 71
    for off in [*range(0, 300), 2**32 - 1, 2**32, 2**56 + 5]:
        assert idcheck.event_id(k, off) == _want_id(k, off) == _ids.event_id_from_key(k, off)


@needs_c
def test_path_env_override() -> None:
    """$SHIPPER_BLAKE2B picks the path at the first id (here in a fresh process)."""
    assert idcheck is not None
    code = ("from _fastparse import _idcheck as c; import sys; "
            "c.event_id(b'k', 1); sys.stdout.write(c.blake2b_impl())")
    for want in idcheck.blake2b_impls():
        env = dict(os.environ, SHIPPER_BLAKE2B=want)
        got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert got.stdout == want
