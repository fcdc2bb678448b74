"""Line plans of the pure-Python twin: everything about a line that its digits do not change.

A line's *shape* is the line with every digit replaced by ``0``. Two lines of the same
shape differ only in digits, and nothing the parser decides looks at which digit is
where, except the few things a plan leaves to each line:

* the program regex (``_fastpath``: digit classes, whitespace, level words, ``.``;
  programs whose literals hold a digit get no plans) matches both or neither, with the
  same spans;
* ``METRIC_RE`` (digit classes only) matches at the same spans; keys with a digit are
  left to the general path; whether a number is already JSON depends on its digits only
  through a leading zero of a multi-digit integer part, checked per line;
* class keywords without digits (lower-cased substrings) occur in both or neither (so
  the error class is the plan's); a shape that holds a keyword with digits once they
  are ``0`` gets no plan; JSON escaping, UTF-8 validity and the level word are the same.

So the first time a shape is seen again, :func:`build_plan` works out on that line where
the time, message, fields and metric values are, and one ``%`` template of the whole
event with a hole for each of them; every later line of the shape is cut at those
places and formatted, without a regex or a metric scan. Per line stay: the time (cached
per second), the leading-zero check, ``float`` of the metric values. Shapes a plan does
not cover (a capture or key with digits that would need JSON escaping, a NaN metric,
a number not in JSON form) get :data:`SLOW`: their lines
go through ``Parser._event``. ``tests/test_twin_fastpath.py`` checks plans against the
general path on random lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

from ._analysis import CANON_LIST
from ._common import LEVEL_ERROR, level_code
from ._formats import FMT_PROGRAM, KIND_NUM, WHITESPACE
from ._metrics import MAX_NUMBER, METRIC_RE

if TYPE_CHECKING:
    from ._pyparser import Parser

_DIGITS = b"0123456789"
_has_digit = re.compile(rb"[0-9]").search


def digit_keywords(keywords: list[bytes], table: bytes) -> tuple[bytes, ...]:
    """The class keywords that hold a digit, as shapes."""
    return tuple(k.translate(table) for k in keywords if _has_digit(k))


def shape_table(literals: list[bytes]) -> bytes | None:
    """The ``bytes.translate`` table that makes a line's shape (every digit a ``0``), or
    None when a program literal has a digit (the program regex would see digits apart)."""
    if any(c in _DIGITS for lit in literals for c in lit):
        return None
    return bytes.maketrans(_DIGITS, b"0" * 10)


class LinePlan:
    """What every line of one shape becomes; see the module docstring.

    ``get(line)``: the tuple of the line's pieces: the time parts, the message, then the
    template's holes after the offset (field values, metric values). ``tpl_t``: the event
    with the line's own time: (action head, id, ``YYYY-mm-ddTHH:MM:SS.``, ms, message,
    offset, holes...); ``tpl_r`` with the read time: (action head, id, doc head, message,
    offset, holes...); ``id`` is the offset itself (``%x``) for contract v1."""

    __slots__ = ("cls", "get", "ids", "iso", "json_msg", "level", "metric_names", "mslice", "nmetrics", "ntime",
                 "tcands", "tpl_r", "tpl_t", "zcheck")

    def __init__(self) -> None:
        self.get: Callable[[bytes], tuple[bytes, ...]] = _empty
        self.ntime = 0  # time parts first in get()
        self.json_msg = False  # the message needs escaping: per line orjson
        self.level = 0
        self.cls = 0  # ev_class: 1 + the error class, or 0
        self.nmetrics = 0
        self.mslice = slice(0, 0)  # the metric values in get()'s tuple
        self.metric_names: tuple[bytes, ...] = ()
        self.ids: tuple[int, ...] | None = None  # resolved at the first line that uses them
        self.iso = False  # the time is YYYY-mm-dd HH:MM:SS,mmm: parsed per second
        self.tcands: tuple[Callable[[bytes], bytes], ...] = ()  # else: the time's text(s)
        self.zcheck: Callable[[bytes], bool] | None = None  # a leading zero: not plain JSON
        self.tpl_t = b""
        self.tpl_r = b""


def _empty(line: bytes) -> tuple[bytes, ...]:
    return ()


#: A shape whose lines take the general path.
SLOW = LinePlan()

_JSON_PLAIN = re.compile(rb"[\x20-\x21\x23-\x5b\x5d-\x7e]*")  # needs no escaping as a JSON string


def _esc(b: bytes) -> bytes:
    return b.replace(b"%", b"%%")


def _joiner(slices: list[slice]) -> Callable[[bytes], bytes]:
    if len(slices) == 1:
        s0 = slices[0]
        return lambda line: line[s0]
    get = itemgetter(*slices)
    return lambda line: b" ".join(get(line))


def _getter(slices: list[slice]) -> Callable[[bytes], tuple[bytes, ...]]:
    if not slices:
        return _empty
    if len(slices) == 1:
        s0 = slices[0]
        return lambda line: (line[s0],)
    return itemgetter(*slices)


def build_plan(p: Parser, line: bytes) -> LinePlan:
    """The plan of ``line``'s shape (``line`` non-empty, at most ``max_line_bytes``, no
    terminal noise), or :data:`SLOW`."""
    from ._pyparser import _ISO_MS, _text

    fmt = p._fmt
    an = p._an
    f = p._frags
    if an.preds is not None:
        return SLOW
    plan = LinePlan()
    pieces_time: list[slice] = []
    holes_log: list[slice] = []  # field values with digits, before doc_tail
    holes_top: list[slice] = []
    log_t = top_t = b""
    if fmt.kind == FMT_PROGRAM:
        prx = p._prx0
        if prx is None or len(line) > prx.max_len:
            return SLOW
        mo = prx.regex.match(line)
        if mo is None:
            return SLOW
        spans: list[tuple[int, int] | None] = []
        for g in range(1, fmt.nslots + 1):
            a, b = mo.span(g)
            if a < 0:
                spans.append(None)
                continue
            while a < b and line[a] in WHITESPACE:
                a += 1
            while b > a and line[b - 1] in WHITESPACE:
                b -= 1
            spans.append((a, b))
        vals = [None if s is None else line[s[0]:s[1]] for s in spans]
        cands = [[slice(*s) for s in (spans[i] for i in c) if s is not None]
                 for c in fmt.time_candidates if all(spans[i] is not None for i in c)]
        if len(cands) == 1 and len(cands[0]) == 1 and _ISO_MS.fullmatch(line[cands[0][0]]) is not None:
            plan.iso = True  # the second and the milliseconds apart, first in get()
            a = cands[0][0].start
            pieces_time = [slice(a, a + 20), slice(a + 20, a + 23)]
        else:
            # each candidate's text (its parts joined by a space), tried in order per line
            plan.tcands = tuple(_joiner(c) for c in cands)
        lv_slot = fmt.level_slot
        if lv_slot >= 0:
            lt = vals[lv_slot]
            if lt and _has_digit(lt):
                return SLOW
            plan.level = level_code(lt)
        ms_ = fmt.message_slot
        if ms_ >= 0:
            s = spans[ms_]
            raw_span = (0, 0) if s is None else s
        else:
            raw_span = (0, len(line))
        parts = []
        for which, (plan_l, suffix) in enumerate(((fmt.log_plan, fmt.log_suffix), (fmt.top_plan, fmt.top_suffix))):
            t = b""
            for prefix, slot, kind in plan_l:
                t += _esc(prefix)
                v = vals[slot]
                s = spans[slot]
                if v is None or s is None:
                    t += b"null"
                elif not _has_digit(v):
                    if kind == KIND_NUM:
                        t += b"null"  # not digits only
                    else:
                        j, bad = _text(v)
                        if bad:
                            return SLOW
                        t += _esc(j)
                elif kind == KIND_NUM or _JSON_PLAIN.fullmatch(v) is None:
                    return SLOW
                else:
                    t += b'"%b"'
                    (holes_log if which == 0 else holes_top).append(slice(*s))
            t += _esc(suffix)
            parts.append(t)
        log_t, top_t = parts
    else:
        raw_span = (0, len(line))
    raw = line[raw_span[0]:raw_span[1]]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return SLOW
    plan.json_msg = _JSON_PLAIN.fullmatch(raw) is None
    cls = an.class_of(raw, b"")
    # a keyword with digits (``signal 9 (sigkill)``) may be in another line of the shape
    dks = p._digit_keywords
    if dks:
        low = raw.translate(p._shape_tr).lower()
        if any(k in low for k in dks):
            return SLOW
    # metrics: the matches of the message, as Analyzer.metrics keeps them
    metric_t = b""
    holes_m: list[slice] = []
    zpos: list[int] = []
    names: list[bytes] = []
    if an.spec.on:
        seen: set[bytes] = set()
        base = raw_span[0]
        for m in METRIC_RE.finditer(raw):
            key = m.group(1)
            if _has_digit(key):
                return SLOW
            name = an._name(key)
            if name is None or name in seen:
                continue
            num = m.group(2)
            if num is not None and len(num) > MAX_NUMBER:
                continue
            seen.add(name)
            if num is None:
                return SLOW  # nan / inf
            if CANON_LIST.fullmatch(num.translate(_ONES)) is None:
                return SLOW  # a sign, ".5", "5.", a long exponent: number_text changes it
            a, b = m.span(2)
            lead = num[:1] == b"-"
            ip = num[lead:].split(b".")[0].split(b"e")[0].split(b"E")[0]
            if len(ip) > 1:
                zpos.append(base + a + lead)
            names.append(name)
            holes_m.append(slice(base + a, base + b))
        if names:
            metric_t = (b',"metrics":{' + b",".join(b'"' + n + b'":%b' for n in names) + b"}")
    error_t = b""
    if cls >= 0 or plan.level >= LEVEL_ERROR:  # an error event (no NaN metric: that was SLOW)
        if cls < 0:
            cls = an.other
        error_t = _esc(b',"error":{"class":"' + an.classes.names[cls].encode() + b'"}')
        plan.cls = cls + 1
    plan.metric_names = tuple(names)
    plan.nmetrics = len(names)
    if zpos:
        zg = _getter([slice(z, z + 1) for z in zpos])

        def zcheck(line: bytes, zg: Callable[[bytes], tuple[bytes, ...]] = zg) -> bool:
            return b"0" in zg(line)
        plan.zcheck = zcheck
    plan.ntime = len(pieces_time)
    slices = [*pieces_time, slice(*raw_span), *holes_log, *holes_m, *holes_top]
    plan.get = _getter(slices)
    k0 = plan.ntime + 1 + len(holes_log)
    plan.mslice = slice(k0, k0 + len(holes_m))
    msg = b"%b" if plan.json_msg else b'"%b"'
    idh = b"%x" if p._id_v1 else b"%b"
    tail = (msg + _esc(f.log_head) + b"%d" + log_t + _esc(f.doc_tail) + error_t + metric_t + top_t
            + _esc(f.doc_end))
    plan.tpl_t = b"%b" + idh + _esc(f.action_tail) + b'{"@timestamp":"%b%bZ","message":' + tail
    plan.tpl_r = b"%b" + idh + _esc(f.action_tail) + b"%b" + tail
    return plan


_ONES = bytes.maketrans(_DIGITS, b"1" * 10)


__all__ = ["SLOW", "LinePlan", "build_plan", "digit_keywords", "shape_table"]
