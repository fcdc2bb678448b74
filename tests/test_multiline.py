"""Multiline grouping (``multiline=``), both implementations; real CPython tracebacks."""

from __future__ import annotations

import builtins
import time
import traceback
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from _fastparse import _pyparser
from tests.test_fastparse import CPARSER, DATA, SETTINGS, T0, docs, impl, ints, make, needs_both, run, split_at

__all__ = ["impl"]


class OutOfMemoryError(RuntimeError):
    pass


OutOfMemoryError.__module__ = "torch.cuda"
# Python 3.11+ (the project's ruff target is 3.10)
ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)


def _tb(fn: Any) -> str:
    try:
        fn()
    except BaseException:
        return traceback.format_exc()
    raise AssertionError("no exception")


def _oom() -> None:
    def step(x: dict[str, Any]) -> Any:
        return x["model"]["forward"](x["batch"] * 2)

    def forward(_: Any) -> None:
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total)")

    step({"model": {"forward": forward}, "batch": 3})


def _caret() -> None:
    d: dict[str, Any] = {"a": {}}
    print(d["a"]["b"] + 1)


def _chained_cause() -> None:
    try:
        _caret()
    except KeyError as e:
        raise ValueError("bad config") from e


def _chained_context() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        {}["missing"]


def _group() -> None:
    try:
        _caret()
    except KeyError:
        raise ExceptionGroup("loaders failed", [ValueError("shard 1"), TypeError("shard 2")]) from None


def _group_in_chain() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        raise ExceptionGroup("eg", [ValueError(1), ExceptionGroup("inner", [OSError("disk")])])  # noqa: B904


TRACES = {
    "oom": (
        _oom,
        "torch.cuda.OutOfMemoryError",
        "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total)",
    ),
    "caret": (_caret, "KeyError", "'b'"),
    "cause": (_chained_cause, "ValueError", "bad config"),
    "context": (_chained_context, "KeyError", "'missing'"),
    "group": (_group, "ExceptionGroup", "loaders failed (2 sub-exceptions)"),
    "group_in_chain": (_group_in_chain, "ExceptionGroup", "eg (2 sub-exceptions)"),
}

LOG1 = b"2026-11-25 07:30:01,123 - trainer - ERROR - step failed"
LOG2 = b"2026-11-25 07:30:02,000 - trainer - INFO - resuming"


def ml(impl: ModuleType, **kw: Any) -> Any:
    return make(impl, **{"multiline": "auto", **kw})


def collect(impl: ModuleType, chunks: list[bytes], flush: bool = True, **kw: Any) -> list[dict[str, Any]]:
    body = run(impl, chunks, flush=flush, **{"multiline": "auto", **kw})[0]
    return [orjson.loads(d) for d in body.split(b"\n")[1:-1:2]]


@pytest.mark.parametrize("name", list(TRACES))
def test_real_tracebacks_one_event(impl: ModuleType, name: str) -> None:
    fn, typ, msg = TRACES[name]
    if name.startswith("group") and ExceptionGroup is None:
        pytest.skip("Python < 3.11")
    text = _tb(fn)
    if name == "caret":
        assert "^^^" in text or "~~~" in text
    if name.startswith("group"):
        assert "  + Exception Group Traceback" in text and "  | " in text
    if name in ("cause", "context"):
        assert "above exception" in text
    tb = text.rstrip("\n").encode()
    data = LOG1 + b"\n" + tb + b"\n" + LOG2 + b"\n"
    for chunks in ([data], split_at(data, list(range(0, len(data), 7)))):
        ds = collect(impl, chunks, format="python", timezone="UTC")
        assert len(ds) == 2
        d = ds[0]
        assert d["message"] == "step failed\n" + tb.decode()
        assert d["log"]["offset"] == 0 and d["log"]["level"] == "ERROR"
        assert d["@timestamp"] == "2026-11-25T07:30:01.123Z"
        cls = "accelerator_oom" if name == "oom" else "other"
        assert d["error"] == {"type": typ, "message": msg, "stack_trace": tb.decode(), "class": cls}
        assert "tags" not in d
        assert ds[1]["message"] == "resuming" and ds[1]["log"]["offset"] == len(LOG1) + len(tb) + 2
        assert "error" not in ds[1]


