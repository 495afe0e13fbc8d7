/*
 * bench_report.h - the parts of the report generator (bench_report.c renders
 * the document, bench_targets.c its targets section).
 */
#ifndef KVQ_BENCH_REPORT_H
#define KVQ_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "json.h"

/* The "## Whole-cache memory at 1M tokens" section (bench_capacity.c), after study (a)'s. */
void bench_report_capacity(FILE *out, const json_value *studies);

/* The plots `kvq bench plot` draws for a study (bench_plot.c): file names
 * under DIR and what each shows, headline first; 0 when the study has none. */
#define BENCH_MAX_PLOTS 2
typedef struct bench_plot_file {
    char name[96];
    char caption[96];
} bench_plot_file;
size_t bench_plot_files(const char *key, const json_value *study, bench_plot_file files[BENCH_MAX_PLOTS]);

/* The "## Targets" section for the "studies" object of bench.json. */
void bench_report_targets(FILE *out, const json_value *studies);

#endif /* KVQ_BENCH_REPORT_H */
