/*
 * fuzz_reader.h - the promises every file reader keeps (S16.1, S16.2), checked
 * by the harnesses of the three formats (fuzz_kvt.c, fuzz_kvc.c, fuzz_kvqz.c).
 */
#ifndef KVQ_FUZZ_READER_H
#define KVQ_FUZZ_READER_H

#include "fuzz.h"
#include "kvq/kvq.h"

#include <stdbool.h>

/* One format: read a file into an object, write the object, use it, free it. */
typedef struct fuzz_format {
    const char *suffix;     /* ".kvt" */
    size_t header_bytes;    /* the fixed header (S16.3-S16.5) */
    kvq_status (*read)(const char *path, void **out);
    kvq_status (*write)(const char *path, const void *object);
    /* What the object promises beyond being written back: it can be used by the library. */
    void (*use)(const void *object);
    void (*free)(void *object);
} fuzz_format;

/* Runs the reader on the input as given and, when it is long enough, again with its trailing
 * SHA-256 recomputed (so that mutations reach the data rules of step 8, S16.2), and checks:
 * a failed read leaves *out untouched with a message naming the file; a successful one gives an
 * object that writes back to the same bytes (the informative spec version aside, S16.1) and that
 * the library can use. */
void fuzz_reader_run(const fuzz_format *format, const uint8_t *data, size_t size);

#endif
