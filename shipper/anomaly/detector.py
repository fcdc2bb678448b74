"""The k-sigma watch over one source's closed windows, with numpy over a rolling history.

Each closed window gives a value per signal (``events``, ``bytes``, ``error_ratio``,
``errors.<class>``, ``metrics.<name>.mean``, ``quality.<name>``). A value above
``mean + k*sigma`` (signals watched upwards) or below ``mean - k*sigma`` (downwards) of the
signal's last ``history`` windows is anomalous, once ``min_history`` windows are known.
An alert clears with hysteresis: when the value is back within ``clear_sigma`` sigmas.

Sigma has a floor, so that a history without variance (a job that logs exactly 100 lines
every window, a learning rate that never moved) does not turn every change into an
alert, and is widened for short histories (``predictive_factor``).

Counts (``events``, ``errors.<class>``) and the error ratio are judged on variance-
stabilizing scales: 2 sqrt(c + 3/8) for a count c (Anscombe), 2 sqrt(n) asin(sqrt((c +
3/8)/(n + 3/4))) for c errors of n events. On those scales Poisson and binomial noise is
close to normal with sigma 1 at any rate, so mean +/- k sigma there (sigma floored at 1)
keeps the false-alarm rate of k whatever the rate; on the raw scale a count of a few
errors per window is skewed and crosses mean + 3 sd several times more often than
0.135%. Other values are judged as they are, sigma floored at 2% of their mean. Anomaly
documents report mean and standard deviation in the signal's own units.

``silence``: a source whose windows are empty. With a history rate of lambda events per
window, n empty windows in a row have probability exp(-lambda*n) under that rate; the
source is flagged (once, until events come back) when that falls below the one-sided
tail of ``sigma`` (0.135% for 3). A busy source is flagged after one empty window; one
that logs once a minute is never flagged after ten seconds.
"""

from __future__ import annotations

import base64
import fnmatch
import math
import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from _fastparse.counters import NO_EXTENSIONS, lazy_numpy

if TYPE_CHECKING:
    import numpy as np
else:  # imported when a source's first window is judged
    np = lazy_numpy(globals())

try:  # Detector._judge's statistics in C, without numpy (CompiledDetector)
    if NO_EXTENSIONS:
        raise ImportError("SHIPPER_NO_EXTENSIONS")
    from _fastparse._counting import judge as _judge_c
except ImportError:  # not built (no compiler, SHIPPER_NO_EXTENSIONS): numpy's Detector
    _judge_c = None

UP, DOWN, BOTH, OFF = "up", "down", "both", "off"
COUNT, RATIO, VALUE = 0, 1, 2

#: Direction per signal, first match wins (user rules from the config come first).
#: Losses, latencies and error counts go wrong upwards, accuracies and throughput
#: downwards, volume both ways (a job that stops logging is a drop); a learning rate
#: follows its schedule, so its steps are not watched.
DEFAULT_DIRECTIONS: tuple[tuple[str, str], ...] = (
    ("events", BOTH),
    ("bytes", BOTH),
    ("error_ratio", UP),
    ("errors.*", UP),
    ("quality.*", DOWN),
    ("metrics.lr.mean", OFF),
    ("metrics.*learning_rate*.mean", OFF),
    ("metrics.*_lr.mean", OFF),
    ("metrics.*loss*.mean", UP),
    ("metrics.*perplexity*.mean", UP),
    ("metrics.*latency*.mean", UP),
    ("metrics.*rmse*.mean", UP),
    ("metrics.*mae*.mean", UP),
    ("metrics.*accuracy*.mean", DOWN),
    ("metrics.*precision*.mean", DOWN),
    ("metrics.*recall*.mean", DOWN),
    ("metrics.*f1*.mean", DOWN),
    ("metrics.*auc*.mean", DOWN),
    ("metrics.*bleu*.mean", DOWN),
    ("metrics.*throughput*.mean", DOWN),
    ("*", BOTH),
)
RELATIVE_FLOOR = 0.02  # VALUE signals: sigma is at least 2% of the mean's magnitude
ABSOLUTE_FLOOR = 1e-6
RATIO_FLOOR = 0.005


def signal_kind(signal: str) -> int:
    """Counts (Poisson floor), the error ratio (binomial floor) or other values."""
    if signal == "events" or signal.startswith("errors."):
        return COUNT
    if signal == "error_ratio":
        return RATIO
    return VALUE


