/*
 * bench_targets.c - the performance targets of issue 5, evaluated on
 * bench.json for the report: each target, the measured value, met or missed
 * and by how much. Targets are reported, never asserted (kvq bench exits 0
 * whatever they say).
 */
#include "bench_results.h"
#include "bench_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void verdict(FILE *out, const char *what, const char *measured_text, double measured, double target,
                    const char *unit, bool found)
{
    if (!found) {
        fprintf(out, "| %s | %g%s | not measured in this run | - |\n", what, target, unit);
        return;
    }
    bool met = measured >= target;
    fprintf(out, "| %s | %g%s | %s | %s by %.2f%s |\n", what, target, unit, measured_text, met ? "met" : "missed",
            fabs(measured - target), unit);
}

/* Worst value of `field` over the "kvq" rows of `study` with this format, its
 * shape and context >= min_context. */
static bool worst_over(const json_value *study, const char *shape, const char *format, double min_context,
                       const char *field, double *worst, double *at_context)
{
    const json_value *rows = json_get(study, "results");
    bool found = false;
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *s = json_get_string(r, "shape"), *f = json_get_string(r, "format"), *k = json_get_string(r, "kind");
        double ctx, v;
        /* Only the backend's own choice ("kvq"): the other kernels' rows ("kvq-kernel") are comparisons. */
        if (s == NULL || f == NULL || k == NULL || strcmp(k, "kvq") != 0 || strcmp(s, shape) != 0 || strcmp(f, format) != 0)
            continue;
        if (!bench_field_number(r, "context", &ctx) || ctx < min_context || !bench_field_number(r, field, &v)) continue;
        if (!found || v < *worst) {
            *worst = v;
            *at_context = ctx;
        }
        found = true;
    }
    return found;
}

/* The distinct (shape, format) pairs of kvq rows with `bits`, in order. */
static void attention_targets(FILE *out, const char *study_name, const json_value *study, uint32_t bits, double speedup,
                              bool bandwidth)
{
    const json_value *rows = json_get(study, "results");
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *kind = json_get_string(r, "kind"), *shape = json_get_string(r, "shape"),
                   *format = json_get_string(r, "format");
        uint32_t b = 0;
        if (kind == NULL || strcmp(kind, "kvq") != 0 || shape == NULL || format == NULL ||
            !json_get_u32(r, "bits", &b) || b != bits)
            continue;
        bool seen = false; /* first row of this (shape, format)? */
        for (size_t j = 0; j < i && !seen; j++) {
            const char *s2 = json_get_string(json_at(rows, j), "shape"),
                       *f2 = json_get_string(json_at(rows, j), "format");
            seen = s2 != NULL && f2 != NULL && strcmp(s2, shape) == 0 && strcmp(f2, format) == 0;
        }
        if (seen) continue;
        double v = 0.0, at = 0.0;
        char what[256], text[128];
        bool found = worst_over(study, shape, format, 32768.0, "speedup_vs_fastest_fp16", &v, &at);
        snprintf(what, sizeof what, "%s: %s %s, speedup over the fastest fp16 baseline at >= 32K tokens", study_name,
                 shape, format);
        snprintf(text, sizeof text, "%.2fx (worst, at %.0f tokens)", v, at);
        verdict(out, what, text, v, speedup, "x", found);
        if (bandwidth) {
            found = worst_over(study, shape, format, 32768.0, "copy_fraction", &v, &at);
            snprintf(what, sizeof what, "%s: %s %s, fraction of copy bandwidth at >= 32K tokens", study_name, shape,
                     format);
            snprintf(text, sizeof text, "%.0f%% (worst, at %.0f tokens)", 100.0 * v, at);
            v *= 100.0;
            verdict(out, what, text, v, 80.0, "%", found);
        }
    }
}

static void offload_targets(FILE *out, const json_value *study)
{
    const json_value *ratios = json_get(study, "ratios");
    if (json_length(ratios) == 0) {
        verdict(out, "offload: TPOT fp16 / text-centric", "", 0.0, 4.3, "x", false);
        verdict(out, "offload: TTFT fp16 / text-centric", "", 0.0, 1.7, "x", false);
        return;
    }
    for (size_t i = 0; i < json_length(ratios); i++) {
        const json_value *r = json_at(ratios, i);
        const char *format = json_get_string(r, "format");
        double tpot = 0.0, ttft = 0.0, images = 0.0;
        bool have_tpot = bench_field_number(r, "tpot_ratio", &tpot),
             have_ttft = bench_field_number(r, "ttft_ratio", &ttft);
        bench_field_number(r, "images", &images);
        char what[256], text[64];
        snprintf(what, sizeof what, "offload: TPOT fp16 / %s (%.0f images; paper: 4.3x)", format ? format : "?",
                 images);
        snprintf(text, sizeof text, "%.2fx", tpot);
        verdict(out, what, text, tpot, 4.3, "x", have_tpot);
        snprintf(what, sizeof what, "offload: TTFT fp16 / %s (%.0f images; paper: 1.7x)", format ? format : "?",
                 images);
        snprintf(text, sizeof text, "%.2fx", ttft);
        verdict(out, what, text, ttft, 1.7, "x", have_ttft);
    }
}

void bench_report_targets(FILE *out, const json_value *studies)
{
    fputs("## Targets\n\nReported, not asserted (issue 5). \"Worst\" is the smallest value over the contexts of at "
          "least 32K tokens measured for that format.\n\n| target | goal | measured | verdict |\n|---|---|---|---|\n",
          out);
    static const char *const attention[] = {"attention_cuda", "attention_opencl"};
    for (size_t k = 0; k < 2; k++) {
        const json_value *study = json_get(studies, attention[k]);
        if (json_length(json_get(study, "results")) == 0) {
            char what[128];
            snprintf(what, sizeof what, "%s: 4-bit speedup at >= 32K tokens", attention[k]);
            verdict(out, what, "", 0.0, 3.5, "x", false);
            continue;
        }
        attention_targets(out, attention[k], study, 4u, 3.5, true);
        attention_targets(out, attention[k], study, 2u, 6.0, false);
    }
    offload_targets(out, json_get(studies, "offload_cuda"));
    fputc('\n', out);
}
