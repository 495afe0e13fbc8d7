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
#include "conform/isolate.h"
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

enum { DEFAULT_RANDOM = 8, DEFAULT_MAX_CONTEXT = 600, MAX_CONTEXT_LIMIT = 16777216, DEFAULT_TIMEOUT = 300,
       MAX_PATTERNS = 64 };

void cli_usage_conform(FILE *out)
{
    fprintf(out,
            "usage: kvq conform --backend ref|opencl|cuda|PATH.so [--platform N] [--device N] [--level L]\n"
            "                   [--format F] [--case PATTERN[,PATTERN...]]... [--seed S] [--random N] [--max-context N]\n"
            "                   [--profile P]\n"
            "                   [--require-level L] [--fail-on-skip] [--isolation auto|case|worker|none] [--timeout S]\n"
            "                   [--json FILE] [--junit FILE] [--golden DIR] [--quiet]\n"
            "       kvq conform --check-outputs DIR [--only-present] [--format F] [--golden DIR] [--level L] [--case PATTERN]...\n"
            "                   [--profile P] [--require-level L] [--fail-on-skip] [--json FILE] [--junit FILE] [--quiet]\n"
            "  Judges a backend against the golden set and random cases, level by level (S12 tolerance classes):\n"
            "    L0 packing, L1 uniform, L2 NUQ, L3 outliers/sinks/policy, L4 decode attention, L5 cache.\n"
            "  --backend B        a built-in backend (see `kvq devices`) or the path of a plugin .so\n"
            "  --platform N, --device N   which device the backend opens (default: the backend's choice)\n"
            "  --level L          L0..L (e.g. 3 or L3); A-B (e.g. 3-3, L1-L4) runs only levels A to B\n"
            "  --case PATTERN     only cases whose name matches the shell pattern (e.g. 'keys_*'); repeat it or give\n"
            "                     several separated by commas: a case matching any of them runs\n"
            "  --seed S           seed of the random cases (default: from the clock, printed in the header)\n"
            "  --random N         random cases per level (default %d; 0: golden cases only)\n"
            "  --max-context N    largest random attention context in tokens (default %d; e.g. 131072 on GPUs)\n"
            "  --format F         the formats judged: kvq (its own, the default), q8_0, q4_0 (ggml), kivi, fp8_e4m3\n"
            "                     (vLLM, FlashInfer) (S17), all, or several comma-separated\n"
            "  --profile P        judge attention at precision profile fp32, fp16 or bf16 (S12.4; the backend is\n"
            "                     opened asking for it); default: the profile the backend declares, fp32 for files\n"
            "  --json FILE, --junit FILE   also write the results as JSON / JUnit XML\n"
            "  --golden DIR       the golden set (default conformance/golden, else the installed set,\n"
            "                     else the source tree's)\n"
            "  --check-outputs DIR  judge output files named like the golden output files (docs/CLI.md)\n"
            "  --only-present     with --check-outputs: a case none of whose output files is in DIR is skipped\n"
            "                     (listed as not handed in) instead of failed\n"
            "  --require-level L  fail unless every selected case of levels L0..L passed (none failed, errored\n"
            "                     or skipped); levels without a selected case do not count\n"
            "  --fail-on-skip     fail when any case is skipped\n"
            "  --isolation M      where cases run: case (a child process per case), worker (one process that is\n"
            "                     replaced after a crash or hang: device backends), auto (default: case for\n"
            "                     host-memory backends and files, worker otherwise), none (this process)\n"
            "  --timeout S        seconds a case may take before it is killed and reported (default %d; 0: none)\n"
            "  --quiet            no progress line and no line per failure (the summary is still printed)\n"
            "  The JSON and JUnit reports are rewritten after every case: an interrupted run leaves valid reports\n"
            "  of the cases that ran. A crash or hang of a case is that case's error; the run goes on.\n"
            "  exit status: 0 all selected cases passed or were skipped (and --require-level / --fail-on-skip hold),\n"
            "  1 a case failed or errored, or a requirement does not hold, 2 usage error or the backend / golden set /\n"
            "  a report file could not be opened, 130 interrupted (SIGINT, SIGTERM)\n",
            DEFAULT_RANDOM, DEFAULT_MAX_CONTEXT, DEFAULT_TIMEOUT);
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
    OPT_ONLY_PRESENT,
    OPT_REQUIRE_LEVEL,
    OPT_FAIL_ON_SKIP,
    OPT_ISOLATION,
    OPT_TIMEOUT,
    OPT_FORMAT,
    OPT_HELP
};

