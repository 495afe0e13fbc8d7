/*
 * synth_build.h - the tensors `kvq synth` writes, built in memory
 * (tools/cmd_synth.c), so that `kvq figures` draws exactly the data the
 * commands of docs/LEARN.md make.
 */
#ifndef KVQ_SYNTH_BUILD_H
#define KVQ_SYNTH_BUILD_H

#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

/* A kvfile of layers x heads slices from kvq_synth_kv_profile, head (l, h)
 * seeded with seed + 1000003 (l heads + h), rounded to fp16 for dtype fp16,
 * with modality and positions 0 .. tokens-1; NULL after printing why as
 * "kvq CMD: error: ...". */
kvq_kvfile *cli_synth_build(const char *cmd, uint32_t layers, uint32_t heads, uint32_t tokens, uint32_t head_dim,
                            uint64_t seed, const kvq_synth_params *base, kvq_synth_profile profile, kvq_dtype dtype);

#endif /* KVQ_SYNTH_BUILD_H */
