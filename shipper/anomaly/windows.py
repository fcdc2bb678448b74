"""Windows of one source: what they hold, and when event time and wall time close them.

Windows follow event time (each event's ``@timestamp``), so a backfill of old logs
closes the same windows, with the same counts, as watching the logs live: a window
closes once the source's clock passes its end plus the grace period, which leaves
late events (a slow writer, a multiline event held until its timeout) time to count.

The clock of a source is the newest event time it settled; wall-clock time moves it
too, but only while the source has caught up (every reader at the end of its file and
nothing of it in flight), and only from the moment it caught up: a backfill finishing
does not produce a run of empty windows between its last event and now. Empty windows
between events (a gap inside a backfill, a quiet spell live) are closed with zero
counts, which is how silence is seen; at most ``max_gap`` of them in a row, beyond
which more zeros change nothing the detector would say.
"""

from __future__ import annotations

import base64
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from _fastparse.counters import LEVEL_NAMES, N_LEVELS, NO_EXTENSIONS, WindowCounts, lazy_numpy

from .quality import window_quality

try:  # Window.add's counting compiled (the same operations); the method below without it
    if NO_EXTENSIONS:
        raise ImportError("SHIPPER_NO_EXTENSIONS")
    from _fastparse._counting import add_row as _add_row
except ImportError:  # not built (no compiler, SHIPPER_NO_EXTENSIONS)
    _add_row = None

MAX_PAIRS = 100_000  # (score, label) pairs kept per window for its AUC (the first ones): saved with every checkpoint
MAX_SAMPLES = 3  # error messages quoted per window
if TYPE_CHECKING:
    import numpy as np
else:  # imported when a window first has prediction pairs
    np = lazy_numpy(globals())

FUTURE_MS = 120_000  # event times this far past the wall clock do not move a window clock
# signal names per error class / metric name, made once (bounded: names come from logs)
_ERROR_KEYS: dict[str, str] = {}
_MEAN_KEYS: dict[str, str] = {}


