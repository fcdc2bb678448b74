/* Shipper's `_id` contract v2 (blake2b.h) for several events at a time.
 *
 * One `_id` is one BLAKE2b compression, a chain of ~1,500 dependent operations: one at a
 * time (blake2b_id.h) the CPU waits on that chain (~125 ns an id on the Zen 4 measured).
 * Here the events of one key are hashed side by side, one per 64-bit lane: four in AVX2
 * registers, eight in AVX-512 ones. Each of the 16 state words is a vector of the events'
 * words, G runs on the independent chains at once and the diagonal step is only a change
 * of operands (no permutes). The message words are the key's (the same in every lane,
 * broadcast) except the one or two holding the little-endian offset. The digests are then
 * encoded to base64url two at a time in 256-bit vectors (blake2b_id.h's shipper_b64url12,
 * widened). On that Zen 4: 48 ns an id four at a time (avx2), 33 eight at a time (avx512).
 *
 * The parser does not know an id's companions when it writes the event, so it writes the
 * event with the id's 22 bytes left open and queues (body position, offset) in a
 * shipper_idq; the queue hashes and fills them whenever a group waits (8 on the avx512
 * path, else 4), and shipper_idq_flush fills the rest before the body is handed over.
 * Positions, not pointers: the body buffer moves when it grows. The path is
 * blake2b_id.h's (SHIPPER_BLAKE2B forces one; valgrind reports no AVX-512, so under it the
 * default is avx2): the lanes when it is avx2 or avx512 and the key fits one block (<= 120
 * bytes; the agent's are 71), otherwise each id is shipper_event_id, one at a time. Ids
 * are the same bytes on every path (tests/test_ids.py checks them against hashlib for
 * every count of 1..17 waiting ids, key lengths 0..135, and through the parser).
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

/* The rounds are written once for both widths, on these operations of the width in use
 * (SHIPPER_V(op) names SHIPPER_V4_op or SHIPPER_V8_op, defined before each width's functions):
 * T the vector type, ADD, XOR, OR, ROT32/24/16/63, BCAST(p) a 64-bit word from memory in
 * every lane (a broadcast load: no GPR->vector move, which valgrind 3.19 cannot run in its
 * VEX form), LOADU, SLL and SRL (every lane shifted by a count in an __m128i), ZERO, and
 * OUT(h0, h1) writing the ids of the lanes' digests (h[0] and h[1] of each lane). */

/* G on state words a, b, c, d (v0..v15, one event a lane) with message words x, y. */
#define SHIPPER_XN_G(a, b, c, d, x, y)                                                             \
    do {                                                                                           \
        v##a = SHIPPER_V(ADD)(SHIPPER_V(ADD)(v##a, (x)), v##b);                                                  \
        v##d = SHIPPER_V(ROT32)(SHIPPER_V(XOR)(v##d, v##a));                                                     \
        v##c = SHIPPER_V(ADD)(v##c, v##d);                                                                \
        v##b = SHIPPER_V(ROT24)(SHIPPER_V(XOR)(v##b, v##c));                                                     \
        v##a = SHIPPER_V(ADD)(SHIPPER_V(ADD)(v##a, (y)), v##b);                                                  \
        v##d = SHIPPER_V(ROT16)(SHIPPER_V(XOR)(v##d, v##a));                                                     \
        v##c = SHIPPER_V(ADD)(v##c, v##d);                                                                \
        v##b = SHIPPER_V(ROT63)(SHIPPER_V(XOR)(v##b, v##c));                                                     \
    } while (0)

/* Message word i; words from xn_nw on are zero (their additions fold away). */
#define SHIPPER_XN_M(r, j)                                                                         \
    (shipper_blake2b_sigma[r][j] < xn_nw ? w[shipper_blake2b_sigma[r][j] < xn_nw ? shipper_blake2b_sigma[r][j] : 0] : SHIPPER_V(ZERO)())

