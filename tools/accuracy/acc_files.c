/*
 * acc_files.c - `kvq accuracy` for kernels that cannot be linked (accuracy.h):
 * --write-inputs DIR writes each point's original keys, values and queries
 * with a description (DIR/inputs.json); the kernel quantizes and dequantizes
 * them at each of its widths and writes, per point and width,
 *   <point>.b<bits>.keys.bin, <point>.b<bits>.values.bin   dequantized, f32 [n_heads][n_tokens][head_dim]
 *   <point>.b<bits>.out.bin  (optional)                     its attention, f32 [n_heads][n_q][head_dim]
 * and --outputs DIR scores them. Arrays are little-endian on every host, as in the golden set (S16.7).
 */
#define _POSIX_C_SOURCE 200809L
#include "accuracy.h"

#include "json_write.h"
#include "manifest.h"

#include "kvq/kvq_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool write_f32(const char *dir, const char *name, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *bytes = malloc(n * 4u + 1u);
    if (bytes == NULL) {
        fprintf(stderr, "kvq accuracy: error: KVQ_ERR_OUT_OF_MEMORY: %s\n", path);
        return false;
    }
    for (size_t i = 0; i < n; i++) { /* little-endian whatever the host (S16.1) */
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        for (int b = 0; b < 4; b++) bytes[i * 4u + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
    kvq_status st = kvq_write_file(path, bytes, n * 4u);
    free(bytes);
    if (st != KVQ_OK) fprintf(stderr, "kvq accuracy: error: %s: %s\n", kvq_status_name(st), kvq_last_error());
    return st == KVQ_OK;
}

static void array_json(FILE *out, const char *file, uint32_t a, uint32_t b, uint32_t c)
{
    fputs("{\"file\": ", out);
    json_put_string(out, file);
    fprintf(out, ", \"dtype\": \"f32\", \"shape\": [%u, %u, %u], \"bytes\": %llu}", a, b, c,
            (unsigned long long)a * b * c * 4u);
}

bool acc_files_write_inputs(const acc_data *data, const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvq accuracy: error: KVQ_ERR_IO: cannot create directory %s: %s\n", dir, strerror(errno));
        return false;
    }
    char *doc = NULL;
    size_t doc_size = 0;
    FILE *j = open_memstream(&doc, &doc_size);
    if (j == NULL) return false;
    fprintf(j, "{\n  \"schema\": \"%s-inputs\",\n  \"spec_version\": \"%s\",\n", ACC_SCHEMA, KVQ_SPEC_VERSION_STRING);
    fputs("  \"note\": \"original fp32 keys (rotated by RoPE, as attention reads them) and values of S14 synthetic "
          "KV, and queries; quantize and dequantize keys and values at each of your widths and write the files "
          "of 'outputs' (BITS replaced by the width), then run kvq accuracy --outputs DIR (docs/PLUGINS.md)\",\n"
          "  \"points\": [\n",
          j);
    bool ok = true;
    for (size_t i = 0; i < data->n_points && ok; i++) {
        const acc_inputs *in = &data->points[i];
        const acc_point *p = in->point;
        char k[256], v[256], q[256];
        snprintf(k, sizeof k, "%s.keys.bin", p->name);
        snprintf(v, sizeof v, "%s.values.bin", p->name);
        snprintf(q, sizeof q, "%s.q.bin", p->name);
        size_t kv = (size_t)p->n_heads * p->n_tokens * p->head_dim, qn = (size_t)p->n_heads * p->n_q * p->head_dim;
        ok = write_f32(dir, k, in->keys, kv) && write_f32(dir, v, in->values, kv) && write_f32(dir, q, in->q, qn);
        fprintf(j, "    {\"name\": \"%s\", \"profile\": \"%s\", \"n_heads\": %u, \"n_tokens\": %u, \"head_dim\": %u, "
                   "\"n_q\": %u, \"seed\": %llu,\n     \"keys\": ",
                p->name, p->profile == KVQ_SYNTH_REALISTIC ? "realistic" : "stress", p->n_heads, p->n_tokens,
                p->head_dim, p->n_q, (unsigned long long)p->seed);
        array_json(j, k, p->n_heads, p->n_tokens, p->head_dim);
        fputs(",\n     \"values\": ", j);
        array_json(j, v, p->n_heads, p->n_tokens, p->head_dim);
        fputs(",\n     \"q\": ", j);
        array_json(j, q, p->n_heads, p->n_q, p->head_dim);
        fprintf(j, ",\n     \"outputs\": {\"keys\": \"%s.bBITS.keys.bin\", \"values\": \"%s.bBITS.values.bin\", "
                   "\"out\": \"%s.bBITS.out.bin (optional: your attention, no RoPE, scale 1/sqrt(head_dim))\"}}%s\n",
                p->name, p->name, p->name, i + 1 < data->n_points ? "," : "");
    }
    fputs("  ]\n}\n", j);
    if (fclose(j) != 0) ok = false;
    char path[4096];
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    kvq_status st = ok ? kvq_write_file(path, doc, doc_size) : KVQ_ERR_OUT_OF_MEMORY;
    free(doc);
    if (ok && st != KVQ_OK) {
        fprintf(stderr, "kvq accuracy: error: %s: %s\n", kvq_status_name(st), kvq_last_error());
        ok = false;
    }
    return ok;
}