typedef struct conform_options {
    const char *backend, *outputs_dir, *golden, *json, *junit;
    char *patterns[MAX_PATTERNS]; /* --case, split at commas */
    size_t n_patterns;
    bool only_present, fail_on_skip;
    int required_level; /* -1: none */
    conform_isolation isolation;
    uint32_t timeout;
    uint32_t formats; /* FORMAT_* bits */
    int level_low, level_high;
    uint64_t seed;
    bool seed_given, random_given;
    uint32_t n_random, max_context, platform, device;
    bool max_context_given, platform_given, device_given, quiet;
    kvq_attention_profile profile;
    bool profile_given;
} conform_options;

static bool add_patterns(conform_options *o, const char *text);

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
        {"only-present", no_argument, NULL, OPT_ONLY_PRESENT},
        {"require-level", required_argument, NULL, OPT_REQUIRE_LEVEL},
        {"fail-on-skip", no_argument, NULL, OPT_FAIL_ON_SKIP},
        {"isolation", required_argument, NULL, OPT_ISOLATION},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->level_high = CONFORM_LEVELS - 1;
    o->n_random = DEFAULT_RANDOM;
    o->max_context = DEFAULT_MAX_CONTEXT;
    o->required_level = -1;
    o->isolation = ISOLATION_AUTO;
    o->timeout = DEFAULT_TIMEOUT;
    o->formats = FORMAT_KVQ;
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
        case OPT_CASE:
            if (!add_patterns(o, optarg)) return CLI_USAGE;
            break;
        case OPT_ONLY_PRESENT: o->only_present = true; break;
        case OPT_FAIL_ON_SKIP: o->fail_on_skip = true; break;
        case OPT_REQUIRE_LEVEL: {
            int low = 0;
            if (!parse_levels(optarg, &low, &o->required_level) || low != 0)
                return cli_usage_error(CMD, "--require-level '%s' is not a level 0-5 (e.g. 3 or L3)", optarg);
            break;
        }
        case OPT_ISOLATION:
            if (!conform_isolation_from_name(optarg, &o->isolation))
                return cli_usage_error(CMD, "--isolation '%s' is not auto, case, worker or none", optarg);
            break;
        case OPT_TIMEOUT:
            if (!cli_parse_u32(CMD, "--timeout", optarg, 0, 86400, &o->timeout)) return CLI_USAGE;
            break;
        case OPT_FORMAT:
            if (!parse_formats(optarg, &o->formats))
                return cli_usage_error(CMD, "--format '%s' is not kvq, q8_0, q4_0, kivi, fp8_e4m3 or all "
                                            "(comma-separated)",
                                       optarg);
            break;
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
    if (o->only_present && o->outputs_dir == NULL) return cli_usage_error(CMD, "--only-present needs --check-outputs");
    if (o->required_level >= 0 && (o->level_low > 0 || o->required_level > o->level_high))
        return cli_usage_error(CMD, "--require-level %d needs levels L0-L%d selected (--level %d-%d runs L%d-L%d)",
                               o->required_level, o->required_level, o->level_low, o->level_high, o->level_low,
                               o->level_high);
    return CLI_OK;
}

static void free_patterns(conform_options *o)
{
    for (size_t i = 0; i < o->n_patterns; i++) free(o->patterns[i]);
    o->n_patterns = 0;
}

/* --case A,B --case C: each comma-separated part is one pattern. */
static bool add_patterns(conform_options *o, const char *text)
{
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0) {
            cli_usage_error(CMD, "--case '%s' has an empty pattern", text);
            return false;
        }
        if (o->n_patterns == MAX_PATTERNS) {
            cli_usage_error(CMD, "more than %d --case patterns", MAX_PATTERNS);
            return false;
        }
        char *pattern = malloc(n + 1);
        if (pattern == NULL) {
            cli_usage_error(CMD, "out of memory");
            return false;
        }
        memcpy(pattern, p, n);
        pattern[n] = '\0';
        o->patterns[o->n_patterns++] = pattern;
        if (comma == NULL) return true;
        p = comma + 1;
    }
}