def test_plain_crlf_and_item_ranges(impl: ModuleType) -> None:
    tb = _tb(_chained_cause).rstrip("\n").encode()
    data = b"first\r\n" + b"ctx line\r\n" + tb.replace(b"\n", b"\r\n") + b"\r\nnext\r\n"
    p = ml(impl)
    b = p.feed(data, T0)
    # "first" emitted; the traceback group emitted once "next" arrived; "next" held
    assert b.count == 2 and ints(b.item_offsets) == [0, 7]
    assert b.end_offset == p.offset == len(data) - 6 and p.pending == 6
    d = docs(b)
    assert d[0]["message"] == "first"
    assert d[1]["message"] == "ctx line\n" + tb.decode() and "\r" not in d[1]["message"]
    assert d[1]["error"]["type"] == "ValueError"
    f = p.flush(T0)
    assert docs(f)[0]["message"] == "next" and "tags" not in docs(f)[0]
    assert (f.start_offset, f.end_offset, f.lines) == (len(data) - 6, len(data), 1)


def test_traceback_at_file_start_and_without_context_line(impl: ModuleType) -> None:
    tb = _tb(_caret).rstrip("\n").encode()
    ds = collect(impl, [tb + b"\n" + tb + b"\nafter\n"])
    assert [d["message"] for d in ds] == [tb.decode(), tb.decode(), "after"]
    assert ds[0]["error"]["stack_trace"] == tb.decode()


def test_java(impl: ModuleType) -> None:
    java = (
        b'2026-11-25 07:30:01 ERROR Exception in thread "main" java.lang.IllegalStateException: boom\n'
        b"\tat com.example.Trainer.step(Trainer.java:42)\n"
        b"\tat com.example.Main.main(Main.java:7)\n"
        b"Caused by: java.io.IOException: disk gone\n"
        b"\tat java.base/java.io.FileInputStream.open(Native Method)\n"
        b"\t... 2 more\n"
    )
    ds = collect(impl, [java + b"next line\n"])
    assert len(ds) == 2
    assert ds[0]["message"] == java[:-1].decode()
    assert ds[0]["error"] == {
        "type": "java.lang.IllegalStateException",
        "message": "boom",
        "stack_trace": java[:-1].decode(),
        "class": "other",
    }
    assert ds[1]["message"] == "next line"


def test_syntax_error_and_column_zero_message_lines(impl: ModuleType) -> None:
    tb = _tb(lambda: compile("x = (\n", "cfg.py", "exec")).rstrip("\n").encode()
    assert b"    ^" in tb and tb.splitlines()[-1].startswith(b"SyntaxError: ")
    ds = collect(impl, [LOG1 + b"\n" + tb + b"\n" + LOG2 + b"\n"])
    assert len(ds) == 2 and ds[0]["error"]["type"] == "SyntaxError"
    # a message going on at column 0 after the exception line is not part of the event
    tb = _tb(lambda: (_ for _ in ()).throw(ValueError("line one\nline two"))).rstrip("\n").encode()
    ds = collect(impl, [LOG1 + b"\n" + tb + b"\n"])
    assert [d["message"].split("\n")[-1] for d in ds] == ["ValueError: line one", "line two"]
    assert ds[0]["error"]["message"] == "line one"


def test_java_suppressed_and_message_on_its_own_line(impl: ModuleType) -> None:
    java = (
        b"java.lang.RuntimeException: outer\n\tat A.b(A.java:1)\n\tSuppressed: java.io.IOException: s\n"
        b"\t\tat C.d(C.java:2)\n\t... 1 more\nCaused by: x.Y\n\t... 2 more\n"
    )
    ds = collect(impl, [b"ERROR boom\n" + java])
    # the log line and the exception line are two events: only a line followed by a frame groups
    assert [d["message"] for d in ds] == ["ERROR boom", java[:-1].decode()]
    assert ds[1]["error"]["type"] == "java.lang.RuntimeException" and ds[1]["error"]["message"] == "outer"


