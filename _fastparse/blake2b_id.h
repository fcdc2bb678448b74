/* The one-block BLAKE2b-128 of shipper's `_id` contract v2, specialised and vectorised.
 *
 * Included by blake2b.h; `shipper_event_id` there calls `shipper_b2b_id_block` for every
 * key of at most 120 bytes (key and offset in one 128-byte block). What is special here:
 *   - one block, the last: t = key length + 8, f0 = ~0, no chaining between blocks;
 *   - the state before it is constant (h = IV ^ parameter block for an unkeyed 16-byte
 *     digest), so only the counter word of row 4 depends on the input;
 *   - only h[0] and h[1] (the 16-byte digest) are computed at the end;
 *   - for keys of at most 72 bytes (the agent's are 71) message words 10..15 are zero and
 *     every message index is a constant, so the compiler drops those words' loads and adds.
 * The rounds are the algorithm of RFC 7693 section 3.2, laid out in vectors as the BLAKE2
 * authors' SIMD implementations do (Samuel Neves, "BLAKE2 reference source code package -
 * optimized C implementations" and the blake2b AVX2 code, CC0 / OpenSSL / Apache 2.0):
 * the 4x4 state as four rows, G on all four columns at once, the diagonal step by rotating
 * three rows against the fourth, the 64-bit rotations by 32/24/16 as byte shuffles and by
 * 63 as add + shift. The SIMD paths also write the base64url in vectors (shipper_b64url12).
 * This file is shipper's own code written from those descriptions (no code was copied, so
 * no third-party notice applies); it is tested bit for bit against hashlib in
 * tests/test_ids.py on every path the CPU has.
 *
 * Paths, chosen once at the first id (per extension module) with __builtin_cpu_supports:
 *   3 avx512 eight events at a time in blake2b_id4.h (one a 64-bit lane of 512-bit
 *            registers, one-instruction rotations); single ids as avx2. The default where
 *            the CPU has AVX-512F,
 *   2 avx2   four G per instruction (256-bit rows); the default where the CPU has it and
 *            no AVX-512 (the parser: four events at a time, blake2b_id4.h),
 *   1 sse41  two G per instruction (each row in two 128-bit halves; SSSE3 shuffles and
 *            SSE4.1 blends); only when asked for (see shipper_blake2b_default_impl),
 *   0 portable, the scalar rounds of blake2b.h (the only path off x86 or without GCC/clang).
 * SHIPPER_BLAKE2B=portable|sse41|avx2|avx512 in the environment picks the path (one the CPU lacks
 * falls back to the default), and shipper_blake2b_set_impl() sets it (tests). The message
 * words reach the vectors by unpack/alignr/blend only (valgrind 3.19 cannot run the
 * register form of VEX vmovq that _mm256_set_epi64x compiled to).
 * Only these functions carry target attributes: the extension itself is built for the
 * baseline ISA and stays portable.
 * The parser hashes four (avx2) or eight (avx512) events at a time (blake2b_id4.h, one
 * event a 64-bit lane); the functions here serve the other paths, single ids and tails.
 */
#ifndef SHIPPER_BLAKE2B_ID_H
#define SHIPPER_BLAKE2B_ID_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* x86-64 only (the vector base64 uses a 64-bit move), GCC or clang (target attributes,
 * __builtin_cpu_supports); SHIPPER_BLAKE2B_NO_SIMD builds the portable path alone. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SHIPPER_BLAKE2B_NO_SIMD)
#define SHIPPER_B2B_X86 1
#include <immintrin.h>
#else
#define SHIPPER_B2B_X86 0
#endif

#define SHIPPER_B2B_PORTABLE 0
#define SHIPPER_B2B_SSE41 1
#define SHIPPER_B2B_AVX2 2
#define SHIPPER_B2B_AVX512 3

/* h = IV ^ parameter block (digest length 16, key length 0, fanout 1, depth 1). */
#define SHIPPER_B2B_H0 (0x6A09E667F3BCC908ULL ^ 0x01010010ULL)

/* Scalar: blake2b.h's unrolled rounds on the constant initial state. m[] holds the block as
 * little-endian words; `t0` is the message length. */
