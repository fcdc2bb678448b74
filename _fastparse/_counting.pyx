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
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memset


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
    cdef int64_t w_lo, w_hi, slot, last
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
            last = -1
            for k in range(nm_vals):
                x = m_val[k]
                if not isfinite(x):
                    continue
                if item_row != NULL and m_item[k] != last:  # an event's values are together: one look-up
                    last = m_item[k]
                    r = item_row[last]
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


# -- error samples: the fields of a document a sample quotes, found without decoding it --

cdef extern from "Python.h":
    char* PyBytes_AS_STRING(object) nogil
    Py_ssize_t PyBytes_GET_SIZE(object) nogil
    object PyUnicode_DecodeUTF8(const char*, Py_ssize_t, const char*)
    bytes PyBytes_FromStringAndSize(const char*, Py_ssize_t)

cdef enum:
    _MAX_DEPTH = 64


cdef inline Py_ssize_t _ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) nogil:
    while i < n and (p[i] == 32 or p[i] == 10 or p[i] == 13 or p[i] == 9):
        i += 1
    return i


cdef inline bint _hex(unsigned char c) nogil:
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


cdef inline Py_ssize_t _utf8(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) nogil:
    """The end of the UTF-8 sequence at ``p[i]`` (>= 0x80), or -1 when it is not valid."""
    cdef unsigned char c = p[i], lo = 0x80, hi = 0xBF
    cdef int k = 1 if c < 0xE0 else 2 if c < 0xF0 else 3  # continuation bytes
    if c < 0xC2 or c > 0xF4:
        return -1
    if c == 0xE0:
        lo = 0xA0  # no overlong 3-byte forms
    elif c == 0xED:
        hi = 0x9F  # no surrogates
    elif c == 0xF0:
        lo = 0x90  # no overlong 4-byte forms
    elif c == 0xF4:
        hi = 0x8F  # nothing past U+10FFFF
    if i + k >= n:
        return -1
    if not (lo <= p[i + 1] <= hi):
        return -1
    if k >= 2 and not (0x80 <= p[i + 2] <= 0xBF):
        return -1
    if k == 3 and not (0x80 <= p[i + 3] <= 0xBF):
        return -1
    return i + k + 1


cdef Py_ssize_t _string(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* nl) nogil:
    """The end (after the closing quote) of the JSON string at ``p[i] == '"'``, or -1 when
    it is not one orjson would take. ``nl`` (if not NULL): where its first ``\\n`` escape
    is, when no ``\\u`` escape (which may be a newline too) comes before it; else -1."""
    cdef unsigned char c, e
    cdef bint u = False
    if nl != NULL:
        nl[0] = -1
    i += 1
    while i < n:
        c = p[i]
        if c == 34:  # "
            return i + 1
        if c == 92:  # backslash
            if i + 1 >= n:
                return -1
            e = p[i + 1]
            if e == 117:  # u
                if i + 5 >= n or not (_hex(p[i + 2]) and _hex(p[i + 3]) and _hex(p[i + 4]) and _hex(p[i + 5])):
                    return -1
                if (p[i + 2] == 100 or p[i + 2] == 68) and not (48 <= p[i + 3] <= 55):
                    return -1  # a surrogate: whether its pair makes it valid is orjson's to say
                u = True
                i += 6
                continue
            if e == 110:  # n
                if nl != NULL and nl[0] < 0 and not u:
                    nl[0] = i
            elif not (e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 114 or e == 116):
                return -1
            i += 2
            continue
        if c < 32:
            return -1
        if c >= 128:  # UTF-8 as orjson takes it (RFC 3629: no overlong forms, no surrogates)
            i = _utf8(p, i, n)
            if i < 0:
                return -1
            continue
        i += 1
    return -1