def tail_probability(sigma: float) -> float:
    """One-sided normal tail beyond ``sigma`` (0.00135 for 3)."""
    return 0.5 * math.erfc(sigma / math.sqrt(2.0))


def predictive_factor(n: np.ndarray, sigma: float) -> np.ndarray:
    """How much wider than the sample standard deviation of ``n`` past values the spread
    of the next value is: ``sqrt(1 + 1/n) * t(n-1) / z`` at the tail of ``sigma``.

    With 10 or 20 windows of history, mean and standard deviation are estimates: a new
    value of the same process lands beyond mean +/- 3 s far more often than 0.135% of
    the time (Student's t with n-1 degrees of freedom, plus the mean's own error). This
    factor widens s by exactly that, so "3 sigma" keeps its false-alarm rate whatever the
    history length; it tends to 1 as the history grows (1.05 at 60 windows). The t
    quantile uses the Cornish-Fisher expansion in 1/nu (no scipy), accurate to well
    under 1% from nu = 5.
    """
    z = sigma
    nu = np.maximum(n.astype(np.float64) - 1.0, 4.0)
    t = (
        z
        + (z**3 + z) / (4 * nu)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * nu**3)
    )
    return np.sqrt(1.0 + 1.0 / np.maximum(n, 1)) * t / z


def predictive_factors(history: int, sigma: float) -> list[float]:
    """``predictive_factor(np.arange(history + 1), sigma).tolist()`` without numpy: the
    same operations on the same doubles, in the same order (tests compare them)."""
    z = sigma
    out = []
    for n in range(history + 1):
        nu = max(float(n) - 1.0, 4.0)
        t = (
            z
            + (z**3 + z) / (4 * nu)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * (nu * nu))
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * nu**3)
        )
        out.append(math.sqrt(1.0 + 1.0 / max(n, 1)) * t / z)
    return out


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sample standard deviation) per column, ignoring NaN (no value)."""
    valid = ~np.isnan(rows)
    cnt = valid.sum(axis=0)
    filled = np.where(valid, rows, 0.0)
    s1 = filled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        # centred on the first row's value: sums of squares of deviations stay small, so
        # the one-pass formula keeps its precision for large values (bytes per window)
        shift = np.where(valid[0], filled[0], 0.0) if len(rows) else 0.0
        d = np.where(valid, rows - shift, 0.0)
        ds = d.sum(axis=0)
        var = ((d * d).sum(axis=0) - ds * ds / np.maximum(cnt, 1)) / np.maximum(cnt - 1, 1)
    return cnt, np.where(cnt > 0, mean, np.nan), np.sqrt(np.maximum(var, 0.0))


def _window_moments(rows: np.ndarray, los: np.ndarray, his: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sample sd) of ``rows[lo:hi]`` per column for each (lo, hi), ignoring
    NaN, from cumulative sums: one pass for any number of windows. Values are taken
    relative to each column's first value, so the sums of squares stay small."""
    valid = ~np.isnan(rows)
    first = np.argmax(valid, axis=0)
    shift = np.where(valid.any(axis=0), rows[first, np.arange(rows.shape[1])], 0.0)
    d = np.where(valid, rows - shift, 0.0)
    zero = np.zeros((1, rows.shape[1]))
    c = np.concatenate((zero, np.cumsum(valid, axis=0)))
    s1 = np.concatenate((zero, np.cumsum(d, axis=0)))
    s2 = np.concatenate((zero, np.cumsum(d * d, axis=0)))
    cnt = (c[his] - c[los]).astype(np.int64)
    t1 = s1[his] - s1[los]
    t2 = s2[his] - s2[los]
    n = np.maximum(cnt, 1)
    var = (t2 - t1 * t1 / n) / np.maximum(cnt - 1, 1)
    mean = np.where(cnt > 0, t1 / n + shift, np.nan)
    return cnt, mean, np.sqrt(np.maximum(var, 0.0))


