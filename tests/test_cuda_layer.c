/*
 * test_cuda_layer.c - the CUDA device API (kvq/kvq_cuda.h) without a GPU:
 * every argument check with its status and the argument its message names,
 * the memory sizes against a layout derived here from S4.4, S5 and S7-S10,
 * and the host half of an append (the spec's worked examples of S10.6 and
 * S15.5) through a stand-in device half that records what it was asked to
 * do. The device half itself is checked on a GPU against the validation ABI
 * (backends/cuda/layer_check.c, tools/run-gpu.sh step deviceapi).
 */
#include "check_main.h"
#include "kvq/kvq.h"
#include "kvq/kvq_cuda.h"
#include "layer_internal.h"

#include <stdio.h>
#include <string.h>

/* A call fails with `status` and its message names `needle`. */
#define EXPECT_FAIL(call, status, needle)                                                                          \
    do {                                                                                                           \
        kvq_status got_ = (call);                                                                                  \
        ck_assert_msg(got_ == (status), "%s returned %s, expected %s (%s)", #call, kvq_status_name(got_),         \
                      kvq_status_name(status), kvq_cuda_last_error());                                             \
        ck_assert_msg(strstr(kvq_cuda_last_error(), (needle)) != NULL, "%s: the message '%s' does not name '%s'", \
                      #call, kvq_cuda_last_error(), (needle));                                                     \
    } while (0)

#define EXPECT_OK(call)                                                                                            \
    do {                                                                                                           \
        kvq_status got_ = (call);                                                                                  \
        ck_assert_msg(got_ == KVQ_OK, "%s returned %s (%s)", #call, kvq_status_name(got_), kvq_cuda_last_error()); \
    } while (0)

/* ---- configurations ----------------------------------------------------------- */

typedef struct setup {
    kvq_head_config keys, values;
    kvq_channel_range ranges[4 * 128];
    kvq_cuda_layer_config layer;
} setup;

/* 4-bit online keys in blocks of 16, 4-bit values per token, the default policy, HALF RoPE. */
static void make_setup(setup *s, uint32_t head_dim, uint32_t n_kv, uint32_t n_q)
{
    memset(s, 0, sizeof *s);
    s->keys.role = KVQ_ROLE_KEYS;
    s->keys.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    s->keys.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    s->keys.group_size = 16;
    s->keys.policy = kvq_token_policy_default();
    s->values = s->keys;
    s->values.role = KVQ_ROLE_VALUES;
    s->values.key_mode = 0;
    s->values.group_size = 0;
    for (size_t c = 0; c < sizeof s->ranges / sizeof s->ranges[0]; c++) s->ranges[c] = (kvq_channel_range){-2.0f, 2.0f};
    s->layer = (kvq_cuda_layer_config){
        .struct_size = sizeof(kvq_cuda_layer_config),
        .head_dim = head_dim,
        .n_kv_heads = n_kv,
        .n_q_heads = n_q,
        .max_seqs = 2,
        .max_tokens = 256,
        .max_append_tokens = 64,
        .kv_dtype = KVQ_CUDA_FP16,
        .key_config = &s->keys,
        .value_config = &s->values,
        .rope = {KVQ_ROPE_HALF, 10000.0f},
        .attention_profile = -1,
    };
}

static void make_calibrated(setup *s)
{
    s->keys.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    s->keys.group_size = 0;
    s->layer.key_ranges = s->ranges;
    s->layer.n_key_ranges = s->layer.n_kv_heads * s->layer.head_dim;
    s->layer.key_outliers_per_token = 4;
}

static kvq_status size_of(const kvq_cuda_layer_config *config, kvq_cuda_layer_sizes *sizes)
{
    memset(sizes, 0, sizeof *sizes);
    sizes->struct_size = sizeof *sizes;
    return kvq_cuda_layer_size(config, sizes);
}

/* ---- the layout, derived from the spec ------------------------------------------ */

/* Every array starts at a multiple of 256 bytes (docs/DEVICE-API.md, "Memory"). */
static uint64_t a256(uint64_t x) { return (x + 255u) / 256u * 256u; }

/* S7.1: the outliers of a group of n eligible elements. */
static uint64_t s71(uint64_t n, uint32_t ppm)
{
    uint64_t tail = ((uint64_t)ppm * n + 1999999u) / 2000000u;
    return 2u * tail < n ? 2u * tail : n;
}

/* One head slice for n tokens of d channels, as DEVICE-API.md lists its arrays. */
static uint64_t tensor_bytes(const kvq_cuda_layer_config *L, const kvq_head_config *c)
{
    const uint64_t n = L->max_tokens, d = L->head_dim, bits = c->quantizer.bits;
    const bool keys = c->role == KVQ_ROLE_KEYS, online = keys && c->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    const bool calibrated = keys && !online;
    const uint64_t g = c->group_size == 0 ? d : c->group_size;
    /* S5.1 code rows, with the kernels' 16 bytes of slack for 16-byte loads */
    uint64_t bytes = a256(n * d * bits / 8u + 16u);
    /* S4.4 parameter pairs of two fp16 each: values per (token, group), online keys per (block, channel);
     * calibrated keys' d pairs are kept once per head */
    uint64_t params = !keys ? n * (d / g) : online ? (n + g - 1u) / g * d : 0u;
    bytes += a256(params * 4u);
    bytes += a256((n + 1u) * 4u); /* S7.4 outliers by token: n + 1 pointers */
    /* S7.1 at most per group (values), per complete block and channel (online keys), or the room asked for */
    uint64_t outliers = !keys ? n * (d / g) * s71(g, c->outlier_ppm)
                              : online ? n / g * d * s71(g, c->outlier_ppm)
                                       : c->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? 0u : n * L->key_outliers_per_token;
    bytes += 2u * a256(outliers * 2u); /* channel and fp16 value */
    /* S8 + S10.3: fp16 rows that never change (sinks and the budget of a full sequence) */
    const kvq_token_policy *p = &c->policy;
    uint64_t perm = (p->n_sinks < n ? p->n_sinks : n) +
                    (p->rule == KVQ_POLICY_QUANTIZE_ALL ? 0u : (uint64_t)p->budget_ppm * n / 1000000u);
    if (perm > n) perm = n;
    bytes += a256(perm * d * 2u);
    /* S10.4 + S4.3: pending tokens (the window, and for online keys the block it starts in), whose
     * fp16 rows are temporary and whose inputs are kept for when they become final */
    uint64_t pending = p->recent_window + (online ? g - 1u : 0u);
    if (pending > n) pending = n;
    bytes += a256(pending * d * 2u);
    bytes += a256(pending * d * (L->kv_dtype == KVQ_CUDA_FP32 ? 4u : 2u));
    (void)calibrated;
    return a256(bytes);
}

/* One sequence slot: outlier counters, per role a precision byte and an fp16 slot word per token
 * (shared by the heads: S10 decides per token), then every head's keys and values. */
static uint64_t sequence_bytes(const kvq_cuda_layer_config *L)
{
    const uint64_t n = L->max_tokens;
    uint64_t bytes = a256(L->n_kv_heads * 2u * 4u);
    bytes += 2u * (a256(n) + a256(n * 4u));
    bytes += L->n_kv_heads * (tensor_bytes(L, L->key_config) + tensor_bytes(L, L->value_config));
    return a256(bytes);
}

/* The layer: the error record, calibrated keys' params and ranges per head, the RoPE tables
 * (S9.3 frequencies, the attention kernels' step tables), then the sequences. */
static uint64_t cache_bytes(const kvq_cuda_layer_config *L)
{
    const uint64_t d = L->head_dim;
    uint64_t bytes = a256(64u);
    if (L->key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        bytes += L->n_kv_heads * a256(a256(d * 4u) + d * 8u);
    bytes += a256(d / 2u * 8u) + a256(d / 2u * 16u * 2u * 8u) + a256(d / 2u * 128u * 2u * 4u);
    return bytes + L->max_seqs * sequence_bytes(L);
}

static void expect_layout(const kvq_cuda_layer_config *L)
{
    kvq_cuda_layer_sizes sizes;
    EXPECT_OK(size_of(L, &sizes));
    ck_assert_uint_eq(sizes.sequence_bytes, sequence_bytes(L));
    ck_assert_uint_eq(sizes.cache_bytes, cache_bytes(L));
    ck_assert_uint_eq(sizes.total_bytes, sizes.cache_bytes + sizes.scratch_bytes);
    ck_assert_uint_gt(sizes.scratch_bytes, 0);
    ck_assert_uint_gt(sizes.host_bytes, (uint64_t)L->max_seqs * L->max_tokens);
}

START_TEST(sizes_follow_the_spec_layouts)
{
    setup s;
    /* MHA and GQA, 4, 2 and 8 bits, online and calibrated keys, groups, outliers, a window, budgets */
    make_setup(&s, 128, 4, 4);
    expect_layout(&s.layer);
    make_setup(&s, 128, 2, 8);
    s.keys.quantizer.bits = s.values.quantizer.bits = 2;
    s.values.group_size = 32;
    expect_layout(&s.layer);
    make_setup(&s, 64, 4, 16);
    s.keys.quantizer.bits = s.values.quantizer.bits = 8;
    s.keys.outlier_ppm = s.values.outlier_ppm = 20000;
    s.keys.policy.recent_window = s.values.policy.recent_window = 37;
    s.layer.max_tokens = 1000;
    s.layer.kv_dtype = KVQ_CUDA_FP32;
    expect_layout(&s.layer);
    make_setup(&s, 128, 4, 32);
    make_calibrated(&s);
    s.keys.policy.budget_ppm = s.values.policy.budget_ppm = 250000;
    s.keys.policy.n_sinks = s.values.policy.n_sinks = 4;
    s.layer.max_seqs = 3;
    expect_layout(&s.layer);
    s.keys.beyond_range = KVQ_BEYOND_RANGE_CLAMP;
    expect_layout(&s.layer);
    /* the code rows shrink with the bits, exactly as S5.1 says */
    make_setup(&s, 128, 1, 1);
    s.keys.group_size = 128;
    kvq_cuda_layer_sizes four, two;
    EXPECT_OK(size_of(&s.layer, &four));
    s.keys.quantizer.bits = s.values.quantizer.bits = 2;
    EXPECT_OK(size_of(&s.layer, &two));
    ck_assert_uint_eq(four.sequence_bytes - two.sequence_bytes,
                      2u * (a256(256u * 64u + 16u) - a256(256u * 32u + 16u)));
}
END_TEST

/* ---- configuration checks ----------------------------------------------------------- */

static kvq_status size_ok(const kvq_cuda_layer_config *c)
{
    kvq_cuda_layer_sizes sizes;
    return size_of(c, &sizes);
}

START_TEST(every_bad_configuration_is_named)
{
    setup s;
    kvq_cuda_layer_sizes sizes;
    make_setup(&s, 128, 4, 8);
    EXPECT_OK(size_ok(&s.layer));
    EXPECT_FAIL(size_ok(NULL), KVQ_ERR_NULL_ARGUMENT, "config");
    EXPECT_FAIL(kvq_cuda_layer_size(&s.layer, NULL), KVQ_ERR_NULL_ARGUMENT, "sizes");
    sizes.struct_size = 8;
    EXPECT_FAIL(kvq_cuda_layer_size(&s.layer, &sizes), KVQ_ERR_SIZE_MISMATCH, "sizes->struct_size");
#define BAD(field, value, status, needle)                                                                          \
    do {                                                                                                           \
        make_setup(&s, 128, 4, 8);                                                                                 \
        s.field = value;                                                                                           \
        EXPECT_FAIL(size_ok(&s.layer), status, needle);                                                           \
    } while (0)
    BAD(layer.struct_size, 16, KVQ_ERR_SIZE_MISMATCH, "config.struct_size");
    BAD(layer.key_config, NULL, KVQ_ERR_NULL_ARGUMENT, "config.key_config");
    BAD(layer.value_config, NULL, KVQ_ERR_NULL_ARGUMENT, "config.value_config");
    BAD(layer.n_kv_heads, 0, KVQ_ERR_ZERO_SIZE, "config.n_kv_heads");
    BAD(layer.n_q_heads, 0, KVQ_ERR_ZERO_SIZE, "config.n_q_heads");
    BAD(layer.n_q_heads, 6, KVQ_ERR_SIZE_MISMATCH, "config.n_q_heads = 6");
    BAD(layer.max_seqs, 0, KVQ_ERR_ZERO_SIZE, "config.max_seqs");
    BAD(layer.max_tokens, 0, KVQ_ERR_ZERO_SIZE, "config.max_tokens");
    BAD(layer.max_tokens, KVQ_MAX_TOKENS + 1u, KVQ_ERR_BAD_ARGUMENT, "config.max_tokens");
    BAD(layer.max_append_tokens, 0, KVQ_ERR_ZERO_SIZE, "config.max_append_tokens");
    BAD(layer.kv_dtype, (kvq_cuda_dtype)7, KVQ_ERR_BAD_ENUM, "config.kv_dtype");
    BAD(layer.attention_profile, 3, KVQ_ERR_BAD_ENUM, "config.attention_profile");
    BAD(layer.attention_profile, -2, KVQ_ERR_BAD_ENUM, "config.attention_profile");
    BAD(layer.rope.pairing, (kvq_rope_pairing)5, KVQ_ERR_BAD_ENUM, "config.rope.pairing");
    BAD(layer.rope.base, 1.0f, KVQ_ERR_BAD_ARGUMENT, "config.rope.base");
    /* the reference's own checks (S15.1, S4.1), named under config */
    BAD(keys.quantizer.bits, 5, KVQ_ERR_UNSUPPORTED_BITS, "");
    BAD(values.group_size, 48, KVQ_ERR_BAD_GROUP_SIZE, "config.value_config.group_size");
    BAD(keys.group_size, 0, KVQ_ERR_BAD_GROUP_SIZE, "config.key_config.group_size");
    BAD(keys.role, KVQ_ROLE_VALUES, KVQ_ERR_BAD_ARGUMENT, "config.key_config.role");
    BAD(values.policy.n_sinks, 3, KVQ_ERR_BAD_ARGUMENT, "policy");
    BAD(values.outlier_ppm, 1000001u, KVQ_ERR_BUDGET_RANGE, "config.value_config.outlier_ppm");
    BAD(layer.head_dim, 100, KVQ_ERR_HEAD_DIM_PACKING, "");
    /* S4.4: counts beyond 32 bits */
    make_setup(&s, 1024, 1, 1);
    s.values.group_size = 32;
    s.layer.max_tokens = KVQ_MAX_TOKENS;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_ARGUMENT, "S4.4");
    /* more memory than can be addressed */
    make_setup(&s, 1024, 64, 64);
    s.layer.max_seqs = 0xFFFFFFFFu;
    s.layer.max_tokens = KVQ_MAX_TOKENS;
    s.keys.group_size = 1024;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_ARGUMENT, "config:");
#undef BAD
}
END_TEST

START_TEST(calibrated_keys_need_their_ranges)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    make_calibrated(&s);
    EXPECT_OK(size_ok(&s.layer));
    s.layer.key_ranges = NULL;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_CALIBRATION, "config.key_ranges");
    make_calibrated(&s);
    s.layer.n_key_ranges = 128;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_SIZE_MISMATCH, "config.n_key_ranges = 128");
    make_calibrated(&s);
    s.ranges[2 * 128 + 5] = (kvq_channel_range){1.0f, -1.0f}; /* head 2, channel 5 */
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_CALIBRATION, "KV head 2");
    s.ranges[2 * 128 + 5] = (kvq_channel_range){-1.0f, 1.0f};
    s.layer.key_outliers_per_token = 0;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_ARGUMENT, "config.key_outliers_per_token");
    s.layer.key_outliers_per_token = 129;
    EXPECT_FAIL(size_ok(&s.layer), KVQ_ERR_BAD_ARGUMENT, "config.key_outliers_per_token");
    s.keys.beyond_range = KVQ_BEYOND_RANGE_CLAMP; /* no outliers, no room needed */
    s.layer.key_outliers_per_token = 0;
    EXPECT_OK(size_ok(&s.layer));
}
END_TEST