def test_indented_lines_alone_are_not_grouped(impl: ModuleType) -> None:
    ds = collect(impl, [b"a\n  b\n\tc\nValueError: x\n"])
    assert [d["message"] for d in ds] == ["a", "  b", "\tc", "ValueError: x"]


def test_blank_lines_join_only_before_a_continuation(impl: ModuleType) -> None:
    ds = collect(impl, [b"a\n\n\nb\n"])
    assert [d["message"] for d in ds] == ["a", "b"]
    ds = collect(impl, [b"x\nTraceback (most recent call last):\n  File f\nE: 1\n\n\nnext\n"])
    assert [d["message"] for d in ds] == ["x\nTraceback (most recent call last):\n  File f\nE: 1", "next"]


def test_start_pattern(impl: ModuleType) -> None:
    data = b"[1] a\n  more\nno start\n\n[2] b\n[3] c\n\ncont\n"
    ds = collect(impl, [data], multiline={"start": r"^\[\d+\]"})
    assert [d["message"] for d in ds] == ["[1] a\n  more\nno start", "[2] b", "[3] c\n\ncont"]
    assert [d["log"]["offset"] for d in ds] == [0, 23, 29]
    assert all("error" not in d for d in ds)
    # lines before the first start line form an event of their own
    ds = collect(impl, [b"x\ny\n[1] a\n"], multiline={"start": r"^\["})
    assert [d["message"] for d in ds] == ["x\ny", "[1] a"]


def test_json_first_line_parsed(impl: ModuleType) -> None:
    tb = _tb(_oom).rstrip("\n").encode()
    data = b'{"msg": "oom", "level": "error", "ts": 1795591801, "rank": 3}\n' + tb + b"\n"
    ds = collect(impl, [data], format="json")
    assert len(ds) == 1
    d = ds[0]
    assert d["message"] == "oom\n" + tb.decode()
    assert d["log"]["level"] == "error" and d["json"] == {"rank": 3}
    assert d["error"]["type"] == "torch.cuda.OutOfMemoryError"
    assert d["@timestamp"] == "2026-11-25T07:30:01.000Z"


def test_max_lines_cuts_and_tags_truncated(impl: ModuleType) -> None:
    tb = _tb(_chained_cause).rstrip("\n").encode()
    n = tb.count(b"\n") + 1
    ds = collect(impl, [b"ctx\n" + tb + b"\nnext\n"], multiline={"max_lines": 4})
    assert ds[0]["tags"] == ["truncated"] and ds[0]["message"].count("\n") == 3
    # the rest continues the same traceback in further events; nothing is lost but the
    # empty lines at a cut
    msgs = [d["message"] for d in ds]
    assert "\n".join(msgs).replace("\n\n", "\n") == ("ctx\n" + tb.decode() + "\nnext").replace("\n\n", "\n")
    assert all(d["message"].count("\n") <= 3 for d in ds) and len(ds) >= (n + 1) // 4
    assert ds[-1] == {**ds[-1], "message": "next"} and "tags" not in ds[-1]


def test_max_bytes_bounds_memory(impl: ModuleType) -> None:
    p = ml(impl, multiline={"max_bytes": 1000})
    out: list[dict[str, Any]] = []
    p.feed(b"head\nTraceback (most recent call last):\n", T0)
    for _ in range(2000):
        out += docs(p.feed(b"  frame line that goes on\n", T0))
        assert p.pending <= 1000 + 27
    out += docs(p.flush(T0))
    assert len(out) >= 50 and all(len(d["message"].encode()) <= 1000 for d in out)
    assert all(d.get("tags") == ["truncated"] for d in out[:-1]) and "tags" not in out[-1]
    assert out[0]["message"].startswith("head\nTraceback")
    assert sum(d["message"].count("\n") + 1 for d in out) == 2002


def test_long_line_inside_group(impl: ModuleType) -> None:
    data = b"S a\n" + b"y" * 50 + b"\nS b\n"
    ds = collect(impl, [data], multiline={"start": "^S"}, max_line_bytes=10)
    assert ds[0]["message"] == "S a\n" + "y" * 10
    assert ds[0]["tags"] == ["truncated"] and ds[0]["log"]["original_length"] == 54
    assert ds[1]["message"] == "S b" and "tags" not in ds[1]


