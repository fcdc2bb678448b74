/* Shipper's `_id` contract v2 (blake2b.h) four events at a time.
 *
 * One `_id` is one BLAKE2b compression, a chain of ~1,500 dependent operations: one at a
 * time (blake2b_id.h) the CPU waits on that chain (~125 ns an id on the Zen 4 measured).
 * Here four events of one key are hashed at once, one per 64-bit lane of the AVX2
 * registers: each of the 16 state words is a vector of the four events' words, G runs on
 * the four chains side by side and the diagonal step is only a change of operands (no
 * permutes). The message words are the key's (the same in every lane, broadcast) except the
 * one or two holding the little-endian offset. The four digests are then encoded to
 * base64url two at a time in 256-bit vectors (blake2b_id.h's shipper_b64url12, widened).
 *
 * The parser does not know an id's four companions when it writes the event, so it writes
 * the event with the id's 22 bytes left open and queues (body position, offset) in a
 * shipper_idq; the queue hashes and fills them whenever four are waiting, and
 * shipper_idq_flush fills the rest before the body is handed over. Positions, not
 * pointers: the body buffer moves when it grows. The path is blake2b_id.h's: this 4-lane
 * code when the module's path is avx2 (SHIPPER_BLAKE2B=avx2, the default where the CPU has
 * it) and the key fits one block (<= 120 bytes; the agent's are 71); otherwise each id is
 * shipper_event_id, one at a time. Ids are the same bytes on every path (tests/test_ids.py
 * checks them against hashlib for every count of 1..9 waiting ids and key lengths 0..135).
 */
#ifndef SHIPPER_BLAKE2B_ID4_H
#define SHIPPER_BLAKE2B_ID4_H

#include "blake2b.h"

/* The block's 16 message words for `key` with the offset 0, and where the offset goes:
 * it is or-ed into word `*full` shifted left by 8 * `*r`; when r > 0 its high bytes make
 * word *full + 1 (which the key leaves zero). Keys of at most 120 bytes. */
static inline void shipper_b2b_key_words(const uint8_t *key, size_t keylen, uint64_t m[16], size_t *full,
                                         size_t *r) {
    size_t i, f = keylen >> 3, rr = keylen & 7;
    for (i = 0; i < f; i++) m[i] = shipper_b2b_get64(key + 8 * i);
    for (i = f; i < 16; i++) m[i] = 0;
    for (i = 0; i < rr; i++) m[f] |= (uint64_t)key[8 * f + i] << (8 * i);
    *full = f;
    *r = rr;
}

#if SHIPPER_B2B_X86

#define SHIPPER_X4_ROT32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define SHIPPER_X4_ROT24(x) _mm256_shuffle_epi8((x), r24)
#define SHIPPER_X4_ROT16(x) _mm256_shuffle_epi8((x), r16)
#define SHIPPER_X4_ROT63(x) _mm256_xor_si256(_mm256_srli_epi64((x), 63), _mm256_add_epi64((x), (x)))

/* G on state words a, b, c, d (v0..v15, four events a vector) with message words x, y. */
#define SHIPPER_X4_G(a, b, c, d, x, y)                                      \
    do {                                                                    \
        v##a = _mm256_add_epi64(_mm256_add_epi64(v##a, (x)), v##b);         \
        v##d = SHIPPER_X4_ROT32(_mm256_xor_si256(v##d, v##a));              \
        v##c = _mm256_add_epi64(v##c, v##d);                                \
        v##b = SHIPPER_X4_ROT24(_mm256_xor_si256(v##b, v##c));              \
        v##a = _mm256_add_epi64(_mm256_add_epi64(v##a, (y)), v##b);         \
        v##d = SHIPPER_X4_ROT16(_mm256_xor_si256(v##d, v##a));              \
        v##c = _mm256_add_epi64(v##c, v##d);                                \
        v##b = SHIPPER_X4_ROT63(_mm256_xor_si256(v##b, v##c));              \
    } while (0)

