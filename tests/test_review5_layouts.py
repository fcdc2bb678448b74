"""Review of the compiled layouts (cspeed5: every program compiled as a layout, lay_match,
lay_possible): lines that nearly fit a layout give the twin's bytes. A seeded differential
run against ``_pyparser``: CRLF, ``\\r`` progress bars, ANSI escapes, invalid UTF-8, lines cut
at ``max_line_bytes``, empty messages, levels in lower case or unknown, names with blanks or
non-ASCII, times with a zone, ms or us, two blanks or a tab between fields, a byte replaced,
tracebacks after a layout line (multiline auto), any chunking, progress and error classes.
(The review's longer run, 40,000 cases, found no difference.)"""

from __future__ import annotations

import importlib
import os
import random
from typing import Any

import pytest

from _fastparse import _pyparser

try:
    CPARSER: Any = importlib.import_module("_fastparse._cparser")
except ImportError:
    CPARSER = None

KW: dict[str, Any] = dict(input_id="trainer", path="/var/log/t.log", host_name="gpu-1", id_prefix="f00d",
                          index_pattern="shipper-logs-trainer-%Y.%m.%d", timezone="UTC")
T0 = 1795591801123
FORMATS = ["python", "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
           "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
           "%(levelname)s:%(name)s:%(message)s", "%(asctime)s|%(process)d|%(message)s"]
TIMES = ["2026-11-25 07:30:01,123", "2026-11-25 07:30:01.123456", "2026-11-25 07:30:01", "2026-11-25T07:30:01Z",
         "2026-11-25 07:30:01+02:00", "2026-11-25 07:30:01,123 +0100", "2026-11-25  07:30:01,123",
         "2026-11-25\t07:30:01,123", "2026-11-25 07:30:01.5Z", "2026-13-45 99:99:99,999"]
NAMES = ["trainer", "a.b", "a b", "é", "", "root", "x-y", "a:b", "a - b"]
LEVELS = ["INFO", "info", "Warning", "WARNING", "WARN", "ERROR", "error", "CRITICAL", "DEBUG", "NOTICE", "FOO", "", "I"]
MSGS = ["epoch=1 step=2 loss=0.5", "", " ", "a - b - c", "x: y", "\x1b[31mred\x1b[0m loss=nan", "bar 10%\rbar 100%",
        "trailing  ", "\ttab", "loss=1e309 acc=-0 lr=.5", "CUDA out of memory", "Traceback (most recent call last):"]
SHAPES = ["{t} - {n} - {l} - {m}", "{t} {l} {n}: {m}", "{l}:{n}:{m}", "{t}  - {n} - {l} - {m}",
          "{t} - {n} -  {l} - {m}", "{t}\t- {n} - {l} - {m}", "{t} - {n} - {l}  - {m}",
          "{t} {l} [{n}] {n}: {m}", "{t}|{p}|{m}",
          "{t} {l} [{n}]  {n}: {m}", "{t}|{p}||{m}"]
EXTRA = [b"Traceback (most recent call last):", b'  File "x.py", line 1, in <module>', b"    raise ValueError()",
         b"ValueError: loss=nan", b"", b"   ", b"\tat a.b.C(C.java:1)",
         b"During handling of the above exception, another exception occurred:"]


FITS = {FORMATS[1]: ["{t} - {n} - {l} - {m}"], FORMATS[2]: ["{t} {l} [{n}] {n}: {m}"], FORMATS[3]: ["{l}:{n}:{m}"],
        FORMATS[4]: ["{t}|{p}|{m}"]}
FITS["python"] = [*FITS[FORMATS[1]], "{t} {l} {n}: {m}", *FITS[FORMATS[3]]]


def _line(rnd: random.Random, fmt: str) -> bytes:
    if rnd.random() < 0.15:
        return rnd.choice(EXTRA)
    shape = rnd.choice(FITS[fmt] if rnd.random() < 0.7 else SHAPES)
    text = shape.format(t=rnd.choice(TIMES), n=rnd.choice(NAMES), l=rnd.choice(LEVELS), m=rnd.choice(MSGS),
                        p=rnd.choice(["42", "0", "x", "-1", " 7"]))
    b = text.encode()
    r = rnd.random()
    if r < 0.05:
        b = b.replace(b"\xc3\xa9", b"\xc3")  # a cut UTF-8 sequence
    elif r < 0.1:
        b += b"\xff\xfe"
    elif r < 0.15:
        b = b"\x1b[32m" + b
    elif r < 0.2:
        b += b"\r"
    elif r < 0.25 and len(b) > 3:
        k = rnd.randrange(len(b))
        b = b[:k] + bytes([rnd.choice(b" \t-:,.Z\r")]) + b[k + 1:]
    return b


def _batch(b: Any) -> tuple[Any, ...]:
    arrays = tuple(bytes(getattr(b, n)) for n in ("ev_time", "ev_level", "ev_class", "ev_bytes", "m_item", "m_id",
                                                  "m_value"))
    return (b.body, b.count, bytes(b.item_ends), bytes(b.item_offsets), b.start_offset, b.end_offset, b.lines, arrays)


def _feed_all(p: Any, data: bytes, chunks: list[int]) -> list[tuple[Any, ...]]:
    out = []
    i = 0
    for c in chunks:
        out.append(_batch(p.feed(data[i:i + c], T0)))
        i += c
    out.append(_batch(p.feed(data[i:], T0)))
    out.append(_batch(p.flush(T0 + 5000)))
    return out


@pytest.mark.skipif(CPARSER is None, reason="_cparser not built")
@pytest.mark.parametrize("block", range(int(os.environ.get("REVIEW5_BLOCKS", "8"))))
def test_nearly_fitting_layout_lines_compiled_equals_twin(block: int) -> None:
    for seed in range(block * 60, block * 60 + 60):
        rnd = random.Random(seed)
        fmt = rnd.choice(["python", *FORMATS])
        data = b"\n".join(_line(rnd, fmt) for _ in range(rnd.randint(1, 20))) + rnd.choice([b"\n", b"", b"\r\n"])
        if rnd.random() < 0.2:
            data = data.replace(b"\n", b"\r\n")
        kw = dict(KW, format=fmt, multiline=rnd.choice(["none", "auto"]))
        if rnd.random() < 0.3:
            kw["progress"] = rnd.choice(["all", "drop", "last"])
        if rnd.random() < 0.2:
            kw["error_classes"] = {"oom": ["out of memory"], "nan": ["loss=nan"]}
        if rnd.random() < 0.3:
            kw["max_line_bytes"] = rnd.choice([16, 30, 40, 50, 64])
        chunks: list[int] = []
        while sum(chunks) < len(data) and rnd.random() < 0.7:
            chunks.append(rnd.randint(1, 60))
        twin = _feed_all(_pyparser.Parser(**kw), data, chunks)
        assert _feed_all(CPARSER.Parser(**kw), data, chunks) == twin, (seed, kw, chunks, data)