#define SHIPPER_XN_ROUND(r)                                                                        \
    do {                                                                                           \
        SHIPPER_XN_G(0, 4, 8, 12, SHIPPER_XN_M(r, 0), SHIPPER_XN_M(r, 1));                         \
        SHIPPER_XN_G(1, 5, 9, 13, SHIPPER_XN_M(r, 2), SHIPPER_XN_M(r, 3));                         \
        SHIPPER_XN_G(2, 6, 10, 14, SHIPPER_XN_M(r, 4), SHIPPER_XN_M(r, 5));                        \
        SHIPPER_XN_G(3, 7, 11, 15, SHIPPER_XN_M(r, 6), SHIPPER_XN_M(r, 7));                        \
        SHIPPER_XN_G(0, 5, 10, 15, SHIPPER_XN_M(r, 8), SHIPPER_XN_M(r, 9));                        \
        SHIPPER_XN_G(1, 6, 11, 12, SHIPPER_XN_M(r, 10), SHIPPER_XN_M(r, 11));                      \
        SHIPPER_XN_G(2, 7, 8, 13, SHIPPER_XN_M(r, 12), SHIPPER_XN_M(r, 13));                       \
        SHIPPER_XN_G(3, 4, 9, 14, SHIPPER_XN_M(r, 14), SHIPPER_XN_M(r, 15));                       \
    } while (0)

/* 8 * i: shift counts the vectors read from memory. */
static const uint64_t shipper_xn_shift[9] = {0, 8, 16, 24, 32, 40, 48, 56, 64};

/* The body of a function of (key, keylen, off[], out[]): message words w[0..nw) (the key's
 * broadcast, the one or two holding the offset per lane), the twelve rounds from the
 * constant initial state, then h[0] = H0 ^ v0 ^ v8 and h[1] = IV1 ^ v1 ^ v9 of each lane
 * to SHIPPER_V(OUT). */
#define SHIPPER_XN_BODY(nw)                                                                        \
    enum { xn_nw = (nw) };                                                                         \
    SHIPPER_V(T) w[nw];                                                                                   \
    const uint64_t h0 = SHIPPER_B2B_H0, c12 = shipper_blake2b_iv[4] ^ (keylen + 8),                \
                   c14 = ~shipper_blake2b_iv[6];                                                   \
    SHIPPER_V(T) v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15;                    \
    {                                                                                              \
        uint64_t m_[16];                                                                           \
        size_t f_, r_, i_;                                                                         \
        const SHIPPER_V(T) o_ = SHIPPER_V(LOADU)(off);                                                           \
        shipper_b2b_key_words(key, keylen, m_, &f_, &r_);                                          \
        for (i_ = 0; i_ < (nw); i_++) w[i_] = SHIPPER_V(BCAST)(&m_[i_]);                                  \
        if (r_ == 0) {                                                                             \
            w[f_] = o_;                                                                            \
        } else {                                                                                   \
            w[f_] = SHIPPER_V(OR)(w[f_], SHIPPER_V(SLL)(o_, _mm_loadl_epi64((const __m128i *)(const void *)&shipper_xn_shift[r_]))); \
            w[f_ + 1] = SHIPPER_V(SRL)(o_, _mm_loadl_epi64((const __m128i *)(const void *)&shipper_xn_shift[8 - r_])); \
        }                                                                                          \
    }                                                                                              \
    v0 = SHIPPER_V(BCAST)(&h0);                                                                           \
    v1 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[1]);                                                        \
    v2 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[2]);                                                        \
    v3 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[3]);                                                        \
    v4 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[4]);                                                        \
    v5 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[5]);                                                        \
    v6 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[6]);                                                        \
    v7 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[7]);                                                        \
    v8 = SHIPPER_V(BCAST)(&shipper_blake2b_iv[0]);                                                        \
    v9 = v1;                                                                                       \
    v10 = v2;                                                                                      \
    v11 = v3;                                                                                      \
    v12 = SHIPPER_V(BCAST)(&c12);                                                                         \
    v13 = v5;                                                                                      \
    v14 = SHIPPER_V(BCAST)(&c14);                                                                         \
    v15 = v7;                                                                                      \
    SHIPPER_XN_ROUND(0); SHIPPER_XN_ROUND(1); SHIPPER_XN_ROUND(2); SHIPPER_XN_ROUND(3);            \
    SHIPPER_XN_ROUND(4); SHIPPER_XN_ROUND(5); SHIPPER_XN_ROUND(6); SHIPPER_XN_ROUND(7);            \
    SHIPPER_XN_ROUND(8); SHIPPER_XN_ROUND(9); SHIPPER_XN_ROUND(10); SHIPPER_XN_ROUND(11);          \
    SHIPPER_V(OUT)(SHIPPER_V(XOR)(SHIPPER_V(BCAST)(&h0), SHIPPER_V(XOR)(v0, v8)), SHIPPER_V(XOR)(SHIPPER_V(BCAST)(&shipper_blake2b_iv[1]), SHIPPER_V(XOR)(v1, v9)));

