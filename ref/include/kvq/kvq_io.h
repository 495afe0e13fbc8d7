/*
 * kvq_io.h - checksums and the three file formats of kvq (spec S16).
 *
 * Every file is little-endian, written field by field (never a struct image),
 * and ends with the 32-byte SHA-256 of all bytes before it (S16.1). Readers
 * check, in this order (S16.2): open/read errors (KVQ_ERR_IO), a file shorter
 * than the fixed header (KVQ_ERR_FILE_TRUNCATED), the magic
 * (KVQ_ERR_FILE_CORRUPT), the format version (KVQ_ERR_FILE_VERSION), impossible
 * header fields (KVQ_ERR_FILE_CORRUPT), a file shorter than the header implies
 * (KVQ_ERR_FILE_TRUNCATED) or longer (KVQ_ERR_FILE_CORRUPT), the checksum
 * (KVQ_ERR_FILE_CORRUPT), then the data (KVQ_ERR_FILE_CORRUPT).
 *
 * A failed read leaves *out untouched and allocates nothing; a reader reads the
 * header first and never more than the size it implies. A failed write leaves
 * no file behind: it writes a new temporary file "<path>.tmp-XXXXXX" beside
 * path (created exclusively: never an existing file, never through a link) and
 * renames it to path on success, so concurrent readers and writers of one path
 * only ever see complete files (docs/GUARANTEES.md).
 * Objects returned through `T **out` are released with the matching *_free.
 */
#ifndef KVQ_KVQ_IO_H
#define KVQ_KVQ_IO_H

#include "kvq/kvq.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- S16.1 -- */
/* SHA-256 (FIPS 180-4). Incremental use: init, any number of updates, final. */
typedef struct kvq_sha256_ctx {
    uint32_t h[8];        /* chaining state */
    uint64_t n_bytes;     /* message length so far, in bytes */
    uint8_t block[64];    /* the incomplete block */
    uint32_t n_block;     /* bytes held in block (0 .. 63) */
} kvq_sha256_ctx;

