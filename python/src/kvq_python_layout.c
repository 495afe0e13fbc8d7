/*
 * kvq_python_layout.c - the sizes and field offsets of the C structs that the
 * Python binding (python/kvq/_lib.py) mirrors with ctypes.
 *
 * ctypes computes a Structure's layout from the Python declaration alone, so
 * a field added to kvq.h and forgotten in _lib.py would silently shift every
 * later field. The binding compares each mirrored struct with this table,
 * written by the compiler (sizeof, offsetof), when it loads the library, and
 * refuses to load on any difference.
 */
#include "judge.h"
#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

#include <stddef.h>

typedef struct kvq_python_layout_entry {
    const char *type;  /* the C type name, e.g. "kvq_qtensor" */
    const char *field; /* a member, or NULL for the entry that gives the struct's size */
    size_t offset;     /* offsetof(type, field); 0 for the size entry */
    size_t size;       /* sizeof the member, or of the whole struct */
} kvq_python_layout_entry;

#define KVQ_STRUCT(T) {#T, NULL, 0, sizeof(T)}
#define KVQ_FIELD(T, m) {#T, #m, offsetof(T, m), sizeof(((T *)0)->m)}

static const kvq_python_layout_entry layout[] = {
    KVQ_STRUCT(kvq_group_params), KVQ_FIELD(kvq_group_params, a), KVQ_FIELD(kvq_group_params, b),

    KVQ_STRUCT(kvq_codebook), KVQ_FIELD(kvq_codebook, bits), KVQ_FIELD(kvq_codebook, signpost),
    KVQ_FIELD(kvq_codebook, threshold),

    KVQ_STRUCT(kvq_quantizer), KVQ_FIELD(kvq_quantizer, scheme), KVQ_FIELD(kvq_quantizer, bits),
    KVQ_FIELD(kvq_quantizer, codebook),

    KVQ_STRUCT(kvq_outlier_count), KVQ_FIELD(kvq_outlier_count, total), KVQ_FIELD(kvq_outlier_count, upper),
    KVQ_FIELD(kvq_outlier_count, lower),

    KVQ_STRUCT(kvq_token_policy), KVQ_FIELD(kvq_token_policy, rule), KVQ_FIELD(kvq_token_policy, budget_ppm),
    KVQ_FIELD(kvq_token_policy, n_sinks), KVQ_FIELD(kvq_token_policy, recent_window),

    KVQ_STRUCT(kvq_channel_range), KVQ_FIELD(kvq_channel_range, lo), KVQ_FIELD(kvq_channel_range, hi),

    KVQ_STRUCT(kvq_head_config), KVQ_FIELD(kvq_head_config, role), KVQ_FIELD(kvq_head_config, quantizer),
    KVQ_FIELD(kvq_head_config, key_mode), KVQ_FIELD(kvq_head_config, group_size),
    KVQ_FIELD(kvq_head_config, outlier_ppm), KVQ_FIELD(kvq_head_config, channel_range),
    KVQ_FIELD(kvq_head_config, policy), KVQ_FIELD(kvq_head_config, beyond_range),
    KVQ_FIELD(kvq_head_config, n_channel_range),

    KVQ_STRUCT(kvq_qtensor), KVQ_FIELD(kvq_qtensor, role), KVQ_FIELD(kvq_qtensor, key_mode),
    KVQ_FIELD(kvq_qtensor, scheme), KVQ_FIELD(kvq_qtensor, bits), KVQ_FIELD(kvq_qtensor, n_tokens),
    KVQ_FIELD(kvq_qtensor, head_dim), KVQ_FIELD(kvq_qtensor, group_size), KVQ_FIELD(kvq_qtensor, codebook),
    KVQ_FIELD(kvq_qtensor, precision), KVQ_FIELD(kvq_qtensor, fp16_slot), KVQ_FIELD(kvq_qtensor, n_fp16_rows),
    KVQ_FIELD(kvq_qtensor, fp16_rows), KVQ_FIELD(kvq_qtensor, row_bytes), KVQ_FIELD(kvq_qtensor, codes),
    KVQ_FIELD(kvq_qtensor, n_params), KVQ_FIELD(kvq_qtensor, params), KVQ_FIELD(kvq_qtensor, n_outliers),
    KVQ_FIELD(kvq_qtensor, outlier_ptr), KVQ_FIELD(kvq_qtensor, outlier_index),
    KVQ_FIELD(kvq_qtensor, outlier_value),

    KVQ_STRUCT(kvq_kmeans_params), KVQ_FIELD(kvq_kmeans_params, bits), KVQ_FIELD(kvq_kmeans_params, iterations),
    KVQ_FIELD(kvq_kmeans_params, q_norm),

    KVQ_STRUCT(kvq_rope), KVQ_FIELD(kvq_rope, pairing), KVQ_FIELD(kvq_rope, base),

    KVQ_STRUCT(kvq_rng), KVQ_FIELD(kvq_rng, state),

    KVQ_STRUCT(kvq_synth_params), KVQ_FIELD(kvq_synth_params, n_tokens), KVQ_FIELD(kvq_synth_params, head_dim),
    KVQ_FIELD(kvq_synth_params, seed), KVQ_FIELD(kvq_synth_params, n_outlier_channels),
    KVQ_FIELD(kvq_synth_params, tail_probability), KVQ_FIELD(kvq_synth_params, sink_token),
    KVQ_FIELD(kvq_synth_params, image_run), KVQ_FIELD(kvq_synth_params, text_run),

    KVQ_STRUCT(kvq_kvfile), KVQ_FIELD(kvq_kvfile, n_layers), KVQ_FIELD(kvq_kvfile, n_heads),
    KVQ_FIELD(kvq_kvfile, n_tokens), KVQ_FIELD(kvq_kvfile, head_dim), KVQ_FIELD(kvq_kvfile, dtype),
    KVQ_FIELD(kvq_kvfile, flags), KVQ_FIELD(kvq_kvfile, spec_major), KVQ_FIELD(kvq_kvfile, spec_minor),
    KVQ_FIELD(kvq_kvfile, spec_patch), KVQ_FIELD(kvq_kvfile, keys), KVQ_FIELD(kvq_kvfile, values),
    KVQ_FIELD(kvq_kvfile, modality), KVQ_FIELD(kvq_kvfile, positions),

    KVQ_STRUCT(kvq_calibration), KVQ_FIELD(kvq_calibration, n_layers), KVQ_FIELD(kvq_calibration, n_heads),
    KVQ_FIELD(kvq_calibration, head_dim), KVQ_FIELD(kvq_calibration, flags),
    KVQ_FIELD(kvq_calibration, outlier_ppm), KVQ_FIELD(kvq_calibration, key_range),
    KVQ_FIELD(kvq_calibration, key_codebook), KVQ_FIELD(kvq_calibration, value_codebook),

    KVQ_STRUCT(kvq_qfile), KVQ_FIELD(kvq_qfile, n_layers), KVQ_FIELD(kvq_qfile, n_heads),
    KVQ_FIELD(kvq_qfile, head_dim), KVQ_FIELD(kvq_qfile, n_tokens), KVQ_FIELD(kvq_qfile, tensor),

    KVQ_STRUCT(conform_diag), KVQ_FIELD(conform_diag, field), KVQ_FIELD(conform_diag, index),
    KVQ_FIELD(conform_diag, where), KVQ_FIELD(conform_diag, got), KVQ_FIELD(conform_diag, expected),
    KVQ_FIELD(conform_diag, has_ulps), KVQ_FIELD(conform_diag, ulps), KVQ_FIELD(conform_diag, detail),

    KVQ_STRUCT(qt_labels), KVQ_FIELD(qt_labels, header), KVQ_FIELD(qt_labels, precision),
    KVQ_FIELD(qt_labels, fp16_slot), KVQ_FIELD(qt_labels, fp16_rows), KVQ_FIELD(qt_labels, params),
    KVQ_FIELD(qt_labels, codes), KVQ_FIELD(qt_labels, outlier_ptr), KVQ_FIELD(qt_labels, outlier_index),
    KVQ_FIELD(qt_labels, outlier_value), KVQ_FIELD(qt_labels, dequantized),

    KVQ_STRUCT(qt_judgement), KVQ_FIELD(qt_judgement, boundary_accepted), KVQ_FIELD(qt_judgement, codes_differ),
};

/* The table above and its length. */
const kvq_python_layout_entry *kvq_python_layout(size_t *count)
{
    *count = sizeof layout / sizeof layout[0];
    return layout;
}

/* KVQ_STATUS_COUNT: the binding makes one exception class per status. */
unsigned kvq_python_status_count(void) { return (unsigned)KVQ_STATUS_COUNT; }

/* S0: the spec version this library implements (KVQ_SPEC_VERSION_STRING). */
const char *kvq_python_spec_version(void) { return KVQ_SPEC_VERSION_STRING; }