#define SHIPPER_X4_M(r, j) SHIPPER_X4_MSG(shipper_blake2b_sigma[r][j])

#define SHIPPER_X4_ROUND(r)                                                          \
    do {                                                                             \
        SHIPPER_X4_G(0, 4, 8, 12, SHIPPER_X4_M(r, 0), SHIPPER_X4_M(r, 1));           \
        SHIPPER_X4_G(1, 5, 9, 13, SHIPPER_X4_M(r, 2), SHIPPER_X4_M(r, 3));           \
        SHIPPER_X4_G(2, 6, 10, 14, SHIPPER_X4_M(r, 4), SHIPPER_X4_M(r, 5));          \
        SHIPPER_X4_G(3, 7, 11, 15, SHIPPER_X4_M(r, 6), SHIPPER_X4_M(r, 7));          \
        SHIPPER_X4_G(0, 5, 10, 15, SHIPPER_X4_M(r, 8), SHIPPER_X4_M(r, 9));          \
        SHIPPER_X4_G(1, 6, 11, 12, SHIPPER_X4_M(r, 10), SHIPPER_X4_M(r, 11));        \
        SHIPPER_X4_G(2, 7, 8, 13, SHIPPER_X4_M(r, 12), SHIPPER_X4_M(r, 13));         \
        SHIPPER_X4_G(3, 4, 9, 14, SHIPPER_X4_M(r, 14), SHIPPER_X4_M(r, 15));         \
    } while (0)

/* A 64-bit constant in all four lanes, from memory (vpbroadcastq m64: no GPR->vector move,
 * which valgrind 3.19 cannot run in its VEX form). */
#define SHIPPER_X4_BCAST(p) _mm256_castpd_si256(_mm256_broadcast_sd((const double *)(const void *)(p)))

/* base64url of bytes 0..11 of each 128-bit half of `d` (16 characters each):
 * shipper_b64url12 of blake2b_id.h in 256-bit vectors (every step works within halves). */
__attribute__((target("avx2"), always_inline)) static inline __m256i shipper_b64url12_x2(__m256i d) {
    const __m256i in = _mm256_shuffle_epi8(d, _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
                                                               1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    const __m256i t0 = _mm256_mulhi_epu16(_mm256_and_si256(in, _mm256_set1_epi32(0x0FC0FC00)),
                                          _mm256_set1_epi32(0x04000040));
    const __m256i t1 = _mm256_mullo_epi16(_mm256_and_si256(in, _mm256_set1_epi32(0x003F03F0)),
                                          _mm256_set1_epi32(0x01000010));
    const __m256i idx = _mm256_or_si256(t0, t1);
    __m256i k = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
    k = _mm256_or_si256(k, _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx), _mm256_set1_epi8(13)));
    return _mm256_add_epi8(idx, _mm256_shuffle_epi8(
        _mm256_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                         '0' - 52, '0' - 52, '-' - 62, '_' - 63, 'A', 0, 0,
                         'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                         '0' - 52, '0' - 52, '-' - 62, '_' - 63, 'A', 0, 0), k));
}

/* The 22 characters of the two 16-byte digests in the halves of `d`, to lo and hi. */
__attribute__((target("avx2"), always_inline)) static inline void shipper_b64url16_x2(__m256i d, char *lo,
                                                                                      char *hi) {
    const __m256i head = shipper_b64url12_x2(d);
    const __m256i tail = shipper_b64url12_x2(_mm256_srli_si256(d, 12));
    uint64_t t0 = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(tail));
    uint64_t t1 = (uint64_t)_mm_cvtsi128_si64(_mm256_extracti128_si256(tail, 1));
    _mm_storeu_si128((__m128i *)(void *)lo, _mm256_castsi256_si128(head));
    _mm_storeu_si128((__m128i *)(void *)hi, _mm256_extracti128_si256(head, 1));
    memcpy(lo + 16, &t0, 6);
    memcpy(hi + 16, &t1, 6);
}

