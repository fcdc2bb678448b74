"""The log-line parser, both implementations (Cython and pure Python) through one fixture.

The expected bytes come from an independent model (``model_events``, built with orjson
and a regex for valid UTF-8), so the tests specify the format, not one implementation.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import random
import re
from array import array
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import _fastparse
from _fastparse import _pyparser
from _fastparse._classes import build_classes

CLASS_KEYWORDS = build_classes().keywords


def _load_cparser() -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module("_fastparse._cparser"), ""
    except ImportError as e:
        return None, str(e)


CPARSER, CPARSER_ERROR = _load_cparser()
PKG_DIR = os.path.dirname(_fastparse.__file__)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


IMPLS = [
    pytest.param(CPARSER, id="cython", marks=pytest.mark.skipif(CPARSER is None, reason="_cparser not built")),
    pytest.param(_pyparser, id="python"),
]


@pytest.fixture(params=IMPLS, scope="session")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """Each test taking ``impl`` runs on both implementations."""
    return request.param  # type: ignore[no-any-return]


needs_both = pytest.mark.skipif(CPARSER is None, reason="_cparser not built")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KW: dict[str, Any] = dict(
    input_id="trainer",
    path='/var/log/train "run".log',
    host_name="gpu-1",
    id_prefix="f00d",
    index_pattern="shipper-logs-trainer-%Y.%m.%d",
)
T0 = 1795591801123  # 2026-11-25T07:30:01.123Z


def make(impl: ModuleType, **kw: Any) -> Any:
    return impl.Parser(**{**KW, **kw})


# -- the model ---------------------------------------------------------------------------

# One valid multi-byte UTF-8 sequence (RFC 3629 table 4); they never overlap.
VALID_MB = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


# Terminal escapes as the package docstring describes them: CSI, OSC (to BEL, ESC \\ or the
# end), ESC + one printable byte, a lone ESC.
ANSI = re.compile(rb"\x1b(?:\[[\x20-\x3f]*[\x40-\x7e]?|\][\s\S]*?(?:\x07|\x1b\\\\|\Z)|[\x20-\x7e]?)")
PROGRESS = re.compile(rb"[\s\S]*\r(?=[\s\S])")  # up to the last \r that is not the last byte


def model_clean(line: bytes, max_line: int) -> bytes:
    """What the format sees of a line: its first max_line+4 bytes when longer than
    max_line, after its last inner \r, escapes removed."""
    if len(line) > max_line:
        line = line[: max_line + 4]
    m = PROGRESS.match(line)
    if m:
        line = line[m.end() :]
    return ANSI.sub(b"", line)


def model_cut(line: bytes, limit: int) -> int:
    for m in VALID_MB.finditer(line):
        if m.start() < limit < m.end():
            return m.start()
    return limit


def model_events(
    data: bytes, max_line: int, flushed: bool, start: int = 0
) -> list[tuple[int, str, list[str], int | None]]:
    """(offset, message, tags, original_length) per event of ``data`` (fed from ``start``)."""
    events = []
    off = start
    parts = data.split(b"\n")
    for i, raw in enumerate(parts):
        complete = i < len(parts) - 1
        if not complete and not (flushed and raw):
            break
        line = raw[:-1] if complete and raw.endswith(b"\r") else raw
        tags = []
        orig = None
        msg = model_clean(line, max_line)
        if msg:
            if len(line) > max_line:
                if len(msg) > max_line:
                    msg = msg[: model_cut(msg, max_line)]
                tags.append("truncated")
                orig = len(line)
            text = msg.decode("utf-8", "replace")
            try:
                msg.decode("utf-8")
            except UnicodeDecodeError:
                tags.append("invalid_utf8")
            if not complete:
                tags.append("incomplete")
            events.append((off, text, tags, orig))
        off += len(raw) + complete
    return events


def model_item(ev: tuple[int, str, list[str], int | None], ms: int = T0, **kw: Any) -> bytes:
    k = {**KW, **kw}
    off, text, tags, orig = ev
    when = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc)
    index = when.strftime(k["index_pattern"])
    ts = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
    log: dict[str, Any] = {"file": {"path": k["path"]}, "offset": off}
    if orig is not None:
        log["original_length"] = orig
    doc: dict[str, Any] = {
        "@timestamp": ts,
        "message": text,
        "log": log,
        "host": {"name": k["host_name"]},
        "event": {"dataset": k["input_id"]},
    }
    if tags:
        doc["tags"] = tags
    action = {"create": {"_index": index, "_id": f"{k['id_prefix']}.{off:x}"}}
    return orjson.dumps(action) + b"\n" + orjson.dumps(doc) + b"\n"


def model_body(data: bytes, max_line: int = 1048576, flushed: bool = False, **kw: Any) -> bytes:
    return b"".join(model_item(e, **kw) for e in model_events(data, max_line, flushed))


def ints(b: bytes) -> list[int]:
    return array("q", b).tolist()


def items(batch: Any) -> list[bytes]:
    ends = ints(batch.item_ends)
    return [batch.body[s:e] for s, e in zip([0, *ends][:-1], ends, strict=True)]


def docs(batch: Any) -> list[dict[str, Any]]:
    lines = batch.body.split(b"\n")
    assert lines[-1] == b""
    return [orjson.loads(d) for d in lines[1:-1:2]]


def check_batch(batch: Any) -> None:
    """The batch's own consistency: arrays, body framing, counters."""
    assert isinstance(batch.body, bytes)
    assert len(batch.item_ends) == len(batch.item_offsets) == 8 * batch.count
    ends = ints(batch.item_ends)
    offs = ints(batch.item_offsets)
    assert ends == sorted(ends) and (not ends or ends[-1] == len(batch.body))
    for item, off in zip(items(batch), offs, strict=True):
        action, doc, rest = item.split(b"\n")
        assert rest == b""
        a, d = orjson.loads(action), orjson.loads(doc)
        assert d["log"]["offset"] == off
        assert a["create"]["_id"].rsplit(".", 1)[1] == f"{off:x}"
        assert batch.start_offset <= off < batch.end_offset
    assert batch.bytes == batch.end_offset - batch.start_offset >= 0


