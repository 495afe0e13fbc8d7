/*
 * inexact.h - conformance inputs that are not fp16 numbers.
 *
 * kvq_synth_kv (S14.3) returns fp16-exact elements, so a backend that rounds
 * anything it stores in fp16 the wrong way (fp16 rows of sinks, policy,
 * window and residual tokens; outlier values; S2.2) or rounds a group's
 * minimum to nearest instead of down (S3.2) would pass on them. The golden
 * set and the random cases move inputs off the fp16 grid with this function.
 */
#ifndef KVQ_CONFORM_INEXACT_H
#define KVQ_CONFORM_INEXACT_H

#include <stddef.h>
#include <stdint.h>

/* Moves every element x[i] (which must be an fp16 number, as kvq_synth_kv's
 * are) towards one of its fp16 neighbours, chosen from `seed` alone: a quarter
 * of the elements by exactly half the gap (an exact tie of S2.2, in either
 * direction), the others by a random fraction k / 4096 of it (k = 1 .. 4095,
 * not 2048). The result is an fp32 number strictly between two fp16 numbers,
 * finite and within |x| <= 65504 (towards infinity the other neighbour is
 * taken). Deterministic: the same seed gives the same bits on every machine. */
void conform_inexact(float *x, size_t n, uint64_t seed);

#endif
