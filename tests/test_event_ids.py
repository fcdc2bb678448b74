"""`_id` contract v2 through the parsers: every event's `_id` is the reference hash of the
generation key and its start offset, in both twins, in every path that writes an action
line (plain fast path, program formats, multiline groups, json through the twin, flush)."""

from __future__ import annotations

import orjson
import pytest

from _fastparse import _ids
from tests.test_fastparse import IMPLS

KEY = _ids.id_key("0f" * 16, "0123456789abcdef", 7)

CASES = {
    "plain": ("plain", "none", b"one\ntwo\r\n\nthree \xff\n" + b"x" * 300 + b"\npartial"),
    "python": ("python", "auto", b"2026-11-25 10:00:00,123 - t - INFO - step=1 loss=0.5\n"
               b"2026-11-25 10:00:01,000 - t - ERROR - failed\nTraceback (most recent call last):\n"
               b'  File "x.py", line 1, in <module>\nValueError: bad\n'
               b"2026-11-25 10:00:02,000 - t - INFO - done\n"),
    "json": ("json", "none", b'{"message":"a","level":"info"}\nnot json\n{"msg":"b"}\n'),
}


def _events(impl: object, fmt: str, ml: str, data: bytes, id_key: bytes | None) -> list[tuple[str, int]]:
    p = impl.Parser(input_id="t", path="/l", host_name="h", id_prefix="" if id_key else "pre",  # type: ignore[attr-defined]
                    index_pattern="i", format=fmt, multiline=ml, max_line_bytes=200, id_key=id_key)
    out: list[tuple[str, int]] = []
    for b in (p.feed(data, 1_795_000_000_000), p.flush(1_795_000_000_000)):
        lines = b.body.splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            out.append((orjson.loads(action)["create"]["_id"], orjson.loads(doc)["log"]["offset"]))
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_v2_ids_are_the_reference_hash_of_key_and_offset(impl: object, case: str) -> None:
    fmt, ml, data = CASES[case]
    events = _events(impl, fmt, ml, data, KEY)
    assert len(events) >= 3
    for _id, off in events:
        assert _id == _ids.event_id_from_key(KEY, off)
        assert len(_id) == _ids.ID_LEN


@pytest.mark.parametrize("impl", IMPLS)
def test_v1_ids_unchanged(impl: object) -> None:
    fmt, ml, data = CASES["plain"]
    for _id, off in _events(impl, fmt, ml, data, None):
        assert _id == f"pre.{off:x}"


def test_twins_write_the_same_v2_bodies() -> None:
    impls = [i.values[0] for i in IMPLS]
    if len(impls) < 2 or impls[0] is None:
        pytest.skip("the compiled parser is not built")
    for fmt, ml, data in CASES.values():
        bodies = []
        for impl in impls:
            p = impl.Parser(input_id="t", path="/l", host_name="h", id_prefix="", index_pattern="i",
                            format=fmt, multiline=ml, id_key=KEY)
            bodies.append(p.feed(data, 1_795_000_000_000).body + p.flush(1_795_000_000_000).body)
        assert bodies[0] == bodies[1]


@pytest.mark.parametrize("impl", IMPLS)
def test_id_key_must_be_bytes(impl: object) -> None:
    with pytest.raises(TypeError, match="id_key"):
        impl.Parser(input_id="t", path="/l", host_name="h", id_prefix="", index_pattern="i",  # type: ignore[attr-defined]
                    id_key="not bytes")
