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

import os
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._common import LEVEL_NAMES

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CONFUSION_METRICS", "LEVEL_NAMES", "N_LEVELS", "WindowCounts", "count", "lazy_numpy"]


class _LazyNumpy:
    """Stands for ``numpy`` in a module's globals until an attribute is first asked for;
    then imports numpy and puts the real module in those globals (later uses cost nothing)."""

    __slots__ = ("_namespace",)

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        import numpy

        self._namespace["np"] = numpy
        return getattr(numpy, name)


def lazy_numpy(namespace: dict[str, Any]) -> Any:
    """``np = lazy_numpy(globals())``: numpy imported when the module first uses it."""
    return _LazyNumpy(namespace)


if not TYPE_CHECKING:  # numpy (~14 MiB) only once used: the compiled fold needs none of it
    np = lazy_numpy(globals())

N_LEVELS = len(LEVEL_NAMES)  # ``ev_level`` values index LEVEL_NAMES (0 is "no level")
#: Metric names whose values are confusion counts, in the column order of ``confusion``.
CONFUSION_METRICS = ("tp", "fp", "fn", "tn")
# Window ranges up to this many windows are indexed by offset (O(n)); wider ones sort.
_DENSE_SPAN = 4096

_CONFUSION_SET = frozenset(CONFUSION_METRICS)
_CONFUSION_COL = {name: i for i, name in enumerate(CONFUSION_METRICS)}

#: ``SHIPPER_NO_EXTENSIONS`` (as in ``_fastparse``): the Python twins of the compiled counting
#: too (fold here, the window add and the detector in ``shipper.anomaly``), so that a run with
#: it set exercises every twin, not only the parser's
NO_EXTENSIONS = os.environ.get("SHIPPER_NO_EXTENSIONS", "") not in ("", "0")

try:  # the compiled fold; without it the numpy twin below does the same
    if NO_EXTENSIONS:
        raise ImportError("SHIPPER_NO_EXTENSIONS")
    from ._counting import fold as _fold_c
except ImportError:  # not built (no compiler, SHIPPER_NO_EXTENSIONS)
    _fold_c = None


class WindowCounts:
    """The counters of one batch, one row per window the batch's events fall into.

    Python lists (a few per batch; the per-window steps read them as ints and floats):
    ``starts``, ``events``, ``bytes`` per row; ``levels[r]`` (N_LEVELS counts) and
    ``classes[r]`` (column 0 counts events that are not error events, column ``j > 0``
    the error class ``class_names[j - 1]``); ``confusion[r]`` (tp, fp, fn, tn), or None
    when the batch has none. Metric rows are sparse (only the (window, metric) pairs that
    occur), sorted by row: ``m_row`` the row, ``m_name`` the name, ``m_count``, ``m_sum``,
    ``m_min``, ``m_max``. Prediction pairs stay numpy arrays (``pair_row``, ``pair_score``,
    ``pair_label``; None when the batch has none), sorted by row: they are kept per window
    for its AUC.
    """

    __slots__ = (
        "bytes",
        "class_names",
        "classes",
        "confusion",
        "error_items",
        "error_rows",
        "events",
        "levels",
        "m_count",
        "m_max",
        "m_min",
        "m_name",
        "m_row",
        "m_sum",
        "max_time",
        "pair_label",
        "pair_row",
        "pair_score",
        "starts",
    )

    def __init__(
        self,
        starts: list[int],
        events: list[int],
        bytes: list[int],
        levels: list[list[int]],
        classes: list[list[int]],
        class_names: tuple[str, ...],
        max_time: int,
    ) -> None:
        self.starts = starts  # window start, ms since the epoch
        self.events = events
        self.bytes = bytes
        self.levels = levels
        self.classes = classes
        self.class_names = class_names
        self.confusion: list[list[int]] | None = None
        self.max_time = max_time  # latest event time in the batch (ms)
        self.m_row: list[int] = []
        self.m_name: list[str] = []
        self.m_count: list[int] = []
        self.m_sum: list[float] = []
        self.m_min: list[float] = []
        self.m_max: list[float] = []
        self.pair_row: np.ndarray | None = None  # None: no pairs (numpy not needed)
        self.pair_score: np.ndarray | None = None
        self.pair_label: np.ndarray | None = None
        self.error_rows: list[int] = []  # row of each sampled error event
        self.error_items: list[int] = []  # its item index in the batch

    def __len__(self) -> int:
        return len(self.starts)


