/*
 * io_common.h - little-endian writing and reading shared by the three file
 * formats (S16.1, S16.2); not installed.
 *
 * Writers build the whole file in memory, field by field, then append the
 * SHA-256 and write a temporary file beside path, renamed to path on success.
 * Readers load the header, check it, load at most the size it implies, then
 * check the rest in the order of S16.2; every read is preceded by a bounds
 * check.
 */
#ifndef KVQ_IO_COMMON_H
#define KVQ_IO_COMMON_H

#include "internal.h"
#include "sha256.h"

#include <stdio.h>

/* A growing byte buffer. After an allocation failure `failed` is set and
 * later puts do nothing; kvq_writer_commit then reports KVQ_ERR_OUT_OF_MEMORY. */
typedef struct kvq_writer {
    uint8_t *data;
    size_t size, capacity;
    bool failed;
} kvq_writer;

void kvq_writer_init(kvq_writer *w);
void kvq_put_bytes(kvq_writer *w, const void *bytes, size_t n);
void kvq_put_u8(kvq_writer *w, uint8_t v);
void kvq_put_u16(kvq_writer *w, uint16_t v);
void kvq_put_u32(kvq_writer *w, uint32_t v);
void kvq_put_f32(kvq_writer *w, float v); /* the IEEE binary32 bits, as a u32 */
/* S16.1: the magic, format version and spec version (bytes 0 .. 13). */
void kvq_put_preamble(kvq_writer *w, const char magic[4], uint32_t format_version);
/* S16.1/S16.2: append the SHA-256, write a new temporary file "<path>.tmp-XXXXXX" (created
 * exclusively, so never an existing file or a planted link), rename it to path. Frees the buffer
 * in every case; on failure no file is left. */
kvq_status kvq_writer_commit(kvq_writer *w, const char *path);
#define KVQ_TEMPORARY_INFIX ".tmp-"

/* A file in memory, read in two steps so that no more is read than the header allows (S16.2). */
typedef struct kvq_file_image {
    const char *path;
    uint8_t *data;
    size_t size, capacity;
    uint64_t known_size; /* a regular file's size from fstat, else 0 */
    bool more;           /* kvq_file_read_rest stopped at its bound with input left */
    FILE *file;          /* open from kvq_file_open until kvq_file_read_rest */
} kvq_file_image;

/* S16.2 steps 1-4: opens path (KVQ_ERR_IO, with the system's reason) and reads the fixed header:
 * shorter than header_bytes is KVQ_ERR_FILE_TRUNCATED, a wrong magic KVQ_ERR_FILE_CORRUPT, another
 * format version KVQ_ERR_FILE_VERSION. On failure the image is released. */
kvq_status kvq_file_open(const char *path, const char magic[4], uint32_t format_version, size_t header_bytes,
                         kvq_file_image *image);
/* Reads the rest of the file, but never more than max_bytes + 1 in all (the largest file the
 * header allows, plus one byte that tells a longer input): an endless input ends at the bound.
 * image->data may move: pointers into the header taken before the call are stale after it.
 * KVQ_ERR_IO, KVQ_ERR_OUT_OF_MEMORY; the caller releases the image in every case. */
kvq_status kvq_file_read_rest(kvq_file_image *image, uint64_t max_bytes);
void kvq_file_release(kvq_file_image *image);

/* Little-endian loads at a byte offset the caller has bounds-checked. */
uint16_t kvq_get_u16(const uint8_t *p);
uint32_t kvq_get_u32(const uint8_t *p);
float kvq_get_f32(const uint8_t *p);

/* S16.2 steps 2-4: at least `header_bytes` (else TRUNCATED), the magic
 * (CORRUPT), then the format version (VERSION). */
kvq_status kvq_check_preamble(const kvq_file_image *image, const char magic[4], uint32_t format_version,
                              size_t header_bytes);
/* S16.2 step 6: the file must be exactly `payload` bytes plus the digest. */
kvq_status kvq_check_length(const kvq_file_image *image, uint64_t payload);
/* S16.2 step 7: the last 32 bytes are the SHA-256 of the rest. */
kvq_status kvq_check_digest(const kvq_file_image *image);

/* Re-raise the message kvq_last_error() holds as KVQ_ERR_FILE_CORRUPT with a
 * "<path>: <context>: " prefix (the message is copied first, because
 * kvq_fail writes into the same buffer). */
kvq_status kvq_fail_corrupt_with_last(const char *path, const char *context);

/* Overflow-checked a * b; false when the product exceeds `limit`. */
bool kvq_mul_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t *product);
/* fp16 bits that are neither infinity nor NaN. */
static inline bool kvq_fp16_bits_finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

/* The largest payload any kvq file may describe (2^62 bytes): a bound that
 * keeps every size computation far from uint64 overflow. */
#define KVQ_FILE_MAX_BYTES ((uint64_t)1 << 62)

#endif /* KVQ_IO_COMMON_H */
