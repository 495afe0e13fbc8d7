/*
 * layer_device.c - the device half of the device API (layer_internal.h):
 * what an append and an attend enqueue on the caller's stream.
 *
 * An append is one upload of the call's descriptors (page-locked staging,
 * one slot of KVQ_CUDA_STAGING_SLOTS per call, reused once its copy is done)
 * and these launches, whatever the number of sequences and heads:
 *   gather   the caller's rows (and the kept pending inputs) as fp32 (layer.cu)
 *   update   the precision and fp16 slots of every (sequence, role) (layer.cu)
 *   store    fp16 rows of the temporary and new final fp16 tokens, new pending inputs (layer.cu)
 *   quantize keys, quantize values, pack: quantize.cu's batched steps, the
 *            validation backend's code (cuda_quantize_batch.c) for every head slice at once
 *   outliers appended after the count kept on the device (layer.cu)
 * An attend uploads one kvq_cuda_seq per (sequence, KV head), converts the
 * queries, runs kvq_cuda_attention as the validation backend's
 * cuda_attention.c does (same split rule, same kernel choice), and writes the
 * outputs in the caller's type.
 *
 * The validation backend's context type is embedded for what is shared with
 * it: error messages, RoPE frequencies and the S4.4 read-back (cuda_tensor_read).
 */
#include "cuda_internal.h"
#include "kvq_cuda_layer.cuh"
#include "layer_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(kvq_cuda_batch_job) + sizeof(kvq_cuda_layer_job) + 16u <= LAYER_JOB_BYTES,
               "an append job's descriptors fit the layout's room (layer_internal.h)");
_Static_assert(sizeof(kvq_cuda_seq) + 8u <= LAYER_SEQ_BYTES, "an attend sequence's descriptor fits the layout's room");
_Static_assert(2u * sizeof(kvq_cuda_layer_record) <= 64u, "the records fit the layout's status area");

/* record[0]: deferred errors (kvq_cuda_layer_status); record[1]: the KVQ_CUDA_CHECKED call's own. */
enum { RECORD_DEFERRED = 0, RECORD_CHECKED = 1 };

typedef struct device_half {
    kvq_backend_context ctx;
    unsigned char *staging; /* page-locked [KVQ_CUDA_STAGING_SLOTS][plan_bytes] */
    cudaEvent_t done[KVQ_CUDA_STAGING_SLOTS];
    bool in_flight[KVQ_CUDA_STAGING_SLOTS];
    uint32_t next;
} device_half;

static device_half *half(const kvq_cuda_layer *layer) { return layer->device; }

static unsigned char *at(const kvq_cuda_layer *layer, size_t offset) { return layer->memory + offset; }
/* An offset in the work space (the host checked that the layer has one before the call). */
static unsigned char *work_at(const kvq_cuda_layer *layer, size_t offset) { return layer->work + offset; }

static kvq_cuda_layer_record *record(const kvq_cuda_layer *layer, int which)
{
    return (kvq_cuda_layer_record *)(void *)at(layer, layer->layout.status) + which;
}

/* A failed launch or copy: what is on the device is unknown now. */
static kvq_status device_failed(kvq_cuda_layer *layer, cudaError_t err, const char *what)
{
    cudaGetLastError();
    snprintf(layer->broken_message, sizeof layer->broken_message, "%s: CUDA error %s: %s", what,
             cudaGetErrorName(err), cudaGetErrorString(err));
    layer->broken = true;
    return layer_fail(KVQ_ERR_IO, "%s", layer->broken_message);
}

/* The calls run on the layer's device and give the caller's current device back. */
typedef struct on_device {
    int previous;
    cudaError_t err;
} on_device;

static on_device enter(const kvq_cuda_layer *layer)
{
    on_device o = {0, cudaSuccess};
    o.err = cudaGetDevice(&o.previous);
    if (o.err == cudaSuccess && o.previous != half(layer)->ctx.device) o.err = cudaSetDevice(half(layer)->ctx.device);
    return o;
}

static void leave(const kvq_cuda_layer *layer, on_device o)
{
    if (o.previous != half(layer)->ctx.device) cudaSetDevice(o.previous);
}

/* A staging slot whose previous copy is done (waits only when every slot is in flight). */
static unsigned char *staging_slot(kvq_cuda_layer *layer, uint32_t *slot)
{
    device_half *d = half(layer);
    const uint32_t i = d->next;
    if (d->in_flight[i]) cudaEventSynchronize(d->done[i]);
    d->in_flight[i] = false;
    d->next = (i + 1u) % KVQ_CUDA_STAGING_SLOTS;
    *slot = i;
    return d->staging + (size_t)i * layer->layout.plan_bytes;
}

/* Pieces of a staging slot (and of its device copy at the same offsets), 16-byte aligned. */
typedef struct carve {
    size_t used, cap;
} carve;

static size_t take(carve *c, size_t bytes)
{
    const size_t offset = (c->used + 15u) / 16u * 16u;
    c->used = offset + bytes;
    return offset;
}

/* ---- views ------------------------------------------------------------------ */

static const uint32_t *calibrated_params(const kvq_cuda_layer *layer, uint32_t head)
{
    return (const uint32_t *)(void *)at(layer, layer->layout.calibrated + (size_t)head * layer->layout.calibrated_stride);
}

static const float *calibrated_ranges(const kvq_cuda_layer *layer, uint32_t head)
{
    const size_t params = ((size_t)layer->config.head_dim * 4u + LAYER_ALIGN - 1u) / LAYER_ALIGN * LAYER_ALIGN;
    return (const float *)(void *)((const unsigned char *)calibrated_params(layer, head) + params);
}