def _stabilize(values: np.ndarray, is_ratio: np.ndarray, events: np.ndarray | None) -> np.ndarray:
    """Counts -> Anscombe 2 sqrt(c + 3/8); an error ratio of c errors in n events ->
    2 sqrt(n) asin(sqrt((c + 3/8) / (n + 3/4))): scales on which Poisson and binomial
    noise is close to normal with sigma 1 whatever the rate. On the raw scale a count of
    a few per window is skewed and crosses mean + 3 sd far more often than 0.135%."""
    with np.errstate(invalid="ignore"):
        y = 2.0 * np.sqrt(np.maximum(values, 0.0) + 0.375)
        if is_ratio.any() and events is not None:
            n = np.maximum(events, 0.0)[:, None]
            frac = np.clip((np.maximum(values[:, is_ratio], 0.0) * n + 0.375) / (n + 0.75), 0.0, 1.0)
            y[:, is_ratio] = 2.0 * np.sqrt(n) * np.arcsin(np.sqrt(frac))
    return y


@dataclass(frozen=True)
class DetectorConfig:
    """History length, judging thresholds and direction rules of a source's detector."""

    history: int = 60
    min_history: int = 10
    sigma: float = 3.0
    clear_sigma: float = 2.0
    directions: tuple[tuple[str, str], ...] = ()  # user rules, before DEFAULT_DIRECTIONS

    def direction(self, signal: str) -> str:
        for pattern, d in (*self.directions, *DEFAULT_DIRECTIONS):
            if fnmatch.fnmatchcase(signal, pattern):
                return d
        return BOTH


@dataclass
class Alert:
    """An active anomaly: what it was when it started."""

    direction: str
    window: int  # start of the window that raised it (ms)
    value: float
    mean: float
    stddev: float


@dataclass(frozen=True)
class Change:
    """An alert that starts or clears at a window."""

    signal: str
    state: str  # start | clear
    direction: str
    value: float
    mean: float
    stddev: float


def _saved(
    signals: list[str], flat: array[float], rows: int, active: dict[str, Alert], zero_run: int, silence_rate: float
) -> dict[str, Any]:
    """``Detector.to_dict``'s form of a history of ``rows`` rows of doubles, oldest first."""
    if sys.byteorder == "big":  # pragma: no cover - saved little-endian
        flat = array("d", flat)
        flat.byteswap()
    return {
        "signals": signals,
        "rows": rows,
        "history": base64.b64encode(flat.tobytes()).decode(),
        "active": {s: a.__dict__ for s, a in active.items()},
        "zero_run": zero_run,
        "silence_rate": silence_rate,
    }


def _saved_history(d: Mapping[str, Any]) -> tuple[list[str], int, array[float] | None]:
    """(signals, rows, the history's doubles) of a saved detector; None: not base64 of
    as many doubles as rows x signals, or signals named twice (Detector.from_dict's case)."""
    signals = list(d.get("signals", []))
    rows = int(d.get("rows", 0))
    saved = d.get("history")
    raw = array("d", base64.b64decode(saved)) if isinstance(saved, str) and len(saved) % 4 == 0 else None
    if raw is None or len(set(signals)) != len(signals) or len(raw) != rows * len(signals) or (rows and not signals):
        return signals, rows, None
    if sys.byteorder == "big":  # pragma: no cover - saved little-endian
        raw.byteswap()
    return signals, rows, raw


def empty_state() -> dict[str, Any]:
    """``Detector(cfg).to_dict()`` of a detector that has judged nothing, without numpy."""
    return {"signals": [], "rows": 0, "history": "", "active": {}, "zero_run": 0, "silence_rate": 0.0}