def run(
    impl: ModuleType, chunks: list[bytes], flush: bool = True, ms: int = T0, **kw: Any
) -> tuple[bytes, list[int], list[int], int, Any]:
    """Feed chunks (and flush): (body, absolute item ends, item offsets, lines, parser)."""
    p = make(impl, **kw)
    body = b""
    ends: list[int] = []
    offs: list[int] = []
    lines = 0
    fed = 0
    batches = [p.feed(c, ms) for c in chunks]
    if flush:
        batches.append(p.flush(ms))
    pos = kw.get("start_offset", 0)
    for b in batches:
        check_batch(b)
        assert b.start_offset == pos
        pos = b.end_offset
        ends += [len(body) + e for e in ints(b.item_ends)]
        offs += ints(b.item_offsets)
        body += b.body
        lines += b.lines
    for c in chunks:
        fed += len(c)
    assert p.offset + p.pending == kw.get("start_offset", 0) + fed
    assert p.offset == pos
    return body, ends, offs, lines, p


# -- selection and build ------------------------------------------------------------------


def test_compiled_parser_is_built_and_selected() -> None:
    so_present = any(f.startswith("_cparser.") and f.endswith((".so", ".pyd")) for f in os.listdir(PKG_DIR))
    if CPARSER is None:
        if _env_flag("SHIPPER_REQUIRE_EXTENSIONS"):
            pytest.fail(f"SHIPPER_REQUIRE_EXTENSIONS=1 but _cparser fails to import: {CPARSER_ERROR}")
        if not so_present and _env_flag("SHIPPER_NO_EXTENSIONS"):
            pytest.skip("_cparser not built and SHIPPER_NO_EXTENSIONS is set")
        pytest.fail(f"_cparser is not importable ({CPARSER_ERROR}); build it: python setup.py build_ext --inplace")
    assert CPARSER.__file__ is not None and not CPARSER.__file__.endswith((".py", ".pyx"))
    if _env_flag("SHIPPER_NO_EXTENSIONS"):
        assert _fastparse.IMPLEMENTATION == "python"
        assert _fastparse.Parser is _pyparser.Parser
    else:
        assert _fastparse.IMPLEMENTATION == "cython"
        assert _fastparse.Parser is CPARSER.Parser
    assert CPARSER.Batch is _fastparse.Batch is _pyparser.Batch


def test_exports() -> None:
    assert set(_fastparse.__all__) >= {"Parser", "Batch", "IMPLEMENTATION"}
    assert _fastparse.IMPLEMENTATION in ("cython", "python")


# -- the format ---------------------------------------------------------------------------


def test_event_fields(impl: ModuleType) -> None:
    p = make(impl)
    b = p.feed(b"epoch=3 step=1200 loss=0.4321\n", T0)
    assert b.count == 1 and b.lines == 1
    assert b.body == (
        b'{"create":{"_index":"shipper-logs-trainer-2026.11.25","_id":"f00d.0"}}\n'
        b'{"@timestamp":"2026-11-25T07:30:01.123Z","message":"epoch=3 step=1200 loss=0.4321",'
        b'"log":{"file":{"path":"/var/log/train \\"run\\".log"},"offset":0},'
        b'"host":{"name":"gpu-1"},"event":{"dataset":"trainer"},"metrics":{"epoch":3,"step":1200,"loss":0.4321}}\n'
    )
    assert b.ev_bytes.tolist() == [30] and b.m_value.tolist() == [3.0, 1200.0, 0.4321]
    assert p.metric_names == ("epoch", "step", "loss")
    b = make(impl, metrics="none").feed(b"epoch=3 step=1200 loss=0.4321\n", T0)
    assert b.body == model_body(b"epoch=3 step=1200 loss=0.4321\n")


