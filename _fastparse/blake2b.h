/* BLAKE2b (RFC 7693) and shipper's `_id` contract v2, header-only, for the Cython parser.
 *
 * The BLAKE2b part follows the reference implementation in RFC 7693, Appendix C
 * (M-J. Saarinen, J-P. Aumasson; the RFC's code is under the IETF Trust's simplified
 * BSD licence), with byte-wise buffering replaced by memcpy. `shipper_event_id` is the
 * contract (see _fastparse/_ids.py, its Python twin and reference):
 *
 *     _id = base64url_nopad(BLAKE2b-128(key || le64(offset)))
 *
 * where `key` is the per-generation bytes made by _ids.id_key(). With the agent's ids the
 * key is 71 bytes, so key and offset fit one 128-byte block: one compression per event,
 * no allocation, no Python object.
 */
#ifndef SHIPPER_BLAKE2B_H
#define SHIPPER_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t b[128];  /* input buffer */
    uint64_t h[8];   /* chained state */
    uint64_t t[2];   /* total number of bytes */
    size_t c;        /* pointer for b[] */
    size_t outlen;   /* digest size */
} shipper_blake2b_ctx;

#define SHIPPER_ROTR64(x, y) (((x) >> (y)) ^ ((x) << (64 - (y))))

static inline uint64_t shipper_b2b_get64(const uint8_t *p) {
    return ((uint64_t)p[0]) ^ ((uint64_t)p[1] << 8) ^ ((uint64_t)p[2] << 16) ^ ((uint64_t)p[3] << 24) ^
           ((uint64_t)p[4] << 32) ^ ((uint64_t)p[5] << 40) ^ ((uint64_t)p[6] << 48) ^ ((uint64_t)p[7] << 56);
}

#define SHIPPER_B2B_G(a, b, c, d, x, y)              \
    do {                                             \
        v[a] = v[a] + v[b] + (x);                    \
        v[d] = SHIPPER_ROTR64(v[d] ^ v[a], 32);      \
        v[c] = v[c] + v[d];                          \
        v[b] = SHIPPER_ROTR64(v[b] ^ v[c], 24);      \
        v[a] = v[a] + v[b] + (y);                    \
        v[d] = SHIPPER_ROTR64(v[d] ^ v[a], 16);      \
        v[c] = v[c] + v[d];                          \
        v[b] = SHIPPER_ROTR64(v[b] ^ v[c], 63);      \
    } while (0)

static const uint64_t shipper_blake2b_iv[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
    0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL,
};

static const uint8_t shipper_blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

/* The twelve rounds written out, so that every message index is a constant the compiler
 * folds (a loop over sigma costs 16 dependent loads per round). SHIPPER_B2B_MSG(i) is the
 * message word i: m[i], or 0 for the words a short last block leaves empty. */
#define SHIPPER_B2B_ROUND(r)                                                                        \
    do {                                                                                            \
        SHIPPER_B2B_G(0, 4, 8, 12, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][0]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][1]));   \
        SHIPPER_B2B_G(1, 5, 9, 13, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][2]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][3]));   \
        SHIPPER_B2B_G(2, 6, 10, 14, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][4]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][5]));  \
        SHIPPER_B2B_G(3, 7, 11, 15, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][6]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][7]));  \
        SHIPPER_B2B_G(0, 5, 10, 15, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][8]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][9]));  \
        SHIPPER_B2B_G(1, 6, 11, 12, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][10]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][11])); \
        SHIPPER_B2B_G(2, 7, 8, 13, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][12]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][13]));  \
        SHIPPER_B2B_G(3, 4, 9, 14, SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][14]), SHIPPER_B2B_MSG(shipper_blake2b_sigma[r][15]));  \
    } while (0)
#define SHIPPER_B2B_ROUNDS()                                                                        \
    do {                                                                                            \
        SHIPPER_B2B_ROUND(0); SHIPPER_B2B_ROUND(1); SHIPPER_B2B_ROUND(2); SHIPPER_B2B_ROUND(3);     \
        SHIPPER_B2B_ROUND(4); SHIPPER_B2B_ROUND(5); SHIPPER_B2B_ROUND(6); SHIPPER_B2B_ROUND(7);     \
        SHIPPER_B2B_ROUND(8); SHIPPER_B2B_ROUND(9); SHIPPER_B2B_ROUND(10); SHIPPER_B2B_ROUND(11);   \
    } while (0)

static inline void shipper_blake2b_compress(shipper_blake2b_ctx *ctx, int last) {
    uint64_t v[16], m[16];
    int i;
    for (i = 0; i < 8; i++) {
        v[i] = ctx->h[i];
        v[i + 8] = shipper_blake2b_iv[i];
    }
    v[12] ^= ctx->t[0];
    v[13] ^= ctx->t[1];
    if (last) v[14] = ~v[14];
    for (i = 0; i < 16; i++) m[i] = shipper_b2b_get64(&ctx->b[8 * i]);
#define SHIPPER_B2B_MSG(i) m[i]
    SHIPPER_B2B_ROUNDS();
#undef SHIPPER_B2B_MSG
    for (i = 0; i < 8; i++) ctx->h[i] ^= v[i] ^ v[i + 8];
}

/* The last (and only) block of an `_id` whose key and offset fill at most 80 bytes (the
 * agent's keys are 71): words 10..15 are zero, and the compiler drops their additions. */
