/*
 * backend_options.c - see backend_options.h.
 */
#include "backend_options.h"

#include <stdio.h>

int32_t kvq_backend_option_platform(const kvq_backend_options *options)
{
    return KVQ_BACKEND_OPTIONS_HAS(options, platform) ? options->platform : -1;
}

int32_t kvq_backend_option_device(const kvq_backend_options *options)
{
    return KVQ_BACKEND_OPTIONS_HAS(options, device) ? options->device : -1;
}

kvq_status kvq_backend_option_profile(const kvq_backend_options *options, uint32_t supported,
                                      uint32_t default_profile, uint32_t *profile, char *message,
                                      size_t message_size)
{
    int32_t want = KVQ_BACKEND_OPTIONS_HAS(options, attention_profile) ? options->attention_profile : -1;
    if (want == -1) want = (int32_t)default_profile;
    if (want < 0 || want >= KVQ_PROFILE_COUNT || !(supported & (1u << want))) {
        if (message != NULL && message_size > 0)
            snprintf(message, message_size,
                     "options.attention_profile = %d: this backend's attention meets %s%s%s (S12.4)", (int)want,
                     supported & (1u << KVQ_PROFILE_FP32) ? "fp32 " : "",
                     supported & (1u << KVQ_PROFILE_FP16) ? "fp16 " : "",
                     supported & (1u << KVQ_PROFILE_BF16) ? "bf16" : "");
        return KVQ_ERR_BAD_ENUM;
    }
    *profile = (uint32_t)want;
    return KVQ_OK;
}
