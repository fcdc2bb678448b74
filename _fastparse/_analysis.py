"""What the pure-Python twin does to an event besides formatting it: terminal noise,
error classes, metrics and prediction records (see the package docstring for the rules).

The compiled parser mirrors ``clean_line``, ``Analyzer.class_of`` and the metric scan in
C for plain and the program formats; json and logfmt lines are handed to the twin there
too, so only the twin reads JSON values and prediction fields.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from orjson import dumps as _json_dumps

from ._classes import ErrorClasses, build_classes
from ._metrics import (
    MAX_NAMES,
    MAX_NUMBER,
    METRIC_RE,
    MetricSpec,
    PredictionSpec,
    field_at,
    is_nan_loss,
    normalise,
    number_text,
    parse_predictions,
    parse_spec,
)

# -- terminal noise ---------------------------------------------------------------------------

PROGRESS_LAST, PROGRESS_ALL, PROGRESS_DROP = 0, 1, 2
_PROGRESS = {"last": PROGRESS_LAST, "all": PROGRESS_ALL, "drop": PROGRESS_DROP}


def parse_progress(value: Any) -> int:
    """``"last"`` (the default), ``"all"`` or ``"drop"``."""
    if value is None:
        return PROGRESS_LAST
    if value not in _PROGRESS:
        raise ValueError(f'progress must be "last", "all" or "drop", not {value!r}')
    return _PROGRESS[value]


def strip_ansi(s: bytes) -> bytes:
    """``s`` without terminal escape sequences: CSI (``ESC [`` parameter and intermediate
    bytes 0x20-0x3F, then one final byte 0x40-0x7E if there), OSC (``ESC ]`` up to BEL or
    ``ESC \\``, or the end), ``ESC`` + one byte 0x20-0x7E; a lone ``ESC`` goes alone."""
    out = []
    n = len(s)
    i = 0
    while True:
        j = s.find(b"\x1b", i)
        if j < 0:
            out.append(s[i:])
            break
        out.append(s[i:j])
        k = j + 1
        if k < n:
            c = s[k]
            if c == 0x5B:
                k += 1
                while k < n and 0x20 <= s[k] <= 0x3F:
                    k += 1
                if k < n and 0x40 <= s[k] <= 0x7E:
                    k += 1
            elif c == 0x5D:
                k += 1
                while k < n:
                    if s[k] == 7:
                        k += 1
                        break
                    if s[k] == 0x1B and k + 1 < n and s[k + 1] == 0x5C:
                        k += 2
                        break
                    k += 1
            elif 0x20 <= c <= 0x7E:
                k += 1
        i = k
    return b"".join(out)


def clean_line(s: bytes, progress: int) -> bytes | None:
    """A line (without its line break) as the format sees it: after the last ``\\r`` that
    is not its last byte (``progress`` last), or None (drop: no event); escapes stripped."""
    if progress != PROGRESS_ALL and 13 in s:
        r = s.rfind(b"\r", 0, len(s) - 1)
        if r >= 0:
            if progress == PROGRESS_DROP:
                return None
            s = s[r + 1:]
    if 27 in s:
        s = strip_ansi(s)
    return s


# -- keyword search --------------------------------------------------------------------------


def trie_regex(words: Sequence[bytes]) -> bytes:
    """An alternation of ``words`` with common prefixes factored (faster for ``re``)."""
    trie: dict[int, Any] = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[-1] = {}

    def walk(node: dict[int, Any]) -> bytes:
        end = -1 in node
        alts = [re.escape(bytes([c])) + walk(sub) for c, sub in sorted(node.items()) if c != -1]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        return b"(?:" + body + b")?" if end else body

    return walk(trie)


@functools.lru_cache(maxsize=16)
def _keyword_regex(keywords: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """The search for any of ``keywords`` (lower-cased), one per distinct table: over
    lower-cased text, since re.IGNORECASE makes the search about 15 times slower."""
    return re.compile(trie_regex(keywords))


#: Lines of the plain format that may hold a metric (a superset of ``METRIC_RE``'s matches:
#: a key ends with a non-digit key byte or a quote, then maybe digits; so "07:30" is no hint).
_METRIC_HINT = re.compile(rb"[A-Za-z_./\-'\"][0-9]*[ \t]*[=:][ \t]*[-+.0-9nNiI]")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_./\-]*")
_NOISE = re.compile(rb"\x1b|\r(?!\n|\Z)")


class Analyzer:
    """One parser's tables: error classes, the metric spec and ids, predictions."""

    __slots__ = ("_kw_re", "_names", "_plans", "classes", "ids", "metric_names", "nan_loss", "other", "preds",
                 "progress", "spec")

    def __init__(self, error_classes: Mapping[str, Sequence[str]] | None, metrics: Any,
                 predictions: Any, progress: Any) -> None:
        self.classes: ErrorClasses = build_classes(error_classes)
        self._kw_re: re.Pattern[bytes] | None = None  # compiled when first searched (see _keywords)
        self.nan_loss = self.classes.nan_loss
        self.other = len(self.classes.names) - 1
        self.spec: MetricSpec = parse_spec(metrics)
        self.preds: PredictionSpec | None = parse_predictions(predictions)
        self.progress = parse_progress(progress)
        self.metric_names: list[str] = []
        self.ids: dict[bytes, int] = {}
        self._names: dict[bytes, bytes | None] = {}  # logged key -> metric name (None: not one)
        self._plans: dict[tuple[bytes, ...], MetricPlan] = {}  # keys of a line -> what to keep

    def _keywords(self) -> re.Pattern[bytes]:
        """The keyword search, made on first use: the compiled parser never needs it for
        plain and the program formats (C scans its own tables), and making it is ~50 M
        instructions at an agent's start."""
        pattern = self._kw_re = _keyword_regex(tuple(k for k, _ in self.classes.keywords))
        return pattern

    def _name(self, key: bytes) -> bytes | None:
        """``spec.name(key)``, remembered: a run logs the same few keys on every line."""
        try:
            return self._names[key]
        except KeyError:
            if len(self._names) >= 4096:
                self._names.clear()
            name = self._names[key] = self.spec.name(key)
            return name

    def hits(self, region: bytes) -> list[int]:
        """Sorted positions in ``region`` (lines joined by ``\\n``) where a line may need more
        than the plain fast path: terminal noise, a keyword, a metric."""
        pos = [m.start() for m in (self._kw_re or self._keywords()).finditer(region.lower())]
        if self.spec.on:
            pos += [m.start() for m in _METRIC_HINT.finditer(region)]
        if self.progress != PROGRESS_ALL or 27 in region:
            pos += [m.start() for m in _NOISE.finditer(region)]
        pos.sort()
        return pos

    def class_of(self, text: bytes, cont: bytes) -> int:
        """Index of the first class a keyword of which occurs in ``text`` or ``cont``, or -1."""
        low = text.lower()
        lowc = cont.lower()
        search = (self._kw_re or self._keywords()).search
        if search(low) is None and (not lowc or search(lowc) is None):
            return -1
        for kw, ci in self.classes.keywords:
            if kw in low or kw in lowc:
                return ci
        return -1  # pragma: no cover - the regex matched, so some keyword is there

    def _id(self, name: bytes) -> int:
        i = self.ids.get(name)
        if i is None:
            if len(self.metric_names) >= MAX_NAMES:
                return -1
            i = self.ids[name] = len(self.metric_names)
            self.metric_names.append(name.decode("ascii"))
        return i

    def metrics(self, first: bytes, json_obj: dict[str, Any] | None) -> tuple[bytes, bool, list[tuple[int, float]]]:
        """``(,"metrics":{...} or b"", a loss was NaN/inf, [(id, value)])`` of an event:
        ``json_obj``'s numeric top-level values, then ``key=value`` pairs of ``first``."""
        seen: set[bytes] = set()
        parts: list[bytes] = []
        vals: list[tuple[int, float]] = []
        nan = False
        if json_obj:
            for k, v in json_obj.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or _KEY.fullmatch(k) is None:
                    continue
                name = self._name(k.encode("ascii"))
                if name is None or name in seen:
                    continue
                seen.add(name)
                f = float(v)
                if not math.isfinite(f):  # pragma: no cover - orjson reads no NaN
                    nan = nan or is_nan_loss(name)
                    continue
                i = self._id(name)
                if i >= 0:
                    parts.append(b'"' + name + b'":' + _json_dumps(v))
                    vals.append((i, f))
        for m in METRIC_RE.finditer(first):
            name = self._name(m.group(1))
            if name is None or name in seen:
                continue
            raw = m.group(2)
            if raw is not None and len(raw) > MAX_NUMBER:
                continue
            seen.add(name)
            if raw is None:
                nan = nan or is_nan_loss(name)
                continue
            text = number_text(raw)
            f = float(text)
            if not math.isfinite(f):
                nan = nan or is_nan_loss(name)
                continue
            i = self._id(name)
            if i >= 0:
                parts.append(b'"' + name + b'":' + text)
                vals.append((i, f))
        frag = b',"metrics":{' + b",".join(parts) + b"}" if parts else b""
        return frag, nan, vals

    def plan(self, keys: tuple[bytes, ...]) -> MetricPlan:
        """The metric plan of a line whose ``METRIC_RE`` matches have these keys, in order."""
        plan = self._plans.get(keys)
        if plan is None:
            if len(self._plans) >= 4096:
                self._plans.clear()
            plan = self._plans[keys] = MetricPlan(self, keys)
        return plan

    def prediction(self, obj: dict[str, Any]) -> tuple[int, int, float] | None:
        """``(label, prediction or -1, score or NaN)`` of a JSON line, or None (no label)."""
        spec = self.preds
        if spec is None:
            return None
        found, label = field_at(obj, spec.label)
        if not found or isinstance(label, (dict, list)) or label is None:
            return None
        pred = -1
        if spec.prediction is not None:
            found, p = field_at(obj, spec.prediction)
            if found and p is not None and not isinstance(p, (dict, list)):
                pred = int(spec.is_positive(p))
        score = math.nan
        if spec.score is not None:
            found, s = field_at(obj, spec.score)
            if found and not isinstance(s, bool) and isinstance(s, (int, float)):
                score = float(s)
        return int(spec.is_positive(label)), pred, score