/* Defines name_short, for keys of at most 72 bytes (message words 10..15 zero), and
 * name_full (73..120 bytes): the ids of `lanes` events, on the width SHIPPER_V names now. */
#define SHIPPER_XN_DEFINE(name, tgt, lanes)                                                        \
    __attribute__((target(tgt))) static void name##_short(const uint8_t *key, size_t keylen,       \
                                                          const uint64_t off[lanes],               \
                                                          char *const out[lanes]) {                \
        SHIPPER_XN_BODY(10)                                                                        \
    }                                                                                              \
    __attribute__((target(tgt))) static void name##_full(const uint8_t *key, size_t keylen,        \
                                                         const uint64_t off[lanes],                \
                                                         char *const out[lanes]) {                 \
        SHIPPER_XN_BODY(16)                                                                        \
    }

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

/* ---- AVX2: four events, 256-bit vectors; rotations by byte shuffles (63: add + shift). ---- */
#define SHIPPER_V4_T __m256i
#define SHIPPER_V4_ADD _mm256_add_epi64
#define SHIPPER_V4_XOR _mm256_xor_si256
#define SHIPPER_V4_OR _mm256_or_si256
#define SHIPPER_V4_ROT32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define SHIPPER_V4_ROT24(x) _mm256_shuffle_epi8((x), _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, \
                                                             3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10))
#define SHIPPER_V4_ROT16(x) _mm256_shuffle_epi8((x), _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, \
                                                             2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9))
#define SHIPPER_V4_ROT63(x) _mm256_xor_si256(_mm256_srli_epi64((x), 63), _mm256_add_epi64((x), (x)))
#define SHIPPER_V4_BCAST(p) _mm256_castpd_si256(_mm256_broadcast_sd((const double *)(const void *)(p)))
#define SHIPPER_V4_LOADU(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define SHIPPER_V4_SLL _mm256_sll_epi64
#define SHIPPER_V4_SRL _mm256_srl_epi64
#define SHIPPER_V4_ZERO _mm256_setzero_si256
/* digests 0 | 2 and 1 | 3 in the halves of two vectors */
#define SHIPPER_V4_OUT(h0v, h1v)                                                                   \
    do {                                                                                           \
        const __m256i a_ = (h0v), b_ = (h1v);                                                      \
        shipper_b64url16_x2(_mm256_unpacklo_epi64(a_, b_), out[0], out[2]);                        \
        shipper_b64url16_x2(_mm256_unpackhi_epi64(a_, b_), out[1], out[3]);                        \
    } while (0)

#define SHIPPER_V(op) SHIPPER_V4_##op
SHIPPER_XN_DEFINE(shipper_b2b_ids4_avx2, "avx2", 4)
#undef SHIPPER_V

/* ---- AVX-512F: eight events, 512-bit vectors, each rotation one instruction. On the Zen 4
 * measured (512-bit operations in two 256-bit halves) 32 ns an id against avx2's 48 (four
 * lanes): fewer instructions (rotations) and 32 registers for the 16 state vectors. ---- */
#define SHIPPER_V8_T __m512i
#define SHIPPER_V8_ADD _mm512_add_epi64
#define SHIPPER_V8_XOR _mm512_xor_si512
#define SHIPPER_V8_OR _mm512_or_si512
#define SHIPPER_V8_ROT32(x) _mm512_ror_epi64((x), 32)
#define SHIPPER_V8_ROT24(x) _mm512_ror_epi64((x), 24)
#define SHIPPER_V8_ROT16(x) _mm512_ror_epi64((x), 16)
#define SHIPPER_V8_ROT63(x) _mm512_ror_epi64((x), 63)
#define SHIPPER_V8_BCAST(p) _mm512_set1_epi64((long long)*(p))
#define SHIPPER_V8_LOADU(p) _mm512_loadu_si512((const void *)(p))
#define SHIPPER_V8_SLL _mm512_sll_epi64
#define SHIPPER_V8_SRL _mm512_srl_epi64
#define SHIPPER_V8_ZERO _mm512_setzero_si512
/* digests 0 | 2 | 4 | 6 and 1 | 3 | 5 | 7 in the 128-bit quarters of two vectors */
#define SHIPPER_V8_OUT(h0v, h1v)                                                                   \
    do {                                                                                           \
        const __m512i a_ = (h0v), b_ = (h1v);                                                      \
        const __m512i lo_ = _mm512_unpacklo_epi64(a_, b_), hi_ = _mm512_unpackhi_epi64(a_, b_);    \
        shipper_b64url16_x2(_mm512_castsi512_si256(lo_), out[0], out[2]);                          \
        shipper_b64url16_x2(_mm512_extracti64x4_epi64(lo_, 1), out[4], out[6]);                    \
        shipper_b64url16_x2(_mm512_castsi512_si256(hi_), out[1], out[3]);                          \
        shipper_b64url16_x2(_mm512_extracti64x4_epi64(hi_, 1), out[5], out[7]);                    \
    } while (0)