_E_Q, _E_B, _E_I, _E_H, _E_D = array("q"), array("B"), array("I"), array("H"), array("d")


def _buf(batch: Any, name: str, empty: array[Any]) -> Any:
    """A batch array as it is, for the compiled fold (absent: an empty one). Anything but
    an ``array.array`` (a test's bytes) goes through numpy, which gives it its type."""
    a = getattr(batch, name, None)
    if a is None or len(a) == 0:
        return empty
    if type(a) is array:
        return a
    return np.frombuffer(a, dtype=empty.typecode)


_FOLD_ARRAYS = (
    ("ev_time", _E_Q),
    ("ev_level", _E_B),
    ("ev_class", _E_B),
    ("ev_bytes", _E_I),
    ("m_item", _E_I),
    ("m_id", _E_H),
    ("m_value", _E_D),
)


def _bufs(batch: Any) -> list[Any]:
    """The fold's seven arrays of a batch (``_buf`` of each; one call per batch)."""
    out = []
    for name, empty in _FOLD_ARRAYS:
        a = getattr(batch, name, None)
        out.append(a if type(a) is array and len(a) else _buf(batch, name, empty))
    return out


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
    twin: bool = False,
) -> WindowCounts | None:
    """The batch's counters per window of ``window_ms``; None when the batch has no events.

    ``metric_names``/``error_classes`` are the parser's tables the ids index into (metric
    ids beyond the table, which a parser never makes, would raise IndexError). Metric
    values that are not finite (a NaN loss) are left out of count/sum/min/max: one NaN
    would make every later mean NaN; the parser's ``nan_loss`` error class reports them.
    ``error_samples``: at most this many error events per window are listed in
    ``error_rows``/``error_items`` so the caller can quote their messages.
    The compiled fold (``_counting``) is used when built, unless ``twin``; the numpy twin
    otherwise, and for batches the fold's dense layout does not fit.
    """
    ev_time = getattr(batch, "ev_time", None)
    if ev_time is None or len(ev_time) == 0:
        return None
    out: WindowCounts | None = None
    row: np.ndarray | None = None
    rows: bytes | None = None
    if _fold_c is not None and not twin:
        got = _fold_c(
            *_bufs(batch),
            window_ms,
            N_LEVELS,
            len(error_classes) + 1,
            error_samples,
            _DENSE_SPAN,
            _DENSE_SPAN * 16,
            len(metric_names),
        )
        if got is not None:
            starts, events, nbytes, levels, classes, err_rows, err_items, m, t_max, rows = got
            out = WindowCounts(starts, events, nbytes, levels, classes, tuple(error_classes), t_max)
            out.error_rows, out.error_items = err_rows, err_items
            if m[0]:
                out.m_row, out.m_count, out.m_sum, out.m_min, out.m_max = m[0], m[2], m[3], m[4], m[5]
                out.m_name = [metric_names[i] for i in m[1]]
    if out is None:
        t = _arr(batch, "ev_time", np.int64)
        out, row = _count_np(batch, t, window_ms, metric_names, error_classes, error_samples)
    _confusion_metrics(out)
    p_item = getattr(batch, "p_item", None)
    if p_item is not None and len(p_item):  # the rows per event only for predictions
        if rows is not None:
            row = np.frombuffer(rows, np.int32).astype(np.intp)
        _predictions(out, batch, row, len(out))
    return out


def _count_np(
    batch: Any,
    t: np.ndarray,
    window_ms: int,
    metric_names: Sequence[str],
    error_classes: Sequence[str],
    error_samples: int,
) -> tuple[WindowCounts, np.ndarray | None]:
    """The numpy twin of the compiled fold (same sums, in the same order)."""
    n = len(t)
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
        if len(cls):
            cls_i = np.minimum(cls, ncls - 1)
            classes = np.bincount(cls_i, minlength=ncls)[None, :]
        else:
            classes = None
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
        starts.tolist(),
        events.tolist(),
        nbytes.tolist(),
        levels.astype(np.int64).tolist(),
        classes.astype(np.int64).tolist(),
        tuple(error_classes),
        t_max,
    )
    err_items = np.flatnonzero(cls_i) if len(cls) and classes[:, 1:].any() else np.zeros(0, np.int64)
    if len(err_items):
        _sample_errors(out, row, err_items, error_samples)
    _metrics(out, batch, row, nw, metric_names)
    return out, row


