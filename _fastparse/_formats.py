"""Formats compiled once per parser, shared by both implementations.

A ``format`` string becomes a :class:`Format`: for the line formats (python, a Python
logging layout, a LogPAI template, a dissect pattern) one or more :class:`Program` s, a
list of matching operations run by the same backtracking matcher in both twins, plus
the emission plans that say where each capture goes in the document. Also here: the
time-zone table (UTC offsets and their changes, sampled once per zone) and the
calendar arithmetic both twins share.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from array import array
from datetime import datetime, timezone
from typing import Any

from ._common import json_string

# -- program operations -----------------------------------------------------------------
OP_END, OP_LIT, OP_WS, OP_CAP, OP_OPT, OP_OPTEND = range(6)
# capture modes
MODE_LAZY, MODE_FIRST, MODE_TIME, MODE_LEVEL = range(4)
# value kinds in emission plans
KIND_STR, KIND_NUM = 0, 1

FMT_PLAIN, FMT_PROGRAM, FMT_JSON, FMT_LOGFMT = range(4)

#: Root fields shipper writes: a capture with one of these names is refused.
RESERVED = ("@timestamp", "message", "log", "host", "event", "labels", "error", "metrics", "tags")
LEVEL_NAMES = ("Level", "level", "levelname")
CONTENT_NAMES = ("Content", "content")
#: level words the auto-detected python layouts accept (longest first where prefixes)
LEVEL_WORDS = (b"WARNING", b"WARN", b"CRITICAL", b"ERROR", b"INFO", b"DEBUG", b"FATAL",
               b"NOTSET", b"TRACE")
WHITESPACE = b" \t\n\r\x0b\x0c"

#: Template matching is tried on lines up to this many bytes (longer: no match); with
#: the failure memo the matcher's work is bounded by ops * len**2.
MAX_MATCH_BYTES = 4096


class Program:
    """One pattern: ``ops`` as (opcode, a, b) triples.

    LIT: a = index into ``lits``; WS: one or more whitespace bytes (greedy);
    CAP: a = slot, b = mode; OPT: a = index of the op after its OPTEND, b = group;
    OPTEND; END: the line must end here. ``groups[g]``: the slots inside group g.
    """

    __slots__ = ("groups", "lits", "ops")

    def __init__(self) -> None:
        self.ops: list[tuple[int, int, int]] = []
        self.lits: list[bytes] = []
        self.groups: list[list[int]] = []

    def lit(self, s: bytes) -> None:
        if self.ops and self.ops[-1][0] == OP_LIT:  # merge adjacent literals
            i = self.ops[-1][1]
            self.lits[i] += s
        else:
            self.lits.append(s)
            self.ops.append((OP_LIT, len(self.lits) - 1, 0))

    def ws(self) -> None:
        if not (self.ops and self.ops[-1][0] == OP_WS):
            self.ops.append((OP_WS, 0, 0))


class Format:
    """What a format string compiles to. Plans are lists of (prefix, slot, kind) and a
    suffix: the prefix bytes, then the slot's value (a JSON string, or a number)."""

    def __init__(self, kind: int, spec: str) -> None:
        self.kind = kind
        self.spec = spec
        self.programs: list[Program] = []
        self.slot_names: list[str] = []
        self.untagged_miss = False  # python auto: a line no layout matches is plain, untagged
        self.message_slot = -1
        self.log_plan: list[tuple[bytes, int, int]] = []
        self.log_suffix = b""
        self.top_plan: list[tuple[bytes, int, int]] = []
        self.top_suffix = b""
        self.time_candidates: list[list[int]] = []

    @property
    def nslots(self) -> int:
        return len(self.slot_names)

    @property
    def level_slot(self) -> int:
        """The slot written as ``log.level`` (its text gives ``ev_level``), or -1."""
        for prefix, slot, _ in self.log_plan:
            if prefix.endswith(b'"level":'):
                return slot
        return -1


def _check_name(name: str) -> None:
    if name in RESERVED:
        raise ValueError(f"format: the capture {name!r} would overwrite the root field {name!r} "
                         "that shipper writes; rename it")
    if not name:
        raise ValueError("format: empty capture name")


# -- plan building ------------------------------------------------------------------------

Tree = dict[str, Any]  # leaf: (slot, kind)


