/*
 * golden_writer.c - files and manifest of the golden set (S16.7).
 */
#define _POSIX_C_SOURCE 200809L
#include "golden.h"

#include "kvq/kvq_io.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct golden_writer {
    char directory[1024];
    FILE *manifest; /* the "cases" array, streamed into memory (open_memstream) */
    char *manifest_bytes;
    size_t manifest_size;
    bool failed;
    bool in_case;
    unsigned n_cases, n_files_in_case, n_files;
    char case_name[256]; /* prefix of the current case's files */
};

static const char *dtype_name(golden_dtype d)
{
    static const char *const names[] = {"u8", "u16", "u32", "u64", "f32"};
    return names[d];
}

static size_t dtype_size(golden_dtype d)
{
    static const size_t sizes[] = {1, 2, 4, 8, 4};
    return sizes[d];
}

static const char *class_name(golden_class c)
{
    static const char *const names[] = {"input", "exact", "boundary", "bounded", "reference"};
    return names[c];
}

void golden_fail(golden_writer *w, const char *what, kvq_status status)
{
    fprintf(stderr, "kvq golden: %s failed: %s: %s\n", what, kvq_status_name(status), kvq_last_error());
    w->failed = true;
}

golden_writer *golden_open(const char *directory)
{
    golden_writer *w = calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    snprintf(w->directory, sizeof w->directory, "%s", directory);
    w->manifest = open_memstream(&w->manifest_bytes, &w->manifest_size);
    if (w->manifest == NULL) {
        fprintf(stderr, "kvq golden: out of memory for the manifest of %s\n", directory);
        free(w);
        return NULL;
    }
    return w;
}

void golden_begin_case(golden_writer *w, const char *name, const char *section, const char *operation,
                       const char *params_json)
{
    fprintf(w->manifest, "%s    {\"case\": \"%s\", \"section\": \"%s\", \"operation\": \"%s\",\n",
            w->n_cases ? ",\n" : "", name, section, operation);
    fprintf(w->manifest, "     \"params\": %s,\n     \"files\": [", params_json ? params_json : "{}");
    snprintf(w->case_name, sizeof w->case_name, "%s", name);
    w->in_case = true;
    w->n_files_in_case = 0;
    w->n_cases++;
}

static void record_file(golden_writer *w, golden_class cls, const char *label, const char *file_name,
                        const char *kind, const char *extra_json)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", w->directory, file_name);
    uint8_t digest[32];
    char hex[65];
    kvq_status st = kvq_sha256_file(path, digest);
    if (st != KVQ_OK) {
        golden_fail(w, path, st);
        return;
    }
    kvq_sha256_hex(digest, hex);
    FILE *f = fopen(path, "rb");
    long size = -1;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (f != NULL) fclose(f);
    fprintf(w->manifest,
            "%s\n       {\"label\": \"%s\", \"class\": \"%s\", \"file\": \"%s\", \"kind\": \"%s\", %s\"bytes\": %ld, "
            "\"sha256\": \"%s\"}",
            w->n_files_in_case ? "," : "", label, class_name(cls), file_name, kind, extra_json, size, hex);
    w->n_files_in_case++;
    w->n_files++;
}

void golden_array(golden_writer *w, golden_class cls, const char *label, golden_dtype dtype, const void *data,
                  const uint32_t shape[4])
{
    /* shape[0] == 0 is an empty array (e.g. no outliers): an empty file with shape [0] */
    size_t count = shape[0] == 0 ? 0 : 1;
    char shape_json[128] = "[";
    for (int i = 0; i < 4 && shape[i] != 0; i++) {
        count *= shape[i];
        char part[24];
        snprintf(part, sizeof part, "%s%u", i ? ", " : "", shape[i]);
        strcat(shape_json, part);
    }
    if (shape[0] == 0) strcat(shape_json, "0");
    strcat(shape_json, "]");
    char file_name[512], path[1600];
    snprintf(file_name, sizeof file_name, "%s.%s.bin", w->case_name, label);
    snprintf(path, sizeof path, "%s/%s", w->directory, file_name);
    /* Little-endian regardless of the host, byte by byte, then written as kvq writes every file
     * (kvq_write_file: an exclusive temporary file renamed when complete). */
    const uint8_t *bytes = data;
    size_t width = dtype_size(dtype);
    uint8_t *le = malloc(count * width + 1u);
    if (le == NULL) {
        fprintf(stderr, "kvq golden: out of memory writing %s\n", path);
        w->failed = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t v = 0;
        memcpy(&v, bytes + i * width, width); /* host order in, little-endian out (S16.1) */
        for (size_t b = 0; b < width; b++) le[i * width + b] = (uint8_t)(v >> (8 * b));
    }
    if (kvq_write_file(path, le, count * width) != KVQ_OK) {
        fprintf(stderr, "kvq golden: %s\n", kvq_last_error());
        w->failed = true;
    }
    free(le);
    char extra[256];
    snprintf(extra, sizeof extra, "\"dtype\": \"%s\", \"shape\": %s, ", dtype_name(dtype), shape_json);
    record_file(w, cls, label, file_name, "array", extra);
}