/* S4.4 scalars of a head slice of n tokens, as the validation cache's views carry them. */
static void slice_header(const kvq_cuda_layer *layer, kvq_role r, uint32_t n, kvq_qtensor *h)
{
    const layer_role *role = &layer->layout.role[r];
    const kvq_head_config *c = &role->config;
    const uint32_t d = layer->config.head_dim;
    memset(h, 0, sizeof *h);
    h->role = r;
    h->key_mode = r == KVQ_ROLE_KEYS ? c->key_mode : KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    h->scheme = c->quantizer.scheme;
    h->bits = c->quantizer.bits;
    h->n_tokens = n;
    h->head_dim = d;
    h->group_size = r == KVQ_ROLE_VALUES ? (c->group_size == 0 ? d : c->group_size) : role->online ? c->group_size : 0u;
    if (c->quantizer.scheme == KVQ_SCHEME_NUQ) h->codebook = role->codebook;
    h->row_bytes = role->row_bytes;
    h->n_params = (uint32_t)layer_params_for(role, d, n);
}

/* The kernels' view of (sequence, head, role) with n tokens and its header. */
static void slice_view(const kvq_cuda_layer *layer, uint32_t s, uint32_t h, kvq_role r, uint32_t n,
                       uint32_t n_outliers, kvq_backend_tensor *t)
{
    const layer_role *role = &layer->layout.role[r];
    unsigned char *seq = at(layer, layer_seq_offset(&layer->layout, s));
    unsigned char *base = at(layer, layer_tensor_offset(&layer->layout, s, h, r));
    memset(t, 0, sizeof *t);
    slice_header(layer, r, n, &t->header);
    t->header.n_outliers = n_outliers;
    t->borrowed = true;
    t->view.precision = seq + role->precision;
    t->view.slot = (const uint32_t *)(void *)(seq + role->slot);
    t->view.rows = (const uint16_t *)(void *)(base + role->rows);
    t->view.temp_rows = (const uint16_t *)(void *)(base + role->temp_rows);
    t->view.codes = (const uint32_t *)(void *)(base + role->codes);
    t->view.params = role->calibrated ? calibrated_params(layer, h) : (const uint32_t *)(void *)(base + role->params);
    t->view.optr = (const uint32_t *)(void *)(base + role->optr);
    t->view.ochan = (const uint16_t *)(void *)(base + role->ochan);
    t->view.oval = (const uint16_t *)(void *)(base + role->oval);
    cuda_tensor_set_view_scalars(t);
}

static uint32_t *counter(const kvq_cuda_layer *layer, uint32_t s, uint32_t h, kvq_role r)
{
    return (uint32_t *)(void *)at(layer, layer_seq_offset(&layer->layout, s) + layer->layout.counters) + 2u * h + r;
}

/* ---- create, destroy ---------------------------------------------------------- */

static kvq_status upload(kvq_cuda_layer *layer, size_t offset, const void *src, size_t bytes, cudaStream_t s)
{
    cudaError_t err = cudaMemcpyAsync(at(layer, offset), src, bytes, cudaMemcpyHostToDevice, s);
    return err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "create: upload of the layer's tables");
}

/* S4.2 calibrated keys: every head's fixed params and its ranges (the strict outlier rule, S7.3). */
static kvq_status upload_calibration(kvq_cuda_layer *layer, cudaStream_t s)
{
    const uint32_t d = layer->config.head_dim;
    const kvq_quantizer *q = &layer->layout.role[KVQ_ROLE_KEYS].config.quantizer;
    kvq_group_params *params = malloc((size_t)d * sizeof *params);
    if (params == NULL) return layer_fail(KVQ_ERR_OUT_OF_MEMORY, "create: out of host memory");
    kvq_status status = KVQ_OK;
    for (uint32_t h = 0; status == KVQ_OK && h < layer->config.n_kv_heads; h++) {
        const kvq_channel_range *ranges = layer->key_ranges + (size_t)h * d;
        for (uint32_t c = 0; c < d; c++) params[c] = kvq_group_params_from_range(q, ranges[c].lo, ranges[c].hi);
        const size_t p = (size_t)((const unsigned char *)calibrated_params(layer, h) - layer->memory);
        const size_t r = (size_t)((const unsigned char *)calibrated_ranges(layer, h) - layer->memory);
        status = upload(layer, p, params, (size_t)d * 4u, s);
        if (status == KVQ_OK) status = upload(layer, r, ranges, (size_t)d * 8u, s);
        if (status == KVQ_OK && cudaStreamSynchronize(s) != cudaSuccess)
            status = device_failed(layer, cudaGetLastError(), "create");
    }
    free(params);
    return status;
}

/* S9.3's frequencies and the attention kernels' step tables, as cuda_rope_step(32) make them. */
static kvq_status upload_rope(kvq_cuda_layer *layer, cudaStream_t s)
{
    const kvq_rope *rope = &layer->config.rope;
    const uint32_t d = layer->config.head_dim;
    if (rope->pairing == KVQ_ROPE_NONE) return KVQ_OK;
    const double *theta = cuda_rope_theta(&half(layer)->ctx, rope->base, d);
    double *step = malloc((size_t)d * 16u * sizeof *step);
    float *step32 = malloc((size_t)d * KVQ_CUDA_STEP32_OFFSETS * sizeof *step32);
    kvq_status status = KVQ_OK;
    if (step == NULL || step32 == NULL) status = layer_fail(KVQ_ERR_OUT_OF_MEMORY, "create: out of host memory");
    if (status == KVQ_OK) {
        kvq_cuda_rope_step_table(theta, d, step);
        kvq_cuda_rope_step32_table(theta, d, step32);
        status = upload(layer, layer->layout.theta, theta, (size_t)(d / 2u) * sizeof *theta, s);
    }
    if (status == KVQ_OK) status = upload(layer, layer->layout.rope_step, step, (size_t)d * 16u * sizeof *step, s);
    if (status == KVQ_OK)
        status = upload(layer, layer->layout.rope_step32, step32, (size_t)d * KVQ_CUDA_STEP32_OFFSETS * sizeof *step32,
                        s);
    if (status == KVQ_OK && cudaStreamSynchronize(s) != cudaSuccess)
        status = device_failed(layer, cudaGetLastError(), "create");
    free(step);
    free(step32);
    return status;
}