def test_ids_offsets_and_arrays(impl: ModuleType) -> None:
    data = b"first\nsecond line\n\nthird\r\n"
    p = make(impl, start_offset=4000)
    b = p.feed(data, T0)
    assert (b.count, b.lines, b.start_offset, b.end_offset, b.bytes) == (3, 4, 4000, 4000 + len(data), len(data))
    assert ints(b.item_offsets) == [4000, 4006, 4019]
    ds = docs(b)
    assert [d["message"] for d in ds] == ["first", "second line", "third"]
    assert [d["log"]["offset"] for d in ds] == [4000, 4006, 4019]
    actions = [orjson.loads(a) for a in b.body.split(b"\n")[0:-1:2]]
    assert [a["create"]["_id"] for a in actions] == ["f00d.fa0", "f00d.fa6", "f00d.fb3"]
    its = items(b)
    assert len(its) == 3 and b"".join(its) == b.body
    assert all(it.count(b"\n") == 2 for it in its)
    assert p.offset == 4000 + len(data) and p.pending == 0


def test_timestamp_and_index(impl: ModuleType) -> None:
    p = make(impl, index_pattern="logs-%Y.%m.%d-%H")
    for ms, ts, idx in [
        (0, "1970-01-01T00:00:00.000Z", "logs-1970.01.01-00"),
        (T0, "2026-11-25T07:30:01.123Z", "logs-2026.11.25-07"),
        (1798761599999, "2026-12-31T23:59:59.999Z", "logs-2026.12.31-23"),
        (1798761600000, "2027-01-01T00:00:00.000Z", "logs-2027.01.01-00"),
        (1798761600007, "2027-01-01T00:00:00.007Z", "logs-2027.01.01-00"),
    ]:
        b = p.feed(b"x\n", ms)
        assert docs(b)[0]["@timestamp"] == ts
        assert orjson.loads(b.body.split(b"\n")[0])["create"]["_index"] == idx


def test_json_escaping_of_constant_fields(impl: ModuleType) -> None:
    kw = dict(input_id='in"put\\', path="/tmp/ü\tn\x01\udcff.log", host_name="höst\u2028", id_prefix='p"x')
    b = make(impl, **kw).feed(b"m\n", T0)
    d = docs(b)[0]
    assert d["log"]["file"]["path"] == "/tmp/ü\tn\x01\ufffd.log"
    assert d["host"]["name"] == "höst\u2028"
    assert d["event"]["dataset"] == 'in"put\\'
    assert orjson.loads(b.body.split(b"\n")[0])["create"]["_id"] == 'p"x.0'
    assert b"\\u0001" in b.body


def test_crlf(impl: ModuleType) -> None:
    data = b"a\r\nb\r\r\nc\rd\n\r\n\r\r\n"
    b = make(impl, progress="all").feed(data, T0)
    assert [d["message"] for d in docs(b)] == ["a", "b\r", "c\rd", "\r"]
    assert ints(b.item_offsets) == [0, 3, 7, 13]
    assert b.lines == 5 and b.end_offset == len(data)
    b = make(impl).feed(data, T0)  # progress "last": c\rd keeps d
    assert [d["message"] for d in docs(b)] == ["a", "b\r", "d", "\r"]
    assert b.body == model_body(data)


def test_empty_lines_are_consumed_not_emitted(impl: ModuleType) -> None:
    p = make(impl)
    b = p.feed(b"\n\n\r\n\n", T0)
    assert (b.count, b.body, b.lines, b.end_offset, p.pending) == (0, b"", 4, 5, 0)
    b = p.feed(b"\nx\n", T0)
    assert (b.count, b.lines, ints(b.item_offsets)) == (1, 2, [6])


def expected_escape(c: int) -> bytes:
    short = {0x22: b'\\"', 0x5C: b"\\\\", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x08: b"\\b", 0x0C: b"\\f"}
    if c in short:
        return short[c]
    if c < 0x20:
        return b"\\u%04x" % c
    return bytes([c])


def test_escaping_of_every_ascii_byte(impl: ModuleType) -> None:
    line = bytes(c for c in range(128) if c not in (0x0A, 0x1B))
    b = make(impl, progress="all").feed(line + b"\n", T0)
    expected = b"".join(expected_escape(c) for c in line)
    assert b'"message":"' + expected + b'","log"' in b.body
    assert docs(b)[0]["message"] == line.decode()


@pytest.mark.parametrize("c", range(128))
def test_escaping_each_byte_alone_and_in_runs(impl: ModuleType, c: int) -> None:
    if c in (0x0A, 0x1B):  # a line break; ESC starts an escape sequence, removed
        return
    around = [b"x" * k + bytes([c]) + b"y" * (16 - k) for k in range(17)]  # each 8-byte lane
    for line in [bytes([c]), bytes([c]) * 17, *around]:
        b = make(impl, progress="all").feed(line + b"\n", T0)
        if line.endswith(b"\r"):  # one \r before \n is removed
            line = line[:-1]
        if not line:
            assert b.count == 0
            continue
        assert b'"message":"' + b"".join(expected_escape(x) for x in line) + b'","log"' in b.body