def _plan(tree: Tree) -> tuple[list[tuple[bytes, int, int]], bytes]:
    """Each key of ``tree`` as ``,"key":value`` (objects nested), as a plan."""
    plan: list[tuple[bytes, int, int]] = []
    pending = [b""]

    def walk(node: Tree, first_sep: bytes) -> None:
        sep = first_sep
        for key, val in node.items():
            pending[0] += sep + json_string(key) + b":"
            sep = b","
            if isinstance(val, dict):
                pending[0] += b"{"
                walk(val, b"")
                pending[0] += b"}"
            else:
                slot, kind = val
                plan.append((pending[0], slot, kind))
                pending[0] = b""

    walk(tree, b",")
    return plan, pending[0]


def _put(tree: Tree, path: str, leaf: tuple[int, int]) -> None:
    parts = path.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node.setdefault(parts[-1], leaf)


TIME_NAMES = ("time", "asctime", "date", "month", "day", "timestamp", "datetime")


def _time_candidates(names: list[str]) -> list[list[int]]:
    low: dict[str, int] = {}
    for i, n in enumerate(names):
        low.setdefault(n.lower(), i)
    cands: list[list[int]] = []
    for combo in (("asctime",), ("datetime",), ("time",), ("date", "time"), ("month", "day", "time"),
                  ("month", "date", "time"), ("date", "day", "time"), ("timestamp",), ("date",)):
        if all(c in low for c in combo):
            slots = sorted(low[c] for c in combo)  # in the line's order
            if slots not in cands:
                cands.append(slots)
    return cands


def _finish_captures(fmt: Format, names: list[str]) -> None:
    """Template and dissect captures: top-level under their names, Content -> message,
    a Level capture also in log.level."""
    fmt.slot_names = names
    top: Tree = {}
    log: Tree = {}
    for slot, name in enumerate(names):
        if name.startswith("?"):
            continue  # a dissect skip field
        if name in CONTENT_NAMES and fmt.message_slot < 0:
            fmt.message_slot = slot
            continue
        if name in LEVEL_NAMES and "level" not in log:
            log["level"] = (slot, KIND_STR)
        top.setdefault(name, (slot, KIND_STR))
    fmt.log_plan, fmt.log_suffix = _plan(log)
    fmt.top_plan, fmt.top_suffix = _plan(top)
    fmt.time_candidates = _time_candidates([n if not n.startswith("?") else "" for n in names])


# -- LogPAI templates -------------------------------------------------------------------------


def compile_template(spec: str) -> Format:
    fmt = Format(FMT_PROGRAM, spec)
    prog = Program()
    names: list[str] = []
    stack: list[int] = []  # indexes of open OPT ops
    i = 0
    n = len(spec)
    while i < n:
        c = spec[i]
        if c == "<":
            j = spec.find(">", i + 1)
            if j < 0:
                raise ValueError(f"format: unclosed '<' at {i} in {spec!r}")
            name = spec[i + 1:j]
            _check_name(name)
            if name in names:
                raise ValueError(f"format: the capture {name!r} appears twice")
            names.append(name)
            prog.ops.append((OP_CAP, len(names) - 1, MODE_LAZY))
            for g in stack:
                prog.groups[prog.ops[g][2]].append(len(names) - 1)
            i = j + 1
        elif c == "\\":
            if i + 1 >= n:
                raise ValueError("format: a trailing backslash")
            prog.lit(spec[i + 1].encode())
            i += 2
        elif c == " ":
            while i < n and spec[i] == " ":
                i += 1
            prog.ws()
        elif c == "(":
            prog.groups.append([])
            stack.append(len(prog.ops))
            prog.ops.append((OP_OPT, -1, len(prog.groups) - 1))
            i += 1
        elif c == ")" and stack:
            if spec[i + 1:i + 2] != "?":
                raise ValueError(f"format: only optional groups '( ... )?' are supported ({spec!r})")
            g = stack.pop()
            prog.ops.append((OP_OPTEND, 0, 0))
            prog.ops[g] = (OP_OPT, len(prog.ops), prog.ops[g][2])
            i += 2
        else:
            prog.lit(c.encode())
            i += 1
    if stack:
        raise ValueError(f"format: unclosed '(' in {spec!r}")
    if not names:
        raise ValueError(f"format: no <Field> in {spec!r}")
    prog.ops.append((OP_END, 0, 0))
    fmt.programs = [prog]
    _finish_captures(fmt, names)
    return fmt


