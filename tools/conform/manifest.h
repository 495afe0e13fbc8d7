/*
 * manifest.h - the golden set's manifest.json as C structures (S16.7), and
 * loading one of its array files with its size and checksum checked.
 */
#ifndef KVQ_CONFORM_MANIFEST_H
#define KVQ_CONFORM_MANIFEST_H

#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* S16.7 `class` of a file. */
typedef enum manifest_class {
    MANIFEST_INPUT,
    MANIFEST_EXACT,
    MANIFEST_BOUNDARY,
    MANIFEST_BOUNDED,
    MANIFEST_REFERENCE
} manifest_class;

/* S16.7 `dtype` of an array file. */
typedef enum manifest_dtype {
    MANIFEST_NO_DTYPE,
    MANIFEST_U8,
    MANIFEST_U16,
    MANIFEST_U32,
    MANIFEST_U64,
    MANIFEST_F32
} manifest_dtype;

enum { MANIFEST_MAX_RANK = 4 };

/* The largest array file a manifest may describe (2^40 bytes, beyond any golden set; S1.4's largest
 * head slice of fp32 is 2^42 bytes, far more than a conformance case needs): shape products and
 * byte counts above it are refused before anything is allocated or read. */
#define MANIFEST_MAX_ARRAY_BYTES ((uint64_t)1 << 40)

typedef struct manifest_file {
    const char *label;
    manifest_class cls;
    const char *file;       /* NULL for a `status` entry */
    const char *kind;       /* "array", "kvt", "kvc", "kvqz", "status" */
    manifest_dtype dtype;   /* arrays only */
    uint32_t rank;
    uint32_t shape[MANIFEST_MAX_RANK];
    uint64_t bytes;
    const char *sha256;     /* 64 lower-case hex digits; NULL for status */
} manifest_file;

typedef struct manifest_case {
    const char *name;
    const char *section;
    const char *operation;
    const json_value *params;
    manifest_file *files;
    size_t n_files;
} manifest_case;

typedef struct manifest {
    const char *spec_version;
    manifest_case *cases;
    size_t n_cases;
    json_value *root; /* owns every string above */
} manifest;

/* Reads DIR/manifest.json and checks its structure (format, version, every
 * case and file entry, sizes consistent with dtype and shape, file names
 * without '/'). On failure writes a message naming what is wrong. */
bool manifest_load(const char *directory, manifest *out, char *error, size_t error_size);
void manifest_free(manifest *m);

const manifest_case *manifest_find_case(const manifest *m, const char *name);
const manifest_file *manifest_case_file(const manifest_case *c, const char *label);

size_t manifest_dtype_size(manifest_dtype dtype);
const char *manifest_dtype_name(manifest_dtype dtype);

/* An array file's contents. */
typedef struct golden_array {
    manifest_dtype dtype;
    uint32_t rank;
    uint32_t shape[MANIFEST_MAX_RANK];
    size_t count;       /* elements */
    void *data;         /* little-endian elements converted to host order; never NULL */
    bool checksum_ok;   /* the bytes hash to the manifest's sha256 */
} golden_array;

/* Reads DIR/<f->file>: the size must equal the manifest's `bytes`; the
 * SHA-256 is compared and reported in checksum_ok (not an error, so that a
 * file the user wrote, e.g. for --check-outputs, can be loaded the same way). */
bool golden_array_load(const char *directory, const manifest_file *f, golden_array *out, char *error,
                       size_t error_size);
void golden_array_free(golden_array *a);

/* Whether DIR/<name> exists (a regular file). */
bool manifest_file_exists(const char *directory, const char *name);

#endif
