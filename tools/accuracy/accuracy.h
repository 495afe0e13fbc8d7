/*
 * accuracy.h - `kvq accuracy`: how close a KV-cache format comes to the
 * original data, for formats kvq does not know (docs/PLUGINS.md, "Formats kvq
 * does not know"). Not conformance: kvq can judge a foreign format's bytes
 * against nothing, so it scores what every format must approximate, the
 * unquantized fp32 keys and values and the attention over them.
 *
 * The data are a few fixed points of S14 synthetic KV (acc_data.c). For each
 * bit width a source quantizes each head's keys and values, dequantizes them
 * and (when it can) runs decode attention over them; the scores compare
 *   keys, values    the dequantized values with the original ones,
 *   attention       the attention output with attention over the original
 *                   data (double arithmetic, no RoPE),
 *   attention arith the attention output with double attention over the
 *                   source's own dequantized values: the kernel's arithmetic
 *                   alone, the quantity llama.cpp's test-backend-ops bounds,
 * each by NMSE and max relative error (acc_metrics.c defines them). Sources:
 * a backend through the ABI (acc_backend.c, in child processes), files handed
 * in (acc_files.c), and the reference's own and peer formats at the same bits
 * on the same data (acc_reference.c), printed as comparison rows.
 */
#ifndef KVQ_ACCURACY_H
#define KVQ_ACCURACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvq/kvq.h"

#define ACC_SCHEMA "kvq-accuracy/1"
#define ACC_MAX_POINTS 4u
#define ACC_MAX_ROWS 64u
/* llama.cpp's test-backend-ops: FLASH_ATTN_EXT passes at NMSE <= 5e-4 between a backend's output
 * and the CPU backend's on the same quantized K/V (its max_nmse_err), i.e. on the arithmetic. */
#define ACC_LLAMA_CPP_FA_NMSE 5e-4
/* The standard deviation of each query's scores q k / sqrt(d) over its head's tokens (acc_data.c). */
#define ACC_SCORE_STD 2.0

/* One point of the data: n_heads heads of synthetic keys and values, n_q queries per head. */
typedef struct acc_point {
    const char *name;
    kvq_synth_profile profile;
    uint32_t n_tokens, head_dim, n_heads, n_q;
    uint64_t seed; /* head h uses seed + h */
} acc_point;

/* The inputs of one point and the fp32 reference over them. */
typedef struct acc_inputs {
    const acc_point *point;
    float *keys, *values; /* [n_heads][n_tokens][head_dim], the original fp32 values */
    float *q;             /* [n_heads][n_q][head_dim] */
    float *out;           /* [n_heads][n_q][head_dim]: attention over keys and values (acc_attention) */
} acc_inputs;

typedef struct acc_data {
    size_t n_points;
    acc_inputs points[ACC_MAX_POINTS];
} acc_data;

/* The points (acc_data.c) and their inputs; false when out of memory. */
size_t acc_points(const acc_point **points);
bool acc_data_make(acc_data *data);
void acc_data_free(acc_data *data);
/* The attention S11.3-S11.4 define, in double, without RoPE: out[n_q][d] = softmax(q k / sqrt(d)) v
 * over keys and values [n][d]. False when out of memory. */
bool acc_attention(const float *keys, const float *values, uint32_t n, uint32_t d, const float *q, uint32_t n_q,
                   float *out);

/* ---- scores (acc_metrics.c) --------------------------------------------- */
/* NMSE = sum (x - y)^2 / sum y^2 over every element of the point's heads, y the reference;
 * max_rel = the largest over the heads of max |x - y| / max |y| of one head's tensor. */
typedef struct acc_metric {
    double err2, ref2; /* the sums */
    double max_rel;
    bool has;          /* scored at all */
} acc_metric;
void acc_metric_add(acc_metric *m, const float *got, const float *ref, size_t n);
double acc_nmse(const acc_metric *m); /* NAN when not scored; 0 when both sums are 0 */

enum { ACC_KEYS, ACC_VALUES, ACC_ATTENTION, ACC_ARITH, ACC_METRICS };
extern const char *const acc_metric_names[ACC_METRICS];  /* JSON keys: keys, values, attention, attention_arith */
extern const char *const acc_metric_titles[ACC_METRICS]; /* column titles */

typedef struct acc_score {
    acc_metric m[ACC_METRICS];
} acc_score;

/* What one source gives for one head: its dequantized keys and values and, when it has attention,
 * its output. Scores them against the point's inputs into s; out NULL (no attention kernel): the
 * attention score is that of double attention over its values, and attention_arith is not scored.
 * False when out of memory. */