/* ---- a stand-in device half ---------------------------------------------------------- */

static struct {
    int creates, appends, attends, resets, statuses, reads;
    bool fail_append;
    layer_role_plan roles[8];
    uint8_t precision[8][512];
    uint32_t slot[8][512];
    uint32_t n_seqs;
    layer_attend_plan attend;
    const unsigned char *attend_memory; /* where the layer was when it attended */
    const unsigned char *append_work, *attend_work; /* the work space of the last append and attend */
    const void *refused_memory;         /* the memory fake_check_memory refuses */
    int memory_checks;
} fake;

static kvq_status fake_create(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    (void)layer;
    (void)stream;
    fake.creates++;
    return KVQ_OK;
}

static void fake_destroy(kvq_cuda_layer *layer) { (void)layer; }

static kvq_status fake_append(kvq_cuda_layer *layer, const layer_append_plan *plan, kvq_cuda_stream stream)
{
    (void)stream;
    if (fake.fail_append) {
        layer->broken = true;
        snprintf(layer->broken_message, sizeof layer->broken_message, "the stand-in failed");
        return layer_fail(KVQ_ERR_IO, "append: the stand-in failed");
    }
    fake.appends++;
    fake.append_work = layer->work;
    fake.n_seqs = plan->n_seqs;
    for (uint32_t k = 0; k < 2u * plan->n_seqs && k < 8u; k++) {
        fake.roles[k] = plan->roles[k];
        const uint32_t count = plan->roles[k].n - plan->roles[k].start;
        memcpy(fake.precision[k], plan->roles[k].precision, count);
        memcpy(fake.slot[k], plan->roles[k].slot, count * 4u);
    }
    return KVQ_OK;
}

