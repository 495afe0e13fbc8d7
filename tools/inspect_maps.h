/*
 * inspect_maps.h - `kvq inspect FILE.kvqz --against ORIGINAL.kvt --svg DIR`:
 * maps of one head slice over tokens x channels, the original's magnitudes
 * beside the quantization error of keys and values, each with its RMS per
 * channel and per token (tools/plot/heatmap.h). They show where the error
 * goes: along the outlier channels of keys when keys are grouped per token,
 * spread evenly when they are grouped per channel (S4).
 */
#ifndef KVQ_INSPECT_MAPS_H
#define KVQ_INSPECT_MAPS_H

#include <stdbool.h>
#include <stdint.h>

/* Writes the map of one slice: k, v original and kd, vd dequantized, [n][d]. */
bool maps_write_slice(const char *path, const char *title, const char *subtitle, const float *k, const float *kd,
                      const float *v, const float *vd, uint32_t n, uint32_t d);

#endif /* KVQ_INSPECT_MAPS_H */
