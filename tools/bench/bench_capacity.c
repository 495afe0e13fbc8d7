/*
 * bench_capacity.c - the report's "Whole-cache memory" section: how much
 * device memory a whole 32-layer, 7B-shaped cache (llama7b-mha: 32 KV heads
 * x 128 per layer) of 1,048,576 tokens needs in each format of study (a),
 * from the bytes the study measured per layer (issue 13 asks the bench to
 * say which formats fit one GPU).
 *
 * The bytes per token of a format are its bytes_read at the largest context
 * measured divided by that context: codes, params, precision bytes, fp16
 * rows and outliers, i.e. what the cache stores for attention, params of
 * online key blocks and the sink included. The device's memory is the MiB
 * count that bench_cuda_device.c writes into the study's "driver" text.
 */
#include "bench.h"
#include "bench_report.h"
#include "bench_results.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CAPACITY_SHAPE "llama7b-mha"
#define CAPACITY_LAYERS 32.0
#define CAPACITY_TOKENS 1048576.0

/* The "%zu MiB" of the driver text, or 0. */
static double device_mib(const json_value *study)
{
    const char *text = json_get_string(study, "driver");
    const char *unit = text != NULL ? strstr(text, " MiB") : NULL;
    if (unit == NULL) return 0.0;
    const char *start = unit;
    while (start > text && start[-1] >= '0' && start[-1] <= '9') start--;
    return start < unit ? strtod(start, NULL) : 0.0;
}

void bench_report_capacity(FILE *out, const json_value *studies)
{
    const json_value *study = json_get(studies, bench_study_key(BENCH_ATTENTION_CUDA));
    const json_value *rows = json_get(study, "results");
    if (json_length(rows) == 0) return;
    const double mib = device_mib(study);
    fputs("## Whole-cache memory at 1M tokens\n\n", out);
    fprintf(out,
            "A 32-layer cache shaped like " CAPACITY_SHAPE " (32 KV heads x 128 per layer) of 1,048,576 tokens, "
            "from the bytes study (a) read per layer at its largest context (codes, params, precision, fp16 rows "
            "and outliers). Device memory: %s.\n\n",
            mib > 0.0 ? "as the study records it" : "not recorded in this run");
    fputs("| format | bytes per token and layer | whole cache, GB | of the device's memory |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *shape = json_get_string(r, "shape"), *format = json_get_string(r, "format"),
                   *kind = json_get_string(r, "kind");
        if (shape == NULL || format == NULL || kind == NULL || strcmp(shape, CAPACITY_SHAPE) != 0) continue;
        if (strcmp(kind, "kvq") != 0 && strcmp(kind, "baseline") != 0) continue;
        /* The row of this format at the largest context, taken once (the first row of the format). */
        bool first = true;
        double best_ctx = 0.0, best_bytes = 0.0;
        for (size_t j = 0; j < json_length(rows); j++) {
            const json_value *q = json_at(rows, j);
            const char *s2 = json_get_string(q, "shape"), *f2 = json_get_string(q, "format"),
                       *k2 = json_get_string(q, "kind");
            if (s2 == NULL || f2 == NULL || k2 == NULL || strcmp(s2, shape) != 0 || strcmp(f2, format) != 0 ||
                strcmp(k2, kind) != 0)
                continue;
            if (j < i) first = false;
            double ctx, bytes;
            if (bench_field_number(q, "context", &ctx) && bench_field_number(q, "bytes_read", &bytes) &&
                ctx > best_ctx) {
                best_ctx = ctx;
                best_bytes = bytes;
            }
        }
        if (!first || best_ctx <= 0.0) continue;
        const double per_token = best_bytes / best_ctx, whole = per_token * CAPACITY_LAYERS * CAPACITY_TOKENS;
        fprintf(out, "| %s | %.0f | %.1f | ", format, per_token, whole / 1e9);
        if (mib > 0.0) {
            const double fraction = whole / (mib * 1048576.0);
            fprintf(out, "%.0f%%%s |\n", 100.0 * fraction, fraction <= 1.0 ? " (fits)" : " (does not fit)");
        } else {
            fputs("- |\n", out);
        }
    }
    fputc('\n', out);
}