static kvq_status fake_attend(kvq_cuda_layer *layer, const layer_attend_plan *plan, kvq_cuda_stream stream)
{
    (void)layer;
    (void)stream;
    fake.attends++;
    fake.attend = *plan;
    fake.attend_memory = layer->memory;
    fake.attend_work = layer->work;
    return KVQ_OK;
}

static kvq_status fake_reset(kvq_cuda_layer *layer, uint32_t seq_id, kvq_cuda_stream stream)
{
    (void)layer;
    (void)seq_id;
    (void)stream;
    fake.resets++;
    return KVQ_OK;
}

static kvq_status fake_status(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    (void)layer;
    (void)stream;
    fake.statuses++;
    return KVQ_OK;
}

static kvq_status fake_read(kvq_cuda_layer *layer, uint32_t seq_id, uint32_t head, kvq_role role,
                            kvq_cuda_stream stream, kvq_qtensor **out)
{
    (void)layer;
    (void)seq_id;
    (void)head;
    (void)role;
    (void)stream;
    (void)out;
    fake.reads++;
    return KVQ_OK;
}

static kvq_status fake_check_memory(const kvq_cuda_layer *layer, const void *memory)
{
    (void)layer;
    fake.memory_checks++;
    return memory == fake.refused_memory ? layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory: the stand-in refuses it") : KVQ_OK;
}