# -- Python logging layouts -------------------------------------------------------------------

#: logging attribute -> (where in the document, kind); None: feeds @timestamp only
PY_FIELDS: dict[str, tuple[str, int] | None] = {
    "asctime": None,
    "created": None,
    "levelname": ("log.level", KIND_STR),
    "name": ("log.logger", KIND_STR),
    "message": ("message", KIND_STR),
    "process": ("process.pid", KIND_NUM),
    "processName": ("process.name", KIND_STR),
    "thread": ("process.thread.id", KIND_NUM),
    "threadName": ("process.thread.name", KIND_STR),
    "filename": ("log.origin.file.name", KIND_STR),
    "lineno": ("log.origin.file.line", KIND_NUM),
    "funcName": ("log.origin.function", KIND_STR),
    "module": ("log.origin.module", KIND_STR),
}
_PY_ATTR = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]")


def _layout_program(spec: str, names: list[str], auto: bool) -> Program:
    prog = Program()
    pos = 0
    for m in _PY_ATTR.finditer(spec):
        _layout_literal(prog, spec[pos:m.start()])
        attr = m.group(1)
        if attr not in names:
            names.append(attr)
        elif auto is False:
            raise ValueError(f"format: %({attr}) appears twice")
        mode = MODE_LAZY
        if attr == "asctime":
            mode = MODE_TIME
        elif attr == "levelname" and auto:
            mode = MODE_LEVEL
        prog.ops.append((OP_CAP, names.index(attr), mode))
        pos = m.end()
    _layout_literal(prog, spec[pos:])
    prog.ops.append((OP_END, 0, 0))
    return prog


def _layout_literal(prog: Program, text: str) -> None:
    text = text.replace("%%", "%")
    for k, piece in enumerate(re.split(r" +", text)):
        if k:
            prog.ws()
        if piece:
            prog.lit(piece.encode())


def _finish_layout(fmt: Format, names: list[str]) -> None:
    fmt.slot_names = names
    log: Tree = {}
    top: Tree = {}
    for slot, attr in enumerate(names):
        where = PY_FIELDS.get(attr, (attr, KIND_STR))
        if attr not in PY_FIELDS:
            _check_name(attr)
        if where is None:
            continue
        path, kind = where
        if path == "message":
            fmt.message_slot = slot
        elif path.startswith("log."):
            _put(log, path[4:], (slot, kind))
        else:
            _put(top, path, (slot, kind))
    fmt.log_plan, fmt.log_suffix = _plan(log)
    fmt.top_plan, fmt.top_suffix = _plan(top)
    fmt.time_candidates = [[names.index(a)] for a in ("asctime", "created") if a in names]


PYTHON_LAYOUTS = (
    "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
    "%(asctime)s %(levelname)s %(name)s: %(message)s",
    "%(levelname)s:%(name)s:%(message)s",
)


def compile_layout(spec: str) -> Format:
    fmt = Format(FMT_PROGRAM, spec)
    names: list[str] = []
    fmt.programs = [_layout_program(spec, names, False)]
    if not names:
        raise ValueError(f"format: no %(attribute)s in {spec!r}")
    _finish_layout(fmt, names)
    return fmt


def compile_python() -> Format:
    fmt = Format(FMT_PROGRAM, "python")
    names: list[str] = ["asctime", "name", "levelname", "message"]
    fmt.programs = [_layout_program(s, names, True) for s in PYTHON_LAYOUTS]
    fmt.untagged_miss = True
    _finish_layout(fmt, names)
    return fmt


# -- dissect ------------------------------------------------------------------------------------

_DISSECT_KEY = re.compile(r"%\{([^}]*)\}")


def compile_dissect(spec: str) -> Format:
    fmt = Format(FMT_PROGRAM, spec)
    prog = Program()
    names: list[str] = []
    pos = 0
    last_was_cap = False
    for m in _DISSECT_KEY.finditer(spec):
        if m.start() > pos:
            prog.lit(spec[pos:m.start()].encode())
            last_was_cap = False
        elif last_was_cap:
            raise ValueError(f"format: two dissect fields without a delimiter between them in {spec!r}")
        key = m.group(1)
        pad = key.endswith("->")
        if pad:
            raise ValueError("format: the dissect modifier '->' is not supported")
        if key.startswith(("+", "*", "&")) or "/" in key:
            raise ValueError(f"format: the dissect modifier in %{{{key}}} is not supported")
        if key == "" or key.startswith("?"):
            name = "?" + key[1:] + f"#{len(names)}"
        else:
            _check_name(key)
            if key in names:
                raise ValueError(f"format: %{{{key}}} appears twice")
            name = key
        names.append(name)
        prog.ops.append((OP_CAP, len(names) - 1, MODE_FIRST))
        last_was_cap = True
        pos = m.end()
    if pos < len(spec):
        prog.lit(spec[pos:].encode())
    prog.ops.append((OP_END, 0, 0))
    fmt.programs = [prog]
    _finish_captures(fmt, names)
    return fmt