def test_checkpoint_never_passes_an_open_group(impl: ModuleType) -> None:
    tb = _tb(_oom).encode()
    p = ml(impl)
    b = p.feed(LOG1 + b"\n" + tb[:50], T0)
    assert b.count == 0 and b.end_offset == 0 and p.offset == 0 and p.pending == len(LOG1) + 51
    b = p.feed(tb[50:], T0)
    assert b.count == 0 and b.end_offset == 0
    b = p.feed(LOG2 + b"\n", T0)
    assert b.count == 1 and b.end_offset == len(LOG1) + 1 + len(tb) and b.lines == 1 + tb.count(b"\n")


def test_flush_and_incomplete(impl: ModuleType) -> None:
    p = ml(impl)
    p.feed(b"x\nTraceback (most recent call last):\n  File a\n  ", T0)
    f = p.flush(T0)
    (d,) = docs(f)
    assert d["message"] == "x\nTraceback (most recent call last):\n  File a\n  " and d["tags"] == ["incomplete"]
    assert f.end_offset == p.offset and p.pending == 0
    p = ml(impl)
    p.feed(b"x\nTraceback (most recent call last):\n  File a\nE: 1\nnot cont", T0)
    f = p.flush(T0)
    ds = docs(f)
    assert [d.get("tags") for d in ds] == [None, ["incomplete"]]
    assert "error" in ds[0] and "error" not in ds[1]


def test_expire(impl: ModuleType) -> None:
    p = ml(impl, multiline={"timeout_ms": 500})
    b = p.feed(b"a\nTraceback (most recent call last):\n", T0)
    assert b.count == 0
    p.feed(b"  File x\n  partial", T0 + 300)  # the last complete line arrived at T0 + 300
    e = p.expire(T0 + 799)
    assert e.count == 0 and (e.start_offset, e.end_offset) == (0, 0) and p.offset == 0
    e = p.expire(T0 + 800)
    (d,) = docs(e)
    assert d["message"] == "a\nTraceback (most recent call last):\n  File x"
    assert d["@timestamp"] == "2026-11-25T07:30:01.123Z"  # the first line's read time
    assert (e.start_offset, e.end_offset, e.lines) == (0, 46, 3) and p.pending == 9
    assert p.expire(T0 + 10**6).count == 0
    f = p.flush(T0)
    assert docs(f)[0]["message"] == "  partial"
    # without grouping there is never anything to expire
    q = make(impl)
    q.feed(b"a\nb", T0)
    assert q.expire(T0 + 10**9).count == 0 and q.offset == 2