static const layer_device_ops fake_ops = {.create = fake_create,
                                          .destroy = fake_destroy,
                                          .append = fake_append,
                                          .attend = fake_attend,
                                          .reset = fake_reset,
                                          .status = fake_status,
                                          .read = fake_read,
                                          .check_memory = fake_check_memory};

/* The memory is never touched by the host half: any aligned address will do. */
static _Alignas(256) unsigned char memory[256], other_memory[256];

static kvq_cuda_layer *fake_layer(const kvq_cuda_layer_config *config)
{
    memset(&fake, 0, sizeof fake);
    kvq_cuda_layer_sizes sizes;
    EXPECT_OK(size_of(config, &sizes));
    kvq_cuda_layer *layer = NULL;
    EXPECT_OK(layer_create_with_ops(config, memory, sizes.total_bytes, NULL, &fake_ops, &layer));
    ck_assert_int_eq(fake.creates, 1);
    return layer;
}

START_TEST(create_checks_its_memory)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    kvq_cuda_layer_sizes sizes;
    EXPECT_OK(size_of(&s.layer, &sizes));
    kvq_cuda_layer *layer = (kvq_cuda_layer *)memory; /* must stay untouched */
    EXPECT_FAIL(kvq_cuda_layer_create(&s.layer, memory, sizes.total_bytes, NULL, NULL), KVQ_ERR_NULL_ARGUMENT, "out");
    EXPECT_FAIL(kvq_cuda_layer_create(&s.layer, NULL, sizes.total_bytes, NULL, &layer), KVQ_ERR_NULL_ARGUMENT,
                "memory");
    EXPECT_FAIL(kvq_cuda_layer_create(&s.layer, memory, sizes.cache_bytes - 1u, NULL, &layer), KVQ_ERR_SIZE_MISMATCH,
                "cache_bytes");
    EXPECT_FAIL(kvq_cuda_layer_create(&s.layer, memory + 16, sizes.total_bytes, NULL, &layer), KVQ_ERR_BAD_ARGUMENT,
                "aligned");
    s.layer.n_kv_heads = 0;
    EXPECT_FAIL(kvq_cuda_layer_create(&s.layer, memory, sizes.total_bytes, NULL, &layer), KVQ_ERR_ZERO_SIZE,
                "config.n_kv_heads");
    s.layer.n_kv_heads = 4;
    /* host memory is no layer's memory, with or without CUDA */
    kvq_status st = kvq_cuda_layer_create(&s.layer, memory, sizes.total_bytes, NULL, &layer);
#ifdef KVQ_TEST_HAVE_CUDA
    ck_assert_int_ne(st, KVQ_OK);
#else
    ck_assert_int_eq(st, KVQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(kvq_cuda_last_error(), "no CUDA backend"));
#endif
    ck_assert_str_ne(kvq_cuda_last_error(), "");
    ck_assert_ptr_eq(layer, (kvq_cuda_layer *)memory);
    kvq_cuda_layer_destroy(NULL);
}
END_TEST

static uint16_t rows16[4096];

static kvq_cuda_append_args append_args(const uint32_t *seq_ids, uint32_t n_seqs, const uint32_t *n_new)
{
    return (kvq_cuda_append_args){
        .struct_size = sizeof(kvq_cuda_append_args),
        .n_seqs = n_seqs,
        .seq_ids = seq_ids,
        .n_new = n_new,
        .keys = {rows16, KVQ_CUDA_FP16, 0, 0, 0},
        .values = {rows16, KVQ_CUDA_FP16, 0, 0, 0},
    };
}

/* Attention for n_seqs sequences of 8 query heads of 128 fp16 channels, into out. */
static kvq_cuda_attend_args attend_args(const uint32_t *seq_ids, uint32_t n_seqs, uint16_t *out)
{
    return (kvq_cuda_attend_args){
        .struct_size = sizeof(kvq_cuda_attend_args),
        .n_seqs = n_seqs,
        .seq_ids = seq_ids,
        .q = {rows16, KVQ_CUDA_FP16, 8 * 128, 128, 0},
        .out = {out, KVQ_CUDA_FP16, 8 * 128, 128},
    };
}

static uint32_t length_of(const kvq_cuda_layer *layer, uint32_t seq)
{
    uint32_t n = 0;
    EXPECT_OK(kvq_cuda_layer_length(layer, seq, &n));
    return n;
}

