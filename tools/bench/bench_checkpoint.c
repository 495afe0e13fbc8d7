/*
 * bench_checkpoint.c - bench.partial.json after every result row, so that a
 * run stopped by a time limit or a crash keeps what it measured (the GPU
 * machine's calls are cut at a fixed time; bench.json itself is written once,
 * at the end, with every study's closing members).
 *
 * The document is built in a memory stream by one json_writer; after a
 * complete row what it holds is a prefix of the document, which the writer's
 * stack of open containers closes into valid JSON.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "kvq/kvq_io.h"

static struct {
    FILE *stream;
    char *const *doc;
    const size_t *doc_size;
    char path[4096];
    bool active, warned;
} checkpoint;

void bench_checkpoint_start(FILE *stream, char *const *doc, const size_t *doc_size, const char *path)
{
    checkpoint.stream = stream;
    checkpoint.doc = doc;
    checkpoint.doc_size = doc_size;
    snprintf(checkpoint.path, sizeof checkpoint.path, "%s", path);
    checkpoint.active = true;
    checkpoint.warned = false;
}

void bench_checkpoint(bench_json *w)
{
    if (!checkpoint.active || w->failed || fflush(checkpoint.stream) != 0) return;
    const size_t n = *checkpoint.doc_size; /* open_memstream: valid after fflush */
    const size_t tail = json_writer_closing(w, NULL, 0);
    char *copy = malloc(n + tail + 1u);
    kvq_status st = KVQ_ERR_OUT_OF_MEMORY;
    if (copy != NULL) {
        memcpy(copy, *checkpoint.doc, n);
        json_writer_closing(w, copy + n, tail + 1u);
        st = kvq_write_file(checkpoint.path, copy, n + tail);
        free(copy);
    }
    if (st != KVQ_OK && !checkpoint.warned) {
        fprintf(stderr, "kvq bench: warning: cannot write the checkpoint %s: %s (the run goes on)\n", checkpoint.path,
                st == KVQ_ERR_OUT_OF_MEMORY ? "out of memory" : kvq_last_error());
        checkpoint.warned = true;
    }
}

void bench_checkpoint_stop(void) { checkpoint.active = false; }