static void destroy(kvq_cuda_layer *layer)
{
    device_half *d = half(layer);
    if (d == NULL) return;
    for (uint32_t i = 0; i < KVQ_CUDA_STAGING_SLOTS; i++)
        if (d->done[i] != NULL) {
            cudaEventSynchronize(d->done[i]);
            cudaEventDestroy(d->done[i]);
        }
    if (d->staging != NULL) cudaFreeHost(d->staging);
    free(d);
    layer->device = NULL;
}

/* Whether memory is device memory of `device` (or managed memory); `whose` names the device. */
static kvq_status check_memory(const void *memory, int device, const char *whose)
{
    struct cudaPointerAttributes attr;
    cudaError_t err = cudaPointerGetAttributes(&attr, memory);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory = %p: CUDA does not know it (%s)", memory,
                          cudaGetErrorString(err));
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory = %p is not device memory (allocate it with cudaMalloc or as a "
                          "CUDA tensor)", memory);
    if (attr.type == cudaMemoryTypeDevice && attr.device != device)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory = %p belongs to CUDA device %d, %s is %d", memory, attr.device,
                          whose, device);
    return KVQ_OK;
}

/* kvq_cuda_layer_move's check: the new memory is on the layer's own device. */
static kvq_status check_move(const kvq_cuda_layer *layer, const void *memory)
{
    return check_memory(memory, half(layer)->ctx.device, "the layer's device");
}

static kvq_status create(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    int device = 0;
    struct cudaDeviceProp prop;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, device);
    if (err == cudaSuccess) err = kvq_cuda_probe();
    if (err != cudaSuccess) {
        cudaGetLastError();
        return layer_fail(KVQ_ERR_IO, "no usable CUDA device: %s", cudaGetErrorString(err));
    }
    kvq_status status = check_memory(layer->memory, device, "the current device");
    if (status != KVQ_OK) return status;
    device_half *d = calloc(1, sizeof *d);
    if (d == NULL) return layer_fail(KVQ_ERR_OUT_OF_MEMORY, "create: out of host memory");
    layer->device = d;
    /* The context's host half (backends/common): cuda_tensor_read stages through its fill. */
    d->ctx.host.fill = cuda_fill_staging;
    d->ctx.host.run_rows = cuda_run_rows;
    d->ctx.device = device;
    d->ctx.profile = layer->profile;
    d->ctx.sm_count = (uint32_t)prop.multiProcessorCount;
    d->ctx.stream = s;
    snprintf(d->ctx.name, sizeof d->ctx.name, "%s", prop.name);
    err = cudaHostAlloc((void **)&d->staging, (size_t)KVQ_CUDA_STAGING_SLOTS * layer->layout.plan_bytes,
                        cudaHostAllocDefault);
    for (uint32_t i = 0; err == cudaSuccess && i < KVQ_CUDA_STAGING_SLOTS; i++)
        err = cudaEventCreateWithFlags(&d->done[i], cudaEventDisableTiming);
    if (err != cudaSuccess) {
        cudaGetLastError();
        destroy(layer);
        return layer_fail(KVQ_ERR_OUT_OF_MEMORY, "create: page-locked staging of %zu bytes: %s",
                          (size_t)KVQ_CUDA_STAGING_SLOTS * layer->layout.plan_bytes, cudaGetErrorString(err));
    }
    /* the cache, and the layer's own work space (a shared one is the caller's) */
    err = cudaMemsetAsync(layer->memory, 0, layer->work_own ? layer->layout.total_bytes : layer->layout.cache_bytes, s);
    status = err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "create: clearing the memory");
    if (status == KVQ_OK && layer->layout.role[KVQ_ROLE_KEYS].calibrated) status = upload_calibration(layer, s);
    if (status == KVQ_OK) status = upload_rope(layer, s);
    if (status == KVQ_OK && (err = cudaStreamSynchronize(s)) != cudaSuccess) status = device_failed(layer, err, "create");
    if (status != KVQ_OK) destroy(layer);
    return status;
}

/* ---- append -------------------------------------------------------------------- */

typedef struct append_carve {
    kvq_cuda_batch_job *batch;  /* [2][n_jobs]: keys' jobs, then values' */
    kvq_cuda_layer_job *jobs;   /* [2][n_jobs], the same order */
    kvq_cuda_layer_update *updates; /* [n_seqs][2] */
    size_t batch_at, jobs_at, updates_at, bytes;
    size_t marks_bytes;
} append_carve;

static kvq_cuda_quantizer quantizer_of(const layer_role *role) { return cuda_quantizer_of(&role->config.quantizer); }

