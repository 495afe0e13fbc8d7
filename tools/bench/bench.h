/*
 * bench.h - what the parts of `kvq bench` share: the options, timing
 * statistics, the JSON writer every study writes its results through, and the
 * study entry points (docs/CLI.md, docs/PERFORMANCE.md).
 *
 * One run writes DIR/bench.json (the only source of truth), then draws one SVG
 * per study from that file and renders docs/PERFORMANCE.md from it
 * (`kvq bench report DIR`). Targets are reported, never asserted.
 */
#ifndef KVQ_BENCH_H
#define KVQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json_write.h"
#include "kvq/kvq.h"

/* The issue asks for at least 20 timed runs after warm-up. */
#define BENCH_MIN_RUNS 20u
#define BENCH_MAX_RUNS 1000u
#define BENCH_JSON_SCHEMA "kvq-bench/1"
#define BENCH_JSON_FILE "bench.json"
#define BENCH_PARTIAL_FILE "bench.partial.json" /* the checkpoints of a run not yet finished */

typedef enum bench_study {
    BENCH_ATTENTION_CUDA = 0, /* (a) decode attention on CUDA against fp16 baselines */
    BENCH_QUANTIZE_CUDA,      /* (b) quantize/append throughput on CUDA */
    BENCH_OFFLOAD_CUDA,       /* (c) CPU-GPU offload of a LLaVA-like model */
    BENCH_ATTENTION_OPENCL,   /* (d) decode attention on OpenCL */
    BENCH_BACKEND_ABI,        /* (e) any backend through the ABI (bench_abi.c); only when asked for */
    BENCH_STUDY_COUNT
} bench_study;

/* JSON key of each study under "studies" (also the SVG file's base name). */
const char *bench_study_key(bench_study s);

typedef struct bench_options {
    bool quick;                    /* tiny sizes (CI on PoCL) */
    bool study[BENCH_STUDY_COUNT]; /* which studies run */
    uint32_t runs;                 /* timed runs per point (>= BENCH_MIN_RUNS) */
    uint32_t warmup;               /* untimed runs before them */
    uint32_t max_context;          /* 0: as large as fits (studies a, d) */
    uint32_t min_context;          /* contexts below it are skipped (studies a, d; 0: none) */
    int device;                    /* CUDA device / OpenCL device index, -1 default */
    int platform;                  /* OpenCL platform index, -1 default */
    const char *out_dir;
    const char *torch_script; /* tools/scripts/torch_sdpa_baseline.py, or NULL */
    bool keep;                /* carry the other studies of DIR/bench.json over */
    const char *flashinfer_script; /* tools/scripts/flashinfer_decode_baseline.py, or NULL: not run */
    const char *formats;      /* comma-separated format names (bench_formats), or NULL: all */
    const char *shapes;       /* comma-separated shape names (bench_shapes), or NULL: all */
    const char *backend;      /* study (e): a backend name or plugin path (kvq_backend_find) */
    bool resume;              /* --resume: go on from DIR/bench.partial.json (implies keep) */
    /* Set for the study a stopped run was measuring (its object in bench.partial.json, without
     * "status") while that study runs again under --resume, and the start of that run; NULL
     * otherwise. A study that can resume (c) keeps the rows measured there and measures the rest. */
    const struct json_value *resume_study;
    const char *resume_date;
} bench_options;

/* Whether `name` is in the comma-separated list (NULL: every name is). */
bool bench_selected(const char *list, const char *name);

/* ---- statistics (bench_stats.c) ---------------------------------------- */
typedef struct bench_stats {
    double median, min, max;
    uint32_t runs;
} bench_stats;
/* Sorts samples[0 .. n) in place; n >= 1. The median of an even count is the
 * mean of the two middle samples. */
bench_stats bench_stats_of(double *samples, uint32_t n);
/* Wall-clock seconds from a monotonic clock (host-side timings only). */
double bench_now_s(void);

/* ---- JSON output: the tools' one writer (tools/conform/json_write.h) ---- */
/* bench.json is written with json_writer under the names the studies have
 * always used; the compositions below are bench_json.c's. */
typedef json_writer bench_json;
#define bench_json_init json_writer_init
#define bench_json_object json_write_object
#define bench_json_array json_write_array
#define bench_json_end json_write_end       /* closes the innermost object or array */
#define bench_json_string json_write_string
#define bench_json_number json_write_double /* non-finite: null */
#define bench_json_u64 json_write_u64
#define bench_json_bool json_write_bool
#define bench_json_null json_write_null
/* Writes a parsed JSON value (tools/conform/json.h) as member `key`. */
#define bench_json_value json_write_value
/* {"median": .., "min": .., "max": .., "runs": ..} */
void bench_json_stats(bench_json *w, const char *key, const bench_stats *s);
/* The header of a study object's "plot" member: which fields the SVG draws. */
void bench_json_plot(bench_json *w, const char *title, const char *x_field, const char *x_label, const char *y_field,
                     const char *y_label, bool log_x, bool log_y);
/* "columns": the report's table for the study, [{field, title}, ...] from
 * pairs[i][0] (a dotted field path of a result row) and pairs[i][1]. */
void bench_json_columns(bench_json *w, const char *const (*pairs)[2], size_t n);
/* A study that could not run: {"status": "skipped", "reason": ...} as member `key`. */
void bench_json_skipped(bench_json *w, const char *key, const char *reason);

/* Checkpoints (bench_checkpoint.c). bench.json is written once, at the end of a run; so that a run stopped
 * by a time limit or a crash keeps what it measured, every study calls bench_checkpoint after each
 * result row, which rewrites `path` (<out>/bench.partial.json, by kvq_write_file) with the document so
 * far, closed: the containers open inside the root are closed, then `trailer` (if not NULL) writes the
 * members that end the document into the root object (run()'s "study_dates", of the studies complete
 * so far), then the root is closed. run() starts them on its document's memory stream, stops them
 * before closing it and removes the partial file once bench.json is written. Failing to write a
 * checkpoint is reported once and does not stop the run. */
