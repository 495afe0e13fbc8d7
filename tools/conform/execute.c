/*
 * execute.c - dispatching a unit to its model builder and runner.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "execute.h"

#include "check_outputs.h"
#include "golden_cases.h"
#include "peer_models.h"
#include "random_cases.h"
#include "run.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The generator could not build the case: a runner bug, reported as a failure. */
static void generator_failed(conform_result *r, const char *error)
{
    diag_at(&r->diag, "random case", -1, "generator");
    diag_explain(&r->diag, "%s (a bug of the runner, not of the backend).", error);
    result_fail(r);
}

static void golden_unit(conform_run *run, const conform_unit *u, conform_result *r)
{
    const char *dir = run->golden_dir;
    switch (u->kind) {
    case UNIT_PACK: {
        pack_model m;
        if (golden_pack_model(dir, u->golden, &m, &r->diag))
            run_pack(run, &m, r);
        else
            result_fail(r);
        pack_model_free(&m);
        break;
    }
    case UNIT_QUANTIZE: {
        quantize_model m;
        if (golden_quantize_model(dir, u->golden, u->part, &m, &r->diag))
            run_quantize(run, &m, r);
        else
            result_fail(r);
        quantize_model_free(&m);
        break;
    }
    case UNIT_ATTENTION: {
        attention_model m;
        if (golden_attention_model(dir, u->golden, run->profile, &m, &r->diag))
            run_attention(run, &m, r);
        else
            result_fail(r);
        attention_model_free(&m);
        break;
    }
    case UNIT_CACHE: {
        cache_model m;
        if (golden_cache_model(dir, u->golden, run->profile, &m, &r->diag))
            run_cache(run, &m, r);
        else
            result_fail(r);
        cache_model_free(&m);
        break;
    }
    case UNIT_PEER_QUANTIZE: {
        peer_quantize_model m;
        if (golden_peer_quantize_model(dir, u->golden, &m, &r->diag))
            run_peer_quantize(run, &m, r);
        else
            result_fail(r);
        peer_quantize_model_free(&m);
        break;
    }
    case UNIT_PEER_ATTENTION: {
        peer_attention_model m;
        if (golden_peer_attention_model(dir, u->golden, run->profile, &m, &r->diag))
            run_peer_attention(run, &m, r);
        else
            result_fail(r);
        peer_attention_model_free(&m);
        break;
    }
    default: break;
    }
}

static void random_unit(conform_run *run, const conform_unit *u, conform_result *r)
{
    char error[512] = "";
    bool batch = u->kind == UNIT_ATTENTION_BATCH;
    uint64_t seed = random_case_seed(run->seed, u->level, u->index, batch);
    switch (u->kind) {
    case UNIT_PACK: {
        pack_model m;
        if (random_pack(seed, &m, error, sizeof error))
            run_pack(run, &m, r);
        else
            generator_failed(r, error);
        pack_model_free(&m);
        break;
    }
    case UNIT_QUANTIZE: {
        quantize_model m;
        if (random_quantize(seed, u->level, &m, error, sizeof error))
            run_quantize(run, &m, r);
        else
            generator_failed(r, error);
        quantize_model_free(&m);
        break;
    }
    case UNIT_ATTENTION: {
        attention_model m;
        if (random_attention(seed, run->max_context, u->index == 0, run->profile, &m, error, sizeof error))
            run_attention(run, &m, r);
        else
            generator_failed(r, error);
        attention_model_free(&m);
        break;
    }
    case UNIT_ATTENTION_BATCH: {
        attention_model *models = NULL;
        uint32_t n = 0;
        if (random_attention_batch(seed, run->max_context, run->profile, &models, &n, error, sizeof error)) {
            const attention_model **list = calloc(n, sizeof *list);
            for (uint32_t s = 0; list != NULL && s < n; s++) list[s] = &models[s];
            if (list != NULL)
                run_attention_batch(run, list, n, r);
            else
                generator_failed(r, "out of memory");
            free(list);
        } else {
            generator_failed(r, error);
        }
        for (uint32_t s = 0; models != NULL && s < n; s++) attention_model_free(&models[s]);
        free(models);
        break;
    }
    case UNIT_CACHE: {
        cache_model m;
        if (random_cache(seed, run->profile, &m, error, sizeof error))
            run_cache(run, &m, r);
        else
            generator_failed(r, error);
        cache_model_free(&m);
        break;
    }
    case UNIT_PEER_QUANTIZE: {
        peer_quantize_model m;
        if (random_peer_quantize(random_peer_case_seed(run->seed, u->level, u->index, u->format),
                                 (kvq_peer_format)u->format, &m, error, sizeof error))
            run_peer_quantize(run, &m, r);
        else
            generator_failed(r, error);
        peer_quantize_model_free(&m);
        break;
    }
    case UNIT_PEER_ATTENTION: {
        peer_attention_model m;
        if (random_peer_attention(random_peer_case_seed(run->seed, u->level, u->index, u->format),
                                  (kvq_peer_format)u->format, run->max_context, u->index == 0, run->profile, &m,
                                  error, sizeof error))
            run_peer_attention(run, &m, r);
        else
            generator_failed(r, error);
        peer_attention_model_free(&m);
        break;
    }
    default: break;
    }
}

void execute_unit(conform_run *run, const conform_unit *u, conform_result *r)
{
    result_init(r, u->name, u->level);
    double start = now_seconds();
    if (run->outputs_dir != NULL)
        check_outputs_unit(run, u, r);
    else if (u->source == SOURCE_GOLDEN)
        golden_unit(run, u, r);
    else if (u->source == SOURCE_RANDOM)
        random_unit(run, u, r);
    else if (u->kind == UNIT_PEER_ERROR)
        run_peer_error(run, (kvq_peer_format)u->format, u->part, r);
    else
        run_abi_error(run, u->part, r);
    r->seconds = now_seconds() - start;
    run_replay_command(run, u->name, u->source == SOURCE_RANDOM, r->replay, sizeof r->replay);
}
