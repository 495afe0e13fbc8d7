/*
 * json_write.h - the few pieces of JSON output the reports need: escaped
 * strings and numbers that are always valid JSON (non-finite becomes null).
 */
#ifndef KVQ_CONFORM_JSON_WRITE_H
#define KVQ_CONFORM_JSON_WRITE_H

#include <stdio.h>

/* "text" with every character RFC 8259 requires escaped (quotes, backslash,
 * control characters); bytes >= 0x80 are copied (the runner writes UTF-8). */
void json_put_string(FILE *out, const char *text);
/* A double with 17 significant digits (round-trips), or null when not finite. */
void json_put_double(FILE *out, double value);

#endif
