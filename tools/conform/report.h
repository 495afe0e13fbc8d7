/*
 * report.h - what a run reports: the header (who is judged), the summary
 * table per level with the first failure of each level, and the JSON and
 * JUnit XML files (docs/CLI.md describes their content).
 */
#ifndef KVQ_CONFORM_REPORT_H
#define KVQ_CONFORM_REPORT_H

#include "conform.h"

/* Totals of one level. */
typedef struct level_summary {
    size_t cases, passed, failed, skipped;
    uint64_t boundary_accepted;
    double worst_attention_ratio; /* -1 when the level judged no attention output */
    const conform_result *first_failure;
} level_summary;

void summarize_level(const conform_run *run, int level, level_summary *out);

/* Header lines (backend, device, caps, seed, golden set). `device` may be NULL. */
void report_header(FILE *out, const conform_run *run, const char *device, const char *golden_spec_version,
                   size_t golden_cases);
/* One line per failed case, printed as the run goes. */
void report_failure_line(FILE *out, const conform_result *r);
/* The table, skipped reasons, reference-only cases and first failures. */
void report_summary(FILE *out, const conform_run *run, int level_low, int level_high);
/* The full diagnostic of one failure (several lines). */
void report_diagnostic(FILE *out, const conform_result *r);

bool report_json(const char *path, const conform_run *run, const char *device, int level_low, int level_high);
bool report_junit(const char *path, const conform_run *run, int level_low, int level_high);

#endif