START_TEST(every_bad_append_is_named_and_changes_nothing)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    s.layer.max_seqs = 3;
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    const uint32_t ids[3] = {0, 2, 1}, twice[2] = {1, 1}, far[1] = {3};
    const uint32_t n_new[3] = {5, 1, 2}, zero[3] = {5, 0, 2}, many[3] = {60, 3, 2};
    kvq_cuda_append_args a = append_args(ids, 3, n_new);
    EXPECT_FAIL(kvq_cuda_layer_append(NULL, &a, NULL), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_append(layer, NULL, NULL), KVQ_ERR_NULL_ARGUMENT, "args");
#define BAD(field, value, status, needle)                                                                          \
    do {                                                                                                           \
        kvq_cuda_append_args b_ = a;                                                                               \
        b_.field = value;                                                                                          \
        EXPECT_FAIL(kvq_cuda_layer_append(layer, &b_, NULL), status, needle);                                     \
    } while (0)
    BAD(struct_size, 8, KVQ_ERR_SIZE_MISMATCH, "args.struct_size");
    BAD(flags, 6u, KVQ_ERR_BAD_ARGUMENT, "args.flags");
    BAD(n_seqs, 0, KVQ_ERR_ZERO_SIZE, "args.n_seqs");
    BAD(n_seqs, 4, KVQ_ERR_BAD_ARGUMENT, "args.n_seqs = 4");
    BAD(seq_ids, NULL, KVQ_ERR_NULL_ARGUMENT, "args.seq_ids");
    BAD(seq_ids, far, KVQ_ERR_BAD_ARGUMENT, "args.seq_ids[0] = 3");
    BAD(keys.data, NULL, KVQ_ERR_NULL_ARGUMENT, "args.keys.data");
    BAD(values.data, NULL, KVQ_ERR_NULL_ARGUMENT, "args.values.data");
    BAD(keys.dtype, (kvq_cuda_dtype)9, KVQ_ERR_BAD_ENUM, "args.keys.dtype");
    BAD(values.dtype, KVQ_CUDA_BF16, KVQ_ERR_BAD_ARGUMENT, "config.kv_dtype");
    BAD(keys.data, (const unsigned char *)rows16 + 1, KVQ_ERR_BAD_ARGUMENT, "args.keys.data");
    BAD(n_new, zero, KVQ_ERR_ZERO_SIZE, "args.n_new[1]");
    BAD(n_new, many, KVQ_ERR_BAD_ARGUMENT, "config.max_append_tokens");
    {
        kvq_cuda_append_args b = append_args(twice, 2, NULL);
        EXPECT_FAIL(kvq_cuda_layer_append(layer, &b, NULL), KVQ_ERR_BAD_ARGUMENT, "args.seq_ids[1] = 1 repeats");
    }
    const uint8_t good[5] = {0, 1, 1, 2, 0}, bad[2] = {1, 7};
    const uint8_t *modality[3] = {good, NULL, bad};
    BAD(modality, modality, KVQ_ERR_BAD_MODALITY, "args.modality[2]: modality[1] = 7");
#undef BAD
    ck_assert_int_eq(fake.appends, 0);
    for (uint32_t q = 0; q < 3; q++) ck_assert_uint_eq(length_of(layer, q), 0);
    /* a good one, then the capacity (max_tokens 256) */
    modality[2] = NULL;
    a.modality = modality;
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    ck_assert_int_eq(fake.appends, 1);
    ck_assert_uint_eq(length_of(layer, 0), 5);
    ck_assert_uint_eq(length_of(layer, 2), 1);
    ck_assert_uint_eq(length_of(layer, 1), 2);
    const uint32_t one[1] = {0}, sixty[1] = {60};
    kvq_cuda_append_args b = append_args(one, 1, sixty);
    for (int k = 0; k < 4; k++) EXPECT_OK(kvq_cuda_layer_append(layer, &b, NULL)); /* 245 */
    EXPECT_FAIL(kvq_cuda_layer_append(layer, &b, NULL), KVQ_ERR_BAD_ARGUMENT, "config.max_tokens");
    ck_assert_uint_eq(length_of(layer, 0), 245);
    /* a device failure makes the layer refuse every later call */
    fake.fail_append = true;
    EXPECT_FAIL(kvq_cuda_layer_append(layer, &a, NULL), KVQ_ERR_IO, "stand-in");
    EXPECT_FAIL(kvq_cuda_layer_append(layer, &a, NULL), KVQ_ERR_IO, "unusable");
    ck_assert_uint_eq(length_of(layer, 0), 245);
    kvq_cuda_layer_destroy(layer);
}
END_TEST

START_TEST(every_bad_attend_is_named)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    const uint32_t ids[2] = {0, 1}, far[1] = {2}, first[1] = {0};
    uint16_t out[2 * 8 * 128];
    kvq_cuda_attend_args a = attend_args(ids, 2, out);
    EXPECT_FAIL(kvq_cuda_layer_attend(NULL, &a, NULL), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_attend(layer, NULL, NULL), KVQ_ERR_NULL_ARGUMENT, "args");