/* The rounds on w[16] (the four events' message words) for `t0` message bytes, then the
 * ids to out[0..3]. */
#define SHIPPER_X4_BODY                                                                          \
    const __m256i r24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,    \
                                         3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);   \
    const __m256i r16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,    \
                                         2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);   \
    const uint64_t h0 = SHIPPER_B2B_H0, c12 = shipper_blake2b_iv[4] ^ t0, c14 = ~shipper_blake2b_iv[6]; \
    __m256i v0 = SHIPPER_X4_BCAST(&h0), v1 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[1]);           \
    __m256i v2 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[2]), v3 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[3]); \
    __m256i v4 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[4]), v5 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[5]); \
    __m256i v6 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[6]), v7 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[7]); \
    __m256i v8 = SHIPPER_X4_BCAST(&shipper_blake2b_iv[0]), v9 = v1, v10 = v2, v11 = v3;           \
    __m256i v12 = SHIPPER_X4_BCAST(&c12), v13 = v5, v14 = SHIPPER_X4_BCAST(&c14), v15 = v7;        \
    __m256i lo, hi;                                                                              \
    SHIPPER_X4_ROUND(0); SHIPPER_X4_ROUND(1); SHIPPER_X4_ROUND(2); SHIPPER_X4_ROUND(3);          \
    SHIPPER_X4_ROUND(4); SHIPPER_X4_ROUND(5); SHIPPER_X4_ROUND(6); SHIPPER_X4_ROUND(7);          \
    SHIPPER_X4_ROUND(8); SHIPPER_X4_ROUND(9); SHIPPER_X4_ROUND(10); SHIPPER_X4_ROUND(11);        \
    /* h[0] = H0 ^ v0 ^ v8 and h[1] = IV1 ^ v1 ^ v9 of each event; digest i = (h0_i, h1_i) */    \
    v0 = _mm256_xor_si256(SHIPPER_X4_BCAST(&h0), _mm256_xor_si256(v0, v8));                      \
    v1 = _mm256_xor_si256(SHIPPER_X4_BCAST(&shipper_blake2b_iv[1]), _mm256_xor_si256(v1, v9));   \
    lo = _mm256_unpacklo_epi64(v0, v1); /* digests 0 | 2 */                                      \
    hi = _mm256_unpackhi_epi64(v0, v1); /* digests 1 | 3 */                                      \
    shipper_b64url16_x2(lo, out[0], out[2]);                                                     \
    shipper_b64url16_x2(hi, out[1], out[3]);

/* The message words of the four events: the key's broadcast, the offsets' per lane. */
#define SHIPPER_X4_LOADW(nw)                                                                     \
    do {                                                                                         \
        uint64_t m_[16];                                                                         \
        size_t f_, r_, i_;                                                                       \
        __m256i o_ = _mm256_loadu_si256((const __m256i *)(const void *)off);                     \
        shipper_b2b_key_words(key, keylen, m_, &f_, &r_);                                        \
        for (i_ = 0; i_ < (nw); i_++) w[i_] = SHIPPER_X4_BCAST(&m_[i_]);                         \
        if (r_ == 0) {                                                                           \
            w[f_] = o_;                                                                          \
        } else {                                                                                 \
            w[f_] = _mm256_or_si256(w[f_], _mm256_sll_epi64(o_, _mm_loadl_epi64(                 \
                (const __m128i *)(const void *)&shipper_x4_shift[r_])));                         \
            w[f_ + 1] = _mm256_srl_epi64(o_, _mm_loadl_epi64(                                     \
                (const __m128i *)(const void *)&shipper_x4_shift[8 - r_]));                      \
        }                                                                                        \
    } while (0)

/* 8 * i: shift counts the vectors read from memory. */
static const uint64_t shipper_x4_shift[9] = {0, 8, 16, 24, 32, 40, 48, 56, 64};

