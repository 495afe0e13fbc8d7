/*
 * sha256.c - SHA-256 as FIPS 180-4 defines it (S16.1).
 *
 * Written for clarity: one 64-byte block at a time, big-endian words, the
 * eight working variables named a .. h as in the standard.
 */
#include "internal.h"
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t round_constant[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

/* FIPS 180-4 6.2.2: fold one 64-byte block into the state. */
static void compress(uint32_t h[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               (uint32_t)block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t sum1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t choose = (e & f) ^ (~e & g);
        uint32_t t1 = hh + sum1 + choose + round_constant[i] + w[i];
        uint32_t sum0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = sum0 + majority;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

/* FIPS 180-4 5.3.3: the initial hash value. */
void kvq_sha256_init(kvq_sha256_ctx *ctx)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, initial, sizeof initial);
    ctx->n_bytes = 0;
    ctx->n_block = 0;
    memset(ctx->block, 0, sizeof ctx->block);
}

void kvq_sha256_update(kvq_sha256_ctx *ctx, const void *data, size_t n)
{
    const uint8_t *bytes = data;
    ctx->n_bytes += n;
    while (n > 0) {
        size_t take = 64u - ctx->n_block;
        if (take > n) take = n;
        memcpy(ctx->block + ctx->n_block, bytes, take);
        ctx->n_block += (uint32_t)take;
        bytes += take;
        n -= take;
        if (ctx->n_block == 64u) {
            compress(ctx->h, ctx->block);
            ctx->n_block = 0;
        }
    }
}

/* FIPS 180-4 5.1.1: append bit 1, zeros, and the 64-bit big-endian bit length. */
void kvq_sha256_final(kvq_sha256_ctx *ctx, uint8_t out[32])
{
    uint64_t n_bits = ctx->n_bytes * 8u;
    ctx->block[ctx->n_block++] = 0x80;
    if (ctx->n_block > 56u) {
        memset(ctx->block + ctx->n_block, 0, 64u - ctx->n_block);
        compress(ctx->h, ctx->block);
        ctx->n_block = 0;
    }
    memset(ctx->block + ctx->n_block, 0, 56u - ctx->n_block);
    for (int i = 0; i < 8; i++) ctx->block[56 + i] = (uint8_t)(n_bits >> (56 - 8 * i));
    compress(ctx->h, ctx->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(ctx->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->h[i];
    }
}

void kvq_sha256(const void *data, size_t n, uint8_t out[32])
{
    kvq_sha256_ctx ctx;
    kvq_sha256_init(&ctx);
    if (n > 0) kvq_sha256_update(&ctx, data, n);
    kvq_sha256_final(&ctx, out);
}

/* S16.1: digest of a file, read in chunks so any size works. */
kvq_status kvq_sha256_file(const char *path, uint8_t out[32])
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    FILE *file = fopen(path, "rb");
    if (file == NULL) return kvq_fail(KVQ_ERR_IO, "%s: cannot be opened for reading: %s", path, strerror(errno));
    kvq_sha256_ctx ctx;
    kvq_sha256_init(&ctx);
    uint8_t chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) kvq_sha256_update(&ctx, chunk, got);
    bool failed = ferror(file) != 0;
    int read_errno = errno;
    fclose(file);
    if (failed) return kvq_fail(KVQ_ERR_IO, "%s: read error: %s", path, strerror(read_errno));
    kvq_sha256_final(&ctx, out);
    return KVQ_OK;
}

void kvq_sha256_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15u];
    }
    hex[64] = '\0';
}