INVALID_CASES = [
    b"\x80",
    b"\xbf",
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xc2",
    b"\xc2\x41",
    b"\xe0\x80\x80",
    b"\xe0\xa0",
    b"\xe0\x9f\x80",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xed\x9f\xbf",
    b"\xef\xbf",
    b"\xf0\x80\x80\x80",
    b"\xf0\x90\x80",
    b"\xf0\x90",
    b"\xf4\x90\x80\x80",
    b"\xf4\x8f\xbf\xbf",
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xfe\xff",
    b"\xe2\x82\xac\xe2\x82",
    b"ok \xe2\x28\xa1 ok",
    b"\xf0\x9f\x98",
    b"\xf0\x9f\x98\x80",
    b"abcdefgh\xffabcdefgh",
    b"\xc3\xa9\xc3",
    b"\xe1\x80\xe1\x80\x80",
]


@pytest.mark.parametrize("raw", INVALID_CASES, ids=lambda r: r.hex())
def test_invalid_utf8_replaced_like_python(impl: ModuleType, raw: bytes) -> None:
    b = make(impl).feed(raw + b"\n", T0)
    d = docs(b)[0]
    assert d["message"] == raw.decode("utf-8", "replace")
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert ("invalid_utf8" in d.get("tags", [])) == (not valid)
    assert b.body == model_body(raw + b"\n")


def test_valid_non_ascii_verbatim(impl: ModuleType) -> None:
    line = "ü € 😀 \u2028 \ufffd 日本語 \x7f".encode()
    b = make(impl).feed(line + b"\n", T0)
    assert b'"message":"' + line + b'"' in b.body
    assert "tags" not in docs(b)[0]


@pytest.mark.parametrize(
    ("line", "limit", "msg", "truncated"),
    [
        (b"0123456789", 10, b"0123456789", False),
        (b"0123456789a", 10, b"0123456789", True),
        (b"0123456789\r", 10, b"0123456789", False),  # \r before \n does not count
        (b"0123456789\r\r", 10, b"0123456789", True),
        (b"aaaaaaaa\xe2\x82\xac", 10, b"aaaaaaaa", True),  # cut inside the euro sign: back off
        (b"aaaaaaaa\xe2\x82\xac", 9, b"aaaaaaaa", True),
        (b"aaaaaaaa\xe2\x82\xac", 11, b"aaaaaaaa\xe2\x82\xac", False),
        (b"aaaaaaa\xe2\x82\xacb", 10, b"aaaaaaa\xe2\x82\xac", True),  # cut right after it
        (b"aaaaaa\xf0\x9f\x98\x80", 9, b"aaaaaa", True),
        (b"aaaaaa\xf0\x9f\x98\x80", 7, b"aaaaaa", True),
        (b"aaaaaa\xf0\x9f\x98\x80x", 10, b"aaaaaa\xf0\x9f\x98\x80", True),
        (b"aa\xc3\xa9", 3, b"aa", True),
        (b"\xc3\xa9", 1, b"", True),  # backs off to nothing
        (b"\xf0\x9f\x98\x80", 1, b"", True),
        (b"\xf0\x9f\x98\x80", 3, b"", True),
        (b"aaaaaaaa\xe2\x82X", 9, b"aaaaaaaa\xe2", True),  # not a valid sequence: no back-off
        (b"aaaaaaaa\xed\xa0\x80", 9, b"aaaaaaaa\xed", True),  # surrogate: not valid either
        (b"aaaaaaaa\x80\x80\x80\x80", 10, b"aaaaaaaa\x80\x80", True),
        (b"a\xe2\x82\xacb", 2, b"a", True),
    ],
)
def test_truncation(impl: ModuleType, line: bytes, limit: int, msg: bytes, truncated: bool) -> None:
    for data in (line + b"\n", line + b"\ntail"):
        b = make(impl, max_line_bytes=limit).feed(data, T0)
        d = docs(b)[0]
        assert d["message"] == msg.decode("utf-8", "replace")
        tags = d.get("tags", [])
        assert ("truncated" in tags) == truncated
        if truncated:
            full = len(line) - (1 if line.endswith(b"\r") else 0)
            assert d["log"]["original_length"] == full
            assert tags[0] == "truncated"
        else:
            assert "original_length" not in d["log"]
        assert b.end_offset == len(line) + 1
        assert b.body == model_body(line + b"\n", limit)


