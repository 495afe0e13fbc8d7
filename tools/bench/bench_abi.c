/*
 * bench_abi.c - study (e): any backend timed through the ABI alone
 * (kvq/kvq_backend.h), so that a porter times a plugin the way the project
 * times its own backends: `kvq bench --backend ./libmine.so --out DIR`.
 *
 * For each format the backend's caps advertise (kvq's formats of studies (a)
 * and (d), and S17's peer formats through the peer slots) and each context, it
 * times, on the host clock around one ABI call, the operations the caps claim:
 * quantize_head (keys), dequantize (keys), attention_decode (one query over
 * keys and values) and their peer counterparts. One KV head of 128 channels
 * per call: the ABI's unit. Tensors an operation reads come from the backend
 * itself when it quantizes, else from the reference (tensor_upload, or the
 * reference's peer bytes). Nothing runs in a child process: a plugin that
 * crashes ends the run (kvq conform and kvq accuracy isolate, bench times).
 */
#include "bench.h"

#include "backend_open.h"
#include "peer_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ABI_HEAD_DIM 128u

typedef struct abi_study {
    const bench_options *o;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    kvq_backend_caps caps;
    bench_json *w;
    kvq_rope rope;
    char skipped[1024]; /* the operations not timed and why, for "notes" */
} abi_study;

/* One point: a format at a context, with its data. */
typedef struct abi_point {
    abi_study *s;
    const char *format;
    uint32_t bits, n;
    const float *keys, *values, *q;
    uint32_t *positions;
    float *out;              /* [n][d]: dequantized values, or [d]: an attention output */
    kvq_head_config kc, vc;  /* kvq's formats */
    kvq_peer_config pk, pv;  /* peer formats */
    kvq_backend_tensor *kt, *vt;
    uint8_t *kd, *vd;        /* peer bytes */
    size_t k_bytes, v_bytes;
    kvq_backend_tensor *made; /* what a timed quantize_head returned, freed after the clock stops */
} abi_point;

typedef kvq_status (*abi_call)(abi_point *p);

static int fail(abi_point *p, const char *op, kvq_status st)
{
    const char *m = p->s->api->last_error(p->s->ctx);
    fprintf(stderr, "kvq bench: backend_abi: %s %s at %u tokens: %s: %s\n", op, p->format, p->n, kvq_status_name(st),
            m != NULL && m[0] != '\0' ? m : "(no message from last_error)");
    return 1;
}

/* o->warmup untimed and o->runs timed calls; after each timed call, `made` is freed outside the clock. */
static int time_call(abi_point *p, const char *op, abi_call call, bench_stats *ms)
{
    const bench_options *o = p->s->o;
    double *samples = calloc(o->runs, sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "kvq bench: backend_abi: out of host memory\n");
        return 1;
    }
    int rc = 0;
    for (uint32_t r = 0; rc == 0 && r < o->warmup + o->runs; r++) {
        double t0 = bench_now_s();
        kvq_status st = call(p);
        double t1 = bench_now_s();
        if (p->made != NULL) p->s->api->tensor_free(p->s->ctx, p->made);
        p->made = NULL;
        if (st != KVQ_OK) rc = fail(p, op, st);
        if (r >= o->warmup) samples[r - o->warmup] = (t1 - t0) * 1e3;
    }
    if (rc == 0) *ms = bench_stats_of(samples, o->runs);
    free(samples);
    return rc;
}

static kvq_status call_quantize(abi_point *p)
{
    return p->s->api->quantize_head(p->s->ctx, &p->kc, p->keys, p->n, ABI_HEAD_DIM, NULL, &p->made);
}
static kvq_status call_dequantize(abi_point *p) { return p->s->api->dequantize(p->s->ctx, p->kt, p->out); }
static kvq_status call_attention(abi_point *p)
{
    return p->s->api->attention_decode(p->s->ctx, p->kt, p->vt, p->positions, &p->s->rope, p->q, 1u, p->n, p->out);
}
static kvq_status call_peer_quantize(abi_point *p)
{
    return p->s->api->peer_quantize(p->s->ctx, &p->pk, p->keys, p->n, ABI_HEAD_DIM, p->kd);
}
static kvq_status call_peer_dequantize(abi_point *p)
{
    return p->s->api->peer_dequantize(p->s->ctx, &p->pk, p->kd, p->n, ABI_HEAD_DIM, p->out);
}
static kvq_status call_peer_attention(abi_point *p)
{
    return p->s->api->peer_attention_decode(p->s->ctx, &p->pk, p->kd, &p->pv, p->vd, p->n, ABI_HEAD_DIM, p->q, 1u,
                                            p->out);
}