@pytest.mark.parametrize(
    "bad", ["sometimes", 3, {"start": "("}, {"max_lines": 0}, {"nope": 1}, {"timeout_ms": "2s"}, {"max_bytes": True}]
)
def test_bad_config(impl: ModuleType, bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        ml(impl, multiline=bad)


# -- properties --------------------------------------------------------------------------

_TB_TEXT = _tb(_chained_context) + (_tb(_group_in_chain) if ExceptionGroup is not None else "")
PIECES = st.lists(
    st.sampled_from(
        [
            *(_TB_TEXT.encode().splitlines()),
            LOG1,
            LOG2,
            b"",
            b"\r",
            b"\tat a.B.c(B.java:1)",
            b"Caused by: x.Y: z",
            b"\t... 3 more",
            b"  indented",
            b"[1] start",
            b"x" * 60,
        ]
    )
    | DATA,
    max_size=30,
).map(lambda ls: b"\n".join(ls))
CONFIGS = st.sampled_from(
    ["auto", {"max_lines": 3}, {"max_bytes": 40}, {"start": r"^\[|^20"}, {"start": "^2", "max_lines": 2}]
)


@SETTINGS
@given(
    data=PIECES,
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    cfg=CONFIGS,
    max_line=st.sampled_from([1048576, 30]),
    fmt=st.sampled_from(["plain", "python", "json"]),
)
def test_chunking_does_not_matter(
    impl: ModuleType, data: bytes, cuts: list[int], cfg: Any, max_line: int, fmt: str
) -> None:
    kw = dict(multiline=cfg, max_line_bytes=max_line, format=fmt, timezone="UTC")
    whole = run(impl, [data], **kw)
    assert run(impl, split_at(data, cuts), **kw)[:4] == whole[:4]
    assert whole[3] == data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    for line in whole[0].split(b"\n")[:-1]:
        orjson.loads(line)
    if len(data) < 300:
        assert run(impl, [data[i : i + 1] for i in range(len(data))], **kw)[:4] == whole[:4]


@SETTINGS
@given(
    data=DATA | PIECES.filter(lambda d: b"Traceback" not in d and b"\tat " not in d),
    max_line=st.sampled_from([1048576, 7]),
    fmt=st.sampled_from(["plain", "python", "<Date> <Time> <Level> <Content>", "logfmt"]),
)
def test_auto_without_traces_equals_none(impl: ModuleType, data: bytes, max_line: int, fmt: str) -> None:
    lines = data.split(b"\n")
    assume(
        not any(
            ln.rstrip(b"\r")
            in (b"Traceback (most recent call last):", b"  + Exception Group Traceback (most recent call last):")
            or ln.startswith(b"\tat ")
            for ln in lines
        )
    )
    a = run(impl, [data], multiline="auto", max_line_bytes=max_line, format=fmt, timezone="UTC")
    b = run(impl, [data], multiline="none", max_line_bytes=max_line, format=fmt, timezone="UTC")
    assert a[:4] == b[:4]


@SETTINGS
@given(data=PIECES, cuts=st.lists(st.integers(0, 2000), max_size=5), crash=st.integers(0, 5))
def test_restart_from_end_offset_replays_the_same(impl: ModuleType, data: bytes, cuts: list[int], crash: int) -> None:
    """A crash after any batch, restarting at its end_offset, gives the same events."""
    chunks = split_at(data, cuts)
    full = run(impl, chunks, multiline="auto")[0]
    p = ml(impl)
    body = b""
    for c in chunks[:crash]:
        body += p.feed(c, T0).body
    at = p.offset
    fed = sum(len(c) for c in chunks[:crash])
    assert at <= fed
    body += run(impl, [data[at:]], multiline="auto", start_offset=at)[0]
    assert body == full


@needs_both
@SETTINGS
@given(
    data=PIECES,
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    cfg=CONFIGS,
    fmt=st.sampled_from(["plain", "python", "logfmt", "<Date> <Time> <Level> <Content>"]),
    max_line=st.sampled_from([1048576, 30, 7]),
)
def test_cython_equals_python(data: bytes, cuts: list[int], cfg: Any, fmt: str, max_line: int) -> None:
    """Built-in rules run in C (plain and program formats), start patterns in the twin."""
    ps = [
        make(m, multiline=cfg, format=fmt, timezone="Europe/Berlin", max_line_bytes=max_line)
        for m in (CPARSER, _pyparser)
    ]
    for i, c in enumerate(split_at(data, cuts)):
        t = T0 + i * 86400_000 * 40  # a new index and year inference per feed
        bc, bp = (p.feed(c, t) for p in ps)
        assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}
        assert (ps[0].offset, ps[0].pending) == (ps[1].offset, ps[1].pending)
        if i % 2:
            ec, ep = (p.expire(t + 2000) for p in ps)
            assert {k: getattr(ec, k) for k in ec.__slots__} == {k: getattr(ep, k) for k in ep.__slots__}
    fc, fp = (p.flush(T0 + 86400_000 * 400) for p in ps)
    assert {k: getattr(fc, k) for k in fc.__slots__} == {k: getattr(fp, k) for k in fp.__slots__}


@needs_both
def test_compiled_parser_groups_in_c() -> None:
    """Built-in rules do not go through the twin (its speed would be the agent's)."""
    tb = _tb(_oom).encode()
    data = (LOG1 + b"\n" + tb + LOG2 + b"\n") * 2000
    took = []
    for m in (CPARSER, _pyparser):
        p = make(m, multiline="auto", format="python")
        t = time.perf_counter()
        assert p.feed(data, T0).count == 3999
        took.append(time.perf_counter() - t)
    assert took[0] * 5 < took[1]