@pytest.mark.parametrize("char", ["é", "€", "😀", "\udc80"], ids=["2", "3", "4", "bad"])
def test_cut_near_multibyte_in_any_feed_pattern(impl: ModuleType, char: str) -> None:
    mb = char.encode("utf-8", "surrogateescape")
    for limit in range(1, 10):
        for k in range(limit + 2):
            for tail in (b"", b"b", b"bbbbbbbb"):
                line = b"a" * k + mb + tail
                data = line + b"\n"
                expected = model_body(data, limit)
                assert run(impl, [data], max_line_bytes=limit)[0] == expected
                bytewise = [data[i : i + 1] for i in range(len(data))]
                assert run(impl, bytewise, max_line_bytes=limit)[0] == expected
                flushed = run(impl, bytewise[:-1], max_line_bytes=limit)[0]
                assert flushed == model_body(line, limit, flushed=True)


def test_tag_order(impl: ModuleType) -> None:
    p = make(impl, max_line_bytes=4)
    b = p.feed(b"\xff\xff\xff\xff\xff\xff", T0)
    assert b.count == 0 and p.pending == 6
    f = p.flush(T0)
    d = docs(f)[0]
    assert d["tags"] == ["truncated", "invalid_utf8", "incomplete"]
    assert d["log"]["original_length"] == 6
    assert d["message"] == "\ufffd" * 4


def test_partial_line_across_feeds(impl: ModuleType) -> None:
    p = make(impl)
    b1 = p.feed(b"one\ntw", T0)
    assert (b1.count, b1.lines, b1.end_offset, p.offset, p.pending) == (1, 1, 4, 4, 2)
    b2 = p.feed(b"o-", T0)
    assert (b2.count, b2.lines, b2.start_offset, b2.end_offset, b2.bytes) == (0, 0, 4, 4, 0)
    assert p.pending == 4
    b3 = p.feed(b"more\r", T0)
    assert b3.count == 0 and p.pending == 9
    b4 = p.feed(b"\nthree\n", T0)
    assert [d["message"] for d in docs(b4)] == ["two-more", "three"]
    assert ints(b4.item_offsets) == [4, 14]
    assert (b4.start_offset, b4.end_offset, b4.lines, b4.bytes) == (4, 20, 2, 16)
    assert p.pending == 0


def test_partial_cr_then_newline(impl: ModuleType) -> None:
    p = make(impl)
    assert p.feed(b"abc\r", T0).count == 0
    b = p.feed(b"\n", T0)
    assert docs(b)[0]["message"] == "abc" and b.end_offset == 5
    assert p.feed(b"\r", T0).count == 0
    b = p.feed(b"\n", T0)
    assert (b.count, b.lines, b.end_offset) == (0, 1, 7)


def test_flush(impl: ModuleType) -> None:
    p = make(impl, start_offset=10)
    e = p.flush(T0)
    assert (e.count, e.body, e.lines, e.start_offset, e.end_offset, e.item_ends) == (0, b"", 0, 10, 10, b"")
    p.feed(b"done\nhalf a li", T0)
    assert (p.offset, p.pending) == (15, 9)
    f = p.flush(T0 + 5)
    d = docs(f)[0]
    assert d["message"] == "half a li" and d["tags"] == ["incomplete"]
    assert d["@timestamp"] == "2026-11-25T07:30:01.128Z"
    assert (f.count, f.lines, f.start_offset, f.end_offset, f.bytes) == (1, 1, 15, 24, 9)
    assert ints(f.item_offsets) == [15] and ints(f.item_ends) == [len(f.body)]
    assert (p.offset, p.pending) == (24, 0)
    assert p.flush(T0).count == 0
    b = p.feed(b"ne\n", T0)  # later bytes start a new line
    assert docs(b)[0]["message"] == "ne" and ints(b.item_offsets) == [24]


def test_flush_keeps_trailing_cr(impl: ModuleType) -> None:
    p = make(impl)
    p.feed(b"x\r", T0)
    assert docs(p.flush(T0))[0]["message"] == "x\r"


def test_flush_overlong_partial(impl: ModuleType) -> None:
    p = make(impl, max_line_bytes=8)
    for _ in range(5):
        p.feed(b"0123456789", T0)
    assert (p.offset, p.pending) == (0, 50)
    f = p.flush(T0)
    d = docs(f)[0]
    assert d["message"] == "01234567"
    assert d["tags"] == ["truncated", "incomplete"]
    assert d["log"]["original_length"] == 50
    assert (f.end_offset, p.pending) == (50, 0)


