"""Per-batch counters per time window, from a :class:`Batch`'s per-event arrays, in numpy.

The anomaly watch (``shipper/anomaly``) needs, per source and window, how many events,
bytes, events per level, error events per class, and per extracted metric the count,
sum, min and max, plus confusion counts and (score, label) pairs of logged predictions.
Counting those per line in Python would cost more than parsing the line did, so this
module turns a batch's arrays into per-window rows with a fixed number of numpy calls
per batch, whatever its size: no Python loop runs per event (the only loops run per
distinct metric name or error class present in the batch).

The arrays a batch carries (all ``array.array``, item order = body order):

- ``ev_time`` 'q' event time (ms since the epoch), ``ev_level`` 'B' (0 none .. 7 other,
  ``LEVEL_NAMES``), ``ev_class`` 'B' (0 not an error, else 1 + index into the parser's
  ``error_classes``), ``ev_bytes`` 'I' (file bytes of the event);
- ``m_item`` 'I', ``m_id`` 'H', ``m_value`` 'd': metric values (event index, id into
  the parser's ``metric_names``, value);
- ``p_item`` 'I', ``p_label`` 'b' (1/0), ``p_pred`` 'b' (1/0/-1 none), ``p_score`` 'd'
  (NaN none): prediction records. Counts logged as metrics named ``tp``, ``fp``, ``fn``
  and ``tn`` are added to the confusion counts of their window.

Windows start at multiples of the window length since the epoch, so two agents, or a
backfill and a live run, cut the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: ``ev_level`` values: index -> name (0 is "no level").
LEVEL_NAMES = ("none", "trace", "debug", "info", "warning", "error", "critical", "other")
N_LEVELS = len(LEVEL_NAMES)
#: Metric names whose values are confusion counts, in the column order of ``confusion``.
CONFUSION_METRICS = ("tp", "fp", "fn", "tn")
# Window ranges up to this many windows are indexed by offset (O(n)); wider ones sort.
_DENSE_SPAN = 4096

_EMPTY_I8 = np.zeros(0, dtype=np.int8)
_EMPTY_F8 = np.zeros(0, dtype=np.float64)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)


@dataclass
class WindowCounts:
    """The counters of one batch, one row per window the batch's events fall into.

    ``classes[:, 0]`` counts events that are not error events; column ``j > 0`` the error
    class ``class_names[j - 1]``. Metric rows are sparse (only the (window, metric)
    pairs that occur): ``m_row`` is the row index into ``starts``, ``m_name`` the name.
    Pair arrays (``pair_row``, ``pair_score``, ``pair_label``) are sorted by row.
    """

    starts: np.ndarray  # int64 (W,) window start, ms since the epoch
    events: np.ndarray  # int64 (W,)
    bytes: np.ndarray  # int64 (W,)
    levels: np.ndarray  # int64 (W, N_LEVELS)
    classes: np.ndarray  # int64 (W, 1 + len(class_names))
    class_names: tuple[str, ...]
    confusion: np.ndarray  # int64 (W, 4): tp, fp, fn, tn
    m_row: np.ndarray = field(default_factory=lambda: _EMPTY_I64)
    m_name: list[str] = field(default_factory=list)
    m_count: np.ndarray = field(default_factory=lambda: _EMPTY_I64)
    m_sum: np.ndarray = field(default_factory=lambda: _EMPTY_F8)
    m_min: np.ndarray = field(default_factory=lambda: _EMPTY_F8)
    m_max: np.ndarray = field(default_factory=lambda: _EMPTY_F8)
    pair_row: np.ndarray = field(default_factory=lambda: _EMPTY_I64)
    pair_score: np.ndarray = field(default_factory=lambda: _EMPTY_F8)
    pair_label: np.ndarray = field(default_factory=lambda: _EMPTY_I8)
    max_time: int = 0  # latest event time in the batch (ms)
    error_rows: np.ndarray = field(default_factory=lambda: _EMPTY_I64)  # row of each sampled error event
    error_items: np.ndarray = field(default_factory=lambda: _EMPTY_I64)  # its item index in the batch

    def __len__(self) -> int:
        return len(self.starts)


def _arr(batch: Any, name: str, dtype: Any) -> np.ndarray:
    """A batch array as numpy without a copy (absent: empty)."""
    a = getattr(batch, name, None)
    if a is None or len(a) == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(a, dtype=dtype)


def count(
    batch: Any,
    window_ms: int,
    metric_names: Sequence[str] = (),
    error_classes: Sequence[str] = (),
    *,
    error_samples: int = 3,
) -> WindowCounts | None:
    """The batch's counters per window of ``window_ms``; None when the batch has no events.

    ``metric_names``/``error_classes`` are the parser's tables the ids index into (metric
    ids beyond the table, which a parser never makes, would raise IndexError). Metric
    values that are not finite (a NaN loss) are left out of count/sum/min/max: one NaN
    would make every later mean NaN; the parser's ``nan_loss`` error class reports them.
    ``error_samples``: at most this many error events per window are listed in
    ``error_rows``/``error_items`` so the caller can quote their messages.
    """
    t = _arr(batch, "ev_time", np.int64)
    n = len(t)
    if n == 0:
        return None
    t_max = int(t.max())
    lo, hi = int(t.min()) // window_ms, t_max // window_ms
    ncls = len(error_classes) + 1
    ev_bytes = _arr(batch, "ev_bytes", np.uint32)
    lev = _arr(batch, "ev_level", np.uint8)
    cls = _arr(batch, "ev_class", np.uint8)
    cls_i = cls
    row: np.ndarray | None
    if lo == hi:  # the common case: the whole batch in one window, plain sums
        row = None
        nw = 1
        starts = np.array([lo * window_ms], np.int64)
        events = np.array([n], np.int64)
        nbytes = np.array([int(ev_bytes.sum(dtype=np.int64))], np.int64)
        levels = _fold(np.bincount(lev, minlength=N_LEVELS), N_LEVELS)[None, :] if len(lev) else None
        classes = _fold(np.bincount(cls, minlength=ncls), ncls)[None, :] if len(cls) else None
    else:
        w_abs = t // window_ms
        if hi - lo < _DENSE_SPAN:
            span = hi - lo + 1
            row = (w_abs - lo).astype(np.intp)
            present = np.bincount(row, minlength=span)
            keep = np.flatnonzero(present)
            if len(keep) != span:  # remap to the windows that occur
                remap = np.full(span, -1, dtype=np.intp)
                remap[keep] = np.arange(len(keep))
                row = remap[row]
            starts = (keep.astype(np.int64) + lo) * window_ms
            events = present[keep].astype(np.int64)
        else:
            uniq, inv, cnt = np.unique(w_abs, return_inverse=True, return_counts=True)
            row = inv.astype(np.intp).reshape(-1)
            starts = uniq.astype(np.int64) * window_ms
            events = cnt.astype(np.int64)
        nw = len(starts)
        nbytes = (
            np.bincount(row, weights=ev_bytes, minlength=nw).astype(np.int64)
            if len(ev_bytes)
            else np.zeros(nw, np.int64)
        )
        if len(lev):
            levels = np.bincount(row * N_LEVELS + np.minimum(lev, N_LEVELS - 1), minlength=nw * N_LEVELS)
            levels = levels.reshape(nw, N_LEVELS)
        else:
            levels = None
        if len(cls):
            cls_i = np.minimum(cls, ncls - 1)  # a class beyond the table counts as the last
            classes = np.bincount(row * ncls + cls_i, minlength=nw * ncls).reshape(nw, ncls)
        else:
            classes = None
    if levels is None:
        levels = np.zeros((nw, N_LEVELS), np.int64)
    if classes is None:
        classes = np.zeros((nw, ncls), np.int64)
        classes[:, 0] = events
    out = WindowCounts(
        starts=starts,
        events=events,
        bytes=nbytes,
        levels=levels.astype(np.int64),
        classes=classes.astype(np.int64),
        class_names=tuple(error_classes),
        confusion=np.zeros((nw, 4), np.int64),
        max_time=t_max,
    )
    err_items = np.flatnonzero(cls_i) if len(cls) and classes[:, 1:].any() else _EMPTY_I64
    if len(err_items):
        _sample_errors(out, row, err_items, error_samples)
    _metrics(out, batch, row, nw, metric_names)
    _predictions(out, batch, row, nw)
    return out


def _fold(counts: np.ndarray, n: int) -> np.ndarray:
    """``n`` bins of a bincount; values beyond the table count in the last bin."""
    if len(counts) > n:
        head = counts[:n].copy()
        head[-1] += counts[n:].sum()
        return head
    return counts


def _rows(row: np.ndarray | None, items: np.ndarray) -> np.ndarray:
    """The window row of each of ``items`` (``row`` None: the batch is in one window)."""
    return np.zeros(len(items), np.int64) if row is None else row[items].astype(np.int64)


def _sample_errors(out: WindowCounts, row: np.ndarray | None, err_items: np.ndarray, per_row: int) -> None:
    """The first ``per_row`` error events of each window (items are in body order)."""
    if row is None:
        out.error_rows = np.zeros(min(per_row, len(err_items)), np.int64)
        out.error_items = err_items[:per_row].astype(np.int64)
        return
    err_rows = row[err_items]
    order = np.argsort(err_rows, kind="stable")
    err_rows, err_items = err_rows[order], err_items[order]
    first = np.searchsorted(err_rows, err_rows, side="left")
    rank = np.arange(len(err_rows)) - first
    keep = rank < per_row
    out.error_rows = err_rows[keep].astype(np.int64)
    out.error_items = err_items[keep].astype(np.int64)


def _metrics(out: WindowCounts, batch: Any, row: np.ndarray | None, nw: int, names: Sequence[str]) -> None:
    m_item = _arr(batch, "m_item", np.uint32)
    if not len(m_item):
        return
    m_id = _arr(batch, "m_id", np.uint16).astype(np.int64)
    m_val = _arr(batch, "m_value", np.float64)
    m_row = _rows(row, m_item)
    nm = int(m_id.max()) + 1
    conf_ids = [(col, names.index(c)) for col, c in enumerate(CONFUSION_METRICS) if c in names[:nm]]
    for col, mid in conf_ids:  # logged TP/FP/FN/TN counts, per window
        sel = m_id == mid
        ok = sel & np.isfinite(m_val)
        out.confusion[:, col] += np.rint(np.bincount(m_row[ok], weights=m_val[ok], minlength=nw)).astype(np.int64)
    finite = np.isfinite(m_val)
    if not finite.all():
        m_row, m_id, m_val = m_row[finite], m_id[finite], m_val[finite]
        if not len(m_row):
            return
    key = m_row * nm + m_id
    if nw * nm <= _DENSE_SPAN:  # bins per (window, metric): O(n), no sort
        cnt = np.bincount(key, minlength=nw * nm)
        present = np.flatnonzero(cnt)
        tot = np.bincount(key, weights=m_val, minlength=nw * nm)
        lo = np.full(nw * nm, np.inf)
        hi = np.full(nw * nm, -np.inf)
        np.minimum.at(lo, key, m_val)
        np.maximum.at(hi, key, m_val)
        out.m_count, out.m_sum, out.m_min, out.m_max = cnt[present], tot[present], lo[present], hi[present]
        ukey = present
    else:
        order = np.argsort(key, kind="stable")
        key_s, val_s = key[order], m_val[order]
        first = np.concatenate(([0], np.flatnonzero(np.diff(key_s)) + 1))
        ukey = key_s[first]
        out.m_count = np.diff(np.concatenate((first, [len(key_s)]))).astype(np.int64)
        out.m_sum = np.add.reduceat(val_s, first)
        out.m_min = np.minimum.reduceat(val_s, first)
        out.m_max = np.maximum.reduceat(val_s, first)
    out.m_row = (ukey // nm).astype(np.int64)
    out.m_count = out.m_count.astype(np.int64)
    out.m_name = [names[i] for i in (ukey % nm).tolist()]  # one name per (window, metric) pair, not per value


def _predictions(out: WindowCounts, batch: Any, row: np.ndarray | None, nw: int) -> None:
    p_item = _arr(batch, "p_item", np.uint32)
    if not len(p_item):
        return
    label = _arr(batch, "p_label", np.int8)
    pred = _arr(batch, "p_pred", np.int8)
    score = _arr(batch, "p_score", np.float64)
    p_row = _rows(row, p_item)
    has = (pred >= 0) & (label >= 0)
    if has.any():
        # tp 0 (pred 1, label 1), fp 1 (1, 0), fn 2 (0, 1), tn 3 (0, 0)
        code = (1 - pred[has].astype(np.int64)) * 2 + (1 - label[has].astype(np.int64))
        out.confusion += np.bincount(p_row[has] * 4 + code, minlength=nw * 4).reshape(nw, 4)
    scored = ~np.isnan(score) & (label >= 0)
    if scored.any():
        pr = p_row[scored]
        order = np.argsort(pr, kind="stable")
        out.pair_row = pr[order]
        out.pair_score = score[scored][order]
        out.pair_label = label[scored][order].astype(np.int8)
