/*
 * session.h - talking to the backend under test: what its capabilities allow
 * (the runner asks only for what is advertised, kvq_backend.h), status checks
 * that become diagnostics, reading a backend tensor back into a host
 * kvq_qtensor, and output buffers guarded against overruns.
 */
#ifndef KVQ_CONFORM_SESSION_H
#define KVQ_CONFORM_SESSION_H

#include "conform.h"

/* Each returns true when the backend advertises what is needed; otherwise
 * false with the reason (naming the caps field) in why. */
bool caps_allow_bits(const kvq_backend_caps *caps, kvq_scheme scheme, uint32_t bits, char *why, size_t size);
/* quantize_head under config (S4.1): scheme and bits, key mode, outliers,
 * sinks, policy, value groups, head_dim and n_tokens limits. */
bool caps_allow_config(const kvq_backend_caps *caps, const kvq_head_config *config, uint32_t n_tokens,
                       uint32_t head_dim, char *why, size_t size);
/* A tensor the runner uploads: what its contents use (outliers, sinks, ...). */
bool caps_allow_tensor(const kvq_backend_caps *caps, const kvq_qtensor *qt, char *why, size_t size);
/* RoPE pairing and query heads (attention_decode and cache_attend). */
bool caps_allow_rope(const kvq_backend_caps *caps, kvq_rope_pairing pairing, uint32_t n_q, char *why, size_t size);
/* attention_decode: the ATTENTION op, pairing, query heads, sizes. */
bool caps_allow_attention(const kvq_backend_caps *caps, kvq_rope_pairing pairing, uint32_t n_q, uint32_t head_dim,
                          uint32_t n_tokens, char *why, size_t size);
bool caps_allow_op(const kvq_backend_caps *caps, uint32_t op, char *why, size_t size);
/* "PACK QUANTIZE ..." lists for the header. */
void caps_describe(const kvq_backend_caps *caps, char *out, size_t size);

/* When st is not KVQ_OK, fills d (field "status", the operation, the
 * backend's last_error) and returns false. */
bool session_expect_ok(const conform_run *run, kvq_status st, const char *operation, conform_diag *d);
/* A slot that must be present because its capability is advertised. */
bool session_slot_present(bool present, const char *slot_name, const char *cap_name, conform_diag *d);

/* tensor_info + kvq_qtensor_alloc + tensor_read (the ABI's only way to see a
 * backend tensor). `what` names the tensor in diagnostics. */
bool session_read_tensor(const conform_run *run, const kvq_backend_tensor *t, const char *what, kvq_qtensor **out,
                         conform_diag *d);

/* Output buffers with a tail of known bytes: a backend that writes past the
 * end of an output is caught. The buffer itself is filled with the same
 * pattern, so "a failed call writes nothing" (S13.3) can be checked too. */
void *guarded_alloc(size_t bytes);
bool guarded_tail_intact(const void *buffer, size_t bytes);
bool guarded_untouched(const void *buffer, size_t bytes); /* nothing written at all */
/* An input handed to a backend: a copy of `bytes` bytes of src followed by
 * `slack` bytes of the pattern, so that a backend reading a layout larger
 * than the input's reads the runner's pattern (and computes something
 * wrong, which is judged) instead of memory it does not own. */
void *guarded_copy(const void *src, size_t bytes, size_t slack);
void guarded_free(void *buffer);

#endif
