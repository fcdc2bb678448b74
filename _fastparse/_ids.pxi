# `_id` contract v2 for Cython code: `include "_ids.pxi"` (see _ids.py for the contract and
# blake2b.h for the C). Declarations only; no Python object per id.
from libc.stdint cimport uint8_t, uint64_t

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