static bool matches_any(const conform_options *o, const char *name)
{
    if (o->n_patterns == 0) return true;
    for (size_t i = 0; i < o->n_patterns; i++)
        if (fnmatch(o->patterns[i], name, 0) == 0) return true;
    return false;
}

/* The patterns joined with commas, for messages. */
static void describe_patterns(const conform_options *o, char *out, size_t size)
{
    snprintf(out, size, "%s", o->n_patterns == 0 ? "*" : "");
    for (size_t i = 0; i < o->n_patterns; i++) {
        size_t used = strlen(out);
        if (used + 1 < size) snprintf(out + used, size - used, "%s%s", i > 0 ? "," : "", o->patterns[i]);
    }
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

/* Opens the backend; prints the reason and returns false when it cannot.
 * Runs in the worker process (isolate.h), or here with --isolation none. */
static bool open_backend(conform_run *run, const void *options)
{
    const conform_options *o = options;
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
    kvq_backend_options options_abi = {sizeof(kvq_backend_options), run->platform, run->device,
                                   run->profile_given ? (int32_t)run->profile : -1};
    run->ctx = NULL;
    st = kvq_backend_open(run->api, &options_abi, &run->ctx, message, sizeof message);
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
    conform_backend_info *b = &run->backend;
    const char *device = run->api->device_name(run->ctx);
    snprintf(b->name, sizeof b->name, "%s", run->api->name);
    snprintf(b->description, sizeof b->description, "%s", run->api->description != NULL ? run->api->description : "");
    snprintf(b->device, sizeof b->device, "%s", device != NULL ? device : "");
    b->has_batch = run->api->attention_decode_batch != NULL;
    return true;
}

/* Which units the options select; an exact random case name is added even
 * when --random would not list it, so that its replay always works. */
static bool select_units(const conform_options *o, const unit_list *all, unit_list *selected, conform_run *run)
{
    for (size_t i = 0; i < all->count; i++) {
        const conform_unit *u = &all->items[i];
        if (u->level < o->level_low || u->level > o->level_high) continue;
        if (!matches_any(o, u->name)) continue;
        if (!(o->formats & (u->format < 0 ? FORMAT_KVQ : 1u << u->format))) continue;
        if (!units_add(selected, u)) return false;
    }
    conform_unit named;
    uint64_t seed;
    for (size_t i = 0; o->outputs_dir == NULL && i < o->n_patterns; i++) {
        const char *pattern = o->patterns[i];
        bool listed = false;
        for (size_t k = 0; k < selected->count && !listed; k++) listed = strcmp(selected->items[k].name, pattern) == 0;
        if (listed || !unit_parse_random_name(pattern, &seed, &named)) continue;
        if (o->seed_given && seed != o->seed) {
            cli_usage_error(CMD, "--case %s was made with seed %llu, not --seed %llu", pattern,
                            (unsigned long long)seed, (unsigned long long)o->seed);
            return false;
        }
        if (seed != run->seed && (o->seed_given || i > 0 || selected->count > 0)) {
            cli_usage_error(CMD, "--case %s was made with seed %llu; replay cases of one seed at a time", pattern,
                            (unsigned long long)seed);
            return false;
        }
        run->seed = seed;
        if (named.level >= o->level_low && named.level <= o->level_high &&
            (o->formats & (named.format < 0 ? FORMAT_KVQ : 1u << named.format)) &&
            (named.kind != UNIT_ATTENTION_BATCH || run->backend.has_batch) && !units_add(selected, &named))
            return false;
    }
    return true;
}

/* The reports as they stand; false (with a message) when one cannot be written. */
static bool write_reports(const conform_run *run, const conform_options *o)
{
    bool ok = true;
    if (o->json != NULL && !report_json(o->json, run, o->level_low, o->level_high)) {
        fprintf(stderr, "kvq conform: error: cannot write the JSON report %s\n", o->json);
        ok = false;
    }
    if (o->junit != NULL && !report_junit(o->junit, run, o->level_low, o->level_high)) {
        fprintf(stderr, "kvq conform: error: cannot write the JUnit report %s\n", o->junit);
        ok = false;
    }
    return ok;
}

static int run_units(conform_run *run, conform_executor *executor, const unit_list *units, const conform_options *o,
                     const manifest *m)
{
    report_header(stdout, run, m->spec_version, m->n_cases);
    if (executor->mode != ISOLATION_NONE)
        printf("  isolation: %s (%s), timeout %u s per case\n", conform_isolation_name(executor->mode),
               executor->mode == ISOLATION_CASE ? "each case in a child process of the worker that opened the backend"
                                                : "one worker process, replaced after a crash or hang",
               o->timeout);
    fflush(stdout);
    run->n_selected = units->count;
    /* reports exist from the start: a run killed in its first case leaves them, empty */
    if (!write_reports(run, o)) return CLI_USAGE;
    progress p;
    progress_start(&p, units->count, o->quiet);
    size_t failed = 0;
    for (size_t i = 0; i < units->count; i++) {
        progress_case(&p, units->items[i].name, units->items[i].level, failed);
        conform_result r;
        if (!executor_run(executor, &units->items[i], &r)) {
            run->interrupted = true;
            break;
        }
        if (r.outcome == CONFORM_ERROR) {
            /* even with --quiet: a case that did not finish is never silent */
            progress_end(&p);
            fprintf(stderr, "kvq conform: case L%d %s did not finish: %s (%s); the run goes on\n", r.level, r.name,
                    r.diag.got, r.diag.field);
        }
        if (r.outcome == CONFORM_FAIL || r.outcome == CONFORM_ERROR) {
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
        if (!write_reports(run, o)) return CLI_USAGE;
    }
    progress_end(&p);
    run->finished = !run->interrupted;
    report_summary(stdout, run, o->level_low, o->level_high);
    char why[512];
    int status = failed > 0 || !requirements_met(run, o->level_low, o->level_high, why, sizeof why) ? CLI_FAILED
                                                                                                       : CLI_OK;
    if (run->interrupted) status = 130;
    if (!write_reports(run, o)) status = CLI_USAGE;
    return status;
}

int cmd_conform(int argc, char **argv)
{
    conform_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != CLI_OK) {
        free_patterns(&o);
        return parsed < 0 ? CLI_OK : parsed;
    }

    conform_run run;
    memset(&run, 0, sizeof run);
    run.backend_arg = o.backend;
    run.outputs_dir = o.outputs_dir;
    run.only_present = o.only_present;
    run.formats = o.formats;
    run.required_level = o.required_level;
    run.fail_on_skip = o.fail_on_skip;
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

    if (o.outputs_dir != NULL && !is_directory(o.outputs_dir)) {
        free_patterns(&o);
        return cli_usage_error(CMD, "--check-outputs %s is not a directory", o.outputs_dir);
    }
    manifest m;
    char error[1024];
    if (!manifest_load(run.golden_dir, &m, error, sizeof error)) {
        fprintf(stderr, "kvq conform: error: cannot read the golden set: %s\n", error);
        free_patterns(&o);
        return CLI_USAGE;
    }
    if (strcmp(m.spec_version, KVQ_SPEC_VERSION_STRING) != 0) {
        fprintf(stderr, "kvq conform: error: the golden set %s is for spec %s, this build implements %s\n",
                run.golden_dir, m.spec_version, KVQ_SPEC_VERSION_STRING);
        manifest_free(&m);
        free_patterns(&o);
        return CLI_USAGE;
    }
    int status = CLI_USAGE;
    unit_list all = {0}, selected = {0};
    conform_executor executor;
    bool started = executor_start(&executor, &run, o.isolation, o.timeout, o.backend != NULL ? open_backend : NULL, &o);
    if (!started) goto done;
    bool listed = units_golden(&m, &run, &all) && (o.outputs_dir != NULL || units_errors(&all, o.formats)) &&
                  units_random(run.seed, run.n_random, run.backend.has_batch, o.formats, &all);
    if (!listed) {
        fprintf(stderr, "kvq conform: error: out of memory\n");
        goto done;
    }
    if (!select_units(&o, &all, &selected, &run)) goto done;
    if (selected.count == 0) {
        char patterns[512];
        describe_patterns(&o, patterns, sizeof patterns);
        cli_usage_error(CMD, "no case matches --case '%s' at levels %d-%d", patterns, o.level_low, o.level_high);
        goto done;
    }
    status = run_units(&run, &executor, &selected, &o, &m);
done:
    if (started) executor_stop(&executor);
    units_free(&all);
    units_free(&selected);
    run_free_results(&run);
    manifest_free(&m);
    free_patterns(&o);
    return status;
}