class ColdDetector:
    """A source's detector before any window can be judged, without numpy (~250 M
    instructions and ~12 MiB to import): while its history and the windows given hold
    at most ``min_history`` rows, no signal has enough history to be judged, no alert is
    active and silence needs a history rate, so a window changes nothing but the history.
    It keeps those rows as Python floats, exactly as ``Detector`` would (same columns, same
    fill, same saved form), and becomes a ``Detector`` (``Detector.from_dict`` of its saved
    form) for the first batch that could be judged; from then on it hands every call on."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.signals: list[str] = []
        self.cols: dict[str, int] = {}
        self._count: list[bool] = []  # per column: a count (0 where not seen), else NaN
        self._rows: list[list[float]] = []
        self.zero_run = 0
        self.silence_rate = 0.0
        self.hot: Detector | CompiledDetector | None = None

    @property
    def n(self) -> int:
        return self.hot.n if self.hot is not None else len(self._rows)

    @property
    def active(self) -> dict[str, Alert]:
        return self.hot.active if self.hot is not None else {}

    @classmethod
    def from_dict(cls, cfg: DetectorConfig, d: Mapping[str, Any]) -> Detector | CompiledDetector | ColdDetector:
        """``Detector.from_dict``, without numpy when the saved detector was still cold
        (no alert, no silence rate, at most ``min_history`` rows in the saved layout)."""
        signals, rows, raw = _saved_history(d)
        if (
            raw is None
            or d.get("active")
            or float(d.get("silence_rate", 0.0)) != 0.0
            or rows > min(cfg.min_history, cfg.history)
        ):
            return _hot_from_dict(cfg, d)
        det = cls(cfg)
        for name in signals:
            det.cols[name] = len(det.signals)
            det.signals.append(name)
            det._count.append(signal_kind(name) == COUNT)
        width = len(signals)
        det._rows = [raw[i * width : (i + 1) * width].tolist() for i in range(rows)]
        det.zero_run = int(d.get("zero_run", 0))
        return det

    def observe_many(self, windows: Sequence[tuple[Mapping[str, float | None], int]]) -> list[list[Change]]:
        if self.hot is None and len(self._rows) + len(windows) > min(self.cfg.min_history, self.cfg.history):
            self.hot = _hot_from_dict(self.cfg, self.to_dict())
        if self.hot is not None:
            return self.hot.observe_many(windows)
        for values, _ in windows:  # Detector._ensure: past rows 0 for a count, unknown else
            for name in values:
                if name not in self.cols:
                    is_count = signal_kind(name) == COUNT
                    self.cols[name] = len(self.signals)
                    self.signals.append(name)
                    self._count.append(is_count)
                    for row in self._rows:
                        row.append(0.0 if is_count else math.nan)
        base = [0.0 if c else math.nan for c in self._count]
        cols = self.cols
        for values, _ in windows:
            row = base.copy()
            for name, v in values.items():
                if v is not None:
                    row[cols[name]] = float(v)
            self._rows.append(row)
            events = values.get("events")  # Detector._silence without a history rate
            if events is not None:
                if events > 0:
                    self.zero_run = 0
                else:
                    if self.zero_run == 0:
                        self.silence_rate = 0.0
                    self.zero_run += 1
        return [[] for _ in windows]

    def to_dict(self) -> dict[str, Any]:
        if self.hot is not None:
            return self.hot.to_dict()
        flat = array("d", [v for row in self._rows for v in row])
        return _saved(self.signals, flat, len(self._rows), {}, self.zero_run, self.silence_rate)

    def forget_alerts(self) -> list[str]:
        return self.hot.forget_alerts() if self.hot is not None else []


def _hot_from_dict(cfg: DetectorConfig, d: Mapping[str, Any]) -> Detector | CompiledDetector:
    """The detector that judges: compiled when built, numpy's otherwise."""
    if _judge_c is not None:
        return CompiledDetector.from_dict(cfg, d)
    return Detector.from_dict(cfg, d)


class _Alerting:
    """The alert state machine Detector and CompiledDetector share: what starts and
    clears at a window, given its values and statistics, and silence."""

    cfg: DetectorConfig
    signals: list[str]
    cols: dict[str, int]
    active: dict[str, Alert]
    zero_run: int
    silence_rate: float

    def _changes(
        self,
        window: int,
        starts: Iterable[tuple[int, str]],
        x: Sequence[float],
        mu: Sequence[float],
        sd: Sequence[float],
        back: Callable[[int, str], Any],
    ) -> list[Change]:
        """Alerts starting at ``starts`` ((column, direction), in column order) unless on,
        then the active ones whose value is ``back`` within the clearing band."""
        changes: list[Change] = []
        for c, d in starts:
            s = self.signals[c]
            if s not in self.active:
                self.active[s] = Alert(d, window, x[c], mu[c], sd[c])
                changes.append(Change(s, "start", d, x[c], mu[c], sd[c]))
        if self.active:
            for s, a in list(self.active.items()):
                col = self.cols.get(s)
                if col is None or a.window == window or x[col] != x[col]:
                    continue  # silence, raised now, or no value (NaN) this window: nothing says it is over
                if back(col, a.direction):
                    del self.active[s]
                    changes.append(Change(s, "clear", a.direction, x[col], mu[col], sd[col]))
        return changes

    def _silence_at(self, events: float | None, rate_now: Callable[[], float], window: int) -> list[Change]:
        """Silence, given this window's events and (asked only when an empty run starts)
        the history's mean events if ``min_history`` windows are known, else 0."""
        if events is None:
            return []
        if events > 0:
            self.zero_run = 0
            a = self.active.pop("silence", None)
            if a is None:
                return []
            return [Change("silence", "clear", DOWN, float(events), a.mean, a.stddev)]
        if self.zero_run == 0:
            self.silence_rate = rate_now()
        self.zero_run += 1
        rate = self.silence_rate
        if "silence" in self.active or rate <= 0:
            return []
        if math.exp(-rate * self.zero_run) < tail_probability(self.cfg.sigma):
            a = Alert(DOWN, window, 0.0, rate, math.sqrt(rate))
            self.active["silence"] = a
            return [Change("silence", "start", DOWN, 0.0, rate, a.stddev)]
        return []

    def forget_alerts(self) -> list[str]:
        """Drop every alert without a clear (a retired source); the signals that were active."""
        gone = list(self.active)
        self.active.clear()
        return gone


