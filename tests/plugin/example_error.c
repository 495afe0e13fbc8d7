/*
 * example_error.c - the message behind last_error (S13.2).
 *
 * The status is normative; the message is for people: it names the argument
 * and says what is wrong with it, with the offending value or index.
 */
#include "example.h"

#include <stdarg.h>
#include <stdio.h>

kvq_status ex_fail(ex_error *err, kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return status;
}