#: A number ``number_text`` returns as it is, finite as a float (at most two exponent digits).
_CANON = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,2})?")
#: The numbers of a line joined by ``,``: all of them in that form.
CANON_LIST = re.compile(rb"(?:" + _CANON.pattern + rb",)*" + _CANON.pattern)


class MetricPlan:
    """What ``Analyzer.metrics`` keeps of a line's ``METRIC_RE`` matches, computed once per
    sequence of keys: the index of each match kept (the first of each metric name), the
    ``,"metrics":{...}`` template (``%b`` per value) and, once resolved, the ids.

    Valid only when each kept match has a number that ``number_text`` returns unchanged
    and that is finite, at most ``MAX_NUMBER`` long (``Analyzer.metrics`` would skip a
    longer one and take a later match of the name): the caller checks (``CANON_LIST``)."""

    __slots__ = ("an", "ids", "idx", "names", "tpl")

    def __init__(self, an: Analyzer, keys: tuple[bytes, ...]) -> None:
        seen: set[bytes] = set()
        idx: list[int] = []
        names: list[bytes] = []
        for i, k in enumerate(keys):
            name = an._name(k)
            if name is None or name in seen:
                continue
            seen.add(name)
            idx.append(i)
            names.append(name)
        self.an = an
        self.idx = tuple(idx)
        self.names = tuple(names)
        self.ids: tuple[int, ...] | None = None
        self.tpl = b""

    def resolve(self) -> tuple[int, ...]:
        """The ids of the names (given in order, as ``Analyzer.metrics`` would), and the
        template without the names that got none (more than ``MAX_NAMES``)."""
        an = self.an
        ids = tuple(an._id(n) for n in self.names)
        if all(i >= 0 for i in ids):
            self.ids = ids
            self.tpl = (b',"metrics":{' + b",".join(b'"' + n + b'":%b' for n in self.names) + b"}"
                        if ids else b"")
        return ids


__all__ = ["PROGRESS_ALL", "PROGRESS_DROP", "PROGRESS_LAST", "Analyzer", "clean_line", "normalise",
           "parse_progress", "strip_ansi", "trie_regex"]
