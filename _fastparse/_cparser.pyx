# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled parser: the fast twin of ``_pyparser.py``, byte for byte.

Per feed: one buffer acquisition, one pass over the input without the GIL (memchr for
the line ends, a hand-written UTF-8 validating JSON escaper with an 8-bytes-at-a-time
fast path for plain ASCII), output written into a C buffer reused across feeds, and
three bytes objects made at the end. No Python object is made per line.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy

from ._common import TAG_INCOMPLETE, TAG_INVALID_UTF8, TAG_TRUNCATED
from ._common import Batch, EventTime, Fragments, check_args
from . import _pyparser

__all__ = ["Batch", "Parser"]

cdef enum:
    _TRUNCATED = 1
    _INVALID = 2
    _PARSE_ERROR = 4
    _INCOMPLETE = 8
    # output buffers larger than this are given back after the feed that needed them
    _KEEP_BYTES = 16 * 1024 * 1024
    # and a partial-line buffer larger than this when its line is done
    _KEEP_HOLD = 64 * 1024

assert TAG_TRUNCATED == _TRUNCATED and TAG_INVALID_UTF8 == _INVALID
assert TAG_INCOMPLETE == _INCOMPLETE

cdef const char* _HEX = b"0123456789abcdef"

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #  define FP_LIKELY(x) __builtin_expect(!!(x), 1)
    #  define FP_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #  define FP_LIKELY(x) (x)
    #  define FP_UNLIKELY(x) (x)
    #endif
    #define FP_ONES ((uint64_t)0x0101010101010101ULL)
    #define FP_HIGH ((uint64_t)0x8080808080808080ULL)
    """
    const uint64_t FP_ONES
    const uint64_t FP_HIGH
    bint FP_LIKELY(bint) noexcept nogil
    bint FP_UNLIKELY(bint) noexcept nogil


# ---------------------------------------------------------------------------------------
# small C helpers (all noexcept nogil: called per line or per byte)

cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef int buf_grow(Buf* b, Py_ssize_t need) noexcept nogil:
    """Make room for ``need`` more bytes; -1 when out of memory."""
    cdef Py_ssize_t cap = b.cap * 2
    if cap < b.len + need:
        cap = b.len + need
    if cap < 65536:
        cap = 65536
    cdef char* p = <char*>realloc(b.data, cap)
    if p == NULL:
        return -1
    b.data = p
    b.cap = cap
    return 0


cdef inline int buf_reserve(Buf* b, Py_ssize_t need) noexcept nogil:
    if FP_LIKELY(b.len + need <= b.cap):
        return 0
    return buf_grow(b, need)


cdef inline void buf_put(Buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    memcpy(b.data + b.len, s, n)
    b.len += n


cdef void buf_free(Buf* b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


cdef inline Py_ssize_t put_hex(char* out, uint64_t v) noexcept nogil:
    cdef char tmp[16]
    cdef int k = 16
    while True:
        k -= 1
        tmp[k] = _HEX[v & 15]
        v >>= 4
        if v == 0:
            break
    memcpy(out, tmp + k, 16 - k)
    return 16 - k


cdef inline Py_ssize_t put_dec(char* out, uint64_t v) noexcept nogil:
    cdef char tmp[20]
    cdef int k = 20
    while True:
        k -= 1
        tmp[k] = <char>(48 + v % 10)
        v //= 10
        if v == 0:
            break
    memcpy(out, tmp + k, 20 - k)
    return 20 - k


cdef inline int utf8_seq(const uint8_t* s, Py_ssize_t avail) noexcept nogil:
    """Length of the valid UTF-8 sequence at ``s`` (``avail`` >= 1 bytes readable), or
    ``-k``: invalid, and the maximal valid prefix to replace with one U+FFFD is k bytes
    (Python's ``decode("utf-8", "replace")`` rules). ASCII bytes return 1."""
    cdef uint8_t c = s[0]
    cdef uint8_t lo = 0x80, hi = 0xBF
    if c < 0x80:
        return 1
    if c < 0xC2 or c > 0xF4:
        return -1
    if c < 0xE0:
        if avail >= 2 and (s[1] & 0xC0) == 0x80:
            return 2
        return -1
    if c < 0xF0:
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
        if avail < 2 or s[1] < lo or s[1] > hi:
            return -1
        if avail < 3 or (s[2] & 0xC0) != 0x80:
            return -2
        return 3
    if c == 0xF0:
        lo = 0x90
    elif c == 0xF4:
        hi = 0x8F
    if avail < 2 or s[1] < lo or s[1] > hi:
        return -1
    if avail < 3 or (s[2] & 0xC0) != 0x80:
        return -2
    if avail < 4 or (s[3] & 0xC0) != 0x80:
        return -3
    return 4


cdef inline Py_ssize_t cut_point(const uint8_t* s, Py_ssize_t avail, Py_ssize_t limit) noexcept nogil:
    """``limit``, or up to 3 bytes less so as not to cut inside a valid UTF-8 sequence.
    ``avail`` bytes of the line are readable (at least limit+3, or the whole line)."""
    cdef Py_ssize_t back, p
    cdef uint8_t b
    cdef int n
    for back in range(1, 4):
        p = limit - back
        if p < 0:
            break
        b = s[p]
        if (b & 0xC0) == 0x80:
            continue
        if b >= 0xC2 and b <= 0xF4:
            n = 2 if b < 0xE0 else (3 if b < 0xF0 else 4)
            if n > back and utf8_seq(s + p, avail - p) == n:
                return p
        break
    return limit


cdef inline bint plain8(uint64_t w) noexcept nogil:
    """All 8 bytes are ASCII >= 0x20 and none is '"' or '\\'."""
    cdef uint64_t q = w ^ (FP_ONES * 0x22)
    cdef uint64_t bs = w ^ (FP_ONES * 0x5C)
    cdef uint64_t bad = w | ((w - FP_ONES * 0x20) & ~w)
    bad |= (q - FP_ONES) & ~q
    bad |= (bs - FP_ONES) & ~bs
    return (bad & FP_HIGH) == 0


cdef inline Py_ssize_t escape_msg(const uint8_t* s, Py_ssize_t n, char* out, int* tags) noexcept nogil:
    """JSON-escape ``s[:n]`` into ``out`` (room for 6*n bytes), replacing invalid UTF-8
    like Python does; sets the invalid_utf8 tag bit. Returns the bytes written."""
    cdef Py_ssize_t i = 0, o = 0
    cdef uint64_t w = 0
    cdef uint8_t c
    cdef int k
    while i < n:
        if i + 8 <= n:
            memcpy(&w, s + i, 8)
            if plain8(w):
                memcpy(out + o, &w, 8)
                i += 8
                o += 8
                continue
        c = s[i]
        if c < 0x80:
            if c >= 0x20 and c != 0x22 and c != 0x5C:
                out[o] = <char>c
                o += 1
            else:
                out[o] = b'\\'
                if c == 0x22:
                    out[o + 1] = b'"'
                elif c == 0x5C:
                    out[o + 1] = b'\\'
                elif c == 0x0A:
                    out[o + 1] = b'n'
                elif c == 0x0D:
                    out[o + 1] = b'r'
                elif c == 0x09:
                    out[o + 1] = b't'
                elif c == 0x08:
                    out[o + 1] = b'b'
                elif c == 0x0C:
                    out[o + 1] = b'f'
                else:
                    memcpy(out + o + 1, b"u00", 3)
                    out[o + 4] = _HEX[c >> 4]
                    out[o + 5] = _HEX[c & 15]
                    o += 6
                    i += 1
                    continue
                o += 2
            i += 1
            continue
        k = utf8_seq(s + i, n - i)
        if k > 0:
            memcpy(out + o, s + i, k)
            o += k
            i += k
        else:
            memcpy(out + o, b"\xef\xbf\xbd", 3)
            o += 3
            i -= k
            tags[0] |= _INVALID
    return o


cdef struct Frag:
    const char* p
    Py_ssize_t n


cdef inline Frag frag_of(bytes b):
    cdef Frag f
    f.p = PyBytes_AS_STRING(b)
    f.n = PyBytes_GET_SIZE(b)
    return f


# ---------------------------------------------------------------------------------------

cdef class Parser:
    """Turns appended log bytes into ``_bulk`` items. See the package docstring."""

    cdef object _frags_obj  # Fragments: keeps the bytes the Frag pointers point into
    cdef object _time
    cdef object _times  # the (index, timestamp) tuple the heads were made for
    cdef bytes _action_head_obj, _doc_head_obj
    cdef Frag _action_head, _action_tail, _doc_head, _log_head, _original_length
    cdef Frag _doc_tail, _doc_end
    cdef Frag _tags[16]
    cdef Py_ssize_t _fixed  # upper bound of an event's bytes besides the message

    cdef Py_ssize_t _max, _cap
    cdef int64_t _offset
    # the partial line: its first bytes (up to _cap), how many more were skipped
    cdef char* _hold
    cdef Py_ssize_t _hold_len, _hold_alloc
    cdef int64_t _skip
    cdef bint _last_cr
    cdef bint _busy
    cdef object _py  # formats not compiled here: the twin does them (json)

    # per-feed output
    cdef Buf _out
    cdef int64_t* _ends
    cdef int64_t* _offs
    cdef Py_ssize_t _count, _items_cap
    cdef int64_t _lines

    def __cinit__(self):
        self._hold = NULL
        self._out.data = NULL
        self._ends = NULL
        self._offs = NULL

    def __init__(self, *, input_id, path, host_name, id_prefix, index_pattern,
                 start_offset=0, max_line_bytes=1048576, format="plain", timezone=None,
                 json_root=False):
        check_args(input_id, path, host_name, id_prefix, index_pattern, start_offset,
                   max_line_bytes, timezone)
        self._py = None
        if format != "plain":
            self._py = _pyparser.Parser(
                input_id=input_id, path=path, host_name=host_name, id_prefix=id_prefix,
                index_pattern=index_pattern, start_offset=start_offset,
                max_line_bytes=max_line_bytes, format=format, timezone=timezone,
                json_root=json_root)
        f = Fragments(input_id=input_id, path=path, host_name=host_name, id_prefix=id_prefix)
        self._frags_obj = f
        self._time = EventTime(index_pattern)
        self._times = None
        self._action_tail = frag_of(f.action_tail)
        self._log_head = frag_of(f.log_head)
        self._original_length = frag_of(f.original_length)
        self._doc_tail = frag_of(f.doc_tail)
        self._doc_end = frag_of(f.doc_end)
        cdef int i
        cdef Py_ssize_t tags_max = 0
        for i in range(16):
            self._tags[i] = frag_of(f.tags[i])
            if self._tags[i].n > tags_max:
                tags_max = self._tags[i].n
        self._fixed = (self._action_tail.n + self._log_head.n + self._original_length.n
                       + self._doc_tail.n + self._doc_end.n + tags_max
                       + 16 + 20 + 20 + 2)  # hex id, offset, original length, 2 quotes
        self._max = max_line_bytes
        self._cap = self._max + 4
        self._offset = start_offset
        self._hold_len = 0
        self._skip = 0
        self._last_cr = False

    def __dealloc__(self):
        free(self._hold)
        buf_free(&self._out)
        free(self._ends)
        free(self._offs)

    @property
    def offset(self):
        if self._py is not None:
            return self._py.offset
        return self._offset

    @property
    def pending(self):
        if self._py is not None:
            return self._py.pending
        return self._hold_len + self._skip

    # -- per feed -------------------------------------------------------------------

    cdef _prepare(self, read_time_ms):
        times = self._time.get(read_time_ms)
        if times is self._times:
            return
        ah, dh = self._frags_obj.heads(*times)
        self._action_head_obj = ah
        self._doc_head_obj = dh
        self._action_head = frag_of(ah)
        self._doc_head = frag_of(dh)
        self._times = times

    cdef int _reserve_items(self) noexcept nogil:
        cdef Py_ssize_t cap
        cdef int64_t* e
        cdef int64_t* o
        if FP_LIKELY(self._count < self._items_cap):
            return 0
        cap = self._items_cap * 2 if self._items_cap else 4096
        e = <int64_t*>realloc(self._ends, cap * sizeof(int64_t))
        if e == NULL:
            return -1
        self._ends = e
        o = <int64_t*>realloc(self._offs, cap * sizeof(int64_t))
        if o == NULL:
            return -1
        self._offs = o
        self._items_cap = cap
        return 0

    cdef int _event(self, const uint8_t* s, Py_ssize_t avail, int64_t length, int64_t off,
                    int tags) noexcept nogil:
        """Append one event. ``s[:avail]`` is the line or, when it is longer than held,
        its head (then ``avail`` >= max+3); ``length`` is the line's full length."""
        cdef Py_ssize_t n = avail
        cdef Buf* b = &self._out
        if length > self._max:
            n = cut_point(s, avail, self._max)
            tags |= _TRUNCATED
        if buf_reserve(b, self._fixed + self._action_head.n + self._doc_head.n + 6 * n) < 0:
            return -1
        if self._reserve_items() < 0:
            return -1
        self._offs[self._count] = off
        buf_put(b, self._action_head.p, self._action_head.n)
        b.len += put_hex(b.data + b.len, <uint64_t>off)
        buf_put(b, self._action_tail.p, self._action_tail.n)
        buf_put(b, self._doc_head.p, self._doc_head.n)
        b.data[b.len] = b'"'
        b.len += 1
        b.len += escape_msg(s, n, b.data + b.len, &tags)
        b.data[b.len] = b'"'
        b.len += 1
        buf_put(b, self._log_head.p, self._log_head.n)
        b.len += put_dec(b.data + b.len, <uint64_t>off)
        if tags & _TRUNCATED:
            buf_put(b, self._original_length.p, self._original_length.n)
            b.len += put_dec(b.data + b.len, <uint64_t>length)
        buf_put(b, self._doc_tail.p, self._doc_tail.n)
        if tags:
            buf_put(b, self._tags[tags].p, self._tags[tags].n)
        buf_put(b, self._doc_end.p, self._doc_end.n)
        self._ends[self._count] = b.len
        self._count += 1
        return 0

    cdef int _hold_more(self, const uint8_t* s, Py_ssize_t n) noexcept nogil:
        """Add ``s[:n]`` to the partial line: held up to _cap bytes, counted beyond."""
        cdef Py_ssize_t take, alloc
        cdef char* p
        if n == 0:
            return 0
        take = self._cap - self._hold_len
        if take > n:
            take = n
        if take > 0:
            if self._hold_len + take > self._hold_alloc:
                alloc = self._hold_alloc * 2
                if alloc < 256:
                    alloc = 256
                if alloc < self._hold_len + take:
                    alloc = self._hold_len + take
                if alloc > self._cap:
                    alloc = self._cap
                p = <char*>realloc(self._hold, alloc)
                if p == NULL:
                    return -1
                self._hold = p
                self._hold_alloc = alloc
            memcpy(self._hold + self._hold_len, s, take)
            self._hold_len += take
        else:
            take = 0
        self._skip += n - take
        self._last_cr = s[n - 1] == 13
        return 0

    cdef void _drop_held(self) noexcept nogil:
        """Forget the partial line; a hold buffer grown large by a long one is given back."""
        self._hold_len = 0
        self._skip = 0
        self._last_cr = False
        if self._hold_alloc > _KEEP_HOLD:
            free(self._hold)
            self._hold = NULL
            self._hold_alloc = 0

    cdef int _scan(self, const uint8_t* p, Py_ssize_t n) noexcept nogil:
        cdef const uint8_t* end = p + n
        cdef const uint8_t* nl
        cdef int64_t off = self._offset
        cdef int64_t raw, length
        cdef Py_ssize_t held

        if self._hold_len or self._skip:  # complete the line held from earlier feeds
            nl = <const uint8_t*>memchr(p, 10, n)
            if nl == NULL:
                return self._hold_more(p, n)
            if self._hold_more(p, nl - p) < 0:
                return -1
            held = self._hold_len
            raw = held + self._skip
            length = raw - self._last_cr
            if length:
                if self._event(<const uint8_t*>self._hold, held if held < length else length,
                               length, off, 0) < 0:
                    return -1
            off += raw + 1
            self._lines += 1
            self._drop_held()
            p = nl + 1
            self._offset = off

        while p < end:
            nl = <const uint8_t*>memchr(p, 10, end - p)
            if nl == NULL:
                break
            raw = nl - p
            length = raw
            if length and p[length - 1] == 13:
                length -= 1
            if length:
                if self._event(p, length, length, off, 0) < 0:
                    self._offset = off
                    return -1
            off += raw + 1
            self._lines += 1
            p = nl + 1
        self._offset = off
        if p < end:
            return self._hold_more(p, end - p)
        return 0

    cdef _start(self):
        if self._busy:
            raise RuntimeError("Parser used by two threads at once")
        self._busy = True
        self._out.len = 0
        self._count = 0
        self._lines = 0

    cdef object _batch(self, int64_t start):
        body = PyBytes_FromStringAndSize(self._out.data, self._out.len)
        ends = PyBytes_FromStringAndSize(<char*>self._ends, self._count * 8)
        offs = PyBytes_FromStringAndSize(<char*>self._offs, self._count * 8)
        if self._out.cap > _KEEP_BYTES:
            buf_free(&self._out)
        if self._items_cap > _KEEP_BYTES // 64:
            free(self._ends)
            free(self._offs)
            self._ends = NULL
            self._offs = NULL
            self._items_cap = 0
        return Batch(body, self._count, ends, offs, start, self._offset, self._lines)

    def feed(self, data, read_time_ms):
        if self._py is not None:
            return self._py.feed(data, read_time_ms)
        cdef Py_buffer view
        cdef int rc
        cdef int64_t start = self._offset
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:  # e.g. a non-contiguous memoryview
            data = memoryview(data).tobytes()
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._prepare(read_time_ms)
            self._start()
            try:
                with nogil:
                    rc = self._scan(<const uint8_t*>view.buf, view.len)
                if rc < 0:
                    raise MemoryError()
                return self._batch(start)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&view)

    def flush(self, read_time_ms):
        if self._py is not None:
            return self._py.flush(read_time_ms)
        cdef int64_t start = self._offset
        cdef int64_t raw = self._hold_len + self._skip
        if raw == 0:
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._prepare(read_time_ms)
        self._start()
        try:
            if self._event(<const uint8_t*>self._hold, self._hold_len, raw, start,
                           _INCOMPLETE) < 0:
                raise MemoryError()
            self._offset = start + raw
            self._lines = 1
            self._drop_held()
            return self._batch(start)
        finally:
            self._busy = False
