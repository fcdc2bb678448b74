# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The anomaly counters' per-batch fold in C: per-event arrays -> per-window sums.

``counters.count`` calls :func:`fold` when this extension is built; its numpy twin in
``counters.py`` gives the same sums (tests/test_anomaly_counters.py runs both). One pass
over the events and one over the metric values, in item order (so float sums are added
in the same order as numpy's ``bincount`` does), into C arrays indexed by window row; the
results come back as Python lists, a few per batch, not per event.

``fold`` returns None when the batch does not fit the dense layout (windows spread over
more than ``max_span`` window lengths, or more than ``max_keys`` (window, metric) pairs):
the caller then uses the twin, which sorts.
"""

from libc.math cimport INFINITY, NAN, asin, fabs, isfinite, sqrt
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset


cdef inline int64_t _floordiv(int64_t a, int64_t b) nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


def fold(
    const int64_t[::1] t,
    const uint8_t[::1] lev,
    const uint8_t[::1] cls,
    const uint32_t[::1] nbytes,
    const uint32_t[::1] m_item,
    const uint16_t[::1] m_id,
    const double[::1] m_val,
    int64_t window_ms,
    int n_levels,
    int n_classes,
    int samples,
    int64_t max_span=4096,
    int64_t max_keys=65536,
    Py_ssize_t n_metrics=65536,
):
    """(starts, events, bytes, levels, classes, error_rows, error_items,
    (m_row, m_id, m_count, m_sum, m_min, m_max), max_time, row_of_item) or None.

    ``lev``/``cls``/``nbytes`` may be empty (absent arrays); ``n_classes`` counts column 0
    (not an error). Levels and classes beyond their tables count in the last column.
    Metric values that are not finite are left out; an id of ``n_metrics`` or more raises
    IndexError. The arrays may be any buffers of those types (``array.array`` as a batch
    carries them: no numpy wrapper per call). ``row_of_item`` is a bytes object of
    int32 window rows per event, for the predictions' twin (None when one window).
    """
    cdef Py_ssize_t n = t.shape[0], i, k, nm_vals = m_item.shape[0]
    if n == 0:
        return None
    cdef int64_t tmin = t[0], tmax = t[0], v
    for i in range(1, n):
        v = t[i]
        if v < tmin:
            tmin = v
        elif v > tmax:
            tmax = v
    cdef int64_t lo = _floordiv(tmin, window_ms), hi = _floordiv(tmax, window_ms)
    cdef int64_t span = hi - lo + 1
    if span > max_span:
        return None
    cdef int nm = 0
    for k in range(nm_vals):
        if m_id[k] + 1 > nm:
            nm = m_id[k] + 1
    if nm > n_metrics:
        raise IndexError("metric id beyond the metric table")
    cdef bint has_lev = lev.shape[0] == n, has_cls = cls.shape[0] == n, has_bytes = nbytes.shape[0] == n
    cdef int* slot_row = <int*> malloc(span * sizeof(int))
    cdef int* item_row = <int*> malloc(n * sizeof(int)) if span > 1 else NULL
    cdef int64_t* acc = NULL
    cdef int64_t* m_cnt = NULL
    cdef double* m_sum = NULL
    cdef double* m_lo = NULL
    cdef double* m_hi = NULL
    cdef int* taken = NULL
    cdef int nw = 0, r, width, c, j, key
    cdef int64_t w_lo, w_hi, slot
    cdef double x
    try:
        if slot_row == NULL or (span > 1 and item_row == NULL):
            raise MemoryError()
        # rows: windows that occur, in time order
        memset(slot_row, 0xFF, span * sizeof(int))
        if span == 1:
            slot_row[0] = 0
            nw = 1
        else:
            # event times mostly ascend: a division only when an event leaves the
            # window of the one before it (an int64 division costs ~40 cycles)
            w_lo = lo * window_ms
            w_hi = w_lo
            slot = 0
            for i in range(n):
                v = t[i]
                if v < w_lo or v >= w_hi:
                    slot = _floordiv(v, window_ms) - lo
                    w_lo = (lo + slot) * window_ms
                    w_hi = w_lo + window_ms
                slot_row[slot] = 0
                item_row[i] = <int> slot  # the slot for now; rows once all slots are known
            for k in range(span):
                if slot_row[k] == 0:
                    slot_row[k] = nw
                    nw += 1
            for i in range(n):
                item_row[i] = slot_row[item_row[i]]
        if nm and <int64_t> nw * nm > max_keys:
            return None
        # per row: events, bytes, n_levels levels, n_classes classes
        width = 2 + n_levels + n_classes
        acc = <int64_t*> calloc(nw * width, sizeof(int64_t))
        taken = <int*> calloc(nw, sizeof(int))
        if acc == NULL or taken == NULL:
            raise MemoryError()
        err_rows = []
        err_items = []
        r = 0
        for i in range(n):
            if item_row != NULL:
                r = item_row[i]
            k = r * width
            acc[k] += 1
            if has_bytes:
                acc[k + 1] += nbytes[i]
            if has_lev:
                j = lev[i]
                if j >= n_levels:
                    j = n_levels - 1
                acc[k + 2 + j] += 1
            c = 0
            if has_cls:
                c = cls[i]
                if c >= n_classes:
                    c = n_classes - 1
            acc[k + 2 + n_levels + c] += 1
            if c and taken[r] < samples:
                taken[r] += 1
                err_rows.append(r)
                err_items.append(i)
        starts = []
        for k in range(span):
            if slot_row[k] >= 0:
                starts.append((lo + k) * window_ms)
        events = []
        byts = []
        levels = []
        classes = []
        for r in range(nw):
            k = r * width
            events.append(acc[k])
            byts.append(acc[k + 1])
            levels.append([acc[k + 2 + j] for j in range(n_levels)])
            classes.append([acc[k + 2 + n_levels + j] for j in range(n_classes)])
        # metrics: count, sum, min, max per (row, metric id), finite values only
        mr = []
        mi = []
        mc = []
        ms = []
        mlo = []
        mhi = []
        if nm:
            m_cnt = <int64_t*> calloc(nw * nm, sizeof(int64_t))
            m_sum = <double*> calloc(nw * nm, sizeof(double))
            m_lo = <double*> malloc(nw * nm * sizeof(double))
            m_hi = <double*> malloc(nw * nm * sizeof(double))
            if m_cnt == NULL or m_sum == NULL or m_lo == NULL or m_hi == NULL:
                raise MemoryError()
            for key in range(nw * nm):
                m_lo[key] = INFINITY
                m_hi[key] = -INFINITY
            r = 0
            for k in range(nm_vals):
                x = m_val[k]
                if not isfinite(x):
                    continue
                if item_row != NULL:
                    r = item_row[m_item[k]]
                key = r * nm + m_id[k]
                if x < m_lo[key]:
                    m_lo[key] = x
                if x > m_hi[key]:
                    m_hi[key] = x
                m_cnt[key] += 1
                m_sum[key] += x
            for key in range(nw * nm):
                if m_cnt[key]:
                    mr.append(key // nm)
                    mi.append(key % nm)
                    mc.append(m_cnt[key])
                    ms.append(m_sum[key])
                    mlo.append(m_lo[key])
                    mhi.append(m_hi[key])
        rows = None
        if item_row != NULL:
            rows = (<char*> item_row)[: n * sizeof(int)]
        return (starts, events, byts, levels, classes, err_rows, err_items, (mr, mi, mc, ms, mlo, mhi), tmax, rows)
    finally:
        free(slot_row)
        free(item_row)
        free(acc)
        free(taken)
        free(m_cnt)
        free(m_sum)
        free(m_lo)
        free(m_hi)


def add_row(w, c, Py_ssize_t r, Py_ssize_t m_lo, Py_ssize_t m_hi):
    """``Window.add`` of row ``r`` of a batch's counters, but its prediction pairs: the
    same Python ints and floats, added and compared in the same order as the Python
    method (its twin, shipper/anomaly/windows.py), without the interpreter's steps per
    level, error class and metric name (a backfill adds a few rows per window)."""
    cdef list old, row, new
    cdef dict into, metrics
    cdef Py_ssize_t j, k, n
    cdef object ev = c.events[r], x, name, names, m, m_name, m_count, m_sum, m_min, m_max
    w.saved = None
    w.events = w.events + ev
    w.bytes = w.bytes + c.bytes[r]
    old = w.levels
    row = c.levels[r]
    n = min(len(old), len(row))
    new = [None] * n
    for j in range(n):
        new[j] = old[j] + row[j]
    w.levels = new
    row = c.classes[r]
    if len(row) > 1 and row[0] != ev:  # error events in this row (windows.add_classes)
        into = w.classes
        names = c.class_names
        for j in range(1, len(row)):
            x = row[j]
            if x:
                name = names[j - 1] if j - 1 < len(names) else "other"
                into[name] = into.get(name, 0) + x
    if m_hi > m_lo:
        metrics = w.metrics
        m_name, m_count, m_sum, m_min, m_max = c.m_name, c.m_count, c.m_sum, c.m_min, c.m_max
        for k in range(m_lo, m_hi):  # per metric name present
            name = m_name[k]
            m = metrics.get(name)
            if m is None:
                metrics[name] = [m_count[k], m_sum[k], m_min[k], m_max[k]]
            else:
                m[0] = m[0] + m_count[k]
                m[1] = m[1] + m_sum[k]
                x = m_min[k]
                if x < m[2]:
                    m[2] = x
                x = m_max[k]
                if x > m[3]:
                    m[3] = x
    x = c.confusion
    if x is not None:
        old = w.confusion
        row = x[r]
        n = min(len(old), len(row))
        new = [None] * n
        for j in range(n):
            new[j] = old[j] + row[j]
        w.confusion = new


cdef inline double _maximum(double a, double b) nogil:
    """``np.maximum``: NaN in ``a`` (or else ``b``) wins."""
    if a >= b or a != a:
        return a
    return b


cdef inline double _clip01(double a) nogil:
    """``np.clip(a, 0.0, 1.0)``: NaN stays NaN."""
    if a != a:
        return a
    if not a > 0.0:
        a = 0.0
    if a > 1.0:
        a = 1.0
    return a


cdef void _moments(const double* y, Py_ssize_t nrows, Py_ssize_t ncols, Py_ssize_t c, Py_ssize_t n_hist,
                   Py_ssize_t nk, Py_ssize_t history, int64_t* cs, double* s1, double* s2,
                   int64_t* cnt_out, double* mean_out, double* std_out) nogil:
    """``detector._window_moments`` of column ``c`` of ``y`` (nrows x ncols): the same
    shift, the same cumulative sums in the same order, the same formulas."""
    cdef Py_ssize_t j, i, lo, hi
    cdef double shift = 0.0, v, d, t1, t2, n, var
    cdef int64_t cnt
    for j in range(nrows):
        v = y[j * ncols + c]
        if v == v:
            shift = v
            break
    cs[0] = 0
    s1[0] = 0.0
    s2[0] = 0.0
    for j in range(nrows):
        v = y[j * ncols + c]
        if v == v:
            d = v - shift
            cs[j + 1] = cs[j] + 1
        else:
            d = 0.0
            cs[j + 1] = cs[j]
        if j == 0:  # np.cumsum: the first sum is the first value itself
            s1[1] = d
            s2[1] = d * d
        else:
            s1[j + 1] = s1[j] + d
            s2[j + 1] = s2[j] + d * d
    for i in range(nk):
        hi = n_hist + i
        lo = hi - history if hi > history else 0
        cnt = cs[hi] - cs[lo]
        t1 = s1[hi] - s1[lo]
        t2 = s2[hi] - s2[lo]
        n = <double> (cnt if cnt > 1 else 1)
        var = (t2 - t1 * t1 / n) / <double> (cnt - 1 if cnt - 1 > 1 else 1)
        cnt_out[i] = cnt
        mean_out[i] = t1 / n + shift if cnt > 0 else NAN
        std_out[i] = sqrt(_maximum(var, 0.0))


def judge(
    const double[::1] rows,
    Py_ssize_t n_hist,
    Py_ssize_t nk,
    Py_ssize_t ncols,
    const unsigned char[::1] kind,
    const unsigned char[::1] up,
    const unsigned char[::1] down,
    const double[::1] factor,
    Py_ssize_t history,
    Py_ssize_t min_history,
    double k,
    double kc,
    Py_ssize_t ev,
    double relative_floor,
    double absolute_floor,
    double ratio_floor,
):
    """``Detector._judge``'s statistics and tests for ``nk`` windows after ``n_hist``
    history rows (``rows``: (n_hist + nk) x ncols, row-major, NaN: no value; ``kind``
    0 count, 1 ratio, 2 value; ``ev`` the events column or -1), in C doubles with the
    numpy version's operations in its order. Returns (mean, sigma, codes, flagged, cnt
    of the events column): mean and floored sigma per window and column in the signals'
    units (bytes of doubles); per window and column the bits 1 high, 2 low, 4 back within
    ``kc`` from above, 8 from below (bytes); per window whether anything is high or low."""
    cdef Py_ssize_t nrows = n_hist + nk, i, j, c
    cdef bint any_ratio = False
    for c in range(ncols):
        if kind[c] == 1:
            any_ratio = True
    mean_b = bytearray(nk * ncols * sizeof(double))
    sigma_b = bytearray(nk * ncols * sizeof(double))
    codes_b = bytearray(nk * ncols)
    flags_b = bytearray(nk)
    cdef double* mean = <double*> (<char*> mean_b)
    cdef double* sigma = <double*> (<char*> sigma_b)
    cdef unsigned char* codes = <unsigned char*> (<char*> codes_b)
    cdef unsigned char* flags = <unsigned char*> (<char*> flags_b)
    cdef int64_t* cnt = <int64_t*> malloc(nk * ncols * sizeof(int64_t))
    cdef double* std = <double*> malloc(nk * ncols * sizeof(double))
    cdef int64_t* cs = <int64_t*> malloc((nrows + 1) * sizeof(int64_t))
    cdef double* s1 = <double*> malloc((nrows + 1) * sizeof(double))
    cdef double* s2 = <double*> malloc((nrows + 1) * sizeof(double))
    cdef double* y = <double*> malloc(nrows * sizeof(double))
    cdef int64_t* ycnt = <int64_t*> malloc(nk * sizeof(int64_t))
    cdef double* ymean = <double*> malloc(nk * sizeof(double))
    cdef double* ystd = <double*> malloc(nk * sizeof(double))
    cdef const double* r = &rows[0] if nrows * ncols else NULL
    cdef double m0, fl, p, n_ev, x, xj, mj, sj, v, nn, frac, sd
    cdef unsigned char code
    cdef bint stab, is_ratio
    cev = []
    try:
        if cnt == NULL or std == NULL or cs == NULL or s1 == NULL or s2 == NULL or y == NULL or ycnt == NULL \
                or ymean == NULL or ystd == NULL:
            raise MemoryError()
        for c in range(ncols):
            _moments(r, nrows, ncols, c, n_hist, nk, history, cs, s1, s2, ycnt, ymean, ystd)
            for i in range(nk):
                cnt[i * ncols + c] = ycnt[i]
                mean[i * ncols + c] = ymean[i]
                std[i * ncols + c] = ystd[i]
        for i in range(nk):
            for c in range(ncols):
                m0 = mean[i * ncols + c]
                if m0 != m0:
                    m0 = 0.0
                fl = _maximum(fabs(m0) * relative_floor, absolute_floor)
                if kind[c] == 0:
                    fl = _maximum(sqrt(_maximum(m0, 0.0)), 1.0)
                if any_ratio and kind[c] == 1:
                    if ev >= 0:
                        n_ev = mean[i * ncols + ev]
                        if n_ev != n_ev:
                            n_ev = 0.0
                        n_ev = _maximum(n_ev, 1.0)
                    else:
                        n_ev = 1.0
                    p = _clip01(m0)
                    fl = _maximum(sqrt(p * (1 - p) / n_ev), ratio_floor)
                sigma[i * ncols + c] = _maximum(std[i * ncols + c] * factor[cnt[i * ncols + c]], fl)
        for c in range(ncols):
            is_ratio = kind[c] == 1 and ev >= 0 and any_ratio
            stab = kind[c] == 0 or (kind[c] == 1 and ev >= 0)
            if stab:  # counts and the error ratio on their variance-stabilizing scales
                for j in range(nrows):
                    v = r[j * ncols + c]
                    if is_ratio:
                        nn = _maximum(r[j * ncols + ev], 0.0)
                        frac = _clip01((_maximum(v, 0.0) * nn + 0.375) / (nn + 0.75))
                        y[j] = 2.0 * sqrt(nn) * asin(sqrt(frac))
                    else:
                        y[j] = 2.0 * sqrt(_maximum(v, 0.0) + 0.375)
                _moments(y, nrows, 1, 0, n_hist, nk, history, cs, s1, s2, ycnt, ymean, ystd)
            for i in range(nk):
                x = r[(n_hist + i) * ncols + c]
                if stab:
                    xj = y[n_hist + i]
                    mj = ymean[i]
                    sj = _maximum(ystd[i] * factor[ycnt[i]], 1.0)
                else:
                    xj = x
                    mj = mean[i * ncols + c]
                    sj = sigma[i * ncols + c]
                code = 0
                if cnt[i * ncols + c] >= min_history and x == x:
                    if up[c] and xj > mj + k * sj:
                        code |= 1
                    if down[c] and xj < mj - k * sj:
                        code |= 2
                if xj <= mj + kc * sj:
                    code |= 4
                if xj >= mj - kc * sj:
                    code |= 8
                codes[i * ncols + c] = code
                flags[i] |= code & 3
        if ev >= 0:
            cev = [cnt[i * ncols + ev] for i in range(nk)]
        return bytes(mean_b), bytes(sigma_b), bytes(codes_b), bytes(flags_b), cev
    finally:
        free(cnt)
        free(std)
        free(cs)
        free(s1)
        free(s2)
        free(y)
        free(ycnt)
        free(ymean)
        free(ystd)