/* The descriptors of one (sequence, head, role) job. */
static void describe_job(const kvq_cuda_layer *layer, const layer_append_plan *plan, uint32_t i, uint32_t h,
                         kvq_role r, float *x, uint8_t *codes_u8, uint8_t *mask, kvq_cuda_batch_job *b,
                         kvq_cuda_layer_job *j)
{
    const layer_role *role = &layer->layout.role[r];
    const layer_role_plan *p = &plan->roles[2u * i + r];
    const uint32_t s = plan->seq_ids[i], d = layer->config.head_dim;
    const kvq_cuda_rows *in = r == KVQ_ROLE_KEYS ? &plan->keys : &plan->values;
    kvq_backend_tensor t;
    slice_view(layer, s, h, r, p->n, 0, &t);
    unsigned char *base = at(layer, layer_tensor_offset(&layer->layout, s, h, r));
    const uint32_t u_base = p->pend_old / role->block * role->block; /* cuda_quant_job_begin */
    const kvq_head_config *c = &role->config;
    *b = (kvq_cuda_batch_job){
        .x = x,
        .precision = t.view.precision,
        .params = (uint32_t *)(uintptr_t)t.view.params,
        .cal_params = role->calibrated ? calibrated_params(layer, h) : NULL,
        .cal_ranges = role->calibrated && c->beyond_range != KVQ_BEYOND_RANGE_CLAMP ? calibrated_ranges(layer, h) : NULL,
        .codes = (uint32_t *)(uintptr_t)t.view.codes,
        .codes_u8 = codes_u8,
        .mask_u8 = mask,
        .x_base = p->pend_old,
        .t_begin = p->pend_old,
        .t_end = p->pend_new,
        .u_base = u_base,
        .head_dim = d,
        .group_size = r == KVQ_ROLE_VALUES ? (c->group_size == 0 ? d : c->group_size) : role->online ? c->group_size : 0u,
        .outlier_ppm = c->outlier_ppm,
        .q = quantizer_of(role),
    };
    const size_t elem = layer_dtype_bytes(in->dtype);
    *j = (kvq_cuda_layer_job){
        .input = (const unsigned char *)in->data + (in->seq_stride * (int64_t)i + in->head_stride * (int64_t)h) *
                                                       (int64_t)elem,
        .token_stride = in->token_stride,
        .pending = base + role->pending,
        .x = x,
        .slot = t.view.slot,
        .rows = (uint16_t *)(uintptr_t)t.view.rows,
        .temp_rows = (uint16_t *)(uintptr_t)t.view.temp_rows,
        .mask = mask,
        .optr = (uint32_t *)(uintptr_t)t.view.optr,
        .ochan = (uint16_t *)(uintptr_t)t.view.ochan,
        .oval = (uint16_t *)(uintptr_t)t.view.oval,
        .counter = counter(layer, s, h, r),
        .outlier_cap = (uint32_t)role->outliers_cap,
        .outliers = role->outliers ? 1u : 0u,
        .pend_cap = role->pend_cap,
        .x_base = p->pend_old,
        .n0 = p->n0,
        .n = p->n,
        .t_begin = p->pend_old,
        .t_end = p->pend_new,
        .pend_new = p->pend_new,
        .u_base = u_base,
        .seq = s,
        .head = h,
        .role = r,
    };
}

/* Every descriptor of the call into the staging slot, every job's scratch carved. */
static kvq_status describe_append(kvq_cuda_layer *layer, const layer_append_plan *plan, unsigned char *host,
                                  append_carve *a)
{
    const layer_layout *L = &layer->layout;
    const uint32_t H = layer->config.n_kv_heads, d = layer->config.head_dim, n_jobs = plan->n_seqs * H;
    carve c = {0, L->plan_bytes};
    a->batch_at = take(&c, 2u * n_jobs * sizeof *a->batch);
    a->jobs_at = take(&c, 2u * n_jobs * sizeof *a->jobs);
    a->updates_at = take(&c, 2u * plan->n_seqs * sizeof *a->updates);
    a->batch = (kvq_cuda_batch_job *)(void *)(host + a->batch_at);
    a->jobs = (kvq_cuda_layer_job *)(void *)(host + a->jobs_at);
    a->updates = (kvq_cuda_layer_update *)(void *)(host + a->updates_at);
    unsigned char *dev = work_at(layer, L->append_upload);
    float *rows = (float *)(void *)work_at(layer, L->append_rows);
    size_t row_at = 0, byte_at = 0;
    for (uint32_t i = 0; i < plan->n_seqs; i++)
        for (int r = 0; r < 2; r++) {
            const layer_role_plan *p = &plan->roles[2u * i + (uint32_t)r];
            const layer_role *role = &L->role[r];
            const size_t count = p->n - p->start;
            const size_t prec_at = take(&c, count), slot_at = take(&c, count * 4u);
            if (c.used > c.cap) break;
            memcpy(host + prec_at, p->precision, count);
            memcpy(host + slot_at, p->slot, count * 4u);
            unsigned char *seq = at(layer, layer_seq_offset(L, plan->seq_ids[i]));
            a->updates[2u * i + (uint32_t)r] = (kvq_cuda_layer_update){
                .src_precision = dev + prec_at,
                .src_slot = (const uint32_t *)(void *)(dev + slot_at),
                .precision = seq + role->precision + p->start,
                .slot = (uint32_t *)(void *)(seq + role->slot) + p->start,
                .count = (uint32_t)count,
            };
            const uint32_t u_base = p->pend_old / role->block * role->block;
            const size_t span = ((size_t)(p->pend_new - u_base) * d + 1u + 15u) / 16u * 16u;
            for (uint32_t h = 0; h < H; h++) {
                const uint32_t k = (uint32_t)r * n_jobs + i * H + h;
                describe_job(layer, plan, i, h, (kvq_role)r, rows + row_at, work_at(layer, L->append_codes) + byte_at,
                             work_at(layer, L->append_marks) + byte_at, &a->batch[k], &a->jobs[k]);
                row_at += (size_t)(p->n - p->pend_old) * d;
                byte_at += span;
            }
        }
    a->bytes = c.used;
    a->marks_bytes = byte_at;
    if (c.used > c.cap || row_at * 4u > L->append_codes - L->append_rows || byte_at > L->append_marks - L->append_codes)
        return layer_fail(KVQ_ERR_IO, "append: internal error: the call needs more work space than the layout gave "
                          "(%zu of %zu upload bytes, %zu rows, %zu code bytes)", c.used, c.cap, row_at, byte_at);
    return KVQ_OK;
}