#define SHIPPER_B2B_ID_PORTABLE_BODY                                                      \
    uint64_t v[16];                                                                       \
    int i;                                                                                \
    for (i = 0; i < 8; i++) {                                                             \
        v[i] = shipper_blake2b_iv[i];                                                     \
        v[i + 8] = shipper_blake2b_iv[i];                                                 \
    }                                                                                     \
    v[0] = SHIPPER_B2B_H0;                                                                \
    v[12] ^= t0;                                                                          \
    v[14] = ~v[14];                                                                       \
    SHIPPER_B2B_ROUNDS();                                                                 \
    out[0] = SHIPPER_B2B_H0 ^ v[0] ^ v[8];                                                \
    out[1] = shipper_blake2b_iv[1] ^ v[1] ^ v[9];

static inline void shipper_b2b_id_portable_short(const uint64_t *m, uint64_t t0, uint64_t out[2]) {
#define SHIPPER_B2B_MSG(i) ((i) < 10 ? m[(i) < 10 ? (i) : 0] : (uint64_t)0)
    SHIPPER_B2B_ID_PORTABLE_BODY
#undef SHIPPER_B2B_MSG
}

static inline void shipper_b2b_id_portable_full(const uint64_t *m, uint64_t t0, uint64_t out[2]) {
#define SHIPPER_B2B_MSG(i) m[i]
    SHIPPER_B2B_ID_PORTABLE_BODY
#undef SHIPPER_B2B_MSG
}

#if SHIPPER_B2B_X86

/* Message words m[i] (low lane) and m[j] (high lane) from the block held as eight 128-bit
 * pairs w[k] = (m[2k], m[2k+1]): one unpack, alignr or blend. With constant i and j (the
 * rounds' sigma) every branch folds. Vector-only on purpose: no GPR<->XMM moves. */
__attribute__((target("sse4.1,ssse3"), always_inline)) static inline __m128i shipper_b2b_pair(const __m128i *w,
                                                                                                int i, int j) {
    __m128i x = w[i >> 1], y = w[j >> 1];
    if ((i & 1) == 0 && (j & 1) == 0) return _mm_unpacklo_epi64(x, y);
    if ((i & 1) == 1 && (j & 1) == 1) return _mm_unpackhi_epi64(x, y);
    if ((i & 1) == 1) return _mm_alignr_epi8(y, x, 8); /* (x.hi, y.lo) */
    return _mm_blend_epi16(x, y, 0xF0);                /* (x.lo, y.hi) */
}

/* w[0..7] from m[0..15]; for a short message (words 10..15 zero) m[10..15] are not read. */
#define SHIPPER_B2B_LOADW(w, m, short_msg)                                                   \
    do {                                                                                     \
        int k_;                                                                              \
        for (k_ = 0; k_ < 8; k_++)                                                           \
            w[k_] = (short_msg) && k_ >= 5 ? _mm_setzero_si128()                             \
                                           : _mm_loadu_si128((const __m128i *)(const void *)((m) + 2 * k_)); \
    } while (0)

/* base64url of bytes 0..11 of `d`: 16 characters, the SSSE3 method of W. Mula and D. Lemire
 * ("Faster Base64 Encoding and Decoding Using AVX2 Instructions", 2018): a byte shuffle puts
 * each 3 bytes in a 32-bit lane as (b1 b0 b2 b1), two 16-bit multiplies move the four 6-bit
 * fields to the lane's bytes, then a 16-entry shuffle table maps each field's range to its
 * ASCII offset (A-Z, a-z, 0-9, '-', '_'). Written here from that description. */
