/*
 * backend_options.h - reading kvq_backend_options the same way in every
 * built-in backend: fields are read only when the caller's struct_size
 * covers them (callers of older builds pass shorter structs), and the
 * precision profile a context's attention is judged at (S12.4).
 */
#ifndef KVQ_BACKEND_OPTIONS_H
#define KVQ_BACKEND_OPTIONS_H

#include "kvq/kvq_backend.h"

/* options->platform and options->device, or -1 (the backend's default) when
 * options is NULL or does not carry them. */
int32_t kvq_backend_option_platform(const kvq_backend_options *options);
int32_t kvq_backend_option_device(const kvq_backend_options *options);

/* The profile the context must meet: options->attention_profile when the
 * caller set it (not -1), else default_profile. `supported` has bit p set for
 * each profile the backend can meet. A profile outside it (or no profile at
 * all) is refused with KVQ_ERR_BAD_ENUM and the reason in message. */
kvq_status kvq_backend_option_profile(const kvq_backend_options *options, uint32_t supported,
                                      uint32_t default_profile, uint32_t *profile, char *message,
                                      size_t message_size);

/* Bits of every profile (fp32 arithmetic meets them all, S12.4). */
#define KVQ_BACKEND_ALL_PROFILES ((1u << KVQ_PROFILE_COUNT) - 1u)

#endif
