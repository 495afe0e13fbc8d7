/*
 * bench_results.h - reading DIR/bench.json (or a stopped run's bench.partial.json) back for the
 * plots, the report and --keep.
 */
#ifndef KVQ_BENCH_RESULTS_H
#define KVQ_BENCH_RESULTS_H

#include <stdbool.h>

#include "json.h"

/* Parses DIR/bench.json, or DIR/bench.partial.json when there is no bench.json (a note on stderr
 * when both are there), and checks its schema; NULL after printing why. *file (if not NULL) is set
 * to the name read, BENCH_JSON_FILE or BENCH_PARTIAL_FILE. */
json_value *bench_results_load(const char *dir, const char **file);
/* The number at a dotted path ("time_ms.median") under object; false if absent. */
bool bench_field_number(const json_value *object, const char *path, double *out);

#endif /* KVQ_BENCH_RESULTS_H */
