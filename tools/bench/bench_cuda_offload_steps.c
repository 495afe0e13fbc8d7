/*
 * bench_cuda_offload_steps.c - the two timed steps of the offload study
 * (bench_cuda_offload.h): the whole prefill and one decode step, enqueued on
 * the model's (compute) stream, a copy stream and, for the quantized
 * formats' prefill, a quantize stream, ordered by events only: no host wait
 * inside a step (but see the append's staging slots in prefill_layers).
 *
 * Staging buffer b (streamed layer i uses b = i % 2) is handed on by events:
 *   prefill  append of i (quantize) -> written[b] -> copy out (copy) -> copied[b]
 *            -> the state of i + 2 comes in and is appended (quantize)
 *   decode   copy in of i (copy) -> loaded[b] -> attend (compute) -> freed[b]
 *            -> the copy in of i + 2 (copy)
 * kvq_cuda_layer_move only changes, on the host, where a layer's next calls
 * point; the events above keep the device's use of a buffer by one layer
 * before its reuse by the next, as they did for the study's own blobs.
 */
#include "bench_cuda_offload.h"

#include <stdio.h>
#include <string.h>

#define STUDY "offload_cuda"


static bool record_event(cudaEvent_t e, cudaStream_t s)
{
    return bench_cuda_ok(STUDY, cudaEventRecord(e, s), "cudaEventRecord");
}

static bool wait_event(cudaStream_t s, cudaEvent_t e)
{
    return bench_cuda_ok(STUDY, cudaStreamWaitEvent(s, e, 0), "cudaStreamWaitEvent");
}

/* ---- one decode step ------------------------------------------------------ */

/* Attention of the model's decode query (m->q: [heads][head_dim] fp16 at the
 * front of the QKV row) over layer l, whose memory is `memory`, into the
 * model's attention output (m->attn), which the output projection reads. */
static bool attention(offload_run *r, uint32_t l, unsigned char *memory, cudaStream_t stream)
{
    offload_cache *c = r->c;
    bench_model *m = r->m;
    if (!c->format->quantized) return bench_model_decode_attention_fp16(m, c->n_tokens, (const uint16_t *)memory);
    /* A streamed layer's state was copied into `memory`; only the host's record moves. */
    if (l >= c->resident &&
        !offload_layer_ok(kvq_cuda_layer_move(c->layer[l], memory, c->device_bytes), "kvq_cuda_layer_move", l))
        return false;
    const uint32_t seq = 0;
    kvq_cuda_attend_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.n_seqs = 1u;
    a.seq_ids = &seq;
    a.q = (kvq_cuda_rows){m->q, KVQ_CUDA_FP16, 3 * (int64_t)m->hidden, (int64_t)m->head_dim, 0};
    a.out = (kvq_cuda_out_rows){m->attn, KVQ_CUDA_FP16, (int64_t)m->hidden, (int64_t)m->head_dim};
    return offload_layer_ok(kvq_cuda_layer_attend(c->layer[l], &a, (kvq_cuda_stream)stream), "kvq_cuda_layer_attend", l);
}

/* Enqueues the copy of streamed layer i's state into staging i % 2, once the
 * attention that last read that buffer is done. */
static bool enqueue_load(offload_run *r, uint32_t i)
{
    offload_cache *c = r->c;
    uint32_t b = i % 2u;
    return wait_event(r->copy, r->freed[b]) &&
           bench_cuda_ok(STUDY,
                         cudaMemcpyAsync(offload_staging(c, b), offload_host(c, i), c->state_bytes,
                                         cudaMemcpyHostToDevice, r->copy),
                         "host-to-device layer") &&
           record_event(r->loaded[b], r->copy);
}