static inline void shipper_blake2b_compress_short(shipper_blake2b_ctx *ctx) {
    uint64_t v[16], m[10];
    int i;
    for (i = 0; i < 8; i++) {
        v[i] = ctx->h[i];
        v[i + 8] = shipper_blake2b_iv[i];
    }
    v[12] ^= ctx->t[0];
    v[13] ^= ctx->t[1];
    v[14] = ~v[14];
    for (i = 0; i < 10; i++) m[i] = shipper_b2b_get64(&ctx->b[8 * i]);
#define SHIPPER_B2B_MSG(i) ((i) < 10 ? m[(i) < 10 ? (i) : 0] : (uint64_t)0)
    SHIPPER_B2B_ROUNDS();
#undef SHIPPER_B2B_MSG
    for (i = 0; i < 8; i++) ctx->h[i] ^= v[i] ^ v[i + 8];
}

/* Unkeyed BLAKE2b with a digest of `outlen` (1..64) bytes; returns -1 for a bad size. */
static inline int shipper_blake2b_init(shipper_blake2b_ctx *ctx, size_t outlen) {
    int i;
    if (outlen == 0 || outlen > 64) return -1;
    for (i = 0; i < 8; i++) ctx->h[i] = shipper_blake2b_iv[i];
    ctx->h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;
    ctx->t[0] = 0;
    ctx->t[1] = 0;
    ctx->c = 0;
    ctx->outlen = outlen;
    memset(ctx->b, 0, sizeof ctx->b);
    return 0;
}

static inline void shipper_blake2b_update(shipper_blake2b_ctx *ctx, const void *in, size_t inlen) {
    const uint8_t *p = (const uint8_t *)in;
    while (inlen > 0) {
        size_t n;
        if (ctx->c == 128) {  /* the buffer is full and more input follows: not the last block */
            ctx->t[0] += 128;
            if (ctx->t[0] < 128) ctx->t[1]++;
            shipper_blake2b_compress(ctx, 0);
            ctx->c = 0;
        }
        n = 128 - ctx->c;
        if (n > inlen) n = inlen;
        memcpy(ctx->b + ctx->c, p, n);
        ctx->c += n;
        p += n;
        inlen -= n;
    }
}

static inline void shipper_blake2b_final(shipper_blake2b_ctx *ctx, void *out) {
    size_t i;
    ctx->t[0] += ctx->c;
    if (ctx->t[0] < ctx->c) ctx->t[1]++;
    if (ctx->c < 128) memset(ctx->b + ctx->c, 0, 128 - ctx->c);
    shipper_blake2b_compress(ctx, 1);
    for (i = 0; i < ctx->outlen; i++) ((uint8_t *)out)[i] = (uint8_t)((ctx->h[i >> 3] >> (8 * (i & 7))) & 0xFF);
}

#define SHIPPER_ID_LEN 22

/* base64url without padding of a 16-byte digest given as its two little-endian words
 * (h[0] holds bytes 0..7): 22 characters. Each character is 6 bits of a big-endian
 * 64-bit window: bytes 0..5, 6..11, then 12..15 (whose last character takes the final 2
 * bits and 4 zero bits, as base64 pads). */
static inline uint64_t shipper_b2b_bswap64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_bswap64(x);
#else
    uint64_t y = 0;
    int i;
    for (i = 0; i < 8; i++) y = (y << 8) | ((x >> (8 * i)) & 0xFF);
    return y;
#endif
}

static inline void shipper_b64url_words(const uint64_t h[2], char out[SHIPPER_ID_LEN]) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = shipper_b2b_bswap64(h[0]), y = shipper_b2b_bswap64(h[1]);
    uint64_t z = (x << 48) | (y >> 16), w = y << 32;
    int i;
    for (i = 0; i < 8; i++) out[i] = a[(x >> (58 - 6 * i)) & 63];
    for (i = 0; i < 8; i++) out[8 + i] = a[(z >> (58 - 6 * i)) & 63];
    for (i = 0; i < 6; i++) out[16 + i] = a[(w >> (58 - 6 * i)) & 63];
}

#include "blake2b_id.h"

/* `_id` contract v2: writes the 22 characters (no NUL) of the id of the event starting at
 * byte `offset` of the file generation whose key (_ids.id_key) is key[0:keylen]. Keys of
 * at most 120 bytes (the agent's are 71) take the one-block path of blake2b_id.h (SIMD
 * where the CPU has it); longer ones the generic code above. */
static inline void shipper_event_id(const uint8_t *key, size_t keylen, uint64_t offset, char out[SHIPPER_ID_LEN]) {
    uint64_t h[2];
    if (keylen <= 120) {  /* one block: its message words straight from the key */
        uint64_t m[16];
        size_t full = keylen >> 3, r = keylen & 7, i, n = keylen <= 72 ? 10 : 16;
        for (i = 0; i < full; i++) m[i] = shipper_b2b_get64(key + 8 * i);
        if (r) {  /* the key's last r bytes, then the offset across two words */
            uint64_t t = 0;
            size_t j;
            for (j = 0; j < r; j++) t |= (uint64_t)key[8 * full + j] << (8 * j);
            m[full] = t | (offset << (8 * r));
            m[full + 1] = offset >> (64 - 8 * r);
            i = full + 2;
        } else {
            m[full] = offset;
            i = full + 1;
        }
        for (; i < n; i++) m[i] = 0;  /* words 10..15 are not read for short keys */
        shipper_b2b_id_block(m, keylen + 8, keylen <= 72, out);
        return;
    }
    {
        shipper_blake2b_ctx ctx;
        uint8_t le[8], digest[16];
        int i;
        for (i = 0; i < 8; i++) le[i] = (uint8_t)(offset >> (8 * i));
        shipper_blake2b_init(&ctx, 16);
        shipper_blake2b_update(&ctx, key, keylen);
        shipper_blake2b_update(&ctx, le, 8);
        shipper_blake2b_final(&ctx, digest);
        h[0] = shipper_b2b_get64(digest);
        h[1] = shipper_b2b_get64(digest + 8);
        shipper_b64url_words(h, out);
    }
}

#endif /* SHIPPER_BLAKE2B_H */
