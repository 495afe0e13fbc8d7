/*
 * io_common.h - little-endian writing and reading shared by the three file
 * formats (S16.1, S16.2); not installed.
 *
 * Writers build the whole file in memory, field by field, then append the
 * SHA-256 and write "<path>.tmp", renamed to path on success. Readers load
 * the whole file, then check it in the order of S16.2 with a cursor whose
 * every read is preceded by a bounds check.
 */
#ifndef KVQ_IO_COMMON_H
#define KVQ_IO_COMMON_H

#include "internal.h"
#include "sha256.h"

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
/* S16.1/S16.2: append the SHA-256, write path.tmp, rename it to path. Frees
 * the buffer in every case; on failure no file is left. */
kvq_status kvq_writer_commit(kvq_writer *w, const char *path);

/* A whole file in memory (S16.2 step 1). */
typedef struct kvq_file_image {
    const char *path;
    uint8_t *data;
    size_t size;
} kvq_file_image;

/* KVQ_ERR_IO when the file cannot be opened or read, KVQ_ERR_OUT_OF_MEMORY. */
kvq_status kvq_file_load(const char *path, kvq_file_image *image);
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