__attribute__((target("sse4.1,ssse3"), always_inline)) static inline __m128i shipper_b64url12(__m128i d) {
    const __m128i in = _mm_shuffle_epi8(d, _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    const __m128i t0 = _mm_mulhi_epu16(_mm_and_si128(in, _mm_set1_epi32(0x0FC0FC00)), _mm_set1_epi32(0x04000040));
    const __m128i t1 = _mm_mullo_epi16(_mm_and_si128(in, _mm_set1_epi32(0x003F03F0)), _mm_set1_epi32(0x01000010));
    const __m128i idx = _mm_or_si128(t0, t1); /* one 6-bit value a byte */
    /* 0..51 -> 0, 52..61 -> 1..10, 62 -> 11, 63 -> 12; then 0..25 -> 13 */
    __m128i k = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    k = _mm_or_si128(k, _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), idx), _mm_set1_epi8(13)));
    return _mm_add_epi8(idx, _mm_shuffle_epi8(_mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                                              '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                                              '0' - 52, '-' - 62, '_' - 63, 'A', 0, 0), k));
}

/* The 22 characters of the 16-byte digest `d`: bytes 0..11, then 12..15 (their last
 * character's 4 low bits from the zero byte after them, as base64 pads). */
__attribute__((target("sse4.1,ssse3"), always_inline)) static inline void shipper_b64url16_simd(__m128i d,
                                                                                               char *out) {
    uint64_t tail = (uint64_t)_mm_cvtsi128_si64(shipper_b64url12(_mm_srli_si128(d, 12)));
    _mm_storeu_si128((__m128i *)(void *)out, shipper_b64url12(d));
    memcpy(out + 16, &tail, 6);
}

/* Lanes (m[sigma[r][j0]], m[sigma[r][j1]]). */
#define SHIPPER_SSE_MSG2(r, j0, j1) shipper_b2b_pair(w, shipper_blake2b_sigma[r][j0], shipper_blake2b_sigma[r][j1])

/* ---- AVX2: row k of the state in one __m256i (lane i = column i). ---- */
#define SHIPPER_AVX2_ROT32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define SHIPPER_AVX2_ROT24(x) _mm256_shuffle_epi8((x), r24)
#define SHIPPER_AVX2_ROT16(x) _mm256_shuffle_epi8((x), r16)
#define SHIPPER_AVX2_ROT63(x) _mm256_xor_si256(_mm256_srli_epi64((x), 63), _mm256_add_epi64((x), (x)))

#define SHIPPER_AVX2_G(x, y)                                               \
    do {                                                                   \
        a = _mm256_add_epi64(_mm256_add_epi64(a, (x)), b);                 \
        d = SHIPPER_AVX2_ROT32(_mm256_xor_si256(d, a));                    \
        c = _mm256_add_epi64(c, d);                                        \
        b = SHIPPER_AVX2_ROT24(_mm256_xor_si256(b, c));                    \
        a = _mm256_add_epi64(_mm256_add_epi64(a, (y)), b);                 \
        d = SHIPPER_AVX2_ROT16(_mm256_xor_si256(d, a));                    \
        c = _mm256_add_epi64(c, d);                                        \
        b = SHIPPER_AVX2_ROT63(_mm256_xor_si256(b, c));                    \
    } while (0)

/* _mm256_set_epi64x takes lanes high to low: lane i gets the message word of column i. */
#define SHIPPER_AVX2_MSG4(r, j0, j1, j2, j3)                                                  \
    _mm256_inserti128_si256(                                                                  \
        _mm256_castsi128_si256(SHIPPER_SSE_MSG2(r, j0, j1)), SHIPPER_SSE_MSG2(r, j2, j3), 1)

/* The diagonal step keeps row 2 (the last one G computes, on the critical path) and rotates
 * rows 1, 3 and 4, whose permutes overlap G's tail: lane j then holds the diagonal G
 * number (j+3)%4, i.e. v[(j+3)%4], v[4+j], v[8+(j+1)%4], v[12+(j+2)%4]. */
#define SHIPPER_AVX2_ROUND(r)                                                                 \
    do {                                                                                      \
        SHIPPER_AVX2_G(SHIPPER_AVX2_MSG4(r, 0, 2, 4, 6), SHIPPER_AVX2_MSG4(r, 1, 3, 5, 7));  \
        a = _mm256_permute4x64_epi64(a, _MM_SHUFFLE(2, 1, 0, 3));                             \
        c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(0, 3, 2, 1));                             \
        d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(1, 0, 3, 2));                             \
        SHIPPER_AVX2_G(SHIPPER_AVX2_MSG4(r, 14, 8, 10, 12), SHIPPER_AVX2_MSG4(r, 15, 9, 11, 13)); \
        a = _mm256_permute4x64_epi64(a, _MM_SHUFFLE(0, 3, 2, 1));                             \
        c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(2, 1, 0, 3));                             \
        d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(1, 0, 3, 2));                             \
    } while (0)

