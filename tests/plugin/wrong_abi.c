/*
 * wrong_abi.c - a plugin built against a future ABI: its entry symbol answers
 * with a table whose abi_version is KVQ_BACKEND_ABI_VERSION + 1 (as a
 * careless plugin would, instead of returning NULL). The loader must check
 * the version before it calls any slot, and refuse it with a reason.
 */
#include "kvq/kvq_backend.h"

static const char *no_name(kvq_backend_context *ctx)
{
    (void)ctx;
    return "";
}

static const kvq_backend_api future_api = {
    .abi_version = KVQ_BACKEND_ABI_VERSION + 1u,
    .struct_size = sizeof(kvq_backend_api),
    .name = "future",
    .description = "a table from a newer ABI; must never be called",
    .device_name = no_name,
    .last_error = no_name,
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version);

const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version)
{
    (void)host_abi_version; /* the bug: it does not compare */
    return &future_api;
}