static const char *role_name(uint32_t role) { return role == KVQ_ROLE_KEYS ? "keys" : "values"; }

/* The message of a record (kvq_cuda_layer_status and KVQ_CUDA_CHECKED calls). */
static kvq_status from_record(const kvq_cuda_layer *layer, const kvq_cuda_layer_record *rec)
{
    const char *after = "; that sequence's contents are unspecified until kvq_cuda_layer_reset";
    switch (rec->code) {
    case KVQ_CUDA_LAYER_ERROR_KV_VALUE:
        return layer_fail(KVQ_ERR_NONFINITE_INPUT,
                          "append (call %u): %s of sequence %u, KV head %u, token %u, channel %u = %g is not a finite "
                          "number within the fp16 range (|x| <= 65504)%s",
                          rec->call, role_name(rec->role), rec->seq, rec->head, rec->token, rec->channel,
                          (double)rec->value, after);
    case KVQ_CUDA_LAYER_ERROR_OUTLIER_ROOM:
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "append (call %u): keys of sequence %u, KV head %u: %.0f outliers from token %u on exceed the "
                          "room of config.key_outliers_per_token = %u per token%s",
                          rec->call, rec->seq, rec->head, (double)rec->value, rec->token,
                          layer->config.key_outliers_per_token, after);
    case KVQ_CUDA_LAYER_ERROR_Q_VALUE:
        return layer_fail(KVQ_ERR_NONFINITE_INPUT,
                          "attend (call %u): query head %u of sequence %u, channel %u = %g is not a finite number "
                          "within the fp16 range (|x| <= 65504); that call's outputs are unspecified",
                          rec->call, rec->head, rec->seq, rec->channel, (double)rec->value);
    case KVQ_CUDA_LAYER_ERROR_KEY_RANGE:
        return layer_fail(KVQ_ERR_NONFINITE_INPUT,
                          "attend (call %u): a dequantized key lies outside the fp16 range (|x| <= 65504); the "
                          "reference rejects it as RoPE input (S9.1); that call's outputs are unspecified",
                          rec->call);
    case KVQ_CUDA_LAYER_ERROR_Q_DOMAIN:
    case KVQ_CUDA_LAYER_ERROR_K_DOMAIN:
        return layer_fail(KVQ_ERR_NONFINITE_INPUT,
                          "attend (call %u): a %s pair lies outside the fp16 profile's domain (|x_a| + |x_b| <= 2^15, "
                          "S12.4), so that call's outputs need not meet the profile (KVQ_CUDA_CHECKED falls back to "
                          "the fp32 kernels, as the validation ABI does; or choose the fp32 profile)",
                          rec->call, rec->code == KVQ_CUDA_LAYER_ERROR_Q_DOMAIN ? "query" : "key");
    default: return KVQ_OK;
    }
}

