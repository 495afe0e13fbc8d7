/*
 * acc_report.c - the rows of `kvq accuracy` and their reports (accuracy.h): a
 * text table and a JSON document (schema ACC_SCHEMA). Both say that this is an
 * accuracy score and not conformance, print the reference points beside the
 * scores, and fail nothing unless the user gave a threshold.
 */
#define _POSIX_C_SOURCE 200809L
#include "accuracy.h"

#include "json_write.h"

#include "kvq/kvq_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *acc_status_name(acc_status s)
{
    static const char *const names[] = {"ok", "failed", "crashed", "timeout", "not claimed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

acc_row *acc_report_add(acc_report *r)
{
    if (r->n_rows >= ACC_MAX_ROWS) return NULL;
    acc_row *row = &r->rows[r->n_rows++];
    memset(row, 0, sizeof *row);
    return row;
}

/* A threshold is exceeded by a larger NMSE, and by one that is not a number. */
static bool exceeds(double nmse, double threshold) { return !isnan(threshold) && !(nmse <= threshold); }

static void append(char *why, size_t size, const char *format, const char *a, uint32_t bits, double v, double t)
{
    size_t used = strlen(why);
    if (used + 1 < size) snprintf(why + used, size - used, format, used > 0 ? "; " : "", a, bits, v, t);
}

size_t acc_report_failures(const acc_report *r, char *why, size_t size)
{
    size_t n = 0;
    why[0] = '\0';
    for (size_t i = 0; i < r->n_rows; i++) {
        const acc_row *row = &r->rows[i];
        if (row->reference) continue; /* a width asked for with --bits and not claimed (ACC_MISSING) counts */
        if (row->status != ACC_OK) {
            size_t used = strlen(why);
            if (used + 1 < size)
                snprintf(why + used, size - used, "%s%u bits: %s", used > 0 ? "; " : "", row->bits,
                         acc_status_name(row->status));
            n++;
            continue;
        }
        double a = acc_nmse(&row->worst.m[ACC_ATTENTION]);
        if (exceeds(a, r->max_nmse)) {
            append(why, size, "%s%s at %u bits: NMSE %.3g > --max-nmse %g", "attention", row->bits, a, r->max_nmse);
            n++;
        }
        for (int k = ACC_KEYS; k <= ACC_VALUES; k++) {
            double v = acc_nmse(&row->worst.m[k]);
            if (exceeds(v, r->max_nmse_kv)) {
                append(why, size, "%s%s at %u bits: NMSE %.3g > --max-nmse-kv %g", acc_metric_names[k], row->bits, v,
                       r->max_nmse_kv);
                n++;
            }
        }
    }
    return n;
}

/* ---- text ---------------------------------------------------------------- */

static void put_metric(FILE *out, const acc_metric *m, bool with_rel)
{
    if (!m->has) {
        fprintf(out, "  %9s", "-");
        if (with_rel) fprintf(out, " %8s", "-");
        return;
    }
    fprintf(out, "  %9.3g", acc_nmse(m));
    if (with_rel) fprintf(out, " %8.3g", m->max_rel);
}

static void text_row(FILE *out, const acc_report *r, const acc_row *row)
{
    char source[40];
    snprintf(source, sizeof source, "%s%.33s", row->reference ? "ref: " : "", row->format);
    if (row->status != ACC_OK) {
        fprintf(out, "%4u  %-32s %s: %s\n", row->bits, source, acc_status_name(row->status), row->message);
        return;
    }
    for (size_t i = 0; i < r->data->n_points; i++) {
        fprintf(out, "%4u  %-32s %-22s", row->bits, i == 0 ? source : "", r->data->points[i].point->name);
        for (int k = 0; k < ACC_METRICS; k++) put_metric(out, &row->points[i].m[k], k != ACC_ARITH);
        fputc('\n', out);
    }
}

/* The largest arithmetic NMSE of the judged source's rows, and at which width. */
static bool worst_arith(const acc_report *r, double *v, uint32_t *bits)
{
    bool found = false;
    for (size_t i = 0; i < r->n_rows; i++) {
        const acc_row *row = &r->rows[i];
        double a = acc_nmse(&row->worst.m[ACC_ARITH]);
        if (row->reference || row->status != ACC_OK || !row->worst.m[ACC_ARITH].has) continue;
        if (!found || !(a <= *v)) {
            *v = a;
            *bits = row->bits;
        }
        found = true;
    }
    return found;
}

void acc_report_text(FILE *out, const acc_report *r)
{
    fprintf(out, "kvq accuracy: %s\n", r->source);
    if (r->device[0] != '\0') fprintf(out, "  device:  %s\n", r->device);
    for (size_t i = 0; i < r->data->n_points; i++) {
        const acc_point *p = r->data->points[i].point;
        fprintf(out, "  %s %s: %u heads x %u tokens x %u channels, %u quer%s per head (S14 %s profile)\n",
                i == 0 ? "data:   " : "        ", p->name, p->n_heads, p->n_tokens, p->head_dim, p->n_q,
                p->n_q == 1 ? "y" : "ies", p->profile == KVQ_SYNTH_REALISTIC ? "realistic" : "stress");
    }
    fputs("           keys rotated by RoPE (positions 0..n-1), as attention reads them; attention without RoPE\n"
          "  scores:  NMSE = sum (x - y)^2 / sum y^2 over a point's heads; max rel = max |x - y| / max |y| of one\n"
          "           head's tensor (the worst head); y = the original fp32 keys and values, and attention over them\n"
          "           in double. attn arith: the output against double attention over the source's own values\n"
          "           (the kernel's arithmetic alone).\n"
          "  This is an accuracy score, not conformance: it measures how close a format comes to the original\n"
          "  data and says nothing about whether it implements kvq's spec (kvq conform judges that).\n\n",
          out);
    fprintf(out, "%4s  %-32s %-22s", "bits", "source", "point");
    for (int k = 0; k < ACC_METRICS; k++) fprintf(out, k == ACC_ARITH ? "  %9s" : "  %18s", acc_metric_titles[k]);
    fprintf(out, "\n%4s  %-32s %-22s", "", "", "");
    for (int k = 0; k < ACC_METRICS; k++)
        k == ACC_ARITH ? fprintf(out, "  %9s", "NMSE") : fprintf(out, "  %9s %8s", "NMSE", "max rel");
    fputc('\n', out);
    for (uint32_t b = 0; b < r->n_bits; b++) {
        for (size_t i = 0; i < r->n_rows; i++)
            if (r->rows[i].bits == r->bits[b]) text_row(out, r, &r->rows[i]);
        fputc('\n', out);
    }
    fputs("reference points (for comparison; kvq derives no accuracy threshold):\n", out);
    double arith = 0.0;
    uint32_t at = 0;
    if (worst_arith(r, &arith, &at))
        fprintf(out, "  attn arith: llama.cpp's test-backend-ops passes flash attention at NMSE <= %g against its CPU\n"
                     "    backend on the same quantized K/V; this source's worst: %.3g (%u bits)\n",
                ACC_LLAMA_CPP_FA_NMSE, arith, at);
    else
        fprintf(out, "  attn arith: llama.cpp's test-backend-ops passes flash attention at NMSE <= %g against its CPU\n"
                     "    backend on the same quantized K/V; this source has no attention output to compare\n",
                ACC_LLAMA_CPP_FA_NMSE);
    fputs("  ref: rows: kvq's own format and S17's peer formats at the same width on the same data, computed by\n"
          "    the reference (KIVI keeps its newest values in fp16)\n",
          out);
    char why[2048];
    size_t n = acc_report_failures(r, why, sizeof why);
    bool thresholds = !isnan(r->max_nmse) || !isnan(r->max_nmse_kv);
    if (n > 0)
        fprintf(out, "result: FAIL (%s)\n", why);
    else if (thresholds)
        fputs("result: scored; within the thresholds given (--max-nmse, --max-nmse-kv)\n", out);
    else
        fputs("result: scored (no threshold given: --max-nmse X and --max-nmse-kv X fail the run above X)\n", out);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_metric(FILE *out, const char *key, const acc_metric *m)
{
    fprintf(out, "\"%s\": ", key);
    if (!m->has) {
        fputs("null", out);
        return;
    }
    fputs("{\"nmse\": ", out);
    json_put_double(out, acc_nmse(m));
    fputs(", \"max_rel\": ", out);
    json_put_double(out, m->max_rel);
    fputc('}', out);
}

static void json_score(FILE *out, const acc_score *s)
{
    for (int k = 0; k < ACC_METRICS; k++) {
        if (k > 0) fputs(", ", out);
        json_metric(out, acc_metric_names[k], &s->m[k]);
    }
}

static void json_threshold(FILE *out, const char *key, double v)
{
    fprintf(out, "\"%s\": ", key);
    json_put_double(out, v); /* NAN: null, not given */
}

static void json_row(FILE *out, const acc_report *r, const acc_row *row)
{
    fprintf(out, "    {\"source\": \"%s\", \"format\": ", row->reference ? "reference" : r->from_files ? "files" : "backend");
    json_put_string(out, row->format);
    fputs(", \"detail\": ", out);
    json_put_string(out, row->detail);
    fprintf(out, ", \"bits\": %u, \"status\": \"%s\", \"message\": ", row->bits, acc_status_name(row->status));
    json_put_string(out, row->message);
    fputs(", \"attention_by\": ", out);
    json_put_string(out, row->attention_by);
    fputs(",\n     \"points\": [", out);
    for (size_t i = 0; row->status == ACC_OK && i < r->data->n_points; i++) {
        fprintf(out, "%s{\"point\": \"%s\", ", i > 0 ? ", " : "", r->data->points[i].point->name);
        json_score(out, &row->points[i]);
        fputc('}', out);
    }
    fputs("],\n     \"worst\": {", out);
    if (row->status == ACC_OK) json_score(out, &row->worst);
    fputs("}}", out);
}

bool acc_report_json(const char *path, const acc_report *r)
{
    char *doc = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&doc, &size);
    if (out == NULL) return false;
    fprintf(out, "{\n  \"schema\": \"%s\",\n  \"kvq_version\": \"%s\",\n  \"spec_version\": \"%s\",\n", ACC_SCHEMA,
            KVQ_TOOL_VERSION, KVQ_SPEC_VERSION_STRING);
    fputs("  \"kind\": \"accuracy score, not conformance\",\n  \"source\": ", out);
    json_put_string(out, r->source);
    fputs(",\n  \"argument\": ", out);
    json_put_string(out, r->argument);
    fputs(",\n  \"device\": ", out);
    json_put_string(out, r->device);
    fputs(",\n  \"definitions\": {\"nmse\": \"sum of (x - y)^2 over sum of y^2, over every element of a point's "
          "heads\", \"max_rel\": \"max |x - y| / max |y| of one head's tensor, the worst head\", \"y\": \"keys, "
          "values: the original fp32 values; attention: double attention (no RoPE, scale 1/sqrt(head_dim)) over "
          "them; attention_arith: double attention over the source's own dequantized values\"},\n  \"points\": [",
          out);
    for (size_t i = 0; i < r->data->n_points; i++) {
        const acc_point *p = r->data->points[i].point;
        fprintf(out, "%s{\"name\": \"%s\", \"profile\": \"%s\", \"n_heads\": %u, \"n_tokens\": %u, \"head_dim\": %u, "
                     "\"n_q\": %u, \"seed\": %llu}",
                i > 0 ? ", " : "", p->name, p->profile == KVQ_SYNTH_REALISTIC ? "realistic" : "stress", p->n_heads,
                p->n_tokens, p->head_dim, p->n_q, (unsigned long long)p->seed);
    }
    fputs("],\n  \"reference_points\": [{\"name\": \"llama.cpp test-backend-ops FLASH_ATTN_EXT\", \"metric\": "
          "\"attention_arith.nmse\", \"value\": ",
          out);
    json_put_double(out, ACC_LLAMA_CPP_FA_NMSE);
    fputs(", \"meaning\": \"a backend against llama.cpp's CPU backend on the same quantized K/V\"}],\n  "
          "\"thresholds\": {",
          out);
    json_threshold(out, "max_nmse", r->max_nmse);
    fputs(", ", out);
    json_threshold(out, "max_nmse_kv", r->max_nmse_kv);
    fputs("},\n  \"bits\": [", out);
    for (uint32_t b = 0; b < r->n_bits; b++) fprintf(out, "%s%u", b > 0 ? ", " : "", r->bits[b]);
    fputs("],\n  \"rows\": [\n", out);
    for (size_t i = 0; i < r->n_rows; i++) {
        json_row(out, r, &r->rows[i]);
        fputs(i + 1 < r->n_rows ? ",\n" : "\n", out);
    }
    char why[2048];
    size_t n = acc_report_failures(r, why, sizeof why);
    fprintf(out, "  ],\n  \"result\": \"%s\",\n  \"failures\": ", n > 0 ? "fail" : "scored");
    json_put_string(out, why);
    fputs("\n}\n", out);
    bool ok = fclose(out) == 0;
    kvq_status st = ok ? kvq_write_file(path, doc, size) : KVQ_ERR_OUT_OF_MEMORY;
    free(doc);
    if (st != KVQ_OK) fprintf(stderr, "kvq accuracy: error: %s: %s\n", kvq_status_name(st), kvq_last_error());
    return st == KVQ_OK;
}