def test_overlong_line_in_pieces(impl: ModuleType) -> None:
    p = make(impl, max_line_bytes=10)
    p.feed(b"ok\n0123456", T0)
    p.feed(b"789\xe2\x82", T0)
    p.feed(b"\xac" + b"x" * 100, T0)
    assert p.pending == 7 + 5 + 101
    b = p.feed(b"yy\r\nnext\n", T0)
    ds = docs(b)
    assert ds[0]["message"] == "0123456789" and ds[0]["log"]["original_length"] == 115
    assert ds[1]["message"] == "next" and ints(b.item_offsets) == [3, 120]
    p2 = make(impl, max_line_bytes=11)
    p2.feed(b"0123456789\xe2", T0)
    p2.feed(b"\x82\xac" + b"z" * 50, T0)
    assert docs(p2.feed(b"\n", T0))[0]["message"] == "0123456789"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_huge_line_memory_is_bounded(impl: ModuleType) -> None:
    chunk = b"\xe2\x82\xac" * (65536 // 3) + b"a"  # 64 KiB, no newline
    assert len(chunk) == 65536
    p = make(impl)  # max_line_bytes 1 MiB
    n = 4096 if impl is CPARSER else 1024  # 256 MiB / 64 MiB
    before = _rss()
    for _ in range(n):
        b = p.feed(chunk, T0)
        assert b.count == 0
    assert _rss() - before < 24 << 20
    assert (p.offset, p.pending) == (0, n * 65536)
    b = p.feed(b"\n", T0)
    d = docs(b)[0]
    assert d["tags"] == ["truncated"] and d["log"]["original_length"] == n * 65536
    head = chunk * 17
    assert d["message"].encode() == head[: model_cut(head, 1 << 20)]
    assert len(make(impl).feed(b"\xe2\x82\xac" * 400000 + b"\n", T0).body) < (1 << 20) + 400
    assert b.end_offset == n * 65536 + 1
    assert p.feed(b"after", T0).count == 0  # holding works again after the big line
    b = p.feed(b" it\n", T0)
    assert docs(b)[0]["message"] == "after it" and ints(b.item_offsets) == [n * 65536 + 1]


def test_input_types(impl: ModuleType) -> None:
    data = b"alpha\nbeta\ngam"
    base = make(impl).feed(data, T0).body
    for conv in (bytearray, memoryview, lambda d: memoryview(bytearray(d))):
        p = make(impl)
        assert p.feed(conv(data), T0).body == base
        assert p.pending == 3
    strided = memoryview(b"".join(bytes([c, 0x21]) for c in data))[::2]
    assert make(impl).feed(strided, T0).body == base
    with pytest.raises(TypeError):
        make(impl).feed("text\n", T0)
    with pytest.raises(TypeError):
        make(impl).feed(12, T0)


def test_bad_arguments(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        make(impl, max_line_bytes=0)
    with pytest.raises(ValueError):
        make(impl, start_offset=-1)
    with pytest.raises(TypeError):
        make(impl, path=None)
    with pytest.raises(TypeError):
        impl.Parser(input_id="x")


def test_read_only_counters(impl: ModuleType) -> None:
    p = make(impl)
    with pytest.raises(AttributeError):
        p.offset = 5
    with pytest.raises(AttributeError):
        p.pending = 5


def test_realistic_body_is_valid_ndjson(impl: ModuleType) -> None:
    lines = [
        f"2026-11-25 07:30:{i % 60:02d},{i % 1000:03d} - trainer - INFO - epoch=3 step={i} "
        f"loss=0.{i:04d} acc=0.91 lr=3e-4"
        for i in range(2000)
    ]
    lines[7] = 'Traceback (most recent call last):\n  File "train.py", line 3\n\tValueError: bad'
    data = ("\n".join(lines) + "\n").encode()
    body, ends, offs, nlines, p = run(impl, [data[i : i + 4096] for i in range(0, len(data), 4096)],
                                      metrics="none")
    assert body == model_body(data)
    assert ends[-1] == len(body) and offs == [e[0] for e in model_events(data, 1 << 20, False)]
    parsed = [orjson.loads(x) for x in body.splitlines()]
    assert len(parsed) == 2 * (2000 + 2)
    assert nlines == 2002 and p.offset == len(data)


def test_many_lines_grow_buffers(impl: ModuleType) -> None:
    data = b"".join(b'line %d with "quotes" and \xc3\xa9\n' % i for i in range(30000))
    b = make(impl).feed(data, T0)
    assert b.count == 30000 and b.body == model_body(data)
    b2 = make(impl).feed(data, T0)  # same again: buffers reused
    assert b2.body == b.body


# -- properties ---------------------------------------------------------------------------

LEADS = [0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
CONTS = [0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF]
BYTE_PIECES = st.one_of(
    st.sampled_from(
        [
            b"\n",
            b"\r\n",
            b"\r",
            b"\n\n",
            b"\\",
            b'"',
            b"\t",
            b"\x00",
            b"\x7f",
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98\x80",
            b"\xc3\xa9",
            b"\xed\xa0\x80",
            b"\xc0\x80",
            b"\xe0\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\xe2\x82",
            b"\xf0\x9f",
            b"\x80",
            b"\xff",
            b"\xc2",
            b"\xef\xbf\xbd",
        ]
    ),
    st.text(max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=12),
    st.just(b"plain ascii text run "),
    # a lead byte (or not) and up to 3 continuation bytes: every range boundary of UTF-8
    st.tuples(
        st.sampled_from(LEADS) | st.integers(0x80, 0xFF),
        st.lists(st.sampled_from(CONTS) | st.integers(0x80, 0xBF), max_size=3),
    ).map(lambda t: bytes([t[0], *t[1]])),
)
DATA = st.lists(BYTE_PIECES, max_size=40).map(b"".join)
MAX_LINE = st.one_of(st.integers(1, 40), st.just(1048576))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = []
    prev = 0
    for c in points:
        chunks.append(data[prev:c])
        prev = c
    chunks.append(data[prev:])
    return chunks


@SETTINGS
@given(data=DATA, max_line=MAX_LINE, cuts=st.lists(st.integers(0, 600), max_size=8))
@example(data=b"OOM-KILL", max_line=1048576, cuts=[3])
def test_chunking_does_not_matter(impl: ModuleType, data: bytes, max_line: int, cuts: list[int]) -> None:
    whole = run(impl, [data], max_line_bytes=max_line)
    pieces = run(impl, split_at(data, cuts), max_line_bytes=max_line)
    assert whole[:4] == pieces[:4]
    if not any(k in ANSI.sub(b"", data).lower() for k, _ in CLASS_KEYWORDS):
        # the model knows lines, not error classes (b"OOM-KILL" is an error event)
        assert whole[0] == model_body(data, max_line, flushed=True)
    bytewise = run(impl, [data[i : i + 1] for i in range(len(data))], max_line_bytes=max_line)
    assert bytewise[:4] == whole[:4]


@SETTINGS
@given(data=DATA, max_line=MAX_LINE)
def test_matches_model(impl: ModuleType, data: bytes, max_line: int) -> None:
    # the model knows lines, not error classes or metrics (tests of their own)
    seen = ANSI.sub(b"", data).lower()
    assume(not any(k in seen for k, _ in CLASS_KEYWORDS))
    body, ends, offs, lines, p = run(impl, [data], flush=False, max_line_bytes=max_line, start_offset=77,
                                     metrics="none")
    assert len(ends) == len(offs)
    evs = model_events(data, max_line, flushed=False, start=77)
    assert body == b"".join(model_item(e) for e in evs)
    assert offs == [e[0] for e in evs]
    assert lines == data.count(b"\n")
    assert p.pending == len(data) - (data.rfind(b"\n") + 1)


@needs_both
@SETTINGS
@given(data=DATA, max_line=MAX_LINE, cuts=st.lists(st.integers(0, 600), max_size=6), flush=st.booleans())
def test_cython_equals_python(data: bytes, max_line: int, cuts: list[int], flush: bool) -> None:
    chunks = split_at(data, cuts)
    ps = [make(m, max_line_bytes=max_line, start_offset=5) for m in (CPARSER, _pyparser)]
    for i, c in enumerate(chunks):
        bc, bp = (p.feed(c, T0 + i * 1000) for p in ps)
        assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}
        assert (ps[0].offset, ps[0].pending) == (ps[1].offset, ps[1].pending)
    if flush:
        bc, bp = (p.flush(T0) for p in ps)
        assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}


@needs_both
@SETTINGS
@given(data=st.binary(max_size=300), max_line=MAX_LINE)
def test_cython_equals_python_random_bytes(data: bytes, max_line: int) -> None:
    out = []
    for m in (CPARSER, _pyparser):
        p = make(m, max_line_bytes=max_line)
        b = p.feed(data, T0)
        f = p.flush(T0)
        out.append((b.body, b.item_ends, b.item_offsets, b.lines, f.body, p.offset))
    assert out[0] == out[1]


@needs_both
def test_cython_equals_python_same_second_other_milliseconds() -> None:
    """The compiled parser reuses the last second's time when a line's first 20 bytes are its
    text: the milliseconds after it, digits or not, and another read time read as the twin
    reads them."""
    lines = []
    for ms in ("006", "007", "0x7", "12a", "999", "000", " 12", "5555", "1", "0077"):
        for sep in (",", "."):
            lines.append(f"2026-11-25 07:30:01{sep}{ms} - trainer - INFO - step=1 loss=0.5".encode())
    data = b"\n".join(lines) + b"\n"
    for fmt in ("python", "plain"):
        out = []
        for m in (CPARSER, _pyparser):
            p = make(m, format=fmt, timezone="UTC")
            bs = [p.feed(data, T0), p.feed(data, T0 + 86_400_000), p.flush(T0)]
            out.append([(b.body, b.item_ends, b.ev_time.tolist()) for b in bs])
        assert out[0] == out[1], fmt


@needs_both
def test_cython_equals_python_noise_at_every_offset() -> None:
    """The compiled line split classifies a feed's bytes 64 at a time (line ends, CRs and
    ESCs: a line with neither skips the cleaning): a CR, a CRLF or an escape sequence at
    every offset of a line, with lines before it of every length, 64-byte blocks and
    feed ends cutting them anywhere, reads as the twin reads it."""
    rng = random.Random(5)
    for noise in (b"\r", b"\r\n", b"\x1b[1m", b"\x1b]0;t\x07", b"\x1b"):
        for at in range(0, 140, 3):
            line = (b"loss=0.5 step=7 " * 9)[:140]
            data = b"a\n" * (at % 7) + b"x" * (at % 61) + b"\n" + line[:at] + noise + line[at:] + b"\nend"
            cuts = sorted(rng.sample(range(1, len(data)), 3))
            for ml in ("none", "auto"):
                for progress in ("last", "all", "drop"):
                    out = []
                    for m in (CPARSER, _pyparser):
                        p = make(m, multiline=ml, progress=progress, max_line_bytes=100)
                        bs = [p.feed(c, T0) for c in split_at(data, cuts)] + [p.flush(T0)]
                        out.append([(b.body, b.item_ends, b.item_offsets, b.lines) for b in bs])
                    assert out[0] == out[1], (noise, at, ml, progress)


@SETTINGS
@given(line=st.binary(max_size=64).filter(lambda b: b"\n" not in b), max_line=MAX_LINE)
def test_message_decoding_property(impl: ModuleType, line: bytes, max_line: int) -> None:
    b = make(impl, max_line_bytes=max_line, progress="all").feed(line + b"\n", T0)
    stripped = line[:-1] if line.endswith(b"\r") else line
    assume(stripped and 0x1B not in stripped)
    d = docs(b)[0]
    kept = stripped
    if len(stripped) > max_line:
        assert "truncated" in d["tags"]
        kept = stripped[: model_cut(stripped, max_line)]
        assert max_line - 3 <= len(kept) <= max_line
    assert d["message"] == kept.decode("utf-8", "replace")
    try:
        kept.decode("utf-8")
        assert "invalid_utf8" not in d.get("tags", [])
    except UnicodeDecodeError:
        assert "invalid_utf8" in d["tags"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    seed=st.binary(min_size=1, max_size=200),
    ops=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=10),
    sizes=st.lists(st.integers(1, 64), min_size=1, max_size=10),
    max_line=MAX_LINE,
)
def test_fuzz_never_crashes(
    impl: ModuleType, seed: bytes, ops: list[tuple[int, int]], sizes: list[int], max_line: int
) -> None:
    buf = bytearray(seed * 3)
    for pos, val in ops:
        buf[pos % len(buf)] = val
    data = bytes(buf)
    p = make(impl, max_line_bytes=max_line)
    fed = pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        b = p.feed(data[pos : pos + n], T0)
        pos += n
        i += 1
        fed = min(pos, len(data))
        assert b.end_offset + p.pending == fed
        assert p.offset == b.end_offset
    f = p.flush(T0)
    assert f.end_offset == p.offset == len(data) and p.pending == 0


