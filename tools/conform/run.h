/*
 * run.h - executing one case against the backend under test and judging it
 * (one file per operation: run_pack.c, run_quantize.c, run_attention.c,
 * run_cache.c, run_errors.c). Each fills a conform_result that the caller
 * initialised with result_init; a missing capability makes it a skip.
 */
#ifndef KVQ_CONFORM_RUN_H
#define KVQ_CONFORM_RUN_H

#include "models.h"

void run_pack(conform_run *run, const pack_model *m, conform_result *r);
void run_quantize(conform_run *run, const quantize_model *m, conform_result *r);
void run_attention(conform_run *run, const attention_model *m, conform_result *r);
/* attention_decode_batch over n sequences that share n_q and rope. */
void run_attention_batch(conform_run *run, const attention_model *const *models, uint32_t n, conform_result *r);
void run_cache(conform_run *run, const cache_model *m, conform_result *r);

/* ABI error conformance: bad calls must return the reference's status and
 * write nothing (S13.3). */
int abi_error_count(void);
const char *abi_error_name(int which);
int abi_error_level(int which);
void run_abi_error(conform_run *run, int which, conform_result *r);
/* An expected failure's status (the reference's) and a message in last_error; false (d filled) if not. */
bool run_judge_error_status(const conform_run *run, const char *operation, kvq_status got, kvq_status expected,
                            const char *reference_message, conform_diag *d);

/* When an attention output fails, tries the reference with the other RoPE
 * pairings and says if one of them matches (a wrong pairing, S9.1). */
void attention_pairing_hint(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *positions,
                            const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                            kvq_attention_profile profile, const float *got, conform_diag *d);

#endif
