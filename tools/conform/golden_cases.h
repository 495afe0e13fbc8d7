/*
 * golden_cases.h - case models built from the golden set's files and the
 * parameters in its manifest (S16.7; how each case was made is in
 * tools/golden/cases_*.c).
 */
#ifndef KVQ_CONFORM_GOLDEN_CASES_H
#define KVQ_CONFORM_GOLDEN_CASES_H

#include "manifest.h"
#include "models.h"

/* Each returns false with d describing what is wrong with the golden set
 * (a missing file, a shape that does not fit the parameters). */
bool golden_pack_model(const char *dir, const manifest_case *c, pack_model *m, conform_diag *d);
/* part: quantize_groups/quantize_head 0; select_outliers the row;
 * attention_decode 0 keys, 1 values. */
bool golden_quantize_model(const char *dir, const manifest_case *c, int part, quantize_model *m, conform_diag *d);
/* The attention and cache cases, with the bound of `profile` (S12.4: the
 * golden arrays "bound", "bound_fp16", "bound_bf16"). */
bool golden_attention_model(const char *dir, const manifest_case *c, kvq_attention_profile profile, attention_model *m,
                            conform_diag *d);
bool golden_cache_model(const char *dir, const manifest_case *c, kvq_attention_profile profile, cache_model *m,
                        conform_diag *d);

/* A quantized tensor described by the files "<prefix>_precision" ...
 * "<prefix>_outlier_value" of case c in dir (the golden set, or a user's
 * output files for --check-outputs), with scalar fields from `like`. */
bool golden_qtensor_load(const char *dir, const manifest_case *c, const char *prefix, const kvq_qtensor *like,
                         kvq_qtensor **out, conform_diag *d, char *note, size_t note_size);
/* One f32 array file of c with `count` elements (copied into a new buffer). */
bool golden_floats_load(const char *dir, const manifest_case *c, const char *label, size_t count, float **out,
                        conform_diag *d, char *note, size_t note_size);

/* One u8 array file of c (any length; copied into a new buffer). */
bool golden_bytes_load(const char *dir, const manifest_case *c, const char *label, uint8_t **out, size_t *bytes,
                       conform_diag *d, char *note, size_t note_size);

/* The head configuration described by golden params (S4; cases_heads.c):
 * members role (or the given role), scheme, bits, codebook, key_mode,
 * group_size, outlier_ppm, and the policy object. */
bool golden_config(const json_value *params, const json_value *policy, kvq_role role, kvq_head_config *config,
                   kvq_codebook *codebook, conform_diag *d);

#endif
