/*
 * cmd_conform.c - `kvq conform`: judge a backend (built in, or a plugin .so)
 * or a directory of output files against the golden set (S16.7) and against
 * libkvq on random cases, level by level, with the tolerance classes of S12.
 *
 * This file only reads the options, opens what is judged and drives the run;
 * tools/conform/ holds the parts (units.c lists the cases, execute.c runs
 * one, report_*.c report). Exit status: 0 every selected case passed (skips
 * allowed), 1 a case failed, 2 usage error, or the backend, golden set or a
 * report file could not be opened.
 */
#define _GNU_SOURCE /* getopt_long, fnmatch */
#include "cli_common.h"
#include "conform/commands.h"
#include "conform/execute.h"
#include "conform/progress.h"
#include "conform/report.h"
#include "conform/units.h"
#include "installed_paths.h"

#include <fnmatch.h>
#include <stddef.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "conform"

#ifndef KVQ_SOURCE_GOLDEN_DIR
#define KVQ_SOURCE_GOLDEN_DIR "conformance/golden"
#endif

enum { DEFAULT_RANDOM = 8, DEFAULT_MAX_CONTEXT = 600, MAX_CONTEXT_LIMIT = 16777216 };

void cli_usage_conform(FILE *out)
{
    fprintf(out,
            "usage: kvq conform --backend ref|opencl|cuda|PATH.so [--platform N] [--device N] [--level L]\n"
            "                   [--case PATTERN] [--seed S] [--random N] [--max-context N] [--profile P]\n"
            "                   [--json FILE] [--junit FILE] [--golden DIR] [--quiet]\n"
            "       kvq conform --check-outputs DIR [--golden DIR] [--level L] [--case PATTERN] [--profile P]\n"
            "                   [--json FILE] [--junit FILE] [--quiet]\n"
            "  Judges a backend against the golden set and random cases, level by level (S12 tolerance classes):\n"
            "    L0 packing, L1 uniform, L2 NUQ, L3 outliers/sinks/policy, L4 decode attention, L5 cache.\n"
            "  --backend B        a built-in backend (see `kvq devices`) or the path of a plugin .so\n"
            "  --platform N, --device N   which device the backend opens (default: the backend's choice)\n"
            "  --level L          L0..L (e.g. 3 or L3); A-B (e.g. 3-3, L1-L4) runs only levels A to B\n"
            "  --case PATTERN     only cases whose name matches the shell pattern (e.g. 'keys_*')\n"
            "  --seed S           seed of the random cases (default: from the clock, printed in the header)\n"
            "  --random N         random cases per level (default %d; 0: golden cases only)\n"
            "  --max-context N    largest random attention context in tokens (default %d; e.g. 131072 on GPUs)\n"
            "  --profile P        judge attention at precision profile fp32, fp16 or bf16 (S12.4; the backend is\n"
            "                     opened asking for it); default: the profile the backend declares, fp32 for files\n"
            "  --json FILE, --junit FILE   also write the results as JSON / JUnit XML\n"
            "  --golden DIR       the golden set (default conformance/golden, else the installed set,\n"
            "                     else the source tree's)\n"
            "  --check-outputs DIR  judge output files named like the golden output files (docs/CLI.md)\n"
            "  --quiet            no progress line and no line per failure (the summary is still printed)\n"
            "  exit status: 0 all selected cases passed or were skipped, 1 a case failed, 2 usage error or\n"
            "  the backend / golden set / a report file could not be opened\n",
            DEFAULT_RANDOM, DEFAULT_MAX_CONTEXT);
}

enum {
    OPT_BACKEND = 1,
    OPT_PLATFORM,
    OPT_DEVICE,
    OPT_LEVEL,
    OPT_CASE,
    OPT_SEED,
    OPT_RANDOM,
    OPT_MAX_CONTEXT,
    OPT_JSON,
    OPT_JUNIT,
    OPT_GOLDEN,
    OPT_CHECK_OUTPUTS,
    OPT_QUIET,
    OPT_PROFILE,
    OPT_HELP
};

