/*
 * fuzz_manifest.c - a golden manifest (S16.7) from any bytes, run by the
 * conformance runner against the reference backend over the real golden
 * files: `kvq conform --golden DIR` reads whatever DIR holds, so every size
 * from the manifest must be checked before use (issue 17, finding 2).
 *
 * The scratch directory holds links to every file of the golden set and the
 * input as manifest.json. The unmodified golden manifest must pass entirely.
 */
#define _POSIX_C_SOURCE 200809L /* symlink, opendir */
#include "fuzz.h"
#include "golden_cases.h"
#include "run.h"
#include "units.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KVQ_FUZZ_GOLDEN_DIR
#error "KVQ_FUZZ_GOLDEN_DIR names the golden set"
#endif

static conform_run run;
static uint8_t *golden_manifest;
static size_t golden_manifest_size;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    DIR *d = opendir(KVQ_FUZZ_GOLDEN_DIR);
    fuzz_require(d != NULL, "cannot open %s", KVQ_FUZZ_GOLDEN_DIR);
    struct dirent *e;
    char from[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "manifest.json") == 0) continue;
        snprintf(from, sizeof from, "%s/%s", KVQ_FUZZ_GOLDEN_DIR, e->d_name);
        fuzz_require(symlink(from, fuzz_path(0, e->d_name)) == 0, "cannot link %s", from);
    }
    closedir(d);
    snprintf(from, sizeof from, "%s/manifest.json", KVQ_FUZZ_GOLDEN_DIR);
    golden_manifest = fuzz_read_file(from, &golden_manifest_size);
    fuzz_require(golden_manifest != NULL, "cannot read %s", from);
    char message[512] = "";
    fuzz_require(kvq_backend_find("ref", &run.api, message, sizeof message) == KVQ_OK, "%s", message);
    fuzz_require(kvq_backend_open(run.api, NULL, &run.ctx, message, sizeof message) == KVQ_OK, "%s", message);
    run.caps.struct_size = sizeof run.caps;
    fuzz_require(run.api->get_caps(run.ctx, &run.caps) == KVQ_OK, "ref get_caps");
    run.golden_dir = fuzz_scratch_dir();
    run.backend_arg = "ref";
    run.platform = run.device = -1;
    run.profile = KVQ_PROFILE_FP32;
    return 0;
}

/* What execute.c does for a golden unit, against the reference. */
static void run_unit(const conform_unit *u, conform_result *r)
{
    const char *dir = run.golden_dir;
    switch (u->kind) {
    case UNIT_PACK: {
        pack_model m;
        if (golden_pack_model(dir, u->golden, &m, &r->diag)) run_pack(&run, &m, r);
        else result_fail(r);
        pack_model_free(&m);
        break;
    }
    case UNIT_QUANTIZE: {
        quantize_model m;
        if (golden_quantize_model(dir, u->golden, u->part, &m, &r->diag)) run_quantize(&run, &m, r);
        else result_fail(r);
        quantize_model_free(&m);
        break;
    }
    case UNIT_ATTENTION: {
        attention_model m;
        if (golden_attention_model(dir, u->golden, run.profile, &m, &r->diag)) run_attention(&run, &m, r);
        else result_fail(r);
        attention_model_free(&m);
        break;
    }
    case UNIT_CACHE: {
        cache_model m;
        if (golden_cache_model(dir, u->golden, run.profile, &m, &r->diag)) run_cache(&run, &m, r);
        else result_fail(r);
        cache_model_free(&m);
        break;
    }
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(fuzz_path(1, "manifest.json"), data, size);
    manifest m;
    char error[1024];
    if (!manifest_load(run.golden_dir, &m, error, sizeof error)) {
        fuzz_require(error[0] != '\0', "a refused manifest without a reason");
        return 0;
    }
    unit_list units = {0};
    fuzz_require(units_golden(&m, &run, &units), "out of memory listing units");
    bool unmodified = size == golden_manifest_size && memcmp(data, golden_manifest, size) == 0;
    for (size_t i = 0; i < units.count; i++) {
        conform_result r;
        result_init(&r, units.items[i].name, units.items[i].level);
        run_unit(&units.items[i], &r);
        /* the reference passes its own golden set */
        fuzz_require(!unmodified || r.outcome != CONFORM_FAIL, "golden case %s fails against ref: %s: %s", r.name,
                     r.diag.field, r.diag.detail);
    }
    units_free(&units);
    for (size_t i = 0; i < run.n_reference_only; i++) free(run.reference_only[i]);
    run.n_reference_only = 0;
    manifest_free(&m);
    return 0;
}
