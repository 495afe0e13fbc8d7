/*
 * bench_targets.c - the performance targets of issues 13 (CUDA decode
 * attention) and 12 item 8 (OpenCL beside CUDA), evaluated on bench.json for
 * the report: each target, the measured value, met or missed and by how
 * much. Targets are reported, never asserted (kvq bench exits 0 whatever
 * they say).
 */
#include "bench_results.h"
#include "bench_report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One verdict row; `at_most`: the goal is an upper limit (lower is better). */
static void verdict(FILE *out, const char *what, const char *measured_text, double measured, double target,
                    const char *unit, bool found, bool at_most)
{
    if (!found) {
        fprintf(out, "| %s | %s%g%s | not measured in this run | - |\n", what, at_most ? "<= " : ">= ", target, unit);
        return;
    }
    bool met = at_most ? measured <= target : measured >= target;
    fprintf(out, "| %s | %s%g%s | %s | %s by %.2f%s |\n", what, at_most ? "<= " : ">= ", target, unit, measured_text,
            met ? "met" : "missed", fabs(measured - target), unit);
}

/* Worst value of `field` over the "kvq" rows of `study` with this shape and format and context
 * >= min_context: the smallest, or the largest when `largest` (a field where lower is better). */
static bool worst_over(const json_value *study, const char *shape, const char *format, double min_context,
                       const char *field, bool largest, double *worst, double *at_context)
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
        if (!found || (largest ? v > *worst : v < *worst)) {
            *worst = v;
            *at_context = ctx;
        }
        found = true;
    }
    return found;
}

/* Whether `shape` of the study has one query head per KV head (MHA). */
static bool shape_is_mha(const json_value *study, const char *shape)
{
    const json_value *shapes = json_get(study, "shapes");
    for (size_t i = 0; i < json_length(shapes); i++) {
        const json_value *s = json_at(shapes, i);
        const char *name = json_get_string(s, "name");
        uint32_t q = 0;
        if (name != NULL && strcmp(name, shape) == 0) return json_get_u32(s, "query_heads_per_kv_head", &q) && q == 1u;
    }
    return false;
}

/* Issue 13's goals for a format of the CUDA study, by its row's fields: the speedup over the
 * fastest fp16 baseline (0: none), and for uniform 4-bit MHA the fraction of the bytes limit. */
static double cuda_speedup_goal(const json_value *row)
{
    uint32_t bits = 0, ppm = 0, sinks = 0;
    const char *scheme = json_get_string(row, "scheme");
    if (!json_get_u32(row, "bits", &bits) || scheme == NULL || strncmp(scheme, "uniform", 7) != 0) return 0.0;
    json_get_u32(row, "outlier_ppm", &ppm);
    json_get_u32(row, "n_sinks", &sinks);
    if (bits == 4u) return ppm == 0u && sinks == 0u ? 3.0 : 2.5; /* int4; int4 with 1% outliers and a sink */
    if (bits == 2u && ppm == 0u && sinks == 0u) return 5.0;
    return 0.0;
}

/* Each distinct (shape, format) of the study's kvq rows, in order, once. */
static void attention_targets(FILE *out, const char *study_name, const json_value *study, bool cuda)
{
    const json_value *rows = json_get(study, "results");
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *kind = json_get_string(r, "kind"), *shape = json_get_string(r, "shape"),
                   *format = json_get_string(r, "format");
        if (kind == NULL || strcmp(kind, "kvq") != 0 || shape == NULL || format == NULL) continue;
        bool seen = false; /* first kvq row of this (shape, format)? */
        for (size_t j = 0; j < i && !seen; j++) {
            const json_value *r2 = json_at(rows, j);
            const char *k2 = json_get_string(r2, "kind"), *s2 = json_get_string(r2, "shape"),
                       *f2 = json_get_string(r2, "format");
            seen = k2 != NULL && strcmp(k2, "kvq") == 0 && s2 != NULL && f2 != NULL && strcmp(s2, shape) == 0 &&
                   strcmp(f2, format) == 0;
        }
        if (seen) continue;
        double v = 0.0, at = 0.0;
        char what[256], text[128];
        if (!cuda) { /* issue 12 item 8: within 3x of the CUDA backend's fp32-profile path, same ABI call */
            bool found = worst_over(study, shape, format, 32768.0, "time_vs_cuda", true, &v, &at);
            snprintf(what, sizeof what, "%s: %s %s, time / CUDA fp32 path's at >= 32K tokens", study_name, shape, format);
            snprintf(text, sizeof text, "%.2fx (worst, at %.0f tokens)", v, at);
            verdict(out, what, text, v, 3.0, "x", found, true);
            continue;
        }
        const double goal = cuda_speedup_goal(r);
        if (goal == 0.0) continue;
        bool found = worst_over(study, shape, format, 32768.0, "speedup_vs_fastest_fp16", false, &v, &at);
        snprintf(what, sizeof what, "%s: %s %s, speedup over the fastest fp16 baseline at >= 32K tokens", study_name,
                 shape, format);
        snprintf(text, sizeof text, "%.2fx (worst, at %.0f tokens)", v, at);
        verdict(out, what, text, v, goal, "x", found, false);
        if (goal == 3.0 && shape_is_mha(study, shape)) {
            found = worst_over(study, shape, format, 32768.0, "copy_fraction", false, &v, &at);
            snprintf(what, sizeof what, "%s: %s %s, fraction of the bytes limit (copy bandwidth) at >= 32K tokens",
                     study_name, shape, format);
            snprintf(text, sizeof text, "%.0f%% (worst, at %.0f tokens)", 100.0 * v, at);
            verdict(out, what, text, 100.0 * v, 85.0, "%", found, false);
        }
    }
}

