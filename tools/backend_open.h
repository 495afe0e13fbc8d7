/*
 * backend_open.h - loading, opening and asking the caps of a backend by name
 * or plugin path, for the commands that drive one through the ABI without the
 * conformance runner's workers (`kvq accuracy`, `kvq bench --backend`).
 */
#ifndef KVQ_TOOLS_BACKEND_OPEN_H
#define KVQ_TOOLS_BACKEND_OPEN_H

#include "kvq/kvq_backend.h"

#include <stdbool.h>
#include <stddef.h>

/* kvq_backend_find, kvq_backend_open on (platform, device) (-1: the backend's choice; the
 * backend's default profile) and get_caps. False with the reason in message (the backend closed). */
bool tool_open_backend(const char *backend, int32_t platform, int32_t device, const kvq_backend_api **api,
                       kvq_backend_context **ctx, kvq_backend_caps *caps, char *message, size_t message_size);

#endif