/* The function `name` for keys whose message words from `nw` on are zero: 10 for keys of
 * at most 72 bytes (the zero words' additions fold away), 16 for 73..120. */
#define SHIPPER_X4_MSG(i) ((i) < x4_nw ? w[(i) < x4_nw ? (i) : 0] : _mm256_setzero_si256())
#define SHIPPER_X4_DEFINE(name, nw)                                                              \
    __attribute__((target("avx2"))) static void name(const uint8_t *key, size_t keylen,         \
                                                     const uint64_t off[4], char *const out[4]) { \
        enum { x4_nw = (nw) };                                                                   \
        __m256i w[nw];                                                                           \
        const uint64_t t0 = keylen + 8;                                                          \
        SHIPPER_X4_LOADW(nw);                                                                    \
        SHIPPER_X4_BODY                                                                          \
    }

SHIPPER_X4_DEFINE(shipper_b2b_ids4_avx2_short, 10)
SHIPPER_X4_DEFINE(shipper_b2b_ids4_avx2_full, 16)

#endif /* SHIPPER_B2B_X86 */

/* The ids of the events at offsets off[0..3] of the generation `key` names, written to
 * out[0..3] (22 characters each, no NUL): the same bytes as four shipper_event_id. */
static inline void shipper_event_ids4(const uint8_t *key, size_t keylen, const uint64_t off[4],
                                      char *const out[4]) {
    int i;
#if SHIPPER_B2B_X86
    if (keylen <= 120 && shipper_blake2b_impl() == SHIPPER_B2B_AVX2) {
        if (keylen <= 72) shipper_b2b_ids4_avx2_short(key, keylen, off, out);
        else shipper_b2b_ids4_avx2_full(key, keylen, off, out);
        return;
    }
#endif
    for (i = 0; i < 4; i++) shipper_event_id(key, keylen, off[i], out[i]);
}

/* Ids waiting to be written: body positions and event offsets, at most 4. */
typedef struct {
    uint64_t off[4];
    int64_t pos[4];
    int n;
} shipper_idq;

/* Ids of at most 4 waiting events to base + pos[i]; lanes past n (2 <= n <= 4) repeat the
 * first event's id into a scratch buffer (cheaper than two or three hashes one at a time). */
static inline void shipper_idq_write(const shipper_idq *q, int n, char *base, const uint8_t *key,
                                     size_t keylen) {
    char scratch[SHIPPER_ID_LEN];
    char *out[4];
    uint64_t off[4];
    int i;
    for (i = 0; i < 4; i++) {
        off[i] = q->off[i < n ? i : 0];
        out[i] = i < n ? base + q->pos[i] : scratch;
    }
    shipper_event_ids4(key, keylen, off, out);
}

/* Queue the id of the event at `offset` for base + pos (the body's 22 bytes there are left
 * open until then); with four waiting, writes them. `base` is the body's start now (the
 * buffer may have moved since the others were queued: positions, not pointers). */
static inline void shipper_idq_push(shipper_idq *q, char *base, int64_t pos, const uint8_t *key, size_t keylen,
                                    uint64_t offset) {
    int n = q->n;
    q->off[n] = offset;
    q->pos[n] = pos;
    if (n < 3) {
        q->n = n + 1;
        return;
    }
    q->n = 0;
    shipper_idq_write(q, 4, base, key, keylen);
}

/* Writes the ids still waiting (0..3 of them): before the body is handed over. One is
 * hashed alone, two or three in the 4-lane path. */
static inline void shipper_idq_flush(shipper_idq *q, char *base, const uint8_t *key, size_t keylen) {
    int n = q->n;
    q->n = 0;
    if (n == 1) shipper_event_id(key, keylen, q->off[0], base + q->pos[0]);
    else if (n > 1) shipper_idq_write(q, n, base, key, keylen);
}

#endif /* SHIPPER_BLAKE2B_ID4_H */