/* One format's TPOT and TTFT verdicts from an object with format, images and the two ratios. */
static void offload_verdicts(FILE *out, const json_value *r, const char *source)
{
    const char *format = json_get_string(r, "format");
    double tpot = 0.0, ttft = 0.0, images = 0.0;
    bool have_tpot = bench_field_number(r, "tpot_ratio", &tpot), have_ttft = bench_field_number(r, "ttft_ratio", &ttft);
    bench_field_number(r, "images", &images);
    char what[256], text[64];
    snprintf(what, sizeof what, "offload: TPOT fp16 / %s (%.0f images%s; paper: 4.3x)", format ? format : "?", images,
             source);
    snprintf(text, sizeof text, "%.2fx", tpot);
    verdict(out, what, text, tpot, 4.3, "x", have_tpot, false);
    snprintf(what, sizeof what, "offload: TTFT fp16 / %s (%.0f images%s; paper: 1.7x)", format ? format : "?", images,
             source);
    snprintf(text, sizeof text, "%.2fx", ttft);
    verdict(out, what, text, ttft, 1.7, "x", have_ttft, false);
}

/* The study's "ratios" (its summary at the largest prompt); a study stopped before it wrote them
 * is judged by its own rows at the largest prompt it measured (each row has both ratios). */
static void offload_targets(FILE *out, const json_value *study)
{
    const json_value *ratios = json_get(study, "ratios");
    for (size_t i = 0; i < json_length(ratios); i++) offload_verdicts(out, json_at(ratios, i), "");
    if (json_length(ratios) != 0) return;
    const json_value *rows = json_get(study, "results");
    double most = -1.0, images;
    for (size_t i = 0; i < json_length(rows); i++)
        if (bench_field_number(json_at(rows, i), "images", &images) && images > most) most = images;
    bool any = false;
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *format = json_get_string(r, "format");
        double t;
        if (format == NULL || strcmp(format, "fp16") == 0 || !bench_field_number(r, "images", &images) ||
            images != most || !bench_field_number(r, "tpot_ratio", &t))
            continue;
        offload_verdicts(out, r, ", from the rows of a stopped run");
        any = true;
    }
    if (!any) {
        verdict(out, "offload: TPOT fp16 / text-centric", "", 0.0, 4.3, "x", false, false);
        verdict(out, "offload: TTFT fp16 / text-centric", "", 0.0, 1.7, "x", false, false);
    }
}

void bench_report_targets(FILE *out, const json_value *studies)
{
    fputs("## Targets\n\nReported, not asserted (issue 13 for CUDA, issue 12 item 8 for OpenCL, the paper for the "
          "offload study). \"Worst\" is the least favourable value over the contexts of at least 32K tokens measured "
          "for that format.\n\n| target | goal | measured | verdict |\n|---|---|---|---|\n",
          out);
    static const char *const attention[] = {"attention_cuda", "attention_opencl"};
    for (size_t k = 0; k < 2; k++) {
        const json_value *study = json_get(studies, attention[k]);
        if (json_length(json_get(study, "results")) == 0) {
            char what[128];
            snprintf(what, sizeof what, "%s: 4-bit at >= 32K tokens", attention[k]);
            verdict(out, what, "", 0.0, 3.0, "x", false, k == 1);
            continue;
        }
        attention_targets(out, attention[k], study, k == 0);
    }
    offload_targets(out, json_get(studies, "offload_cuda"));
    fputc('\n', out);
}