cdef Py_ssize_t _value(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, int depth) nogil:
    """The end of the JSON value at ``p[i]`` (no white space before it), or -1."""
    cdef unsigned char c
    if i >= n or depth > _MAX_DEPTH:
        return -1
    c = p[i]
    if c == 34:
        return _string(p, i, n, NULL)
    if c == 123 or c == 91:  # { [
        i = _ws(p, i + 1, n)
        if i < n and p[i] == c + 2:  # } ]
            return i + 1
        while True:
            if c == 123:
                if i >= n or p[i] != 34:
                    return -1
                i = _string(p, i, n, NULL)
                if i < 0:
                    return -1
                i = _ws(p, i, n)
                if i >= n or p[i] != 58:  # :
                    return -1
                i = _ws(p, i + 1, n)
            i = _value(p, i, n, depth + 1)
            if i < 0:
                return -1
            i = _ws(p, i, n)
            if i >= n:
                return -1
            if p[i] == c + 2:
                return i + 1
            if p[i] != 44:  # ,
                return -1
            i = _ws(p, i + 1, n)
    if c == 116:  # true
        return i + 4 if i + 4 <= n and memcmp(p + i, b"true", 4) == 0 else -1
    if c == 102:
        return i + 5 if i + 5 <= n and memcmp(p + i, b"false", 5) == 0 else -1
    if c == 110:
        return i + 4 if i + 4 <= n and memcmp(p + i, b"null", 4) == 0 else -1
    if c == 45 or 48 <= c <= 57:  # -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        if c == 45:
            i += 1
            if i >= n or not 48 <= p[i] <= 57:
                return -1
        if p[i] == 48:
            i += 1
        else:
            while i < n and 48 <= p[i] <= 57:
                i += 1
        if i < n and p[i] == 46:
            i += 1
            if i >= n or not 48 <= p[i] <= 57:
                return -1
            while i < n and 48 <= p[i] <= 57:
                i += 1
        if i < n and (p[i] == 101 or p[i] == 69):
            i += 1
            if i < n and (p[i] == 43 or p[i] == 45):
                i += 1
            if i >= n or not 48 <= p[i] <= 57:
                return -1
            while i < n and 48 <= p[i] <= 57:
                i += 1
        return i
    return -1


cdef Py_ssize_t _fields(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, bint top, Py_ssize_t* f) nogil:
    """The end of the JSON object at ``p[i] == '{'`` (-1: not one this scan takes), noting
    the last of each field's string token as orjson keeps it. ``top``: ``message`` in
    f[0], f[1] and its first newline escape in f[2]; ``error``, an object, through
    ``_fields(top=False, f + 3)``: its ``type`` in f[0], f[1], its ``message`` in f[2], f[3].
    Keys with escapes, or those fields not strings: -1 (the caller decodes it all)."""
    cdef Py_ssize_t ks, ke
    cdef Py_ssize_t* slot
    i = _ws(p, i + 1, n)
    if i < n and p[i] == 125:
        return i + 1
    while True:
        if i >= n or p[i] != 34:
            return -1
        ks = i
        ke = _string(p, i, n, NULL)
        if ke < 0 or memchr(p + ks, 92, ke - ks) != NULL:
            return -1
        i = _ws(p, ke, n)
        if i >= n or p[i] != 58:
            return -1
        i = _ws(p, i + 1, n)
        slot = NULL
        if ke - ks == 9 and memcmp(p + ks, b'"message"', 9) == 0:
            slot = f if top else f + 2
        elif not top and ke - ks == 6 and memcmp(p + ks, b'"type"', 6) == 0:
            slot = f
        if slot != NULL:
            if i >= n or p[i] != 34:
                return -1
            slot[0] = i
            i = _string(p, i, n, f + 2 if top else NULL)
            slot[1] = i
        elif top and ke - ks == 7 and memcmp(p + ks, b'"error"', 7) == 0:
            f[3] = f[4] = f[5] = f[6] = -1
            i = _fields(p, i, n, False, f + 3) if i < n and p[i] == 123 else _value(p, i, n, 1)
        else:
            i = _value(p, i, n, 1 if top else 2)
        if i < 0:
            return -1
        i = _ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == 125:
            return i + 1
        if p[i] != 44:
            return -1
        i = _ws(p, i + 1, n)


cdef bint _scan(const unsigned char* p, Py_ssize_t start, Py_ssize_t end, Py_ssize_t* f) nogil:
    """``f``: the fields of the document after the action line of ``p[start:end]`` (see
    ``_fields``); False when the caller must decode the document itself."""
    cdef const unsigned char* q = <const unsigned char*> memchr(p + start, 10, end - start)
    cdef Py_ssize_t i, k
    for k in range(7):
        f[k] = -1
    if q == NULL:
        return False
    i = _ws(p, (q - p) + 1, end)
    if i >= end or p[i] != 123:
        return False
    i = _fields(p, i, end, True, f)
    return i >= 0 and _ws(p, i, end) == end