#define BAD(field, value, status, needle)                                                                          \
    do {                                                                                                           \
        kvq_cuda_attend_args b_ = a;                                                                               \
        b_.field = value;                                                                                          \
        EXPECT_FAIL(kvq_cuda_layer_attend(layer, &b_, NULL), status, needle);                                     \
    } while (0)
    BAD(struct_size, 4, KVQ_ERR_SIZE_MISMATCH, "args.struct_size");
    BAD(flags, 2u, KVQ_ERR_BAD_ARGUMENT, "args.flags");
    BAD(n_seqs, 0, KVQ_ERR_ZERO_SIZE, "args.n_seqs");
    BAD(n_seqs, 3, KVQ_ERR_BAD_ARGUMENT, "config.max_seqs");
    BAD(seq_ids, NULL, KVQ_ERR_NULL_ARGUMENT, "args.seq_ids");
    BAD(seq_ids, far, KVQ_ERR_BAD_ARGUMENT, "args.seq_ids[0] = 2");
    BAD(q.data, NULL, KVQ_ERR_NULL_ARGUMENT, "args.q.data");
    BAD(out.data, NULL, KVQ_ERR_NULL_ARGUMENT, "args.out.data");
    BAD(q.dtype, (kvq_cuda_dtype)3, KVQ_ERR_BAD_ENUM, "args.q.dtype");
    BAD(out.dtype, (kvq_cuda_dtype)-1, KVQ_ERR_BAD_ENUM, "args.out.dtype");
    BAD(out.data, (unsigned char *)out + 1, KVQ_ERR_BAD_ARGUMENT, "args.out.data");
    EXPECT_FAIL(kvq_cuda_layer_attend(layer, &a, NULL), KVQ_ERR_ZERO_SIZE, "sequence 0 is empty");
    kvq_cuda_append_args ap = append_args(first, 1, NULL);
    EXPECT_OK(kvq_cuda_layer_append(layer, &ap, NULL));
    EXPECT_FAIL(kvq_cuda_layer_attend(layer, &a, NULL), KVQ_ERR_ZERO_SIZE, "sequence 1 is empty");
    ck_assert_int_eq(fake.attends, 0);
    a.n_seqs = 1;
    EXPECT_OK(kvq_cuda_layer_attend(layer, &a, NULL));
    ck_assert_int_eq(fake.attends, 1);
    ck_assert_uint_eq(fake.attend.lengths[0], 1);
#undef BAD
    kvq_cuda_layer_destroy(layer);
}
END_TEST

START_TEST(move_checks_then_changes_only_where_the_layer_is)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    kvq_cuda_layer_sizes sizes;
    EXPECT_OK(size_of(&s.layer, &sizes));
    const size_t total = sizes.total_bytes;
    EXPECT_FAIL(kvq_cuda_layer_move(NULL, other_memory, total), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_move(layer, NULL, total), KVQ_ERR_NULL_ARGUMENT, "memory");
    EXPECT_FAIL(kvq_cuda_layer_move(layer, other_memory, sizes.cache_bytes - 1u), KVQ_ERR_SIZE_MISMATCH, "cache_bytes");
    EXPECT_FAIL(kvq_cuda_layer_move(layer, other_memory + 16, total), KVQ_ERR_BAD_ARGUMENT, "aligned");
    ck_assert_int_eq(fake.memory_checks, 0); /* the host's checks come first */
    fake.refused_memory = other_memory;
    EXPECT_FAIL(kvq_cuda_layer_move(layer, other_memory, total), KVQ_ERR_BAD_ARGUMENT, "stand-in refuses");
    ck_assert_int_eq(fake.memory_checks, 1);
    ck_assert_ptr_eq(layer->memory, memory); /* every failed move left the layer where it was */
    fake.refused_memory = NULL;
    const uint32_t first[1] = {0};
    kvq_cuda_append_args ap = append_args(first, 1, NULL);
    EXPECT_OK(kvq_cuda_layer_append(layer, &ap, NULL));
    EXPECT_OK(kvq_cuda_layer_move(layer, other_memory, total));
    ck_assert_ptr_eq(layer->memory, other_memory);
    ck_assert_uint_eq(length_of(layer, 0), 1); /* the host's bookkeeping moves with it */
    uint16_t out[8 * 128];
    kvq_cuda_attend_args a = attend_args(first, 1, out);
    EXPECT_OK(kvq_cuda_layer_attend(layer, &a, NULL));
    ck_assert_ptr_eq(fake.attend_memory, other_memory);
    layer->broken = true; /* a layer after a device failure moves nowhere */
    snprintf(layer->broken_message, sizeof layer->broken_message, "the stand-in failed");
    EXPECT_FAIL(kvq_cuda_layer_move(layer, memory, total), KVQ_ERR_IO, "unusable");
    ck_assert_ptr_eq(layer->memory, other_memory);
    kvq_cuda_layer_destroy(layer);
}
END_TEST

/* Device addresses far apart (the stand-in never dereferences a layer's memory), so that a
 * cache of megabytes at one does not overlap a work space at another. */
static unsigned char *far_address(uintptr_t gib) { return (unsigned char *)(uintptr_t)(gib << 30); }