static void write_row(abi_point *p, const char *op, const bench_stats *ms)
{
    bench_json *w = p->s->w;
    char label[160];
    snprintf(label, sizeof label, "%s %s", op, p->format);
    bench_json_object(w, NULL);
    bench_json_string(w, "label", label);
    bench_json_string(w, "op", op);
    bench_json_string(w, "format", p->format);
    bench_json_string(w, "kind", "backend");
    bench_json_string(w, "backend", p->s->api->name);
    bench_json_u64(w, "bits", p->bits);
    bench_json_u64(w, "context", p->n);
    bench_json_u64(w, "head_dim", ABI_HEAD_DIM);
    bench_json_stats(w, "time_ms", ms);
    bench_json_number(w, "tokens_per_s", ms->median > 0.0 ? p->n / (ms->median * 1e-3) : 0.0);
    bench_json_end(w);
    bench_checkpoint(w);
}

/* attention_decode's work through the backend's time_attention_decode_batch (a batch of the one
 * sequence): its inputs staged once, its device work timed on the device's clock. */
static int time_attention_slot(abi_point *p, bench_stats *ms)
{
    const bench_options *o = p->s->o;
    double *samples = calloc(o->runs, sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "kvq bench: backend_abi: out of host memory\n");
        return 1;
    }
    const kvq_backend_tensor *keys[1] = {p->kt}, *values[1] = {p->vt};
    const uint32_t *positions[1] = {p->positions};
    uint32_t q_position = p->n;
    kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = o->warmup, .runs = o->runs,
                                 .ms_host = samples};
    kvq_status st = p->s->api->time_attention_decode_batch(p->s->ctx, 1u, keys, values, positions, &p->s->rope, p->q,
                                                           1u, &q_position, p->out, &timing);
    int rc = st == KVQ_OK ? 0 : fail(p, "time_attention_decode_batch", st);
    if (rc == 0) *ms = bench_stats_of(samples, o->runs);
    free(samples);
    return rc;
}

static int time_and_write(abi_point *p, const char *op, abi_call call)
{
    bench_stats ms = {0, 0, 0, 0};
    int rc = time_call(p, op, call, &ms);
    if (rc == 0) write_row(p, op, &ms);
    return rc;
}

/* The tensors dequantize and attention read: the backend's own, else the reference's uploaded. */
static kvq_status make_tensors(abi_point *p)
{
    const kvq_backend_api *api = p->s->api;
    kvq_backend_context *ctx = p->s->ctx;
    if (p->s->caps.ops & KVQ_BACKEND_OP_QUANTIZE) {
        kvq_status st = api->quantize_head(ctx, &p->kc, p->keys, p->n, ABI_HEAD_DIM, NULL, &p->kt);
        return st != KVQ_OK ? st : api->quantize_head(ctx, &p->vc, p->values, p->n, ABI_HEAD_DIM, NULL, &p->vt);
    }
    kvq_qtensor *k = NULL, *v = NULL;
    kvq_status st = kvq_quantize_head(&p->kc, p->keys, p->n, ABI_HEAD_DIM, NULL, &k);
    if (st == KVQ_OK) st = kvq_quantize_head(&p->vc, p->values, p->n, ABI_HEAD_DIM, NULL, &v);
    if (st == KVQ_OK) st = api->tensor_upload(ctx, k, &p->kt);
    if (st == KVQ_OK) st = api->tensor_upload(ctx, v, &p->vt);
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
    return st;
}