/* Waits for s, then the record `which`; cleared when it held an error. */
static kvq_status take_record(kvq_cuda_layer *layer, int which, cudaStream_t s)
{
    kvq_cuda_layer_record rec;
    cudaError_t err = cudaMemcpyAsync(&rec, record(layer, which), sizeof rec, cudaMemcpyDeviceToHost, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    if (err != cudaSuccess) return device_failed(layer, err, "reading the layer's error record");
    if (rec.code == KVQ_CUDA_LAYER_ERROR_NONE) return KVQ_OK;
    err = cudaMemsetAsync(record(layer, which), 0, sizeof rec, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    if (err != cudaSuccess) return device_failed(layer, err, "clearing the layer's error record");
    return from_record(layer, &rec);
}

static kvq_status append(kvq_cuda_layer *layer, const layer_append_plan *plan, kvq_cuda_stream stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    on_device o = enter(layer);
    if (o.err != cudaSuccess) return device_failed(layer, o.err, "append: selecting the layer's device");
    uint32_t slot = 0;
    unsigned char *host = staging_slot(layer, &slot);
    append_carve a;
    kvq_status status = describe_append(layer, plan, host, &a);
    if (status != KVQ_OK) {
        leave(layer, o);
        return status;
    }
    const layer_layout *L = &layer->layout;
    const uint32_t n_jobs = plan->n_seqs * layer->config.n_kv_heads;
    const bool checked = (plan->flags & KVQ_CUDA_CHECKED) != 0;
    unsigned char *dev = work_at(layer, L->append_upload);
    const kvq_cuda_batch_job *batch = (const kvq_cuda_batch_job *)(void *)(dev + a.batch_at);
    const kvq_cuda_layer_job *jobs = (const kvq_cuda_layer_job *)(void *)(dev + a.jobs_at);
    kvq_cuda_layer_call call = {record(layer, checked ? RECORD_CHECKED : RECORD_DEFERRED), plan->call,
                                layer->config.head_dim, (uint32_t)layer->config.kv_dtype};

    cudaError_t err = cudaSuccess;
    if (checked) err = cudaMemsetAsync(call.record, 0, sizeof *call.record, s);
    if (err == cudaSuccess) err = cudaMemcpyAsync(dev, host, a.bytes, cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess) err = cudaEventRecord(half(layer)->done[slot], s);
    half(layer)->in_flight[slot] = err == cudaSuccess;
    if (err == cudaSuccess) err = kvq_cuda_layer_launch_gather(jobs, a.jobs, 2u * n_jobs, call, s);
    if (err != cudaSuccess) status = device_failed(layer, err, "append: gathering the inputs");
    /* KVQ_CUDA_CHECKED: the inputs are checked before anything of the layer changes (S15.2). */
    if (status == KVQ_OK && checked) status = take_record(layer, RECORD_CHECKED, s);
    if (status == KVQ_OK) {
        err = kvq_cuda_layer_launch_update_rows((const kvq_cuda_layer_update *)(void *)(dev + a.updates_at), a.updates,
                                         2u * plan->n_seqs, s);
        if (err == cudaSuccess) err = kvq_cuda_layer_launch_store(jobs, a.jobs, 2u * n_jobs, call, s);
        if (err == cudaSuccess) err = cudaMemsetAsync(work_at(layer, L->append_marks), 0, a.marks_bytes, s);
        const layer_role *keys = &L->role[KVQ_ROLE_KEYS];
        if (err == cudaSuccess)
            err = keys->online ? kvq_cuda_batch_quantize_keys_online(batch, a.batch, n_jobs, s)
                               : kvq_cuda_batch_quantize_keys_calibrated(batch, a.batch, n_jobs, s);
        if (err == cudaSuccess) err = kvq_cuda_batch_quantize_values(batch + n_jobs, a.batch + n_jobs, n_jobs, s);
        if (err == cudaSuccess) err = kvq_cuda_batch_pack_token_rows(batch, a.batch, 2u * n_jobs, s);
        if (err == cudaSuccess && (keys->outliers || L->role[KVQ_ROLE_VALUES].outliers))
            err = kvq_cuda_layer_launch_outliers(jobs, 2u * n_jobs, call, s);
        if (err != cudaSuccess) status = device_failed(layer, err, "append: quantizing");
    }
    /* The room for calibrated keys' outliers is known only now; the layer has changed by then. */
    if (status == KVQ_OK && checked) status = take_record(layer, RECORD_CHECKED, s);
    leave(layer, o);
    return status;
}

/* ---- attend ---------------------------------------------------------------------- */

/* One run of the split and combine kernels, staged: cuda_attention.c's attention_run_once with the
 * queries already on the device. */
typedef struct attention_run {
    kvq_cuda_attention_args args; /* everything but the per-launch chunk */
    kvq_cuda_seq *desc;           /* host (staging) copy of the descriptors */
    unsigned char *dev;           /* their device copy */
    uint32_t n_seq;
} attention_run;

/* The descriptors of every (sequence, KV head), the split (kvq_cuda_attention_tokens_per_split, the
 * validation backend's rule), and their upload followed by the call's sequence ids. */
static kvq_status stage_attention(kvq_cuda_layer *layer, const layer_attend_plan *plan, bool allow_fp16,
                                  cudaStream_t s, attention_run *run)
{
    const layer_layout *L = &layer->layout;
    const uint32_t H = layer->config.n_kv_heads, d = layer->config.head_dim;
    const uint32_t g = layer->config.n_q_heads / H, n_seq = plan->n_seqs * H;
    const kvq_rope *rope = &layer->config.rope;
    const bool rotate = rope->pairing != KVQ_ROPE_NONE;
    uint32_t slot = 0;
    unsigned char *host = staging_slot(layer, &slot);
    kvq_cuda_seq *desc = (kvq_cuda_seq *)(void *)host;
    uint32_t *seq_ids = (uint32_t *)(void *)(host + (size_t)n_seq * sizeof *desc);
    uint32_t max_key_words = 1, max_value_words = 1;
    for (uint32_t i = 0; i < plan->n_seqs; i++) {
        const uint32_t n = plan->lengths[i];
        seq_ids[i] = plan->seq_ids[i];
        for (uint32_t h = 0; h < H; h++) {
            kvq_backend_tensor k, v;
            slice_view(layer, plan->seq_ids[i], h, KVQ_ROLE_KEYS, n, plan->outliers[KVQ_ROLE_KEYS][i] ? 1u : 0u, &k);
            slice_view(layer, plan->seq_ids[i], h, KVQ_ROLE_VALUES, n, plan->outliers[KVQ_ROLE_VALUES][i] ? 1u : 0u,
                       &v);
            kvq_cuda_seq *o = &desc[i * H + h];
            memset(o, 0, sizeof *o);
            o->keys = k.view;
            o->values = v.view;
            o->positions = NULL; /* token t is at position t (kvq_cuda.h) */
            o->q_position = n - 1u;
            o->n_tokens = n;
            if (k.view.row_words > max_key_words) max_key_words = k.view.row_words;
            if (v.view.row_words > max_value_words) max_value_words = v.view.row_words;
        }
    }
    kvq_cuda_attention_args a = {.theta = rotate ? (const double *)(void *)at(layer, L->theta) : NULL,
                                 .rope_step = rotate ? (const double *)(void *)at(layer, L->rope_step) : NULL,
                                 .rope_step32 = rotate ? (const float *)(void *)at(layer, L->rope_step32) : NULL,
                                 .seqs_host = desc,
                                 .pairing = rotate ? (uint32_t)rope->pairing : 0u,
                                 .n_seq = n_seq,
                                 .n_q = g,
                                 .head_dim = d,
                                 .allow_fp16 = allow_fp16 ? 1u : 0u};
    a.tokens_per_split = kvq_cuda_attention_tokens_per_split(&a, half(layer)->ctx.sm_count);
    a.max_splits = 1;
    for (uint32_t k = 0; k < n_seq; k++) {
        desc[k].n_splits = (desc[k].n_tokens + a.tokens_per_split - 1u) / a.tokens_per_split;
        if (desc[k].n_splits > a.max_splits) a.max_splits = desc[k].n_splits;
    }
    a.max_key_words = max_key_words;
    a.max_value_words = max_value_words;
    a.score_scale = (float)(1.4426950408889634 / sqrt((double)d)); /* log2(e) / sqrt(d), S12.3 */
    float *partial = (float *)(void *)work_at(layer, L->attend_partial);
    a.partial_o = a.max_splits > 1 ? partial : NULL;
    a.partial_ml = a.max_splits > 1 ? partial + (size_t)n_seq * a.max_splits * g * d : NULL;
    a.flags = (uint32_t *)(void *)work_at(layer, L->attend_flags);
    run->args = a;
    run->desc = desc;
    run->dev = work_at(layer, L->attend_upload);
    run->n_seq = n_seq;
    cudaError_t err = cudaMemcpyAsync(run->dev, host, (size_t)n_seq * sizeof *desc + plan->n_seqs * 4u,
                                      cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess) err = cudaEventRecord(half(layer)->done[slot], s);
    half(layer)->in_flight[slot] = err == cudaSuccess;
    return err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "attend: uploading the descriptors");
}

static kvq_status launch_attention(kvq_cuda_layer *layer, const attention_run *run, cudaStream_t s)
{
    const layer_layout *L = &layer->layout;
    const uint32_t gd = run->args.n_q * run->args.head_dim;
    cudaError_t err = cudaMemsetAsync(run->args.flags, 0, 4, s);
    for (uint32_t first = 0; err == cudaSuccess && first < run->n_seq; first += 65535u) {
        const uint32_t count = run->n_seq - first < 65535u ? run->n_seq - first : 65535u; /* gridDim.z */
        kvq_cuda_attention_args args = run->args;
        args.seqs = (const kvq_cuda_seq *)(void *)run->dev + first;
        args.seqs_host = run->desc + first;
        args.n_seq = count;
        args.q = (const float *)(void *)work_at(layer, L->attend_q) + (size_t)first * gd;
        args.out = (float *)(void *)work_at(layer, L->attend_out) + (size_t)first * gd;
        err = kvq_cuda_attention(&args, s);
    }
    return err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "attend: the attention kernels");
}