START_TEST(layers_share_a_work_space_they_are_given)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    kvq_cuda_layer_sizes sizes;
    EXPECT_OK(size_of(&s.layer, &sizes));
    ck_assert_uint_ge(sizes.total_bytes, sizes.cache_bytes + sizes.scratch_bytes);
    memset(&fake, 0, sizeof fake);
    unsigned char *cache_a = far_address(1), *cache_b = far_address(2), *cache_c = far_address(3);
    unsigned char *work = far_address(4);
    /* Two layers over their caches only: no work space, so no append or attend reaches the device. */
    kvq_cuda_layer *a = NULL, *b = NULL;
    EXPECT_OK(layer_create_with_ops(&s.layer, cache_a, sizes.cache_bytes, NULL, &fake_ops, &a));
    EXPECT_OK(layer_create_with_ops(&s.layer, cache_b, sizes.cache_bytes, NULL, &fake_ops, &b));
    const uint32_t first[1] = {0};
    kvq_cuda_append_args ap = append_args(first, 1, NULL);
    EXPECT_FAIL(kvq_cuda_layer_append(a, &ap, NULL), KVQ_ERR_BAD_ARGUMENT, "kvq_cuda_layer_set_work_space");
    ck_assert_int_eq(fake.appends, 0);
    ck_assert_uint_eq(length_of(a, 0), 0); /* the refused append changed nothing */
    /* set_work_space's checks, each naming what was wrong, none changing the layer */
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(NULL, work, sizes.scratch_bytes), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(a, NULL, 5), KVQ_ERR_BAD_ARGUMENT, "bytes = 5");
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(a, work, sizes.scratch_bytes - 1u), KVQ_ERR_SIZE_MISMATCH,
                "scratch_bytes");
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(a, work + 16, sizes.scratch_bytes), KVQ_ERR_BAD_ARGUMENT, "aligned");
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(a, cache_a + 256, sizes.scratch_bytes), KVQ_ERR_BAD_ARGUMENT,
                "overlaps the layer's cache");
    ck_assert_int_eq(fake.memory_checks, 0); /* the host's checks come first */
    fake.refused_memory = work;
    EXPECT_FAIL(kvq_cuda_layer_set_work_space(a, work, sizes.scratch_bytes), KVQ_ERR_BAD_ARGUMENT, "stand-in refuses");
    ck_assert_int_eq(fake.memory_checks, 1);
    ck_assert_ptr_null(a->work);
    fake.refused_memory = NULL;
    /* One work space for both layers: their calls use it. */
    EXPECT_OK(kvq_cuda_layer_set_work_space(a, work, sizes.scratch_bytes));
    EXPECT_OK(kvq_cuda_layer_set_work_space(b, work, sizes.scratch_bytes));
    EXPECT_OK(kvq_cuda_layer_append(a, &ap, NULL));
    ck_assert_ptr_eq(fake.append_work, work);
    EXPECT_OK(kvq_cuda_layer_append(b, &ap, NULL));
    ck_assert_ptr_eq(fake.append_work, work);
    uint16_t out[8 * 128];
    kvq_cuda_attend_args at = attend_args(first, 1, out);
    EXPECT_OK(kvq_cuda_layer_attend(b, &at, NULL));
    ck_assert_ptr_eq(fake.attend_work, work);
    /* A moved layer keeps the shared work space, and may not move its cache onto it. */
    EXPECT_FAIL(kvq_cuda_layer_move(a, work - 256, sizes.cache_bytes), KVQ_ERR_BAD_ARGUMENT, "overlap");
    ck_assert_ptr_eq(a->memory, cache_a);
    EXPECT_OK(kvq_cuda_layer_move(a, cache_c, sizes.cache_bytes));
    EXPECT_OK(kvq_cuda_layer_attend(a, &at, NULL));
    ck_assert_ptr_eq(fake.attend_memory, cache_c);
    ck_assert_ptr_eq(fake.attend_work, work);
    /* NULL: back to none (the memory has fewer than total_bytes) */
    EXPECT_OK(kvq_cuda_layer_set_work_space(a, NULL, 0));
    const int attends = fake.attends;
    EXPECT_FAIL(kvq_cuda_layer_attend(a, &at, NULL), KVQ_ERR_BAD_ARGUMENT, "no work space");
    ck_assert_int_eq(fake.attends, attends);
    /* A layer's own work space is the end of its memory, and follows it only into total_bytes. */
    EXPECT_OK(kvq_cuda_layer_move(a, cache_a, sizes.total_bytes));
    ck_assert_ptr_eq(a->work, cache_a + a->layout.scratch);
    EXPECT_OK(kvq_cuda_layer_move(a, cache_c, sizes.total_bytes));
    EXPECT_OK(kvq_cuda_layer_attend(a, &at, NULL));
    ck_assert_ptr_eq(fake.attend_work, cache_c + a->layout.scratch);
    EXPECT_OK(kvq_cuda_layer_move(a, cache_a, sizes.cache_bytes));
    EXPECT_FAIL(kvq_cuda_layer_attend(a, &at, NULL), KVQ_ERR_BAD_ARGUMENT, "no work space");
    kvq_cuda_layer_destroy(a);
    kvq_cuda_layer_destroy(b);
}
END_TEST

START_TEST(every_bad_small_call_is_named)
{
    setup s;
    make_setup(&s, 128, 4, 8);
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    uint32_t n = 0;
    kvq_qtensor *qt = NULL;
    EXPECT_FAIL(kvq_cuda_layer_length(NULL, 0, &n), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_length(layer, 0, NULL), KVQ_ERR_NULL_ARGUMENT, "length");
    EXPECT_FAIL(kvq_cuda_layer_length(layer, 2, &n), KVQ_ERR_BAD_ARGUMENT, "seq_id = 2");
    EXPECT_FAIL(kvq_cuda_layer_reset(NULL, 0, NULL), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_reset(layer, 5, NULL), KVQ_ERR_BAD_ARGUMENT, "seq_id = 5");
    EXPECT_FAIL(kvq_cuda_layer_status(NULL, NULL), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_read(NULL, 0, 0, KVQ_ROLE_KEYS, NULL, &qt), KVQ_ERR_NULL_ARGUMENT, "layer");
    EXPECT_FAIL(kvq_cuda_layer_read(layer, 0, 0, KVQ_ROLE_KEYS, NULL, NULL), KVQ_ERR_NULL_ARGUMENT, "out");
    EXPECT_FAIL(kvq_cuda_layer_read(layer, 2, 0, KVQ_ROLE_KEYS, NULL, &qt), KVQ_ERR_BAD_ARGUMENT, "seq_id");
    EXPECT_FAIL(kvq_cuda_layer_read(layer, 0, 4, KVQ_ROLE_KEYS, NULL, &qt), KVQ_ERR_BAD_ARGUMENT, "head = 4");
    EXPECT_FAIL(kvq_cuda_layer_read(layer, 0, 0, (kvq_role)2, NULL, &qt), KVQ_ERR_BAD_ENUM, "role");
    EXPECT_FAIL(kvq_cuda_layer_read(layer, 0, 0, KVQ_ROLE_KEYS, NULL, &qt), KVQ_ERR_ZERO_SIZE, "empty");
    ck_assert_int_eq(fake.reads + fake.resets + fake.statuses, 0);
    EXPECT_OK(kvq_cuda_layer_status(layer, NULL));
    const uint32_t ids[1] = {1}, three[1] = {3};
    kvq_cuda_append_args a = append_args(ids, 1, three);
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    ck_assert_uint_eq(length_of(layer, 1), 3);
    EXPECT_OK(kvq_cuda_layer_reset(layer, 1, NULL));
    ck_assert_uint_eq(length_of(layer, 1), 0);
    ck_assert_int_eq(fake.resets, 1);
    ck_assert_uint_eq(kvq_cuda_struct_size("kvq_cuda_attend_args"), sizeof(kvq_cuda_attend_args));
    ck_assert_uint_eq(kvq_cuda_struct_size("no such struct"), 0);
    kvq_cuda_layer_destroy(layer);
}
END_TEST

