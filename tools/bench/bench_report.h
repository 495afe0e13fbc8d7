/*
 * bench_report.h - the parts of the report generator (bench_report.c renders
 * the document, bench_targets.c its targets section).
 */
#ifndef KVQ_BENCH_REPORT_H
#define KVQ_BENCH_REPORT_H

#include <stdio.h>

#include "json.h"

/* The "## Whole-cache memory at 1M tokens" section (bench_capacity.c), after study (a)'s. */
void bench_report_capacity(FILE *out, const json_value *studies);

/* The "## Targets" section for the "studies" object of bench.json. */
void bench_report_targets(FILE *out, const json_value *studies);

#endif /* KVQ_BENCH_REPORT_H */