const char *golden_file_path(golden_writer *w, const char *label, const char *extension)
{
    static char path[1600];
    snprintf(path, sizeof path, "%s/%s.%s.%s", w->directory, w->case_name, label, extension);
    return path;
}

void golden_file_done(golden_writer *w, golden_class cls, const char *label, const char *extension, const char *kind)
{
    char file_name[512];
    snprintf(file_name, sizeof file_name, "%s.%s.%s", w->case_name, label, extension);
    record_file(w, cls, label, file_name, kind, "");
}

void golden_expect_status(golden_writer *w, kvq_status status)
{
    fprintf(w->manifest, "%s\n       {\"label\": \"status\", \"class\": \"exact\", \"kind\": \"status\", \"status\": \"%s\"}",
            w->n_files_in_case ? "," : "", kvq_status_name(status));
    w->n_files_in_case++;
}

void golden_end_case(golden_writer *w)
{
    fprintf(w->manifest, "\n     ]}");
    w->in_case = false;
}

bool golden_close(golden_writer *w)
{
    bool ok = fclose(w->manifest) == 0 && !w->failed;
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", w->directory);
    char *doc = NULL;
    size_t doc_size = 0;
    FILE *out = ok ? open_memstream(&doc, &doc_size) : NULL;
    if (out == NULL) ok = false;
    if (ok) {
        fprintf(out, "{\n  \"format\": \"kvq-golden\",\n  \"format_version\": 1,\n  \"spec_version\": \"%s\",\n",
                KVQ_SPEC_VERSION_STRING);
        fprintf(out, "  \"generator\": \"kvq golden\",\n  \"n_cases\": %u,\n  \"n_files\": %u,\n  \"cases\": [\n",
                w->n_cases, w->n_files);
        fwrite(w->manifest_bytes, 1, w->manifest_size, out);
        fprintf(out, "\n  ]\n}\n");
        ok = fclose(out) == 0;
        if (ok && kvq_write_file(path, doc, doc_size) != KVQ_OK) {
            fprintf(stderr, "kvq golden: %s\n", kvq_last_error());
            ok = false;
        }
    }
    free(doc);
    free(w->manifest_bytes);
    free(w);
    return ok;
}

void golden_profile_bounds(golden_writer *w, const kvq_qtensor *keys, const kvq_qtensor *values,
                           const uint32_t *positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                           uint32_t q_position, float *const bounds[KVQ_PROFILE_COUNT])
{
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++)
        GOLDEN_CHECK(w, kvq_attention_error_bound_profile(keys, values, positions, rope, q, n_q, q_position,
                                                          (kvq_attention_profile)p, bounds[p]));
}

void golden_bound_arrays(golden_writer *w, const float *const bounds[KVQ_PROFILE_COUNT], const uint32_t shape[4])
{
    static const char *const labels[KVQ_PROFILE_COUNT] = {"bound", "bound_fp16", "bound_bf16"};
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++) golden_array(w, GOLDEN_REFERENCE, labels[p], GOLDEN_F32, bounds[p], shape);
}

const char *golden_scheme_name(kvq_scheme scheme)
{
    static const char *const names[] = {"asym", "sym", "nuq"};
    return (unsigned)scheme < 3 ? names[scheme] : "?";
}

const char *golden_rule_name(kvq_policy_rule rule)
{
    static const char *const names[] = {"quantize_all", "text_centric", "image_centric"};
    return (unsigned)rule < 3 ? names[rule] : "?";
}