# -- one thread at a time -----------------------------------------------------------------


class _ReentrantTime(int):
    """A read time whose first comparison (the heads' cache in ``EventTime.get``, run while
    the parser prepares a feed) calls ``hook``: a second feed entered mid-way."""

    hook: Any = None

    def __eq__(self, other: object) -> bool:
        hook, type(self).hook = type(self).hook, None
        if hook is not None:
            hook()
        return int(self) == other

    __hash__ = int.__hash__


@needs_both
@pytest.mark.parametrize("call", ["feed", "feed-multiline", "flush", "flush-multiline"])
def test_second_call_refused_before_it_changes_anything(call: str) -> None:
    """The compiled parser reads its heads and read time without the GIL: a second
    thread's call must be refused before it prepares them (it used to check only after
    ``_prepare`` had replaced them under the running feed)."""
    assert CPARSER is not None
    ml = "auto" if call.endswith("multiline") else "none"
    data = b"2026-11-25 07:30:01,000 - a - INFO - one\nsecond line\n"
    tail = b"" if call.startswith("feed") else b"partial"
    p = make(CPARSER, format="python", multiline=ml)
    ref = make(CPARSER, format="python", multiline=ml)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            p.feed(b"2026-11-25 07:30:02,000 - b - ERROR - intruder\n", T0 + 5000)
        except RuntimeError as e:
            errors.append(e)

    p.feed(tail if call.startswith("flush") else b"", T0)
    ref.feed(tail if call.startswith("flush") else b"", T0)
    _ReentrantTime.hook = second
    t = _ReentrantTime(T0 + 1000)
    got = p.feed(data, t) if call.startswith("feed") else p.flush(t)
    want = ref.feed(data, T0 + 1000) if call.startswith("feed") else ref.flush(T0 + 1000)
    assert [str(e) for e in errors] == ["Parser used by two threads at once"]
    for name in ("body", "count", "start_offset", "end_offset", "ev_time"):
        assert getattr(got, name) == getattr(want, name), name
    assert p.offset == ref.offset
    assert p.flush(T0).body == ref.flush(T0).body