#define SHIPPER_V(op) SHIPPER_V8_##op
SHIPPER_XN_DEFINE(shipper_b2b_ids8_avx512, "avx2,avx512f", 8)
#undef SHIPPER_V

#endif /* SHIPPER_B2B_X86 */

/* The ids of the events at offsets off[0..3] of the generation `key` names, written to
 * out[0..3] (22 characters each, no NUL): the same bytes as four shipper_event_id. */
static inline void shipper_event_ids4(const uint8_t *key, size_t keylen, const uint64_t off[4],
                                      char *const out[4]) {
    int i;
#if SHIPPER_B2B_X86
    if (keylen <= 120 && shipper_blake2b_impl() >= SHIPPER_B2B_AVX2) {
        if (keylen <= 72) shipper_b2b_ids4_avx2_short(key, keylen, off, out);
        else shipper_b2b_ids4_avx2_full(key, keylen, off, out);
        return;
    }
#endif
    for (i = 0; i < 4; i++) shipper_event_id(key, keylen, off[i], out[i]);
}

/* The same for eight events: the avx512 path, else two groups of four. */
static inline void shipper_event_ids8(const uint8_t *key, size_t keylen, const uint64_t off[8],
                                      char *const out[8]) {
#if SHIPPER_B2B_X86
    if (keylen <= 120 && shipper_blake2b_impl() == SHIPPER_B2B_AVX512) {
        if (keylen <= 72) shipper_b2b_ids8_avx512_short(key, keylen, off, out);
        else shipper_b2b_ids8_avx512_full(key, keylen, off, out);
        return;
    }
#endif
    shipper_event_ids4(key, keylen, off, out);
    shipper_event_ids4(key, keylen, off + 4, out + 4);
}

/* How many ids the queue gathers before it writes them: 8 on the avx512 path, else 4. */
static inline int shipper_idq_lanes(void) {
    return shipper_blake2b_impl() == SHIPPER_B2B_AVX512 ? 8 : 4;
}

/* Ids waiting to be written: body positions and event offsets, at most 8. */
typedef struct {
    uint64_t off[8];
    int64_t pos[8];
    int n;
} shipper_idq;

/* Ids of the first n (2..8) waiting events to base + pos[i], in one group of 8 (n > 4) or
 * 4; lanes past n repeat the first event's id into a scratch buffer (cheaper than the
 * missing ones hashed one at a time). */
static inline void shipper_idq_write(const shipper_idq *q, int n, char *base, const uint8_t *key,
                                     size_t keylen) {
    char scratch[SHIPPER_ID_LEN];
    char *out[8];
    uint64_t off[8];
    int i;
    for (i = 0; i < 8; i++) {
        off[i] = q->off[i < n ? i : 0];
        out[i] = i < n ? base + q->pos[i] : scratch;
    }
    if (n > 4) shipper_event_ids8(key, keylen, off, out);
    else shipper_event_ids4(key, keylen, off, out);
}

/* Queue the id of the event at `offset` for base + pos (the body's 22 bytes there are left
 * open until then); with a group waiting (shipper_idq_lanes), writes them. `base` is the
 * body's start now (the buffer may have moved since the others were queued: positions, not
 * pointers). */
static inline void shipper_idq_push(shipper_idq *q, char *base, int64_t pos, const uint8_t *key, size_t keylen,
                                    uint64_t offset) {
    int n = q->n;
    q->off[n] = offset;
    q->pos[n] = pos;
    if (++n < shipper_idq_lanes()) {
        q->n = n;
        return;
    }
    q->n = 0;
    shipper_idq_write(q, n, base, key, keylen);
}

/* Writes the ids still waiting: before the body is handed over. One is hashed alone, more
 * in one group. */
static inline void shipper_idq_flush(shipper_idq *q, char *base, const uint8_t *key, size_t keylen) {
    int n = q->n;
    q->n = 0;
    if (n == 1) shipper_event_id(key, keylen, q->off[0], base + q->pos[0]);
    else if (n > 1) shipper_idq_write(q, n, base, key, keylen);
}

#endif /* SHIPPER_BLAKE2B_ID4_H */
