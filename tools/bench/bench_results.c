/*
 * bench_results.c - loads DIR/bench.json (schema BENCH_JSON_SCHEMA), or the
 * checkpoint DIR/bench.partial.json of a run stopped before its end, and reads
 * numbers at dotted paths, for bench_plot.c, bench_report.c and --keep.
 */
#include "bench_results.h"
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool file_absent(const char *path) { return access(path, F_OK) != 0 && errno == ENOENT; }

/* bench.json, or bench.partial.json only when there is no bench.json: a finished run's document is
 * the one to use; the checkpoint is what a run that never wrote one leaves. */
static const char *results_file(const char *dir)
{
    char path[4096], partial[4096];
    snprintf(path, sizeof path, "%s/%s", dir, BENCH_JSON_FILE);
    snprintf(partial, sizeof partial, "%s/%s", dir, BENCH_PARTIAL_FILE);
    if (!file_absent(path)) {
        if (!file_absent(partial))
            fprintf(stderr,
                    "kvq bench: note: %s is there too (a run that stopped before its end); using %s (move it "
                    "away to use the stopped run's rows)\n",
                    partial, path);
        return BENCH_JSON_FILE;
    }
    return file_absent(partial) ? BENCH_JSON_FILE : BENCH_PARTIAL_FILE;
}

static json_value *load_named(const char *dir, const char *name)
{
    char path[4096], error[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_value *doc = json_parse_file(path, error, sizeof error);
    if (doc == NULL) {
        fprintf(stderr, "kvq bench: %s\n", error);
        return NULL;
    }
    const char *schema = json_get_string(doc, "schema");
    if (schema == NULL || strcmp(schema, BENCH_JSON_SCHEMA) != 0 ||
        json_type_of(json_get(doc, "studies")) != JSON_OBJECT) {
        fprintf(stderr, "kvq bench: %s: not a %s document (\"schema\" and \"studies\")\n", path, BENCH_JSON_SCHEMA);
        json_free(doc);
        return NULL;
    }
    return doc;
}

json_value *bench_results_load(const char *dir, const char **file)
{
    const char *name = results_file(dir);
    json_value *doc = load_named(dir, name);
    if (doc != NULL && file != NULL) *file = name;
    return doc;
}

json_value *bench_results_load_file(const char *dir, const char *name) { return load_named(dir, name); }

const json_value *bench_results_row(const json_value *study, const char *format, const char *const *keys,
                                    const uint64_t *values, size_t n)
{
    const json_value *rows = json_get(study, "results");
    for (size_t r = 0; r < json_length(rows); r++) {
        const json_value *row = json_at(rows, r);
        const char *f = json_get_string(row, "format");
        bool match = f != NULL && strcmp(f, format) == 0;
        for (size_t k = 0; match && k < n; k++) {
            uint64_t v;
            match = json_u64(json_get(row, keys[k]), &v) && v == values[k];
        }
        if (match) return row;
    }
    return NULL;
}

bool bench_field_number(const json_value *object, const char *path, double *out)
{
    char key[128];
    const json_value *v = object;
    while (v != NULL && *path != '\0') {
        const char *dot = strchr(path, '.');
        size_t len = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof key) return false;
        memcpy(key, path, len);
        key[len] = '\0';
        v = json_get(v, key);
        path += len + (dot != NULL ? 1u : 0u);
    }
    return v != NULL && json_number(v, out);
}