static int kvq_format(abi_point *p, const bench_format *f)
{
    const kvq_backend_caps *c = &p->s->caps;
    const kvq_backend_api *api = p->s->api;
    kvq_codebook codebook;
    bench_format_configs(f, &codebook, &p->kc, &p->vc);
    p->format = f->name;
    p->bits = f->bits;
    int rc = 0;
    bool quantize = (c->ops & KVQ_BACKEND_OP_QUANTIZE) && api->quantize_head != NULL && api->tensor_free != NULL;
    bool upload = api->tensor_upload != NULL && api->tensor_free != NULL;
    if (quantize) rc = time_and_write(p, "quantize_head", call_quantize);
    bool dequantize = (c->ops & KVQ_BACKEND_OP_DEQUANTIZE) && api->dequantize != NULL;
    bool attention = (c->ops & KVQ_BACKEND_OP_ATTENTION) && api->attention_decode != NULL;
    if (rc == 0 && (dequantize || attention) && (quantize || upload)) {
        kvq_status st = make_tensors(p);
        if (st != KVQ_OK) rc = fail(p, quantize ? "quantize_head" : "tensor_upload", st);
        if (rc == 0 && dequantize) rc = time_and_write(p, "dequantize", call_dequantize);
        if (rc == 0 && attention) rc = time_and_write(p, "attention_decode", call_attention);
        if (rc == 0 && attention && KVQ_BACKEND_API_HAS(api, time_attention_decode_batch)) {
            bench_stats ms = {0, 0, 0, 0};
            rc = time_attention_slot(p, &ms);
            if (rc == 0) write_row(p, "attention_decode (device clock)", &ms);
        }
    }
    if (p->kt != NULL) api->tensor_free(p->s->ctx, p->kt);
    if (p->vt != NULL) api->tensor_free(p->s->ctx, p->vt);
    p->kt = p->vt = NULL;
    return rc;
}

static int peer_format(abi_point *p, const char *name, kvq_peer_config config)
{
    const kvq_backend_caps *c = &p->s->caps;
    const kvq_backend_api *api = p->s->api;
    p->format = name;
    p->bits = config.format == KVQ_PEER_Q4_0 ? 4u : config.format == KVQ_PEER_KIVI ? config.bits : 8u;
    p->pk = p->pv = config;
    p->pk.role = KVQ_ROLE_KEYS;
    p->pv.role = KVQ_ROLE_VALUES;
    if (config.format == KVQ_PEER_FP8_E4M3) { /* vLLM's per-tensor scale, max |x| / 448 */
        p->pk.scale = peer_fp8_scale(p->keys, (size_t)p->n * ABI_HEAD_DIM, 1.0f);
        p->pv.scale = peer_fp8_scale(p->values, (size_t)p->n * ABI_HEAD_DIM, 1.0f);
    }
    kvq_status st = kvq_peer_bytes(&p->pk, p->n, ABI_HEAD_DIM, &p->k_bytes);
    if (st == KVQ_OK) st = kvq_peer_bytes(&p->pv, p->n, ABI_HEAD_DIM, &p->v_bytes);
    p->kd = st == KVQ_OK ? malloc(p->k_bytes) : NULL;
    p->vd = st == KVQ_OK ? malloc(p->v_bytes) : NULL;
    /* the bytes peer_dequantize and peer_attention read: the reference's (S17) */
    if (st == KVQ_OK && (p->kd == NULL || p->vd == NULL)) st = KVQ_ERR_OUT_OF_MEMORY;
    if (st == KVQ_OK) st = kvq_peer_quantize(&p->pk, p->keys, p->n, ABI_HEAD_DIM, p->kd);
    if (st == KVQ_OK) st = kvq_peer_quantize(&p->pv, p->values, p->n, ABI_HEAD_DIM, p->vd);
    int rc = 0;
    if (st != KVQ_OK) {
        fprintf(stderr, "kvq bench: backend_abi: the reference's %s bytes: %s: %s\n", name, kvq_status_name(st),
                kvq_last_error());
        rc = 1;
    }
    if (rc == 0 && (c->peer_ops & KVQ_BACKEND_OP_DEQUANTIZE) && KVQ_BACKEND_API_HAS(api, peer_dequantize))
        rc = time_and_write(p, "peer_dequantize", call_peer_dequantize);
    if (rc == 0 && (c->peer_ops & KVQ_BACKEND_OP_ATTENTION) && KVQ_BACKEND_API_HAS(api, peer_attention_decode))
        rc = time_and_write(p, "peer_attention_decode", call_peer_attention);
    /* last: it overwrites the reference's key bytes with the backend's */
    if (rc == 0 && (c->peer_ops & KVQ_BACKEND_OP_QUANTIZE) && KVQ_BACKEND_API_HAS(api, peer_quantize))
        rc = time_and_write(p, "peer_quantize", call_peer_quantize);
    free(p->kd);
    free(p->vd);
    p->kd = p->vd = NULL;
    return rc;
}

