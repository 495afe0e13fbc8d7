/*
 * fuzz_reader.c - the reader promises of fuzz_reader.h.
 */
#include "fuzz_reader.h"

#include "kvq/kvq_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_once(const fuzz_format *format, const uint8_t *data, size_t size)
{
    char in_name[32], out_name[32];
    snprintf(in_name, sizeof in_name, "in%s", format->suffix);
    snprintf(out_name, sizeof out_name, "out%s", format->suffix);
    const char *in = fuzz_path(0, in_name), *out = fuzz_path(1, out_name);
    fuzz_write_file(in, data, size);
    static int marker;
    void *sentinel = &marker, *object = sentinel;
    kvq_status st = format->read(in, &object);
    if (st != KVQ_OK) {
        /* S16.1: a failed read returns no object; S13.2: the message names the file */
        fuzz_require(object == sentinel, "a failed read (%s) wrote *out", kvq_status_name(st));
        fuzz_require(st == KVQ_ERR_FILE_TRUNCATED || st == KVQ_ERR_FILE_CORRUPT || st == KVQ_ERR_FILE_VERSION ||
                         st == KVQ_ERR_OUT_OF_MEMORY,
                     "a read of a present file failed with %s", kvq_status_name(st));
        fuzz_require(strstr(kvq_last_error(), in) != NULL, "the message \"%s\" does not name the file",
                     kvq_last_error());
        return;
    }
    fuzz_require(object != NULL && object != sentinel, "a successful read gave no object");
    /* S16.1: write(read(file)) is the file, except the spec version that the writer records. */
    st = format->write(out, object);
    fuzz_require(st == KVQ_OK, "a file the reader accepted cannot be written back: %s: %s", kvq_status_name(st),
                 kvq_last_error());
    size_t back_size = 0;
    uint8_t *back = fuzz_read_file(out, &back_size);
    fuzz_require(back != NULL, "cannot read back %s", out);
    uint8_t *expected = malloc(size);
    fuzz_require(expected != NULL, "out of memory");
    memcpy(expected, data, size);
    memcpy(expected + 8, back + 8, 6); /* bytes 8-13: the writer's spec version */
    kvq_sha256(expected, size - 32, expected + size - 32);
    fuzz_require(back_size == size && memcmp(back, expected, size) == 0,
                 "writing back what was read gives other bytes (%zu vs %zu)", back_size, size);
    free(expected);
    free(back);
    format->use(object);
    format->free(object);
}

void fuzz_reader_run(const fuzz_format *format, const uint8_t *data, size_t size)
{
    run_once(format, data, size);
    if (size < format->header_bytes + 32) return;
    /* The same bytes with a valid checksum: structure and data rules, not the digest, must decide. */
    uint8_t *sealed = malloc(size);
    fuzz_require(sealed != NULL, "out of memory");
    memcpy(sealed, data, size);
    kvq_sha256(sealed, size - 32, sealed + size - 32);
    if (memcmp(sealed, data, size) != 0) run_once(format, sealed, size);
    free(sealed);
}