#define SHIPPER_AVX2_BODY                                                                      \
    const __m256i r24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, \
                                         3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10); \
    const __m256i r16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, \
                                         2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9); \
    const __m256i h0 = _mm256_set_epi64x((long long)0xA54FF53A5F1D36F1ULL, (long long)0x3C6EF372FE94F82BULL, \
                                         (long long)0xBB67AE8584CAA73BULL, (long long)SHIPPER_B2B_H0); \
    __m256i a = h0;                                                                            \
    __m256i b = _mm256_set_epi64x((long long)0x5BE0CD19137E2179ULL, (long long)0x1F83D9ABFB41BD6BULL, \
                                  (long long)0x9B05688C2B3E6C1FULL, (long long)0x510E527FADE682D1ULL); \
    __m256i c = _mm256_set_epi64x((long long)0xA54FF53A5F1D36F1ULL, (long long)0x3C6EF372FE94F82BULL, \
                                  (long long)0xBB67AE8584CAA73BULL, (long long)0x6A09E667F3BCC908ULL); \
    __m256i d = _mm256_set_epi64x((long long)0x5BE0CD19137E2179ULL, (long long)~0x1F83D9ABFB41BD6BULL, \
                                  (long long)0x9B05688C2B3E6C1FULL, (long long)(0x510E527FADE682D1ULL ^ t0)); \
    __m128i res;                                                                               \
    SHIPPER_AVX2_ROUND(0); SHIPPER_AVX2_ROUND(1); SHIPPER_AVX2_ROUND(2); SHIPPER_AVX2_ROUND(3); \
    SHIPPER_AVX2_ROUND(4); SHIPPER_AVX2_ROUND(5); SHIPPER_AVX2_ROUND(6); SHIPPER_AVX2_ROUND(7); \
    SHIPPER_AVX2_ROUND(8); SHIPPER_AVX2_ROUND(9); SHIPPER_AVX2_ROUND(10); SHIPPER_AVX2_ROUND(11); \
    res = _mm256_castsi256_si128(_mm256_xor_si256(h0, _mm256_xor_si256(a, c)));               \
    shipper_b64url16_simd(res, out);

__attribute__((target("avx2"))) static void shipper_b2b_id_avx2_short(const uint64_t *m, uint64_t t0,
                                                                     char *out) {
    __m128i w[8];
    SHIPPER_B2B_LOADW(w, m, 1);
    SHIPPER_AVX2_BODY
}

__attribute__((target("avx2"))) static void shipper_b2b_id_avx2_full(const uint64_t *m, uint64_t t0,
                                                                    char *out) {
    __m128i w[8];
    SHIPPER_B2B_LOADW(w, m, 0);
    SHIPPER_AVX2_BODY
}

/* ---- SSE4.1: each row in two __m128i, l (columns 0, 1) and h (columns 2, 3). ---- */
#define SHIPPER_SSE_ROT32(x) _mm_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define SHIPPER_SSE_ROT24(x) _mm_shuffle_epi8((x), r24)
#define SHIPPER_SSE_ROT16(x) _mm_shuffle_epi8((x), r16)
#define SHIPPER_SSE_ROT63(x) _mm_xor_si128(_mm_srli_epi64((x), 63), _mm_add_epi64((x), (x)))

#define SHIPPER_SSE_HALF(xl, xh, R2, R3)                                       \
    do {                                                                       \
        al = _mm_add_epi64(_mm_add_epi64(al, (xl)), bl);                       \
        ah = _mm_add_epi64(_mm_add_epi64(ah, (xh)), bh);                       \
        dl = R2(_mm_xor_si128(dl, al));                                        \
        dh = R2(_mm_xor_si128(dh, ah));                                        \
        cl = _mm_add_epi64(cl, dl);                                            \
        ch = _mm_add_epi64(ch, dh);                                            \
        bl = R3(_mm_xor_si128(bl, cl));                                        \
        bh = R3(_mm_xor_si128(bh, ch));                                        \
    } while (0)


