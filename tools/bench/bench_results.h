/*
 * bench_results.h - reading DIR/bench.json (or a stopped run's bench.partial.json) back for the
 * plots, the report and --keep.
 */
#ifndef KVQ_BENCH_RESULTS_H
#define KVQ_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* Parses DIR/bench.json, or DIR/bench.partial.json when there is no bench.json (a note on stderr
 * when both are there), and checks its schema; NULL after printing why. *file (if not NULL) is set
 * to the name read, BENCH_JSON_FILE or BENCH_PARTIAL_FILE. */
json_value *bench_results_load(const char *dir, const char **file);
/* The number at a dotted path ("time_ms.median") under object; false if absent. */
bool bench_field_number(const json_value *object, const char *path, double *out);
/* DIR/name itself (--resume: BENCH_PARTIAL_FILE, and BENCH_JSON_FILE beside it), schema checked;
 * NULL after printing why. */
json_value *bench_results_load_file(const char *dir, const char *name);
/* The row of study's "results" whose "format" is `format` and whose members keys[0..n) are the
 * unsigned integers values[0..n); NULL if there is none. */
const json_value *bench_results_row(const json_value *study, const char *format, const char *const *keys,
                                    const uint64_t *values, size_t n);

#endif /* KVQ_BENCH_RESULTS_H */