class Window:
    """The counters of one source in one window (Python ints: a window is added to a few
    times per batch, and a numpy scalar costs a conversion at each step)."""

    __slots__ = (
        "bytes",
        "classes",
        "confusion",
        "events",
        "labels",
        "levels",
        "metrics",
        "samples",
        "saved",
        "scores",
        "start",
    )

    def __init__(
        self,
        start: int,
        events: int = 0,
        bytes: int = 0,
        levels: list[int] | None = None,
        classes: dict[str, int] | None = None,
        metrics: dict[str, list[float]] | None = None,
        confusion: list[int] | None = None,
        samples: list[str] | None = None,
    ) -> None:
        self.start = start
        self.events = events
        self.bytes = bytes
        self.levels: list[int] = levels if levels is not None else [0] * N_LEVELS
        self.classes: dict[str, int] = classes if classes is not None else {}  # error class -> error events
        self.metrics: dict[str, list[float]] = metrics if metrics is not None else {}  # name -> [count, sum, min, max]
        self.confusion: list[int] = confusion if confusion is not None else [0, 0, 0, 0]
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.samples: list[str] = samples if samples is not None else []
        self.saved: orjson.Fragment | None = None  # to_dict, serialized

    def __repr__(self) -> str:
        return f"Window(start={self.start}, events={self.events}, bytes={self.bytes})"

    def fragment(self) -> orjson.Fragment:
        """The saved form, serialized once per change (the registry saves it often)."""
        if self.saved is None:
            self.saved = orjson.Fragment(orjson.dumps(self.to_dict()))
        return self.saved

    def add_samples(self, messages: list[str]) -> None:
        room = MAX_SAMPLES - len(self.samples)
        if room > 0 and messages:
            self.samples.extend(messages[:room])
            self.saved = None

    @property
    def errors(self) -> int:
        return sum(self.classes.values())

    @property
    def n_pairs(self) -> int:
        return sum(len(s) for s in self.scores)

    def add(self, c: WindowCounts, r: int, m_rows: slice, p_rows: slice) -> None:
        """Add row ``r`` of a batch's counters (its metric and pair rows given as slices)."""
        if _add_row is not None:
            _add_row(self, c, r, m_rows.start, m_rows.stop)
            if p_rows.stop > p_rows.start:
                self._add_pairs(c, p_rows)
            return
        self.saved = None
        self.events += c.events[r]
        self.bytes += c.bytes[r]
        self.levels = list(map(operator.add, self.levels, c.levels[r]))
        row = c.classes[r]
        if len(row) > 1 and row[0] != c.events[r]:  # error events in this row
            add_classes(self.classes, row, c.class_names)
        if m_rows.stop > m_rows.start:
            metrics = self.metrics
            m_name, m_count, m_sum, m_min, m_max = c.m_name, c.m_count, c.m_sum, c.m_min, c.m_max
            for k in range(m_rows.start, m_rows.stop):  # per metric name present
                name = m_name[k]
                m = metrics.get(name)
                if m is None:
                    metrics[name] = [m_count[k], m_sum[k], m_min[k], m_max[k]]
                else:
                    m[0] += m_count[k]
                    m[1] += m_sum[k]
                    if m_min[k] < m[2]:
                        m[2] = m_min[k]
                    if m_max[k] > m[3]:
                        m[3] = m_max[k]
        if c.confusion is not None:
            self.confusion = list(map(operator.add, self.confusion, c.confusion[r]))
        if p_rows.stop > p_rows.start:
            self._add_pairs(c, p_rows)

    def _add_pairs(self, c: WindowCounts, p_rows: slice) -> None:
        if self.n_pairs < MAX_PAIRS:
            assert c.pair_score is not None and c.pair_label is not None
            self.scores.append(c.pair_score[p_rows].copy())
            self.labels.append(c.pair_label[p_rows].copy())

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.scores:
            return np.zeros(0), np.zeros(0, np.int8)
        return np.concatenate(self.scores)[:MAX_PAIRS], np.concatenate(self.labels)[:MAX_PAIRS]

    def quality(self) -> dict[str, float | None]:
        scores, labels = self.pairs()
        return window_quality(self.confusion if any(self.confusion) else None, scores, labels)

    def has_predictions(self) -> bool:
        return bool(any(self.confusion) or self.scores)

    def signals(self) -> dict[str, float | None]:
        """The values the detector judges (signal names are a stable interface)."""
        events = self.events
        out: dict[str, float | None] = {
            "events": float(events),
            "bytes": float(self.bytes),
            "error_ratio": sum(self.classes.values()) / events if events else None,
        }
        for name, n in self.classes.items():
            key = _ERROR_KEYS.get(name)
            if key is None:
                key = f"errors.{name}"
                if len(_ERROR_KEYS) < 4096:
                    _ERROR_KEYS[name] = key
            out[key] = float(n)
        for name, (cnt, tot, _, _) in self.metrics.items():
            key = _MEAN_KEYS.get(name)
            if key is None:
                key = f"metrics.{name}.mean"
                if len(_MEAN_KEYS) < 4096:
                    _MEAN_KEYS[name] = key
            out[key] = tot / cnt if cnt else None
        if self.scores or any(self.confusion):  # has_predictions(), inline: once per window
            for name, v in self.quality().items():
                out[f"quality.{name}"] = v
        return out

    def level_counts(self) -> dict[str, int]:
        return {LEVEL_NAMES[i]: n for i, n in enumerate(self.levels) if n}

    # -- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        scores = labels = ""  # most windows: no pairs, no arrays to encode
        if self.scores:
            s, lb = self.pairs()
            scores = base64.b64encode(s.astype("<f8").tobytes()).decode()
            labels = base64.b64encode(lb.astype(np.int8).tobytes()).decode()
        return {
            "start": self.start,
            "events": self.events,
            "bytes": self.bytes,
            "levels": self.levels,
            "classes": self.classes,
            "metrics": self.metrics,
            "confusion": self.confusion,
            "scores": scores,
            "labels": labels,
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        w = cls(
            start=int(d["start"]),
            events=int(d["events"]),
            bytes=int(d["bytes"]),
            levels=[int(x) for x in d["levels"]],
            classes={k: int(v) for k, v in d["classes"].items()},
            metrics={k: [int(v[0]), float(v[1]), float(v[2]), float(v[3])] for k, v in d["metrics"].items()},
            confusion=[int(x) for x in d["confusion"]],
            samples=list(d.get("samples", [])),
        )
        scores = np.frombuffer(base64.b64decode(d.get("scores", "")), "<f8")
        if len(scores):
            w.scores = [scores.astype(np.float64)]
            w.labels = [np.frombuffer(base64.b64decode(d["labels"]), np.int8).copy()]
        return w


class SourceWindows:
    """The open windows of one source and its clock."""

    def __init__(self, window_ms: int, grace_ms: int, max_gap: int) -> None:
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.max_gap = max_gap
        self.open: dict[int, Window] = {}
        self.event_clock: int | None = None  # newest settled event time
        self.wall_from: int | None = None  # caught up since (ms): wall time moves the clock
        self.next_start: int | None = None  # the first window not closed yet
        self.late_events = 0  # events whose window was closed already (counted in totals only)

    def window_of(self, t: int) -> int:
        return t - t % self.window_ms

    def add(self, c: WindowCounts, now_ms: int | None = None) -> Iterator[tuple[Window, int]]:
        """Route a batch's rows to their windows; yields (window, row) for every row kept.

        With ``now_ms``, event times more than ``FUTURE_MS`` ahead of it (a clock off by a
        year, a misparsed date) are counted in their windows but do not move the clock:
        one such line would otherwise close every open window at once."""
        nw = len(c.starts)
        m_bounds = _bounds(c.m_row, nw) if c.m_row else None
        p_bounds = np.searchsorted(c.pair_row, np.arange(nw + 1)).tolist() if c.pair_row is not None else None
        empty = slice(0, 0)
        for r, start in enumerate(c.starts):  # per window in the batch
            if self.next_start is not None and start < self.next_start:
                self.late_events += c.events[r]
                continue
            w = self.open.get(start)
            if w is None:
                w = self.open[start] = Window(start)
            ms = slice(m_bounds[r], m_bounds[r + 1]) if m_bounds is not None else empty
            ps = slice(p_bounds[r], p_bounds[r + 1]) if p_bounds is not None else empty
            w.add(c, r, ms, ps)
            yield w, r
        t = c.max_time if now_ms is None else min(c.max_time, now_ms + FUTURE_MS)
        if self.event_clock is None or t > self.event_clock:
            self.event_clock = t

    def caught_up(self, now_ms: int, caught: bool) -> None:
        """Record whether every reader of the source is at the end of its files now."""
        if not caught:
            self.wall_from = None
        elif self.wall_from is None:
            self.wall_from = now_ms

    def clock(self, now_ms: int) -> int | None:
        """The time that closes windows: event time, or wall time while caught up."""
        if self.wall_from is None:
            return self.event_clock
        if self.event_clock is None:
            return now_ms
        return max(self.event_clock, now_ms)

    def due(self, now_ms: int) -> list[Window]:
        """Windows to close now, in order, with empty ones for gaps (see the module doc)."""
        clock = self.clock(now_ms)
        if clock is None:
            return []
        last = self.window_of(clock - self.grace_ms) - self.window_ms  # newest window whose end+grace passed
        fill_from = None if self.wall_from is None else self.window_of(self.wall_from)
        if self.next_start is None:
            if self.open:
                self.next_start = min(self.open)
            elif fill_from is not None:
                self.next_start = fill_from  # known only through wall time (restored, or never wrote)
            else:
                return []
        ev_last = None if self.event_clock is None else self.window_of(self.event_clock)
        out: list[Window] = []
        start = self.next_start
        empty_run = 0
        while start <= last:
            w = self.open.pop(start, None)
            if w is not None:
                empty_run = 0
                out.append(w)
                start += self.window_ms
                continue
            # an empty window between old event times and the moment the source caught up
            in_gap = fill_from is not None and start < fill_from and (ev_last is None or start > ev_last)
            empty_run += 1
            if in_gap or empty_run > self.max_gap:
                nxt = min((s for s in self.open if s > start), default=None)
                targets = [t for t in (nxt, fill_from if in_gap else None) if t is not None]
                start = min(targets) if targets else last + self.window_ms
                empty_run = 0
                continue
            out.append(Window(start))
            start += self.window_ms
        self.next_start = start
        return out

    def close_all(self) -> list[Window]:
        """Every open window, in order (at shutdown and retirement: documents, no judgement)."""
        out = [self.open[s] for s in sorted(self.open)]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": [w.fragment() for w in self.open.values()],
            "event_clock": self.event_clock,
            "next_start": self.next_start,
            "late_events": self.late_events,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], window_ms: int, grace_ms: int, max_gap: int) -> SourceWindows:
        sw = cls(window_ms, grace_ms, max_gap)
        saved = [Window.from_dict(w) for w in d.get("open", [])]
        sw.open = {w.start: w for w in saved if w.start % window_ms == 0}
        sw.event_clock = d.get("event_clock")
        ns = d.get("next_start")
        sw.next_start = None if ns is None or ns % window_ms else int(ns)
        sw.late_events = int(d.get("late_events", 0))
        return sw


def add_classes(into: dict[str, int], row: list[int], names: tuple[str, ...]) -> None:
    """Add a row of class counts (column 0: not an error; j > 0: ``names[j - 1]``, or
    "other" beyond the table) to ``into``: per class of the table, not per event."""
    for j in range(1, len(row)):
        n = row[j]
        if n:
            name = names[j - 1] if j - 1 < len(names) else "other"
            into[name] = into.get(name, 0) + n


def _bounds(rows: list[int], nw: int) -> list[int]:
    """Where each row's entries begin in ``rows`` (sorted), and the end: nw + 1 indices."""
    out = [0] * (nw + 1)
    for r in rows:
        out[r + 1] += 1
    for r in range(nw):
        out[r + 1] += out[r]
    return out
