"""The pure-Python twin's fast paths give what its general path gives, byte for byte.

* ``_fastpath.program_regex``: where a program's atomic regex matches a line, the
  backtracking matcher matches it too, with the same captures (random programs, lines
  made from them and mutated);
* the twin with its fast paths on and off (``_prx`` cleared, ``_fast`` off) gives the
  same batches, and so does the compiled parser when built.
"""

from __future__ import annotations

import importlib
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
