/*
 * golden.h - writing the golden set (spec S12, S16.7): a directory of
 * little-endian array files and kvq files, described by manifest.json.
 *
 * Each case is written by a function in cases_*.c that computes its outputs
 * with the reference and hands arrays to the writer below. The writer names
 * files "<case>.<label>.<ext>", hashes them, and records them in the manifest.
 */
#ifndef KVQ_GOLDEN_H
#define KVQ_GOLDEN_H

#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum golden_dtype { GOLDEN_U8, GOLDEN_U16, GOLDEN_U32, GOLDEN_U64, GOLDEN_F32 } golden_dtype;

/* Tolerance class of an output (S12): exact bytes, exact codes unless
 * boundary-ambiguous, or within the attention bound. */
typedef enum golden_class {
    GOLDEN_INPUT,     /* given to the implementation */
    GOLDEN_EXACT,     /* class E: byte for byte */
    GOLDEN_BOUNDARY,  /* class B: codes, exact unless boundary-ambiguous (S12.2) */
    GOLDEN_BOUNDED,   /* class A: within the bound stored beside it (S12.3) */
    GOLDEN_REFERENCE  /* data a checker uses (e.g. the bound); not produced by implementations */
} golden_class;

typedef struct golden_writer golden_writer;

golden_writer *golden_open(const char *directory);
/* Writes manifest.json; returns false if any earlier step failed. Frees the writer. */
bool golden_close(golden_writer *w);

/* A case: its name (file prefix), spec section, operation and a JSON object
 * with its parameters (written verbatim, e.g. "{\"bits\": 4}"). */
void golden_begin_case(golden_writer *w, const char *name, const char *section, const char *operation,
                       const char *params_json);
/* A case's params, written with the tools' JSON writer: golden_params opens the
 * object and returns the writer for its members, golden_params_text closes it
 * and returns the text for golden_begin_case (NULL when out of memory, which
 * golden_begin_case records as a failure), json_text_free releases it. */
struct json_text;
struct json_writer *golden_params(struct json_text *params);
const char *golden_params_text(struct json_text *params);
/* "key": {"rule": .., "budget_ppm": .., "n_sinks": .., "recent_window": ..} of a token policy (S10.1). */
void golden_policy_json(struct json_writer *p, const char *key, const kvq_token_policy *policy);
/* An array file: shape is up to 4 dimensions, unused ones 0. */
void golden_array(golden_writer *w, golden_class cls, const char *label, golden_dtype dtype, const void *data,
                  const uint32_t shape[4]);
/* A kvq file (.kvt, .kvc, .kvqz) already written: the writer gives its path. */
const char *golden_file_path(golden_writer *w, const char *label, const char *extension);
void golden_file_done(golden_writer *w, golden_class cls, const char *label, const char *extension,
                      const char *kind);
/* An expected error status of the case (error cases). */
void golden_expect_status(golden_writer *w, kvq_status status);
void golden_end_case(golden_writer *w);

/* Record a failure (prints it) so golden_close returns false. */
void golden_fail(golden_writer *w, const char *what, kvq_status status);
/* Shorthand: check a kvq call, recording failures. */
#define GOLDEN_CHECK(w, call)                                        \
    do {                                                             \
        kvq_status golden_status_ = (call);                          \
        if (golden_status_ != KVQ_OK) golden_fail(w, #call, golden_status_); \
    } while (0)

/* S12.4: bounds[p] = kvq_attention_error_bound_profile(..., p, ...) for every
 * profile p (bounds[KVQ_PROFILE_FP32] is S12.3's), each [n_q][head_dim]. */
void golden_profile_bounds(golden_writer *w, const kvq_qtensor *keys, const kvq_qtensor *values,
                           const uint32_t *positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                           uint32_t q_position, float *const bounds[KVQ_PROFILE_COUNT]);
/* The arrays "bound" (fp32), "bound_fp16", "bound_bf16" of one shape (S16.7). */
void golden_bound_arrays(golden_writer *w, const float *const bounds[KVQ_PROFILE_COUNT], const uint32_t shape[4]);
/* The names the manifest's params use (as tools/conform/golden_cases.c reads them back). */
const char *golden_scheme_name(kvq_scheme scheme);    /* "asym", "sym", "nuq" */
const char *golden_rule_name(kvq_policy_rule rule);   /* "quantize_all", "text_centric", "image_centric" */

/* The case generators, one per spec area (cases_*.c). */
void golden_cases_numerics(golden_writer *w);    /* S2, S3, S5, S6.1-6.5, S14 */
void golden_cases_heads(golden_writer *w);       /* S4, S7, S8, S10 */
void golden_cases_calibration(golden_writer *w); /* S6.6, S6.7, S6.9 */
void golden_cases_attention(golden_writer *w);   /* S9, S11, S12 */
void golden_cases_cache(golden_writer *w);       /* S15 */
void golden_cases_files(golden_writer *w);       /* S16, S13 */
void golden_cases_peer(golden_writer *w);        /* S17 */

#endif
