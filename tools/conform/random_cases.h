/*
 * random_cases.h - random conformance cases: shapes, bits, schemes, groups,
 * outliers, sinks, policies, modality runs, RoPE pairings, GQA and positions
 * drawn from one seed; inputs from kvq_synth_kv (S14.3); expected results
 * from libkvq in this process. A case is a pure function of (seed, level,
 * index, max_context), so `--seed S --case NAME` replays exactly it.
 */
#ifndef KVQ_CONFORM_RANDOM_CASES_H
#define KVQ_CONFORM_RANDOM_CASES_H

#include "models.h"

/* The seed of case `index` of `level` (batch cases have their own stream). */
uint64_t random_case_seed(uint64_t seed, int level, uint32_t index, bool batch);

/* Each returns false with a message in error (a runner bug: the generator
 * made a case the reference refuses). */
bool random_pack(uint64_t case_seed, pack_model *m, char *error, size_t error_size);
/* level 1 (uniform, no outliers/sinks/policy), 2 (NUQ, same) or 3 (anything). */
bool random_quantize(uint64_t case_seed, int level, quantize_model *m, char *error, size_t error_size);
/* force_max: the context is exactly max_context tokens (case 0 of L4). */
bool random_attention(uint64_t case_seed, uint32_t max_context, bool force_max, kvq_attention_profile profile,
                      attention_model *m, char *error, size_t error_size);
/* n_seq (2..5) sequences sharing head_dim, n_q, RoPE and configs, for
 * attention_decode_batch; *models receives an array of *n_seq models. */
bool random_attention_batch(uint64_t case_seed, uint32_t max_context, kvq_attention_profile profile,
                            attention_model **models, uint32_t *n_seq, char *error, size_t error_size);
/* The bounds of every case are those of `profile` (S12.4). */
bool random_cache(uint64_t case_seed, kvq_attention_profile profile, cache_model *m, char *error, size_t error_size);

#endif