#define SHIPPER_SSE_STEP(r, k)                                                                   \
    do {                                                                                         \
        SHIPPER_SSE_HALF(SHIPPER_SSE_MSG2(r, k + 0, k + 2), SHIPPER_SSE_MSG2(r, k + 4, k + 6),   \
                         SHIPPER_SSE_ROT32, SHIPPER_SSE_ROT24);                                  \
        SHIPPER_SSE_HALF(SHIPPER_SSE_MSG2(r, k + 1, k + 3), SHIPPER_SSE_MSG2(r, k + 5, k + 7),   \
                         SHIPPER_SSE_ROT16, SHIPPER_SSE_ROT63);                                  \
    } while (0)

/* Row 2 becomes (v5 v6 | v7 v4), row 3 (v10 v11 | v8 v9), row 4 (v15 v12 | v13 v14); and back. */
#define SHIPPER_SSE_ROUND(r)                                                                     \
    do {                                                                                         \
        __m128i t_, u_;                                                                          \
        SHIPPER_SSE_STEP(r, 0);                                                                  \
        t_ = _mm_alignr_epi8(bh, bl, 8); u_ = _mm_alignr_epi8(bl, bh, 8); bl = t_; bh = u_;      \
        t_ = cl; cl = ch; ch = t_;                                                               \
        t_ = _mm_alignr_epi8(dl, dh, 8); u_ = _mm_alignr_epi8(dh, dl, 8); dl = t_; dh = u_;      \
        SHIPPER_SSE_STEP(r, 8);                                                                  \
        t_ = _mm_alignr_epi8(bl, bh, 8); u_ = _mm_alignr_epi8(bh, bl, 8); bl = t_; bh = u_;      \
        t_ = cl; cl = ch; ch = t_;                                                               \
        t_ = _mm_alignr_epi8(dh, dl, 8); u_ = _mm_alignr_epi8(dl, dh, 8); dl = t_; dh = u_;      \
    } while (0)

#define SHIPPER_SSE_BODY                                                                         \
    const __m128i r24 = _mm_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);     \
    const __m128i r16 = _mm_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);     \
    const __m128i h0l = _mm_set_epi64x((long long)0xBB67AE8584CAA73BULL, (long long)SHIPPER_B2B_H0); \
    __m128i al = h0l;                                                                            \
    __m128i ah = _mm_set_epi64x((long long)0xA54FF53A5F1D36F1ULL, (long long)0x3C6EF372FE94F82BULL); \
    __m128i bl = _mm_set_epi64x((long long)0x9B05688C2B3E6C1FULL, (long long)0x510E527FADE682D1ULL); \
    __m128i bh = _mm_set_epi64x((long long)0x5BE0CD19137E2179ULL, (long long)0x1F83D9ABFB41BD6BULL); \
    __m128i cl = _mm_set_epi64x((long long)0xBB67AE8584CAA73BULL, (long long)0x6A09E667F3BCC908ULL); \
    __m128i ch = _mm_set_epi64x((long long)0xA54FF53A5F1D36F1ULL, (long long)0x3C6EF372FE94F82BULL); \
    __m128i dl = _mm_set_epi64x((long long)0x9B05688C2B3E6C1FULL, (long long)(0x510E527FADE682D1ULL ^ t0)); \
    __m128i dh = _mm_set_epi64x((long long)0x5BE0CD19137E2179ULL, (long long)~0x1F83D9ABFB41BD6BULL); \
    SHIPPER_SSE_ROUND(0); SHIPPER_SSE_ROUND(1); SHIPPER_SSE_ROUND(2); SHIPPER_SSE_ROUND(3);      \
    SHIPPER_SSE_ROUND(4); SHIPPER_SSE_ROUND(5); SHIPPER_SSE_ROUND(6); SHIPPER_SSE_ROUND(7);      \
    SHIPPER_SSE_ROUND(8); SHIPPER_SSE_ROUND(9); SHIPPER_SSE_ROUND(10); SHIPPER_SSE_ROUND(11);    \
    (void)ah; (void)ch;                                                                          \
    shipper_b64url16_simd(_mm_xor_si128(h0l, _mm_xor_si128(al, cl)), out);

__attribute__((target("sse4.1,ssse3"))) static void shipper_b2b_id_sse41_short(const uint64_t *m, uint64_t t0,
                                                                              char *out) {
    __m128i w[8];
    SHIPPER_B2B_LOADW(w, m, 1);
    SHIPPER_SSE_BODY
}