def compile_format(spec: str) -> Format:
    if not isinstance(spec, str):
        raise TypeError(f"format must be a str, not {type(spec).__name__}")
    if spec == "plain":
        return Format(FMT_PLAIN, spec)
    if spec == "json":
        return Format(FMT_JSON, spec)
    if spec == "logfmt":
        return Format(FMT_LOGFMT, spec)
    if spec == "python":
        return compile_python()
    if "%(" in spec:
        return compile_layout(spec)
    if "%{" in spec:
        return compile_dissect(spec)
    if re.search(r"<[^<>]+>", spec):
        return compile_template(spec)
    raise ValueError(f"format: {spec!r} is none of plain, json, logfmt, python, a logging layout "
                     "(%(name)s), a dissect pattern (%{name}) or a template (<Name>)")


# -- calendar and zones ---------------------------------------------------------------------------


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


_SAMPLE_FROM = calendar.timegm((1970, 1, 1, 0, 0, 0))
_SAMPLE_TO = calendar.timegm((2100, 1, 1, 0, 0, 0))
FAR_PAST = -(1 << 62)


def _host_is_utc() -> bool:
    """True when the host's local time is UTC: the usual zone of servers and containers."""
    return time.timezone == 0 and time.altzone == 0 and not time.daylight and time.tzname[0] in ("UTC", "UCT")


@functools.lru_cache(maxsize=64)
def zone_table(tz: str | None) -> tuple[bytes, bytes]:
    """(change times, offsets): native int64 arrays; ``offsets[i]`` (seconds east of UTC)
    holds from ``times[i]`` (UTC seconds) on; ``times[0]`` is far in the past.

    Sampled daily 1970..2100 and bisected to the second at each change, once per zone.
    ``None``: the host's local zone (``time.localtime``)."""
    if tz is None and _host_is_utc():
        tz = "UTC"  # sampling the host zone costs ~24 ms; on a UTC host it is this table
    if tz is None:
        def off(t: int) -> int:
            return time.localtime(t).tm_gmtoff
    elif tz in ("UTC", "Etc/UTC", "Z"):
        return array("q", [FAR_PAST]).tobytes(), array("q", [0]).tobytes()
    else:
        try:
            from zoneinfo import ZoneInfo
            zi = ZoneInfo(tz)
        except Exception as e:  # ZoneInfoNotFoundError, ValueError for odd keys
            raise ValueError(f"timezone: unknown time zone {tz!r}") from e

        def off(t: int) -> int:
            u = datetime.fromtimestamp(t, timezone.utc).astimezone(zi).utcoffset()
            return int(u.total_seconds()) if u is not None else 0

    times = array("q", [FAR_PAST])
    offs = array("q", [off(_SAMPLE_FROM)])
    prev_t, prev_o = _SAMPLE_FROM, offs[0]
    t = _SAMPLE_FROM
    while t < _SAMPLE_TO:
        t += 86400
        o = off(t)
        if o != prev_o:
            lo, hi = prev_t, t  # off(lo) == prev_o, off(hi) == o
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if off(mid) == prev_o:
                    lo = mid
                else:
                    hi = mid
            times.append(hi)
            offs.append(o)
            prev_o = o
        prev_t = t
    return times.tobytes(), offs.tobytes()


def index_granularity(pattern: str) -> int:
    """Milliseconds over which ``pattern`` formats to the same index name."""
    directives = set(re.findall(r"%.", pattern.replace("%%", "")))
    if directives & {"%S", "%s", "%c", "%X", "%T", "%f", "%r", "%+"}:
        return 1000
    if directives & {"%M", "%R"}:
        return 60000
    if directives & {"%H", "%I", "%p", "%k", "%l"}:
        return 3600000
    return 86400000