cdef object _token(object body, const unsigned char* p, Py_ssize_t s, Py_ssize_t e, bint closed, object loads):
    """The string of the JSON token ``p[s:e]``, or (not ``closed``) of its start up to
    ``e`` (a newline escape) as if closed there: its UTF-8 as it is when it has no escape."""
    if memchr(p + s, 92, e - s) == NULL:
        return PyUnicode_DecodeUTF8(<const char*> p + s + 1, e - s - (2 if closed else 1), NULL)
    if closed:
        return loads(body[s:e])
    return loads(body[s:e] + b'"')


def error_samples(
    object body,
    const int64_t[::1] ends,
    list rows,
    list items,
    list starts,
    dict sampled,
    int max_samples,
    object whole,
    object loads,
):
    """``watch._error_messages`` in one call a batch: per sampled error event (``rows``,
    ``items``) while its window (``starts[row]``) has fewer than ``max_samples`` taken
    (``sampled``, updated), the first line (500 characters at most) of ``error.type:
    error.message`` or of the message; the fields found by a scan of the document, only
    they decoded. A document the scan does not take goes to ``whole(body, start, end)``
    (the twin's decode: the message, or None to skip it). Returns {row: [line, ...]}."""
    cdef dict out = {}
    cdef Py_ssize_t j, item, s, e, cut
    cdef Py_ssize_t f[7]
    cdef const unsigned char* p = NULL
    cdef bint is_bytes = type(body) is bytes
    cdef object row, start_ms, msg, got
    cdef int taken
    if is_bytes:
        p = <const unsigned char*> PyBytes_AS_STRING(body)
    for j in range(len(rows)):
        row = rows[j]
        start_ms = starts[row]
        taken = sampled.get(start_ms, 0)
        if taken >= max_samples:
            continue
        sampled[start_ms] = taken + 1
        item = items[j]
        s = ends[item - 1] if item else 0
        e = ends[item]
        if is_bytes and 0 <= s < e <= PyBytes_GET_SIZE(body) and _scan(p, s, e, f):
            if f[4] - f[3] > 2:  # error.type, not empty (a token longer than its quotes)
                msg = _token(body, p, f[3], f[4], True, loads)
                if f[6] - f[5] > 2:
                    msg = msg + ": " + _token(body, p, f[5], f[6], True, loads)
            elif f[0] >= 0:  # the message up to its first newline escape (all of it if none)
                msg = _token(body, p, f[0], f[2], False, loads) if f[2] >= 0 else _token(body, p, f[0], f[1], True, loads)
            else:
                msg = ""
        else:
            msg = whole(body, s, e)
            if msg is None:
                continue
        cut = msg.find("\n")
        if cut >= 0:
            msg = msg[:cut]
        if len(msg) > 500:
            msg = msg[:500]
        got = out.get(row)
        if got is None:
            out[row] = [msg]
        else:
            got.append(msg)
    return out


# -- window documents as bytes in one go --