static void output_name(char *out, size_t size, const acc_point *p, uint32_t bits, const char *what)
{
    snprintf(out, size, "%s.b%u.%s.bin", p->name, bits, what);
}

uint32_t acc_files_bits(const acc_data *data, const char *dir, uint32_t bits[16])
{
    static const char *const what[] = {"keys", "values", "out"};
    uint32_t n = 0;
    for (uint32_t b = 1; b <= 16; b++) {
        bool found = false;
        char name[256];
        for (size_t i = 0; i < data->n_points && !found; i++)
            for (size_t w = 0; w < 3 && !found; w++) {
                output_name(name, sizeof name, data->points[i].point, b, what[w]);
                found = manifest_file_exists(dir, name);
            }
        if (found) bits[n++] = b;
    }
    return n;
}

/* Loads DIR/<point>.b<bits>.<what>.bin of [n_heads][rows][head_dim] f32 into *out (malloc'ed). */
static acc_status load(const char *dir, const acc_point *p, uint32_t bits, const char *what, uint32_t rows,
                       float **out, char *why, size_t why_size)
{
    char name[256];
    output_name(name, sizeof name, p, bits, what);
    *out = NULL;
    if (!manifest_file_exists(dir, name)) {
        snprintf(why, why_size, "%s is not in %s", name, dir);
        return ACC_MISSING;
    }
    manifest_file f = {what, MANIFEST_BOUNDED, name, "array", MANIFEST_F32, 3u, {p->n_heads, rows, p->head_dim, 0u},
                       (uint64_t)p->n_heads * rows * p->head_dim * 4u, NULL};
    golden_array a;
    char error[1024];
    if (!golden_array_load(dir, &f, &a, error, sizeof error)) {
        snprintf(why, why_size, "%.400s (f32 [%u][%u][%u] expected)", error, p->n_heads, rows, p->head_dim);
        return ACC_FAILED;
    }
    *out = a.data;
    return ACC_OK;
}

void acc_files_row(acc_report *r, const char *dir, uint32_t bits)
{
    acc_row *row = acc_report_add(r);
    if (row == NULL) return;
    row->bits = bits;
    snprintf(row->format, sizeof row->format, "files");
    snprintf(row->detail, sizeof row->detail, "the output files in %s", dir);
    snprintf(row->attention_by, sizeof row->attention_by, "files");
    for (size_t i = 0; i < r->data->n_points && row->status == ACC_OK; i++) {
        const acc_inputs *in = &r->data->points[i];
        const acc_point *p = in->point;
        float *k = NULL, *v = NULL, *out = NULL;
        row->status = load(dir, p, bits, "keys", p->n_tokens, &k, row->message, sizeof row->message);
        if (row->status == ACC_OK)
            row->status = load(dir, p, bits, "values", p->n_tokens, &v, row->message, sizeof row->message);
        if (row->status == ACC_MISSING) row->status = ACC_FAILED; /* keys and values are required, out is not */
        char why[512];
        acc_status out_status = row->status == ACC_OK ? load(dir, p, bits, "out", p->n_q, &out, why, sizeof why)
                                                      : ACC_MISSING;
        if (out_status == ACC_FAILED) {
            row->status = ACC_FAILED;
            snprintf(row->message, sizeof row->message, "%s", why);
        }
        if (row->status == ACC_OK && out == NULL)
            snprintf(row->attention_by, sizeof row->attention_by, "files; reference arithmetic where out.bin is missing");
        size_t slice = (size_t)p->n_tokens * p->head_dim, qs = (size_t)p->n_q * p->head_dim;
        for (uint32_t h = 0; h < p->n_heads && row->status == ACC_OK; h++)
            if (!acc_score_head(&row->points[i], in, h, k + h * slice, v + h * slice, out != NULL ? out + h * qs : NULL)) {
                row->status = ACC_FAILED;
                snprintf(row->message, sizeof row->message, "out of memory scoring %s", p->name);
            }
        free(k);
        free(v);
        free(out);
    }
    acc_score_worst(row->points, r->data->n_points, &row->worst);
}
