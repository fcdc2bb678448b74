# cython: language_level=3
"""Test and benchmark access to the C `_id` contract v2 (blake2b.h), built only for checks.

The parser calls `shipper_event_id` directly from C; this module lets tests compare it with
the Python twin (_ids.py) and hashlib, and lets benchmarks time it per id.
"""

include "_ids.pxi"

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from time import perf_counter


def blake2b(bytes data, int digest_size=64):
    """Plain BLAKE2b of `data` through the C code (tested against hashlib.blake2b)."""
    cdef shipper_blake2b_ctx ctx
    cdef unsigned char out[64]
    if shipper_blake2b_init(&ctx, digest_size) != 0:
        raise ValueError("digest_size must be 1..64")
    shipper_blake2b_update(&ctx, <const char *>data, len(data))
    shipper_blake2b_final(&ctx, out)
    return PyBytes_FromStringAndSize(<char *>out, digest_size)


def event_id(bytes key, uint64_t offset):
    """The v2 `_id` of the event at `offset` of the generation `key` names (str, 22 chars)."""
    cdef char out[SHIPPER_ID_LEN]
    shipper_event_id(<const uint8_t *><const char *>key, len(key), offset, out)
    return PyBytes_FromStringAndSize(out, SHIPPER_ID_LEN).decode("ascii")


def event_ids(bytes key, offsets, Py_ssize_t gap=0):
    """The v2 `_id`s of the events at `offsets` (a list of str) as the parser writes them:
    queued one by one (blake2b_id4.h's shipper_idq), written in groups of 4 or 8, the rest
    by the flush. Each id is written `gap` bytes after the previous one."""
    cdef shipper_idq q
    cdef Py_ssize_t n = len(offsets), i, step = SHIPPER_ID_LEN + gap
    cdef size_t klen = len(key)
    cdef const uint8_t *k = <const uint8_t *><const char *>key
    buf = bytearray(n * step)
    cdef char *base = buf
    q.n = 0
    for i in range(n):
        shipper_idq_push(&q, base, i * step, k, klen, <uint64_t>offsets[i])
    shipper_idq_flush(&q, base, k, klen)
    return [bytes(buf[i * step:i * step + SHIPPER_ID_LEN]).decode("ascii") for i in range(n)]


def time_ids_queued(bytes key, Py_ssize_t n, uint64_t step=97):
    """Seconds to compute `n` ids as the parser does (queued, written in groups: 8 on the
    avx512 path, 4 on the others), offsets as in time_ids, into one 22-byte slot each."""
    cdef shipper_idq q
    cdef const uint8_t *k = <const uint8_t *><const char *>key
    cdef size_t klen = len(key)
    cdef Py_ssize_t i
    buf = bytearray(8 * SHIPPER_ID_LEN)
    cdef char *base = buf
    q.n = 0
    t = perf_counter()
    with nogil:
        for i in range(n):
            shipper_idq_push(&q, base, (i & 7) * SHIPPER_ID_LEN, k, klen, <uint64_t>i * step)
        shipper_idq_flush(&q, base, k, klen)
    return perf_counter() - t


def time_ids(bytes key, Py_ssize_t n, uint64_t step=97):
    """Seconds to compute `n` ids in C (offsets 0, step, 2*step, ...) into one buffer."""
    cdef char out[SHIPPER_ID_LEN]
    cdef const uint8_t *k = <const uint8_t *><const char *>key
    cdef size_t klen = len(key)
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    t = perf_counter()
    with nogil:
        for i in range(n):
            shipper_event_id(k, klen, <uint64_t>i * step, out)
            acc += <unsigned char>out[i % SHIPPER_ID_LEN]
    elapsed = perf_counter() - t
    if acc == 0xFFFFFFFFFFFFFFFF:  # keeps the loop from being optimized away
        print(acc)
    return elapsed


cdef extern from "blake2b.h" nogil:
    int shipper_blake2b_set_impl(int impl)
    int shipper_blake2b_impl()
    int shipper_blake2b_has_impl(int impl)

IMPLS = ("portable", "sse41", "avx2", "avx512")


def blake2b_impl():
    """The path this module's `_id` hash uses (blake2b_id.h): portable, sse41, avx2 or avx512."""
    return IMPLS[shipper_blake2b_impl()]


def blake2b_impls():
    """The paths this CPU runs (portable always)."""
    return tuple(name for i, name in enumerate(IMPLS) if shipper_blake2b_has_impl(i))


def set_blake2b_impl(name=None):
    """Force a path of this module (None: $SHIPPER_BLAKE2B's, else the default); a path the
    CPU lacks falls back to the default one. Returns the path set. Tests only: the parser
    module has its own choice."""
    return IMPLS[shipper_blake2b_set_impl(-1 if name is None else IMPLS.index(name))]
