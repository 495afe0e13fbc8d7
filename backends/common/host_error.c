/*
 * host_error.c - see host_error.h.
 */
#include "host_error.h"

#include <stdio.h>

kvq_status kvq_host_vfail(kvq_host_error *e, kvq_status status, const char *format, va_list args)
{
    vsnprintf(e->message, sizeof e->message, format, args);
    return status;
}

kvq_status kvq_host_fail(kvq_host_error *e, kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    kvq_host_vfail(e, status, format, args);
    va_end(args);
    return status;
}

kvq_status kvq_host_from_kvq(kvq_host_error *e, kvq_status status)
{
    if (status != KVQ_OK) snprintf(e->message, sizeof e->message, "%s", kvq_last_error());
    return status;
}

kvq_status kvq_host_within(kvq_host_error *e, kvq_status status, const char *format, ...)
{
    char reason[sizeof e->message];
    snprintf(reason, sizeof reason, "%s", e->message);
    char prefix[256];
    va_list args;
    va_start(args, format);
    vsnprintf(prefix, sizeof prefix, format, args);
    va_end(args);
    return kvq_host_fail(e, status, "%s%s", prefix, reason); /* cut at the buffer's end, like any message */
}

kvq_status kvq_host_device_fail(kvq_host_error *e, kvq_status status, const char *what, const char *runtime,
                                const char *code, const char *device, const char *detail)
{
    return kvq_host_fail(e, status, "%s: %s error %s on %s%s%s", what, runtime, code, device,
                         detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

void kvq_host_clear(kvq_host_error *e) { e->message[0] = '\0'; }

void kvq_host_say(char *message, size_t message_size, const char *format, ...)
{
    if (message == NULL || message_size == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, message_size, format, args);
    va_end(args);
}