/* Whether the caps advertise a kvq format (S4) at all, and why not. */
static bool format_supported(const kvq_backend_caps *c, const bench_format *f, char *why, size_t size)
{
    uint32_t mask = f->scheme == KVQ_SCHEME_NUQ ? c->nuq_bits : c->uniform_bits;
    if (!(mask & (1u << f->bits)))
        snprintf(why, size, "caps.%s lacks %u-bit codes", f->scheme == KVQ_SCHEME_NUQ ? "nuq_bits" : "uniform_bits",
                 f->bits);
    else if (f->outlier_ppm > 0 && !(c->features & KVQ_BACKEND_FEATURE_OUTLIERS))
        snprintf(why, size, "caps.features lacks OUTLIERS");
    else if (f->n_sinks > 0 && !(c->features & KVQ_BACKEND_FEATURE_SINKS))
        snprintf(why, size, "caps.features lacks SINKS");
    else if (!(c->key_modes & (1u << KVQ_KEYS_PER_CHANNEL_ONLINE)))
        snprintf(why, size, "caps.key_modes lacks online keys");
    else
        return true;
    return false;
}

static void note_skip(abi_study *s, const char *format, const char *why)
{
    /* Bounded by the sizes of their sources (bench_format.name is 48 bytes, why 128), so the compiler can
     * see the entry fits; a list longer than the buffer ends where it is cut. */
    size_t used = strlen(s->skipped);
    if (used + 1 < sizeof s->skipped)
        snprintf(s->skipped + used, sizeof s->skipped - used, "%s%.47s: %.127s", used > 0 ? "; " : "", format,
                 why);
}

/* The peer formats of S17 a sweep times: KIVI at 4 bits, in groups of 32 with a residual of 128. */
typedef struct abi_peer {
    const char *name;
    kvq_peer_config config;
} abi_peer;
static const abi_peer peers[] = {
    {"q8_0", {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0u, 0u, 0u, 0.0f}},
    {"q4_0", {KVQ_PEER_Q4_0, KVQ_ROLE_KEYS, 0u, 0u, 0u, 0.0f}},
    {"kivi4", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 4u, 32u, 128u, 0.0f}},
    {"fp8_e4m3", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0u, 0u, 0u, 1.0f}},
};

/* Contexts: quick 256 and 1024 tokens; else 1K, 4K, 16K, 64K; within caps.max_tokens and
 * --min-context / --max-context. */
static size_t contexts(const abi_study *s, uint32_t *out)
{
    static const uint32_t quick[] = {256u, 1024u}, full[] = {1024u, 4096u, 16384u, 65536u};
    const uint32_t *list = s->o->quick ? quick : full;
    size_t count = s->o->quick ? 2u : 4u, n = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t c = list[i];
        if ((s->o->max_context != 0 && c > s->o->max_context) || c < s->o->min_context || c > s->caps.max_tokens)
            continue;
        out[n++] = c;
    }
    return n;
}

static int sweep(abi_study *s)
{
    uint32_t ctxs[4];
    size_t n_ctx = contexts(s, ctxs);
    bench_format formats[BENCH_MAX_FORMATS];
    size_t n_formats = bench_formats(s->o->quick, formats, BENCH_MAX_FORMATS);
    bool peer_slots = KVQ_BACKEND_CAPS_HAS(&s->caps, peer_ops) && s->caps.peer_ops != 0;
    char why[128];
    for (size_t i = 0; i < n_formats; i++)
        if (bench_selected(s->o->formats, formats[i].name) && !format_supported(&s->caps, &formats[i], why, sizeof why))
            note_skip(s, formats[i].name, why);
    int rc = 0;
    for (size_t c = 0; c < n_ctx && rc == 0; c++) {
        uint32_t n = ctxs[c];
        size_t count = (size_t)n * ABI_HEAD_DIM;
        float *kv = malloc(2u * count * sizeof *kv), *q = malloc(ABI_HEAD_DIM * sizeof *q);
        float *out = malloc(count * sizeof *out);
        uint32_t *pos = malloc(n * sizeof *pos);
        if (kv == NULL || q == NULL || out == NULL || pos == NULL) {
            fprintf(stderr, "kvq bench: backend_abi: %u tokens: out of host memory\n", n);
            rc = 1;
        }
        if (rc == 0) {
            bench_fill_random(kv, 2u * count, n);
            bench_fill_random(q, ABI_HEAD_DIM, 7u);
            for (uint32_t t = 0; t < n; t++) pos[t] = t;
            fprintf(stderr, "kvq bench: backend_abi: %s, %u tokens\n", s->api->name, n);
        }
        abi_point p = {.s = s, .format = "", .n = n, .keys = kv, .values = kv + count, .q = q, .positions = pos,
                       .out = out};
        for (size_t i = 0; i < n_formats && rc == 0; i++)
            if (bench_selected(s->o->formats, formats[i].name) && format_supported(&s->caps, &formats[i], why, sizeof why))
                rc = kvq_format(&p, &formats[i]);
        for (size_t i = 0; peer_slots && i < sizeof peers / sizeof peers[0] && rc == 0; i++)
            if (bench_selected(s->o->formats, peers[i].name) && (s->caps.peer_formats & (1u << peers[i].config.format)))
                rc = peer_format(&p, peers[i].name, peers[i].config);
        free(kv);
        free(q);
        free(out);
        free(pos);
    }
    return rc;
}

