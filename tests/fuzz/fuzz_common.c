/*
 * fuzz_common.c - scratch files and the abort on a broken promise (fuzz.h).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, nftw-free cleanup with opendir */
#include "fuzz.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_require_at(int ok, const char *file, int line, const char *format, ...)
{
    if (ok) return;
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s:%d: a promise of the spec is broken: ", file, line);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    abort();
}

static char scratch[256];

static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    if (d == NULL) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(scratch);
}

const char *fuzz_scratch_dir(void)
{
    if (scratch[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/kvq-fuzz-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        fuzz_require(mkdtemp(scratch) != NULL, "cannot create a scratch directory under %s", scratch);
        atexit(remove_scratch);
    }
    return scratch;
}

const char *fuzz_path(int slot, const char *name)
{
    static char paths[4][512];
    fuzz_require(slot >= 0 && slot < 4, "fuzz_path slot %d", slot);
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_scratch_dir(), name);
    return paths[slot];
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    fuzz_require(f != NULL, "cannot write %s", path);
    fuzz_require(size == 0 || fwrite(data, 1, size, f) == size, "cannot write %s", path);
    fuzz_require(fclose(f) == 0, "cannot write %s", path);
}

uint8_t *fuzz_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t capacity = 4096, n = 0, got;
    uint8_t *data = malloc(capacity);
    while (data != NULL && (got = fread(data + n, 1, capacity - n, f)) > 0) {
        n += got;
        if (n == capacity) {
            uint8_t *grown = realloc(data, capacity * 2);
            if (grown == NULL) free(data);
            data = grown;
            capacity *= 2;
        }
    }
    fclose(f);
    *size = n;
    return data;
}