void kvq_sha256_init(kvq_sha256_ctx *ctx);
void kvq_sha256_update(kvq_sha256_ctx *ctx, const void *data, size_t n);
/* Writes the digest; ctx must be initialised again before reuse. */
void kvq_sha256_final(kvq_sha256_ctx *ctx, uint8_t out[32]);
/* One-shot digest of n bytes (data may be NULL when n == 0). */
void kvq_sha256(const void *data, size_t n, uint8_t out[32]);
/* Digest of a whole file's bytes. KVQ_ERR_NULL_ARGUMENT, KVQ_ERR_IO. */
kvq_status kvq_sha256_file(const char *path, uint8_t out[32]);
/* 64 lower-case hex digits and a terminating NUL. */
void kvq_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Writes n bytes to path the way every kvq file is written: into a new temporary file
 * "<path>.tmp-XXXXXX" beside it (created exclusively: never an existing file, never through a
 * link), renamed to path when complete; on failure no file is left and path is as it was.
 * The kvq tool writes its other outputs (SVG plots, bench.json, reports) through it too.
 * KVQ_ERR_NULL_ARGUMENT, KVQ_ERR_OUT_OF_MEMORY, KVQ_ERR_IO (with the system's reason). */
kvq_status kvq_write_file(const char *path, const void *bytes, size_t n);

/* S16.1: removes the temporary files of the writes in progress in this process,
 * for a handler of a signal that ends it (SIGINT, SIGTERM, SIGHUP, SIGXFSZ, ...).
 * Async-signal-safe: it only reads a fixed table and calls unlink. A write
 * whose file it removed fails (KVQ_ERR_IO) if the process goes on. The library
 * installs no handler itself; the `kvq` tool does. */
void kvq_remove_temporary_files(void);

/* ---------------------------------------------------------------- S16.3 -- */
/* KV tensor file (.kvt): keys, values, modality and positions of a prompt. */
#define KVQ_KVFILE_MAGIC "KVQT"
#define KVQ_KVFILE_VERSION 1u

typedef enum kvq_dtype {
    KVQ_DTYPE_FP16 = 1, /* stored as IEEE binary16 bits */
    KVQ_DTYPE_FP32 = 2  /* stored as IEEE binary32 bits */
} kvq_dtype;

/* Which arrays a .kvt file holds (at least one of keys and values). */
#define KVQ_KVFILE_KEYS 0x1u
#define KVQ_KVFILE_VALUES 0x2u
#define KVQ_KVFILE_MODALITY 0x4u
#define KVQ_KVFILE_POSITIONS 0x8u

typedef struct kvq_kvfile {
    uint32_t n_layers, n_heads, n_tokens, head_dim;
    kvq_dtype dtype;       /* how the arrays are stored on disk */
    uint32_t flags;        /* KVQ_KVFILE_* */
    /* The spec version recorded in the file (informative; the writer always
     * writes KVQ_SPEC_VERSION_*). */
    uint16_t spec_major, spec_minor, spec_patch;
    /* [n_layers][n_heads][n_tokens][head_dim] fp32 (widened exactly from
     * fp16 when dtype is fp16); NULL when the flag is clear. One head slice
     * is contiguous: see kvq_kvfile_slice. */
    float *keys;
    float *values;
    uint8_t *modality;     /* [n_tokens] kvq_modality, or NULL */
    uint32_t *positions;   /* [n_tokens] <= KVQ_MAX_POSITION, or NULL */
} kvq_kvfile;

/* A zero-filled kvfile with the arrays that `flags` names (positions are
 * 0, 1, 2, ... and modality TEXT). KVQ_ERR_ZERO_SIZE, KVQ_ERR_BAD_ENUM
 * (dtype), KVQ_ERR_BAD_ARGUMENT (flags), KVQ_ERR_HEAD_DIM_PACKING
 * (head_dim > 1024), KVQ_ERR_OUT_OF_MEMORY. */
kvq_status kvq_kvfile_create(uint32_t n_layers, uint32_t n_heads, uint32_t n_tokens, uint32_t head_dim,
                             kvq_dtype dtype, uint32_t flags, kvq_kvfile **out);
void kvq_kvfile_free(kvq_kvfile *f);
/* Start of the [n_tokens][head_dim] head slice of `role` (KVQ_ROLE_KEYS or
 * KVQ_ROLE_VALUES) at (layer, head); NULL when out of range or absent. */
float *kvq_kvfile_slice(const kvq_kvfile *f, kvq_role role, uint32_t layer, uint32_t head);
/* S16.3. Validates everything first: values finite within the fp16 range and,
 * for dtype fp16, exactly representable (KVQ_ERR_BAD_ARGUMENT naming the first
 * index otherwise), modality <= 2, positions <= KVQ_MAX_POSITION. */
kvq_status kvq_kvfile_write(const char *path, const kvq_kvfile *f);
kvq_status kvq_kvfile_read(const char *path, kvq_kvfile **out);

/* ---------------------------------------------------------------- S16.4 -- */
/* Calibration file (.kvc): per-channel key ranges and per-layer codebooks. */
#define KVQ_CALIBRATION_MAGIC "KVQC"
#define KVQ_CALIBRATION_VERSION 1u

#define KVQ_CALIB_KEY_RANGES 0x1u
#define KVQ_CALIB_KEY_CODEBOOKS 0x2u
#define KVQ_CALIB_VALUE_CODEBOOKS 0x4u

typedef struct kvq_calibration {
    uint32_t n_layers, n_heads, head_dim;
    uint32_t flags;                   /* KVQ_CALIB_* */
    uint32_t outlier_ppm;             /* the outlier fraction the ranges were made for */
    kvq_channel_range *key_range;     /* [n_layers][n_heads][head_dim], or NULL */
    kvq_codebook *key_codebook;       /* [n_layers], or NULL */
    kvq_codebook *value_codebook;     /* [n_layers], or NULL */
} kvq_calibration;

/* Arrays that `flags` names, zero-filled (ranges [0, 0]; codebooks bits 0,
 * to be filled before writing). KVQ_ERR_ZERO_SIZE, KVQ_ERR_BAD_ARGUMENT
 * (flags), KVQ_ERR_HEAD_DIM_PACKING, KVQ_ERR_BUDGET_RANGE, KVQ_ERR_OUT_OF_MEMORY. */
kvq_status kvq_calibration_create(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t flags,
                                  uint32_t outlier_ppm, kvq_calibration **out);
void kvq_calibration_free(kvq_calibration *c);
/* The head_dim ranges of (layer, head); NULL when out of range or absent. */
kvq_channel_range *kvq_calibration_ranges(const kvq_calibration *c, uint32_t layer, uint32_t head);
/* S16.4. Validates first: ranges finite with lo <= hi (KVQ_ERR_BAD_CALIBRATION),
 * codebooks per S6.2 (KVQ_ERR_BAD_CODEBOOK). The reader rebuilds thresholds. */
kvq_status kvq_calibration_write(const char *path, const kvq_calibration *c);
kvq_status kvq_calibration_read(const char *path, kvq_calibration **out);

/* ---------------------------------------------------------------- S16.5 -- */
/* Quantized file (.kvqz): a qtensor for every layer, head and role. */
#define KVQ_QFILE_MAGIC "KVQZ"
#define KVQ_QFILE_VERSION 1u

typedef struct kvq_qfile {
    uint32_t n_layers, n_heads, head_dim, n_tokens;
    /* [n_layers][n_heads][2]: index (layer * n_heads + head) * 2 + role.
     * The qfile owns them; kvq_qfile_free releases each with kvq_qtensor_free. */
    kvq_qtensor **tensor;
} kvq_qfile;

/* A qfile with every tensor slot NULL; fill the slots before writing.
 * KVQ_ERR_ZERO_SIZE, KVQ_ERR_HEAD_DIM_PACKING, KVQ_ERR_OUT_OF_MEMORY. */
kvq_status kvq_qfile_create(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t n_tokens,
                            kvq_qfile **out);
void kvq_qfile_free(kvq_qfile *f);
/* The address of the slot for (layer, head, role); NULL when out of range. */
kvq_qtensor **kvq_qfile_slot(const kvq_qfile *f, uint32_t layer, uint32_t head, kvq_role role);
/* S16.5. Every slot must hold a qtensor with the file's n_tokens and head_dim
 * and the slot's role, consistent as S16.5 lists (KVQ_ERR_NULL_ARGUMENT,
 * KVQ_ERR_SIZE_MISMATCH, KVQ_ERR_BAD_ARGUMENT). */
kvq_status kvq_qfile_write(const char *path, const kvq_qfile *f);
kvq_status kvq_qfile_read(const char *path, kvq_qfile **out);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_KVQ_IO_H */