typedef struct conform_options {
    const char *backend, *outputs_dir, *golden, *case_pattern, *json, *junit;
    int level_low, level_high;
    uint64_t seed;
    bool seed_given, random_given;
    uint32_t n_random, max_context, platform, device;
    bool max_context_given, platform_given, device_given, quiet;
    kvq_attention_profile profile;
    bool profile_given;
} conform_options;

/* Returns CLI_OK to go on, -1 after --help, or CLI_USAGE. */
static int parse_options(int argc, char **argv, conform_options *o)
{
    static const struct option options[] = {
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"platform", required_argument, NULL, OPT_PLATFORM},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"level", required_argument, NULL, OPT_LEVEL},
        {"case", required_argument, NULL, OPT_CASE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"random", required_argument, NULL, OPT_RANDOM},
        {"max-context", required_argument, NULL, OPT_MAX_CONTEXT},
        {"json", required_argument, NULL, OPT_JSON},
        {"junit", required_argument, NULL, OPT_JUNIT},
        {"golden", required_argument, NULL, OPT_GOLDEN},
        {"check-outputs", required_argument, NULL, OPT_CHECK_OUTPUTS},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->level_high = CONFORM_LEVELS - 1;
    o->n_random = DEFAULT_RANDOM;
    o->max_context = DEFAULT_MAX_CONTEXT;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_conform(stdout); return -1;
        case OPT_BACKEND: o->backend = optarg; break;
        case OPT_CHECK_OUTPUTS: o->outputs_dir = optarg; break;
        case OPT_GOLDEN: o->golden = optarg; break;
        case OPT_CASE: o->case_pattern = optarg; break;
        case OPT_JSON: o->json = optarg; break;
        case OPT_JUNIT: o->junit = optarg; break;
        case OPT_QUIET: o->quiet = true; break;
        case OPT_PROFILE:
            if (kvq_attention_profile_from_name(optarg, &o->profile) != KVQ_OK)
                return cli_usage_error(CMD, "--profile '%s' is not fp32, fp16 or bf16 (S12.4)", optarg);
            o->profile_given = true;
            break;
        case OPT_PLATFORM:
            if (!cli_parse_u32(CMD, "--platform", optarg, 0, INT32_MAX, &o->platform)) return CLI_USAGE;
            o->platform_given = true;
            break;
        case OPT_DEVICE:
            if (!cli_parse_u32(CMD, "--device", optarg, 0, INT32_MAX, &o->device)) return CLI_USAGE;
            o->device_given = true;
            break;
        case OPT_LEVEL:
            if (!parse_levels(optarg, &o->level_low, &o->level_high))
                return cli_usage_error(CMD, "--level '%s' is not a level 0-5 (e.g. 3, L3) or a range (e.g. 3-3, L1-L4)",
                                       optarg);
            break;
        case OPT_SEED:
            if (!cli_parse_u64(CMD, "--seed", optarg, &o->seed)) return CLI_USAGE;
            o->seed_given = true;
            break;
        case OPT_RANDOM:
            if (!cli_parse_u32(CMD, "--random", optarg, 0, 100000, &o->n_random)) return CLI_USAGE;
            o->random_given = true;
            break;
        case OPT_MAX_CONTEXT:
            if (!cli_parse_u32(CMD, "--max-context", optarg, 1, MAX_CONTEXT_LIMIT, &o->max_context)) return CLI_USAGE;
            o->max_context_given = true;
            break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (o->backend == NULL && o->outputs_dir == NULL)
        return cli_usage_error(CMD, "missing --backend NAME|PATH.so (or --check-outputs DIR)");
    if (o->backend != NULL && o->outputs_dir != NULL)
        return cli_usage_error(CMD, "--backend and --check-outputs exclude each other");
    if (o->outputs_dir != NULL && (o->seed_given || o->random_given || o->max_context_given || o->platform_given ||
                                   o->device_given))
        return cli_usage_error(CMD, "--seed, --random, --max-context, --platform and --device apply to --backend runs");
    return CLI_OK;
}

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A seed nobody chose: the clock and the process id, mixed by S14's generator. */
static uint64_t clock_seed(void)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)clock());
    return kvq_rng_next_u64(&rng) % 1000000000u; /* short enough to type in a replay */
}