bool offload_decode(void *user, cudaStream_t stream)
{
    offload_run *r = user;
    offload_cache *c = r->c;
    uint32_t streamed = c->layers - c->resident;
    /* The compute stream's start is recorded before this: the copies start with it. */
    bool ok = record_event(r->start, stream) && wait_event(r->copy, r->start);
    for (uint32_t i = 0; ok && i < streamed && i < 2u; i++) ok = enqueue_load(r, i);
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        ok = bench_model_decode_pre(r->m);
        if (ok && l < c->resident) {
            ok = attention(r, l, offload_resident(c, l), stream);
        } else if (ok) {
            uint32_t i = l - c->resident, b = i % 2u;
            ok = wait_event(stream, r->loaded[b]) && attention(r, l, offload_staging(c, b), stream) &&
                 record_event(r->freed[b], stream);
            if (ok && i + 2u < streamed) ok = enqueue_load(r, i + 2u);
        }
        ok = ok && bench_model_decode_post(r->m);
    }
    return ok && bench_model_lm_head(r->m);
}

/* ---- the prefill ---------------------------------------------------------- */

/* The quantize stream's part of layer l, once the model wrote its K/V (kv_ready): an empty
 * sequence (a streamed layer at its staging buffer b, holding the layer's shared state from the
 * host), the prompt appended in chunks, kv_read when the model's K/V buffer may be overwritten,
 * and a streamed layer's state out to the host. */
static bool append_layer(offload_run *r, uint32_t l)
{
    offload_cache *c = r->c;
    bench_model *m = r->m;
    cudaStream_t q = r->quantize;
    bool streamed = l >= c->resident;
    uint32_t i = streamed ? l - c->resident : 0u, b = i % 2u;
    bool ok = true;
    if (streamed) {
        /* Staging b is free once its previous layer reached the host. The sequence slot is
         * cleared by reset, so only the state before it (error record, tables) comes in. */
        unsigned char *staging = offload_staging(c, b);
        ok = wait_event(q, r->copied[b]) &&
             bench_cuda_ok(STUDY,
                           cudaMemcpyAsync(staging, offload_host(c, i), c->shared_bytes, cudaMemcpyHostToDevice, q),
                           "a layer's tables to its staging buffer") &&
             offload_layer_ok(kvq_cuda_layer_move(c->layer[l], staging, c->device_bytes), "kvq_cuda_layer_move", l);
    }
    ok = ok && offload_layer_ok(kvq_cuda_layer_reset(c->layer[l], 0u, (kvq_cuda_stream)q), "kvq_cuda_layer_reset", l) &&
         wait_event(q, r->kv_ready);
    /* m->kv32: fp32 [2][heads][n][head_dim], keys then values. */
    size_t n = c->n_tokens, d = c->head_dim, half = (size_t)c->heads * n * d;
    for (uint32_t t0 = 0; ok && t0 < c->n_tokens; t0 += c->chunk) {
        const uint32_t seq = 0, n_new = c->n_tokens - t0 < c->chunk ? c->n_tokens - t0 : c->chunk;
        const uint8_t *modality = r->modality + t0;
        kvq_cuda_append_args a;
        memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.n_seqs = 1u;
        a.seq_ids = &seq;
        a.n_new = &n_new;
        a.modality = &modality;
        a.keys = (kvq_cuda_rows){m->kv32 + (size_t)t0 * d, KVQ_CUDA_FP32, 0, (int64_t)(n * d), (int64_t)d};
        a.values = (kvq_cuda_rows){m->kv32 + half + (size_t)t0 * d, KVQ_CUDA_FP32, 0, (int64_t)(n * d), (int64_t)d};
        ok = offload_layer_ok(kvq_cuda_layer_append(c->layer[l], &a, (kvq_cuda_stream)q), "kvq_cuda_layer_append", l);
    }
    ok = ok && record_event(r->kv_read, q);
    if (ok && streamed)
        ok = record_event(r->written[b], q) && wait_event(r->copy, r->written[b]) &&
             bench_cuda_ok(STUDY,
                           cudaMemcpyAsync(offload_host(c, i), offload_staging(c, b), c->state_bytes,
                                           cudaMemcpyDeviceToHost, r->copy),
                           "device-to-host layer") &&
             record_event(r->copied[b], r->copy);
    return ok;
}

