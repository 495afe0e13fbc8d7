/*
 * golden_writer.c - files and manifest of the golden set (S16.7). The
 * manifest is written with the tools' one JSON writer (json_write.h) in its
 * own layout: a case's first members on one line, then its params and its
 * files on lines of their own.
 */
#define _POSIX_C_SOURCE 200809L
#include "golden.h"

#include "json_write.h"
#include "kvq/kvq_io.h"

#include <stdlib.h>
#include <string.h>

struct golden_writer {
    char directory[1024];
    json_text cases; /* the "cases" array, built in memory: the manifest's counts come first */
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
    if (!json_text_open(&w->cases)) {
        fprintf(stderr, "kvq golden: out of memory for the manifest of %s\n", directory);
        free(w);
        return NULL;
    }
    json_write_array(&w->cases.w, NULL);
    return w;
}

json_writer *golden_params(json_text *params)
{
    json_text_open(params);
    json_write_object_inline(&params->w, NULL);
    return &params->w;
}

const char *golden_params_text(json_text *params)
{
    json_write_end(&params->w);
    return json_text_close(params);
}

void golden_policy_json(json_writer *p, const char *key, const kvq_token_policy *policy)
{
    json_write_object_inline(p, key);
    json_write_string(p, "rule", golden_rule_name(policy->rule));
    json_write_u64(p, "budget_ppm", policy->budget_ppm);
    json_write_u64(p, "n_sinks", policy->n_sinks);
    json_write_u64(p, "recent_window", policy->recent_window);
    json_write_end(p);
}

/* Where the parts of a case go in the manifest. */
#define CASE_SPACE "\n    "
#define CASE_MEMBER_SPACE "\n     "
#define FILE_SPACE "\n       "

void golden_begin_case(golden_writer *w, const char *name, const char *section, const char *operation,
                       const char *params_json)
{
    json_writer *m = &w->cases.w;
    json_write_space(m, CASE_SPACE);
    json_write_object_inline(m, NULL);
    json_write_string(m, "case", name);
    json_write_string(m, "section", section);
    json_write_string(m, "operation", operation);
    json_write_space(m, CASE_MEMBER_SPACE);
    if (params_json == NULL) {
        fprintf(stderr, "kvq golden: case %s: out of memory for its params\n", name);
        w->failed = true;
    }
    json_write_raw(m, "params", params_json ? params_json : "{}");
    json_write_space(m, CASE_MEMBER_SPACE);
    json_write_array_inline(m, "files");
    snprintf(w->case_name, sizeof w->case_name, "%s", name);
    w->in_case = true;
    w->n_files_in_case = 0;
    w->n_cases++;
}

/* The start of a file's entry in the case's "files": label and class. */
static json_writer *begin_file(golden_writer *w, const char *label, const char *class)
{
    json_writer *m = &w->cases.w;
    json_write_space(m, FILE_SPACE);
    json_write_object_inline(m, NULL);
    json_write_string(m, "label", label);
    json_write_string(m, "class", class);
    w->n_files_in_case++;
    return m;
}

/* The entry of a file the case wrote; an array's dtype and shape come with it. */
static void record_file(golden_writer *w, golden_class cls, const char *label, const char *file_name,
                        const char *kind, const char *dtype, const uint32_t shape[4])
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
    json_writer *m = begin_file(w, label, class_name(cls));
    json_write_string(m, "file", file_name);
    json_write_string(m, "kind", kind);
    if (dtype != NULL) {
        json_write_string(m, "dtype", dtype);
        /* shape[0] == 0 is an empty array (e.g. no outliers): shape [0] */
        json_write_array_inline(m, "shape");
        json_write_u64(m, NULL, shape[0]);
        for (int i = 1; i < 4 && shape[0] != 0 && shape[i] != 0; i++) json_write_u64(m, NULL, shape[i]);
        json_write_end(m);
    }
    json_write_i64(m, "bytes", size);
    json_write_string(m, "sha256", hex);
    json_write_end(m);
    w->n_files++;
}

void golden_array(golden_writer *w, golden_class cls, const char *label, golden_dtype dtype, const void *data,
                  const uint32_t shape[4])
{
    /* shape[0] == 0 is an empty array (e.g. no outliers): an empty file with shape [0] */
    size_t count = shape[0] == 0 ? 0 : 1;
    for (int i = 0; i < 4 && shape[i] != 0; i++) count *= shape[i];
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
    record_file(w, cls, label, file_name, "array", dtype_name(dtype), shape);
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
    record_file(w, cls, label, file_name, kind, NULL, NULL);
}

void golden_expect_status(golden_writer *w, kvq_status status)
{
    json_writer *m = begin_file(w, "status", "exact");
    json_write_string(m, "kind", "status");
    json_write_string(m, "status", kvq_status_name(status));
    json_write_end(m);
}

void golden_end_case(golden_writer *w)
{
    json_write_end_spaced(&w->cases.w, CASE_MEMBER_SPACE); /* files */
    json_write_end(&w->cases.w);
    w->in_case = false;
}

bool golden_close(golden_writer *w)
{
    json_write_end_spaced(&w->cases.w, "\n  ");
    const char *cases = json_text_close(&w->cases);
    bool ok = cases != NULL && !w->failed;
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", w->directory);
    json_text doc;
    if (ok) ok = json_text_open(&doc);
    if (ok) {
        json_writer *m = &doc.w;
        json_write_object(m, NULL);
        json_write_string(m, "format", "kvq-golden");
        json_write_u64(m, "format_version", 1);
        json_write_string(m, "spec_version", KVQ_SPEC_VERSION_STRING);
        json_write_string(m, "generator", "kvq golden");
        json_write_u64(m, "n_cases", w->n_cases);
        json_write_u64(m, "n_files", w->n_files);
        json_write_raw(m, "cases", cases);
        json_write_end(m);
        ok = json_text_close(&doc) != NULL;
        if (ok && kvq_write_file(path, doc.text, doc.size) != KVQ_OK) {
            fprintf(stderr, "kvq golden: %s\n", kvq_last_error());
            ok = false;
        }
        json_text_free(&doc);
    }
    json_text_free(&w->cases);
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
