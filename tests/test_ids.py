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
from tests.test_fastparse import IMPLS

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


# Every path of blake2b_id.h this CPU runs (portable always; sse41, avx2, avx512 where present).
PATHS = ["portable", "sse41", "avx2", "avx512"]


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


# ---- in groups of 4 or 8 (blake2b_id4.h): the parser's queue of open ids ----

# Key lengths around the one-block code's edges: the offset in one word or across two,
# the short-message case (<= 72) and its edge, the last one-block length (120), two blocks.
KEY_LENGTHS4 = [*range(0, 17), *range(55, 82), *range(110, 136), 200, 255, 256]


@needs_c
def test_queue_every_count_matches_hashlib(b2b_path: str) -> None:
    """The queue as the parser uses it, for 1..17 ids (every tail after groups of four or
    eight) and the key lengths above, on every path: hashlib's ids, in order."""
    assert idcheck is not None
    rng = random.Random("ids4" + b2b_path)
    for n in KEY_LENGTHS4:
        key = rng.randbytes(n)
        for count in range(1, 18):
            offsets = [rng.choice([0, 1, 2**63, 2**64 - 1, rng.getrandbits(64), rng.getrandbits(24)])
                       for _ in range(count)]
            want = [_want_id(key, o) for o in offsets]
            assert idcheck.event_ids(key, offsets, count % 3) == want, (b2b_path, n, count)


@needs_c
def test_queue_agent_keys_consecutive(b2b_path: str) -> None:
    """The agent's 71-byte keys and consecutive offsets (lanes that differ in low bits only),
    plus offsets past 2**56 (the bytes that cross into the next message word)."""
    assert idcheck is not None
    k = _ids.id_key("00112233445566778899aabbccddeeff", "0123456789abcdef", 3)
    offsets = [*range(0, 301), 2**32 - 1, 2**32, 2**56 - 1, 2**56, 2**56 + 5, 2**64 - 2]
    assert idcheck.event_ids(k, offsets) == [_want_id(k, o) for o in offsets]


# Parser-level checks, run in a fresh process per path: the parser module picks its path at
# its first id from $SHIPPER_BLAKE2B (its own choice, apart from _idcheck's).
_PARSER_CHECK = r"""
import base64, hashlib, random, sys
from _fastparse import _cparser
rng = random.Random(4)
def want(key, off):
    d = hashlib.blake2b(key + off.to_bytes(8, "little"), digest_size=16).digest()
    return base64.urlsafe_b64encode(d).rstrip(b"=")
for n in [1, 7, 8, 9, 63, 64, 70, 71, 72, 73, 80, 119, 120, 121, 128, 200]:
    key = rng.randbytes(n)
    p = _cparser.Parser(input_id="t", path="/l", host_name="h", id_prefix="", index_pattern="i",
                        format="plain", multiline="none", id_key=key)
    off = 0
    for count in [*range(1, 18), 4, 1, 3, 2, 8, 7, 400]:
        data = b"".join(b"line %d %s\n" % (i, b"x" * rng.randrange(0, 40)) for i in range(count))
        body = p.feed(data, 1_795_000_000_000).body
        ids = [line.split(b'"_id":"')[1][:22] for line in body.splitlines()[::2]]
        offs = []
        for line in data.splitlines(keepends=True):
            offs.append(off)
            off += len(line)
        assert ids == [want(key, o) for o in offs], (n, count)
sys.stdout.write("ok")
"""


@pytest.mark.skipif(idcheck is None, reason="the compiled parser is not built")
def test_parser_ids_every_count_every_path() -> None:
    """The compiled parser's ids in feeds of 1..17 (and 400) events, every key length class,
    on every path this CPU has: hashlib's ids for each event's offset."""
    assert idcheck is not None
    for path in idcheck.blake2b_impls():
        env = dict(os.environ, SHIPPER_BLAKE2B=path)
        got = subprocess.run([sys.executable, "-c", _PARSER_CHECK], env=env, capture_output=True,
                             text=True, check=False)
        assert got.stdout == "ok", (path, got.stderr[-2000:])


_LINE = st.one_of(
    st.sampled_from([b"2026-11-25 10:00:00,123 - t - INFO - step=1 loss=0.5",
                     b"2026-11-25 10:00:01,000 - t - ERROR - failed", b"Traceback (most recent call last):",
                     b'  File "x.py", line 1, in <module>', b"ValueError: bad", b"", b"plain words \xff"]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_LINE, min_size=1, max_size=24), cuts=st.lists(st.integers(0, 2000), max_size=12),
       fmt=st.sampled_from([("plain", "none"), ("python", "auto")]), keylen=st.sampled_from([1, 71, 73, 121]))
def test_any_chunking_same_body_and_ids(lines: list[bytes], cuts: list[int], fmt: tuple[str, str],
                                        keylen: int) -> None:
    """However the input is cut into feeds (so however the open ids fall into groups of 4 or 8
    and tails), both parsers write the same bodies as one feed does, whose ids are hashlib's."""
    data = b"\n".join(lines) + b"\n"
    key = bytes(range(keylen % 256)) * (keylen // 256) + bytes(range(keylen % 256))
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    for param in IMPLS:
        impl = param.values[0]
        if impl is None:
            continue
        bodies = []
        for feeds in ([data], chunks):
            p = impl.Parser(input_id="t", path="/l", host_name="h", id_prefix="", index_pattern="i",
                            format=fmt[0], multiline=fmt[1], id_key=key)
            bodies.append(b"".join(p.feed(c, 1_795_000_000_000).body for c in feeds)
                          + p.flush(1_795_000_000_000).body)
        assert bodies[0] == bodies[1]
        rows = bodies[0].splitlines()
        for action, doc in zip(rows[::2], rows[1::2], strict=True):
            off = int(doc.split(b'"offset":')[1].split(b",")[0].split(b"}")[0])
            assert action.split(b'"_id":"')[1][:22].decode() == _want_id(key, off)
