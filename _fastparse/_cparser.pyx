# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled parser: the fast twin of ``_pyparser.py``, byte for byte.

Per feed: one buffer acquisition, one pass over the input without the GIL (memchr for
the line ends, a hand-written UTF-8 validating JSON escaper with an 8-bytes-at-a-time
fast path for plain ASCII), output written into a C buffer reused across feeds, and
three bytes objects made at the end. No Python object is made per line.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython cimport array as carray
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memset

from ._common import TAG_INCOMPLETE, TAG_INVALID_UTF8, TAG_TRUNCATED
from ._common import ARRAYS, Batch, EventTime, Fragments, check_args, check_labels
from ._analysis import PROGRESS_ALL, PROGRESS_DROP, PROGRESS_LAST, Analyzer
from ._classes import scan_tables
from ._metrics import MAX_KEY, MAX_NAMES, MAX_NUMBER, NAN_LOSS
from . import _pyparser
from ._multiline import parse_config as parse_multiline
from ._multiline import (CHAIN as ML_CHAIN, CHAIN_PHRASES, EG_HEADER, EXC as ML_EXC, FRAMES as ML_FRAMES,
                         GROUP as ML_GROUP, JAVA as ML_JAVA, NORMAL as ML_NORMAL, TB_HEADER)
from ._formats import (FAR_PAST, FMT_PLAIN, FMT_PROGRAM, LEVEL_WORDS, MAX_MATCH_BYTES, MODE_FIRST, MODE_LAZY,
                       MODE_LEVEL, MODE_TIME, OP_CAP, OP_END, OP_LIT, OP_OPT, OP_OPTEND, OP_WS,
                       KIND_STR, compile_format, zone_table)
