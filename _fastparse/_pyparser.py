"""The pure-Python parser: the reference twin of ``_cparser.pyx``, byte for byte.

Used when the extension is not built or ``SHIPPER_NO_EXTENSIONS`` is set. Kept simple
(``bytes.split``, ``bytes.decode("utf-8", "replace")``, orjson for escaping, which
escapes exactly as the message rules say) with one fast path for the common line: short
enough, valid UTF-8, no tags. See the package docstring for the format.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from functools import partial
from itertools import accumulate
from struct import pack as _pack
from typing import Any

from orjson import loads as _json_loads

from ._analysis import _NOISE, CANON_LIST, Analyzer, clean_line
from ._common import (
    LEVEL_ERROR,
    TAG_INCOMPLETE,
    TAG_INVALID_UTF8,
    TAG_PARSE_ERROR,
    TAG_TRUNCATED,
    Batch,
    EventTime,
    Fragments,
    _json_dumps,
    check_args,
    check_labels,
    format_ms,
    level_code,
)
from ._fastpath import ProgramRegex, program_regex
from ._formats import (
    FMT_JSON,
    FMT_LOGFMT,
    FMT_PLAIN,
    FMT_PROGRAM,
    KIND_NUM,
    LEVEL_WORDS,
    MAX_MATCH_BYTES,
    MODE_FIRST,
    MODE_LEVEL,
    MODE_TIME,
    OP_CAP,
    OP_END,
    OP_LIT,
    OP_OPT,
    OP_WS,
    RESERVED,
    WHITESPACE,
    Format,
    Program,
    civil_from_days,
    compile_format,
    days_from_civil,
    zone_table,
)
from ._ids import event_id_bytes, id_batcher
from ._metrics import MAX_NUMBER, METRIC_RE
from ._multiline import (
    CHAIN,
    EG_HEADER,
    EXC,
    FRAMES,
    GROUP,
    JAVA,
    NORMAL,
    TB_HEADER,
    Config,
    error_fields,
    first_state,
    next_state,
    parse_config,
)
from ._shapes import SLOW, LinePlan, build_plan, digit_keywords, shape_table

__all__ = ["Batch", "Parser"]

_CR = 13

#: What a format makes of a line: (time or None, message JSON, log members, top-level members,
#: invalid_utf8 bit, message raw bytes, level raw bytes or None, the JSON object or None)
_Parsed = tuple[int | None, bytes, bytes, bytes, int, bytes, "bytes | None", "dict[str, Any] | None"]


def _utf8_len(lead: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts (0: not a multi-byte lead)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def cut_point(content: bytes, limit: int) -> int:
    """Where to cut an over-long line: ``limit``, or up to 3 bytes less so as not to split
    a valid UTF-8 sequence. ``content`` is the line (or at least its first limit+3 bytes)."""
    for back in (1, 2, 3):
        p = limit - back
        if p < 0:
            break
        b = content[p]
        if 0x80 <= b <= 0xBF:  # a continuation byte: look further back
            continue
        n = _utf8_len(b)
        if n > back and p + n <= len(content):
            try:
                content[p:p + n].decode("utf-8")
            except UnicodeDecodeError:
                break
            return p
        break
    return limit


def _extend(arr: array[Any], values: list[Any]) -> None:
    """``arr.extend(values)`` packed by ``struct`` in one call: ``array`` converts each item
    with ``PyArg_Parse`` (a format string parsed per item), struct's native codes (the
    sizes ``array`` uses) convert the same numbers the same way, several times cheaper."""
    if values:
        arr.frombytes(_pack(f"{len(values)}{arr.typecode}", *values))


def _q(values: Sequence[int]) -> bytes:
    """``array("q", values).tobytes()``, packed by ``struct`` (see ``_extend``)."""
    return _pack(f"{len(values)}q", *values)


def _hex_id(off: int) -> bytes:
    return b"%x" % off


def _esc(b: bytes) -> bytes:
    return b.replace(b"%", b"%%")


def _text(b: bytes) -> tuple[bytes, int]:
    """``b`` as a JSON string and the invalid_utf8 tag bit when it had to be repaired."""
    try:
        return _json_dumps(b.decode("utf-8")), 0
    except UnicodeDecodeError:
        return _json_dumps(b.decode("utf-8", "replace")), TAG_INVALID_UTF8


def _render(plan: list[tuple[bytes, int, int]], suffix: bytes, vals: Any,
            caches: list[dict[bytes, tuple[bytes, int]]] | None = None) -> tuple[bytes, int]:
    """A plan's captures as JSON members: each prefix, then the slot's value (a number for
    ``KIND_NUM``, else a string), then ``suffix``; and the invalid_utf8 tag bit. With
    ``caches`` (a dict per slot) the JSON of each slot's values is remembered: levels,
    loggers and components repeat from line to line (the twin's fast path)."""
    out = []
    bad = 0
    for prefix, slot, kind in plan:
        out.append(prefix)
        v = vals[slot]
        if v is None:
            out.append(b"null")
        elif kind == KIND_NUM:
            out.append(b"%d" % int(v) if v.isdigit() and len(v) <= 18 else b"null")
        else:
            jb: tuple[bytes, int] | None
            if caches is None:
                jb = _text(v)
            else:
                c = caches[slot]
                jb = c.get(v)
                if jb is None:
                    if len(c) >= 1024:
                        c.clear()
                    jb = c[v] = _text(v)
            out.append(jb[0])
            bad |= jb[1]
    out.append(suffix)
    return b"".join(out), bad


def epoch_ms(v: Any) -> int | None:
    """A JSON number as a time: seconds below 1e11, ms below 1e14, us below 1e17, else ns."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    a = abs(v)
    if isinstance(v, int):
        ms = v * 1000 if a < 10**11 else v if a < 10**14 else v // 1000 if a < 10**17 else v // 1000000
    else:
        ms = round(v * 1000) if a < 1e11 else round(v) if a < 1e14 else round(v / 1000) if a < 1e17 \
            else round(v / 1e6)
    return ms if 0 <= ms <= _MAX_MS else None
# -- time ---------------------------------------------------------------------------------

_MONTHS = {m.encode(): i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_MIN_YEAR = 1970
_FUTURE_SLACK = 7 * 86400  # a year-less time this far after the read time is last year's
_TIME_MAX = 255  # longest time text tried
_T = 13  # the token value of a lone 'T' (months are 1..12)


class Zone:
    """UTC offsets of one zone (see ``_formats.zone_table``), looked up by bisection."""

    __slots__ = ("offs", "times")

    def __init__(self, tz: str | None) -> None:
        t, o = zone_table(tz)
        self.times = array("q", t).tolist()
        self.offs = array("q", o).tolist()

    def off_at(self, u: int) -> int:
        return self.offs[bisect_right(self.times, u) - 1]

    def local_to_utc(self, local: int) -> int:
        o1 = self.off_at(local)
        return local - self.off_at(local - o1)


def _isdigit(c: int) -> bool:
    return 48 <= c <= 57


def _isalpha(c: int) -> bool:
    return 65 <= c <= 90 or 97 <= c <= 122


_TOKENS = re.compile(rb"[0-9]+|[A-Za-z]+").finditer


def parse_time(s: bytes, zone: Zone, read_ms: int) -> int | None:
    """Milliseconds since the epoch of a time written in ``s``, or None. See the package
    docstring for the shapes; mirrored by ``parse_time`` in ``_cparser.pyx``."""
    n = len(s)
    if n == 0 or n > _TIME_MAX:
        return None
    # tokens: (is_num, start, end, value)
    toks: list[tuple[bool, int, int, int]] = []
    for m in _TOKENS(s):  # runs of digits, runs of letters; other bytes separate them
        run = m.group()
        i = m.start()
        j = i + len(run)
        if run[0] <= 57:
            if j - i > 18:
                return None
            toks.append((True, i, j, int(run)))
        else:
            word = run.lower()
            toks.append((False, i, j, _MONTHS.get(word, 0) if j - i == 3 else (_T if word == b"t" else 0)))
        if len(toks) > 24:
            return None
    nt = len(toks)
    if nt == 0:
        return None
    # epoch seconds (10 digits, optional fraction) or milliseconds (13 digits)
    t0 = toks[0]
    if t0[0] and t0[1] == 0:
        nd = t0[2]
        if nd == n and nd == 13:
            return t0[3] if t0[3] <= _MAX_MS else None
        if nd == 10 and (nd == n or (nt == 2 and toks[1][0] and s[nd] == 46 and toks[1][1] == nd + 1
                                     and toks[1][2] == n)):
            frac = _frac_ms(s, toks[1][1], toks[1][2]) if nt == 2 else 0
            return t0[3] * 1000 + frac
    # the time of day: H:MM[:SS]
    k = -1
    for x in range(nt - 1):
        a, b = toks[x], toks[x + 1]
        if a[0] and b[0] and a[2] - a[1] <= 2 and a[2] < n and s[a[2]] == 58 and b[1] == a[2] + 1 \
                and b[2] - b[1] == 2:
            k = x
            break
    frac = 0
    year = month = day = -1
    zoff: int | None = None
    if k >= 0:
        hh, mi, ss = toks[k][3], toks[k + 1][3], 0
        nxt = k + 2
        last = toks[k + 1]
        if nxt < nt and last[2] < n and s[last[2]] == 58 and toks[nxt][0] and toks[nxt][1] == last[2] + 1 \
                and toks[nxt][2] - toks[nxt][1] == 2:
            ss = toks[nxt][3]
            last = toks[nxt]
            nxt += 1
        if nxt < nt and last[2] < n and toks[nxt][0] and toks[nxt][1] == last[2] + 1:
            sep = s[last[2]]
            nd = toks[nxt][2] - toks[nxt][1]
            if sep in (46, 44) or (sep == 58 and nd == 3):
                frac = _frac_ms(s, toks[nxt][1], toks[nxt][2])
                last = toks[nxt]
                nxt += 1
        zoff, zend = _zone_at(s, last[2])
        # the date: tokens before the time
        mon = 0
        for x in range(k):
            if not toks[x][0] and 1 <= toks[x][3] <= 12:
                mon = toks[x][3]
                break
        nums = [t for t in toks[:k] if t[0]]
        if mon:
            month = mon
            days = [t for t in nums if t[2] - t[1] <= 2]
            years = [t for t in nums if t[2] - t[1] == 4]
            if not days:
                return None
            day = days[0][3]
            if years:
                year = years[0][3]
            else:  # a year after the time (ctime: "Sun Dec 04 04:47:44 2005")
                for t in toks[nxt:]:
                    if t[1] >= zend and t[0] and t[2] - t[1] == 4:
                        year = t[3]
                    break
        elif len(nums) == 1 and nums[0][2] - nums[0][1] in (6, 8):
            year, month, day = _compact_date(nums[0])
        elif len(nums) == 3 and nums[1][2] - nums[1][1] <= 2 and nums[2][2] - nums[2][1] <= 2:
            d0 = nums[0][2] - nums[0][1]
            if d0 == 4:
                year = nums[0][3]
            elif d0 <= 2:
                year = 2000 + nums[0][3]
            else:
                return None
            month, day = nums[1][3], nums[2][3]
        elif len(nums) == 2 and nums[0][2] - nums[0][1] <= 2 and nums[1][2] - nums[1][1] <= 2:
            month, day = nums[0][3], nums[1][3]
        else:
            return None
    else:
        nums = [t for t in toks if t[0]]
        if any(not t[0] and t[3] != _T for t in toks):
            return None
        digits = [t[2] - t[1] for t in nums]
        if len(nums) >= 6 and digits[0] == 4 and all(d <= 2 for d in digits[1:6]) and len(nums) <= 7:
            year, month, day = nums[0][3], nums[1][3], nums[2][3]
            hh, mi, ss = nums[3][3], nums[4][3], nums[5][3]
            if len(nums) == 7:
                frac = _frac_ms(s, nums[6][1], nums[6][2])
        elif len(nums) == 2 and digits[0] in (6, 8) and digits[1] == 6:
            year, month, day = _compact_date(nums[0])
            v = nums[1][3]
            hh, mi, ss = v // 10000, v // 100 % 100, v % 100
        else:
            return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hh <= 23 and mi <= 59 and ss <= 60):
        return None
    secs = hh * 3600 + mi * 60 + ss
    if year < 0:  # infer: the read time's year, or the one before across New Year
        rsec = read_ms // 1000
        rlocal = rsec + zone.off_at(rsec) if zoff is None else rsec + zoff
        year = civil_from_days(rlocal // 86400)[0]
        local = days_from_civil(year, month, day) * 86400 + secs
        if local - rlocal > _FUTURE_SLACK:
            year -= 1
    if not _MIN_YEAR <= year <= 9999:
        return None
    local = days_from_civil(year, month, day) * 86400 + secs
    utc = local - zoff if zoff is not None else zone.local_to_utc(local)
    ms = utc * 1000 + frac
    if not 0 <= ms <= _MAX_MS:
        return None
    return ms


#: "000".."999" -> int, and back
_MS3 = {b"%03d" % i: i for i in range(1000)}
_FRAC = [b"%03d" % i for i in range(1000)]


def _numbers(texts: list[bytes]) -> list[float] | list[int | float]:
    """``float`` of each plain JSON number in ``texts``, parsed in one go (orjson reads a
    number to the same double as ``float``; an integer comes back as an int, which
    ``array('d')`` converts exactly as ``float`` does, except "-0": that list is done one
    by one)."""
    if b"-0" in texts:
        return list(map(float, texts))
    return _json_loads(b"[" + b",".join(texts) + b"]")


#: A time whose milliseconds ``_time_of`` adds to its second's cached time.
_ISO_MS = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}[,.][0-9]{3}")


def _frac_ms(s: bytes, a: int, b: int) -> int:
    d = s[a:min(b, a + 3)]
    return int(d + b"0" * (3 - len(d)))


def _compact_date(t: tuple[bool, int, int, int]) -> tuple[int, int, int]:
    v = t[3]
    if t[2] - t[1] == 8:
        return v // 10000, v // 100 % 100, v % 100
    return 2000 + v // 10000, v // 100 % 100, v % 100


def _zone_at(s: bytes, p: int) -> tuple[int | None, int]:
    """A zone written at ``s[p:]`` (after spaces): Z, UTC, GMT, +hh, +hhmm, +hh:mm."""
    n = len(s)
    while p < n and s[p] == 32:
        p += 1
    if p >= n:
        return None, p
    c = s[p]
    if c == 90 and (p + 1 == n or not _isalpha(s[p + 1])):
        return 0, p + 1
    if s[p:p + 3] in (b"UTC", b"GMT") and (p + 3 == n or not _isalpha(s[p + 3])):
        return 0, p + 3
    if c in (43, 45):
        q = p + 1
        while q < n and _isdigit(s[q]):
            q += 1
        nd = q - p - 1
        hh = mm = -1
        if nd == 4:
            hh, mm = int(s[p + 1:p + 3]), int(s[p + 3:p + 5])
        elif nd == 2:
            hh, mm = int(s[p + 1:p + 3]), 0
            if q + 2 < n and s[q] == 58 and _isdigit(s[q + 1]) and _isdigit(s[q + 2]) \
                    and (q + 3 == n or not _isdigit(s[q + 3])):
                mm = int(s[q + 1:q + 3])
                q += 3
        if 0 <= hh <= 23 and 0 <= mm <= 59:
            o = hh * 3600 + mm * 60
            return (o if c == 43 else -o), q
    return None, p


# -- the matcher ----------------------------------------------------------------------------

_WS = frozenset(WHITESPACE)
#: calls of the matcher's step function per line before it gives up (no match)
MATCH_BUDGET = 20000


class _Budget(Exception):
    pass


#: ``YYYY-mm-dd[ T]HH:MM:SS``: the head of ``ts_shape_len``'s shape.
_TS_HEAD = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}")


def ts_shape_len(line: bytes, p: int) -> int:
    """Length of ``YYYY-mm-dd[ T]HH:MM:SS[.,frac][zone]`` at ``line[p:]``, else 0."""
    n = len(line)
    if _TS_HEAD.match(line, p) is None:
        return 0
    q = p + 19
    if q + 1 < n and line[q] in (46, 44) and 48 <= line[q + 1] <= 57:
        q += 2
        while q < n and 48 <= line[q] <= 57:
            q += 1
    if q < n and line[q] == 90:
        q += 1
    elif q + 2 < n and line[q] in (43, 45) and 48 <= line[q + 1] <= 57 and 48 <= line[q + 2] <= 57:
        if q + 5 < n and line[q + 3] == 58 and 48 <= line[q + 4] <= 57 and 48 <= line[q + 5] <= 57:
            q += 6
        elif q + 4 < n and 48 <= line[q + 3] <= 57 and 48 <= line[q + 4] <= 57:
            q += 5
        else:
            q += 3
    return q - p


def level_len(line: bytes, p: int) -> int:
    for w in LEVEL_WORDS:
        if line.startswith(w, p):
            return len(w)
    return 0


def match(prog: Program, line: bytes, caps: list[tuple[int, int] | None]) -> bool:
    """Run ``prog`` on the whole ``line`` (backtracking, leftmost-first like ``re``, with a
    memo of failed (op, position) states); fills ``caps`` with (start, end) per slot."""
    ops = prog.ops
    lits = prog.lits
    groups = prog.groups
    n = len(line)
    width = n + 1
    failed: set[int] = set()
    steps = [MATCH_BUDGET]

    def m(e: int, p: int) -> bool:
        steps[0] -= 1
        if steps[0] < 0:
            raise _Budget
        key = e * width + p
        if key in failed:
            return False
        op, a, b = ops[e]
        ok = False
        if op == OP_LIT:
            s = lits[a]
            ok = line.startswith(s, p) and m(e + 1, p + len(s))
        elif op == OP_CAP:
            ok = cap(e, p, a, b)
        elif op == OP_WS:
            k = p
            while k < n and line[k] in _WS:
                k += 1
            while k > p:
                if m(e + 1, k):
                    ok = True
                    break
                k -= 1
        elif op == OP_END:
            ok = p == n
        elif op == OP_OPT:
            if m(e + 1, p):
                return True
            for s_ in groups[b]:
                caps[s_] = None
            ok = m(a, p)
        else:  # OP_OPTEND
            ok = m(e + 1, p)
        if not ok:
            failed.add(key)
        return ok

    def cap(e: int, p: int, slot: int, mode: int) -> bool:
        if mode == MODE_LEVEL:
            k = level_len(line, p)
            if not k:
                return False
            caps[slot] = (p, p + k)
            return m(e + 1, p + k)
        if mode == MODE_TIME:
            k = ts_shape_len(line, p)
            if k:
                caps[slot] = (p, p + k)
                return m(e + 1, p + k)
        nop, na, _ = ops[e + 1]
        if nop == OP_END:
            caps[slot] = (p, n)
            return m(e + 1, n)
        if mode == MODE_FIRST:  # dissect: up to the first occurrence of the delimiter
            q = line.find(lits[na], p)
            if q < 0:
                return False
            caps[slot] = (p, q)
            return m(e + 1, q)
        if nop == OP_LIT:
            s = lits[na]
            q = line.find(s, p)
            while q >= 0:
                caps[slot] = (p, q)
                if m(e + 1, q):
                    return True
                q = line.find(s, q + 1)
            return False
        for q in range(p, n + 1):
            if nop == OP_WS and (q == n or line[q] not in _WS):
                continue
            caps[slot] = (p, q)
            if m(e + 1, q):
                return True
        return False

    if n > MAX_MATCH_BYTES:
        return False
    try:
        return m(0, 0)
    except _Budget:
        return False


# -- logfmt -----------------------------------------------------------------------------------

LOGFMT_MAX_PAIRS = 128
_UNESC = {ord("n"): b"\n", ord("t"): b"\t", ord("r"): b"\r", ord('"'): b'"', ord("\\"): b"\\"}


def logfmt_pairs(line: bytes) -> list[tuple[int, int, int, int, int]]:
    """(key start, key end, value start, value end, kind) per pair; kind 0 bare value,
    1 quoted, 2 no ``=`` (a bare key)."""
    n = len(line)
    out: list[tuple[int, int, int, int, int]] = []
    i = 0
    while i < n and len(out) < LOGFMT_MAX_PAIRS:
        while i < n and line[i] in _WS:
            i += 1
        if i >= n:
            break
        ks = i
        while i < n and line[i] not in _WS and line[i] != 61:
            i += 1
        ke = i
        if ke == ks:  # a token starting with '='
            i += 1
            continue
        if i < n and line[i] == 61:
            i += 1
            if i < n and line[i] == 34:
                i += 1
                vs = i
                while i < n and line[i] != 34:
                    i += 2 if line[i] == 92 and i + 1 < n else 1
                out.append((ks, ke, vs, i, 1))
                if i < n:
                    i += 1
            else:
                vs = i
                while i < n and line[i] not in _WS:
                    i += 1
                out.append((ks, ke, vs, i, 0))
        else:
            out.append((ks, ke, ke, ke, 2))
    return out


def logfmt_unescape(v: bytes) -> bytes:
    if 92 not in v:
        return v
    out = bytearray()
    i = 0
    n = len(v)
    while i < n:
        c = v[i]
        if c == 92 and i + 1 < n and v[i + 1] in _UNESC:
            out += _UNESC[v[i + 1]]
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


_TB_STATES = (FRAMES, EXC, CHAIN, GROUP)
#: Lines that continue a group in state NORMAL (multiline auto): a traceback header, an
#: exception group header, a Java frame.
_ML_STARTERS = re.compile(b"^(?:" + re.escape(TB_HEADER) + b"\r?$|" + re.escape(EG_HEADER) + b"\r?$|\tat )", re.M)
#: The same after a newline: a literal first byte the regex engine looks for, not a ``^``
#: tried at every byte of a chunk (the first line of a chunk: ``_ML_STARTERS.match``).
_ML_STARTERS_NL = re.compile(b"\n(?:" + re.escape(TB_HEADER) + b"\r?(?=\n|\\Z)|" + re.escape(EG_HEADER)
                             + b"\r?(?=\n|\\Z)|\tat )")


class _Group:
    """The open multiline event: its lines (each cut at max_line_bytes) and bookkeeping."""

    __slots__ = ("blanks", "cut", "end", "incomplete", "java", "last_ms", "length", "line", "lines", "ms",
                 "nbytes", "off", "orig", "state", "state0", "tb", "trunc")

    def __init__(self, cut: bytes, length: int, off: int, end: int, ms: int, state: int, line: int,
                 incomplete: bool, limit: int) -> None:
        self.end = end  # the file offset after its last line (and that line's newline)
        self.lines = [cut]
        self.length = length  # the first line's full length
        self.orig = length  # the full length of all lines joined with "\n"
        self.trunc = length > limit  # a line was cut at max_line_bytes
        self.cut = False  # cut by max_lines / max_bytes
        self.nbytes = len(cut)
        self.blanks = 0  # empty lines seen after the last line, not yet part of the event
        self.off = off
        self.ms = ms  # read time of the feed that brought the first line
        self.last_ms = ms  # ... and the last one
        self.state = self.state0 = state
        self.tb = state in _TB_STATES
        self.java = state == JAVA
        self.line = line  # index of the first line among all lines consumed
        self.incomplete = incomplete


class Parser:
    """Turns appended log bytes into ``_bulk`` items. See the package docstring."""

    __slots__ = ("_action_head", "_an", "_arr", "_cap", "_digit_keywords", "_doc_head", "_fast", "_fmt", "_frags",
                 "_g", "_heads_ms", "_hold", "_id", "_id_v1", "_ids_of", "_json_root", "_last_cr", "_lv_codes", "_max",
                 "_ml", "_nline", "_offset", "_plans", "_prx", "_prx0", "_read_ms", "_sec_cache", "_sec_heads", "_secs",
                 "_seen", "_shape_tr", "_skip", "_slot_json", "_tc_ms", "_tcache", "_time", "_times", "_tpl",
                 "_tpl_r", "_tpl_t", "_tslot", "_zone")

    def __init__(self, *, input_id: str, path: str, host_name: str, id_prefix: str,
                 index_pattern: str, start_offset: int = 0,
                 max_line_bytes: int = 1048576, format: str = "plain",
                 timezone: str | None = None, json_root: bool = False, multiline: Any = "none",
                 progress: str = "last", metrics: Any = "auto",
                 error_classes: dict[str, list[str]] | None = None,
                 labels: dict[str, str] | None = None, predictions: dict[str, Any] | None = None,
                 id_key: bytes | None = None) -> None:
        check_args(input_id, path, host_name, id_prefix, index_pattern, start_offset,
                   max_line_bytes, timezone, id_key)
        labels = check_labels(labels)
        self._an = Analyzer(error_classes, metrics, predictions, progress)
        self._arr = Batch.collector()
        self._ml: Config | None = parse_config(multiline)
        self._g: _Group | None = None
        self._nline = 0  # lines consumed (multiline mode)
        self._fmt: Format = compile_format(format)
        self._prx: list[ProgramRegex | None] = [program_regex(p, MATCH_BUDGET) for p in self._fmt.programs]
        self._zone = Zone(timezone) if self._fmt.kind != FMT_PLAIN else None
        self._json_root = bool(json_root)
        self._read_ms = 0
        self._sec_cache: dict[tuple[bytes, int], int | None] = {}
        self._heads_ms: tuple[int, bytes, bytes] = (-1, b"", b"")
        self._frags = Fragments(input_id=input_id, path=path, host_name=host_name,
                                id_prefix=id_prefix, labels=labels, id_key=id_key)
        # the `_id` after the action head's prefix: hex offset (contract v1) or hash (v2)
        self._id: Callable[[int], bytes] = _hex_id if id_key is None else partial(event_id_bytes, id_key)
        # the same for many offsets at once (v2; the fast paths), None for v1
        self._ids_of = None if id_key is None else id_batcher(id_key)
        self._time = EventTime(index_pattern)
        self._times: tuple[bytes, bytes] | None = None
        self._action_head = b""
        self._doc_head = b""
        self._tpl = b""
        self._max = int(max_line_bytes)
        self._cap = self._max + 4  # bytes of a partial line held; beyond: counted only
        self._offset = int(start_offset)
        self._hold = bytearray()
        self._skip = 0  # bytes of the partial line past the held ones
        self._last_cr = False  # the partial line's last byte is "\r"
        self._fast_setup()

    @property
    def offset(self) -> int:
        return self._offset if self._g is None else self._g.off

    @property
    def pending(self) -> int:
        return self._offset - self.offset + len(self._hold) + self._skip

    # -- per feed -------------------------------------------------------------------

    def _prepare(self, read_time_ms: int) -> None:
        self._read_ms = int(read_time_ms)
        times = self._time.get(read_time_ms)
        if times is self._times:
            return
        self._times = times
        f = self._frags
        self._action_head, self._doc_head = f.heads(*times)
        # One bytes-% template for the common event: (id, message JSON, offset).
        self._tpl = (_esc(self._action_head) + b"%b" + _esc(f.action_tail + self._doc_head)
                     + b"%b" + _esc(f.log_head) + b"%d" + _esc(f.doc_tail + f.doc_end))

    def _event(self, content: bytes, length: int, off: int, tags: int, nbytes: int, cont: bytes = b"",
               error: bytes = b"", trace: bool = False) -> bytes:
        """The general event: ``content`` is the line (cleaned of terminal noise), or its
        head when longer than held (or already cut); ``length`` the line's full length,
        ``nbytes`` the file bytes the event consumed; ``cont`` continuation lines for
        ``message`` ("\\n" first), ``error`` the ``"type"..."stack_trace"`` members of a
        grouped ``trace``. Appends the event's entries to the batch's arrays."""
        f = self._frags
        orig = b""
        if length > self._max:
            if len(content) > self._max:
                content = content[:cut_point(content, self._max)]
            tags |= TAG_TRUNCATED
            orig = f.original_length + b"%d" % length
        kind = self._fmt.kind
        parsed: _Parsed | None = None
        if kind == FMT_PROGRAM:
            parsed = self._program_doc(content)
        elif kind == FMT_LOGFMT:
            parsed = self._logfmt_doc(content)
        elif kind == FMT_JSON:
            parsed = self._json_doc(content)
        action_head, doc_head = self._action_head, self._doc_head
        ev_ms = self._read_ms
        obj = None
        level = None
        if parsed is None:
            if kind != FMT_PLAIN and not self._fmt.untagged_miss:
                tags |= TAG_PARSE_ERROR
            msg, bad = _text(content)
            raw = content
            log_extra = top_extra = b""
        else:
            ms, msg, log_extra, top_extra, bad, raw, level, obj = parsed
            if ms is not None:
                action_head, doc_head = self._heads(ms)
                ev_ms = ms
        if cont:
            cj, b3 = _text(cont)
            msg = msg[:-1] + cj[1:]
            bad |= b3
        an = self._an
        arr = self._arr
        item = len(arr.ev_time)
        metrics = b""
        nan = False
        if an.spec.on:
            nl = raw.find(b"\n")
            metrics, nan, vals = an.metrics(raw if nl < 0 else raw[:nl], obj)
            for i, v in vals:
                arr.m_item.append(item)
                arr.m_id.append(i)
                arr.m_value.append(v)
        cls = an.class_of(raw, cont)
        if nan and (cls < 0 or an.nan_loss < cls):
            cls = an.nan_loss
        lv = level_code(level)
        if cls >= 0 or trace or lv >= LEVEL_ERROR:
            if cls < 0:
                cls = an.other
            error = (b',"error":{' + error + (b"," if error else b"") + b'"class":"'
                     + an.classes.names[cls].encode() + b'"}')
            arr.ev_class.append(cls + 1)
        else:
            arr.ev_class.append(0)
        if obj is not None and an.preds is not None:
            p = an.prediction(obj)
            if p is not None:
                arr.p_item.append(item)
                arr.p_label.append(p[0])
                arr.p_pred.append(p[1])
                arr.p_score.append(p[2])
        arr.ev_time.append(ev_ms)
        arr.ev_level.append(lv)
        arr.ev_bytes.append(min(nbytes, 0xFFFFFFFF))  # 'I': a line of 4 GiB or more counts as 4 GiB - 1
        return b"".join((action_head, self._id(off), f.action_tail, doc_head,
                         msg, f.log_head, b"%d" % off, orig, log_extra, f.doc_tail, error, metrics,
                         top_extra, f.tags[tags | bad], f.doc_end))

    def _heads(self, ms: int) -> tuple[bytes, bytes]:
        if self._heads_ms[0] != ms:
            self._heads_ms = (ms, *self._frags.heads(self._time.index_for(ms), format_ms(ms)))
        return self._heads_ms[1], self._heads_ms[2]

    def _time_of(self, text: bytes) -> int | None:
        assert self._zone is not None
        if len(text) == 23 and _ISO_MS.fullmatch(text) is not None:
            # ``YYYY-mm-dd HH:MM:SS,mmm`` (or T, or "."): the milliseconds are only added at
            # the end of parse_time (whole seconds through the zone, 0 <= ms <= _MAX_MS with
            # _MAX_MS ending in 999), so the time of the second, once, plus the 3 digits.
            key = (text[:20], self._read_ms)
            base = self._sec_cache.get(key, -1)
            if base == -1:
                if len(self._sec_cache) >= 4096:
                    self._sec_cache.clear()
                base = self._sec_cache[key] = parse_time(text[:20] + b"000", self._zone, self._read_ms)
            return None if base is None else base + int(text[20:])
        return parse_time(text, self._zone, self._read_ms)

    def _captures(self, content: bytes) -> list[bytes | None] | None:
        """The stripped value of each slot of the first program that matches ``content``,
        or None: each program's atomic regex first (``_fastpath``), its matcher when
        that does not match."""
        fmt = self._fmt
        nslots = fmt.nslots
        for prog, prx in zip(fmt.programs, self._prx, strict=True):
            if prx is not None and len(content) <= prx.max_len:
                mo = prx.regex.match(content)
                if mo is not None:
                    vals: list[bytes | None] = [None] * nslots
                    for slot, v in zip(prx.group_slots, mo.groups(), strict=True):
                        vals[slot] = None if v is None else v.strip(WHITESPACE)
                    return vals
            caps: list[tuple[int, int] | None] = [None] * nslots
            if match(prog, content, caps):
                return [None if c is None else content[c[0]:c[1]].strip(WHITESPACE) for c in caps]
        return None

    def _program_doc(self, content: bytes) -> _Parsed | None:
        fmt = self._fmt
        vals = self._captures(content)
        if vals is None:
            return None
        ms = None
        for cand in fmt.time_candidates:
            parts = [vals[i] for i in cand]
            if any(v is None for v in parts):
                continue
            ms = self._time_of(b" ".join(parts))  # type: ignore[arg-type]
            if ms is not None:
                break
        raw = (vals[fmt.message_slot] or b"") if fmt.message_slot >= 0 else content
        msg, bad = _text(raw)
        log_extra, b1 = _render(fmt.log_plan, fmt.log_suffix, vals)
        top_extra, b2 = _render(fmt.top_plan, fmt.top_suffix, vals)
        level = vals[fmt.level_slot] if fmt.level_slot >= 0 else None
        return ms, msg, log_extra, top_extra, bad | b1 | b2, raw, level, None

    def _logfmt_doc(self, content: bytes) -> _Parsed | None:
        pairs = logfmt_pairs(content)
        if all(p[4] == 2 for p in pairs):
            return None
        seen: set[bytes] = set()
        members: list[bytes] = []
        msg = level = None
        ms = None
        time_tried = False
        bad = 0
        for ks, ke, vs, ve, kind in pairs:
            key = content[ks:ke]
            if key in seen:
                continue
            seen.add(key)
            val = b"true" if kind == 2 else logfmt_unescape(content[vs:ve]) if kind == 1 else content[vs:ve]
            if msg is None and key in (b"msg", b"message"):
                msg = val
                continue
            if level is None and key in (b"level", b"lvl"):
                level = val
                continue
            if not time_tried and key in (b"time", b"ts", b"timestamp"):
                time_tried = True
                ms = self._time_of(val)
                if ms is not None:
                    continue
            kj, b1 = _text(key)
            vj, b2 = _text(val)
            bad |= b1 | b2
            members.append(kj + b":" + vj)
        m, b3 = _text(content if msg is None else msg)
        log_extra = b""
        if level is not None:
            lj, b4 = _text(level)
            log_extra = b',"level":' + lj
            bad |= b4
        top = b',"logfmt":{' + b",".join(members) + b"}" if members else b""
        return ms, m, log_extra, top, bad | b3, content if msg is None else msg, level, None

    def _json_doc(self, content: bytes) -> _Parsed | None:
        try:
            obj = _json_loads(content)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        whole = dict(obj)
        msg = None
        raw = content
        for k in ("message", "msg"):
            if k in obj:
                v = obj.pop(k)
                text = v if isinstance(v, str) else _json_dumps(v).decode()
                msg = _json_dumps(text)
                raw = text.encode("utf-8", "replace")
                break
        log_extra = b""
        level = None
        for k in ("level", "log.level"):
            if k in obj:
                v = obj.pop(k)
                text = v if isinstance(v, str) else _json_dumps(v).decode()
                log_extra = b',"level":' + _json_dumps(text)
                level = text.encode("utf-8", "replace")
                break
        ms = None
        for k in ("@timestamp", "timestamp", "time", "ts"):
            if k in obj:
                v = obj[k]
                ms = self._time_of(v.encode()) if isinstance(v, str) else epoch_ms(v)
                if ms is not None:
                    del obj[k]
                break
        if msg is None:
            msg = _json_dumps(content.decode("utf-8"))
        top = b""
        if self._json_root:
            kept = {}
            parts = []
            for k, v in obj.items():
                if k in RESERVED or k == "json":
                    kept[k] = v
                else:
                    parts.append(b"," + _json_dumps(k) + b":" + _json_dumps(v))
            top = b"".join(parts) + (b',"json":' + _json_dumps(kept) if kept else b"")
        elif obj:
            top = b',"json":' + _json_dumps(obj)
        return ms, msg, log_extra, top, 0, raw, level, whole

    def _hold_more(self, chunk: bytes) -> None:
        if not chunk:
            return
        room = self._cap - len(self._hold)
        if len(chunk) <= room:
            self._hold += chunk
        else:
            if room > 0:
                self._hold += chunk[:room]
            self._skip += len(chunk) - max(room, 0)
        self._last_cr = chunk[-1] == _CR

    def _take_held(self) -> tuple[bytes, int]:
        """The held partial line: (held head, full raw length); resets the holding state."""
        content = bytes(self._hold)
        raw = len(content) + self._skip
        self._hold = bytearray()
        self._skip = 0
        self._last_cr = False
        return content, raw

    # -- multiline ----------------------------------------------------------------------

    def _emit(self, g: _Group, items: list[tuple[bytes, int]]) -> None:
        """Append the event of group ``g`` to ``items``."""
        self._prepare(g.ms)
        tags = TAG_INCOMPLETE if g.incomplete else 0
        if g.cut:
            tags |= TAG_TRUNCATED
        lines = g.lines
        if len(lines) == 1:
            items.append((self._event(lines[0], g.length, g.off, tags, g.end - g.off), g.off))
            return
        error = b""
        if g.tb or g.java:
            typ, message, first = error_fields(lines, g.java, g.state0)
            parts = []
            bad = 0
            for key, val in ((b"type", typ), (b"message", message),
                             (b"stack_trace", b"\n".join(lines[first:]))):
                if val is not None:
                    j, b = _text(val)
                    bad |= b
                    parts.append(b'"' + key + b'":' + j)
            error = b",".join(parts)
            tags |= bad
        item = self._event(lines[0], g.orig if g.trunc else len(lines[0]), g.off, tags, g.end - g.off,
                           b"\n" + b"\n".join(lines[1:]), error, g.tb or g.java)
        items.append((item, g.off))

    def _ml_line(self, content: bytes, length: int, off: int, end: int, ms: int,
                 items: list[tuple[bytes, int]], incomplete: bool = False) -> None:
        """One line (without its line break; ``content`` its head when longer than held,
        cleaned of terminal noise); ``end`` the offset after its line break."""
        cfg = self._ml
        assert cfg is not None
        g = self._g
        idx = self._nline
        self._nline += 1
        clean = clean_line(content if length <= self._max else content[:self._cap],
                           self._an.progress) if content else content
        if clean is None:
            return
        if clean is not content:
            content = clean
            if not content:
                length = 0
        if length == 0:
            if g is not None:
                g.blanks += 1
                g.last_ms = ms
                if len(g.lines) + g.blanks >= cfg.max_lines:  # no room for another line
                    self._emit(g, items)
                    self._g = None
            return
        cut = content if len(content) <= self._max else content[:cut_point(content, self._max)]
        if g is not None:
            st = next_state(cfg, g.state, cut)
            if st >= 0:
                if (len(g.lines) + g.blanks + 1 > cfg.max_lines
                        or g.nbytes + g.blanks + 1 + len(cut) > cfg.max_bytes):
                    g.cut = True
                    self._emit(g, items)
                    self._g = _Group(cut, length, off, end, ms, st, idx, incomplete, self._max)
                    return
                if g.blanks:
                    g.lines.extend([b""] * g.blanks)
                g.nbytes += g.blanks + 1 + len(cut)
                g.orig += g.blanks + 1 + length
                g.blanks = 0
                g.lines.append(cut)
                g.trunc = g.trunc or length > self._max
                g.state = st
                if st == JAVA:
                    g.java = True
                elif st != NORMAL and st in _TB_STATES:
                    g.tb = True
                g.last_ms = ms
                g.incomplete = incomplete
                g.end = end
                return
            self._emit(g, items)
        self._g = _Group(cut, length, off, end, ms, first_state(cfg, cut), idx, incomplete, self._max)

    def _ml_mark(self) -> int:
        return self._nline if self._g is None else self._g.line

    def _ml_batch(self, items: list[tuple[bytes, int]], start: int, start_line: int) -> Batch:
        bodies, offs = zip(*items, strict=True) if items else ((), ())
        return Batch(b"".join(bodies), len(items), _q(list(accumulate(map(len, bodies)))), _q(offs),
                     start, self.offset, self._ml_mark() - start_line, self._arr)

    def _complete_held(self, data: bytes) -> tuple[bytes, int, int, int] | None:
        """Finish the line held from earlier feeds with `data`: (its content, its length
        without the newline and `\r`, its raw length, where the rest of `data` starts); or
        None when `data` has no newline and is held too."""
        nl = data.find(b"\n")
        if nl < 0:
            self._hold_more(data)
            return None
        self._hold_more(data[:nl])
        cr = self._last_cr
        content, raw = self._take_held()
        length = raw - cr
        return content[:length], length, raw, nl + 1

    def _feed_ml(self, data: bytes, read_time_ms: int) -> Batch:
        ms = int(read_time_ms)
        cfg = self._ml
        assert cfg is not None
        start, start_line = self.offset, self._ml_mark()
        items: list[tuple[bytes, int]] = []
        off = self._offset
        pos = 0
        if self._hold or self._skip:
            held = self._complete_held(data)
            if held is None:
                return Batch(b"", 0, b"", b"", start, start, 0)
            line, length, raw, pos = held
            self._ml_line(line, length, off, off + raw + 1, ms, items)
            off += raw + 1
        last = data.rfind(b"\n")
        if last >= pos:
            whole = data[pos:last]
            split = self._split(whole) if self._fast and cfg.start is None else None
            if split is not None:
                off = self._fast_ml_region(whole, split[0], split[1], off, ms, items)
            else:
                for line in whole.split(b"\n"):
                    nxt = off + len(line) + 1
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    self._ml_line(line, len(line), off, nxt, ms, items)
                    off = nxt
            pos = last + 1
        if pos < len(data):
            self._hold_more(data[pos:])
        self._offset = off
        return self._ml_batch(items, start, start_line)

    def expire(self, now_ms: int) -> Batch:
        """Emit the open multiline event if its last line arrived ``timeout_ms`` or more
        before ``now_ms`` (read times as passed to ``feed``); else an empty batch."""
        start = self.offset
        g = self._g
        if g is None or self._ml is None or int(now_ms) - g.last_ms < self._ml.timeout_ms:
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._arr = Batch.collector()
        start_line = self._ml_mark()
        items: list[tuple[bytes, int]] = []
        self._emit(g, items)
        self._g = None
        return self._ml_batch(items, start, start_line)

    def _line_event(self, line: bytes, length: int, off: int, nbytes: int, tags: int) -> bytes | None:
        """The event of one line outside multiline, or None (empty once cleaned, or dropped)."""
        clean = clean_line(line if length <= self._max else line[:self._cap], self._an.progress)
        if not clean:
            return None
        return self._event(clean, length, off, tags, nbytes)

    def feed(self, data: Any, read_time_ms: int) -> Batch:
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()
        self._arr = arr = Batch.collector()
        if self._ml is not None:
            return self._feed_ml(data, read_time_ms)
        self._prepare(read_time_ms)
        start = off = self._offset
        out: list[bytes] = []
        offs: list[int] = []
        lines = 0
        pos = 0
        item: bytes | None

        if self._hold or self._skip:  # complete the line held from earlier feeds
            held = self._complete_held(data)
            if held is None:
                return Batch(b"", 0, b"", b"", start, start, 0)
            line, length, raw, pos = held
            if length:
                item = self._line_event(line, length, off, raw + 1, 0)
                if item is not None:
                    out.append(item)
                    offs.append(off)
            off += raw + 1
            lines += 1

        last = data.rfind(b"\n")
        if last >= pos and self._fast and (split := self._split(whole := data[pos:last])) is not None:
            lines += len(split[0])
            off = self._fast_region(whole, split[0], split[1], off, out, offs)
            pos = last + 1
        elif last >= pos and self._fmt.kind != FMT_PLAIN:
            region = data[pos:last].split(b"\n")
            lines += len(region)
            for line in region:
                nxt = off + len(line) + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    item = self._line_event(line, len(line), off, nxt - off, 0)
                    if item is not None:
                        out.append(item)
                        offs.append(off)
                off = nxt
            pos = last + 1
        elif last >= pos:
            tpl = self._tpl
            maxb = self._max
            dumps = _json_dumps
            line_event = self._line_event
            make_id = self._id
            whole = data[pos:last]
            hits = self._an.hits(whole)
            nh = len(hits)
            hi = 0
            lpos = 0
            region = whole.split(b"\n")
            lines += len(region)
            ev_time, ev_level, ev_class, ev_bytes = arr.ev_time, arr.ev_level, arr.ev_class, arr.ev_bytes
            read_ms = self._read_ms
            for line in region:
                n = len(line)
                nxt = off + n + 1
                slow = False
                while hi < nh and hits[hi] < lpos + n:
                    if hits[hi] >= lpos:
                        slow = True
                    hi += 1
                lpos += n + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    item = None
                    if len(line) <= maxb and not slow:
                        try:
                            item = tpl % (make_id(off), dumps(line.decode("utf-8")), off)
                            ev_time.append(read_ms)
                            ev_level.append(0)
                            ev_class.append(0)
                            ev_bytes.append(n + 1)
                        except UnicodeDecodeError:
                            item = line_event(line, len(line), off, n + 1, 0)
                    else:
                        item = line_event(line, len(line), off, n + 1, 0)
                    if item is not None:
                        out.append(item)
                        offs.append(off)
                off = nxt
            pos = last + 1

        if pos < len(data):
            self._hold_more(data[pos:])
        self._offset = off
        return Batch(b"".join(out), len(out), _q(list(accumulate(map(len, out)))), _q(offs), start, off, lines, arr)

    def flush(self, read_time_ms: int) -> Batch:
        self._arr = Batch.collector()
        if self._ml is not None:
            start, start_line = self.offset, self._ml_mark()
            items: list[tuple[bytes, int]] = []
            if self._hold or self._skip:
                content, raw = self._take_held()
                self._ml_line(content, raw, self._offset, self._offset + raw, int(read_time_ms), items, True)
                self._offset += raw
            if self._g is not None:
                self._emit(self._g, items)
                self._g = None
            return self._ml_batch(items, start, start_line)
        start = self._offset
        if not (self._hold or self._skip):
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._prepare(read_time_ms)
        content, raw = self._take_held()
        item = self._line_event(content, raw, start, raw, TAG_INCOMPLETE)
        self._offset = start + raw
        if item is None:
            return Batch(b"", 0, b"", b"", start, self._offset, 1)
        return Batch(item, 1, array("q", [len(item)]).tobytes(), array("q", [start]).tobytes(),
                     start, self._offset, 1, self._arr)

    # -- the fast path: runs of simple lines ------------------------------------------------

    def _fast_setup(self) -> None:
        """Per-parser tables of the fast path (see ``_fast_lines``)."""
        fmt = self._fmt
        f = self._frags
        self._fast = fmt.kind in (FMT_PLAIN, FMT_PROGRAM)
        self._sec_heads: dict[int, tuple[bytes, bytes]] = {}
        self._slot_json: list[dict[bytes, tuple[bytes, int]]] = [{} for _ in range(fmt.nslots)]
        self._lv_codes: dict[bytes, int] = {}
        # (action head, id, "YYYY-mm-ddTHH:MM:SS.", ms, message, offset, log, metrics, top)
        self._tpl_t = (b"%b%b" + _esc(f.action_tail) + b'{"@timestamp":"%b%03dZ","message":%b' + _esc(f.log_head)
                       + b"%d%b" + _esc(f.doc_tail) + b"%b%b" + _esc(f.doc_end))
        # (action head, id, doc head, message, offset, log, metrics, top)
        self._tpl_r = (b"%b%b" + _esc(f.action_tail) + b"%b%b" + _esc(f.log_head)
                       + b"%d%b" + _esc(f.doc_tail) + b"%b%b" + _esc(f.doc_end))
        prx = self._prx[0] if self._prx else None
        self._prx0 = prx if prx is not None and prx.group_slots == tuple(range(fmt.nslots)) else None
        cands = fmt.time_candidates
        self._tslot = cands[0][0] if len(cands) == 1 and len(cands[0]) == 1 else -1
        # line plans (_shapes)
        self._id_v1 = self._id is _hex_id
        self._plans: dict[bytes, LinePlan] = {}
        self._seen: set[bytes] = set()
        self._secs: dict[bytes, tuple[int | None, bytes, bytes]] = {}
        self._tcache: dict[bytes, int | None] = {}
        self._tc_ms: int | None = None
        self._shape_tr: bytes | None = None
        if self._fast and self._an.preds is None and (fmt.kind == FMT_PLAIN or self._prx0 is not None):
            self._shape_tr = shape_table([x for prog in fmt.programs for x in prog.lits])
        self._digit_keywords = (digit_keywords([k for k, _ in self._an.classes.keywords], self._shape_tr)
                                if self._shape_tr is not None else ())

    def _sec_entry(self, t20: bytes) -> tuple[int | None, bytes, bytes]:
        """(ms of ``YYYY-mm-dd HH:MM:SS,`` as ``_time_of`` reads it with ",000", action head,
        ``YYYY-mm-ddTHH:MM:SS.``), or (None, ...) when it is no time."""
        if len(self._secs) >= 4096:
            self._secs.clear()
        assert self._zone is not None
        # parse_time(t20 + b"000") of a text _ISO_MS matches (digits where it says), in short
        year, month, day = int(t20[:4]), int(t20[5:7]), int(t20[8:10])
        hh, mi, ss = int(t20[11:13]), int(t20[14:16]), int(t20[17:19])
        if not (1 <= month <= 12 and 1 <= day <= 31 and hh <= 23 and mi <= 59 and ss <= 60 and year >= _MIN_YEAR):
            return None, b"", b""
        base = self._zone.local_to_utc(days_from_civil(year, month, day) * 86400 + hh * 3600 + mi * 60 + ss) * 1000
        if not 0 <= base <= _MAX_MS:
            return None, b"", b""
        return (base, *self._sec_head(base // 1000))

    def _sec_head(self, sec: int) -> tuple[bytes, bytes]:
        """(action head, ``YYYY-mm-ddTHH:MM:SS.``) of an event time's second."""
        h = self._sec_heads.get(sec)
        if h is None:
            if len(self._sec_heads) >= 4096:
                self._sec_heads.clear()
            ms = sec * 1000
            h = self._sec_heads[sec] = (self._frags.heads(self._time.index_for(ms), b"")[0], format_ms(ms)[:-4])
        return h

    def _fast_lines(self, lines: list[bytes], offs: list[int], nbs: list[int], out: list[bytes],
                    out_offs: Any) -> None:
        """``_direct_lines``, with the line plans of ``_shapes``: a line whose shape has a
        plan is cut and formatted by it; the rest go to ``_direct_lines``, in order."""
        tr = self._shape_tr
        if tr is None:
            self._direct_lines(lines, offs, nbs, out, out_offs)
            return
        read_ms = self._read_ms
        if self._tc_ms != read_ms:
            self._tc_ms = read_ms
            self._secs.clear()
            self._tcache.clear()
        secs, tcache = self._secs, self._tcache
        sec_head = self._sec_head
        plans, seen = self._plans, self._seen
        shapes = b"\n".join(lines).translate(tr).split(b"\n")
        pls = list(map(plans.get, shapes))
        an = self._an
        arr = self._arr
        ev_time, ev_level, ev_class, ev_bytes = arr.ev_time, arr.ev_level, arr.ev_class, arr.ev_bytes
        m_item, m_id, m_value = arr.m_item, arr.m_id, arr.m_value
        dumps = _json_dumps
        event = self._event
        direct = self._direct_lines
        action_r, doc_r = self._action_head, self._doc_head
        ids_of = self._ids_of
        eids: Any = offs if ids_of is None else ids_of(offs)  # v1: the offset, the template has %x
        append = out.append
        oappend = out_offs.append
        ml: list[bytes] = []
        mo: list[int] = []
        mn: list[int] = []
        # the planned events' array values, not yet in the batch's arrays (list appends are
        # cheaper than array appends; flushed before any other path appends, and at the end)
        l_time: list[int] = []
        l_level: list[int] = []
        l_class: list[int] = []
        l_bytes: list[int] = []
        l_off: list[int] = []
        l_item: list[int] = []
        l_id: list[int] = []
        mv: list[bytes] = []  # metric values (plain JSON numbers) not yet in m_value

        def flush_values() -> None:
            if l_off:
                _extend(ev_time, l_time)
                _extend(ev_level, l_level)
                _extend(ev_class, l_class)
                _extend(ev_bytes, l_bytes)
                out_offs.extend(l_off)
                l_time.clear()
                l_level.clear()
                l_class.clear()
                l_bytes.clear()
                l_off.clear()
            if mv:
                _extend(m_item, l_item)
                _extend(m_id, l_id)
                _extend(m_value, _numbers(mv))
                l_item.clear()
                l_id.clear()
                mv.clear()

        for line, off, nb, plan, shape, eid in zip(lines, offs, nbs, pls, shapes, eids, strict=True):
            if plan is None:
                plan = plans.get(shape)
                if plan is None:
                    if shape in seen:
                        if len(plans) >= 4096:
                            plans.clear()
                        plan = plans[shape] = build_plan(self, line)
                        seen.discard(shape)
                    else:
                        if len(seen) >= 16384:
                            seen.clear()
                        seen.add(shape)
            if plan is None or plan is SLOW:
                ml.append(line)
                mo.append(off)
                mn.append(nb)
                continue
            if ml:
                flush_values()
                direct(ml, mo, mn, out, out_offs)
                ml.clear()
                mo.clear()
                mn.clear()
            get, nt, iso, json_msg, tpl_t, tpl_r, level, cls, nm, mslice, zc, tcands = plan.hot
            if zc is not None and b"0" in zc(line):  # a number with a leading zero: number_text changes it
                flush_values()
                append(event(line, len(line), off, 0, nb))
                oappend(off)
                continue
            if nm and plan.ids is None:
                ids = tuple([an._id(n) for n in plan.metric_names])
                if -1 in ids:
                    flush_values()
                    append(event(line, len(line), off, 0, nb))
                    oappend(off)
                    continue
                plan.ids = ids
            g = get(line)
            ah = sp = frac = b""
            ms = None
            if iso:  # (YYYY-mm-dd HH:MM:SS, mmm): the second's time and heads, once
                e = secs.get(g[0])
                if e is None:
                    e = secs[g[0]] = self._sec_entry(g[0])
                if e[0] is not None:
                    frac = g[1]
                    ms = e[0] + _MS3[frac]
                    ah, sp = e[1], e[2]
            elif tcands:
                for tc in tcands:
                    t = tc(line)
                    ms = tcache.get(t, -1)
                    if ms == -1:
                        if len(tcache) >= 65536:
                            tcache.clear()
                        ms = tcache[t] = self._time_of(t)
                    if ms is not None:
                        ah, sp = sec_head(ms // 1000)
                        frac = _FRAC[ms % 1000]
                        break
            msg = g[nt]
            if json_msg:
                msg = dumps(msg.decode("utf-8"))
            if ms is None:
                append(tpl_r % ((action_r, eid, doc_r, msg, off) + g[nt + 1:]))  # noqa: RUF005
                l_time.append(read_ms)
            else:
                append(tpl_t % ((ah, eid, sp, frac, msg, off) + g[nt + 1:]))  # noqa: RUF005
                l_time.append(ms)
            l_off.append(off)
            if nm:
                l_item.extend([len(ev_level) + len(l_level)] * nm)  # the item's index
                l_id.extend(plan.ids)
                mv.extend(g[mslice])
            l_level.append(level)
            l_class.append(cls)
            l_bytes.append(nb)
        flush_values()
        if ml:
            direct(ml, mo, mn, out, out_offs)

    def _direct_lines(self, lines: list[bytes], offs: list[int], nbs: list[int], out: list[bytes],
                      out_offs: Any) -> None:
        """Events of ``lines`` (each non-empty, at most ``max_line_bytes``, free of terminal
        noise, no continuation of a multiline group), appended to ``out``: what
        ``_event(line, len(line), off, 0, nbytes)`` gives, computed with the per-line work
        cut down (one regex per program, metric plans by keys, cached JSON of repeated
        values, one ``%`` per event). A line it cannot do that way (another layout, a
        class keyword, an error level, a metric value not in plain JSON form, invalid
        UTF-8) goes through ``_event``. For lines without a plan (``_fast_lines``)."""
        an = self._an
        arr = self._arr
        ev_time, ev_level, ev_class, ev_bytes = arr.ev_time, arr.ev_level, arr.ev_class, arr.ev_bytes
        m_item, m_id, m_value = arr.m_item, arr.m_id, arr.m_value
        mon = an.spec.on
        findall = METRIC_RE.findall
        plan_of = an.plan
        canon = CANON_LIST.fullmatch
        dumps = _json_dumps
        event = self._event
        read_ms = self._read_ms
        fmt = self._fmt
        program = fmt.kind == FMT_PROGRAM
        prx = self._prx0
        rx = prx.regex.match if prx is not None else None
        rx_max = prx.max_len if prx is not None else -1
        msg_slot = fmt.message_slot
        lv_slot = fmt.level_slot
        tslot = self._tslot
        log_plan, log_suffix, top_plan, top_suffix = fmt.log_plan, fmt.log_suffix, fmt.top_plan, fmt.top_suffix
        render = _render
        slot_json = self._slot_json
        lv_codes = self._lv_codes
        sec_cache = self._sec_cache
        sec_head = self._sec_head
        tpl_t, tpl_r = self._tpl_t, self._tpl_r
        action_r, doc_r = self._action_head, self._doc_head
        ids_of = self._ids_of
        ids = [b"%x" % o for o in offs] if ids_of is None else ids_of(offs)
        append = out.append
        oappend = out_offs.append
        ws = WHITESPACE
        if self._tc_ms != read_ms:  # _fast_lines' cache of _time_of, shared
            self._tc_ms = read_ms
            self._secs.clear()
            self._tcache.clear()
        tcache = self._tcache

        def time_of(text: bytes) -> int | None:
            ms = tcache.get(text, -1)
            if ms == -1:
                if len(tcache) >= 65536:
                    tcache.clear()
                ms = tcache[text] = self._time_of(text)
            return ms

        class_of = an.class_of
        for line, off, nb, eid in zip(lines, offs, nbs, ids, strict=True):
            item = None
            if program:
                mo = rx(line) if rx is not None and len(line) <= rx_max else None
                if mo is None:
                    append(event(line, len(line), off, 0, nb))
                    oappend(off)
                    continue
                vals = [v and v.strip(ws) for v in mo.groups()]
                ms = None
                if tslot >= 0:
                    t = vals[tslot]
                    if t is not None:
                        if len(t) == 23 and _ISO_MS.fullmatch(t) is not None:
                            base = sec_cache.get((t[:20], read_ms), -1)
                            ms = time_of(t) if base == -1 else None if base is None else base + int(t[20:])
                        else:
                            ms = time_of(t)
                else:
                    for cand in fmt.time_candidates:
                        parts = [vals[i] for i in cand]
                        if None in parts:
                            continue
                        ms = time_of(b" ".join(parts))
                        if ms is not None:
                            break
                lv = 0
                if lv_slot >= 0:
                    lt = vals[lv_slot]
                    if lt:
                        lv = lv_codes.get(lt, -1)
                        if lv < 0:
                            if len(lv_codes) >= 256:
                                lv_codes.clear()
                            lv = lv_codes[lt] = level_code(lt)
                        if lv >= LEVEL_ERROR:
                            append(event(line, len(line), off, 0, nb))
                            oappend(off)
                            continue
                raw = (vals[msg_slot] or b"") if msg_slot >= 0 else line
                log_extra, b1 = render(log_plan, log_suffix, vals, slot_json) if log_plan else (log_suffix, 0)
                top_extra, b2 = render(top_plan, top_suffix, vals, slot_json) if top_plan else (top_suffix, 0)
                if b1 or b2:
                    append(event(line, len(line), off, 0, nb))
                    oappend(off)
                    continue
            else:
                raw = line
                ms = None
                lv = 0
                log_extra = top_extra = b""
            if class_of(raw, b"") >= 0:
                append(event(line, len(line), off, 0, nb))
                oappend(off)
                continue
            try:
                msg = dumps(raw.decode("utf-8"))
            except UnicodeDecodeError:
                append(event(line, len(line), off, 0, nb))
                oappend(off)
                continue
            metrics = b""
            if mon and (61 in raw or 58 in raw):
                found = findall(raw)
                if found:
                    plan = plan_of(tuple([k for k, _, _ in found]))
                    if plan.idx:
                        nums = [found[i][1] for i in plan.idx]
                        if max(map(len, nums)) > MAX_NUMBER or canon(b",".join(nums)) is None:
                            append(event(line, len(line), off, 0, nb))
                            oappend(off)
                            continue
                        pids = plan.ids
                        if pids is None:
                            plan.resolve()
                            pids = plan.ids
                            if pids is None:  # past MAX_NAMES
                                append(event(line, len(line), off, 0, nb))
                                oappend(off)
                                continue
                        metrics = plan.tpl % tuple(nums)
                        k = len(ev_time)
                        m_item.extend([k] * len(nums))
                        m_id.extend(pids)
                        m_value.extend(map(float, nums))
            if ms is None:
                item = tpl_r % (action_r, eid, doc_r, msg, off, log_extra, metrics, top_extra)
                ev_time.append(read_ms)
            else:
                ah, sp = sec_head(ms // 1000)
                item = tpl_t % (ah, eid, sp, ms % 1000, msg, off, log_extra, metrics, top_extra)
                ev_time.append(ms)
            ev_level.append(lv)
            ev_class.append(0)
            ev_bytes.append(nb)
            append(item)
            oappend(off)

    @staticmethod
    def _split(whole: bytes) -> tuple[list[bytes], list[int]] | None:
        """``whole`` (lines without the last ``\\n``) as lines without their ``\\r\\n``/``\\n``,
        and each line's length with them; None when a ``\\r`` is not at a line's end
        (terminal noise: the general path)."""
        if b"\r" not in whole:  # (a memchr; counting looks at every byte)
            region = whole.split(b"\n")
            return region, [len(x) + 1 for x in region]
        ncr = whole.count(b"\r")
        if ncr != whole.count(b"\r\n") + (whole[-1:] == b"\r"):
            return None
        if ncr == whole.count(b"\n") + 1:  # every line ends with \r\n
            region = whole[:-1].split(b"\r\n")
            return region, [len(x) + 2 for x in region]
        raw = whole.split(b"\n")
        return [x[:-1] if x[-1:] == b"\r" else x for x in raw], [len(x) + 1 for x in raw]

    def _eligible(self, whole: bytes, region: list[bytes], lens: list[int], grouping: bool) -> list[bool]:
        """Per line of ``region`` (from ``_split(whole)``, ``lens`` their raw lengths): may it
        take the fast path? Not empty, at most ``max_line_bytes``, no terminal noise;
        when ``grouping``, not a line that continues a multiline group."""
        maxb = self._max
        sizes = list(map(len, region))
        elig = [True] * len(sizes) if min(sizes) > 0 and max(sizes) <= maxb else [0 < k <= maxb for k in sizes]
        hits = [m.start() for m in _NOISE.finditer(whole)] if 27 in whole else []
        if grouping and (b"Traceback (" in whole or b"\tat " in whole):
            hits += [m.start() + 1 for m in _ML_STARTERS_NL.finditer(whole)]
            if _ML_STARTERS.match(whole) is not None:
                hits.append(0)
        if hits:
            starts = list(accumulate(lens, initial=0))
            for h in hits:
                elig[bisect_right(starts, h) - 1] = False
        return elig

    def _fast_region(self, whole: bytes, region: list[bytes], lens: list[int], off: int, out: list[bytes],
                     out_offs: Any) -> int:
        """The events of the lines of ``region`` (not grouped), the file offset after them."""
        elig = self._eligible(whole, region, lens, False)
        offs = list(accumulate(lens, initial=off))
        n = len(region)
        i = 0
        while i < n:
            if elig[i]:
                j = i + 1
                while j < n and elig[j]:
                    j += 1
                self._fast_lines(region[i:j], offs[i:j], lens[i:j], out, out_offs)
                i = j
                continue
            line = region[i]
            if line:
                item = self._line_event(line, len(line), offs[i], lens[i], 0)
                if item is not None:
                    out.append(item)
                    out_offs.append(offs[i])
            i += 1
        return offs[n]

    def _fast_ml_region(self, whole: bytes, region: list[bytes], lens: list[int], off: int, ms: int,
                        items: list[tuple[bytes, int]]) -> int:
        """``_ml_line`` for each line of ``region``; a line that can only be an event of its
        own (the open group is one ordinary line or none, and this line and the next
        are ordinary) through ``_fast_lines``."""
        elig = self._eligible(whole, region, lens, True)
        offs = list(accumulate(lens, initial=off))
        n = len(region)
        fl: list[bytes] = []
        fo: list[int] = []
        fn: list[int] = []

        def flush() -> None:
            out: list[bytes] = []
            oo: list[int] = []
            self._prepare(ms)
            self._fast_lines(fl, fo, fn, out, oo)
            items.extend(zip(out, oo, strict=True))
            fl.clear()
            fo.clear()
            fn.clear()

        i = 0
        while i < n:
            g = self._g
            if elig[i] and i + 1 < n and elig[i + 1] and (
                    g is None or (g.state == NORMAL and not g.blanks and len(g.lines) == 1)):
                if g is not None:
                    self._emit(g, items)
                    self._g = None
                # lines i..j-1: each followed by an ordinary line, so each an event alone
                j = i + 1
                while j + 1 < n and elig[j + 1]:
                    j += 1
                fl.extend(region[i:j])
                fo.extend(offs[i:j])
                fn.extend(lens[i:j])
                self._nline += j - i
                flush()
                i = j
                continue
            self._ml_line(region[i], len(region[i]), offs[i], offs[i + 1], ms, items)
            i += 1
        return offs[n]

    # -- the tables ------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the metric ids in ``Batch.m_id``: ids never change; new names are
        appended as they are first seen (read it after the batch)."""
        return tuple(self._an.metric_names)

    @property
    def error_classes(self) -> tuple[str, ...]:
        """Class names; ``Batch.ev_class`` is 1 + an index into this (``other`` last)."""
        return self._an.classes.names
