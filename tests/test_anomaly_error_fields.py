"""The error samples found by the compiled scan (``_counting.error_samples``: only the
quoted strings decoded) against the whole document decoded (its twin, the loop in
``watch._error_messages``): the same sample for every document, valid or not, including
what the scan leaves to the whole decode."""

from __future__ import annotations

import random
from array import array
from typing import Any

import orjson
import pytest

import shipper.anomaly.watch as watch_mod
from _fastparse.counters import WindowCounts
from shipper.anomaly.watch import _error_messages

_counting = pytest.importorskip("_fastparse._counting")
if watch_mod._error_samples is None:
    pytest.skip("the compiled scan is not in use (SHIPPER_NO_EXTENSIONS)", allow_module_level=True)

HEAD = b'{"create":{"_index":"x","_id":"abc"}}\n'

DOCS: list[Any] = [
    {"message": "CUDA out of memory\nTraceback (most recent call last):\n  ..."},
    {"message": "x" * 600},
    {"message": "é\u2028ü\U0001f600 and more\nline 2"},
    {"message": 'tab\there \\n not a newline "quoted" /slash\nnext'},
    {"message": "\x01\x1f control"},
    {"message": "ignored", "error": {"type": "ValueError", "message": "bad value\nmore"}},
    {"message": "m", "error": {"type": "Timeout"}},
    {"message": "m", "error": {"type": "", "message": "x"}},
    {"message": "m", "error": {"type": "T", "message": ""}},
    {"message": "m", "error": {"type": 3, "message": "x"}},
    {"message": "m", "error": {"type": "T", "message": 7}},
    {"message": "m", "error": {"type": None}},
    {"message": "m", "error": "ValueError"},
    {"message": "m", "error": ["a", {"type": "b"}]},
    {"message": "m", "error": {}},
    {"error": {"type": "Only", "stack_trace": "a\nb", "class": "other", "x": [1, {"y": [True, False, None]}]}},
    {"message": 42},
    {"message": 4.5e-7},
    {"message": None},
    {"message": True},
    {"message": ["a"]},
    {"message": {"message": "nested"}},
    {"other": 1},
    {},
    {"log": {"message": "not this"}, "message": "this one", "n": -1.25e10, "z": [[], {}]},
    [1, 2],
    "a string",
    3,
]

RAW: list[bytes] = [
    b'{"message":"first","message":"last"}',
    b'{"error":{"type":"A"},"error":{"type":"B","message":"m"}}',
    b'{"error":{"type":"A"},"error":5,"message":"after"}',
    b'{"error":{"type":"A","type":"B"}}',
    b'{ "message" : "spaced\\nout" , "error" : { "type" : "T" , "message" : "e\\nf" } }  \r\n',
    b'{"mess\\u0061ge":"escaped key"}',
    b'{"message":"a\\u000ab\\nc"}',
    b'{"message":"\\u00e9t\\u00e9\\nsecond"}',
    b'{"message":"pair \\ud83d\\ude00 ok\\nx"}',
    b'{"message":"lone \\ud83d end"}',
    b'{"message":"lone low \\ude00 end"}',
    b'{"message":"bad escape \\x"}',
    b'{"message":"bad utf8 \xff"}',
    b'{"message":"ok","other":"bad utf8 \xc3\x28"}',
    b'{"message":"ok","other":"overlong \xe0\x80\xaf"}',
    b'{"message":"ok","other":"surrogate \xed\xa0\x80"}',
    b'{"message":"ok","other":"4 bytes \xf0\x9f\x98\x80 fine"}',
    b'{"message":"ok","other":"too high \xf4\x90\x80\x80"}',
    b'{"message":"raw\nnewline"}',
    b'{"message":"ok","n":01}',
    b'{"message":"ok","n":1.}',
    b'{"message":"ok","n":--1}',
    b'{"message":"ok","n":1e}',
    b'{"message":"ok","t":tru}',
    b'{"message":"ok","t":nul}',
    b'{"message":"ok"',
    b'{"message":"ok"}}',
    b'{"message":"ok"} x',
    b'{"message":"ok",}',
    b'{"message":"ok","a":[1,]}',
    b'{"message" "ok"}',
    b'{message:"ok"}',
    b'{"message":"unterminated}',
    b"",
    b"not json",
    b'{"a":' + b"[" * 100 + b"]" * 100 + b',"message":"deep"}',
    b'{"a":' + b"[" * 63 + b"]" * 63 + b',"message":"less deep"}',
]


