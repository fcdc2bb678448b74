"""The pure-Python twin's fast paths give what its general path gives, byte for byte.

* ``_fastpath.program_regex``: where a program's atomic regex matches a line, the
  backtracking matcher matches it too, with the same captures (random programs, lines
  made from them and mutated);
* the twin with its fast paths on and off (``_prx`` cleared, ``_fast`` off) gives the
  same batches, and so does the compiled parser when built.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fastparse import _pyparser
from _fastparse._fastpath import program_regex
from _fastparse._formats import compile_format


def _load_cparser() -> ModuleType | None:
    try:
        return importlib.import_module("_fastparse._cparser")
    except ImportError:
        return None


CPARSER = _load_cparser()

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

KW: dict[str, Any] = dict(input_id="trainer", path="/var/log/t.log", host_name="gpu-1", id_prefix="f00d",
                          index_pattern="shipper-logs-trainer-%Y.%m.%d", timezone="UTC")
T0 = 1795591801123

# -- random programs -----------------------------------------------------------------------

LIT_CHARS = ":-[]|,=\t"
VALUE_PIECES = ["a", "b", "x1", " ", "  ", ":", "-", "[", "]", "|", ",", "=", "\t", "INFO", "WARN", "WARNING",
                "2026-11-25 07:30:01,123", "2026-11-25T07:30:01Z", "07:30:01", "ERROR", ": ", " - "]


@st.composite
def template_spec(draw: Any) -> tuple[str, list[str]]:
    """A LogPAI template (fields, literals, spaces, optional groups) and its field names."""
    names: list[str] = []
    parts: list[str] = []
    depth = 0
    for _ in range(draw(st.integers(1, 7))):
        k = draw(st.integers(0, 5))
        if k <= 1:
            name = draw(st.sampled_from(["Date", "Time", "Level", "Pid", "Component", "Content", "A", "B"]))
            if name in names:
                name = f"{name}{len(names)}"
            names.append(name)
            parts.append(f"<{name}>")
        elif k == 2:
            parts.append(draw(st.text(alphabet=LIT_CHARS, min_size=1, max_size=2)).replace("(", "").replace(")", ""))
        elif k == 3:
            parts.append(" " * draw(st.integers(1, 2)))
        elif k == 4 and depth == 0:
            parts.append("(")
            depth += 1
        elif depth:
            parts.append(")?")
            depth -= 1
    parts.append(")?" * depth)
    if not names:
        names.append("Content")
        parts.append("<Content>")
    spec = "".join(parts).replace("()?", "")
    return spec, names


@st.composite
def dissect_spec(draw: Any) -> str:
    parts = []
    for i in range(draw(st.integers(1, 5))):
        parts.append(f"%{{f{i}}}")
        parts.append(draw(st.sampled_from([" ", ":", " - ", "|", ", ", "=", "] "])))
    if draw(st.booleans()):
        parts.pop()
    return "".join(parts)


LAYOUTS = ["python", "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
           "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
           "%(levelname)s:%(name)s:%(message)s", "%(asctime)s|%(process)d|%(message)s"]


@st.composite
def line_for(draw: Any, spec: str) -> bytes:
    """A line that often fits ``spec``: its literal text kept, fields filled with random pieces."""
    out = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == "<" and ">" in spec[i:]:
            i = spec.index(">", i) + 1
            out.append("".join(draw(st.lists(st.sampled_from(VALUE_PIECES), max_size=4))))
            continue
        if spec.startswith("%{", i) and "}" in spec[i:]:
            i = spec.index("}", i) + 1
            out.append("".join(draw(st.lists(st.sampled_from(VALUE_PIECES), max_size=4))))
            continue
        if spec.startswith("%(", i) and ")" in spec[i:]:
            i = spec.index(")", i) + 2
            out.append("".join(draw(st.lists(st.sampled_from(VALUE_PIECES), max_size=4))))
            continue
        if c in "()?\\":
            i += 1
            if c == "(" and draw(st.booleans()):  # leave an optional group out
                depth = 1
                while i < len(spec) and depth:
                    depth += {"(": 1, ")": -1}.get(spec[i], 0)
                    i += 1
            continue
        out.append(c * draw(st.integers(1, 2)) if c == " " else c)
        i += 1
    line = "".join(out)
    if draw(st.integers(0, 4)) == 0 and line:  # a mutation
        k = draw(st.integers(0, len(line) - 1))
        line = line[:k] + draw(st.sampled_from(VALUE_PIECES)) + line[k + 1:]
    return line.encode()


def _check(spec: str, line: bytes) -> None:
    fmt = compile_format(spec)
    for prog in fmt.programs:
        prx = program_regex(prog)
        if prx is None:
            continue
        mo = prx.regex.match(line)
        caps: list[tuple[int, int] | None] = [None] * fmt.nslots
        ok = _pyparser.match(prog, line, caps)
        if mo is None:
            continue
        assert ok, (spec, line)
        got: list[tuple[int, int] | None] = [None] * fmt.nslots
        for g, slot in enumerate(prx.group_slots, 1):
            got[slot] = None if mo.start(g) < 0 else mo.span(g)
        assert got == caps, (spec, line)


@SETTINGS
@given(st.data())
def test_template_regex_is_the_matcher(data: Any) -> None:
    spec, _ = data.draw(template_spec())
    try:
        compile_format(spec)
    except ValueError:
        return
    _check(spec, data.draw(line_for(spec)))


@st.composite
def optional_template(draw: Any) -> str:
    """Templates with optional groups that hold captures, whitespace and literals (where
    an atomic choice inside a group could make the regex skip a group the matcher takes)."""
    n = 0
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        inner = []
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.integers(0, 3))
            if k == 0:
                inner.append(f"<F{n}>")
                n += 1
            elif k == 1:
                inner.append(" ")
            else:
                inner.append(draw(st.sampled_from(["x", ":", "[", "]", "-", "ab"])))
        body = "".join(inner)
        parts.append(f"({body})?" if draw(st.booleans()) else body)
    parts.append(f"<F{n}>")
    return "".join(parts).replace("()?", "")


@SETTINGS
@given(st.data())
def test_optional_group_regex_is_the_matcher(data: Any) -> None:
    spec = data.draw(optional_template())
    try:
        compile_format(spec)
    except ValueError:
        return
    pieces = st.sampled_from(["a", "b", " ", "x", ":", "[", "]", "-", "ab", "  "])
    line = "".join(data.draw(st.lists(pieces, max_size=10))).encode()
    _check(spec, line)
    _check(spec, data.draw(line_for(spec)))


def test_skipped_group_is_the_matchers_choice() -> None:
    """The matcher backs up inside an optional group and takes it; the regex must not skip it."""
    for line in (b"a b x c", b"a b y c", b"x c", b" x c"):
        _check("(<A> x)?<B>", line)
    _check("<Month> <Date> <Time> <Level> <Component>(\\[<PID>\\])?: <Content>",
           b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure;")


@SETTINGS
@given(st.data())
def test_dissect_regex_is_the_matcher(data: Any) -> None:
    spec = data.draw(dissect_spec())
    _check(spec, data.draw(line_for(spec)))


@SETTINGS
@given(st.sampled_from(LAYOUTS), st.data())
def test_layout_regex_is_the_matcher(spec: str, data: Any) -> None:
    shape = LAYOUTS[1] if spec == "python" else spec
    _check(spec, data.draw(line_for(shape)))


def test_the_regex_matches_the_common_lines() -> None:
    """The fast path is taken where it matters (the atomic regex matches these)."""
    for spec, line in (
        ("python", b"2026-11-25 07:30:01,123 - trainer - INFO - epoch=0 step=1 loss=0.5"),
        ("<Date> <Time> <Pid> <Level> <Component>: <Content>",
         b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating"),
        ("%{ts} %{level} %{msg}", b"2026-11-25T07:30:01Z INFO hello world"),
    ):
        fmt = compile_format(spec)
        prx = program_regex(fmt.programs[0])
        assert prx is not None and prx.regex.match(line) is not None


# -- whole parsers: fast path on and off, and the compiled one ------------------------------


def _feed_all(p: Any, data: bytes, chunk: int) -> list[tuple[Any, ...]]:
    out = []
    for i in range(0, len(data), chunk):
        b = p.feed(data[i:i + chunk], T0)
        out.append(_batch(b))
    out.append(_batch(p.flush(T0 + 5000)))
    return out


def _batch(b: Any) -> tuple[Any, ...]:
    arrays = tuple(bytes(getattr(b, n)) for n in ("ev_time", "ev_level", "ev_class", "ev_bytes",
                                                  "m_item", "m_id", "m_value"))
    return (b.body, b.count, bytes(b.item_ends), bytes(b.item_offsets), b.start_offset, b.end_offset,
            b.lines, arrays)


def _slow(**kw: Any) -> Any:
    p = _pyparser.Parser(**kw)
    p._prx = [None] * len(p._prx)
    if hasattr(p, "_fast"):
        p._fast = False
    return p


@SETTINGS
@given(st.data(), st.sampled_from(["none", "auto"]), st.integers(1, 300))
def test_twin_fast_equals_general_and_compiled(data: Any, multiline: str, chunk: int) -> None:
    kind = data.draw(st.sampled_from(["template", "dissect", "layout"]))
    if kind == "template":
        spec, _ = data.draw(template_spec())
        try:
            compile_format(spec)
        except ValueError:
            return
        shape = spec
    elif kind == "dissect":
        spec = shape = data.draw(dissect_spec())
    else:
        spec = data.draw(st.sampled_from(LAYOUTS))
        shape = LAYOUTS[1] if spec == "python" else spec
    lines = data.draw(st.lists(st.one_of(line_for(shape), st.sampled_from([
        b"", b"Traceback (most recent call last):", b'  File "x.py", line 1, in <module>',
        b"ValueError: loss=nan", b"\tat a.b.C(C.java:1)", b"x loss=0.5 acc=1e-3 lr=.5 step=+3",
        b"CUDA out of memory", b"bad \xff utf8", b"crlf line\r", b"bar 10%\rbar 100%"])),
        min_size=1, max_size=12))
    data_bytes = b"\n".join(lines) + b"\n"
    kw = dict(KW, format=spec, multiline=multiline)
    fast = _feed_all(_pyparser.Parser(**kw), data_bytes, chunk)
    slow = _feed_all(_slow(**kw), data_bytes, chunk)
    assert fast == slow
    if CPARSER is not None:
        assert _feed_all(CPARSER.Parser(**kw), data_bytes, chunk) == fast


@pytest.mark.skipif(CPARSER is None, reason="_cparser not built")
def test_generated_training_log_all_three() -> None:
    from benchmarks.bench_parse import generate
    data = generate(3000)
    for fmt in ("python", "plain"):
        for ml in ("auto", "none"):
            kw = dict(KW, format=fmt, multiline=ml)
            fast = _feed_all(_pyparser.Parser(**kw), data, 65536)
            assert fast == _feed_all(_slow(**kw), data, 65536)
            assert CPARSER is not None
            assert fast == _feed_all(CPARSER.Parser(**kw), data, 65536)


# -- line plans: lines of one shape, their digits varied -------------------------------------

DIGIT_LINES = [
    "{t} - trainer - INFO - epoch={d} step={d} loss={d}.{d} acc={d}.{d} lr={d}e-{d} tok/s={d}",
    "{t} - trainer.optim - WARNING - grad_norm={d}.{d} exceeds clip={d}.{d} at step={d}",
    "{t} - data - INFO - shard {d} loaded: {d} samples, \"tokens\"={d}",
    "{t} - w{d} - INFO - top{d}={d} f1={d}e{d} x={d}.",
    "{t} - trainer - ERROR - loss is nan at step={d}",
    "{t} - trainer - INFO - signal {d} (SIGKILL) from rank={d}",
    "{t} - trainer - INFO - ünïcode loss={d} \\ \"q\"={d}",
    "{t} - trainer - INFO - loss=nan acc={d}",
    "plain line {d} with loss: {d}.{d} and x={d}",
    "{t} INFO trainer: loss={d}",
    "{t} - trainer - ERROR - step {d} failed",
    "{t} - trainer - CRITICAL - CUDA out of memory at {d}",
]


@st.composite
def digit_line(draw: Any) -> bytes:
    tpl = draw(st.sampled_from(DIGIT_LINES))
    t = draw(st.sampled_from(["2026-11-25 07:30:01,123", "2026-11-25 07:30:{s},{ms}", "2026-13-99 99:99:99,999"]))
    t = t.format(s=draw(st.sampled_from(["00", "59", "61", "07"])), ms=draw(st.sampled_from(["000", "999", "042"])))
    digits = st.sampled_from(["0", "00", "05", "10", "9", "99", "123", "0123", "999999999999999999999"])
    out = tpl.replace("{t}", t)
    while "{d}" in out:
        out = out.replace("{d}", draw(digits), 1)
    return out.encode()


@SETTINGS
@given(st.lists(digit_line(), min_size=1, max_size=40), st.sampled_from(["python", "plain"]),
       st.sampled_from(["none", "auto"]), st.sampled_from([None, b"k" * 16]))
def test_line_plans_equal_general(lines: list[bytes], spec: str, multiline: str, id_key: bytes | None) -> None:
    data = b"\n".join(lines * 3) + b"\n"
    kw = dict(KW, format=spec, multiline=multiline, id_key=id_key)
    fast = _feed_all(_pyparser.Parser(**kw), data, 4096)
    assert fast == _feed_all(_slow(**kw), data, 4096)
    noplan = _pyparser.Parser(**kw)
    noplan._shape_tr = None
    assert fast == _feed_all(noplan, data, 4096)
    if CPARSER is not None:
        assert _feed_all(CPARSER.Parser(**kw), data, 4096) == fast


TEMPLATE_LINES = [
    "0811{d} 2036{d} {d} {lv} dfs.DataNode$PacketResponder: PacketResponder {d} for block blk_-{d} terminating",
    "0811{d} 2036{d} {d} {lv} dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /user/{d}/part-{d}. blk_{d}",
    "0811{d} 2036{d} {d} {lv} dfs.X: \"quoted\" loss={d}.{d} lr={d}e-{d} {d}",
    "0811{d} 20:36:{d} {d} {lv} dfs.X: odd time",
    "{d} {lv}",
]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TEMPLATE_LINES), st.sampled_from(["INFO", "E", "WARN", "ERROR", "x1"]),
                          st.lists(st.sampled_from(["0", "00", "05", "10", "9", "99", "123", "0123"]),
                                   min_size=8, max_size=8)),
                min_size=1, max_size=30),
       st.sampled_from(["none", "auto"]))
def test_line_plans_equal_general_template(rows: list[tuple[str, str, list[str]]], multiline: str) -> None:
    lines = []
    for tpl, lv, ds in rows:
        out = tpl.replace("{lv}", lv)
        for d in ds:
            out = out.replace("{d}", d, 1)
        lines.append(out.encode())
    data = b"\r\n".join(lines * 3) + b"\r\n"
    kw = dict(KW, format="<Date> <Time> <Pid> <Level> <Component>: <Content>", multiline=multiline)
    fast = _feed_all(_pyparser.Parser(**kw), data, 4096)
    assert fast == _feed_all(_slow(**kw), data, 4096)
    if CPARSER is not None:
        assert _feed_all(CPARSER.Parser(**kw), data, 4096) == fast


def test_line_plans_with_a_digit_keyword() -> None:
    """A class keyword with digits: lines of one shape with and without it."""
    kw = dict(KW, format="python", multiline="none", error_classes={"sig": ["code 7 hit"]})
    lines = [f"2026-11-25 07:30:01,123 - t - INFO - code {d} hit loss={d}".encode() for d in "1717"]
    data = b"\n".join(lines * 3) + b"\n"
    fast = _feed_all(_pyparser.Parser(**kw), data, 4096)
    assert fast == _feed_all(_slow(**kw), data, 4096)
    assert b'"class":"sig"' in b"".join(b[0] for b in fast)


_CANON_NUM = st.from_regex(rb"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,2})?", fullmatch=True)


@SETTINGS
@given(st.lists(_CANON_NUM, min_size=1, max_size=20))
def test_numbers_in_one_go_are_float(texts: list[bytes]) -> None:
    """``_numbers`` (orjson over the joined list) gives the doubles ``float`` gives."""
    from array import array

    from _fastparse._analysis import CANON_LIST
    assert CANON_LIST.fullmatch(b",".join(texts))
    assert array("d", _pyparser._numbers(texts)).tobytes() == array("d", map(float, texts)).tobytes()


@SETTINGS
@given(_CANON_NUM)
def test_canonical_numbers_are_kept_by_number_text(text: bytes) -> None:
    from _fastparse._metrics import number_text
    assert number_text(text) == text


# -- the compiled parser's layouts (lay_match): lines that fit, then one that deviates ---------

_LAY_FIELDS = {
    "asctime": st.sampled_from(["2026-11-25 07:30:01,123", "2026-11-25T07:30:59.5", "2026-11-25 07:30:01",
                                "2026-11-25 07:30:01+02:00", "Nov 25 07:30:01", "1795591801"]),
    "name": st.sampled_from(["trainer", "a.b", "x-y", "root", "é", "a:b"]),
    "levelname": st.sampled_from(["INFO", "WARNING", "WARN", "ERROR", "DEBUG", "CRITICAL", "FATAL", "NOTSET",
                                  "TRACE", "info", "Warn", "LEVEL"]),
    "message": st.sampled_from(["epoch=1 step=2 loss=0.5", "a - b - c", "x: y", "trailing  ", "", "NaN in loss",
                                "connection refused", "bad \udcff utf8"]),
    "process": st.sampled_from(["42", "0", "x"]),
    "threadName": st.sampled_from(["Main", "T-1", "a b"]),
}
_LAY_ATTR = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]")
_PY_SHAPES = ["%(asctime)s - %(name)s - %(levelname)s - %(message)s", "%(asctime)s %(levelname)s %(name)s: %(message)s",
              "%(levelname)s:%(name)s:%(message)s"]


@st.composite
def _layout_line(draw: Any, shape: str) -> bytes:
    vals = {a: draw(_LAY_FIELDS[a]) for a in _LAY_ATTR.findall(shape)}
    text = _LAY_ATTR.sub(lambda m: vals[m.group(1)], shape)
    return text.encode("utf-8", "surrogateescape")


@SETTINGS
@given(st.data(), st.sampled_from(["none", "auto"]), st.integers(1, 200))
def test_compiled_layout_then_a_deviation(data: Any, multiline: str, chunk: int) -> None:
    """Lines that fit a layout (the compiled parser's straight path), then one with a byte
    inserted, replaced or removed (its general matcher, or a miss): all parsers agree."""
    spec = data.draw(st.sampled_from(LAYOUTS))
    shape = data.draw(st.sampled_from(_PY_SHAPES)) if spec == "python" else spec
    lines = data.draw(st.lists(_layout_line(shape), min_size=1, max_size=6))
    bad = bytearray(data.draw(_layout_line(shape)))
    k = data.draw(st.integers(0, len(bad)))
    byte = data.draw(st.sampled_from(list(b" \t-:|[]0,.ZIW")))
    how = data.draw(st.sampled_from(["insert", "replace", "remove"]))
    if how == "insert" or k == len(bad):
        bad[k:k] = bytes([byte])
    elif how == "replace":
        bad[k] = byte
    else:
        del bad[k]
    data_bytes = b"\n".join([*lines, bytes(bad), *lines[:1]]) + b"\n"
    kw = dict(KW, format=spec, multiline=multiline)
    fast = _feed_all(_pyparser.Parser(**kw), data_bytes, chunk)
    assert fast == _feed_all(_slow(**kw), data_bytes, chunk)
    if CPARSER is not None:
        assert _feed_all(CPARSER.Parser(**kw), data_bytes, chunk) == fast


@pytest.mark.skipif(CPARSER is None, reason="_cparser not built")
@pytest.mark.parametrize("multiline", ["none", "auto"])
def test_layout_lines_past_the_first_path(multiline: str) -> None:
    """Lines the compiled layout's straight path does not take: a later layout (the first
    ones skipped as impossible, or tried because their literals occur), a match only the
    backtracking matcher finds (a name with a blank), no layout at all."""
    lines = [
        b"2026-11-25 07:30:01,123 - trainer - INFO - fits the first layout",
        b"2026-11-25 07:30:01,123 - a b - INFO - a name with a blank",
        b"2026-11-25 07:30:01,123 INFO trainer: the second layout",
        b"2026-11-25 07:30:01,123 INFO trainer: the second - with - dashes - in it",
        b"INFO:trainer:the third layout",
        b"WARNING:a.b:the third - with - three - dashes",
        b"ERROR:x:2026-11-25 07:30:01,123 - y - INFO - a first-layout line as the message",
        b"DEBUG:root:key: value",
        b"no layout - at - all - here",
        b"2026-11-25 07:30:01,123 - trainer - NOTALEVEL - not a level",
    ]
    data = b"\n".join(lines) + b"\n"
    kw = dict(KW, format="python", multiline=multiline)
    fast = _feed_all(_pyparser.Parser(**kw), data, 4096)
    assert fast == _feed_all(_slow(**kw), data, 4096)
    assert CPARSER is not None
    assert _feed_all(CPARSER.Parser(**kw), data, 4096) == fast
    body = fast[0][0]
    assert b'"logger":"a b"' in body and b'"message":"the third layout"' in body
