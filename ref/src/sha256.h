/*
 * sha256.h - SHA-256 inside the reference (S16.1); not installed.
 *
 * The public functions are declared in kvq/kvq_io.h; this header adds the
 * digest size used by the file readers and writers.
 */
#ifndef KVQ_SHA256_H
#define KVQ_SHA256_H

#include "kvq/kvq_io.h"

/* S16.1: every kvq file ends with a digest of this many bytes. */
#define KVQ_SHA256_BYTES 32u

#endif /* KVQ_SHA256_H */