def _batch(docs: list[bytes], heads: list[bytes] | None = None) -> tuple[Any, WindowCounts]:
    body = bytearray()
    ends = array("q")
    for i, d in enumerate(docs):
        body += (heads[i] if heads else HEAD) + d + b"\n"
        ends.append(len(body))

    class Batch:
        pass

    batch = Batch()
    batch.body, batch.item_ends = bytes(body), ends.tobytes()  # type: ignore[attr-defined]
    n = len(docs)
    counts = WindowCounts([0] * n, [1] * n, [0] * n, [[0] * 8] * n, [[0, 1]] * n, ("other",), 0)
    counts.starts = list(range(n))  # one window per document: every one sampled
    counts.error_rows, counts.error_items = list(range(n)), list(range(n))
    return batch, counts


def _both(batch: Any, counts: WindowCounts, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = _error_messages(batch, counts, {})
    with monkeypatch.context() as m:
        m.setattr(watch_mod, "_error_samples", None)
        whole = _error_messages(batch, counts, {})
    return fast, whole


def test_same_samples_as_the_whole_document_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [orjson.dumps(d) for d in DOCS] + RAW
    fast, whole = _both(*_batch(docs), monkeypatch)
    assert fast == whole
    assert fast[0] == ["CUDA out of memory"] and fast[5] == ["ValueError: bad value"]


def test_no_newline_and_bytearray_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    batch, counts = _batch([b'{"message":"x"}'], heads=[b""])  # no action line: the whole decode's answer
    fast, whole = _both(batch, counts, monkeypatch)
    assert fast == whole
    batch, counts = _batch([b'{"message":"x\\ny"}'])
    batch.body = bytearray(batch.body)
    assert _both(batch, counts, monkeypatch) == ({0: ["x"]}, {0: ["x"]})


def test_the_scan_takes_the_parsers_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """A document as the parser writes it never needs the whole decode."""
    doc = orjson.dumps({"@timestamp": "t", "message": "a\nb", "error": {"type": "T", "message": "m", "class": "c"}})
    batch, counts = _batch([doc, orjson.dumps({"message": "é\\n\tx\ny", "log": {"level": "ERROR"}})])

    def whole(*_: Any) -> None:
        raise AssertionError("decoded whole")

    monkeypatch.setattr(watch_mod, "_message", whole)
    assert _error_messages(batch, counts, {}) == {0: ["T: m"], 1: ["é\\n\tx"]}


def _mutate(rng: random.Random, b: bytes) -> bytes:
    s = bytearray(b)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randrange(len(s) + 1)
        if op < 0.4 and s:
            s[min(i, len(s) - 1)] = rng.choice(b'{}[]":,\\nu0aZ \x00\xc3\xa9\xff\xed\xf0')
        elif op < 0.7:
            s[i:i] = bytes([rng.choice(b'{}[]":,\\nu0e.-+tfl \n\xc3\xa9')])
        elif s:
            del s[min(i, len(s) - 1)]
    return bytes(s)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    k = rng.random()
    if depth > 3 or k < 0.3:
        return rng.choice(["", "a\nb", "é\\n", 'q"t', "\t", "\u2028", "\U0001f600\nz", "x" * rng.randint(0, 600)])
    if k < 0.45:
        return rng.choice([0, -1, 2.5, 1e300, -3.25e-8, True, False, None])
    if k < 0.7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["message", "error", "type", "log", "x", "class"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_documents_and_mutations(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261208)
    docs: list[bytes] = []
    for _ in range(3000):
        d = _random_value(rng, 1) if rng.random() < 0.1 else {}
        if isinstance(d, dict):
            if rng.random() < 0.8:
                d["message"] = _random_value(rng, 3)
            if rng.random() < 0.5:
                d["error"] = (
                    {"type": _random_value(rng, 4), "message": _random_value(rng, 4)}
                    if rng.random() < 0.8
                    else _random_value(rng, 2)
                )
        raw = orjson.dumps(d)
        docs.append(raw)
        docs.append(_mutate(rng, raw))
    fast, whole = _both(*_batch(docs), monkeypatch)
    assert fast == whole