from array import array

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
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #  define FP_LE32(x) __builtin_bswap32(x)
    #  define FP_LE64(x) __builtin_bswap64(x)
    #else
    #  define FP_LE32(x) (x)
    #  define FP_LE64(x) (x)
    #endif
    /* s[0..3] as a little-endian word (the keyword scan's window). */
    static inline uint32_t fp_le32(const uint8_t* s) {
        uint32_t w;
        memcpy(&w, s, 4);
        return FP_LE32(w);
    }
    /* s[:16] is plain (ASCII >= 0x20, no '"' or '\\'): then d[:16] = s[:16] and 1;
       else 0 (nothing stored). SSE2 where there is (x86-64 always), else never plain. */
    #if defined(__SSE2__)
    #  include <emmintrin.h>
    static inline int fp_plain16(const uint8_t* s, char* d) {
        __m128i v = _mm_loadu_si128((const __m128i*)s);
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),  /* also >= 0x80 */
                                   _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x22)),
                                                _mm_cmpeq_epi8(v, _mm_set1_epi8(0x5C))));
        if (_mm_movemask_epi8(bad)) return 0;
        _mm_storeu_si128((__m128i*)d, v);
        return 1;
    }
    #else
    static inline int fp_plain16(const uint8_t* s, char* d) { (void)s; (void)d; return 0; }
    #endif
    /* 16 bytes can be loaded from s (only s[:room] are the text's): room >= 16, or the
       load stays inside s's memory page (memory is mapped by whole pages, so the bytes
       after the text are readable; their values are masked off by the caller). */
    static inline int fp_load16_ok(const uint8_t* s, Py_ssize_t room) {
        return room >= 16 || ((uintptr_t)s & 4095) <= 4080;
    }
    /* Bit i: s[i] is an ASCII digit (i < min(room, 16)); ``dots``: bit i, s[i] is '.'.
       The 16 bytes must be loadable (fp_load16_ok). SSE2: one load, two compares. */
    static inline unsigned fp_num16(const uint8_t* s, Py_ssize_t room, unsigned* dots) {
        unsigned keep = room >= 16 ? 0xFFFFu : ((1u << room) - 1u);
    #if defined(__SSE2__)
        __m128i v = _mm_loadu_si128((const __m128i*)s);
        __m128i x = _mm_sub_epi8(v, _mm_set1_epi8(0x30));
        unsigned dm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(9)), x));
        *dots = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x2E))) & keep;
        return dm & keep;
    #else
        unsigned dm = 0, dt = 0;
        int i;
        for (i = 0; i < 16 && i < room; i++) {
            dm |= (unsigned)((uint8_t)(s[i] - 48) <= 9) << i;
            dt |= (unsigned)(s[i] == 46) << i;
        }
        *dots = dt;
        return dm;
    #endif
    }
    /* Line ends and terminal noise of a feed's bytes, 64 bytes at a time: bit i of m:
       base[i] is a '\n', a CR or an ESC (bits at or past ``end`` 0). Each byte is looked at
       once however long the lines are: a memchr per line and two more in clean_line read
       each line three times. CRs and ESCs are rare: the first bit is mostly the line end. */
    typedef struct { const uint8_t* base; const uint8_t* end; uint64_t m; } fp_lines;
    #if defined(__SSE2__)
    static inline unsigned fp_cls16(const uint8_t* s) {
        __m128i v = _mm_loadu_si128((const __m128i*)s);
        return (unsigned)_mm_movemask_epi8(_mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(10)),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(13)), _mm_cmpeq_epi8(v, _mm_set1_epi8(27)))));
    }
    #endif
    static inline void fp_lines_fill(fp_lines* L, const uint8_t* p) {
        Py_ssize_t room = L->end - p, i = 0;
        uint64_t m = 0;
        L->base = p;
    #if defined(__SSE2__)
        if (FP_LIKELY(room >= 64)) {
            L->m = (uint64_t)fp_cls16(p) | ((uint64_t)fp_cls16(p + 16) << 16)
                 | ((uint64_t)fp_cls16(p + 32) << 32) | ((uint64_t)fp_cls16(p + 48) << 48);
            return;
        }
        if (room >= 16 || ((uintptr_t)p & 4095) <= 4080) {  /* up to 16 bytes: one load */
            i = room >= 16 ? 16 : room;
            m = fp_cls16(p) & ((1u << i) - 1u);
        }
    #else
        i = 0;
    #endif
        for (; i < room && i < 64; i++)
            m |= (uint64_t)(p[i] == 10 || p[i] == 13 || p[i] == 27) << i;
        L->m = m;
    }
    /* The first '\n' at or after p (< end; NULL: none) and whether the bytes from p to it
       have a CR (but the one of a CRLF, which _scan takes off the line) or an ESC (*noisy). */
    static inline const uint8_t* fp_lines_next(fp_lines* L, const uint8_t* p, int* noisy) {
        Py_ssize_t off = L->base == NULL ? 64 : p - L->base;  /* p never goes back */
        uint64_t m;
        const uint8_t* q;
        *noisy = 0;
        if (off >= 64) {
            fp_lines_fill(L, p);
            off = 0;
        }
        for (;;) {
            m = L->m >> off;
            while (m) {
                q = p + __builtin_ctzll(m);
                if (*q == 10)
                    return q;
                if (!(*q == 13 && q + 1 < L->end && q[1] == 10))  /* a CRLF's CR is no noise */
                    *noisy = 1;
                m &= m - 1;
            }
            p = L->base + 64;
            if (p >= L->end)
                return NULL;
            fp_lines_fill(L, p);
            off = 0;
        }
    }
    /* Eight bytes at s (loadable) as a little-endian word. */
    /* w without its byte i (0..7): the bytes above it moved down one, zero on top. */
    static inline uint64_t fp_drop_byte(uint64_t w, int i) {
        uint64_t low = (((uint64_t)1) << (8 * i)) - 1;
        return (w & low) | ((w >> 8) & ~low);
    }
    static inline uint64_t fp_load8(const uint8_t* s) {
        uint64_t w;
        memcpy(&w, s, 8);
        return FP_LE64(w);
    }
    /* Every byte of w where dmask is 0xFF is an ASCII digit: its high nibble is 3, and
       adding 6 keeps it 3 (no carry leaves such a byte). */
    static inline int fp_digits(uint64_t w, uint64_t dmask) {
        uint64_t t = 0x3030303030303030ULL & dmask, hi = 0xF0F0F0F0F0F0F0F0ULL & dmask;
        return (w & hi) == t && ((w + (0x0606060606060606ULL & dmask)) & hi) == t;
    }
    /* s[:19] is dddd-dd-dd?dd:dd:dd (? a space or T): three overlapping words. */
    static inline int fp_ts19(const uint8_t* s) {
        uint64_t a, b, c;
        memcpy(&a, s, 8);
        memcpy(&b, s + 8, 8);
        memcpy(&c, s + 11, 8);
        a = FP_LE64(a);
        b = FP_LE64(b);
        c = FP_LE64(c);
        /* a: dddd-dd-   b: dd?dd:dd   c: dd:dd:dd (bytes 11..18) */
        return fp_digits(a, 0x00FFFF00FFFFFFFFULL) && (a & 0xFF0000FF00000000ULL) == 0x2D00002D00000000ULL
            && fp_digits(b, 0xFFFF00FFFF00FFFFULL) && (b & 0x0000FF0000000000ULL) == 0x00003A0000000000ULL
            && (s[10] == 32 || s[10] == 84)
            && fp_digits(c, 0xFFFF00FFFF000000ULL) && (c & 0x0000FF0000FF0000ULL) == 0x00003A00003A0000ULL;
    }
    /* The first n (1..8) bytes of s as a little-endian word, zero above; ``room`` bytes
       may be read from s (8 or more: one load). */
    static inline uint64_t fp_word(const uint8_t* s, Py_ssize_t n, Py_ssize_t room) {
        uint64_t w = 0;
        Py_ssize_t i;
        if (room >= 8) {
            memcpy(&w, s, 8);
            w = FP_LE64(w);
            return n >= 8 ? w : (w & ((((uint64_t)1) << (8 * n)) - 1));
        }
        for (i = 0; i < n; i++) w |= ((uint64_t)s[i]) << (8 * i);
        return w;
    }
    /* Digits at the start of w (its first byte the first character): how many (0..8).
       A byte is a digit when its high nibble is 3 and adding 6 keeps it 3; a carry out
       of a byte (>= 0xFA) only reaches the bytes after it, past the first non-digit. */
    static inline int fp_digit_run(uint64_t w) {
        uint64_t z = ((w & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL)
                   | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL);
        uint64_t m = (((z & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | z) & 0x8080808080808080ULL;
        return m ? (__builtin_ctzll(m) >> 3) : 8;
    }
    /* The value of the first l (1..8) digits of w, the first byte most significant: the
       digits moved to the top (leading zero digits below them), then pairs, quads and
       octets combined (simdjson's eight-digit parse). Borrows of the subtraction in the
       bytes past the digits only reach bytes that are shifted out. */
    static inline uint64_t fp_digits_value(uint64_t w, int l) {
        w = (w - 0x3030303030303030ULL) << (8 * (8 - l));
        w = ((w & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
        w = ((w & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
        return ((w & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
    }
    /* a[:n] == b[:n] for n <= 16: two overlapping 8- or 4-byte compares (constant sizes:
       no libc call), or bytes. */
    static inline int fp_eq16(const uint8_t* a, const char* b, Py_ssize_t n) {
        uint64_t x, y, u, v;
        uint32_t x4, y4, u4, v4;
        if (n >= 8) {
            memcpy(&x, a, 8); memcpy(&y, b, 8); memcpy(&u, a + n - 8, 8); memcpy(&v, b + n - 8, 8);
            return ((x ^ y) | (u ^ v)) == 0;
        }
        if (n >= 4) {
            memcpy(&x4, a, 4); memcpy(&y4, b, 4); memcpy(&u4, a + n - 4, 4); memcpy(&v4, b + n - 4, 4);
            return ((x4 ^ y4) | (u4 ^ v4)) == 0;
        }
        return n == 0 || (a[0] == (uint8_t)b[0] && a[n >> 1] == (uint8_t)b[n >> 1] && a[n - 1] == (uint8_t)b[n - 1]);
    }
    /* 0x80 in each byte of w that is not an ASCII digit (exact per byte: no carry
       crosses a byte). */
    static inline uint64_t fp_nondigit(uint64_t w) {
        uint64_t x = w ^ 0x3030303030303030ULL;
        return (((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7676767676767676ULL) | x) & 0x8080808080808080ULL;
    }
    /* a[:n] and b[:n] are equal but for digits where both have a digit. */
    static inline int fp_eq_digits(const uint8_t* a, const char* b, Py_ssize_t n) {
        uint64_t x, y, d, both;
        Py_ssize_t i = 0;
        if (n < 8) {
            for (; i < n; i++) {
                if (a[i] != (uint8_t)b[i] && ((uint8_t)(a[i] - 48) > 9 || (uint8_t)(b[i] - 48) > 9))
                    return 0;
            }
            return 1;
        }
        for (;;) {
            if (i + 8 > n) i = n - 8;  /* the last word overlaps the one before */
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            d = x ^ y;
            if (d) {
                both = ~(fp_nondigit(x) | fp_nondigit(y)) & 0x8080808080808080ULL;
                if (d & ~((both >> 7) * 0xFF)) return 0;
            }
            i += 8;
            if (i >= n) return 1;
        }
    }
    """
    const uint64_t FP_ONES
    const uint64_t FP_HIGH
    int FP_CTZ64 "__builtin_ctzll"(uint64_t) noexcept nogil
    int FP_CLZ64 "__builtin_clzll"(uint64_t) noexcept nogil
    uint64_t FP_LE64(uint64_t) noexcept nogil
    uint32_t fp_le32(const uint8_t*) noexcept nogil
    uint64_t fp_word(const uint8_t*, Py_ssize_t, Py_ssize_t) noexcept nogil
    bint fp_ts19(const uint8_t*) noexcept nogil
    bint fp_plain16(const uint8_t*, char*) noexcept nogil
    bint fp_load16_ok(const uint8_t*, Py_ssize_t) noexcept nogil
    unsigned fp_num16(const uint8_t*, Py_ssize_t, unsigned*) noexcept nogil
    uint64_t fp_load8(const uint8_t*) noexcept nogil
    ctypedef struct fp_lines:
        const uint8_t* base
        const uint8_t* end
    void fp_lines_fill(fp_lines*, const uint8_t*) noexcept nogil
    const uint8_t* fp_lines_next(fp_lines*, const uint8_t*, bint*) noexcept nogil
    uint64_t fp_drop_byte(uint64_t, int) noexcept nogil
    int FP_CTZ32 "__builtin_ctz"(unsigned) noexcept nogil
    bint fp_eq_digits(const uint8_t*, const char*, Py_ssize_t) noexcept nogil
    bint fp_eq16(const uint8_t*, const char*, Py_ssize_t) noexcept nogil
    int fp_digit_run(uint64_t) noexcept nogil
    uint64_t fp_digits_value(uint64_t, int) noexcept nogil
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


cdef inline int grow(void** p, size_t size) noexcept nogil:
    """``realloc`` of ``*p`` to ``size`` bytes; -1 (and ``*p`` unchanged) when out of memory."""
    cdef void* q = realloc(p[0], size)
    if q == NULL:
        return -1
    p[0] = q
    return 0


cdef void buf_free(Buf* b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


include "_ids.pxi"


cdef inline Py_ssize_t put_id(shipper_idq* q, char* base, Py_ssize_t pos, const uint8_t* key, Py_ssize_t keylen,
                              uint64_t off) noexcept nogil:
    """The `_id` after the action head, at ``base + pos``: contract v1 the hex offset (the
    head holds the prefix), v2 (a key) the per-event BLAKE2b-128 of key and offset
    (blake2b.h), its 22 bytes left open and queued in ``q``: written in groups of 4 or 8
    (blake2b_id4.h), the last ones by ``_batch`` before it hands the body over."""
    if keylen == 0:
        return put_hex(base + pos, off)
    shipper_idq_push(q, base, pos, key, <size_t>keylen, off)
    return SHIPPER_ID_LEN


cdef inline Py_ssize_t put_hex(char* out, uint64_t v) noexcept nogil:
    """``v`` in lower-case hex without leading zeros, written from its last digit back
    (its length from the leading zero bits: no temporary, no copy)."""
    cdef Py_ssize_t n = (67 - FP_CLZ64(v | 1)) >> 2, i = n
    while i > 0:
        i -= 1
        out[i] = _HEX[v & 15]
        v >>= 4
    return n


cdef uint64_t _P10[20]
for _i in range(20):
    _P10[_i] = 10 ** _i
cdef const char* _PAIRS = (b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                           b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                           b"8081828384858687888990919293949596979899")


cdef inline Py_ssize_t put_dec(char* out, uint64_t v) noexcept nogil:
    """``v`` in decimal, written from its last digit back, two digits a step (a table of
    the 100 pairs): half the divisions, no temporary, no copy."""
    cdef Py_ssize_t n = 1, i
    cdef uint64_t q
    while n < 20 and v >= _P10[n]:
        n += 1
    i = n
    while v >= 100:
        q = v // 100
        i -= 2
        memcpy(out + i, _PAIRS + 2 * (v - q * 100), 2)
        v = q
    if v >= 10:
        memcpy(out + i - 2, _PAIRS + 2 * v, 2)
    else:
        out[i - 1] = <char>(48 + v)
    return n


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
    cdef Py_ssize_t i = 0, o = 0, run = 0  # run: the last input bytes copied as they are
    cdef uint64_t w = 0, k8
    cdef uint8_t c
    cdef int k
    cdef bint tail = True  # the overlapping last window not tried yet
    cdef uint32_t a4, b4
    if n < 16:  # short values (levels, loggers, ids): two overlapping moves when all plain
        if n >= 8:
            memcpy(&w, s, 8)
            memcpy(&k8, s + n - 8, 8)
            if plain8(w) and plain8(k8):
                memcpy(out, &w, 8)
                memcpy(out + n - 8, &k8, 8)
                return n
        elif n >= 4:
            memcpy(&a4, s, 4)
            memcpy(&b4, s + n - 4, 4)
            if plain8(<uint64_t>a4 | (<uint64_t>b4 << 32)):
                memcpy(out, &a4, 4)
                memcpy(out + n - 4, &b4, 4)
                return n
        elif n > 0:  # s[0], s[n // 2] and s[n - 1] are all of it; the rest spaces (plain)
            if plain8(<uint64_t>s[0] | (<uint64_t>s[n >> 1] << 8) | (<uint64_t>s[n - 1] << 16)
                      | <uint64_t>0x2020202020000000):
                out[0] = <char>s[0]
                out[n >> 1] = <char>s[n >> 1]
                out[n - 1] = <char>s[n - 1]
                return n
    while i < n:
        if i + 16 <= n:
            if fp_plain16(s + i, out + o):
                i += 16
                o += 16
                run += 16
                continue
        elif tail and n - 16 >= i - run and n >= 16:
            # the last 16 bytes, overlapping bytes already copied as they are (so their
            # output is the same): one step instead of the byte loop for the tail
            tail = False
            if fp_plain16(s + n - 16, out + o - (i - (n - 16))):
                o += n - i
                i = n
                break
        if i + 8 <= n:
            memcpy(&w, s + i, 8)
            if plain8(w):
                memcpy(out + o, &w, 8)
                i += 8
                o += 8
                run += 8
                continue
        c = s[i]
        if c < 0x80:
            if c >= 0x20 and c != 0x22 and c != 0x5C:
                out[o] = <char>c
                o += 1
                run += 1
            else:
                run = 0
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
            run += k
        else:
            memcpy(out + o, b"\xef\xbf\xbd", 3)
            o += 3
            i -= k
            run = 0
            tags[0] |= _INVALID
    return o


cdef struct Frag:
    const char* p
    Py_ssize_t n


cdef const int* int_array(list keep, values):
    """``values`` as a C int array, kept alive by ``keep``."""
    cdef bytes b = array("i", values).tobytes() + b"\0\0\0\0"
    keep.append(b)
    return <const int*>PyBytes_AS_STRING(b)


cdef enum:
    _PAD = 32  # readable bytes past a fragment's end; slack the body keeps past its end

cdef bytes _PADDING = b"\0" * _PAD


cdef inline Frag frag_of(list keep, bytes b):
    """A fragment for ``b``, from a copy with ``_PAD`` bytes after it (kept by ``keep``),
    so that ``put_f`` may copy it in whole 32-byte blocks."""
    cdef bytes pb = b + _PADDING
    cdef Frag f
    keep.append(pb)
    f.p = PyBytes_AS_STRING(pb)
    f.n = PyBytes_GET_SIZE(b)
    return f


cdef inline void put_blocks(Buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    """``put_f`` of bytes that have ``_PAD`` readable bytes after them."""
    cdef char* d = b.data + b.len
    cdef Py_ssize_t i = 0
    while i < n:
        memcpy(d + i, s + i, 32)
        i += 32
    b.len += n


cdef inline void put_f(Buf* b, Frag f) noexcept nogil:
    """Append a fragment in whole 32-byte blocks (constant-size moves, no libc call): its
    source is padded (``frag_of``) and the body is reserved with ``_PAD`` bytes of slack;
    only ``f.n`` bytes count."""
    cdef char* d = b.data + b.len
    cdef Py_ssize_t i = 0
    while True:
        memcpy(d + i, f.p + i, 32)
        i += 32
        if i >= f.n:
            break
    b.len += f.n




# ---------------------------------------------------------------------------------------
# program formats (python, layouts, templates, dissect): matcher, time parser, zone

cdef enum:
    _OP_END = 0
    _OP_LIT = 1
    _OP_WS = 2
    _OP_CAP = 3
    _OP_OPT = 4
    _OP_OPTEND = 5
    _MODE_LAZY = 0
    _MODE_FIRST = 1
    _MODE_TIME = 2
    _MODE_LEVEL = 3
    _MAX_PROGS = 4
    _MAX_SLOTS = 64
    _MAX_TOKS = 25

assert (OP_END, OP_LIT, OP_WS, OP_CAP, OP_OPT, OP_OPTEND) == (0, 1, 2, 3, 4, 5)
assert (MODE_LAZY, MODE_FIRST, MODE_TIME, MODE_LEVEL) == (0, 1, 2, 3)
assert MAX_MATCH_BYTES < 1 << 30 and FAR_PAST < 0

cdef int64_t _MAX_MS_C = 253402300799999
cdef int64_t _MAX_U32 = 4294967295
cdef long MATCH_BUDGET_C = _pyparser.MATCH_BUDGET
cdef Py_ssize_t MAX_MATCH_C = MAX_MATCH_BYTES

cdef struct Prog:
    const int* ops        # triples
    int nops
    const char* lits      # all literals, concatenated
    const int* lit_off
    const int* lit_len
    const int* grp_off    # group g's slots: grp_slots[grp_off[g]:grp_off[g+1]]
    const int* grp_slots

cdef struct Zone:
    const int64_t* times
    const int64_t* offs
    Py_ssize_t n

cdef struct Matcher:
    const uint8_t* s
    Py_ssize_t n
    const Prog* pg
    Py_ssize_t* caps      # start, end per slot; -1: unset
    uint8_t* memo
    Py_ssize_t width
    long steps


cdef inline bint is_ws(uint8_t c) noexcept nogil:
    return c == 32 or <uint8_t>(c - 9) <= 4  # one compare for the range 9..13


cdef inline bint is_digit(uint8_t c) noexcept nogil:
    return <uint8_t>(c - 48) <= 9


cdef inline bint is_alpha(uint8_t c) noexcept nogil:
    return <uint8_t>((c | 32) - 97) <= 25  # A-Z and a-z: one compare


cdef inline Py_ssize_t ts_shape_len(const uint8_t* s, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """The length of an ISO-like time at ``s[p:]`` (``_pyparser.ts_shape_len``), 0: none."""
    cdef Py_ssize_t q
    if p + 19 > n or not fp_ts19(s + p):
        return 0
    q = p + 19
    if q + 1 < n and (s[q] == 46 or s[q] == 44) and is_digit(s[q + 1]):
        q += 2
        while q < n and is_digit(s[q]):
            q += 1
    if q < n and s[q] == 90:
        q += 1
    elif q + 2 < n and (s[q] == 43 or s[q] == 45) and is_digit(s[q + 1]) and is_digit(s[q + 2]):
        if q + 5 < n and s[q + 3] == 58 and is_digit(s[q + 4]) and is_digit(s[q + 5]):
            q += 6
        elif q + 4 < n and is_digit(s[q + 3]) and is_digit(s[q + 4]):
            q += 5
        else:
            q += 3
    return q - p


cdef Py_ssize_t level_len(const uint8_t* s, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """The length of the level word at ``s[p:]`` (``_formats.LEVEL_WORDS``: the first that
    matches, WARNING before WARN), 0: none. By the first letter, then one compare of a
    constant length (inlined, not a libc call per word)."""
    cdef Py_ssize_t r = n - p
    cdef const uint8_t* t = s + p
    if r < 4:
        return 0
    if t[0] == b'I':
        return 4 if memcmp(t, b"INFO", 4) == 0 else 0
    if t[0] == b'W':
        if r >= 7 and memcmp(t, b"WARNING", 7) == 0:
            return 7
        return 4 if memcmp(t, b"WARN", 4) == 0 else 0
    if r < 5:
        return 0
    if t[0] == b'E':
        return 5 if memcmp(t, b"ERROR", 5) == 0 else 0
    if t[0] == b'D':
        return 5 if memcmp(t, b"DEBUG", 5) == 0 else 0
    if t[0] == b'F':
        return 5 if memcmp(t, b"FATAL", 5) == 0 else 0
    if t[0] == b'T':
        return 5 if memcmp(t, b"TRACE", 5) == 0 else 0
    if t[0] == b'N':
        return 6 if r >= 6 and memcmp(t, b"NOTSET", 6) == 0 else 0
    if t[0] == b'C':
        return 8 if r >= 8 and memcmp(t, b"CRITICAL", 8) == 0 else 0
    return 0

assert LEVEL_WORDS == (b"WARNING", b"WARN", b"CRITICAL", b"ERROR", b"INFO", b"DEBUG", b"FATAL",
                       b"NOTSET", b"TRACE")


cdef int m_step(Matcher* st, int e, Py_ssize_t p) noexcept nogil:
    """1: the rest of the program matches at p; 0: not; -1: budget exhausted."""
    cdef const int* op
    cdef Py_ssize_t key, k, q, ln, n = st.n
    cdef int r, g, i
    cdef const uint8_t* s = st.s
    cdef const Prog* pg = st.pg
    st.steps -= 1
    if st.steps < 0:
        return -1
    key = e * st.width + p
    if st.memo[key >> 3] & (1 << (key & 7)):
        return 0
    op = pg.ops + 3 * e
    r = 0
    if op[0] == _OP_LIT:
        ln = pg.lit_len[op[1]]
        if p + ln <= n and memcmp(s + p, pg.lits + pg.lit_off[op[1]], ln) == 0:
            r = m_step(st, e + 1, p + ln)
    elif op[0] == _OP_CAP:
        r = m_cap(st, e, p, op[1], op[2])
    elif op[0] == _OP_WS:
        k = p
        while k < n and is_ws(s[k]):
            k += 1
        while k > p:
            r = m_step(st, e + 1, k)
            if r != 0:
                break
            k -= 1
    elif op[0] == _OP_END:
        r = p == n
    elif op[0] == _OP_OPT:
        r = m_step(st, e + 1, p)
        if r != 0:
            return r
        g = op[2]
        for i in range(pg.grp_off[g], pg.grp_off[g + 1]):
            st.caps[2 * pg.grp_slots[i]] = -1
        r = m_step(st, op[1], p)
    else:
        r = m_step(st, e + 1, p)
    if r == 0:
        st.memo[key >> 3] |= <uint8_t>(1 << (key & 7))
    return r


cdef inline Py_ssize_t find_lit(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, const char* lit,
                                Py_ssize_t ln) noexcept nogil:
    cdef const uint8_t* hit
    if ln == 0:
        return p if p <= n else -1
    while p + ln <= n:
        hit = <const uint8_t*>memchr(s + p, <uint8_t>lit[0], n - ln + 1 - p)
        if hit == NULL:
            return -1
        p = hit - s
        if memcmp(hit, lit, ln) == 0:
            return p
        p += 1
    return -1


cdef int m_cap(Matcher* st, int e, Py_ssize_t p, int slot, int mode) noexcept nogil:
    cdef Py_ssize_t k, q, n = st.n, ln
    cdef const Prog* pg = st.pg
    cdef const int* nop = pg.ops + 3 * (e + 1)
    cdef const char* lit
    cdef int r
    if mode == _MODE_LEVEL:
        k = level_len(st.s, n, p)
        if k == 0:
            return 0
        st.caps[2 * slot] = p
        st.caps[2 * slot + 1] = p + k
        return m_step(st, e + 1, p + k)
    if mode == _MODE_TIME:
        k = ts_shape_len(st.s, n, p)
        if k:
            st.caps[2 * slot] = p
            st.caps[2 * slot + 1] = p + k
            return m_step(st, e + 1, p + k)
    st.caps[2 * slot] = p
    if nop[0] == _OP_END:
        st.caps[2 * slot + 1] = n
        return m_step(st, e + 1, n)
    if nop[0] == _OP_LIT:
        lit = pg.lits + pg.lit_off[nop[1]]
        ln = pg.lit_len[nop[1]]
        q = find_lit(st.s, n, p, lit, ln)
        if mode == _MODE_FIRST:
            if q < 0:
                return 0
            st.caps[2 * slot] = p
            st.caps[2 * slot + 1] = q
            return m_step(st, e + 1, q)
        while q >= 0:
            st.caps[2 * slot] = p
            st.caps[2 * slot + 1] = q
            r = m_step(st, e + 1, q)
            if r != 0:
                return r
            q = find_lit(st.s, n, q + 1, lit, ln)
        return 0
    if mode == _MODE_FIRST:  # not made by the compiler: a dissect field is followed by a literal
        return 0
    for q in range(p, n + 1):
        if nop[0] == _OP_WS and (q == n or not is_ws(st.s[q])):
            continue
        st.caps[2 * slot] = p
        st.caps[2 * slot + 1] = q
        r = m_step(st, e + 1, q)
        if r != 0:
            return r
    return 0


cdef int m_first(Matcher* st) noexcept nogil:
    """The first path the backtracking matcher tries, without backtracking: 1 when it
    reaches the end (caps set as ``m_step`` would set them), 0 when it fails somewhere
    (``m_step`` then decides). ``m_step`` explores choices depth first in a fixed order
    and only prunes states that failed, so when the path of first choices succeeds it is
    the match ``m_step`` returns; taking it directly skips the memo ``memset`` and one
    recursion per op, which is nearly every line of a well-formed log."""
    cdef const Prog* pg = st.pg
    cdef const uint8_t* s = st.s
    cdef Py_ssize_t n = st.n, p = 0, k, ln
    cdef Py_ssize_t* caps = st.caps
    cdef const int* op = pg.ops
    cdef int slot, mode, nk
    while True:
        if op[0] == _OP_CAP:
            slot = op[1]
            mode = op[2]
            if mode == _MODE_LEVEL:
                k = level_len(s, n, p)
                if k == 0:
                    return 0
                caps[2 * slot] = p
                p += k
                caps[2 * slot + 1] = p
                op += 3
                continue
            if mode == _MODE_TIME:
                k = ts_shape_len(s, n, p)
                if k:
                    caps[2 * slot] = p
                    p += k
                    caps[2 * slot + 1] = p
                    op += 3
                    continue
            caps[2 * slot] = p
            nk = op[3]
            if nk == _OP_END:
                p = n
            elif nk == _OP_LIT:
                p = find_lit(s, n, p, pg.lits + pg.lit_off[op[4]], pg.lit_len[op[4]])
                if p < 0:
                    return 0
            elif mode == _MODE_FIRST:
                return 0
            elif nk == _OP_WS:
                while p < n and not is_ws(s[p]):
                    p += 1
                if p == n:
                    return 0
            caps[2 * slot + 1] = p
            op += 3
        elif op[0] == _OP_LIT:
            ln = pg.lit_len[op[1]]
            if p + ln > n or memcmp(s + p, pg.lits + pg.lit_off[op[1]], ln) != 0:
                return 0
            p += ln
            op += 3
        elif op[0] == _OP_WS:
            k = p
            while k < n and is_ws(s[k]):
                k += 1
            if k == p:
                return 0
            p = k
            op += 3
        elif op[0] == _OP_END:
            return p == n
        elif op[0] == _OP_OPT:
            # the group is entered first; when its first op is a literal that is not at p,
            # everything inside fails there, before any choice, and the next path m_step
            # tries is the one that skips the group (its captures unset): take that one
            if op[3] == _OP_LIT:
                ln = pg.lit_len[op[4]]
                if p + ln > n or memcmp(s + p, pg.lits + pg.lit_off[op[4]], ln) != 0:
                    for k in range(pg.grp_off[op[2]], pg.grp_off[op[2] + 1]):
                        caps[2 * pg.grp_slots[k]] = -1
                    op = pg.ops + 3 * op[1]
                    continue
            op += 3
        else:  # OPTEND
            op += 3


# -- compiled layouts ------------------------------------------------------------------------
# A program made only of literals, whitespace runs and time/level/lazy captures (each lazy
# capture followed by a literal, whitespace or the end: every logging layout, `format:
# python`'s first one among them) is turned once per parser into a list of steps that
# ``lay_match`` walks straight: m_first's path without the op table's indirections, writing
# the trimmed values directly, and the level word's index for a precomputed fragment.

cdef enum:
    _LS_LIT = 0
    _LS_WS = 1
    _LS_END = 2
    _LS_TIME = 3
    _LS_LEVEL = 4
    _LS_LAZY = 5
    _MAX_LAY = 48
    _NM_MAX = 48  # longest value _nm_* keeps
    _NM_FRAG = 48 * 6 + 64 + 2 * 32  # its fragment: escaped, the plan prefix, slack
    _NLEVELS = 9  # LEVEL_WORDS

cdef struct LayStep:
    int kind
    int slot
    int nk                # TIME, LAZY: the next op (_OP_END, _OP_LIT or _OP_WS)
    bint wsb, wsa         # LIT: whitespace runs before / after it (lay_possible)
    const char* lit       # LIT: its bytes; TIME, LAZY before a literal: that literal
    Py_ssize_t ln

cdef struct Layout:  # one allocation: the struct, its steps, its absent slots
    LayStep* steps
    int* absent  # slots the program does not capture (unset per line)
    int nabsent


cdef inline Py_ssize_t level_word(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int* w) noexcept nogil:
    """``level_len``, and the word's index in LEVEL_WORDS."""
    cdef Py_ssize_t k = level_len(s, n, p)
    cdef uint8_t c
    if k:
        c = s[p]
        if c == b'I':
            w[0] = 4
        elif c == b'W':
            w[0] = 0 if k == 7 else 1
        elif c == b'E':
            w[0] = 3
        elif c == b'D':
            w[0] = 5
        elif c == b'C':
            w[0] = 2
        elif c == b'F':
            w[0] = 6
        elif c == b'N':
            w[0] = 7
        else:
            w[0] = 8
    return k


cdef int lay_possible(const Layout* L, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """0 when no match of the program exists, so that the backtracking matcher need not
    try it: its literals do not occur in order, each with the whitespace the program puts
    next to it (a whitespace op consumes at least one byte right before or after the
    literal). The leftmost occurrences are taken: if a match exists, each found one is at
    or before the match's, so the next is found too. 1: maybe."""
    cdef const LayStep* st = L.steps
    cdef Py_ssize_t p = 0, q
    while st.kind != _LS_END:
        if st.kind == _LS_LIT:
            q = p
            while True:
                q = find_lit(s, n, q, st.lit, st.ln)
                if q < 0:
                    return 0
                if (not st.wsb or (q > 0 and is_ws(s[q - 1]))) and (
                        not st.wsa or (q + st.ln < n and is_ws(s[q + st.ln]))):
                    break
                q += 1
            p = q + st.ln
        st += 1
    return 1


cdef int lay_match(const Layout* L, const uint8_t* s, Py_ssize_t n, Py_ssize_t* vals, int* lev) noexcept nogil:
    """1: the layout's first path (the one ``m_first`` takes) matches ``s[:n]``; the
    values (trimmed, as ``_prog_event`` trims captures) are in ``vals``, the level word's
    index in ``lev`` (-1: none). 0: it does not (``_prog_event``'s general match decides)."""
    cdef const LayStep* st = L.steps
    cdef Py_ssize_t p = 0, k, a, e
    cdef int i
    lev[0] = -1
    while True:
        if st.kind == _LS_LIT:
            if p + st.ln > n or memcmp(s + p, st.lit, st.ln) != 0:
                return 0
            p += st.ln
        elif st.kind == _LS_WS:
            if p >= n or not is_ws(s[p]):
                return 0
            p += 1
            while p < n and is_ws(s[p]):
                p += 1
        elif st.kind == _LS_LEVEL:
            k = level_word(s, n, p, lev)
            if k == 0:
                return 0
            vals[2 * st.slot] = p
            p += k
            vals[2 * st.slot + 1] = p
        elif st.kind == _LS_END:
            if p != n:
                return 0
            break
        else:
            if st.kind == _LS_TIME:
                k = ts_shape_len(s, n, p)
                if k:
                    vals[2 * st.slot] = p
                    p += k
                    vals[2 * st.slot + 1] = p
                    st += 1
                    continue
            a = p
            if st.nk == _OP_END:
                p = n
            elif st.nk == _OP_LIT:
                p = find_lit(s, n, p, st.lit, st.ln)
                if p < 0:
                    return 0
            else:
                while p < n and not is_ws(s[p]):
                    p += 1
                if p == n:
                    return 0
            e = p
            while a < e and is_ws(s[a]):
                a += 1
            while e > a and is_ws(s[e - 1]):
                e -= 1
            vals[2 * st.slot] = a
            vals[2 * st.slot + 1] = e
        st += 1
    for i in range(L.nabsent):
        vals[2 * L.absent[i]] = -1
    return 1


# -- time ---------------------------------------------------------------------------------

cdef int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    if m <= 2:
        y -= 1
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t mp = m - 3 if m > 2 else m + 9
    cdef int64_t doy = (153 * mp + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d) noexcept nogil:
    z += 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = doy - (153 * mp + 2) // 5 + 1
    m[0] = mp + 3 if mp < 10 else mp - 9
    y[0] = yoe + era * 400 + (1 if m[0] <= 2 else 0)


cdef inline int64_t floordiv(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef int64_t off_at(const Zone* z, int64_t u) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = z.n, mid
    while hi - lo > 1:  # times[lo] <= u < times[hi]
        mid = (lo + hi) >> 1
        if z.times[mid] <= u:
            lo = mid
        else:
            hi = mid
    return z.offs[lo]


cdef int64_t local_to_utc(const Zone* z, int64_t local) noexcept nogil:
    cdef int64_t o1 = off_at(z, local)
    return local - off_at(z, local - o1)


cdef struct Tok:
    bint num
    Py_ssize_t a, b
    int64_t v


cdef const char* _MONTHS = b"janfebmaraprmayjunjulaugsepoctnovdec"
cdef enum:
    _TOK_T = 13
    _NO_ZONE = 1000000


cdef int64_t frac_ms(const uint8_t* s, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef int64_t v = 0
    cdef int k
    for k in range(3):
        v = v * 10 + ((s[a + k] - 48) if a + k < b else 0)
    return v


cdef Py_ssize_t zone_at(const uint8_t* s, Py_ssize_t n, Py_ssize_t p, int64_t* zoff) noexcept nogil:
    cdef Py_ssize_t q, nd
    cdef int64_t hh = -1, mm = -1, o
    cdef uint8_t c
    zoff[0] = _NO_ZONE
    while p < n and s[p] == 32:
        p += 1
    if p >= n:
        return p
    c = s[p]
    if c == 90 and (p + 1 == n or not is_alpha(s[p + 1])):
        zoff[0] = 0
        return p + 1
    if p + 3 <= n and (memcmp(s + p, b"UTC", 3) == 0 or memcmp(s + p, b"GMT", 3) == 0) \
            and (p + 3 == n or not is_alpha(s[p + 3])):
        zoff[0] = 0
        return p + 3
    if c == 43 or c == 45:
        q = p + 1
        while q < n and is_digit(s[q]):
            q += 1
        nd = q - p - 1
        if nd == 4:
            hh = (s[p + 1] - 48) * 10 + s[p + 2] - 48
            mm = (s[p + 3] - 48) * 10 + s[p + 4] - 48
        elif nd == 2:
            hh = (s[p + 1] - 48) * 10 + s[p + 2] - 48
            mm = 0
            if q + 2 < n and s[q] == 58 and is_digit(s[q + 1]) and is_digit(s[q + 2]) \
                    and (q + 3 == n or not is_digit(s[q + 3])):
                mm = (s[q + 1] - 48) * 10 + s[q + 2] - 48
                q += 3
        if hh >= 0 and hh <= 23 and mm >= 0 and mm <= 59:
            o = hh * 3600 + mm * 60
            zoff[0] = o if c == 43 else -o
            return q
    return p


cdef inline Py_ssize_t tlen(const Tok* t) noexcept nogil:
    return t.b - t.a


cdef int64_t parse_time(const uint8_t* s, Py_ssize_t n, const Zone* z, int64_t read_ms,
                        bint* ok) noexcept nogil:
    """Mirror of ``_pyparser.parse_time``; ``ok`` false: no time."""
    cdef Tok toks[_MAX_TOKS]
    cdef Tok* nums[_MAX_TOKS]
    cdef int nt = 0, nn = 0, x, k, nxt, mon, j, di
    cdef Py_ssize_t i = 0, jj, nd, zend
    cdef int64_t v, hh = 0, mi = 0, ss = 0, frac = 0, year = -1, month = -1, day = -1
    cdef int64_t zoff = _NO_ZONE, secs, rsec, rlocal, local, utc, ms, yy, mm_, dd
    cdef uint8_t c, sep
    cdef char low[3]
    cdef Tok* last
    cdef Tok* t0
    ok[0] = False
    if n == 0 or n > 255:
        return 0
    while i < n:
        c = s[i]
        if is_digit(c):
            jj = i
            v = 0
            while jj < n and is_digit(s[jj]):
                if jj - i >= 18:
                    return 0
                v = v * 10 + s[jj] - 48
                jj += 1
            toks[nt].num = True
            toks[nt].a = i
            toks[nt].b = jj
            toks[nt].v = v
            nt += 1
            i = jj
        elif is_alpha(c):
            jj = i
            while jj < n and is_alpha(s[jj]):
                jj += 1
            v = 0
            if jj - i == 3:
                for k in range(3):
                    low[k] = <char>(s[i + k] | 0x20)
                for k in range(12):
                    if memcmp(low, _MONTHS + 3 * k, 3) == 0:
                        v = k + 1
                        break
            elif jj - i == 1 and (c | 0x20) == 116:
                v = _TOK_T
            toks[nt].num = False
            toks[nt].a = i
            toks[nt].b = jj
            toks[nt].v = v
            nt += 1
            i = jj
        else:
            i += 1
        if nt > 24:
            return 0
    if nt == 0:
        return 0
    t0 = &toks[0]
    if t0.num and t0.a == 0:
        nd = tlen(t0)
        if nd == n and nd == 13:
            if t0.v <= _MAX_MS_C:
                ok[0] = True
            return t0.v
        if nd == 10 and (nd == n or (nt == 2 and toks[1].num and s[nd] == 46 and toks[1].a == nd + 1
                                     and toks[1].b == n)):
            frac = frac_ms(s, toks[1].a, toks[1].b) if nt == 2 else 0
            ok[0] = True
            return t0.v * 1000 + frac
    k = -1
    for x in range(nt - 1):
        if toks[x].num and toks[x + 1].num and tlen(&toks[x]) <= 2 and toks[x].b < n and s[toks[x].b] == 58 \
                and toks[x + 1].a == toks[x].b + 1 and tlen(&toks[x + 1]) == 2:
            k = x
            break
    if k >= 0:
        hh = toks[k].v
        mi = toks[k + 1].v
        ss = 0
        nxt = k + 2
        last = &toks[k + 1]
        if nxt < nt and last.b < n and s[last.b] == 58 and toks[nxt].num and toks[nxt].a == last.b + 1 \
                and tlen(&toks[nxt]) == 2:
            ss = toks[nxt].v
            last = &toks[nxt]
            nxt += 1
        if nxt < nt and last.b < n and toks[nxt].num and toks[nxt].a == last.b + 1:
            sep = s[last.b]
            nd = tlen(&toks[nxt])
            if sep == 46 or sep == 44 or (sep == 58 and nd == 3):
                frac = frac_ms(s, toks[nxt].a, toks[nxt].b)
                last = &toks[nxt]
                nxt += 1
        zend = zone_at(s, n, last.b, &zoff)
        mon = 0
        for x in range(k):
            if not toks[x].num and toks[x].v >= 1 and toks[x].v <= 12:
                mon = <int>toks[x].v
                break
        for x in range(k):
            if toks[x].num:
                nums[nn] = &toks[x]
                nn += 1
        if mon:
            month = mon
            for x in range(nn):
                if tlen(nums[x]) <= 2:
                    day = nums[x].v
                    break
            if day < 0:
                return 0
            for x in range(nn):
                if tlen(nums[x]) == 4:
                    year = nums[x].v
                    break
            if year < 0 and nxt < nt:
                if toks[nxt].a >= zend and toks[nxt].num and tlen(&toks[nxt]) == 4:
                    year = toks[nxt].v
        elif nn == 1 and (tlen(nums[0]) == 6 or tlen(nums[0]) == 8):
            v = nums[0].v
            year = v // 10000 if tlen(nums[0]) == 8 else 2000 + v // 10000
            month = v // 100 % 100
            day = v % 100
        elif nn == 3 and tlen(nums[1]) <= 2 and tlen(nums[2]) <= 2:
            di = <int>tlen(nums[0])
            if di == 4:
                year = nums[0].v
            elif di <= 2:
                year = 2000 + nums[0].v
            else:
                return 0
            month = nums[1].v
            day = nums[2].v
        elif nn == 2 and tlen(nums[0]) <= 2 and tlen(nums[1]) <= 2:
            month = nums[0].v
            day = nums[1].v
        else:
            return 0
    else:
        for x in range(nt):
            if toks[x].num:
                nums[nn] = &toks[x]
                nn += 1
            elif toks[x].v != _TOK_T:
                return 0
        if nn >= 6 and nn <= 7 and tlen(nums[0]) == 4 and tlen(nums[1]) <= 2 and tlen(nums[2]) <= 2 \
                and tlen(nums[3]) <= 2 and tlen(nums[4]) <= 2 and tlen(nums[5]) <= 2:
            year = nums[0].v
            month = nums[1].v
            day = nums[2].v
            hh = nums[3].v
            mi = nums[4].v
            ss = nums[5].v
            if nn == 7:
                frac = frac_ms(s, nums[6].a, nums[6].b)
        elif nn == 2 and (tlen(nums[0]) == 6 or tlen(nums[0]) == 8) and tlen(nums[1]) == 6:
            v = nums[0].v
            year = v // 10000 if tlen(nums[0]) == 8 else 2000 + v // 10000
            month = v // 100 % 100
            day = v % 100
            v = nums[1].v
            hh = v // 10000
            mi = v // 100 % 100
            ss = v % 100
        else:
            return 0
    if not (month >= 1 and month <= 12 and day >= 1 and day <= 31 and hh <= 23 and mi <= 59 and ss <= 60):
        return 0
    secs = hh * 3600 + mi * 60 + ss
    if year < 0:
        rsec = floordiv(read_ms, 1000)
        rlocal = rsec + (off_at(z, rsec) if zoff == _NO_ZONE else zoff)
        civil_from_days(floordiv(rlocal, 86400), &yy, &mm_, &dd)
        year = yy
        local = days_from_civil(year, month, day) * 86400 + secs
        if local - rlocal > 7 * 86400:
            year -= 1
    if year < 1970 or year > 9999:
        return 0
    local = days_from_civil(year, month, day) * 86400 + secs
    utc = local - zoff if zoff != _NO_ZONE else local_to_utc(z, local)
    ms = utc * 1000 + frac
    if ms < 0 or ms > _MAX_MS_C:
        return 0
    ok[0] = True
    return ms


cdef inline bint iso_ms_shape(const uint8_t* t) noexcept nogil:
    """``t[:23]`` is ``YYYY-mm-dd HH:MM:SS,mmm`` (or T, or "."): ``_pyparser._ISO_MS``."""
    return fp_ts19(t) and (t[19] == 44 or t[19] == 46) and is_digit(t[20]) and is_digit(t[21]) \
        and is_digit(t[22])


cdef Py_ssize_t put_ts(char* out, int64_t ms) noexcept nogil:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (24 bytes)."""
    cdef int64_t y, m, d, rem
    civil_from_days(floordiv(ms, 86400000), &y, &m, &d)
    rem = ms - floordiv(ms, 86400000) * 86400000
    put2(out, y // 100)
    put2(out + 2, y % 100)
    out[4] = b'-'
    put2(out + 5, m)
    out[7] = b'-'
    put2(out + 8, d)
    out[10] = b'T'
    put2(out + 11, rem // 3600000)
    out[13] = b':'
    put2(out + 14, rem // 60000 % 60)
    out[16] = b':'
    put2(out + 17, rem // 1000 % 60)
    out[19] = b'.'
    out[20] = <char>(48 + rem % 1000 // 100)
    put2(out + 21, rem % 100)
    out[23] = b'Z'
    return 24


cdef inline void put2(char* out, int64_t v) noexcept nogil:
    out[0] = <char>(48 + v // 10)
    out[1] = <char>(48 + v % 10)


# ---------------------------------------------------------------------------------------

# -- multiline (mirror of ``_multiline``) -----------------------------------------------

cdef enum:
    _ML_NORMAL = 0
    _ML_FRAMES = 1
    _ML_EXC = 2
    _ML_CHAIN = 3
    _ML_GROUP = 4
    _ML_JAVA = 5

assert (ML_NORMAL, ML_FRAMES, ML_EXC, ML_CHAIN, ML_GROUP, ML_JAVA) == (0, 1, 2, 3, 4, 5)

cdef const char* _TB_HEADER = b"Traceback (most recent call last):"
cdef Py_ssize_t _TB_HEADER_N = 34
cdef const char* _EG_HEADER = b"  + Exception Group Traceback (most recent call last):"
cdef Py_ssize_t _EG_HEADER_N = 54
cdef const char* _CHAIN1 = b"During handling of the above exception, another exception occurred:"
cdef Py_ssize_t _CHAIN1_N = 67
cdef const char* _CHAIN2 = b"The above exception was the direct cause of the following exception:"
cdef Py_ssize_t _CHAIN2_N = 68

assert (_TB_HEADER[:_TB_HEADER_N], _EG_HEADER[:_EG_HEADER_N], _CHAIN1[:_CHAIN1_N], _CHAIN2[:_CHAIN2_N]) \
    == (TB_HEADER, EG_HEADER, *CHAIN_PHRASES)


cdef inline bint eq(const uint8_t* s, Py_ssize_t n, const char* lit, Py_ssize_t ln) noexcept nogil:
    return n == ln and memcmp(s, lit, n) == 0


cdef inline bint is_chain(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    return eq(s, n, _CHAIN1, _CHAIN1_N) or eq(s, n, _CHAIN2, _CHAIN2_N)


cdef inline bint indented(const uint8_t* s) noexcept nogil:
    return s[0] == 32 or s[0] == 9


cdef int ml_first_state(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    if eq(s, n, _TB_HEADER, _TB_HEADER_N):
        return _ML_FRAMES
    if eq(s, n, _EG_HEADER, _EG_HEADER_N):
        return _ML_GROUP
    return _ML_NORMAL


cdef int ml_next_state(int state, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """``_multiline.next_state`` of the built-in rules; ``n`` > 0."""
    if state == _ML_NORMAL:
        if eq(s, n, _TB_HEADER, _TB_HEADER_N):
            return _ML_FRAMES
        if eq(s, n, _EG_HEADER, _EG_HEADER_N):
            return _ML_GROUP
        if n >= 4 and memcmp(s, b"\tat ", 4) == 0:
            return _ML_JAVA
        return -1
    if state == _ML_FRAMES:
        return _ML_FRAMES if indented(s) else _ML_EXC
    if state == _ML_EXC:
        if indented(s):
            return _ML_EXC
        return _ML_CHAIN if is_chain(s, n) else -1
    if state == _ML_CHAIN:
        if eq(s, n, _TB_HEADER, _TB_HEADER_N):
            return _ML_FRAMES
        if eq(s, n, _EG_HEADER, _EG_HEADER_N):
            return _ML_GROUP
        return -1
    if state == _ML_GROUP:
        if is_chain(s, n):
            return _ML_CHAIN
        return _ML_GROUP if indented(s) else -1
    if state == _ML_JAVA:
        if s[0] == 9 or (n >= 11 and memcmp(s, b"Caused by: ", 11) == 0):
            return _ML_JAVA
        return -1
    return -1


cdef inline bint name_char(uint8_t c) noexcept nogil:
    return is_alpha(c) or is_digit(c) or c == 95 or c == 36 or c == 46


cdef inline bint is_space(uint8_t c) noexcept nogil:
    return c == 32 or (c >= 9 and c <= 13)


cdef void ml_error_fields(const uint8_t* s, Py_ssize_t n, bint java, int state0,
                          Py_ssize_t* out) noexcept nogil:
    """``_multiline.error_fields`` over the event's lines joined with "\\n" (``s[:n]``).
    ``out``: type start, end (-1: none), message start, end (-1: none), stack trace start."""
    cdef Py_ssize_t i, j, k, a, e, ls, le, first, exc_a = -1, exc_b = -1
    cdef int state
    cdef bint found = False, seg_ok, in_exc = False
    cdef uint8_t c
    out[0] = out[1] = out[2] = out[3] = -1
    out[4] = 0
    if java:
        le = n
        for i in range(n):
            if s[i] == 10:
                le = i
                break
        for i in range(le):
            if i > 0:
                c = s[i - 1]
                if not (is_space(c) or c == 34 or c == 39 or c == 40):
                    continue
            j = i
            while j < le and name_char(s[j]):
                j += 1
            if j < le and s[j] != 58:
                continue
            # a dotted name: segments [A-Za-z_$][\w$]*, at least two
            seg_ok = True
            k = i
            a = 0
            while True:
                if k >= j or not (is_alpha(s[k]) or s[k] == 95 or s[k] == 36):
                    seg_ok = False
                    break
                k += 1
                while k < j and s[k] != 46:
                    k += 1
                a += 1
                if k >= j:
                    break
                k += 1  # the dot
            if not seg_ok or a < 2:
                continue
            out[0] = i
            out[1] = j
            if j < le:
                j += 1
                while j < le and is_space(s[j]):
                    j += 1
            out[2] = j
            out[3] = le
            return
        return
    first = -1 if state0 == _ML_NORMAL else 0
    state = state0
    ls = 0
    while ls <= n:
        le = ls
        while le < n and s[le] != 10:
            le += 1
        if le > ls:
            if state == _ML_NORMAL or state == _ML_CHAIN:
                if eq(s + ls, le - ls, _TB_HEADER, _TB_HEADER_N):
                    state = _ML_FRAMES
                elif eq(s + ls, le - ls, _EG_HEADER, _EG_HEADER_N):
                    state = _ML_GROUP
                    exc_a = -1
                    found = False
                if first < 0 and state != _ML_NORMAL:
                    first = ls
            elif state == _ML_FRAMES:
                if not indented(s + ls):
                    state = _ML_EXC
                    exc_a = ls
                    exc_b = le
                    in_exc = True
            elif state == _ML_EXC:
                if is_chain(s + ls, le - ls):
                    state = _ML_CHAIN
                    in_exc = False
                elif in_exc:
                    exc_b = le
            elif state == _ML_GROUP:
                if is_chain(s + ls, le - ls):
                    state = _ML_CHAIN
                elif (not found and le - ls > 4 and memcmp(s + ls, b"  | ", 4) == 0
                      and s[ls + 4] != 32 and s[ls + 4] != 9):
                    found = True
                    exc_a = ls + 4
                    exc_b = le
        else:
            in_exc = False
        ls = le + 1
    out[4] = first if first > 0 else 0
    if exc_a < 0:
        return
    # fullmatch of ([A-Za-z_][\w.]*)(?:: ?(.*))? over s[exc_a:exc_b]
    j = exc_a
    if is_alpha(s[j]) or s[j] == 95:
        j += 1
        while j < exc_b and (is_alpha(s[j]) or is_digit(s[j]) or s[j] == 95 or s[j] == 46):
            j += 1
        if j == exc_b or s[j] == 58:
            out[0] = exc_a
            out[1] = j
            if j < exc_b:
                j += 1
                if j < exc_b and s[j] == 32:
                    j += 1
            out[2] = j
            out[3] = exc_b
            return
    out[2] = exc_a
    out[3] = exc_b


# -- terminal noise, error classes, metrics (mirrors of ``_analysis``) --------------------

cdef enum:
    _PROGRESS_LAST = 0
    _PROGRESS_ALL = 1
    _PROGRESS_DROP = 2
    _MAX_KEY = 64
    _MAX_NUMBER = 40
    _NAME_CAP = 256
    _MAX_NAMES = 1024
    _NAME_SLOTS = 2048

assert (PROGRESS_LAST, PROGRESS_ALL, PROGRESS_DROP) == (0, 1, 2)
assert (MAX_KEY, MAX_NUMBER, MAX_NAMES) == (_MAX_KEY, _MAX_NUMBER, _MAX_NAMES)

cdef uint8_t _LOW[256]
cdef uint8_t _KEYCH[256]  # [A-Za-z0-9_./-]: a metric key's bytes
for _i in range(256):
    _LOW[_i] = _i + 32 if 65 <= _i <= 90 else _i
    _KEYCH[_i] = 1 if (48 <= _i <= 57 or 65 <= _i <= 90 or 97 <= _i <= 122 or _i in (95, 46, 47, 45)) else 0


cdef int strip_ansi(const uint8_t* s, Py_ssize_t n, Buf* out) noexcept nogil:
    """``_analysis.strip_ansi`` of ``s[:n]`` into ``out`` (emptied first); -1: no memory."""
    cdef Py_ssize_t i = 0, j, k
    cdef const uint8_t* hit
    cdef uint8_t c
    out.len = 0
    if buf_reserve(out, n) < 0:
        return -1
    while i < n:
        hit = <const uint8_t*>memchr(s + i, 27, n - i)
        if hit == NULL:
            buf_put(out, <const char*>(s + i), n - i)
            break
        j = hit - s
        buf_put(out, <const char*>(s + i), j - i)
        k = j + 1
        if k < n:
            c = s[k]
            if c == 0x5B:
                k += 1
                while k < n and s[k] >= 0x20 and s[k] <= 0x3F:
                    k += 1
                if k < n and s[k] >= 0x40 and s[k] <= 0x7E:
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
            elif c >= 0x20 and c <= 0x7E:
                k += 1
        i = k
    return 0


cdef Py_ssize_t clean_line(const uint8_t* s, Py_ssize_t n, int progress, Buf* out,
                           const uint8_t** res) noexcept nogil:
    """``_analysis.clean_line``: the cleaned length with ``res`` pointing at it (``s`` or
    ``out``), -2: dropped (progress drop), -1: no memory. Two memchr when there is no noise."""
    cdef Py_ssize_t r
    res[0] = s
    if progress != _PROGRESS_ALL and n > 1 and memchr(s, 13, n - 1) != NULL:
        r = n - 2
        while s[r] != 13:
            r -= 1
        if progress == _PROGRESS_DROP:
            return -2
        s += r + 1
        n -= r + 1
        res[0] = s
    if n and memchr(s, 27, n) != NULL:
        if strip_ansi(s, n, out) < 0:
            return -1
        res[0] = <const uint8_t*>out.data
        return out.len
    return n


cdef struct ClassTab:
    int stride
    const uint8_t* bitmap
    const int* ent  # (hash, keyword, offset) triples sorted by hash
    const uint16_t* first  # first[h]..first[h + 1]: the entries of hash h
    Py_ssize_t nent
    const uint8_t* kw
    const int* kw_start
    const int* kw_class


cdef inline uint32_t win_hash(const uint8_t* s) noexcept nogil:
    return ((fp_le32(s) | 0x20202020u) * <uint32_t>0x9E3779B1) >> 16  # _classes.window_hash


cdef int class_scan(const ClassTab* t, const uint8_t* s, Py_ssize_t n, int best) noexcept nogil:
    """The lowest class index of a keyword occurring in ``s[:n]``, if below ``best`` (-1:
    none yet); else ``best``. Hashes the 4-byte windows at multiples of the stride."""
    cdef Py_ssize_t i = 0, lo, hi, p, kl, j
    cdef uint32_t h
    cdef int k, c
    cdef const uint8_t* kw
    while i + 4 <= n:
        h = win_hash(s + i)
        if t.bitmap[h >> 3] & (1 << (h & 7)):
            lo = t.first[h]
            hi = t.first[h + 1]
            while lo < hi:
                k = t.ent[3 * lo + 1]
                c = t.kw_class[k]
                if best < 0 or c < best:
                    p = i - t.ent[3 * lo + 2]
                    kl = t.kw_start[k + 1] - t.kw_start[k]
                    if p >= 0 and p + kl <= n:
                        kw = t.kw + t.kw_start[k]
                        j = 0
                        while j < kl and _LOW[s[p + j]] == kw[j]:
                            j += 1
                        if j == kl:
                            best = c
                            if best == 0:
                                return 0
                lo += 1
        i += t.stride
    return best


cdef struct NameList:
    const char* blob
    const int* start  # n + 1 offsets
    int n


cdef inline bint ends_with_part(const char* s, Py_ssize_t n, const char* w, Py_ssize_t wn) noexcept nogil:
    """``s`` is ``w`` or ends with ``_`` + ``w``."""
    if n == wn:
        return memcmp(s, w, n) == 0
    return n > wn and s[n - wn - 1] == b'_' and memcmp(s + n - wn, w, wn) == 0


cdef inline bint in_list(const NameList* l, const char* s, Py_ssize_t n) noexcept nogil:
    cdef int i
    for i in range(l.n):
        if ends_with_part(s, n, l.blob + l.start[i], l.start[i + 1] - l.start[i]):
            return True
    return False


cdef Py_ssize_t metric_name(const NameList* known, const NameList* al_from, const NameList* al_to,
                            const uint8_t* key, Py_ssize_t kn, char* out) noexcept nogil:
    """``MetricSpec.name``: the normalised, aliased name in ``out`` (``_NAME_CAP`` bytes) and
    its length, or -1 when the key is not a metric."""
    cdef Py_ssize_t i, an, bn, n = kn
    cdef uint8_t c
    if kn > _MAX_KEY:
        return -1
    for i in range(kn):
        c = _LOW[key[i]]
        out[i] = b'_' if (c == 47 or c == 46 or c == 45) else <char>c
    for i in range(al_from.n):
        an = al_from.start[i + 1] - al_from.start[i]
        if ends_with_part(out, n, al_from.blob + al_from.start[i], an):
            bn = al_to.start[i + 1] - al_to.start[i]
            if n - an + bn > _NAME_CAP:
                return -1
            memcpy(out + n - an, al_to.blob + al_to.start[i], bn)
            n = n - an + bn
            break
    if in_list(known, out, n):
        return n
    return -1


cdef extern from "math.h" nogil:
    bint isfinite(double)

cdef extern from "stdlib.h" nogil:
    double strtod(const char*, char**)

cdef double _POW10[23]
for _i in range(23):
    _POW10[_i] = float(10 ** _i)


cdef inline Py_ssize_t next_sep(const uint8_t* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The first ``=`` or ``:`` in ``s[i:n]``, else ``n``: a word of 8 bytes at a time (the
    lowest flagged byte of the zero-byte test is exact), then byte by byte. One call per
    metric instead of two ``memchr`` restarts, which cost more than the few bytes between
    separators."""
    cdef uint64_t w, a, b, hit
    while i + 8 <= n:
        memcpy(&w, s + i, 8)
        w = FP_LE64(w)
        a = w ^ (FP_ONES * 0x3D)
        b = w ^ (FP_ONES * 0x3A)
        hit = (((a - FP_ONES) & ~a) | ((b - FP_ONES) & ~b)) & FP_HIGH
        if hit:
            return i + (FP_CTZ64(hit) >> 3)
        i += 8
    while i < n:
        if s[i] == 61 or s[i] == 58:
            return i
        i += 1
    return n


cdef struct Num:
    int kind  # 1 a number, 2 nan/inf, 0 none
    bint slow  # the value needs strtod (over 15 significant digits or a large exponent)
    bint neg
    int frac, exp  # fraction digits; the exponent's value (capped)
    uint64_t m  # the significant digits as an integer
    Py_ssize_t ia, ib, fa, fb, ea  # s[ia:ib] integer digits after leading zeros,
                                   # s[fa:fb] fraction digits, s[ea:end] the exponent


cdef inline Py_ssize_t digits_run(const uint8_t* s, Py_ssize_t p, Py_ssize_t n, uint64_t* m,
                                  int* digits) noexcept nogil:
    """Past the digits at ``s[p:n]``, accumulating them into ``m`` and counting the
    significant ones (from the first non-zero digit on) in ``digits``; two digits per
    step while two are there."""
    cdef uint64_t v = m[0]
    cdef int d = digits[0]
    cdef uint8_t c0, c1
    if v == 0:
        while p < n and s[p] == 48:
            p += 1
    while p + 1 < n:
        c0 = s[p] - 48
        c1 = s[p + 1] - 48
        if c0 > 9:
            break
        if c1 > 9:
            if v or c0:
                d += 1
            v = v * 10 + c0
            p += 1
            m[0] = v
            digits[0] = d
            return p
        d += 2 if v or c0 else (1 if c1 else 0)
        v = v * 100 + c0 * 10 + c1
        p += 2
    if p < n and <uint8_t>(s[p] - 48) <= 9:
        if v or s[p] != 48:
            d += 1
        v = v * 10 + (s[p] - 48)
        p += 1
    m[0] = v
    digits[0] = d
    return p


cdef Py_ssize_t number_scan(const uint8_t* s, Py_ssize_t n, Py_ssize_t k, Num* r) noexcept nogil:
    """The value of ``METRIC_RE`` at ``s[k:]`` (its end; ``k``: none) and, for a number,
    what its ``_metrics.number_text`` and its ``float`` need, in one pass over its bytes
    (it was three scans and a division)."""
    cdef Py_ssize_t p = k, d, q
    cdef int digits = 0, e
    r.kind = 0
    r.m = 0
    r.neg = False
    r.slow = False
    r.frac = r.exp = 0
    r.ea = k
    if p < n and (s[p] == 43 or s[p] == 45):
        r.neg = s[p] == 45
        p += 1
    d = p
    while p < n and s[p] == 48:  # leading zeros: not in the text
        p += 1
    r.ia = p
    p = digits_run(s, p, n, &r.m, &digits)
    r.ib = p
    r.fa = r.fb = p
    if p > d:
        if p < n and s[p] == 46:
            p += 1
            r.fa = p
            p = digits_run(s, p, n, &r.m, &digits)
            r.fb = p
    elif p + 1 < n and s[p] == 46 and is_digit(s[p + 1]):
        p += 1
        r.fa = p
        p = digits_run(s, p, n, &r.m, &digits)
        r.fb = p
    else:
        p = -1
    if p >= 0:
        r.frac = <int>(r.fb - r.fa)
        r.ea = p
        e = 0
        if p < n and (s[p] == 101 or s[p] == 69):
            q = p + 1
            if q < n and (s[q] == 43 or s[q] == 45):
                q += 1
            if q < n and is_digit(s[q]):
                while q < n and is_digit(s[q]):
                    if e <= 400:
                        e = e * 10 + (s[q] - 48)
                    q += 1
                if s[p + 1] == 45:
                    e = -e
                p = q
        r.exp = e
        r.slow = digits > 15 or e > 400 or e < -400
        r.kind = 1
        return p
    p = d
    if p + 3 <= n and _LOW[s[p]] == 110 and _LOW[s[p + 1]] == 97 and _LOW[s[p + 2]] == 110:  # nan
        p += 3
    elif p + 3 <= n and _LOW[s[p]] == 105 and _LOW[s[p + 1]] == 110 and _LOW[s[p + 2]] == 102:  # inf
        p += 3
        if p + 5 <= n and _LOW[s[p]] == 105 and _LOW[s[p + 1]] == 110 and _LOW[s[p + 2]] == 105 \
                and _LOW[s[p + 3]] == 116 and _LOW[s[p + 4]] == 121:  # inity
            p += 5
    else:
        return k
    if p < n and (is_alpha(s[p]) or is_digit(s[p])):
        return k
    r.kind = 2
    return p


cdef inline Py_ssize_t number_fast(const uint8_t* s, Py_ssize_t n, Py_ssize_t k, Num* r) noexcept nogil:
    """``number_scan``'s common case in a few word operations, or -1 (then ``number_scan``):
    1-7 integer digits without a leading zero (or one ``0``), then optionally ``.`` and
    1-7 fraction digits, then optionally an exponent of 1-2 digits (``2.5e-4``, ``1E+02``),
    no sign, 16 bytes at most. Such a number's text is its bytes as logged (``num_text``
    is not needed: ``number_text`` keeps an exponent as logged) and its value
    ``fast_value``, ``m * 10**(exp - frac)`` with at most 14 digits and the power within
    22, as ``num_value`` computes it; only ``kind``, ``m``, ``frac``, ``exp``, ``neg``
    and ``slow`` are set."""
    cdef Py_ssize_t p, room
    cdef int l1, l2
    cdef uint64_t w, v
    cdef unsigned dm, dots
    if k >= n or <uint8_t>(s[k] - 48) > 9:
        return -1
    room = n - k
    if FP_UNLIKELY(not fp_load16_ok(s + k, room)):
        return number_words(s, n, k, r)
    # both digit runs from one 16-byte load; a fraction whose bytes fit one word with the
    # integer's is valued with them in one conversion, the '.' taken out
    dm = fp_num16(s + k, room, &dots)
    l1 = FP_CTZ32(~dm)
    if l1 >= 8 or (s[k] == 48 and l1 > 1):
        return -1
    w = fp_load8(s + k)
    p = k + l1
    r.frac = 0
    if (dots >> l1) & 1:
        l2 = FP_CTZ32(~(dm >> (l1 + 1)))
        if l2 == 0 or l2 >= 8:
            return -1
        if l1 + l2 < 8:
            v = fp_digits_value(fp_drop_byte(w, l1), l1 + l2)
        else:
            v = fp_digits_value(w, l1) * <uint64_t>_P10[l2] + fp_digits_value(fp_load8(s + p + 1), l2)
        r.frac = l2
        p += 1 + l2
    else:
        v = fp_digits_value(w, l1)
    if p < n and (s[p] | 32) == 101:  # e or E
        return number_exp(s, n, k, p, v, r)
    r.exp = 0
    r.kind = 1
    r.m = v
    r.neg = False
    r.slow = False
    return p


cdef Py_ssize_t number_words(const uint8_t* s, Py_ssize_t n, Py_ssize_t k, Num* r) noexcept nogil:
    """``number_fast`` where 16 bytes cannot be loaded at ``s + k``: 8-byte words, the last
    ones assembled byte by byte."""
    cdef Py_ssize_t p, room = n - k
    cdef int l1, l2
    cdef uint64_t w, v
    w = fp_word(s + k, 8 if room >= 8 else room, room)
    l1 = fp_digit_run(w)
    if l1 == 8 or (s[k] == 48 and l1 > 1):
        return -1
    v = fp_digits_value(w, l1)
    p = k + l1
    r.frac = 0
    if p < n and s[p] == 46:
        room = n - p - 1
        if room <= 0:
            return -1
        w = fp_word(s + p + 1, 8 if room >= 8 else room, room)
        l2 = fp_digit_run(w)
        if l2 == 0 or l2 == 8:
            return -1
        v = v * <uint64_t>_P10[l2] + fp_digits_value(w, l2)
        r.frac = l2
        p += 1 + l2
    return number_exp(s, n, k, p, v, r)


cdef Py_ssize_t number_exp(const uint8_t* s, Py_ssize_t n, Py_ssize_t k, Py_ssize_t p, uint64_t v,
                           Num* r) noexcept nogil:
    """``number_fast`` past its digits (``s[k:p]``, value ``v``, ``r.frac`` set): the
    exponent if any, then the number's end, or -1."""
    cdef Py_ssize_t q
    cdef int e
    r.exp = 0
    if p < n and (s[p] == 101 or s[p] == 69):
        q = p + 1
        if q < n and (s[q] == 43 or s[q] == 45):
            q += 1
        if q >= n or <uint8_t>(s[q] - 48) > 9:
            return -1  # no exponent after all: number_scan ends the number before the e
        e = s[q] - 48
        q += 1
        if q < n and <uint8_t>(s[q] - 48) <= 9:
            e = e * 10 + (s[q] - 48)
            q += 1
            if q < n and <uint8_t>(s[q] - 48) <= 9:
                return -1
        if s[p + 1] == 45:
            e = -e
        if q - k > 16 or e - r.frac > 22 or e - r.frac < -22:
            return -1
        r.exp = e
        p = q
    r.kind = 1
    r.m = v
    r.neg = False
    r.slow = False
    return p


cdef inline double fast_value(const Num* r) noexcept nogil:
    """The value of a ``number_fast`` number: ``num_value`` without its checks (one IEEE
    operation on an exact m, exactly rounded)."""
    cdef int e = r.exp - r.frac
    if e == 0:
        return <double>r.m
    if e > 0:
        return <double>r.m * _POW10[e]
    return <double>r.m / _POW10[-e]


cdef inline Py_ssize_t value_scan(const uint8_t* s, Py_ssize_t n, Py_ssize_t k, Num* r, bint* raw) noexcept nogil:
    """The number at ``s[k:]``: ``number_fast`` (``raw``: its text is its bytes as logged),
    else ``number_scan``; its end (``r.kind`` 0: none)."""
    cdef Py_ssize_t vend = number_fast(s, n, k, r)
    raw[0] = vend >= 0
    if vend < 0:
        vend = number_scan(s, n, k, r)
    return vend


cdef inline bint value_of(const uint8_t* s, const Num* r, Py_ssize_t k, Py_ssize_t vend, bint raw,
                          char* text, Py_ssize_t* tl, double* v) noexcept nogil:
    """The JSON text (``text``, unless raw) and length, and the value of the number
    ``s[k:vend]``; False when the value is not finite (only ``strtod`` can overflow:
    ``num.slow`` or a large exponent)."""
    if raw:
        tl[0] = vend - k
        v[0] = fast_value(r)
        return True
    tl[0] = num_text(s, r, vend, text)
    v[0] = num_value(r, text, tl[0])
    if r.slow or r.exp - r.frac > 22 or r.exp - r.frac < -22:
        return isfinite(v[0])
    return True


cdef inline void put_short(char* d, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """``memcpy(d, s, n)`` for 1 <= n <= 16 with two overlapping moves (no libc call and
    no read past ``s[n - 1]``)."""
    if n >= 8:
        memcpy(d, s, 8)
        memcpy(d + n - 8, s + n - 8, 8)
    elif n >= 4:
        memcpy(d, s, 4)
        memcpy(d + n - 4, s + n - 4, 4)
    else:
        d[0] = <char>s[0]
        d[n >> 1] = <char>s[n >> 1]
        d[n - 1] = <char>s[n - 1]


cdef inline Py_ssize_t num_text(const uint8_t* s, const Num* r, Py_ssize_t end, char* out) noexcept nogil:
    """``_metrics.number_text`` from the scan: sign, integer digits (or 0), the fraction when it
    has digits, the exponent as logged. ``out``: room for the raw length + 2."""
    cdef Py_ssize_t o = 0, i
    if r.neg:
        out[0] = b'-'
        o = 1
    if r.ia == r.ib:
        out[o] = b'0'
        o += 1
    else:
        for i in range(r.ia, r.ib):
            out[o] = <char>s[i]
            o += 1
    if r.fb > r.fa:
        out[o] = b'.'
        o += 1
        for i in range(r.fa, r.fb):
            out[o] = <char>s[i]
            o += 1
    for i in range(r.ea, end):
        out[o] = <char>s[i]
        o += 1
    return o


cdef inline double num_value(const Num* r, char* text, Py_ssize_t tl) noexcept nogil:
    """``float`` of the scanned number (``text[:tl]`` its text, room for a NUL after):
    m * 10**e in one IEEE operation when m < 10**15 and |e| <= 22 (then exactly rounded,
    as ``strtod`` and Python are), else ``strtod`` of the text."""
    cdef int e
    cdef double v
    if r.slow:
        text[tl] = 0
        return strtod(text, NULL)
    e = r.exp - r.frac
    if e > 22 or e < -22:
        text[tl] = 0
        return strtod(text, NULL)
    v = <double>r.m
    if e >= 0:
        v = v * _POW10[e]
    else:
        v = v / _POW10[-e]
    return -v if r.neg else v


cdef enum:
    _KEYS = 32  # the key cache of a parser: logged key -> metric name, direct-mapped

cdef struct KeyEntry:
    uint64_t word  # a key of at most 8 bytes: them (fp_word); else its FNV hash
    uint32_t hash
    int16_t rawlen  # -1: empty
    int16_t nl  # -1: not a metric
    int16_t id  # -1: not known yet
    bint nan  # a loss or gradient norm
    uint64_t nw0, nw1  # the name's first 16 bytes, zero above its length (the dup check)
    char raw[_MAX_KEY]
    char name[96]



cdef enum:
    _SHAPES = 4  # metric-line shapes a parser keeps (``_metrics_shape``), by the message's first bytes
    _SH_ENTS = 16  # candidates with a number in one shape
    _SH_TEXT = 384  # bytes of its gaps, keys and tail
    _SH_FRAG = 640  # bytes of its fragment heads

cdef struct ShEnt:
    uint16_t ta, tn  # the bytes from the previous value's end to this value: text[ta:ta + tn],
    uint16_t kn  # the last kn of them its key and separator, the rest the gap before it
    bint exact  # the gap has a nan/inf candidate: its digits may not differ either
    int16_t id  # the metric written (its fragment head frag[fa:fa + fn]); -1: none (not a
                # metric, or a repeat of a name written or seen before in the line)
    uint16_t fa, fn

cdef struct Shape:
    int n  # entries; -1: empty
    int nw  # entries written
    uint16_t tail_a, tail_n  # the bytes after the last value: text[tail_a:tail_a + tail_n]
    bint tail_exact
    uint16_t fraglen
    bint nan
    ShEnt e[_SH_ENTS]
    char text[_SH_TEXT + 16]
    char frag[_SH_FRAG + 48]


cdef inline bint eq_text(const uint8_t* a, const char* b, Py_ssize_t n) noexcept nogil:
    """``a[:n] == b[:n]``, up to 16 bytes in two overlapping word compares (``fp_eq16``)."""
    if n > 16:
        return memcmp(a, b, n) == 0
    return fp_eq16(a, b, n)


cdef inline bint nan_name(const NameList* l, const char* s, Py_ssize_t n) noexcept nogil:
    return in_list(l, s, n)


cdef inline int level_code(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """``_common.level_code``."""
    cdef char low[8]
    cdef Py_ssize_t i
    if n == 0:
        return 0
    if n > 8:
        return 7
    for i in range(n):
        low[i] = <char>_LOW[s[i]]
    if n == 5 and memcmp(low, b"trace", 5) == 0:
        return 1
    if n == 5 and memcmp(low, b"debug", 5) == 0:
        return 2
    if n == 4 and memcmp(low, b"info", 4) == 0:
        return 3
    if (n == 7 and memcmp(low, b"warning", 7) == 0) or (n == 4 and memcmp(low, b"warn", 4) == 0):
        return 4
    if n == 5 and memcmp(low, b"error", 5) == 0:
        return 5
    if (n == 8 and memcmp(low, b"critical", 8) == 0) or (n == 5 and memcmp(low, b"fatal", 5) == 0):
        return 6
    return 7


def _name_list(keep, names):
    """(blob, starts, n) of a list of bytes, the blob and offsets kept alive by ``keep``."""
    blob = b"".join(names) + b"\0"
    keep.append(blob)
    starts = [0]
    for x in names:
        starts.append(starts[len(starts) - 1] + len(x))
    return blob, starts, len(names)


cdef enum:
    _TG = 4  # time caches (candidates past the fourth share them)

cdef struct TimeCache:
    char key[32]
    Py_ssize_t n  # -1: empty
    int64_t ms, read
    bint ok


@cython.final  # no subclass: its cdef methods are called directly, not through a vtable
cdef class Parser:
    """Turns appended log bytes into ``_bulk`` items. See the package docstring."""

    cdef object _frags_obj  # Fragments: keeps the bytes the Frag pointers point into
    cdef object _time
    cdef object _times  # the (index, timestamp) tuple the heads were made for
    cdef list _heads_obj, _fkeep  # padded copies the fragments point into
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
    cdef object _py  # formats not compiled here: the twin does them (json, logfmt)
    # program formats
    cdef int _kind
    cdef list _keep  # bytes the pointers below point into
    cdef Prog _progs[_MAX_PROGS]
    cdef int _nprogs, _maxops, _nslots, _msg_slot, _nlog, _ntop, _ncand
    cdef bint _untagged_miss
    cdef Frag* _plan_pre  # log plan then top plan
    cdef const int* _plan_slot
    cdef const int* _plan_kind
    cdef Frag _log_suffix, _top_suffix
    cdef const int* _cand_off
    cdef const int* _cand_slots
    cdef Py_ssize_t _plan_fixed
    cdef Zone _zone
    cdef int64_t _read_ms
    cdef char _tc_key[24]  # the time of the last ``YYYY-mm-dd HH:MM:SS,`` seen (see _time_of)
    cdef int64_t _tc_ms, _tc_read
    cdef char _ts_buf[24]  # put_ts of the second _ts_sec (see _put_ts)
    cdef int64_t _ts_sec
    cdef bint _tc_ok, _tc_valid
    cdef TimeCache _tg[_TG]  # per time candidate, the last time text and its result (_time_of)
    cdef Py_ssize_t* _caps
    cdef Py_ssize_t* _vals
    # the compiled layout (first program; NULL: none) and its straight writer's pieces
    cdef Layout* _lays[_MAX_PROGS]  # per program, NULL: not a layout
    cdef int _lev_plan  # the plan entry of the level word: written from _lev_frag (-1: none)
    cdef Frag _lev_frag[_NLEVELS]
    cdef uint8_t _lev_code[_NLEVELS]
    cdef int _cand1  # the slot of the only time candidate when it has one slot, else -1
    # the last value of one string field of the plan (the logger's name: it repeats) and
    # what it was written as (its prefix, quoted, escaped), with the tags escaping set
    cdef int _nm_plan
    cdef Py_ssize_t _nm_n, _nm_fn
    cdef int _nm_tags
    cdef char _nm_key[_NM_MAX]
    cdef char _nm_frag[_NM_FRAG]
    cdef list _h1_obj
    cdef Frag _h1, _h2, _h3, _h4, _h5, _h6  # constant runs of an event with its own time
    cdef uint8_t* _memo
    cdef Py_ssize_t _memo_cap
    cdef int64_t _gran, _idx_lo, _idx_hi  # the index's period: ms in [_idx_lo, _idx_hi)
    cdef list _idx_obj
    cdef Frag _idx, _action_open, _id_sep, _doc_open, _msg_key
    cdef bytes _idk_obj  # contract v2's per-generation key (empty: v1)
    cdef const uint8_t* _idk
    cdef Py_ssize_t _idk_n
    cdef shipper_idq _idq  # v2 ids left open in _out, to write (put_id)

    # multiline (built-in rules; start patterns go to the twin)
    cdef bint _mlon, _g_open, _g_trunc, _g_cut, _g_tb, _g_java, _g_incomplete
    cdef int64_t _ml_max_lines, _ml_max_bytes, _ml_timeout
    cdef Buf _g  # the open event's lines (each cut at max_line_bytes) joined with "\n"
    cdef const uint8_t* _g_p  # its only line, read in place in the feed's bytes (_open)
    cdef bint _g_inplace
    cdef Py_ssize_t _g_first  # bytes of its first line
    cdef int64_t _g_nlines, _g_blanks, _g_off, _g_length, _g_orig, _g_line, _g_ms, _g_last_ms
    cdef int _g_state, _g_state0
    cdef int64_t _nline, _start_line
    cdef list _gheads_obj
    cdef Frag _gaction_head, _gdoc_head  # heads for the open event's read time
    cdef int64_t _gheads_ms
    cdef const uint8_t* _cont_p  # the event being written: continuation lines, error fragment
    cdef Py_ssize_t _cont_n
    cdef Buf _err

    cdef int64_t _g_end  # the file offset after the open event's last line

    # terminal noise, error classes, metrics
    cdef object _an  # the twin's Analyzer: the tables (and the metric names list)
    cdef list _ckeep  # bytes the tables point into
    cdef int _progress
    cdef bint _mon, _trace
    cdef ClassTab _ct
    cdef NameList _known, _al_from, _al_to, _nanl
    cdef Frag* _cls_frag  # '"class":"<name>"}' per class
    cdef Py_ssize_t _cls_max
    cdef int _nan_cls, _other, _level_slot
    cdef Buf _cl  # a line cleaned of escapes
    cdef Buf _mfrag  # the event's ',"metrics":{...}'
    cdef Buf _seen  # names of the event's metrics so far, each after a 2-byte length
    cdef uint32_t* _seen_gen  # by metric id: the _gen of the event that has it (_metrics)
    cdef uint32_t _gen
    cdef Buf _names  # metric names by id, concatenated
    cdef int* _name_start
    cdef uint16_t* _name_slot  # open addressing: id + 1, 0 empty
    cdef int _nnames
    cdef KeyEntry* _keys
    cdef Shape* _shapes  # _SHAPES of them, allocated with the first metric line
    cdef uint32_t _shape_used[_SHAPES]  # _shape_clock when last matched or made
    cdef uint32_t _shape_clock
    cdef uint8_t _shape_hint[64]  # by the message's first bytes: the shape it last was
    cdef int _sh_miss, _sh_wait  # lines without a match in a row; lines left to skip

    # per-feed output
    cdef Buf _out
    cdef int64_t* _ends
    cdef int64_t* _offs
    cdef int64_t* _evt
    cdef uint8_t* _evl
    cdef uint8_t* _evc
    cdef uint32_t* _evb
    cdef Py_ssize_t _count, _items_cap
    cdef int64_t _lines
    cdef uint32_t* _mi
    cdef uint16_t* _mid
    cdef double* _mv
    cdef Py_ssize_t _mn, _mcap

    def __cinit__(self):
        self._cls_frag = NULL
        self._cl.data = NULL
        self._mfrag.data = NULL
        self._seen.data = NULL
        self._names.data = NULL
        self._name_start = NULL
        self._name_slot = NULL
        self._seen_gen = NULL
        self._evt = NULL
        self._evl = NULL
        self._evc = NULL
        self._evb = NULL
        self._mi = NULL
        self._mid = NULL
        self._mv = NULL
        self._keys = NULL
        self._shapes = NULL
        self._plan_pre = NULL
        self._caps = NULL
        self._vals = NULL
        memset(self._lays, 0, sizeof(self._lays))
        self._lev_plan = -1
        self._cand1 = -1
        self._nm_plan = -1
        self._nm_n = -1
        self._memo = NULL
        self._hold = NULL
        self._out.data = NULL
        self._g.data = NULL
        self._err.data = NULL
        self._gheads_ms = -1
        self._ts_sec = -1
        cdef int i
        for i in range(_TG):
            self._tg[i].n = -1
        self._ends = NULL
        self._offs = NULL

    def __init__(self, *, input_id, path, host_name, id_prefix, index_pattern,
                 start_offset=0, max_line_bytes=1048576, format="plain", timezone=None,
                 json_root=False, multiline="none", progress="last", metrics="auto",
                 error_classes=None, labels=None, predictions=None, id_key=None):
        check_args(input_id, path, host_name, id_prefix, index_pattern, start_offset,
                   max_line_bytes, timezone, id_key)
        self._idk_obj = id_key or b""
        self._idk = <const uint8_t*>PyBytes_AS_STRING(self._idk_obj)
        self._idk_n = PyBytes_GET_SIZE(self._idk_obj)
        labels = check_labels(labels)
        an = Analyzer(error_classes, metrics, predictions, progress)
        self._setup_analysis(an)
        f = Fragments(input_id=input_id, path=path, host_name=host_name, id_prefix=id_prefix,
                      labels=labels, id_key=id_key)
        self._frags_obj = f
        self._time = EventTime(index_pattern)
        self._times = None
        fkeep = self._fkeep = []
        self._action_tail = frag_of(fkeep, f.action_tail)
        self._log_head = frag_of(fkeep, f.log_head)
        self._original_length = frag_of(fkeep, f.original_length)
        self._doc_tail = frag_of(fkeep, f.doc_tail)
        self._doc_end = frag_of(fkeep, f.doc_end)
        cdef int i
        cdef Py_ssize_t tags_max = 0
        for i in range(16):
            self._tags[i] = frag_of(fkeep, f.tags[i])
            if self._tags[i].n > tags_max:
                tags_max = self._tags[i].n
        self._fixed = (self._action_tail.n + self._log_head.n + self._original_length.n
                       + self._doc_tail.n + self._doc_end.n + tags_max
                       + 22 + 20 + 20 + 2)  # id (16 hex or 22), offset, original length, 2 quotes
        self._max = max_line_bytes
        self._cap = self._max + 4
        self._offset = start_offset
        self._hold_len = 0
        self._skip = 0
        self._last_cr = False
        self._py = None
        self._kind = FMT_PLAIN
        fmt = compile_format(format)
        ml = parse_multiline(multiline)
        if ml is not None and ml.start is None and fmt.kind in (FMT_PLAIN, FMT_PROGRAM):
            self._mlon = True
            self._ml_max_lines = ml.max_lines
            self._ml_max_bytes = ml.max_bytes
            self._ml_timeout = ml.timeout_ms
            ml = None
        if ml is None and fmt.kind == FMT_PROGRAM:
            self._setup_program(fmt, timezone)
        elif ml is not None or fmt.kind != FMT_PLAIN:
            # json, logfmt and start patterns: the twin does them
            # json, logfmt and multiline grouping: the twin does them
            self._py = _pyparser.Parser(
                input_id=input_id, path=path, host_name=host_name, id_prefix=id_prefix,
                index_pattern=index_pattern, start_offset=start_offset,
                max_line_bytes=max_line_bytes, format=format, timezone=timezone,
                json_root=json_root, multiline=multiline, progress=progress, metrics=metrics,
                error_classes=error_classes, labels=labels, predictions=predictions, id_key=id_key)

    def _setup_program(self, fmt, timezone):
        cdef int i, k
        cdef Prog* pg
        keep = []
        
        if len(fmt.programs) > _MAX_PROGS or fmt.nslots > _MAX_SLOTS:
            raise ValueError("format: too many alternatives or captures")
        self._kind = FMT_PROGRAM
        self._nprogs = len(fmt.programs)
        self._maxops = 0
        for i, prog in enumerate(fmt.programs):
            pg = &self._progs[i]
            pg.ops = int_array(keep, [x for op in prog.ops for x in op])
            pg.nops = len(prog.ops)
            self._maxops = max(self._maxops, pg.nops)
            lits = b"".join(prog.lits) + b"\0"
            keep.append(lits)
            pg.lits = PyBytes_AS_STRING(lits)
            offs = []
            pos = 0
            for lit in prog.lits:
                offs.append(pos)
                pos += len(lit)
            pg.lit_off = int_array(keep, offs)
            pg.lit_len = int_array(keep, [len(x) for x in prog.lits])
            goff = [0]
            for g in prog.groups:
                goff.append(goff[len(goff) - 1] + len(g))
            pg.grp_off = int_array(keep, goff)
            pg.grp_slots = int_array(keep, [x for g in prog.groups for x in g])
        self._nslots = fmt.nslots
        self._msg_slot = fmt.message_slot
        self._level_slot = fmt.level_slot
        self._untagged_miss = fmt.untagged_miss
        plan = fmt.log_plan + fmt.top_plan
        self._nlog = len(fmt.log_plan)
        self._ntop = len(fmt.top_plan)
        self._plan_slot = int_array(keep, [x[1] for x in plan])
        self._plan_kind = int_array(keep, [x[2] for x in plan])
        self._plan_pre = <Frag*>malloc(sizeof(Frag) * (len(plan) + 1))
        if self._plan_pre == NULL:
            raise MemoryError()
        self._plan_fixed = 0
        for i, x in enumerate(plan):
            self._plan_pre[i] = frag_of(keep, x[0])
            self._plan_fixed += len(x[0]) + 24
        self._log_suffix = frag_of(keep, fmt.log_suffix)
        self._top_suffix = frag_of(keep, fmt.top_suffix)
        self._plan_fixed += len(fmt.log_suffix) + len(fmt.top_suffix)
        coff = [0]
        for c in fmt.time_candidates:
            coff.append(coff[len(coff) - 1] + len(c))
        self._ncand = len(fmt.time_candidates)
        self._cand_off = int_array(keep, coff)
        self._cand_slots = int_array(keep, [x for c in fmt.time_candidates for x in c])
        times, offsets = zone_table(timezone)
        keep.extend((times, offsets))
        self._zone.times = <const int64_t*>PyBytes_AS_STRING(times)
        self._zone.offs = <const int64_t*>PyBytes_AS_STRING(offsets)
        self._zone.n = len(times) // 8
        self._caps = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * 2 * (self._nslots + 1))
        self._vals = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * 2 * (self._nslots + 1))
        if self._caps == NULL or self._vals == NULL:
            raise MemoryError()
        self._gran = self._time.granularity
        self._idx_lo = 1  # none yet: an empty range
        self._idx_hi = 0
        f = self._frags_obj
        heads = (b'{"create":{"_index":"', f.id_sep, b'{"@timestamp":"', b'","message":')
        self._action_open = frag_of(keep, heads[0])
        self._id_sep = frag_of(keep, heads[1])
        self._doc_open = frag_of(keep, heads[2])
        self._msg_key = frag_of(keep, heads[3])
        self._h2 = frag_of(keep, f.action_tail + heads[2])
        self._h3 = frag_of(keep, heads[3] + b'"')
        self._h4 = frag_of(keep, b'"' + f.log_head)
        self._h5 = frag_of(keep, fmt.log_suffix + f.doc_tail)
        self._h6 = frag_of(keep, fmt.top_suffix + f.doc_end)
        if len(fmt.time_candidates) == 1 and len(fmt.time_candidates[0]) == 1:
            self._cand1 = fmt.time_candidates[0][0]
        self._setup_layout(fmt, plan, keep)
        self._keep = keep

    def _setup_layout(self, fmt, plan, keep):
        """Each program as a ``Layout`` when it is one (see ``lay_match``); the level words'
        fragments when the level is captured as a word."""
        cdef int i
        any_level = False
        for i, prog in enumerate(fmt.programs):
            steps = self._layout_steps(prog, fmt.level_slot)
            if steps is None:
                continue
            self._lays[i] = self._make_layout(steps, fmt.nslots, keep)
            any_level = any_level or any(x[0] == _LS_LEVEL for x in steps)
        lev_slot = fmt.level_slot if any_level else -1
        for i, x in enumerate(plan):
            if x[2] == KIND_STR and x[1] != lev_slot and len(x[0]) <= 64 - 2:
                self._nm_plan = i
                break
        if lev_slot >= 0:
            for i, x in enumerate(plan):
                if x[1] == lev_slot and x[2] == KIND_STR:
                    self._lev_plan = i
            if self._lev_plan >= 0:
                for i, word in enumerate(LEVEL_WORDS):
                    self._lev_frag[i] = frag_of(keep, plan[self._lev_plan][0] + b'"' + word + b'"')
                    self._lev_code[i] = level_code(<const uint8_t*>PyBytes_AS_STRING(word), len(word))

    @staticmethod
    def _layout_steps(prog, level_slot):
        """(kind, slot, next op, literal) per op of ``prog``, or None: not a layout."""
        ops = prog.ops
        steps = []
        seen = set()
        for i, (op, a, b) in enumerate(ops):
            if op == OP_LIT:
                steps.append((_LS_LIT, 0, 0, prog.lits[a]))
            elif op == OP_WS:
                steps.append((_LS_WS, 0, 0, b""))
            elif op == OP_END:
                steps.append((_LS_END, 0, 0, b""))
            elif op == OP_CAP and a not in seen:
                seen.add(a)
                nk = ops[i + 1][0]
                if b == MODE_LEVEL and a == level_slot:
                    steps.append((_LS_LEVEL, a, 0, b""))
                elif b in (MODE_TIME, MODE_LAZY) and nk in (OP_END, OP_LIT, OP_WS):
                    lit = prog.lits[ops[i + 1][1]] if nk == OP_LIT else b""
                    steps.append((_LS_TIME if b == MODE_TIME else _LS_LAZY, a, nk, lit))
                else:
                    return None
            else:  # optional groups, a capture twice
                return None
        if len(steps) > _MAX_LAY or steps[len(steps) - 1][0] != _LS_END:
            return None
        return steps

    cdef Layout* _make_layout(self, steps, int nslots, list keep) except NULL:
        cdef Layout* lay = <Layout*>calloc(1, sizeof(Layout) + len(steps) * sizeof(LayStep)
                                           + nslots * sizeof(int))
        cdef int i
        if lay == NULL:
            raise MemoryError()
        lay.steps = <LayStep*>(lay + 1)
        lay.absent = <int*>(lay.steps + len(steps))
        seen = set()
        for i, (kind, slot, nk, lit) in enumerate(steps):
            lay.steps[i].kind = kind
            lay.steps[i].slot = slot
            lay.steps[i].nk = nk
            keep.append(lit)
            lay.steps[i].lit = PyBytes_AS_STRING(lit)
            lay.steps[i].ln = len(lit)
            lay.steps[i].wsb = kind == _LS_LIT and i > 0 and steps[i - 1][0] == _LS_WS
            lay.steps[i].wsa = kind == _LS_LIT and steps[i + 1][0] == _LS_WS
            if kind >= _LS_TIME:
                seen.add(slot)
        lay.nabsent = 0
        for i in range(nslots):
            if i not in seen:
                lay.absent[lay.nabsent] = i
                lay.nabsent += 1
        return lay

    cdef int _set_index(self, int64_t ms) noexcept:
        try:
            self._idx_obj = []
            idx = self._time.index_for(ms)
            self._idx = frag_of(self._idx_obj, idx)
            self._h1 = frag_of(self._idx_obj, b'{"create":{"_index":"' + idx + self._frags_obj.id_sep)
            self._idx_lo = (ms // self._gran) * self._gran
            self._idx_hi = self._idx_lo + self._gran
            return 0
        except BaseException:
            return -1

    cdef int64_t _time_of(self, const uint8_t* t, Py_ssize_t n, int c, bint* ok) noexcept nogil:
        """``parse_time`` of ``t[:n]``; ``_pyparser.Parser._time_of``: a ``YYYY-mm-dd
        HH:MM:SS,mmm`` time is its second's time (cached) plus the milliseconds."""
        if n == 23 and self._tc_valid and self._tc_read == self._read_ms and memcmp(self._tc_key, t, 20) == 0 \
                and is_digit(t[20]) and is_digit(t[21]) and is_digit(t[22]):
            # the last second's text again: its shape is the key's (kept only when it had it)
            ok[0] = self._tc_ok
            if not self._tc_ok:
                return 0
            return self._tc_ms + (t[20] - 48) * 100 + (t[21] - 48) * 10 + (t[22] - 48)
        if n == 23 and iso_ms_shape(t):
            if not (self._tc_valid and self._tc_read == self._read_ms and memcmp(self._tc_key, t, 20) == 0):
                memcpy(self._tc_key, t, 20)
                memcpy(self._tc_key + 20, b"000", 3)
                self._tc_ms = parse_time(<const uint8_t*>self._tc_key, 23, &self._zone, self._read_ms,
                                         &self._tc_ok)
                self._tc_read = self._read_ms
                self._tc_valid = True
            ok[0] = self._tc_ok
            if not self._tc_ok:
                return 0
            return self._tc_ms + (t[20] - 48) * 100 + (t[21] - 48) * 10 + (t[22] - 48)
        if n > 32:
            return parse_time(t, n, &self._zone, self._read_ms, ok)
        # any other time: per time candidate ``c``, the last text and its result (the
        # lines of one second repeat it; a candidate that is no time fails again)
        cdef TimeCache* tc = &self._tg[c & (_TG - 1)]
        if not (tc.n == n and tc.read == self._read_ms and memcmp(tc.key, t, n) == 0):
            memcpy(tc.key, t, n)
            tc.n = n
            tc.read = self._read_ms
            tc.ms = parse_time(t, n, &self._zone, self._read_ms, &tc.ok)
        ok[0] = tc.ok
        return tc.ms

    cdef int _put_value(self, const uint8_t* s, int slot, int kind, int* tags) noexcept nogil:
        cdef Buf* b = &self._out
        cdef Py_ssize_t a = self._vals[2 * slot], e = self._vals[2 * slot + 1], i
        cdef uint64_t v = 0
        if a < 0:
            buf_put(b, "null", 4)
            return 0
        if kind == 1:
            if e == a or e - a > 18:
                buf_put(b, "null", 4)
                return 0
            for i in range(a, e):
                if not is_digit(s[i]):
                    buf_put(b, "null", 4)
                    return 0
                v = v * 10 + s[i] - 48
            b.len += put_dec(b.data + b.len, v)
            return 0
        b.data[b.len] = b'"'
        b.len += 1
        b.len += escape_msg(s + a, e - a, b.data + b.len, tags)
        b.data[b.len] = b'"'
        b.len += 1
        return 0

    cdef inline void _put_plan(self, const uint8_t* s, int lo, int hi, int lev, int* tags) noexcept nogil:
        """Plan entries ``lo`` to ``hi``: the ``log.*`` ones, then (after the error and metric
        fields) the top-level captures; the level word (index ``lev``) from its fragment."""
        cdef Buf* b = &self._out
        cdef int i
        for i in range(lo, hi):
            if i == self._lev_plan and lev >= 0:
                put_f(b, self._lev_frag[lev])
            elif i == self._nm_plan:
                self._put_name(s, i, tags)
            else:
                put_f(b, self._plan_pre[i])
                self._put_value(s, self._plan_slot[i], self._plan_kind[i], tags)

    cdef inline void _put_name(self, const uint8_t* s, int i, int* tags) noexcept nogil:
        """Plan entry ``i`` (``_nm_plan``, a string): from ``_nm_frag`` when its value is the
        last one's, else as ``_put_value`` writes it (then kept when short)."""
        cdef Buf* b = &self._out
        cdef int slot = self._plan_slot[i]
        cdef Py_ssize_t a = self._vals[2 * slot], n = self._vals[2 * slot + 1] - a, o
        cdef int t = 0
        if a >= 0 and n == self._nm_n and memcmp(s + a, self._nm_key, n) == 0:
            put_blocks(b, self._nm_frag, self._nm_fn)
            tags[0] |= self._nm_tags
            return
        o = b.len
        put_f(b, self._plan_pre[i])
        self._put_value(s, slot, self._plan_kind[i], &t)
        tags[0] |= t
        if a >= 0 and n <= _NM_MAX:
            memcpy(self._nm_key, s + a, n)
            self._nm_n = n
            self._nm_fn = b.len - o
            memcpy(self._nm_frag, b.data + o, self._nm_fn)
            self._nm_tags = t

    cdef int _prog_event(self, const uint8_t* s, Py_ssize_t n, int64_t length, int64_t off,
                         int tags, int64_t nbytes) noexcept nogil:
        """Write the event of a line a program matches: 0; no program matches: 1; -1: no memory."""
        cdef Matcher st
        cdef int i, r = 0, slot, c, lev = -1
        cdef const Layout* lay
        cdef bint memo_ok
        cdef Py_ssize_t need, a, e, tot
        cdef uint8_t* p
        cdef char tbuf[256]
        cdef bint ok = False
        cdef int64_t ms = 0
        cdef Buf* b = &self._out
        if n > MAX_MATCH_C:
            return 1
        memo_ok = False
        for i in range(self._nprogs):
            r = 0
            lay = self._lays[i]
            if lay != NULL:
                if lay_match(lay, s, n, self._vals, &lev):
                    r = 2
                    break
                lev = -1
                if not lay_possible(lay, s, n):
                    continue
            if not memo_ok:
                need = (self._maxops * (n + 1) + 7) >> 3
                if need > self._memo_cap:
                    p = <uint8_t*>realloc(self._memo, need)
                    if p == NULL:
                        return -1
                    self._memo = p
                    self._memo_cap = need
                st.s = s
                st.n = n
                st.caps = self._caps
                st.width = n + 1
                memo_ok = True
            st.pg = &self._progs[i]
            if lay == NULL:  # (a layout's m_first path is lay_match's)
                for slot in range(2 * self._nslots):
                    self._caps[slot] = -1
                r = m_first(&st)
                if r == 1:
                    break
            st.memo = self._memo
            st.steps = MATCH_BUDGET_C
            memset(self._memo, 0, (st.pg.nops * (n + 1) + 7) >> 3)
            for slot in range(2 * self._nslots):
                self._caps[slot] = -1
            r = m_step(&st, 0, 0)
            if r == 1:
                break
        if r == 1:
            for slot in range(self._nslots):
                a = self._caps[2 * slot]
                if a < 0:
                    self._vals[2 * slot] = -1
                    continue
                e = self._caps[2 * slot + 1]
                while a < e and is_ws(s[a]):
                    a += 1
                while e > a and is_ws(s[e - 1]):
                    e -= 1
                self._vals[2 * slot] = a
                self._vals[2 * slot + 1] = e
        elif r != 2:
            return 1
        if self._cand1 >= 0:
            a = self._vals[2 * self._cand1]
            if a >= 0 and self._vals[2 * self._cand1 + 1] - a <= 255:
                ms = self._time_of(s + a, self._vals[2 * self._cand1 + 1] - a, 0, &ok)
        else:
            for c in range(self._ncand):
                if self._cand_off[c + 1] - self._cand_off[c] == 1:  # one capture: read in place
                    slot = self._cand_slots[self._cand_off[c]]
                    a = self._vals[2 * slot]
                    if a < 0 or self._vals[2 * slot + 1] - a > 255:
                        continue
                    ms = self._time_of(s + a, self._vals[2 * slot + 1] - a, c, &ok)
                    if ok:
                        break
                    continue
                tot = 0
                for i in range(self._cand_off[c], self._cand_off[c + 1]):
                    slot = self._cand_slots[i]
                    a = self._vals[2 * slot]
                    if a < 0:
                        tot = -1
                        break
                    e = self._vals[2 * slot + 1]
                    if tot:
                        if tot >= 256:
                            tot = 999
                            break
                        tbuf[tot] = b' '
                        tot += 1
                    if tot + e - a > 255:
                        tot = 999
                        break
                    memcpy(tbuf + tot, s + a, e - a)
                    tot += e - a
                if tot < 0:
                    continue
                if tot > 255:
                    continue
                ms = self._time_of(<const uint8_t*>tbuf, tot, c, &ok)
                if ok:
                    break
        if ok and not (self._idx_lo <= ms < self._idx_hi):  # a new period (no division a line)
            with gil:
                if self._set_index(ms) < 0:
                    return -1
        cdef int level = 0, ev_class
        if lev >= 0 and self._lev_plan >= 0:
            level = self._lev_code[lev]
        elif self._level_slot >= 0 and self._vals[2 * self._level_slot] >= 0:
            a = self._vals[2 * self._level_slot]
            level = level_code(s + a, self._vals[2 * self._level_slot + 1] - a)
        if self._msg_slot >= 0:
            a = self._vals[2 * self._msg_slot]
            if a >= 0:
                ev_class = self._analyze(s + a, self._vals[2 * self._msg_slot + 1] - a, level)
            else:
                ev_class = self._analyze(s, 0, level)
        else:
            ev_class = self._analyze(s, n, level)
        if ev_class < 0:
            return -1
        if self._room(self._fixed + self._action_head.n + self._doc_head.n + self._idx.n + 96
                      + 18 * n + self._plan_fixed + 6 * self._cont_n + self._err.len
                      + self._cls_max + self._mfrag.len + 12 + 2 * _PAD) < 0:
            return -1
        if self._reserve_items() < 0:
            return -1
        self._offs[self._count] = off
        # the event as in _event, its constant runs merged (_h1 ... _h6)
        if ok:
            put_f(b, self._h1)
            b.len += put_id(&self._idq, b.data, b.len, self._idk, self._idk_n, <uint64_t>off)
            put_f(b, self._h2)
            b.len += self._put_ts(b.data + b.len, ms)
            put_f(b, self._h3)
        else:
            put_f(b, self._action_head)
            b.len += put_id(&self._idq, b.data, b.len, self._idk, self._idk_n, <uint64_t>off)
            put_f(b, self._action_tail)
            put_f(b, self._doc_head)
            b.data[b.len] = b'"'
            b.len += 1
        if self._msg_slot >= 0:
            a = self._vals[2 * self._msg_slot]
            if a >= 0:
                b.len += escape_msg(s + a, self._vals[2 * self._msg_slot + 1] - a, b.data + b.len, &tags)
        else:
            b.len += escape_msg(s, n, b.data + b.len, &tags)
        if self._cont_n:
            b.len += escape_msg(self._cont_p, self._cont_n, b.data + b.len, &tags)
        put_f(b, self._h4)
        b.len += put_dec(b.data + b.len, <uint64_t>off)
        if length > self._max:
            put_f(b, self._original_length)
            b.len += put_dec(b.data + b.len, <uint64_t>length)
        self._put_plan(s, 0, self._nlog, lev, &tags)
        put_f(b, self._h5)
        self._put_error_metrics(b, ev_class)
        self._put_plan(s, self._nlog, self._nlog + self._ntop, lev, &tags)
        if tags:
            put_f(b, self._top_suffix)
            put_f(b, self._tags[tags])
            put_f(b, self._doc_end)
        else:
            put_f(b, self._h6)
        self._ends[self._count] = b.len
        self._push(ms if ok else self._read_ms, level, ev_class, nbytes)
        return 0

    def __dealloc__(self):
        cdef int k
        free(self._plan_pre)
        for k in range(_MAX_PROGS):
            free(self._lays[k])
        free(self._caps)
        free(self._vals)
        free(self._memo)
        free(self._hold)
        buf_free(&self._out)
        buf_free(&self._g)
        buf_free(&self._err)
        self._free_items()
        free(self._mi)
        free(self._mid)
        free(self._mv)
        free(self._cls_frag)
        free(self._keys)
        free(self._shapes)
        free(self._name_start)
        free(self._name_slot)
        free(self._seen_gen)
        buf_free(&self._cl)
        buf_free(&self._mfrag)
        buf_free(&self._seen)
        buf_free(&self._names)

    @property
    def metric_names(self):
        """See ``_pyparser.Parser.metric_names``."""
        if self._py is not None:
            return self._py.metric_names
        return tuple(self._an.metric_names)

    @property
    def error_classes(self):
        """See ``_pyparser.Parser.error_classes``."""
        return self._an.classes.names

    def _setup_analysis(self, an):
        """C copies of the twin's tables: keyword index (shared), metric names and aliases."""
        cdef int i
        keep = []
        self._an = an
        self._progress = an.progress
        self._mon = an.spec.on
        stride, bitmap, ent, first, kw, kw_start, kw_class = scan_tables(an.classes.keywords)
        keep.extend((bitmap, ent, first, kw, kw_start, kw_class))
        self._ct.stride = stride
        self._ct.bitmap = <const uint8_t*>PyBytes_AS_STRING(bitmap)
        self._ct.ent = <const int*>PyBytes_AS_STRING(ent)
        self._ct.nent = len(ent) // 12
        self._ct.first = <const uint16_t*>PyBytes_AS_STRING(first)
        self._ct.kw = <const uint8_t*>PyBytes_AS_STRING(kw)
        self._ct.kw_start = <const int*>PyBytes_AS_STRING(kw_start)
        self._ct.kw_class = <const int*>PyBytes_AS_STRING(kw_class)
        cdef NameList* lists[4]
        lists[0] = &self._known
        lists[1] = &self._al_from
        lists[2] = &self._al_to
        lists[3] = &self._nanl
        for i, names in enumerate((an.spec.known, [a for a, _ in an.spec.aliases],
                                   [b for _, b in an.spec.aliases], [n.encode() for n in NAN_LOSS])):
            blob, starts, n = _name_list(keep, names)
            lists[i].blob = PyBytes_AS_STRING(blob)
            lists[i].start = int_array(keep, starts)
            lists[i].n = n
        names = an.classes.names
        self._cls_frag = <Frag*>malloc(sizeof(Frag) * len(names))
        if self._cls_frag == NULL:
            raise MemoryError()
        self._cls_max = 0
        for i, name in enumerate(names):
            frag = b'"class":"' + name.encode() + b'"}'
            self._cls_frag[i] = frag_of(keep, frag)
            self._cls_max = max(self._cls_max, len(frag))
        self._nan_cls = an.nan_loss
        self._other = an.other
        self._level_slot = -1
        self._nnames = 0  # the name table is allocated with the first metric (8 KiB a parser)
        self._ckeep = keep

    cdef int _metric_id(self, const char* name, Py_ssize_t n, bint add=True) noexcept nogil:
        """The id of a metric name (a new one gets the next id unless ``add`` is false),
        -1: past MAX_NAMES (or not known and not added), -2: error."""
        cdef uint32_t h = 2166136261
        cdef Py_ssize_t i
        cdef int slot, id_
        if self._name_slot == NULL:
            if not add:
                return -1
            self._name_start = <int*>malloc(sizeof(int) * (_MAX_NAMES + 1))
            self._name_slot = <uint16_t*>calloc(_NAME_SLOTS, sizeof(uint16_t))
            self._seen_gen = <uint32_t*>calloc(_MAX_NAMES, sizeof(uint32_t))
            if self._name_start == NULL or self._name_slot == NULL or self._seen_gen == NULL:
                free(self._name_start)
                free(self._name_slot)
                free(self._seen_gen)
                self._name_start = NULL
                self._name_slot = NULL
                self._seen_gen = NULL
                return -2
            self._name_start[0] = 0
        for i in range(n):
            h = (h ^ <uint8_t>name[i]) * 16777619
        slot = h & (_NAME_SLOTS - 1)
        while self._name_slot[slot]:
            id_ = self._name_slot[slot] - 1
            if (self._name_start[id_ + 1] - self._name_start[id_] == n
                    and memcmp(self._names.data + self._name_start[id_], name, n) == 0):
                return id_
            slot = (slot + 1) & (_NAME_SLOTS - 1)
        if not add or self._nnames >= _MAX_NAMES:
            return -1
        if buf_reserve(&self._names, n) < 0:
            return -2
        buf_put(&self._names, name, n)
        id_ = self._nnames
        with gil:
            try:
                self._an.metric_names.append(PyBytes_FromStringAndSize(name, n).decode("ascii"))
            except BaseException:
                return -2
        self._nnames += 1
        self._name_start[self._nnames] = <int>self._names.len
        self._name_slot[slot] = <uint16_t>(id_ + 1)
        return id_

    cdef inline int _shape_key(self, const uint8_t* s, Py_ssize_t n) noexcept nogil:
        """The hint slot of a message: by its first four bytes (most messages of one layout
        begin with the same key)."""
        cdef uint32_t w
        if n < 4:
            return <int>n
        w = fp_le32(s)
        return <int>((w * <uint32_t>0x9E3779B1) >> 26)

    cdef inline int _shape_try(self, const uint8_t* s, Py_ssize_t n, int key, bint* nan) noexcept nogil:
        """``_metrics_shape`` with the kept shapes, the one the hint names first: 1 done
        (the shape and the hint noted), 0 none matched, -1 no memory."""
        cdef int j, q = self._shape_hint[key], r
        for j in range(-1, _SHAPES):
            if j >= 0:
                if j == self._shape_hint[key]:
                    continue
                q = j
            if self._shapes[q].n < 0:
                continue
            r = self._metrics_shape(&self._shapes[q], s, n, nan)
            if r != 0:
                if r > 0:
                    self._shape_clock += 1
                    self._shape_used[q] = self._shape_clock
                    self._shape_hint[key] = <uint8_t>q
                return r
        return 0

    cdef int _metrics(self, const uint8_t* s, Py_ssize_t n, bint* nan) noexcept nogil:
        """``Analyzer.metrics`` for ``s[:n]``: the fragment in ``_mfrag``, values in the m
        arrays (item ``_count``); ``nan`` set for a NaN/inf loss. -1: no memory.

        A message of the shape of an earlier one (``_metrics_shape``) is done from that
        shape; any other by the general pass below, which records the shape for the next.

        One pass: the next separator (``next_sep``), the key backwards from it, then the
        value's end, text and number from one scan of its bytes (``number_scan``)."""
        cdef Py_ssize_t i = 0, sep, k, ks, ke, k2, vend, nl, tl, o
        cdef KeyEntry* ent
        cdef char buf[_NAME_CAP + 32]
        cdef const char* name
        cdef char text[_MAX_NUMBER + 24]
        cdef Num num
        cdef double v
        cdef uint64_t w0, w1
        cdef bint isnan, raw
        cdef int id_, sid, r
        cdef Buf* f = &self._mfrag
        # the shape being recorded: per candidate with a number (kind 1), where its value
        # starts and ends and the metric written (-1: none); rn > _SH_ENTS: not kept
        cdef Py_ssize_t rks[_SH_ENTS]
        cdef Py_ssize_t rk2[_SH_ENTS]
        cdef Py_ssize_t rvend[_SH_ENTS]
        cdef int rid[_SH_ENTS]
        cdef int rn = 0
        cdef uint32_t rexact = 0  # bit j: gap j (before candidate j; rn: the tail) has a nan/inf
        cdef int key = -1
        # Lines whose shapes do not repeat (ids, paths of other lengths) would pay the
        # try and the keeping on every line: after 4 misses in a row, lines are let
        # through without either, 8, 16, ... 256 of them before the next try.
        if self._sh_wait:
            self._sh_wait -= 1
        else:
            key = self._shape_key(s, n)
            if FP_LIKELY(self._shapes != NULL):
                r = self._shape_try(s, n, key, nan)
                if r != 0:
                    if r > 0:
                        self._sh_miss = 0
                        return 0
                    return -1
            self._sh_miss += 1
            if self._sh_miss >= 4:
                self._sh_wait = 8 << (self._sh_miss - 4 if self._sh_miss < 9 else 5)
        self._seen.len = 0
        self._gen += 1  # a new event: every name's _seen_gen stamp is old
        if FP_UNLIKELY(self._gen == 0):
            if self._seen_gen != NULL:
                memset(self._seen_gen, 0, _MAX_NAMES * sizeof(uint32_t))
            self._gen = 1
        while i < n:
            sep = next_sep(s, i, n)
            if sep >= n:
                break
            k = sep
            while k > i and (s[k - 1] == 32 or s[k - 1] == 9):
                k -= 1
            if k > i and (s[k - 1] == 39 or s[k - 1] == 34):
                k -= 1
            ke = k
            ks = ke
            while ks > 0 and _KEYCH[s[ks - 1]]:
                ks -= 1
            if not (ks < ke and ks >= i and is_alpha(s[ks])):
                i = sep + 1
                continue
            k2 = sep + 1
            while k2 < n and (s[k2] == 32 or s[k2] == 9):
                k2 += 1
            vend = value_scan(s, n, k2, &num, &raw)
            if num.kind == 0:
                i = sep + 1
                continue
            i = vend
            if num.kind == 2:
                rexact |= (<uint32_t>1) << (rn if rn <= _SH_ENTS else _SH_ENTS)
            else:
                if rn < _SH_ENTS:
                    rks[rn] = ks
                    rk2[rn] = k2
                    rvend[rn] = vend
                    rid[rn] = -1
                rn += 1
            ent = self._key_hit(s + ks, ke - ks, n - ks)
            if ent == NULL:
                nl = metric_name(&self._known, &self._al_from, &self._al_to, s + ks, ke - ks, buf)
                if nl < 0:
                    continue
                name = buf
                isnan = in_list(&self._nanl, name, nl)
                w0 = fp_word(<const uint8_t*>buf, nl if nl < 8 else 8, 8)
                w1 = fp_word(<const uint8_t*>buf + 8, (nl - 8 if nl < 16 else 8) if nl > 8 else 0, 8)
            else:
                nl = ent.nl
                if nl < 0:
                    continue
                name = ent.name
                isnan = ent.nan
                w0 = ent.nw0
                w1 = ent.nw1
            # The event's names so far: a name with an id (its key's cache entry has it,
            # or the name table, through an alias or an older entry) is stamped with the
            # event's _gen in _seen_gen (one load); the list holds only names without an
            # id. A name gets an id only when its own value is written, stamped then.
            if ent != NULL and ent.id >= 0:
                sid = ent.id
            else:
                sid = self._metric_id(name, nl, False)
                if sid == -2:
                    return -1
            if sid >= 0:
                if self._seen_gen[sid] == self._gen:
                    continue
            elif self._seen_has(name, nl, w0, w1):
                continue
            if num.kind == 1 and vend - k2 > _MAX_NUMBER:
                rn = _SH_ENTS + 1  # its value decided: not a shape
                continue
            if sid >= 0:
                self._seen_gen[sid] = self._gen
            elif self._seen_add(name, nl, w0, w1) < 0:
                return -1
            if num.kind == 2:
                if isnan:
                    nan[0] = True
                continue
            if not value_of(s, &num, k2, vend, raw, text, &tl, &v):
                rn = _SH_ENTS + 1
                if isnan:
                    nan[0] = True
                continue
            if ent != NULL and ent.id >= 0:
                id_ = ent.id
            else:
                id_ = self._metric_id(name, nl)
                if id_ == -2:
                    return -1
                if id_ >= 0:
                    self._seen_gen[id_] = self._gen
                if ent != NULL and id_ >= 0:
                    ent.id = <int16_t>id_
            if id_ < 0:
                rn = _SH_ENTS + 1
                continue
            if rn <= _SH_ENTS:
                rid[rn - 1] = id_
            if buf_reserve(f, nl + 64 + 48) < 0 or self._reserve_metrics() < 0:
                return -1
            # fixed-size copies: the buffer has the slack, name and text have the room
            o = f.len
            if o == 0:
                memcpy(f.data, ',"metrics":{"', 13)
                o = 13
            else:
                memcpy(f.data + o, ',"', 2)
                o += 2
            if nl <= 32:
                memcpy(f.data + o, name, 32)
            else:
                memcpy(f.data + o, name, nl)
            o += nl
            memcpy(f.data + o, '":', 2)
            self._put_metric(f, o + 2, raw, s + k2, text, tl, id_, v)
        if f.len:
            if buf_reserve(f, 1 + _PAD) < 0:  # the slack: put_blocks copies it whole
                return -1
            f.data[f.len] = b'}'
            f.len += 1
        if rn <= _SH_ENTS and key >= 0:
            self._shape_make(s, n, key, rn, rks, rk2, rvend, rid, rexact, nan[0])
        return 0

    cdef void _shape_make(self, const uint8_t* s, Py_ssize_t n, int key, int rn, const Py_ssize_t* rks,
                          const Py_ssize_t* rk2, const Py_ssize_t* rvend, const int* rid, uint32_t rexact,
                          bint nan) noexcept nogil:
        """Keep the shape of the message ``s[:n]`` the general pass just did, in place of
        the least recently used one: per candidate with a number, the bytes before its
        value (gap, key, separator) and the metric written; the bytes after the last value;
        whether the line set ``nan`` (a nan/inf in those bytes)."""
        cdef Shape* sh
        cdef Py_ssize_t prev = 0, tn, fo = 0, nl, i
        cdef int j, id_, q = 0
        if self._shapes == NULL:
            self._shapes = <Shape*>malloc(sizeof(Shape) * _SHAPES)
            if self._shapes == NULL:
                return
            for j in range(_SHAPES):
                self._shapes[j].n = -1
                self._shape_used[j] = 0
        for j in range(1, _SHAPES):  # the least recently used
            if self._shape_used[j] < self._shape_used[q]:
                q = j
        self._shape_clock += 1
        self._shape_used[q] = self._shape_clock
        self._shape_hint[key] = <uint8_t>q
        sh = &self._shapes[q]
        sh.n = -1
        if n > _SH_TEXT:
            return
        sh.nw = 0
        for j in range(rn):
            tn = rk2[j] - prev
            sh.e[j].ta = <uint16_t>prev  # the text is the message's bytes, values left in
            sh.e[j].tn = <uint16_t>tn
            sh.e[j].kn = <uint16_t>(rk2[j] - rks[j])
            sh.e[j].exact = (rexact >> j) & 1
            id_ = rid[j]
            sh.e[j].id = <int16_t>id_
            if id_ >= 0:
                nl = self._name_start[id_ + 1] - self._name_start[id_]
                if fo + 13 + nl + 2 > _SH_FRAG:
                    return
                sh.e[j].fa = <uint16_t>fo
                if sh.nw == 0:
                    memcpy(sh.frag + fo, ',"metrics":{"', 13)
                    fo += 13
                else:
                    memcpy(sh.frag + fo, ',"', 2)
                    fo += 2
                memcpy(sh.frag + fo, self._names.data + self._name_start[id_], nl)
                fo += nl
                memcpy(sh.frag + fo, '":', 2)
                fo += 2
                sh.e[j].fn = <uint16_t>(fo - sh.e[j].fa)
                sh.nw += 1
            prev = rvend[j]
        sh.tail_a = <uint16_t>prev
        sh.tail_n = <uint16_t>(n - prev)
        sh.tail_exact = (rexact >> rn) & 1
        sh.fraglen = <uint16_t>fo
        sh.nan = nan
        memcpy(sh.text, s, n)
        sh.n = rn

    cdef int _metrics_shape(self, const Shape* sh, const uint8_t* s, Py_ssize_t n, bint* nan) noexcept nogil:
        """The general pass of ``_metrics`` for a message of the shape ``sh``: 1 done, 0 not
        of that shape (nothing written), -1 no memory.

        Of the shape: the bytes between the values (and after the last) are those of the
        line the shape was made from, and each value is a number again (kind 1). The
        general pass reads nothing else to decide: a candidate between two values reads
        only bytes up to the next value's key (a number stops at the separator; a key
        scanned backwards into a value is refused, as every value ends in a digit or '.',
        key bytes both); so it decides as it did for that line, and the names seen, the
        repeats and ``nan`` are the same. Only a written value's own checks depend on it
        (no longer than MAX_NUMBER, finite): when one fails, not of the shape.

        In a gap (not in a key), a digit may stand where the line had another digit (a
        time, an id: ``fp_eq_digits``): the pass decides by byte classes there (key
        bytes, separators, letters, digits), except for a nan/inf candidate, whose key
        it reads (then ``exact``)."""
        cdef Py_ssize_t p = 0, k2, vend, tl, o
        cdef Py_ssize_t mn0 = self._mn
        cdef const ShEnt* e
        cdef Buf* f = &self._mfrag
        cdef Num num
        cdef double v
        cdef bint raw
        cdef char text[_MAX_NUMBER + 24]
        cdef int j
        if buf_reserve(f, sh.fraglen + 48 * sh.nw + 48 + _PAD) < 0:
            return -1
        for j in range(sh.n):
            e = &sh.e[j]
            if p + e.tn > n:
                break
            if not eq_text(s + p, sh.text + e.ta, e.tn):
                if e.exact or not (fp_eq_digits(s + p, sh.text + e.ta, e.tn - e.kn) and
                                   eq_text(s + p + e.tn - e.kn, sh.text + e.ta + e.tn - e.kn, e.kn)):
                    break
            k2 = p + e.tn
            vend = value_scan(s, n, k2, &num, &raw)
            if num.kind != 1:
                break
            p = vend
            if e.id < 0:
                continue
            if vend - k2 > _MAX_NUMBER or not value_of(s, &num, k2, vend, raw, text, &tl, &v):
                break
            if self._reserve_metrics() < 0:
                f.len = 0
                self._mn = mn0
                return -1
            o = f.len
            if e.fn <= 32:
                memcpy(f.data + o, sh.frag + e.fa, 32)
            else:
                memcpy(f.data + o, sh.frag + e.fa, e.fn)
            self._put_metric(f, o + e.fn, raw, s + k2, text, tl, e.id, v)
        else:
            if n - p == sh.tail_n and (eq_text(s + p, sh.text + sh.tail_a, sh.tail_n) or (
                    not sh.tail_exact and fp_eq_digits(s + p, sh.text + sh.tail_a, sh.tail_n))):
                if f.len:
                    f.data[f.len] = b'}'
                    f.len += 1
                if sh.nan:
                    nan[0] = True
                return 1
        f.len = 0
        self._mn = mn0
        return 0

    cdef inline void _put_metric(self, Buf* f, Py_ssize_t o, bint raw, const uint8_t* logged, const char* text,
                                 Py_ssize_t tl, int id_, double v) noexcept nogil:
        """A metric's value after its head (the fragment up to ``o``), in fixed-size moves
        (the fragment has the slack), and its entry in the m arrays (room reserved)."""
        if raw:
            put_short(f.data + o, logged, tl)
        else:
            memcpy(f.data + o, text, 48)
        f.len = o + tl
        self._mi[self._mn] = <uint32_t>self._count
        self._mid[self._mn] = <uint16_t>id_
        self._mv[self._mn] = v
        self._mn += 1

    cdef inline bint _seen_has(self, const char* name, Py_ssize_t nl, uint64_t w0, uint64_t w1) noexcept nogil:
        """``name`` is already one of the event's metrics: records of (length, first 16
        bytes as two words, the rest), so most names compare in three word compares."""
        cdef Py_ssize_t q = 0, ln
        cdef const uint64_t* r
        while q < self._seen.len:
            r = <const uint64_t*>(self._seen.data + q)
            ln = <Py_ssize_t>r[0]
            if ln == nl and r[1] == w0 and r[2] == w1 and (
                    nl <= 16 or memcmp(self._seen.data + q + 24, name + 16, nl - 16) == 0):
                return True
            q += 24 + (((ln - 16 + 7) & ~7) if ln > 16 else 0)
        return False

    cdef int _seen_add(self, const char* name, Py_ssize_t nl, uint64_t w0, uint64_t w1) noexcept nogil:
        cdef Py_ssize_t rest = ((nl - 16 + 7) & ~7) if nl > 16 else 0
        cdef uint64_t* r
        if buf_reserve(&self._seen, 24 + rest) < 0:
            return -1
        r = <uint64_t*>(self._seen.data + self._seen.len)
        r[0] = <uint64_t>nl
        r[1] = w0
        r[2] = w1
        if rest:
            memcpy(self._seen.data + self._seen.len + 24, name + 16, nl - 16)
        self._seen.len += 24 + rest
        return 0

    cdef inline KeyEntry* _key_hit(self, const uint8_t* key, Py_ssize_t kn, Py_ssize_t room) noexcept nogil:
        """``_key_entry``, its common case inlined: a key of at most 8 bytes found by one
        masked word load and compare."""
        cdef uint64_t w
        cdef KeyEntry* e
        if FP_LIKELY(kn <= 8 and room >= 8 and self._keys != NULL):
            w = fp_word(key, kn, room)
            e = &self._keys[((w * <uint64_t>0x9E3779B97F4A7C15) >> 59) & (_KEYS - 1)]
            if FP_LIKELY(e.word == w and e.rawlen == kn):
                return e
        return self._key_entry(key, kn, room)

    cdef KeyEntry* _key_entry(self, const uint8_t* key, Py_ssize_t kn, Py_ssize_t room) noexcept nogil:
        """The cache entry of a logged key (filled on a miss), or NULL (no cache, key too
        long). A key of at most 8 bytes is found by one word compare (``room``: the bytes
        readable from ``key``), a longer one by its FNV hash and memcmp."""
        cdef uint32_t h = 2166136261
        cdef uint64_t w = 0
        cdef Py_ssize_t i
        cdef KeyEntry* e
        if kn > _MAX_KEY:
            return NULL
        if self._keys == NULL:
            self._keys = <KeyEntry*>malloc(sizeof(KeyEntry) * _KEYS)
            if self._keys == NULL:
                return NULL
            for i in range(_KEYS):
                self._keys[i].rawlen = -1
        if kn <= 8:
            w = fp_word(key, kn, room)
            e = &self._keys[((w * <uint64_t>0x9E3779B97F4A7C15) >> 59) & (_KEYS - 1)]
            if e.word == w and e.rawlen == kn:
                return e
            h = 0
        else:
            for i in range(kn):
                h = (h ^ key[i]) * 16777619
            e = &self._keys[(h ^ (h >> 16)) & (_KEYS - 1)]
            if e.hash == h and e.rawlen == kn and memcmp(e.raw, key, kn) == 0:
                return e
        cdef char name[_NAME_CAP + 1]
        cdef Py_ssize_t nl = metric_name(&self._known, &self._al_from, &self._al_to, key, kn, name)
        if nl > 96:
            return NULL
        e.hash = h
        e.word = w
        e.rawlen = <int16_t>kn
        memcpy(e.raw, key, kn)
        e.nl = <int16_t>nl
        e.id = -1
        e.nan = False
        memset(e.name, 0, 96)
        if nl >= 0:
            memcpy(e.name, name, nl)
            e.nan = in_list(&self._nanl, name, nl)
        e.nw0 = fp_word(<const uint8_t*>e.name, 8, 8)
        e.nw1 = fp_word(<const uint8_t*>e.name + 8, 8, 8)
        return e

    cdef int _reserve_metrics(self) noexcept nogil:
        cdef Py_ssize_t cap
        if FP_LIKELY(self._mn < self._mcap):
            return 0
        cap = self._mcap * 2 if self._mcap else 1024
        if (grow(<void**>&self._mi, cap * sizeof(uint32_t)) < 0 or grow(<void**>&self._mid, cap * sizeof(uint16_t)) < 0
                or grow(<void**>&self._mv, cap * sizeof(double)) < 0):
            return -1
        self._mcap = cap
        return 0

    cdef int _analyze(self, const uint8_t* s, Py_ssize_t n, int level) noexcept nogil:
        """Metrics and error class of the event being written (message ``s[:n]``, its
        continuation at ``_cont_p``): its ``ev_class`` (0: not an error event), -1: no memory."""
        cdef bint nan = False
        cdef int cls
        self._mfrag.len = 0
        if self._mon and self._metrics(s, n, &nan) < 0:
            return -1
        cls = class_scan(&self._ct, s, n, -1)
        if cls != 0 and self._cont_n:
            cls = class_scan(&self._ct, self._cont_p, self._cont_n, cls)
        if nan and (cls < 0 or self._nan_cls < cls):
            cls = self._nan_cls
        if cls >= 0 or self._trace or level >= 5:
            return (cls if cls >= 0 else self._other) + 1
        return 0

    cdef inline void _put_error_metrics(self, Buf* b, int ev_class) noexcept nogil:
        """``,"error":{...,"class":..}`` for an error event, then ``,"metrics":{...}``."""
        if ev_class:
            buf_put(b, ',"error":{', 10)
            if self._err.len:
                buf_put(b, self._err.data, self._err.len)
                b.data[b.len] = b','
                b.len += 1
            put_f(b, self._cls_frag[ev_class - 1])
        if self._mfrag.len:
            put_blocks(b, self._mfrag.data, self._mfrag.len)

    cdef inline Py_ssize_t _put_ts(self, char* out, int64_t ms) noexcept nogil:
        """``put_ts`` with the second's first 20 bytes cached: the lines of one second
        (most lines follow the one before within it) only add their milliseconds."""
        cdef int64_t sec = floordiv(ms, 1000), r
        if sec != self._ts_sec:
            put_ts(self._ts_buf, sec * 1000)
            self._ts_sec = sec
        r = ms - sec * 1000
        memcpy(out, self._ts_buf, 20)
        out[20] = <char>(48 + r // 100)
        put2(out + 21, r % 100)
        out[23] = b'Z'
        return 24

    cdef inline void _push(self, int64_t ms, int level, int ev_class, int64_t nbytes) noexcept nogil:
        """The event's entries in the per-event arrays; the item is complete."""
        self._evt[self._count] = ms
        self._evl[self._count] = <uint8_t>level
        self._evc[self._count] = <uint8_t>ev_class
        if nbytes > _MAX_U32:  # 'I': a line of 4 GiB or more counts as 4 GiB - 1
            nbytes = _MAX_U32
        self._evb[self._count] = <uint32_t>nbytes
        self._count += 1

    @property
    def offset(self):
        if self._py is not None:
            return self._py.offset
        return self._g_off if self._g_open else self._offset

    @property
    def pending(self):
        if self._py is not None:
            return self._py.pending
        return self._offset - (self._g_off if self._g_open else self._offset) + self._hold_len + self._skip

    cdef inline void _msg_tail(self, Buf* b, int64_t off, int64_t length, int* tags) noexcept nogil:
        """The rest of `message` (a multiline event's continuation lines), its closing quote,
        and `log` up to the offset and original length: the same for every format."""
        if self._cont_n:
            b.len += escape_msg(self._cont_p, self._cont_n, b.data + b.len, tags)
        b.data[b.len] = b'"'
        b.len += 1
        put_f(b, self._log_head)
        b.len += put_dec(b.data + b.len, <uint64_t>off)
        if length > self._max:
            put_f(b, self._original_length)
            b.len += put_dec(b.data + b.len, <uint64_t>length)

    cdef inline int64_t _mark(self) noexcept nogil:
        return self._g_line if self._g_open else self._nline

    # -- per feed -------------------------------------------------------------------

    cdef _prepare(self, read_time_ms):
        self._read_ms = read_time_ms
        times = self._time.get(read_time_ms)
        if times is self._times:
            return
        ah, dh = self._frags_obj.heads(*times)
        self._heads_obj = []
        self._action_head = frag_of(self._heads_obj, ah)
        self._doc_head = frag_of(self._heads_obj, dh)
        self._times = times

    cdef _prepare_group(self, read_time_ms):
        """Heads for the open event's read time (when another feed brought it), then for this one."""
        if self._g_open and self._g_ms != read_time_ms and self._gheads_ms != self._g_ms:
            ah, dh = self._frags_obj.heads(*self._time.get(self._g_ms))
            self._gheads_obj = []
            self._gaction_head = frag_of(self._gheads_obj, ah)
            self._gdoc_head = frag_of(self._gheads_obj, dh)
            self._gheads_ms = self._g_ms
        self._prepare(read_time_ms)

    cdef int _reserve_items(self) noexcept nogil:
        cdef Py_ssize_t cap
        if FP_LIKELY(self._count < self._items_cap):
            return 0
        cap = self._items_cap * 2 if self._items_cap else 4096
        if (grow(<void**>&self._ends, cap * sizeof(int64_t)) < 0 or grow(<void**>&self._offs, cap * sizeof(int64_t)) < 0
                or grow(<void**>&self._evt, cap * sizeof(int64_t)) < 0 or grow(<void**>&self._evl, cap) < 0
                or grow(<void**>&self._evc, cap) < 0 or grow(<void**>&self._evb, cap * sizeof(uint32_t)) < 0):
            return -1
        self._items_cap = cap
        return 0

    cdef void _free_items(self) noexcept nogil:
        """Give back the per-item arrays (grown large by a big feed, or at the end)."""
        free(self._ends)
        free(self._offs)
        free(self._evt)
        free(self._evl)
        free(self._evc)
        free(self._evb)
        self._ends = NULL
        self._offs = NULL
        self._evt = NULL
        self._evl = NULL
        self._evc = NULL
        self._evb = NULL
        self._items_cap = 0

    cdef int _line_event(self, const uint8_t* s, Py_ssize_t avail, int64_t length, int64_t off,
                         int tags, int64_t nbytes, bint noisy) noexcept nogil:
        """A line outside multiline: cleaned of terminal noise (its first max+4 bytes when
        longer than max_line_bytes; ``noisy`` False: the line has no CR or ESC, nothing to
        clean), then ``_event``; nothing when dropped or empty."""
        cdef const uint8_t* c = s
        cdef Py_ssize_t n = avail if length <= self._max or avail <= self._cap else self._cap
        if noisy:
            n = clean_line(s, n, self._progress, &self._cl, &c)
        if n == -1:
            return -1
        if n <= 0:
            return 0
        return self._event(c, n, length, off, tags, nbytes)

    cdef int _event(self, const uint8_t* s, Py_ssize_t avail, int64_t length, int64_t off,
                    int tags, int64_t nbytes) noexcept nogil:
        """Append one event. ``s[:avail]`` is the line or, when it is longer than held,
        its head (then ``avail`` >= max+3); ``length`` is the line's full length."""
        cdef Py_ssize_t n = avail
        cdef Buf* b = &self._out
        cdef int r
        if length > self._max:
            if avail > self._max:
                n = cut_point(s, avail, self._max)
            tags |= _TRUNCATED
        if self._kind == 1:
            r = self._prog_event(s, n, length, off, tags, nbytes)
            if r <= 0:
                return r
            if not self._untagged_miss:
                tags |= _PARSE_ERROR
        cdef int ev_class = self._analyze(s, n, 0)
        if ev_class < 0:
            return -1
        if self._room(self._fixed + self._action_head.n + self._doc_head.n + 6 * n
                      + 6 * self._cont_n + self._err.len + self._cls_max + self._mfrag.len + 12
                      + 2 * _PAD) < 0:
            return -1
        if self._reserve_items() < 0:
            return -1
        self._offs[self._count] = off
        put_f(b, self._action_head)
        b.len += put_id(&self._idq, b.data, b.len, self._idk, self._idk_n, <uint64_t>off)
        put_f(b, self._action_tail)
        put_f(b, self._doc_head)
        b.data[b.len] = b'"'
        b.len += 1
        b.len += escape_msg(s, n, b.data + b.len, &tags)
        self._msg_tail(b, off, length, &tags)
        put_f(b, self._doc_tail)
        self._put_error_metrics(b, ev_class)
        if tags:
            put_f(b, self._tags[tags])
        put_f(b, self._doc_end)
        self._ends[self._count] = b.len
        self._push(self._read_ms, 0, ev_class, nbytes)
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

    # -- multiline --------------------------------------------------------------------

    cdef int _err_part(self, const char* key, Py_ssize_t kn, const uint8_t* s, Py_ssize_t n,
                       int* tags) noexcept nogil:
        """Append ``"key":"<s escaped>"`` to the error fragment, after a comma unless first."""
        cdef Buf* e = &self._err
        if buf_reserve(e, kn + 8 + 6 * n) < 0:
            return -1
        if e.len:
            e.data[e.len] = b','
            e.len += 1
        buf_put(e, key, kn)
        e.data[e.len] = b'"'
        e.len += 1
        e.len += escape_msg(s, n, e.data + e.len, tags)
        e.data[e.len] = b'"'
        e.len += 1
        return 0

    cdef int _emit(self) noexcept nogil:
        """Write the open event and close it."""
        cdef int tags = _INCOMPLETE if self._g_incomplete else 0
        cdef int r
        cdef Py_ssize_t f[5]
        cdef const uint8_t* s = self._g_p if self._g_inplace else <const uint8_t*>self._g.data
        cdef Frag ah, dh
        cdef int64_t read_ms = self._read_ms
        cdef bint swap = self._g_ms != self._read_ms
        if self._g_cut:
            tags |= _TRUNCATED
        self._g_open = False
        self._g_inplace = False
        if swap:  # brought by an earlier feed: its read time
            ah = self._action_head
            dh = self._doc_head
            self._action_head = self._gaction_head
            self._doc_head = self._gdoc_head
            self._read_ms = self._g_ms
        if self._g_nlines == 1:
            r = self._event(s, self._g_first, self._g_length, self._g_off, tags, self._g_end - self._g_off)
        else:
            self._err.len = 0
            if self._g_tb or self._g_java:
                ml_error_fields(s, self._g.len, self._g_java, self._g_state0, f)
                self._trace = True
                r = 0
                if f[0] >= 0:
                    r |= self._err_part('"type":', 7, s + f[0], f[1] - f[0], &tags)
                if f[2] >= 0:
                    r |= self._err_part('"message":', 10, s + f[2], f[3] - f[2], &tags)
                r |= self._err_part('"stack_trace":', 14, s + f[4], self._g.len - f[4], &tags)
                if r < 0:
                    return -1
            self._cont_p = s + self._g_first
            self._cont_n = self._g.len - self._g_first
            r = self._event(s, self._g_first, self._g_orig if self._g_trunc else self._g_first,
                            self._g_off, tags, self._g_end - self._g_off)
            self._cont_n = 0
            self._err.len = 0
            self._trace = False
        if swap:
            self._action_head = ah
            self._doc_head = dh
            self._read_ms = read_ms
        if self._g.cap > _KEEP_HOLD:
            buf_free(&self._g)
        self._g.len = 0
        return r

    cdef int _materialize(self) noexcept nogil:
        """Copy the open event's first line, read in place so far, into the event buffer:
        before a line joins it, or when the feed whose bytes it is in ends."""
        if not self._g_inplace:
            return 0
        self._g_inplace = False
        self._g.len = 0
        if buf_reserve(&self._g, self._g_first + 1) < 0:
            self._g_open = False  # out of memory: feed raises MemoryError
            return -1
        buf_put(&self._g, <const char*>self._g_p, self._g_first)
        return 0

    cdef int _open(self, const uint8_t* s, Py_ssize_t n, int64_t length, int64_t off, int64_t end,
                   int state, int64_t idx, bint incomplete, bint stable) noexcept nogil:
        """Open an event with the line ``s[:n]``. ``stable``: ``s`` is in the feed's own
        bytes, valid until the feed ends, so the line is read in place (most events are
        one line; ``_materialize`` copies it when one is not)."""
        self._g_end = end
        self._g.len = 0
        if stable:
            self._g_p = s
            self._g_inplace = True
        else:
            self._g_inplace = False
            if buf_reserve(&self._g, n + 1) < 0:
                return -1
            buf_put(&self._g, <const char*>s, n)
        self._g_open = True
        self._g_first = n
        self._g_nlines = 1
        self._g_blanks = 0
        self._g_off = off
        self._g_length = self._g_orig = length
        self._g_trunc = length > self._max
        self._g_cut = False
        self._g_ms = self._g_last_ms = self._read_ms
        self._g_state = self._g_state0 = state
        self._g_tb = state == _ML_FRAMES or state == _ML_EXC or state == _ML_CHAIN or state == _ML_GROUP
        self._g_java = state == _ML_JAVA
        self._g_line = idx
        self._g_incomplete = incomplete
        return 0

    cdef int _ml_line(self, const uint8_t* s, Py_ssize_t avail, int64_t length, int64_t off,
                      int64_t end, bint incomplete, bint stable, bint noisy) noexcept nogil:
        """``_pyparser.Parser._ml_line``: one line, ``s[:avail]`` it or its head; ``end`` the
        offset after its line break; ``stable``: ``s`` is in the feed's bytes (``_open``);
        ``noisy`` False: the line has no CR or ESC (``clean_line`` would keep it as it is)."""
        cdef int64_t idx = self._nline
        cdef Py_ssize_t n
        cdef int st
        cdef const uint8_t* c = s
        self._nline += 1
        if length:
            n = avail if length <= self._max or avail <= self._cap else self._cap
            if noisy:
                n = clean_line(s, n, self._progress, &self._cl, &c)
            if n == -1:
                return -1
            if n == -2:
                return 0
            if n == 0:
                length = 0
            if c != s:  # cleaned into a buffer the next line reuses
                stable = False
            s = c
            avail = n
        if length == 0:
            if self._g_open:
                self._g_blanks += 1
                self._g_last_ms = self._read_ms
                if self._g_nlines + self._g_blanks >= self._ml_max_lines:
                    return self._emit()
            return 0
        n = avail if avail <= self._max else cut_point(s, avail, self._max)
        if self._g_open:
            st = ml_next_state(self._g_state, s, n)
            if st >= 0:
                if self._materialize() < 0:
                    return -1
                if (self._g_nlines + self._g_blanks + 1 > self._ml_max_lines
                        or self._g.len + self._g_blanks + 1 + n > self._ml_max_bytes):
                    self._g_cut = True
                    if self._emit() < 0:
                        return -1
                    return self._open(s, n, length, off, end, st, idx, incomplete, stable)
                if buf_reserve(&self._g, self._g_blanks + 1 + n) < 0:
                    return -1
                memset(self._g.data + self._g.len, 10, self._g_blanks + 1)
                self._g.len += self._g_blanks + 1
                buf_put(&self._g, <const char*>s, n)
                self._g_orig += self._g_blanks + 1 + length
                self._g_nlines += self._g_blanks + 1
                self._g_blanks = 0
                if length > self._max:
                    self._g_trunc = True
                self._g_state = st
                if st == _ML_JAVA:
                    self._g_java = True
                elif st != _ML_NORMAL:
                    self._g_tb = True
                self._g_last_ms = self._read_ms
                self._g_incomplete = incomplete
                self._g_end = end
                return 0
            if self._emit() < 0:
                return -1
        return self._open(s, n, length, off, end, ml_first_state(s, n), idx, incomplete, stable)

    cdef int _scan(self, const uint8_t* p, Py_ssize_t n) noexcept nogil:
        cdef const uint8_t* end = p + n
        cdef const uint8_t* nl
        cdef int64_t off = self._offset
        cdef int64_t raw, length
        cdef Py_ssize_t held
        cdef bint noisy
        cdef fp_lines lines

        if self._hold_len or self._skip:  # complete the line held from earlier feeds
            nl = <const uint8_t*>memchr(p, 10, n)
            if nl == NULL:
                return self._hold_more(p, n)
            if self._hold_more(p, nl - p) < 0:
                return -1
            held = self._hold_len
            raw = held + self._skip
            length = raw - self._last_cr
            if self._mlon:
                if self._ml_line(<const uint8_t*>self._hold, held if held < length else length,
                                 length, off, off + raw + 1, False, False, True) < 0:
                    return -1
            elif length:
                if self._line_event(<const uint8_t*>self._hold, held if held < length else length,
                                    length, off, 0, raw + 1, True) < 0:
                    return -1
            off += raw + 1
            self._lines += 1
            self._drop_held()
            p = nl + 1
            self._offset = off

        lines.end = end
        lines.base = NULL
        while p < end:
            nl = fp_lines_next(&lines, p, &noisy)
            if nl == NULL:
                break
            raw = nl - p
            length = raw
            if length and p[length - 1] == 13:
                length -= 1
            if self._mlon:
                if self._ml_line(p, length, length, off, off + raw + 1, False, True, noisy) < 0:
                    self._offset = off
                    return -1
            elif length:
                if self._line_event(p, length, length, off, 0, raw + 1, noisy) < 0:
                    self._offset = off
                    return -1
            off += raw + 1
            self._lines += 1
            p = nl + 1
        self._offset = off
        if p < end:
            return self._hold_more(p, end - p)
        return 0

    cdef inline int _room(self, Py_ssize_t need) noexcept nogil:
        """Make room for ``need`` more bytes of body; -1 when out of memory."""
        return buf_reserve(&self._out, need)

    cdef _enter(self):
        """Refuse a second thread's feed/expire/flush before it changes anything: the
        first one reads the heads and the read time without the GIL."""
        if self._busy:
            raise RuntimeError("Parser used by two threads at once")
        self._busy = True

    cdef _start(self):
        self._out.len = 0
        self._idq.n = 0
        self._count = 0
        self._lines = 0
        self._cont_n = 0
        self._err.len = 0
        self._mn = 0
        self._trace = False
        self._start_line = self._mark()

    cdef object _batch(self, int64_t start):
        shipper_idq_flush(&self._idq, self._out.data, self._idk, <size_t>self._idk_n)
        if self._mlon:
            self._lines = self._mark() - self._start_line
        body = PyBytes_FromStringAndSize(self._out.data, self._out.len)
        ends = PyBytes_FromStringAndSize(<char*>self._ends, self._count * 8)
        offs = PyBytes_FromStringAndSize(<char*>self._offs, self._count * 8)
        batch = Batch(body, self._count, ends, offs, start,
                      self._g_off if self._g_open else self._offset, self._lines)
        cdef Py_ssize_t c = self._count, m = self._mn
        if c:
            # straight into the (empty) arrays: no bytes object in between
            carray.extend_buffer(<carray.array>batch.ev_time, <char*>self._evt, c)
            carray.extend_buffer(<carray.array>batch.ev_level, <char*>self._evl, c)
            carray.extend_buffer(<carray.array>batch.ev_class, <char*>self._evc, c)
            carray.extend_buffer(<carray.array>batch.ev_bytes, <char*>self._evb, c)
        if m:
            carray.extend_buffer(<carray.array>batch.m_item, <char*>self._mi, m)
            carray.extend_buffer(<carray.array>batch.m_id, <char*>self._mid, m)
            carray.extend_buffer(<carray.array>batch.m_value, <char*>self._mv, m)
        if self._cl.cap > _KEEP_HOLD:  # a long line's escapes were removed
            buf_free(&self._cl)
        if self._out.cap > _KEEP_BYTES:
            buf_free(&self._out)
        if self._items_cap > _KEEP_BYTES // 64:
            self._free_items()
        return batch

    def feed(self, data, read_time_ms):
        if self._py is not None:
            return self._py.feed(data, read_time_ms)
        cdef Py_buffer view
        cdef int rc
        cdef int64_t start = self._g_off if self._g_open else self._offset
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:  # e.g. a non-contiguous memoryview
            data = memoryview(data).tobytes()
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._enter()
            try:
                if self._mlon:
                    self._prepare_group(read_time_ms)
                else:
                    self._prepare(read_time_ms)
                self._start()
                with nogil:
                    rc = self._scan(<const uint8_t*>view.buf, view.len)
                    if self._materialize() < 0:  # the event may not point into the feed's bytes
                        rc = -1
                if rc < 0:
                    raise MemoryError()
                return self._batch(start)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&view)

    def expire(self, now_ms):
        """See ``_pyparser.Parser.expire``."""
        if self._py is not None:
            return self._py.expire(now_ms)
        cdef int64_t start = self._g_off if self._g_open else self._offset
        if not self._g_open or now_ms - self._g_last_ms < self._ml_timeout:
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._enter()
        try:
            self._prepare(self._g_ms)
            self._start()
            if self._emit() < 0:
                raise MemoryError()
            return self._batch(start)
        finally:
            self._busy = False

    def flush(self, read_time_ms):
        if self._py is not None:
            return self._py.flush(read_time_ms)
        if self._mlon:
            return self._flush_ml(read_time_ms)
        cdef int64_t start = self._offset
        cdef int64_t raw = self._hold_len + self._skip
        if raw == 0:
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._enter()
        try:
            self._prepare(read_time_ms)
            self._start()
            if self._line_event(<const uint8_t*>self._hold, self._hold_len, raw, start,
                                _INCOMPLETE, raw, True) < 0:
                raise MemoryError()
            self._offset = start + raw
            self._lines = 1
            self._drop_held()
            return self._batch(start)
        finally:
            self._busy = False

    cdef _flush_ml(self, read_time_ms):
        cdef int64_t start = self._g_off if self._g_open else self._offset
        cdef int64_t raw = self._hold_len + self._skip
        self._enter()
        try:
            self._prepare_group(read_time_ms)
            self._start()
            if raw:
                if self._ml_line(<const uint8_t*>self._hold, self._hold_len, raw, self._offset,
                                 self._offset + raw, True, False, True) < 0:
                    raise MemoryError()
                self._offset += raw
                self._drop_held()
            if self._g_open and self._emit() < 0:
                raise MemoryError()
            return self._batch(start)
        finally:
            self._busy = False
