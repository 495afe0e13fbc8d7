/*
 * replay_main.c - runs a harness over files, without libFuzzer: the seeds and
 * past crashes as a CTest test under any compiler (fuzz.h).
 *
 * Usage: fuzz_replay_NAME [--suffix .EXT] PATH...
 * Each PATH is a file or a directory whose files (those ending in .EXT, when
 * given) are fed to LLVMFuzzerTestOneInput one by one, in name order. A
 * broken promise aborts, so the exit status is 0 only when every input ran.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, stat */
#include "fuzz.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *suffix = NULL;
static size_t n_inputs = 0;

static void run_file(const char *path)
{
    size_t size = 0;
    uint8_t *data = fuzz_read_file(path, &size);
    if (data == NULL) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    n_inputs++;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool wanted(const char *name)
{
    if (name[0] == '.') return false;
    if (suffix == NULL) return true;
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s does not exist\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (d == NULL) exit(2);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!wanted(e->d_name)) continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (grown == NULL) exit(2);
        names = grown;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    /* An empty directory (crashes/kvt holds only .gitkeep) leaves names NULL: qsort must not see it. */
    if (n > 1) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        run_file(file);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--suffix") == 0 && i + 1 < argc) {
            suffix = argv[++i];
            continue;
        }
        run_path(argv[i]);
    }
    fprintf(stderr, "replay: %zu inputs, every promise kept\n", n_inputs);
    return n_inputs > 0 ? 0 : 2;
}
