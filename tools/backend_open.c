/*
 * backend_open.c - tool_open_backend (backend_open.h).
 */
#include "backend_open.h"

#include <stdio.h>
#include <string.h>

bool tool_open_backend(const char *backend, int32_t platform, int32_t device, const kvq_backend_api **api,
                       kvq_backend_context **ctx, kvq_backend_caps *caps, char *message, size_t message_size)
{
    char reason[512] = "";
    kvq_status st = kvq_backend_find(backend, api, reason, sizeof reason);
    if (st != KVQ_OK) {
        /* some of the registry's messages already start with this prefix */
        const char *prefix = "cannot load backend ";
        if (strncmp(reason, prefix, strlen(prefix)) == 0)
            snprintf(message, message_size, "%s (%s)", reason, kvq_status_name(st));
        else
            snprintf(message, message_size, "%s%s: %s (%s)", prefix, backend, reason, kvq_status_name(st));
        return false;
    }
    kvq_backend_options options = {sizeof options, platform, device, -1};
    *ctx = NULL;
    st = kvq_backend_open(*api, &options, ctx, reason, sizeof reason);
    if (st != KVQ_OK) {
        snprintf(message, message_size, "cannot open backend %s: %s (%s)", backend, reason, kvq_status_name(st));
        return false;
    }
    memset(caps, 0, sizeof *caps);
    caps->struct_size = sizeof *caps;
    st = (*api)->get_caps(*ctx, caps);
    if (st != KVQ_OK) {
        snprintf(message, message_size, "backend %s: get_caps failed: %s (%s)", backend, (*api)->last_error(*ctx),
                 kvq_status_name(st));
        (*api)->close(*ctx);
        return false;
    }
    return true;
}