int bench_study_abi(const bench_options *o, bench_json *w)
{
    const char *key = bench_study_key(BENCH_BACKEND_ABI);
    abi_study s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.w = w;
    char message[1024];
    if (!tool_open_backend(o->backend, o->platform, o->device, &s.api, &s.ctx, &s.caps, message, sizeof message)) {
        fprintf(stderr, "kvq bench: backend_abi: %s\n", message);
        bench_json_object(w, key);
        bench_json_string(w, "status", "failed");
        bench_json_string(w, "reason", message);
        bench_json_end(w);
        return 1;
    }
    /* RoPE on pre-RoPE keys when the backend rotates, as kvq's attention does (S9); else none. */
    s.rope.pairing = (s.caps.rope_pairings & (1u << KVQ_ROPE_HALF)) ? KVQ_ROPE_HALF : KVQ_ROPE_NONE;
    s.rope.base = 10000.0f;
    bench_json_object(w, key);
    const char *device = s.api->device_name(s.ctx);
    bench_json_string(w, "backend", s.api->name);
    bench_json_string(w, "argument", o->backend);
    bench_json_string(w, "device", device != NULL ? device : "");
    kvq_backend_device_info info = {.struct_size = sizeof info};
    if (KVQ_BACKEND_API_HAS(s.api, device_info) && s.api->device_info(s.ctx, &info) == KVQ_OK)
        bench_json_string(w, "driver", info.driver);
    else
        bench_json_string(w, "driver", s.api->description != NULL ? s.api->description : "");
    bench_json_string(w, "timed",
                      "host clock around one ABI call (kvq_backend.h) for one KV head of 128 channels: quantize_head "
                      "and peer_quantize of the keys (the tensor freed outside the clock), dequantize and "
                      "peer_dequantize of the keys into host memory, attention_decode and peer_attention_decode of "
                      "one query over keys and values (RoPE HALF when caps.rope_pairings has it, else none), output "
                      "in host memory; tensors the backend did not quantize itself are the reference's (tensor_upload, "
                      "S17 bytes). attention_decode (device clock): the same work through the backend's "
                      "time_attention_decode_batch slot where it has one (inputs staged once, device work timed by "
                      "the device's clock)");
    bench_json_object(w, "plot");
    bench_json_string(w, "title", "A backend through the ABI: time per call, one KV head of 128 channels");
    bench_json_string(w, "caption", "time per call");
    bench_json_string(w, "x", "context");
    bench_json_string(w, "x_label", "context (tokens)");
    bench_json_string(w, "y", "time_ms.median");
    bench_json_string(w, "y_label", "milliseconds per call");
    bench_json_string(w, "series", "format");
    bench_json_string(w, "panel", "op");
    bench_json_bool(w, "log_x", true);
    bench_json_bool(w, "log_y", true);
    bench_json_end(w);
    static const char *const columns[][2] = {
        {"op", "operation"},          {"format", "format"},       {"bits", "bits"},
        {"context", "tokens"},        {"time_ms.median", "median ms"}, {"time_ms.min", "min ms"},
        {"time_ms.max", "max ms"},    {"tokens_per_s", "tokens/s"},
    };
    bench_json_columns(w, columns, sizeof columns / sizeof *columns);
    bench_json_array(w, "results");
    int rc = sweep(&s);
    bench_json_end(w);
    char notes[1200];
    snprintf(notes, sizeof notes, "%s%s", s.skipped[0] != '\0' ? "not timed (the caps do not advertise them): " : "",
             s.skipped[0] != '\0' ? s.skipped : "every format of the sweep is advertised");
    bench_json_string(w, "notes", notes);
    bench_json_string(w, "status", rc == 0 ? "ok" : "failed");
    bench_json_end(w);
    s.api->close(s.ctx);
    return rc;
}
