/*
 * bench_results.h - reading DIR/bench.json back for the plots and the report.
 */
#ifndef KVQ_BENCH_RESULTS_H
#define KVQ_BENCH_RESULTS_H

#include <stdbool.h>

#include "json.h"

/* Parses DIR/bench.json and checks its schema; NULL after printing why. */
json_value *bench_results_load(const char *dir);
/* The number at a dotted path ("time_ms.median") under object; false if absent. */
bool bench_field_number(const json_value *object, const char *path, double *out);

#endif /* KVQ_BENCH_RESULTS_H */