def _confusion_metrics(out: WindowCounts) -> None:
    """Counts logged as metrics named tp/fp/fn/tn: the rounded sum per window."""
    if not out.m_name or _CONFUSION_SET.isdisjoint(out.m_name):
        return
    conf = out.confusion = [[0, 0, 0, 0] for _ in out.starts]
    for r, name, s in zip(out.m_row, out.m_name, out.m_sum, strict=True):
        col = _CONFUSION_COL.get(name)
        if col is not None:
            conf[r][col] += round(s)


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
        out.error_rows = [0] * min(per_row, len(err_items))
        out.error_items = err_items[:per_row].tolist()
        return
    err_rows = row[err_items]
    order = np.argsort(err_rows, kind="stable")
    err_rows, err_items = err_rows[order], err_items[order]
    first = np.searchsorted(err_rows, err_rows, side="left")
    rank = np.arange(len(err_rows)) - first
    keep = rank < per_row
    # the compiled fold lists them in item order; so does this
    rows_k, items_k = err_rows[keep], err_items[keep]
    order = np.argsort(items_k, kind="stable")
    out.error_rows = rows_k[order].tolist()
    out.error_items = items_k[order].tolist()


def _metrics(out: WindowCounts, batch: Any, row: np.ndarray | None, nw: int, names: Sequence[str]) -> None:
    m_item = _arr(batch, "m_item", np.uint32)
    if not len(m_item):
        return
    m_id = _arr(batch, "m_id", np.uint16).astype(np.intp)
    m_val = _arr(batch, "m_value", np.float64)
    m_row = _rows(row, m_item)
    nm = int(m_id.max()) + 1
    finite = np.isfinite(m_val)
    all_finite = bool(finite.all())
    if not all_finite:
        m_row, m_id, m_val = m_row[finite], m_id[finite], m_val[finite]
        if not len(m_row):
            return
    key = m_id if row is None else m_row * nm + m_id
    if nw * nm <= _DENSE_SPAN:  # bins per (window, metric): O(n), no sort
        cnt = np.bincount(key, minlength=nw * nm)
        present = np.flatnonzero(cnt)
        tot = np.bincount(key, weights=m_val, minlength=nw * nm)
        lo = np.full(nw * nm, np.inf)
        hi = np.full(nw * nm, -np.inf)
        np.minimum.at(lo, key, m_val)
        np.maximum.at(hi, key, m_val)
        m_count, m_sum, m_min, m_max = cnt[present], tot[present], lo[present], hi[present]
        ukey = present
    else:
        order = np.argsort(key, kind="stable")
        key_s, val_s = key[order], m_val[order]
        first = np.concatenate(([0], np.flatnonzero(np.diff(key_s)) + 1))
        ukey = key_s[first]
        m_count = np.diff(np.concatenate((first, [len(key_s)])))
        m_sum = np.add.reduceat(val_s, first)
        m_min = np.minimum.reduceat(val_s, first)
        m_max = np.maximum.reduceat(val_s, first)
    out.m_row = (ukey // nm).tolist()
    out.m_count = m_count.astype(np.int64).tolist()
    out.m_sum, out.m_min, out.m_max = m_sum.tolist(), m_min.tolist(), m_max.tolist()
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
        add = np.bincount(p_row[has] * 4 + code, minlength=nw * 4).reshape(nw, 4).tolist()
        if out.confusion is None:
            out.confusion = add
        else:
            old = out.confusion
            out.confusion = [[a + b for a, b in zip(x, y, strict=True)] for x, y in zip(old, add, strict=True)]
    scored = ~np.isnan(score) & (label >= 0)
    if scored.any():
        pr = p_row[scored]
        order = np.argsort(pr, kind="stable")
        out.pair_row = pr[order]
        out.pair_score = score[scored][order]
        out.pair_label = label[scored][order].astype(np.int8)