cdef struct _Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _put(_Buf* b, const char* s, Py_ssize_t n) except -1:
    cdef char* q
    if b.n + n > b.cap:
        b.cap = (b.n + n) * 2 + 256
        q = <char*> realloc(b.p, b.cap)
        if q == NULL:
            raise MemoryError()
        b.p = q
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef inline int _put_b(_Buf* b, bytes s) except -1:
    return _put(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef inline Py_ssize_t _put_num(_Buf* b, const char* nums, Py_ssize_t at, Py_ssize_t end) except -1:
    """Copy the number at ``nums[at]`` (up to the next comma or ``end``); where the next starts."""
    cdef const char* q = <const char*> memchr(nums + at, 44, end - at)
    cdef Py_ssize_t stop = (q - nums) if q != NULL else end
    _put(b, nums + at, stop - at)
    return stop + 1


cdef inline Py_ssize_t _field(_Buf* b, const char* key, Py_ssize_t n, const char* nums, Py_ssize_t at,
                               Py_ssize_t end) except -1:
    """``key`` (``n`` bytes), then the number at ``nums[at]``; where the next number starts."""
    _put(b, key, n)
    return _put_num(b, nums, at, end)


cdef inline int _comma(_Buf* b, bint first) except -1:
    """A comma before every member but the first."""
    return 0 if first else _put(b, b",", 1)


cdef inline Py_ssize_t _member(_Buf* b, bytes key, bint first, const char* nums, Py_ssize_t at,
                                Py_ssize_t end) except -1:
    """A comma unless ``first``, ``key`` (``"name":``), the number at ``nums[at]``."""
    _comma(b, first)
    _put_b(b, key)
    return _put_num(b, nums, at, end)


cdef bytes _name(dict names, object name, object dumps):
    """``"name":`` (orjson's text of the name), once per name."""
    cdef object got = names.get(name)
    if got is None:
        got = names[name] = dumps(name) + b":"
    return got


def window_docs(list ws, bytes head, Py_ssize_t window_ms, object iso, tuple level_keys, dict names, object dumps):
    """The summary documents (``documents.window_document`` serialized by orjson, and a
    newline) of the closed windows ``ws`` of one source, made as bytes in one buffer:
    every number of the group through one ``dumps`` of a list (orjson's own text for
    each: JSON numbers hold no comma, so the list's text splits into them), names through
    ``dumps`` once (``names``: str -> ``"name":``, bounded by the caller), the rest
    constant. ``head``: what comes between the timestamp and the window's start
    (``","event":{"dataset":...,"kind":"metric"},"host":{"name":...},"window":{"start":"``);
    ``iso``: ms -> its text; ``level_keys``: ``"name":`` per level. None in the list for a
    window this leaves to the dict (one with prediction quality, a name not a str, more
    levels than names)."""
    cdef list vals = [], out = [], oks = []
    cdef list levels
    cdef object w, name, m, c, s, n
    cdef dict classes, metrics
    cdef bint ok, first
    cdef Py_ssize_t nl = len(level_keys), j, at = 1, end, doc
    cdef bytes nums, start
    cdef const char* q
    cdef _Buf b
    for w in ws:  # the numbers, in the order the documents hold them
        classes = w.classes
        metrics = w.metrics
        levels = w.levels
        ok = (not w.scores) and len(levels) <= nl
        if ok:
            for n in w.confusion:
                if n:
                    ok = False
            for name in classes:
                if type(name) is not str:
                    ok = False
            for name in metrics:
                if type(name) is not str:
                    ok = False
        oks.append(ok)
        if not ok:
            continue
        vals.append(w.events)
        vals.append(w.bytes)
        vals.append(sum(classes.values()))
        for n in levels:
            if n:
                vals.append(n)
        vals.extend(classes.values())
        for m in metrics.values():
            c, s = m[0], m[1]
            vals.append(c)
            vals.append(s)
            vals.append(m[2])
            vals.append(m[3])
            vals.append(s / c if c else None)
    nums = dumps(vals)
    q = PyBytes_AS_STRING(nums)
    end = PyBytes_GET_SIZE(nums) - 1  # the closing bracket
    b.p = NULL
    b.n = b.cap = 0
    try:
        for j in range(len(ws)):
            if not oks[j]:
                out.append(None)
                continue
            w = ws[j]
            b.n = 0
            start = (<str> iso(w.start)).encode("ascii")
            _put(&b, b'{"@timestamp":"', 15)
            _put_b(&b, start)
            _put_b(&b, head)
            _put_b(&b, start)
            _put(&b, b'","end":"', 9)
            _put_b(&b, (<str> iso(w.start + window_ms)).encode("ascii"))
            at = _field(&b, b'","events":', 11, q, at, end)
            at = _field(&b, b',"bytes":', 9, q, at, end)
            at = _field(&b, b',"errors":', 10, q, at, end)
            _put(&b, b',"level":{', 10)
            first = True
            levels = w.levels
            for doc in range(len(levels)):
                if levels[doc]:
                    at = _member(&b, level_keys[doc], first, q, at, end)
                    first = False
            _put(&b, b'},"error_class":{', 17)
            first = True
            for name in w.classes:
                at = _member(&b, _name(names, name, dumps), first, q, at, end)
                first = False
            _put(&b, b"}}", 2)
            if w.metrics:
                _put(&b, b',"metrics":{', 12)
                first = True
                for name in w.metrics:
                    _comma(&b, first)
                    first = False
                    _put_b(&b, _name(names, name, dumps))
                    at = _field(&b, b'{"count":', 9, q, at, end)
                    at = _field(&b, b',"sum":', 7, q, at, end)
                    at = _field(&b, b',"min":', 7, q, at, end)
                    at = _field(&b, b',"max":', 7, q, at, end)
                    at = _field(&b, b',"mean":', 8, q, at, end)
                    _put(&b, b"}", 1)
                _put(&b, b"}", 1)
            _put(&b, b"}\n", 2)
            out.append(PyBytes_FromStringAndSize(b.p, b.n))
    finally:
        free(b.p)
    return out
