# `_id` contract v2 for Cython code: `include "_ids.pxi"` (see _ids.py for the contract and
# blake2b.h for the C). Declarations only; no Python object per id.
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "blake2b.h" nogil:
    enum: SHIPPER_ID_LEN
    ctypedef struct shipper_blake2b_ctx:
        pass
    int shipper_blake2b_init(shipper_blake2b_ctx *ctx, size_t outlen)
    void shipper_blake2b_update(shipper_blake2b_ctx *ctx, const void *data, size_t n)
    void shipper_blake2b_final(shipper_blake2b_ctx *ctx, void *out)
    # Writes the 22 id characters (no NUL) of the event at `offset` of the generation whose
    # key (_ids.id_key) is key[0:keylen] into out[0:22].
    void shipper_event_id(const uint8_t *key, size_t keylen, uint64_t offset, char *out)

cdef extern from "blake2b_id4.h" nogil:
    # Ids written in groups (blake2b_id4.h): the parser leaves an id's 22 bytes open and
    # queues (body position, offset); shipper_idq_push writes whenever a group (8 on the
    # avx512 path, else 4) waits, shipper_idq_flush the rest (before the body is handed
    # over). Positions, not pointers: `base` is the body's start at the call.
    ctypedef struct shipper_idq:
        int n
    void shipper_idq_push(shipper_idq *q, char *base, int64_t pos, const uint8_t *key, size_t keylen,
                          uint64_t offset)
    void shipper_idq_flush(shipper_idq *q, char *base, const uint8_t *key, size_t keylen)
