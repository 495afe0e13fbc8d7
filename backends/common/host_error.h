/*
 * host_error.h - the last error of a backend context, recorded the same way
 * by every built-in backend: a message that names the argument and what was
 * wrong with it (S13.2), libkvq's own message when one of its checks refused
 * the call, or, when the device failed, the operation, the runtime, its error
 * code and the device, so that a message always says where it came from.
 */
#ifndef KVQ_HOST_ERROR_H
#define KVQ_HOST_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "kvq/kvq.h"

#if defined(__GNUC__)
#define KVQ_HOST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KVQ_HOST_PRINTF(f, a)
#endif

/* A context's last_error(): "" until something fails. */
typedef struct kvq_host_error {
    char message[1024];
} kvq_host_error;

/* Records a printf-style message and returns status: `return kvq_host_fail(...)`. */
KVQ_HOST_PRINTF(3, 4) kvq_status kvq_host_fail(kvq_host_error *e, kvq_status status, const char *format, ...);
kvq_status kvq_host_vfail(kvq_host_error *e, kvq_status status, const char *format, va_list args);
/* For a failed libkvq call: records libkvq's message (kvq_last_error()) and
 * passes status on; KVQ_OK records nothing. */
kvq_status kvq_host_from_kvq(kvq_host_error *e, kvq_status status);
/* Puts a prefix before the message already recorded, e.g. "sequence 2: ",
 * and passes status on. */
KVQ_HOST_PRINTF(3, 4) kvq_status kvq_host_within(kvq_host_error *e, kvq_status status, const char *format, ...);
/* A failure of the device runtime during `what`: "<what>: <runtime> error
 * <code> on <device>[: <detail>]". detail may be NULL. */
kvq_status kvq_host_device_fail(kvq_host_error *e, kvq_status status, const char *what, const char *runtime,
                                const char *code, const char *device, const char *detail);
void kvq_host_clear(kvq_host_error *e);

/* open and list_devices report into the caller's buffer (there is no context
 * yet): writes a printf-style message into message[message_size] when the
 * caller gave one. */
KVQ_HOST_PRINTF(3, 4) void kvq_host_say(char *message, size_t message_size, const char *format, ...);

#endif
