/*
 * bench_results.c - loads DIR/bench.json (schema BENCH_JSON_SCHEMA) and reads
 * numbers at dotted paths, for bench_plot.c and bench_report.c.
 */
#include "bench_results.h"
#include "bench.h"

#include <stdio.h>
#include <string.h>

json_value *bench_results_load(const char *dir)
{
    char path[4096], error[512];
    snprintf(path, sizeof path, "%s/%s", dir, BENCH_JSON_FILE);
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