def _back_code(codes: bytes, col: int, direction: str) -> int:
    """Back within the clearing band, from ``judge``'s codes (4: from above, 8: below)."""
    return codes[col] & (4 if direction == UP else 8 if direction == DOWN else 0)


def _back_np(back_high: np.ndarray, back_low: np.ndarray, col: int, direction: str) -> bool:
    return bool((direction == UP and back_high[col]) or (direction == DOWN and back_low[col]))


class CompiledDetector(_Alerting):
    """``Detector`` without numpy (~12 MiB and ~0.1 CPU-s to import, and ~40 numpy calls
    a group of windows): the history as Python float rows, oldest first (ColdDetector's),
    the statistics and tests of a group of windows in C (``_counting.judge``: the numpy
    version's operations on the same doubles, in the same order, the same groups of at
    most 256 windows), the alert state machine as ``Detector``'s. Same saved form."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.signals: list[str] = []
        self.cols: dict[str, int] = {}
        self._kind = bytearray()
        self._up = bytearray()
        self._down = bytearray()
        # the history, oldest first, row after row (doubles: 8 bytes a value, not a float object)
        self._hist = array("d")
        self._n = 0
        self.active: dict[str, Alert] = {}
        self._factor = array("d", predictive_factors(cfg.history, cfg.sigma))
        self.zero_run = 0
        self.silence_rate = 0.0

    @property
    def n(self) -> int:
        return self._n

    def _ensure(self, names: Iterable[str]) -> None:
        if isinstance(names, Mapping) and names.keys() <= self.cols.keys():
            return
        width = len(self.signals)
        fills = array("d")
        for s in names:
            if s in self.cols:
                continue
            kind = signal_kind(s)
            d = self.cfg.direction(s)
            self.cols[s] = len(self.signals)
            self.signals.append(s)
            self._kind.append(kind)
            self._up.append(d in (UP, BOTH))
            self._down.append(d in (DOWN, BOTH))
            fills.append(0.0 if kind == COUNT else math.nan)  # a class never seen before was 0 in every past window
        if fills and self._n:
            hist, self._hist = self._hist, array("d")
            for i in range(self._n):
                self._hist.extend(hist[i * width : (i + 1) * width])
                self._hist.extend(fills)

    def observe(self, values: Mapping[str, float | None], window: int) -> list[Change]:
        return self.observe_many([(values, window)])[0]

    def observe_many(self, windows: Sequence[tuple[Mapping[str, float | None], int]]) -> list[list[Change]]:
        out: list[list[Change]] = []
        for lo in range(0, len(windows), 256):  # Detector's groups (its cumulative sums start at each)
            out += self._judge(windows[lo : lo + 256])
        return out

    def _judge(self, windows: Sequence[tuple[Mapping[str, float | None], int]]) -> list[list[Change]]:
        assert _judge_c is not None
        for values, _ in windows:
            self._ensure(values)
        nk = len(windows)
        ncols = len(self.signals)
        base = [0.0 if k == COUNT else math.nan for k in self._kind]
        cols = self.cols
        filled = []
        for values, _ in windows:
            row = base.copy()
            for s, v in values.items():
                if v is not None:
                    row[cols[s]] = float(v)
            filled.append(row)
        flat = array("d", self._hist)
        for row in filled:
            flat.extend(row)
        ev = self.cols.get("events")
        cfg = self.cfg
        mean_b, sigma_b, codes, flags, cnt_ev = _judge_c(
            flat,
            self._n,
            nk,
            ncols,
            self._kind,
            self._up,
            self._down,
            self._factor,
            cfg.history,
            cfg.min_history,
            cfg.sigma,
            cfg.clear_sigma,
            -1 if ev is None else ev,
            RELATIVE_FLOOR,
            ABSOLUTE_FLOOR,
            RATIO_FLOOR,
        )
        means = array("d", mean_b)
        sigmas = array("d", sigma_b)
        out: list[list[Change]] = []
        for i, (values, window) in enumerate(windows):  # Detector._judge's state machine, in order
            changes: list[Change] = []
            if flags[i] or self.active:
                row_codes = codes[i * ncols : (i + 1) * ncols]
                starts = [(c, UP if code & 1 else DOWN) for c, code in enumerate(row_codes) if code & 3]
                changes = self._changes(
                    window,
                    starts,
                    filled[i],
                    means[i * ncols : (i + 1) * ncols].tolist(),
                    sigmas[i * ncols : (i + 1) * ncols].tolist(),
                    partial(_back_code, row_codes),
                )
            if ev is not None:
                rate = means[i * ncols + ev] if cnt_ev[i] >= cfg.min_history else 0.0
                changes += self._silence_at(values.get("events"), partial(float, rate), window)
            out.append(changes)
        keep = min(self._n + nk, cfg.history)  # a group longer than the history keeps its newest rows
        self._hist = flat[(self._n + nk - keep) * ncols :]
        self._n = keep
        return out

    def to_dict(self) -> dict[str, Any]:
        return _saved(self.signals, self._hist, self._n, self.active, self.zero_run, self.silence_rate)

    @classmethod
    def from_dict(cls, cfg: DetectorConfig, d: Mapping[str, Any]) -> CompiledDetector | Detector:
        """``Detector.from_dict`` without numpy; a saved history in another layout (which
        Detector starts over, keeping the alerts) goes to Detector itself."""
        signals, rows, raw = _saved_history(d)
        if raw is None:
            return Detector.from_dict(cfg, d)
        det = cls(cfg)
        det._ensure(signals)
        width = len(signals)
        keep = min(rows, cfg.history)
        det._hist = raw[(rows - keep) * width :]
        det._n = keep
        det.active = {s: Alert(**a) for s, a in d.get("active", {}).items()}
        det.zero_run = int(d.get("zero_run", 0))
        det.silence_rate = float(d.get("silence_rate", 0.0))
        return det


class Detector(_Alerting):
    """History and alerts of one source; ``observe`` is called once per closed window, in order."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.signals: list[str] = []
        self.cols: dict[str, int] = {}
        self._kind = np.zeros(0, dtype=np.int8)
        self._up = np.zeros(0, dtype=bool)
        self._down = np.zeros(0, dtype=bool)
        self.hist = np.zeros((cfg.history, 0), dtype=np.float64)  # ring of rows, oldest at `pos` once full
        self.n = 0  # rows filled
        self.pos = 0  # next row to write
        self.active: dict[str, Alert] = {}
        self._factor = predictive_factor(np.arange(cfg.history + 1), cfg.sigma)  # by history length
        self.zero_run = 0  # empty windows in a row
        self.silence_rate = 0.0  # mean events per window before the empty run began

    # -- columns ---------------------------------------------------------------------

    def _ensure(self, names: Iterable[str]) -> None:
        if isinstance(names, Mapping) and names.keys() <= self.cols.keys():
            return  # the common case: no new signal (a set comparison in C)
        new = [s for s in names if s not in self.cols]
        if not new:
            return
        kinds = np.array([signal_kind(s) for s in new], dtype=np.int8)
        dirs = [self.cfg.direction(s) for s in new]
        fill = np.where(kinds == COUNT, 0.0, np.nan)  # a class never seen before was 0 in every past window
        block = np.tile(fill, (self.cfg.history, 1))
        if self.n < self.cfg.history:
            block[self.n :] = np.nan  # rows not written yet stay empty
        self.hist = np.hstack((self.hist, block))
        for s in new:
            self.cols[s] = len(self.signals)
            self.signals.append(s)
        self._kind = np.concatenate((self._kind, kinds))
        self._up = np.concatenate((self._up, [d in (UP, BOTH) for d in dirs]))
        self._down = np.concatenate((self._down, [d in (DOWN, BOTH) for d in dirs]))

    # -- statistics --------------------------------------------------------------------

    def _rows(self) -> np.ndarray:
        return self.hist[: self.n] if self.n < self.cfg.history else self.hist

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, floored sigma) per signal over the history (NaN-aware), in the
        signals' own units (what anomaly documents report)."""
        cnt, mean, std = _moments(self._rows())
        std = std * self._factor[cnt]
        m0 = np.where(np.isnan(mean), 0.0, mean)
        floor = np.maximum(np.abs(m0) * RELATIVE_FLOOR, ABSOLUTE_FLOOR)
        floor = np.where(self._kind == COUNT, np.maximum(np.sqrt(np.maximum(m0, 0.0)), 1.0), floor)
        ratio = self._kind == RATIO
        if ratio.any():
            ev = self.cols.get("events")
            n_ev = float(mean[ev]) if ev is not None and cnt[ev] else 1.0
            p = np.clip(m0, 0.0, 1.0)
            floor = np.where(ratio, np.maximum(np.sqrt(p * (1 - p) / max(n_ev, 1.0)), RATIO_FLOOR), floor)
        return cnt, mean, np.maximum(std, floor)

    # -- one window ------------------------------------------------------------------

    def observe(self, values: Mapping[str, float | None], window: int) -> list[Change]:
        """Judge one closed window against the history, then add it to the history.

        Signals missing from ``values`` are 0 for counts and unknown (not judged, not
        added) for the others.
        """
        return self.observe_many([(values, window)])[0]

    def observe_many(self, windows: Sequence[tuple[Mapping[str, float | None], int]]) -> list[list[Change]]:
        """``observe`` for consecutive windows in order, the statistics of all of them in
        one numpy pass (a backfill closes hundreds per tick; one call each cost ~40 numpy
        calls per window). Same results as one ``observe`` per window."""
        out: list[list[Change]] = []
        for lo in range(0, len(windows), 256):  # bounded matrices
            out += self._judge(windows[lo : lo + 256])
        return out

    def _ordered(self) -> np.ndarray:
        """The history rows, oldest first."""
        if self.n < self.cfg.history:
            return self.hist[: self.n]
        return np.concatenate((self.hist[self.pos :], self.hist[: self.pos]))

    def _judge(self, windows: Sequence[tuple[Mapping[str, float | None], int]]) -> list[list[Change]]:
        for values, _ in windows:
            self._ensure(values)
        nk = len(windows)
        base = np.where(self._kind == COUNT, 0.0, np.nan).tolist()
        cols = self.cols
        filled = []
        for values, _ in windows:  # Python floats into a list per window, one array at the end
            row = base.copy()
            for s, v in values.items():
                if v is not None:
                    row[cols[s]] = v
            filled.append(row)
        x_all = np.array(filled, dtype=np.float64).reshape(nk, len(base))
        rows = np.concatenate((self._ordered(), x_all))
        his = len(rows) - nk + np.arange(nk)  # row i is judged on rows[lo_i:hi_i]
        los = np.maximum(his - self.cfg.history, 0)
        cnt, mean, std = _window_moments(rows, los, his)
        # sigma in the signals' own units (reported), floored
        m0 = np.where(np.isnan(mean), 0.0, mean)
        floor = np.maximum(np.abs(m0) * RELATIVE_FLOOR, ABSOLUTE_FLOOR)
        floor = np.where(self._kind == COUNT, np.maximum(np.sqrt(np.maximum(m0, 0.0)), 1.0), floor)
        ev = self.cols.get("events")
        ratio = self._kind == RATIO
        if ratio.any():
            n_ev = np.maximum(m0[:, ev : ev + 1], 1.0) if ev is not None else np.ones((nk, 1))
            p = np.clip(m0, 0.0, 1.0)
            floor = np.where(ratio, np.maximum(np.sqrt(p * (1 - p) / n_ev), RATIO_FLOOR), floor)
        sigma = np.maximum(std * self._factor[cnt], floor)
        # what is judged: counts and the error ratio on their variance-stabilizing scales
        xj, mj, sj = x_all, mean, sigma
        stab = np.flatnonzero((self._kind == COUNT) | (ratio if ev is not None else False))
        if len(stab):
            y = _stabilize(rows[:, stab], self._kind[stab] == RATIO, rows[:, ev] if ev is not None else None)
            cy, my, sy = _window_moments(y, los, his)
            xj, mj, sj = x_all.copy(), mean.copy(), sigma.copy()
            xj[:, stab], mj[:, stab], sj[:, stab] = y[his], my, np.maximum(sy * self._factor[cy], 1.0)
        k, kc = self.cfg.sigma, self.cfg.clear_sigma
        known = (cnt >= self.cfg.min_history) & ~np.isnan(x_all)
        with np.errstate(invalid="ignore"):
            high = known & self._up & (xj > mj + k * sj)
            low = known & self._down & (xj < mj - k * sj)
            back_high = xj <= mj + kc * sj
            back_low = xj >= mj - kc * sj
        out: list[list[Change]] = []
        flagged = (high | low).any(axis=1).tolist()
        for i, (values, window) in enumerate(windows):  # the alert state machine, in order
            changes: list[Change] = []
            if flagged[i] or self.active:  # most windows: nothing starts, nothing to clear
                # this window's row as Python values (one conversion each, not one per signal)
                starts: list[tuple[int, str]] = []
                if flagged[i]:
                    hi_i = high[i].tolist()
                    starts = [(c, UP if hi_i[c] else DOWN) for c in np.flatnonzero(high[i] | low[i]).tolist()]
                bh, bl = back_high[i], back_low[i]
                changes = self._changes(
                    window,
                    starts,
                    x_all[i].tolist(),
                    mean[i].tolist(),
                    sigma[i].tolist(),
                    partial(_back_np, bh, bl),
                )
            changes += self._silence(values.get("events"), cnt, mean, i, window)
            out.append(changes)
        keep = x_all[-self.cfg.history :]  # a batch longer than the history keeps its newest rows
        idx = (self.pos + nk - len(keep) + np.arange(len(keep))) % self.cfg.history
        self.hist[idx] = keep
        self.pos = (self.pos + nk) % self.cfg.history
        self.n = min(self.n + nk, self.cfg.history)
        return out

    def _silence(self, events: float | None, cnt: np.ndarray, mean: np.ndarray, i: int, window: int) -> list[Change]:
        """Silence at window ``i`` of the statistics ``cnt``/``mean`` (one row per window)."""
        ev = self.cols.get("events")
        if ev is None:
            return []
        min_history = self.cfg.min_history
        return self._silence_at(events, lambda: float(mean[i, ev]) if cnt[i, ev] >= min_history else 0.0, window)

    # -- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """History in time order (oldest first, float64 little-endian, base64: exact and a
        third the size of JSON numbers), alerts and the silence run."""
        order = np.r_[self.pos : self.cfg.history, 0 : self.pos] if self.n == self.cfg.history else np.arange(self.n)
        rows = np.ascontiguousarray(self.hist[order], dtype="<f8")
        return {
            "signals": self.signals,
            "rows": int(rows.shape[0]),
            "history": base64.b64encode(rows.tobytes()).decode(),
            "active": {s: a.__dict__ for s, a in self.active.items()},
            "zero_run": self.zero_run,
            "silence_rate": self.silence_rate,
        }

    @classmethod
    def from_dict(cls, cfg: DetectorConfig, d: Mapping[str, Any]) -> Detector:
        """Restore; a history longer than the configured one keeps its newest rows."""
        det = cls(cfg)
        det._ensure(d.get("signals", []))
        n_sig = len(det.signals)
        saved = d.get("history")
        raw = np.frombuffer(base64.b64decode(saved), "<f8") if isinstance(saved, str) else np.zeros(0)
        if n_sig and len(raw) == int(d.get("rows", 0)) * n_sig:
            rows = raw.reshape(-1, n_sig)[-cfg.history :]
            det.hist[: len(rows)] = rows
            det.n = len(rows)
        # else: a history in another layout (or none) starts over; alerts are kept
        det.pos = det.n % cfg.history
        det.active = {s: Alert(**a) for s, a in d.get("active", {}).items()}
        det.zero_run = int(d.get("zero_run", 0))
        det.silence_rate = float(d.get("silence_rate", 0.0))
        return det
