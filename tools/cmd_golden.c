/*
 * cmd_golden.c - `kvq golden`: write the golden set with the reference, or
 * `--verify` it by regenerating into a temporary directory and comparing
 * every file byte for byte (spec S16.7).
 */
#define _POSIX_C_SOURCE 200809L
#include "golden/golden.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void golden_usage(FILE *out)
{
    fprintf(out,
            "usage: kvq golden [--verify] [DIR]\n"
            "  Writes the golden set (default DIR: conformance/golden) from the reference implementation,\n"
            "  or with --verify regenerates it into a temporary directory and compares every file byte for\n"
            "  byte with DIR. Exit status: 0 identical / written, 1 differences or failure, 2 usage error.\n");
}

/* Generates every case into `directory` (which must exist and be empty). */
static bool generate(const char *directory)
{
    golden_writer *w = golden_open(directory);
    if (w == NULL) return false;
    golden_cases_numerics(w);
    golden_cases_heads(w);
    golden_cases_calibration(w);
    golden_cases_attention(w);
    golden_cases_cache(w);
    golden_cases_files(w);
    golden_cases_peer(w);
    return golden_close(w);
}

/* Sorted names of the regular files in a directory. */
typedef struct name_list {
    char **names;
    size_t count;
} name_list;

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool list_files(const char *directory, name_list *out)
{
    DIR *dir = opendir(directory);
    if (dir == NULL) {
        fprintf(stderr, "kvq golden: cannot open directory %s: %s\n", directory, strerror(errno));
        return false;
    }
    out->names = NULL;
    out->count = 0;
    size_t capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        if (out->count == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            char **grown = realloc(out->names, capacity * sizeof *grown);
            if (grown == NULL) break;
            out->names = grown;
        }
        out->names[out->count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(out->names, out->count, sizeof *out->names, compare_names);
    return true;
}

static void free_list(name_list *list)
{
    for (size_t i = 0; i < list->count; i++) free(list->names[i]);
    free(list->names);
}

static bool same_bytes(const char *path_a, const char *path_b, long *first_difference)
{
    FILE *a = fopen(path_a, "rb"), *b = fopen(path_b, "rb");
    bool same = a != NULL && b != NULL;
    long offset = 0;
    while (same) {
        int ca = fgetc(a), cb = fgetc(b);
        if (ca != cb) {
            same = false; /* offset is the index of the first differing byte */
            break;
        }
        if (ca == EOF) break;
        offset++;
    }
    *first_difference = offset;
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

static void remove_directory(const char *directory)
{
    name_list list;
    if (!list_files(directory, &list)) return;
    char path[4096];
    for (size_t i = 0; i < list.count; i++) {
        snprintf(path, sizeof path, "%s/%s", directory, list.names[i]);
        remove(path);
    }
    free_list(&list);
    rmdir(directory);
}

static int verify(const char *directory)
{
    char temp[] = "/tmp/kvq-golden-verify-XXXXXX";
    if (mkdtemp(temp) == NULL) {
        fprintf(stderr, "kvq golden: cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    if (!generate(temp)) {
        remove_directory(temp);
        return 1;
    }
    name_list expected, present;
    if (!list_files(temp, &expected)) return 1;
    if (!list_files(directory, &present)) {
        free_list(&expected);
        remove_directory(temp);
        return 1;
    }
    size_t differ = 0, missing = 0, extra = 0, i = 0, j = 0;
    char a[4096], b[4096];
    while (i < expected.count || j < present.count) {
        int order = i == expected.count ? 1 : j == present.count ? -1 : strcmp(expected.names[i], present.names[j]);
        if (order < 0) {
            printf("missing:  %s (the reference writes it; %s lacks it)\n", expected.names[i], directory);
            missing++;
            i++;
        } else if (order > 0) {
            printf("extra:    %s (in %s, not written by the reference)\n", present.names[j], directory);
            extra++;
            j++;
        } else {
            snprintf(a, sizeof a, "%s/%s", temp, expected.names[i]);
            snprintf(b, sizeof b, "%s/%s", directory, present.names[j]);
            long at;
            if (!same_bytes(a, b, &at)) {
                printf("differs:  %s (first difference at byte %ld)\n", expected.names[i], at);
                differ++;
            }
            i++;
            j++;
        }
    }
    printf("golden --verify: %zu files regenerated, %zu differ, %zu missing, %zu extra: %s\n", expected.count,
           differ, missing, extra, differ + missing + extra == 0 ? "OK" : "MISMATCH");
    free_list(&expected);
    free_list(&present);
    remove_directory(temp);
    return differ + missing + extra == 0 ? 0 : 1;
}

static int write_set(const char *directory)
{
    if (mkdir(directory, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvq golden: cannot create %s: %s\n", directory, strerror(errno));
        return 1;
    }
    /* Generate beside it first, so a failure leaves the existing set as it was. */
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.new-XXXXXX", directory);
    if (mkdtemp(temp) == NULL) {
        fprintf(stderr, "kvq golden: cannot create a directory beside %s: %s\n", directory, strerror(errno));
        return 1;
    }
    if (!generate(temp)) {
        remove_directory(temp);
        fprintf(stderr, "kvq golden: generation failed; %s is unchanged\n", directory);
        return 1;
    }
    remove_directory(directory);
    if (rename(temp, directory) != 0) {
        fprintf(stderr, "kvq golden: cannot move %s to %s: %s\n", temp, directory, strerror(errno));
        return 1;
    }
    name_list list;
    if (list_files(directory, &list)) {
        printf("golden: wrote %zu files to %s (spec %s)\n", list.count, directory, KVQ_SPEC_VERSION_STRING);
        free_list(&list);
    }
    return 0;
}

int cmd_golden(int argc, char **argv)
{
    bool verify_mode = false;
    const char *directory = "conformance/golden";
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verify") == 0) {
            verify_mode = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            golden_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kvq golden: unknown option '%s'\n", argv[i]);
            golden_usage(stderr);
            return 2;
        } else if (positional++ == 0) {
            directory = argv[i];
        } else {
            fprintf(stderr, "kvq golden: unexpected argument '%s' (only one DIR)\n", argv[i]);
            return 2;
        }
    }
    return verify_mode ? verify(directory) : write_set(directory);
}