typedef void bench_checkpoint_trailer(bench_json *w, const void *ctx);
void bench_checkpoint_start(FILE *stream, char *const *doc, const size_t *doc_size, const char *path,
                            bench_checkpoint_trailer *trailer, const void *trailer_ctx);
void bench_checkpoint(bench_json *w);
void bench_checkpoint_stop(void);

/* ---- cache formats of studies (a) and (d) (bench_formats.c) ------------ */
typedef struct bench_format {
    char name[48]; /* e.g. "nuq4+outliers+sink" */
    kvq_scheme scheme;
    uint32_t bits;
    uint32_t outlier_ppm; /* 0 or 10000 (1%) */
    uint32_t n_sinks;     /* 0 or 1 */
    bool post_rope;       /* keys stored after RoPE: attention rotates nothing (KVQ_ROPE_NONE, the layout
                             of vLLM and KIVI); otherwise pre-RoPE keys rotated at attention (HALF) */
} bench_format;
/* The formats of the sweep: 2/3/4/8-bit uniform (asym), 2/3/4-bit NUQ
 * (NormalFloat), each plain and with 1% outliers and one sink. Quick mode
 * keeps 2- and 4-bit uniform and 4-bit NUQ. Returns the count written. */
size_t bench_formats(bool quick, bench_format *out, size_t capacity);
/* Appends to out[0..n) the post-RoPE variants of its plain uniform formats (names "<format>-post-rope")
 * that fit `capacity`: the attention studies time both key layouts. Returns the new count. */
size_t bench_formats_post_rope(bench_format *out, size_t n, size_t capacity);
#define BENCH_MAX_FORMATS 24u
/* Head configs of a format for keys (online per-channel, blocks of 128
 * tokens) and values (one group per token); `codebook` must outlive them. */
void bench_format_configs(const bench_format *f, kvq_codebook *codebook, kvq_head_config *keys,
                          kvq_head_config *values);
/* The format's parameters as members of the open row object (scheme, bits,
 * outlier_ppm, n_sinks, key and value grouping). */
void bench_json_format(bench_json *w, const bench_format *f);
/* fp32 random rows in the fp16 range (S1.3), deterministic from seed. */
void bench_fill_random(float *x, size_t n, uint64_t seed);

/* A model's attention shape: n_kv KV heads, n_q query heads per KV head. */
typedef struct bench_shape {
    const char *name; /* "llama7b-mha", "gqa-8kv" */
    uint32_t n_kv, n_q, head_dim;
} bench_shape;
/* LLaMA-7B (32 heads of 128) and GQA shapes (8 KV heads, 4 or 8 query heads each). */
#define BENCH_SHAPE_COUNT 3u
extern const bench_shape bench_shapes[BENCH_SHAPE_COUNT];

/* The report table of studies (a) and (d). */
extern const char *const bench_attention_columns[][2];
extern const size_t bench_attention_column_count;

/* Bytes of a quantized head slice's arrays as S4.4 lays them out (what an
 * attention pass must read: codes, params, fp16 rows, outliers, precision). */
uint64_t bench_qtensor_bytes(const kvq_qtensor *header);

/* ---- studies ------------------------------------------------------------ */
/* Each writes its study object as member `key` of the open "studies" object and
 * returns 0, or 1 when it failed after printing why (it still closes its
 * object, with "status": "failed"). */
int bench_study_opencl(const bench_options *o, bench_json *w);
int bench_study_abi(const bench_options *o, bench_json *w);
#ifdef KVQ_BENCH_CUDA
int bench_study_cuda_attention(const bench_options *o, bench_json *w);
int bench_study_cuda_quantize(const bench_options *o, bench_json *w);
int bench_study_cuda_offload(const bench_options *o, bench_json *w);
#endif
/* PyTorch's scaled_dot_product_attention in fp16 for one shape and context:
 * runs the script with python3 when `import torch` works. Returns true with
 * the statistics, or false with the reason in why. */
/* "available (torch VERSION)" or "not available: why", for the top of bench.json. */
void bench_torch_status(const bench_options *o, char *text, size_t size);
/* FlashInfer's decode (o->flashinfer_script): up to `capacity` formats ("fp16-flashinfer",
 * "fp8-e4m3-flashinfer") measured at this point into out; returns how many were available and
 * puts the reason for the others into why. */
typedef struct bench_baseline {
    char format[48];
    bench_stats ms;
    uint64_t bytes_read;
} bench_baseline;
size_t bench_flashinfer_baselines(const bench_options *o, const bench_shape *shape, uint32_t context,
                                  bench_baseline *out, size_t capacity, char *why, size_t why_size);
bool bench_torch_baseline(const bench_options *o, const bench_shape *shape, uint32_t context, bench_stats *ms,
                          char *why, size_t why_size);

/* ---- after the run: plots and the report (bench_plot.c, bench_report.c) -- */
/* Draws DIR/<study>.svg for every study of DIR/bench.json (or bench.partial.json when there is no
 * bench.json) that has results.
 * Returns 0, or 1 after printing why. */
int bench_plot_all(const char *dir);
/* Markdown of DIR/bench.json (docs/PERFORMANCE.md) to out, or of DIR/bench.partial.json, marked as
 * a stopped run, when there is no bench.json; the plots are linked as PLOTS/<study>.svg (plots
 * NULL: DIR). Returns 0 or 1. */
int bench_report(const char *dir, const char *plots, FILE *out);

#endif /* KVQ_BENCH_H */
