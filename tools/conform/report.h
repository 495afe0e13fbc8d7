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
    size_t cases, passed, failed, skipped, errors;
    uint64_t boundary_accepted;
    double worst_attention_ratio; /* -1 when the level judged no attention output */
    const conform_result *first_failure; /* the first failed or errored case */
} level_summary;

void summarize_level(const conform_run *run, int level, level_summary *out);

/* --require-level and --fail-on-skip: whether the results so far meet them;
 * when not, `why` says which level or skip stands in the way. */
bool requirements_met(const conform_run *run, int level_low, int level_high, char *why, size_t why_size);

/* Header lines (backend, device, caps, seed, golden set). */
void report_header(FILE *out, const conform_run *run, const char *golden_spec_version, size_t golden_cases);
/* One line per failed (FAIL) or unfinished (ERROR) case, printed as the run goes. */
void report_failure_line(FILE *out, const conform_result *r);
/* The table, skipped reasons, reference-only cases and first failures. */
void report_summary(FILE *out, const conform_run *run, int level_low, int level_high);
/* The full diagnostic of one failure (several lines). */
void report_diagnostic(FILE *out, const conform_run *run, const conform_result *r);

/* Both write PATH.tmp and rename it over PATH, so PATH is always a complete
 * document: the runner rewrites them after every case, and a run that is
 * interrupted leaves reports of what ran ("complete": false). */
/* Writes `write`'s document to PATH.tmp and renames it to PATH (the shared part of the two). */
bool report_replace_file(const char *path, bool (*write)(FILE *out, const conform_run *run, int low, int high),
                         const conform_run *run, int low, int high);
bool report_json(const char *path, const conform_run *run, int level_low, int level_high);
bool report_junit(const char *path, const conform_run *run, int level_low, int level_high);

#endif