__attribute__((target("sse4.1,ssse3"))) static void shipper_b2b_id_sse41_full(const uint64_t *m, uint64_t t0,
                                                                             char *out) {
    __m128i w[8];
    SHIPPER_B2B_LOADW(w, m, 0);
    SHIPPER_SSE_BODY
}

#endif /* SHIPPER_B2B_X86 */

/* The path in use: -1 until the first id chooses it. */
static int shipper_b2b_impl = -1;

/* Whether this CPU runs path `impl` (portable: always). */
static int shipper_blake2b_has_impl(int impl) {
#if SHIPPER_B2B_X86
    __builtin_cpu_init();
    if (impl == SHIPPER_B2B_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2");
    if (impl == SHIPPER_B2B_AVX2) return __builtin_cpu_supports("avx2") != 0;
    if (impl == SHIPPER_B2B_SSE41) return __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
#endif
    return impl == SHIPPER_B2B_PORTABLE;
}

/* The default path: avx512 where the CPU has it (valgrind 3.19 reports it absent, so the
 * callgrind benchmarks run avx2), else avx2, else portable. Not sse41: on the Zen 4 this
 * was measured on, one message at a time, its latency-bound rounds took 1.3x the portable
 * code's time (avx2: the same time as portable, 0.45x its instructions); it stays for
 * SHIPPER_BLAKE2B=sse41 and the tests. */
static int shipper_blake2b_default_impl(void) {
    if (shipper_blake2b_has_impl(SHIPPER_B2B_AVX512)) return SHIPPER_B2B_AVX512;
    return shipper_blake2b_has_impl(SHIPPER_B2B_AVX2) ? SHIPPER_B2B_AVX2 : SHIPPER_B2B_PORTABLE;
}

static const char *const shipper_b2b_impl_names[4] = {"portable", "sse41", "avx2", "avx512"};

/* Sets the path to `impl` (0 portable, 1 sse41, 2 avx2, 3 avx512; the default one when the CPU lacks
 * it), or for -1 to $SHIPPER_BLAKE2B's path if set and runnable, else the default. Returns
 * the path set. */
static int shipper_blake2b_set_impl(int impl) {
    if (impl < 0) {
        const char *env = getenv("SHIPPER_BLAKE2B");
        int i;
        if (env != NULL)
            for (i = 0; i < 4; i++)
                if (strcmp(env, shipper_b2b_impl_names[i]) == 0) impl = i;
    }
    if (impl < 0 || impl > 3 || !shipper_blake2b_has_impl(impl)) impl = shipper_blake2b_default_impl();
    shipper_b2b_impl = impl;
    return impl;
}

static inline int shipper_blake2b_impl(void) {
    int impl = shipper_b2b_impl;
    if (impl < 0) impl = shipper_blake2b_set_impl(-1);
    return impl;
}

/* The 22 `_id` characters (base64url of the 16-byte digest) of one last block m[0..15]
 * holding `t0` (<= 128) message bytes; `short_msg`: words 10..15 are zero (t0 <= 80). The
 * SIMD paths encode in vectors too; the portable one with shipper_b64url_words. */
static inline void shipper_b2b_id_block(const uint64_t *m, uint64_t t0, int short_msg, char *out) {
    uint64_t h[2];
    switch (shipper_blake2b_impl()) {
#if SHIPPER_B2B_X86
    case SHIPPER_B2B_AVX512: /* one id at a time: the avx2 code (avx512 pays with 8 lanes, blake2b_id4.h) */
    case SHIPPER_B2B_AVX2:
        if (short_msg) shipper_b2b_id_avx2_short(m, t0, out);
        else shipper_b2b_id_avx2_full(m, t0, out);
        return;
    case SHIPPER_B2B_SSE41:
        if (short_msg) shipper_b2b_id_sse41_short(m, t0, out);
        else shipper_b2b_id_sse41_full(m, t0, out);
        return;
#endif
    default:
        if (short_msg) shipper_b2b_id_portable_short(m, t0, h);
        else shipper_b2b_id_portable_full(m, t0, h);
        shipper_b64url_words(h, out);
        return;
    }
}

#endif /* SHIPPER_BLAKE2B_ID_H */
