/*
 * bench_checkpoint.c - bench.partial.json after every result row, so that a
 * run stopped by a time limit or a crash keeps what it measured (the GPU
 * machine's calls are cut at a fixed time; bench.json itself is written once,
 * at the end, with every study's closing members).
 *
 * The document is built in a memory stream by one json_writer; after a
 * complete row what it holds is a prefix of the document. A copy of the
 * writer, on a stream of its own, closes the containers open inside the root,
 * lets the run add the members that end the document (its "study_dates", so
 * that the partial document is reportable) and closes the root: the same
 * writer writes both documents, so both are valid JSON.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "kvq/kvq_io.h"

static struct {
    FILE *stream;
    char *const *doc;
    const size_t *doc_size;
    char path[4096];
    bench_checkpoint_trailer *trailer;
    const void *trailer_ctx;
    bool active, warned;
} checkpoint;

void bench_checkpoint_start(FILE *stream, char *const *doc, const size_t *doc_size, const char *path,
                            bench_checkpoint_trailer *trailer, const void *trailer_ctx)
{
    checkpoint.stream = stream;
    checkpoint.doc = doc;
    checkpoint.doc_size = doc_size;
    snprintf(checkpoint.path, sizeof checkpoint.path, "%s", path);
    checkpoint.trailer = trailer;
    checkpoint.trailer_ctx = trailer_ctx;
    checkpoint.active = true;
    checkpoint.warned = false;
}

/* The text that ends the document w has written so far, into a new buffer (*size bytes, or NULL
 * when out of memory or the copy of the writer failed). w itself is not touched. */
static char *closing_text(const bench_json *w, size_t *size)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, size);
    if (out == NULL) return NULL;
    bench_json tail = *w; /* the writer's whole state is this struct: the copy goes on where w is */
    tail.out = out;
    while (tail.depth > 1) bench_json_end(&tail);
    if (tail.depth == 1 && checkpoint.trailer != NULL) checkpoint.trailer(&tail, checkpoint.trailer_ctx);
    if (tail.depth == 1) bench_json_end(&tail);
    bool ok = !tail.failed && tail.depth == 0 && ferror(out) == 0;
    if (fclose(out) != 0 || !ok) {
        free(text);
        return NULL;
    }
    return text;
}

void bench_checkpoint(bench_json *w)
{
    if (!checkpoint.active || w->failed || fflush(checkpoint.stream) != 0) return;
    const size_t n = *checkpoint.doc_size; /* open_memstream: valid after fflush */
    size_t tail_size = 0;
    char *tail = closing_text(w, &tail_size);
    char *copy = tail != NULL ? malloc(n + tail_size) : NULL;
    kvq_status st = KVQ_ERR_OUT_OF_MEMORY;
    if (copy != NULL) {
        memcpy(copy, *checkpoint.doc, n);
        memcpy(copy + n, tail, tail_size);
        st = kvq_write_file(checkpoint.path, copy, n + tail_size);
        free(copy);
    }
    free(tail);
    if (st != KVQ_OK && !checkpoint.warned) {
        fprintf(stderr, "kvq bench: warning: cannot write the checkpoint %s: %s (the run goes on)\n", checkpoint.path,
                st == KVQ_ERR_OUT_OF_MEMORY ? "out of memory" : kvq_last_error());
        checkpoint.warned = true;
    }
}

void bench_checkpoint_stop(void) { checkpoint.active = false; }