/* Waits for s and copies `words` device words into host. */
static kvq_status read_words(kvq_cuda_layer *layer, const uint32_t *dev, uint32_t *host, size_t words, cudaStream_t s)
{
    cudaError_t err = cudaMemcpyAsync(host, dev, words * 4u, cudaMemcpyDeviceToHost, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    return err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "reading the layer's flags and counters");
}

/* KVQ_CUDA_CHECKED: what the validation ABI does around its kernels (cuda_attention_run): the
 * queries checked first, the fp16 profile only for queries in its domain, a rerun on the fp32
 * kernels when a key is outside it, an error for a dequantized key beyond the fp16 range. */
static kvq_status attend_checked(kvq_cuda_layer *layer, const layer_attend_plan *plan, bool allow_fp16,
                                 kvq_cuda_layer_call call, cudaStream_t s)
{
    const layer_layout *L = &layer->layout;
    uint32_t *flags = (uint32_t *)(void *)work_at(layer, L->attend_flags);
    attention_run run;
    kvq_status status = stage_attention(layer, plan, allow_fp16, s, &run);
    cudaError_t err = cudaSuccess;
    if (status == KVQ_OK)
        err = kvq_cuda_layer_launch_queries(plan->q.data, (uint32_t)plan->q.dtype, plan->q.seq_stride, plan->q.head_stride,
                                     plan->n_seqs, layer->config.n_q_heads, (const uint32_t *)(void *)(run.dev +
                                     (size_t)run.n_seq * sizeof(kvq_cuda_seq)),
                                     (float *)(void *)work_at(layer, L->attend_q), allow_fp16, flags + 1, call,
                                     s);
    if (status == KVQ_OK && err != cudaSuccess) status = device_failed(layer, err, "attend: the queries");
    if (status == KVQ_OK) status = take_record(layer, RECORD_CHECKED, s);
    uint32_t host_flags[2] = {0, 0};
    if (status == KVQ_OK) status = read_words(layer, flags, host_flags, 2, s);
    if (status == KVQ_OK && allow_fp16 && host_flags[1]) {
        allow_fp16 = false;
        status = stage_attention(layer, plan, allow_fp16, s, &run);
    }
    for (int tries = 0; status == KVQ_OK && tries < 2; tries++) {
        status = launch_attention(layer, &run, s);
        if (status == KVQ_OK) status = read_words(layer, flags, host_flags, 1, s);
        if (status != KVQ_OK || !(allow_fp16 && (host_flags[0] & 2u))) break;
        allow_fp16 = false; /* a key outside the fp16 domain */
        status = stage_attention(layer, plan, allow_fp16, s, &run);
    }
    if (status == KVQ_OK && (host_flags[0] & 1u)) {
        const kvq_cuda_layer_record rec = {KVQ_CUDA_LAYER_ERROR_KEY_RANGE, plan->call, 0, 0, 0, 0, 0, 0.0f};
        status = from_record(layer, &rec);
    }
    return status;
}