/* Opens the backend; prints the reason and returns false when it cannot. */
static bool open_backend(conform_run *run, const conform_options *o)
{
    char message[1024] = "";
    kvq_status st = kvq_backend_find(o->backend, &run->api, message, sizeof message);
    if (st != KVQ_OK) {
        /* the registry's message names the reason; some already start with this prefix */
        const char *prefix = "cannot load backend ";
        if (strncmp(message, prefix, strlen(prefix)) == 0)
            fprintf(stderr, "kvq conform: error: %s (%s)\n", message, kvq_status_name(st));
        else
            fprintf(stderr, "kvq conform: error: cannot load backend %s: %s (%s)\n", o->backend, message,
                    kvq_status_name(st));
        return false;
    }
    kvq_backend_options options = {sizeof(kvq_backend_options), run->platform, run->device,
                                   run->profile_given ? (int32_t)run->profile : -1};
    run->ctx = NULL;
    st = kvq_backend_open(run->api, &options, &run->ctx, message, sizeof message);
    if (st != KVQ_OK) {
        fprintf(stderr, "kvq conform: error: cannot open backend %s: %s (%s)\n", o->backend, message,
                kvq_status_name(st));
        return false;
    }
    memset(&run->caps, 0, sizeof run->caps);
    run->caps.struct_size = sizeof run->caps;
    st = run->api->get_caps(run->ctx, &run->caps);
    if (st != KVQ_OK) {
        fprintf(stderr, "kvq conform: error: backend %s: get_caps failed: %s (%s)\n", o->backend,
                run->api->last_error(run->ctx), kvq_status_name(st));
        return false;
    }
    /* S12.4: a backend whose caps end before the profile fields is judged at fp32. */
    bool declares = run->caps.struct_size >= offsetof(kvq_backend_caps, attention_profile) +
                                                 sizeof run->caps.attention_profile;
    kvq_attention_profile declared = declares ? (kvq_attention_profile)run->caps.attention_profile : KVQ_PROFILE_FP32;
    if (declared >= KVQ_PROFILE_COUNT) {
        fprintf(stderr, "kvq conform: error: backend %s: caps.attention_profile = %u is not a profile (S12.4)\n",
                o->backend, (unsigned)declared);
        return false;
    }
    if (run->profile_given && declared != run->profile) {
        fprintf(stderr, "kvq conform: error: backend %s was asked for profile %s and declares %s\n", o->backend,
                kvq_attention_profile_name(run->profile), kvq_attention_profile_name(declared));
        return false;
    }
    run->profile = declared;
    return true;
}

/* Which units the options select; an exact random case name is added even
 * when --random would not list it, so that its replay always works. */
static bool select_units(const conform_options *o, const unit_list *all, unit_list *selected, conform_run *run)
{
    for (size_t i = 0; i < all->count; i++) {
        const conform_unit *u = &all->items[i];
        if (u->level < o->level_low || u->level > o->level_high) continue;
        if (o->case_pattern != NULL && fnmatch(o->case_pattern, u->name, 0) != 0) continue;
        if (!units_add(selected, u)) return false;
    }
    conform_unit named;
    uint64_t seed;
    if (selected->count == 0 && o->outputs_dir == NULL && o->case_pattern != NULL &&
        unit_parse_random_name(o->case_pattern, &seed, &named)) {
        if (o->seed_given && seed != o->seed) {
            cli_usage_error(CMD, "--case %s was made with seed %llu, not --seed %llu", o->case_pattern,
                            (unsigned long long)seed, (unsigned long long)o->seed);
            return false;
        }
        run->seed = seed;
        if (named.level >= o->level_low && named.level <= o->level_high &&
            (named.kind != UNIT_ATTENTION_BATCH || run->api->attention_decode_batch != NULL))
            return units_add(selected, &named);
    }
    return true;
}