/* fp16: the model writes K/V straight into the layer's blob on the compute stream. */
static bool fp16_layer(offload_run *r, uint32_t l, cudaStream_t stream)
{
    offload_cache *c = r->c;
    bool streamed = l >= c->resident;
    uint32_t i = streamed ? l - c->resident : 0u, b = i % 2u;
    unsigned char *dest = streamed ? offload_staging(c, b) : offload_resident(c, l);
    /* Staging buffer b is free once its previous layer reached the host. */
    bool ok = !streamed || wait_event(stream, r->copied[b]);
    ok = ok && bench_model_prefill_layer(r->m, c->n_tokens, (uint16_t *)dest, NULL);
    if (ok && streamed)
        ok = record_event(r->written[b], stream) && wait_event(r->copy, r->written[b]) &&
             bench_cuda_ok(STUDY,
                           cudaMemcpyAsync(offload_host(c, i), dest, c->state_bytes, cudaMemcpyDeviceToHost, r->copy),
                           "device-to-host layer") &&
             record_event(r->copied[b], r->copy);
    return ok;
}

/* Quantized: layer l's append (quantize stream) reads the model's K/V while the compute stream
 * runs l's attention and MLP; l + 1's projections overwrite that buffer, so they wait for kv_read.
 * Appends of more than KVQ_CUDA_STAGING_SLOTS chunks wait on the host for the layer's oldest
 * staging slot (kvq_cuda.h, "Synchronisation"): the host stays at most that many appends ahead. */
static bool prefill_layers(offload_run *r, cudaStream_t stream)
{
    offload_cache *c = r->c;
    bool ok = true;
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        if (!c->format->quantized) {
            ok = fp16_layer(r, l, stream);
            continue;
        }
        ok = (l == 0 || wait_event(stream, r->kv_read)) &&
             bench_model_prefill_layer(r->m, c->n_tokens, NULL, r->kv_ready) && append_layer(r, l);
    }
    return ok;
}

bool offload_prefill(void *user, cudaStream_t stream)
{
    offload_run *r = user;
    /* The other streams start with the timed region. */
    bool ok = record_event(r->start, stream) && wait_event(r->copy, r->start) && wait_event(r->quantize, r->start) &&
              prefill_layers(r, stream);
    /* The first token needs the vocabulary projection; TTFT ends when the cache is written and out
     * too (each wait takes the event as recorded at that moment, so one event serves both). */
    return ok && bench_model_lm_head(r->m) && record_event(r->joined, r->quantize) && wait_event(stream, r->joined) &&
           record_event(r->joined, r->copy) && wait_event(stream, r->joined);
}

/* ---- set-up ---------------------------------------------------------------- */

void offload_run_free(offload_run *r)
{
    cudaEvent_t *events[] = {&r->start, &r->kv_ready, &r->kv_read, &r->joined};
    for (int i = 0; i < 2; i++) {
        if (r->loaded[i]) cudaEventDestroy(r->loaded[i]);
        if (r->freed[i]) cudaEventDestroy(r->freed[i]);
        if (r->written[i]) cudaEventDestroy(r->written[i]);
        if (r->copied[i]) cudaEventDestroy(r->copied[i]);
    }
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (*events[i]) cudaEventDestroy(*events[i]);
    if (r->copy) cudaStreamDestroy(r->copy);
    if (r->quantize) cudaStreamDestroy(r->quantize);
    memset(r, 0, sizeof *r);
}

bool offload_run_make(offload_run *r, bench_model *m, offload_cache *c, const uint8_t *modality)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->c = c;
    r->modality = modality;
    cudaEvent_t *events[] = {&r->start,    &r->kv_ready, &r->kv_read,    &r->joined,     &r->loaded[0], &r->loaded[1],
                             &r->freed[0], &r->freed[1], &r->written[0], &r->written[1], &r->copied[0], &r->copied[1]};
    bool ok = bench_cuda_ok(STUDY, cudaStreamCreateWithFlags(&r->copy, cudaStreamNonBlocking), "copy stream") &&
              bench_cuda_ok(STUDY, cudaStreamCreateWithFlags(&r->quantize, cudaStreamNonBlocking), "quantize stream");
    for (size_t i = 0; ok && i < sizeof events / sizeof events[0]; i++)
        ok = bench_cuda_ok(STUDY, cudaEventCreateWithFlags(events[i], cudaEventDisableTiming), "events");
    if (!ok) offload_run_free(r);
    return ok;
}