static kvq_status attend(kvq_cuda_layer *layer, const layer_attend_plan *plan, kvq_cuda_stream stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    const layer_layout *L = &layer->layout;
    on_device o = enter(layer);
    if (o.err != cudaSuccess) return device_failed(layer, o.err, "attend: selecting the layer's device");
    const bool checked = (plan->flags & KVQ_CUDA_CHECKED) != 0;
    /* S12.4: the tensor-core kernel may run in the fp16 profile (cuda_attention_run) */
    const bool allow_fp16 = layer->profile == KVQ_PROFILE_FP16;
    const kvq_cuda_layer_call call = {record(layer, checked ? RECORD_CHECKED : RECORD_DEFERRED), plan->call,
                                      layer->config.head_dim, 0};
    uint32_t *flags = (uint32_t *)(void *)work_at(layer, L->attend_flags);
    kvq_status status = KVQ_OK;
    cudaError_t err = cudaMemsetAsync(flags + 1, 0, 4, s);
    if (err == cudaSuccess && checked) err = cudaMemsetAsync(call.record, 0, sizeof *call.record, s);
    if (err != cudaSuccess) status = device_failed(layer, err, "attend");
    if (status == KVQ_OK && checked) {
        status = attend_checked(layer, plan, allow_fp16, call, s);
    } else if (status == KVQ_OK) {
        attention_run run;
        status = stage_attention(layer, plan, allow_fp16, s, &run);
        if (status == KVQ_OK &&
            (err = kvq_cuda_layer_launch_queries(plan->q.data, (uint32_t)plan->q.dtype, plan->q.seq_stride,
                                          plan->q.head_stride, plan->n_seqs, layer->config.n_q_heads,
                                          (const uint32_t *)(void *)(run.dev + (size_t)run.n_seq * sizeof(kvq_cuda_seq)),
                                          (float *)(void *)work_at(layer, L->attend_q), allow_fp16, flags + 1,
                                          call, s)) != cudaSuccess)
            status = device_failed(layer, err, "attend: the queries");
        if (status == KVQ_OK) status = launch_attention(layer, &run, s);
    }
    if (status == KVQ_OK) {
        /* the outputs in the caller's type; unchecked, the flags become deferred errors */
        err = kvq_cuda_layer_launch_outputs((const float *)(void *)work_at(layer, L->attend_out), plan->out.data,
                                     (uint32_t)plan->out.dtype, plan->out.seq_stride, plan->out.head_stride,
                                     plan->n_seqs, layer->config.n_q_heads, flags, flags + 1, checked ? 0u : 1u, call,
                                     s);
        if (err == cudaSuccess && checked) err = cudaStreamSynchronize(s);
        if (err != cudaSuccess) status = device_failed(layer, err, "attend: the outputs");
    }
    leave(layer, o);
    return status;
}

/* ---- reset, status, read ---------------------------------------------------------- */

static kvq_status reset(kvq_cuda_layer *layer, uint32_t seq_id, kvq_cuda_stream stream)
{
    on_device o = enter(layer);
    cudaError_t err = o.err;
    if (err == cudaSuccess)
        err = cudaMemsetAsync(at(layer, layer_seq_offset(&layer->layout, seq_id)), 0, layer->layout.seq_bytes,
                              (cudaStream_t)stream);
    kvq_status status = err == cudaSuccess ? KVQ_OK : device_failed(layer, err, "reset");
    leave(layer, o);
    return status;
}

static kvq_status status_of(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    on_device o = enter(layer);
    kvq_status status = o.err == cudaSuccess ? take_record(layer, RECORD_DEFERRED, (cudaStream_t)stream)
                                             : device_failed(layer, o.err, "status");
    leave(layer, o);
    return status;
}

static kvq_status read_slice(kvq_cuda_layer *layer, uint32_t seq_id, uint32_t head, kvq_role role,
                             kvq_cuda_stream stream, kvq_qtensor **out)
{
    device_half *d = half(layer);
    const layer_seq *seq = &layer->seqs[seq_id];
    on_device o = enter(layer);
    uint32_t n_outliers = 0;
    kvq_status status = o.err == cudaSuccess ? KVQ_OK : device_failed(layer, o.err, "read");
    if (status == KVQ_OK)
        status = read_words(layer, counter(layer, seq_id, head, role), &n_outliers, 1, (cudaStream_t)stream);
    kvq_backend_tensor t;
    slice_view(layer, seq_id, head, role, seq->length, n_outliers, &t);
    t.n_perm_rows = seq->n_perm;
    t.n_temp_rows = seq->role[role].n_temp;
    t.header.n_fp16_rows = t.n_perm_rows + t.n_temp_rows;
    kvq_qtensor *qt = NULL;
    if (status == KVQ_OK && kvq_qtensor_alloc(&t.header, &qt) != KVQ_OK)
        status = layer_fail(KVQ_ERR_OUT_OF_MEMORY, "read: %s", kvq_last_error());
    d->ctx.stream = (cudaStream_t)stream;
    if (status == KVQ_OK && cuda_tensor_read(&d->ctx, &t, qt) != KVQ_OK)
        status = layer_fail(KVQ_ERR_IO, "read: %s", d->ctx.host.error.message);
    leave(layer, o);
    if (status != KVQ_OK) {
        kvq_qtensor_free(qt);
        return status;
    }
    *out = qt;
    return KVQ_OK;
}

static const layer_device_ops cuda_ops = {
    .create = create,
    .destroy = destroy,
    .append = append,
    .attend = attend,
    .reset = reset,
    .status = status_of,
    .read = read_slice,
    .check_memory = check_move,
};

const layer_device_ops *layer_default_ops(void) { return &cuda_ops; }