bool acc_score_head(acc_score *s, const acc_inputs *in, uint32_t head, const float *keys, const float *values,
                    const float *out);
/* One head of a source: writes its dequantized keys and values ([n_tokens][head_dim]) and, setting
 * *has_out, its attention output ([n_q][head_dim]); false with the reason in why when it fails. */
typedef bool (*acc_head_fn)(void *arg, const acc_inputs *in, uint32_t head, float *keys, float *values, float *out,
                            bool *has_out, char *why, size_t why_size);
/* Every head of every point of data through fn, scored into points[]: true, or false with the point,
 * the head and the reason in message. */
bool acc_score_source(const acc_data *data, acc_head_fn fn, void *arg, acc_score *points, char *message,
                      size_t message_size);
/* The worst of several points: the largest NMSE and max_rel of each metric. */
void acc_score_worst(const acc_score *points, size_t n, acc_score *worst);

/* ---- rows of the report -------------------------------------------------- */
typedef enum acc_status { ACC_OK, ACC_FAILED, ACC_CRASHED, ACC_TIMEOUT, ACC_MISSING } acc_status;
const char *acc_status_name(acc_status s); /* "ok", "failed", "crashed", "timeout", "not handed in" */

typedef struct acc_row {
    bool reference;        /* a comparison row computed by the reference, not the judged source */
    char format[96];       /* e.g. "kvq uniform asym", "ggml q4_0", the backend's name */
    char detail[160];      /* how the format was configured */
    uint32_t bits;
    acc_status status;
    char message[512];     /* why, when status is not ACC_OK */
    char attention_by[64]; /* "backend", "reference arithmetic", "none" */
    acc_score points[ACC_MAX_POINTS];
    acc_score worst;
} acc_row;

typedef struct acc_report {
    const acc_data *data;
    char source[1200];      /* "backend NAME (description)" or "files in DIR" */
    char device[256];
    char argument[512];     /* --backend or --outputs as given */
    bool from_files;
    uint32_t n_bits, bits[16]; /* the widths scored */
    double max_nmse, max_nmse_kv; /* explicit thresholds; NAN when not given */
    size_t n_rows;
    acc_row rows[ACC_MAX_ROWS];
} acc_report;

/* Adds a row (NULL when full). */
acc_row *acc_report_add(acc_report *r);
/* The judged source's rows that exceed a given threshold (or did not finish), described into why;
 * returns how many. */
size_t acc_report_failures(const acc_report *r, char *why, size_t size);

/* ---- sources ---------------------------------------------------------- */
/* The reference rows at `bits`: kvq's own format and the peer formats that have that width
 * (acc_reference.c). */
void acc_reference_rows(acc_report *r, uint32_t bits);

/* A backend through the ABI (acc_backend.c). Every call into it runs in a child process under
 * `timeout` seconds (0: none), so a crash or a hang is that row's status. acc_backend_probe loads
 * and opens it to learn its name, device and the widths it claims (caps.uniform_bits); false after
 * printing why it cannot. */
typedef struct acc_backend_info {
    char name[64], description[256], device[256];
    uint32_t uniform_bits; /* bit b: b-bit codes */
    bool has_attention;    /* ops ATTENTION and RoPE pairing NONE */
    char message[512];
} acc_backend_info;
bool acc_backend_probe(const char *backend, double timeout, acc_backend_info *info);
/* The backend's row at `bits`. */
void acc_backend_row(acc_report *r, const char *backend, const acc_backend_info *info, uint32_t bits,
                     double timeout);
/* The configuration the backend is handed for a role at `bits`: kvq's uniform asymmetric format
 * (keys per channel in online blocks of 128 tokens, values per token, no outliers, sinks or fp16
 * budget); a backend of another format reads its role and bits. */
kvq_head_config acc_head_config(kvq_role role, uint32_t bits);

/* Files (acc_files.c): the inputs written for a kernel that cannot be linked, and its outputs read
 * back (names in docs/PLUGINS.md). Both return false after printing why. */
bool acc_files_write_inputs(const acc_data *data, const char *dir);
/* Which widths DIR holds outputs for (any file <point>.b<bits>.*.bin, bits 1-16) into bits. */
uint32_t acc_files_bits(const acc_data *data, const char *dir, uint32_t bits[16]);
void acc_files_row(acc_report *r, const char *dir, uint32_t bits);

/* ---- reports (acc_report.c) -------------------------------------------- */
void acc_report_text(FILE *out, const acc_report *r);
bool acc_report_json(const char *path, const acc_report *r);

#endif /* KVQ_ACCURACY_H */