static int run_units(conform_run *run, const unit_list *units, const conform_options *o, const char *device,
                     const manifest *m)
{
    report_header(stdout, run, device, m->spec_version, m->n_cases);
    fflush(stdout);
    progress p;
    progress_start(&p, units->count, o->quiet);
    size_t failed = 0;
    for (size_t i = 0; i < units->count; i++) {
        progress_case(&p, units->items[i].name, units->items[i].level, failed);
        conform_result r;
        execute_unit(run, &units->items[i], &r);
        if (r.outcome == CONFORM_FAIL) {
            failed++;
            if (!o->quiet) {
                progress_end(&p);
                report_failure_line(stdout, &r);
                fflush(stdout);
            }
        }
        if (!run_add_result(run, &r)) {
            progress_end(&p);
            fprintf(stderr, "kvq conform: error: out of memory\n");
            return CLI_USAGE;
        }
    }
    progress_end(&p);
    report_summary(stdout, run, o->level_low, o->level_high);
    int status = failed > 0 ? CLI_FAILED : CLI_OK;
    if (o->json != NULL && !report_json(o->json, run, device, o->level_low, o->level_high)) {
        fprintf(stderr, "kvq conform: error: cannot write the JSON report %s\n", o->json);
        status = CLI_USAGE;
    }
    if (o->junit != NULL && !report_junit(o->junit, run, o->level_low, o->level_high)) {
        fprintf(stderr, "kvq conform: error: cannot write the JUnit report %s\n", o->junit);
        status = CLI_USAGE;
    }
    return status;
}

int cmd_conform(int argc, char **argv)
{
    conform_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != CLI_OK) return parsed < 0 ? CLI_OK : parsed;

    conform_run run;
    memset(&run, 0, sizeof run);
    run.backend_arg = o.backend;
    run.outputs_dir = o.outputs_dir;
    run.platform = o.platform_given ? (int32_t)o.platform : -1;
    run.device = o.device_given ? (int32_t)o.device : -1;
    run.golden_dir_given = o.golden != NULL;
    /* Without --golden: the current directory's, else the installed one beside this executable,
     * else this build's source tree's. */
    static char installed[4096];
    run.golden_dir = o.golden != NULL                       ? o.golden
                     : is_directory("conformance/golden")   ? "conformance/golden"
                     : installed_golden_dir(installed, sizeof installed) ? installed
                                                            : KVQ_SOURCE_GOLDEN_DIR;
    run.seed = o.seed_given ? o.seed : clock_seed();
    run.n_random = o.outputs_dir != NULL ? 0 : o.n_random;
    run.max_context = o.max_context;
    run.max_context_given = o.max_context_given;
    run.profile = o.profile_given ? o.profile : KVQ_PROFILE_FP32;
    run.profile_given = o.profile_given;

    if (o.outputs_dir != NULL && !is_directory(o.outputs_dir))
        return cli_usage_error(CMD, "--check-outputs %s is not a directory", o.outputs_dir);
    manifest m;
    char error[1024];
    if (!manifest_load(run.golden_dir, &m, error, sizeof error)) {
        fprintf(stderr, "kvq conform: error: cannot read the golden set: %s\n", error);
        return CLI_USAGE;
    }
    if (strcmp(m.spec_version, KVQ_SPEC_VERSION_STRING) != 0) {
        fprintf(stderr, "kvq conform: error: the golden set %s is for spec %s, this build implements %s\n",
                run.golden_dir, m.spec_version, KVQ_SPEC_VERSION_STRING);
        manifest_free(&m);
        return CLI_USAGE;
    }
    int status = CLI_USAGE;
    unit_list all = {0}, selected = {0};
    const char *device = NULL;
    if (o.backend != NULL && !open_backend(&run, &o)) goto done;
    if (run.ctx != NULL) device = run.api->device_name(run.ctx);
    bool listed = units_golden(&m, &run, &all) && (o.outputs_dir != NULL || units_errors(&all)) &&
                  units_random(run.seed, run.n_random, run.api != NULL && run.api->attention_decode_batch != NULL,
                               &all);
    if (!listed) {
        fprintf(stderr, "kvq conform: error: out of memory\n");
        goto done;
    }
    if (!select_units(&o, &all, &selected, &run)) goto done;
    if (selected.count == 0) {
        cli_usage_error(CMD, "no case matches --case '%s' at levels %d-%d", o.case_pattern ? o.case_pattern : "*",
                        o.level_low, o.level_high);
        goto done;
    }
    status = run_units(&run, &selected, &o, device, &m);
done:
    if (run.ctx != NULL) run.api->close(run.ctx);
    units_free(&all);
    units_free(&selected);
    run_free_results(&run);
    manifest_free(&m);
    return status;
}