/* ---- the host half of an append: the spec's worked examples --------------------------- */

static void expect_precision(int k, const char *want)
{
    const layer_role_plan *p = &fake.roles[k];
    ck_assert_uint_eq(p->n - p->start, strlen(want));
    for (uint32_t t = p->start; t < p->n; t++) {
        const char got = "QSPWR"[fake.precision[k][t - p->start]];
        ck_assert_msg(got == want[t - p->start], "role plan %d, token %u: %c, expected %c (%s)", k, t, got,
                      want[t - p->start], want);
    }
}

START_TEST(appends_follow_s15_5)
{
    /* S15.5: text-centric, budget 25%, one sink, online keys in blocks of 4, head_dim 32 */
    setup s;
    make_setup(&s, 32, 1, 1);
    s.keys.group_size = 4;
    s.keys.policy.budget_ppm = s.values.policy.budget_ppm = 250000;
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    const uint32_t seq[1] = {1}, eight[1] = {8}, four[1] = {4};
    const uint8_t first[8] = {0, 0, 1, 1, 1, 1, 0, 0}, second[4] = {0, 0, 0, 0};
    const uint8_t *m1[1] = {first}, *m2[1] = {second};
    kvq_cuda_append_args a = append_args(seq, 1, eight);
    a.modality = m1;
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    expect_precision(0, "SPQQQQPQ");
    expect_precision(1, "SPQQQQPQ");
    ck_assert_uint_eq(fake.roles[0].pend_new, 8); /* both key blocks complete: everything final */
    ck_assert_uint_eq(fake.slot[0][0], 0);       /* the sink's and the policy tokens' rows, in order */
    ck_assert_uint_eq(fake.slot[0][1], 1);
    ck_assert_uint_eq(fake.slot[0][6], 2);
    ck_assert_uint_eq(fake.slot[0][2], LAYER_NO_SLOT);
    a.n_new = four;
    a.modality = m2;
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    expect_precision(0, "PQQQ"); /* B = 3, one left (S15.5) */
    ck_assert_uint_eq(fake.roles[0].start, 8);
    ck_assert_uint_eq(fake.slot[0][0], 3);
    ck_assert_uint_eq(fake.roles[0].pend_new, 12);
    kvq_cuda_layer_destroy(layer);
}
END_TEST

START_TEST(window_tokens_stay_pending_until_they_leave)
{
    /* S10.6: values, quantize-all, recent_window 3, 10 tokens: tokens 7, 8, 9 are WINDOW */
    setup s;
    make_setup(&s, 32, 2, 2);
    s.keys.group_size = 4;
    s.keys.policy = s.values.policy = (kvq_token_policy){KVQ_POLICY_QUANTIZE_ALL, 0, 0, 3};
    kvq_cuda_layer *layer = fake_layer(&s.layer);
    const uint32_t seq[1] = {0}, ten[1] = {10};
    kvq_cuda_append_args a = append_args(seq, 1, ten);
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    expect_precision(1, "QQQQQQQWWW");
    ck_assert_uint_eq(fake.roles[1].pend_new, 7);
    ck_assert_uint_eq(fake.slot[1][7], LAYER_TEMP_SLOT | 0u);
    ck_assert_uint_eq(fake.slot[1][9], LAYER_TEMP_SLOT | 2u);
    /* keys in blocks of 4: [8, 12) is incomplete and [4, 8) holds a window token: residual (S4.3) */
    expect_precision(0, "QQQQRRRWWW");
    ck_assert_uint_eq(fake.roles[0].pend_new, 4);
    /* one more token: token 7 leaves the window, the key block [4, 8) completes without one */
    a.n_new = NULL;
    EXPECT_OK(kvq_cuda_layer_append(layer, &a, NULL));
    ck_assert_uint_eq(fake.roles[1].pend_old, 7);
    ck_assert_uint_eq(fake.roles[1].pend_new, 8);
    expect_precision(1, "QWWW");
    ck_assert_uint_eq(fake.roles[0].start, 4);
    expect_precision(0, "QQQQWWW");
    ck_assert_uint_eq(fake.roles[0].pend_new, 8);
    kvq_cuda_layer_destroy(layer);
}
END_TEST

static Suite *cuda_layer_suite(void)
{
    Suite *s = suite_create("cuda_layer");
    TCase *sizes = tcase_create("sizes");
    tcase_add_test(sizes, sizes_follow_the_spec_layouts);
    tcase_add_test(sizes, every_bad_configuration_is_named);
    tcase_add_test(sizes, calibrated_keys_need_their_ranges);
    suite_add_tcase(s, sizes);
    TCase *calls = tcase_create("calls");
    tcase_add_test(calls, create_checks_its_memory);
    tcase_add_test(calls, every_bad_append_is_named_and_changes_nothing);
    tcase_add_test(calls, every_bad_attend_is_named);
    tcase_add_test(calls, every_bad_small_call_is_named);
    tcase_add_test(calls, move_checks_then_changes_only_where_the_layer_is);
    tcase_add_test(calls, layers_share_a_work_space_they_are_given);
    suite_add_tcase(s, calls);
    TCase *plans = tcase_create("plans");
    tcase_add_test(plans, appends_follow_s15_5);
    tcase_add_test(plans, window_tokens_stay_pending_until_they_leave);
    suite_add_tcase(s, plans);
    return s;
}

KVQ_CHECK_MAIN(cuda_layer_suite)
