/*
 * bad_table.c - plugins the loader and its host must refuse with a reason
 * (issue 17, finding 8). Built twice (tests/plugin/CMakeLists.txt):
 *   KVQ_BAD_TABLE 1: the table lacks a mandatory slot (last_error);
 *   KVQ_BAD_TABLE 2: open returns KVQ_OK but hands back no context.
 */
#include "kvq/kvq_backend.h"

#include <stddef.h>

static kvq_status no_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    (void)callback, (void)user, (void)message, (void)message_size;
    return KVQ_OK;
}

static kvq_status open_without_context(const kvq_backend_options *options, kvq_backend_context **ctx,
                                       char *message, size_t message_size)
{
    (void)options, (void)message, (void)message_size;
    *ctx = NULL; /* the bug: success, and nothing to call */
    return KVQ_OK;
}

static void close_nothing(kvq_backend_context *ctx) { (void)ctx; }

static kvq_status no_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    (void)ctx, (void)caps;
    return KVQ_ERR_BAD_ARGUMENT;
}

static const char *no_name(kvq_backend_context *ctx)
{
    (void)ctx;
    return "";
}

static const kvq_backend_api bad_api = {
    .abi_version = KVQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(kvq_backend_api),
    .name = "bad-table",
    .description = "a table the loader or its host must refuse",
    .list_devices = no_devices,
    .open = open_without_context,
    .close = close_nothing,
    .get_caps = no_caps,
    .device_name = no_name,
#if KVQ_BAD_TABLE != 1
    .last_error = no_name,
#endif
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version);

const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version)
{
    return host_abi_version == KVQ_BACKEND_ABI_VERSION ? &bad_api : NULL;
}
