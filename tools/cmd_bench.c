/*
 * cmd_bench.c - `kvq bench`: runs the benchmark studies of issue 5 and writes
 * DIR/bench.json, one SVG per study, and prints where they are;
 * `kvq bench report DIR` renders docs/PERFORMANCE.md from DIR/bench.json (or
 * from the bench.partial.json of a run stopped before its end);
 * `kvq bench plot DIR` redraws the SVGs (docs/CLI.md, docs/PERFORMANCE.md).
 */
#define _POSIX_C_SOURCE 200809L
#include "bench/bench.h"
#include "bench/bench_results.h"
#include "bench/cmd_bench.h"
#include "cli_common.h"
#include "json.h"
#include "kvq/kvq_io.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef KVQ_TORCH_SCRIPT
#define KVQ_TORCH_SCRIPT NULL
#endif

static const char *const cmd = "bench";

void cli_usage_bench(FILE *out)
{
    fprintf(out,
            "usage: kvq bench [OPTIONS] --out DIR     run the studies, write DIR/bench.json and DIR/*.svg\n"
            "       kvq bench report DIR [PLOTS]      print docs/PERFORMANCE.md rendered from DIR/bench.json,\n"
            "                                         linking the plots as PLOTS/<study>.svg (default DIR);\n"
            "                                         without bench.json, from the bench.partial.json of a\n"
            "                                         run stopped before its end, marked as such\n"
            "       kvq bench plot DIR                redraw DIR/*.svg from DIR/bench.json\n"
            "\n"
            "studies: a attention_cuda, b quantize_cuda, c offload_cuda, d attention_opencl, e backend_abi\n"
            "  --all                  studies a-d (the default); a study whose backend is not built or has no\n"
            "                         device is recorded as skipped with the reason\n"
            "  --backend NAME         cuda: studies a, b, c; opencl: study d; any other backend (ref, a plugin\n"
            "                         PATH.so): study e, which times it through the ABI alone (quantize_head,\n"
            "                         dequantize, attention_decode, the peer slots: what its caps advertise)\n"
            "  --study LIST           comma-separated letters or keys, e.g. a,d (e without --backend: ref)\n"
            "  --quick                tiny sizes (testing the pipeline, e.g. on PoCL)\n"
            "  --runs N               timed runs per point (default and minimum %u)\n"
            "  --warmup N             untimed runs before them (default 3)\n"
            "  --max-context N        largest context of studies a and d (default: as large as fits)\n"
            "  --min-context N        smallest context of studies a and d (default: all from 1K; e.g. to\n"
            "                         profile one point)\n"
            "  --device N             CUDA device / OpenCL device index (default: the backend's)\n"
            "  --platform N           OpenCL platform index (default: the backend's)\n"
            "  --torch-script PATH    PyTorch baseline script (default: this tree's\n"
            "                         tools/scripts/torch_sdpa_baseline.py; '' for none)\n"
            "  --flashinfer-script PATH  also time FlashInfer's fp16 and fp8 decode with this script\n"
            "                         (tools/scripts/flashinfer_decode_baseline.py; off by default)\n"
            "  --formats LIST         only these formats of studies a, d and e, e.g. int4,int2,int4+outliers+sink\n"
            "  --shapes LIST          only these shapes, e.g. llama7b-mha,gqa-8kv-8q\n"
            "  --out DIR              output directory (created if missing)\n"
            "  --keep                 keep the studies of DIR/bench.json that this run does not repeat\n"
            "                         (e.g. one study per run under a time limit); without bench.json, those\n"
            "                         of DIR/bench.partial.json, the rows of a run stopped before its end\n"
            "  --resume               go on with a run stopped before its end: keep the studies of\n"
            "                         DIR/bench.partial.json (not its bench.json), and in the study it was\n"
            "                         measuring keep the rows it measured (study c; other studies measure\n"
            "                         again); needs the stopped run's --runs, --warmup and --quick\n",
            BENCH_MIN_RUNS);
}

static bool parse_studies(const char *list, bench_options *o)
{
    char copy[256];
    if (strlen(list) >= sizeof copy) return false;
    strcpy(copy, list);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (int s = 0; s < BENCH_STUDY_COUNT; s++)
            if ((item[0] == 'a' + s && item[1] == '\0') || strcmp(item, bench_study_key((bench_study)s)) == 0) {
                o->study[s] = true;
                found = true;
            }
        if (!found) return false;
    }
    return true;
}

static bool make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return true;
    }
    fprintf(stderr, "kvq bench: error: KVQ_ERR_IO: cannot create directory %s: %s\n", dir, strerror(errno));
    return false;
}

/* Runs one study, or records why it cannot run in this build. */
static int run_study(bench_study s, const bench_options *o, bench_json *w)
{
    (void)o; /* unused when neither backend is built */
    switch (s) {
    case BENCH_BACKEND_ABI: return bench_study_abi(o, w);
    case BENCH_ATTENTION_OPENCL:
#ifdef KVQ_BENCH_OPENCL
        return bench_study_opencl(o, w);
#else
        bench_json_skipped(w, bench_study_key(s), "this kvq was built without the OpenCL backend");
        return 0;
#endif
#ifdef KVQ_BENCH_CUDA
    case BENCH_ATTENTION_CUDA: return bench_study_cuda_attention(o, w);
    case BENCH_QUANTIZE_CUDA: return bench_study_cuda_quantize(o, w);
    case BENCH_OFFLOAD_CUDA: return bench_study_cuda_offload(o, w);
#else
    case BENCH_ATTENTION_CUDA:
    case BENCH_QUANTIZE_CUDA:
    case BENCH_OFFLOAD_CUDA:
        bench_json_skipped(w, bench_study_key(s),
                           "this kvq was built without the CUDA backend (-DKVQ_ENABLE_CUDA=ON "
                           "and nvcc on PATH build it)");
        return 0;
#endif
    default: return 0;
    }
}

/* "study_dates": when each study of the document was measured, i.e. the start of the run that measured
 * it (this run's "date" for its own studies; a kept study's date from the document it was kept from).
 * Only studies whose object is complete in the document are named, so that the checkpoints, which
 * write it too (after each row), are valid bench documents: a study still running has none. */
typedef struct study_dates {
    const bench_options *o;
    const char *date;                /* this run's "date" */
    const json_value *old;           /* the document of --keep, or NULL */
    const json_value *older;         /* --resume: DIR/bench.json, for the studies the stopped run had not reached */
    bool complete[BENCH_STUDY_COUNT]; /* the study's object is complete in the document */
} study_dates;

/* A kept study's date: its entry in the old "study_dates"; for a study that has no "status" (the one
 * a stopped run was measuring, kept from its bench.partial.json) the old run's start, which is what
 * study_dates would have said for it. NULL when the old document does not say. */
static const char *kept_date(const json_value *old, const char *key)
{
    const char *date = json_get_string(json_get(old, "study_dates"), key);
    if (date == NULL && json_get(json_get(json_get(old, "studies"), key), "status") == NULL)
        date = json_get_string(old, "date");
    return date;
}

static void write_study_dates(bench_json *w, const void *ctx)
{
    const study_dates *d = ctx;
    bench_json_object(w, "study_dates");
    for (int s = 0; s < BENCH_STUDY_COUNT; s++) {
        const char *key = bench_study_key((bench_study)s);
        const json_value *from = json_get(json_get(d->old, "studies"), key) != NULL ? d->old : d->older;
        const char *date = !d->complete[s] ? NULL : d->o->study[s] ? d->date : kept_date(from, key);
        if (date != NULL) bench_json_string(w, key, date);
    }
    bench_json_end(w);
}

/* --keep: the document of the previous run in DIR (bench.json, or the bench.partial.json of a run
 * stopped before its end when there is no bench.json), or NULL after saying nothing is kept. */
static json_value *load_kept(const char *dir)
{
    const char *file = NULL;
    json_value *old = bench_results_load(dir, &file);
    if (old == NULL)
        fprintf(stderr, "kvq bench: --keep: nothing kept (%s/%s: see above)\n", dir, BENCH_JSON_FILE);
    else if (strcmp(file, BENCH_PARTIAL_FILE) == 0)
        fprintf(stderr, "kvq bench: --keep: no %s; keeping the studies of %s/%s, a run stopped before its end\n",
                BENCH_JSON_FILE, dir, file);
    return old;
}

/* --resume: the stopped run's document (DIR/bench.partial.json), if it was timed as this run is
 * (runs, warm-up, quick), so that its rows and this run's are of one kind; NULL after saying why not. */
static json_value *load_resumed(const bench_options *o)
{
    json_value *old = bench_results_load_file(o->out_dir, BENCH_PARTIAL_FILE);
    if (old == NULL) {
        fprintf(stderr, "kvq bench: error: KVQ_ERR_IO: --resume: no stopped run to go on with in %s (%s: see above)\n",
                o->out_dir, BENCH_PARTIAL_FILE);
        return NULL;
    }
    uint32_t runs = 0, warmup = 0;
    bool quick = false;
    if (!json_get_u32(old, "runs", &runs) || !json_get_u32(old, "warmup", &warmup) ||
        !json_bool(json_get(old, "quick"), &quick) || runs != o->runs || warmup != o->warmup || quick != o->quick) {
        fprintf(stderr,
                "kvq bench: error: KVQ_ERR_INVALID_ARGUMENT: --resume: %s/%s was timed with --runs %u --warmup %u%s; "
                "this run asks for --runs %u --warmup %u%s (give the stopped run's)\n",
                o->out_dir, BENCH_PARTIAL_FILE, runs, warmup, quick ? " --quick" : "", o->runs, o->warmup,
                o->quick ? " --quick" : "");
        json_free(old);
        return NULL;
    }
    return old;
}

static int run(const bench_options *o)
{
    if (!make_dir(o->out_dir)) return CLI_FAILED;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", o->out_dir, BENCH_JSON_FILE);
    /* --keep: the studies of the previous bench.json that this run does not repeat; --resume: those
     * of the stopped run's bench.partial.json. */
    json_value *old = NULL, *older = NULL;
    if (o->resume) {
        old = load_resumed(o);
        if (old == NULL) return CLI_FAILED;
        /* The studies after the stopped one were not yet copied into its checkpoint: what --keep
         * would have kept of them is in DIR/bench.json, if there is one. */
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", o->out_dir, BENCH_JSON_FILE);
        if (access(full, F_OK) == 0) older = bench_results_load_file(o->out_dir, BENCH_JSON_FILE);
    } else if (o->keep) {
        old = load_kept(o->out_dir);
    }
    /* The document is built in memory and written as kvq writes every file (kvq_write_file): no
     * half-written bench.json, no shared temporary name. */
    char *doc = NULL;
    size_t doc_size = 0;
    FILE *out = open_memstream(&doc, &doc_size);
    if (out == NULL) {
        fprintf(stderr, "kvq bench: error: KVQ_ERR_OUT_OF_MEMORY: cannot build %s: %s\n", path, strerror(errno));
        json_free(old);
        json_free(older);
        return CLI_FAILED;
    }
    char date[64], host[256] = "?", torch[320];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    gethostname(host, sizeof host - 1u);
    bench_torch_status(o, torch, sizeof torch);
    bench_json w;
    bench_json_init(&w, out);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s/%s", o->out_dir, BENCH_PARTIAL_FILE);
    study_dates dates = {.o = o, .date = date, .old = old, .older = older};
    bench_checkpoint_start(out, &doc, &doc_size, partial, write_study_dates, &dates);
    bench_json_object(&w, NULL);
    bench_json_string(&w, "schema", BENCH_JSON_SCHEMA);
    bench_json_string(&w, "kvq_version", KVQ_TOOL_VERSION);
    bench_json_string(&w, "date", date);
    bench_json_string(&w, "host", host);
    bench_json_bool(&w, "quick", o->quick);
    bench_json_u64(&w, "runs", o->runs);
    bench_json_u64(&w, "warmup", o->warmup);
    bench_json_u64(&w, "max_context", o->max_context);
    bench_json_u64(&w, "min_context", o->min_context);
    bench_json_number(&w, "device", o->device);
    bench_json_number(&w, "platform", o->platform);
    bench_json_string(&w, "pytorch", torch);
    bench_json_object(&w, "studies");
    int failed = 0;
    const json_value *old_studies = json_get(old, "studies"), *older_studies = json_get(older, "studies");
    for (int s = 0; s < BENCH_STUDY_COUNT; s++) {
        const char *key = bench_study_key((bench_study)s);
        if (!o->study[s]) {
            const json_value *kept = json_get(old_studies, key) != NULL ? json_get(old_studies, key)
                                                                         : json_get(older_studies, key);
            if (kept != NULL) {
                bench_json_value(&w, key, kept);
                dates.complete[s] = true;
            }
            continue;
        }
        fprintf(stderr, "kvq bench: study %s\n", key);
        bench_checkpoint(&w); /* the studies so far, even if this one writes no row before it stops */
        /* --resume: the study the stopped run was measuring is the one without "status". */
        bench_options so = *o;
        const json_value *stopped = json_get(old_studies, key);
        if (o->resume && stopped != NULL && json_get(stopped, "status") == NULL) {
            so.resume_study = stopped;
            so.resume_date = json_get_string(old, "date");
            fprintf(stderr, "kvq bench: --resume: study %s was stopped in the run of %s; its rows are kept where "
                            "the study can resume them\n", key, so.resume_date != NULL ? so.resume_date : "?");
        }
        failed |= run_study((bench_study)s, &so, &w);
        dates.complete[s] = true;
    }
    bench_json_end(&w);
    write_study_dates(&w, &dates); /* every study is complete now: bench.json names them all */
    json_free(old);
    json_free(older);
    bench_json_end(&w);
    bench_checkpoint_stop(); /* the stream is closed next; the partial file stays until bench.json is written */
    bool build_failed = ferror(out) != 0 || w.failed || w.depth != 0;
    if (fclose(out) != 0 || build_failed) {
        fprintf(stderr, "kvq bench: error: building %s failed (out of memory or a nesting error)\n", path);
        free(doc);
        return CLI_FAILED;
    }
    kvq_status written = kvq_write_file(path, doc, doc_size);
    free(doc);
    if (written != KVQ_OK) {
        fprintf(stderr, "kvq bench: error: %s: %s\n", kvq_status_name(written), kvq_last_error());
        return CLI_FAILED;
    }
    unlink(partial); /* bench.json holds all of it now */
    int plot_rc = bench_plot_all(o->out_dir);
    printf("kvq bench: wrote %s and the plots of its studies (%s/*.svg)\n", path, o->out_dir);
    if (failed) fprintf(stderr, "kvq bench: at least one study failed (its entry says \"status\": \"failed\")\n");
    return failed || plot_rc ? CLI_FAILED : CLI_OK;
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "report") == 0 || strcmp(argv[1], "plot") == 0)) {
        bool report = strcmp(argv[1], "report") == 0;
        if (argc != 3 && !(report && argc == 4))
            return cli_usage_error(cmd, "%s takes %s, got %d arguments", argv[1],
                                   report ? "DIR [PLOTS]" : "one directory", argc - 2);
        if (report) return bench_report(argv[2], argc == 4 ? argv[3] : NULL, stdout) == 0 ? CLI_OK : CLI_FAILED;
        return bench_plot_all(argv[2]) == 0 ? CLI_OK : CLI_FAILED;
    }
    enum {
        OPT_ALL = 1,
        OPT_BACKEND,
        OPT_STUDY,
        OPT_QUICK,
        OPT_RUNS,
        OPT_WARMUP,
        OPT_MAX_CONTEXT,
        OPT_MIN_CONTEXT,
        OPT_DEVICE,
        OPT_PLATFORM,
        OPT_TORCH,
        OPT_OUT,
        OPT_FORMATS,
        OPT_FLASHINFER,
        OPT_SHAPES,
        OPT_KEEP,
        OPT_RESUME,
        OPT_HELP
    };
    static const struct option options[] = {{"all", no_argument, NULL, OPT_ALL},
                                            {"backend", required_argument, NULL, OPT_BACKEND},
                                            {"study", required_argument, NULL, OPT_STUDY},
                                            {"quick", no_argument, NULL, OPT_QUICK},
                                            {"runs", required_argument, NULL, OPT_RUNS},
                                            {"warmup", required_argument, NULL, OPT_WARMUP},
                                            {"max-context", required_argument, NULL, OPT_MAX_CONTEXT},
                                            {"min-context", required_argument, NULL, OPT_MIN_CONTEXT},
                                            {"device", required_argument, NULL, OPT_DEVICE},
                                            {"platform", required_argument, NULL, OPT_PLATFORM},
                                            {"torch-script", required_argument, NULL, OPT_TORCH},
                                            {"out", required_argument, NULL, OPT_OUT},
                                            {"formats", required_argument, NULL, OPT_FORMATS},
                                            {"flashinfer-script", required_argument, NULL, OPT_FLASHINFER},
                                            {"shapes", required_argument, NULL, OPT_SHAPES},
                                            {"keep", no_argument, NULL, OPT_KEEP},
                                            {"resume", no_argument, NULL, OPT_RESUME},
                                            {"help", no_argument, NULL, OPT_HELP},
                                            {NULL, 0, NULL, 0}};
    bench_options o;
    memset(&o, 0, sizeof o);
    o.runs = BENCH_MIN_RUNS;
    o.warmup = 3u;
    o.device = -1;
    o.platform = -1;
    o.torch_script = KVQ_TORCH_SCRIPT;
    bool chosen = false;
    int c;
    uint32_t v;
    while ((c = cli_getopt(cmd, argc, argv, ":", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case OPT_HELP: cli_usage_bench(stdout); return CLI_OK;
        case OPT_ALL:
            for (int s = 0; s < BENCH_BACKEND_ABI; s++) o.study[s] = true; /* (e) only when asked for */
            chosen = true;
            break;
        case OPT_BACKEND:
            if (strcmp(optarg, "cuda") == 0) {
                o.study[BENCH_ATTENTION_CUDA] = o.study[BENCH_QUANTIZE_CUDA] = o.study[BENCH_OFFLOAD_CUDA] = true;
            } else if (strcmp(optarg, "opencl") == 0) {
                o.study[BENCH_ATTENTION_OPENCL] = true;
            } else { /* a built-in name or a plugin's path: kvq_backend_find says which when it runs */
                o.study[BENCH_BACKEND_ABI] = true;
                o.backend = optarg;
            }
            chosen = true;
            break;
        case OPT_STUDY:
            if (!parse_studies(optarg, &o))
                return cli_usage_error(cmd, "--study: '%s' is not a list of a, b, c, d, e (or study keys)", optarg);
            chosen = true;
            break;
        case OPT_QUICK: o.quick = true; break;
        case OPT_RUNS:
            if (!cli_parse_u32(cmd, "--runs", optarg, BENCH_MIN_RUNS, BENCH_MAX_RUNS, &o.runs)) return CLI_USAGE;
            break;
        case OPT_WARMUP:
            if (!cli_parse_u32(cmd, "--warmup", optarg, 0, 1000, &o.warmup)) return CLI_USAGE;
            break;
        case OPT_MAX_CONTEXT:
            if (!cli_parse_u32(cmd, "--max-context", optarg, 256, KVQ_MAX_TOKENS, &o.max_context)) return CLI_USAGE;
            break;
        case OPT_MIN_CONTEXT:
            if (!cli_parse_u32(cmd, "--min-context", optarg, 1, KVQ_MAX_TOKENS, &o.min_context)) return CLI_USAGE;
            break;
        case OPT_DEVICE:
            if (!cli_parse_u32(cmd, "--device", optarg, 0, 1024, &v)) return CLI_USAGE;
            o.device = (int)v;
            break;
        case OPT_PLATFORM:
            if (!cli_parse_u32(cmd, "--platform", optarg, 0, 1024, &v)) return CLI_USAGE;
            o.platform = (int)v;
            break;
        case OPT_TORCH: o.torch_script = optarg[0] != '\0' ? optarg : NULL; break; /* '': no PyTorch */
        case OPT_OUT: o.out_dir = optarg; break;
        case OPT_FORMATS: o.formats = optarg; break;
        case OPT_FLASHINFER: o.flashinfer_script = optarg; break;
        case OPT_SHAPES: o.shapes = optarg; break;
        case OPT_KEEP: o.keep = true; break;
        case OPT_RESUME: o.resume = o.keep = true; break;
        default: return cli_usage_error(cmd, "unexpected option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.out_dir == NULL) return cli_usage_error(cmd, "--out DIR is required");
    if (o.max_context != 0 && o.min_context > o.max_context)
        return cli_usage_error(cmd, "--min-context %u is above --max-context %u", o.min_context, o.max_context);
    if (!chosen)
        for (int s = 0; s < BENCH_BACKEND_ABI; s++) o.study[s] = true;
    if (o.study[BENCH_BACKEND_ABI] && o.backend == NULL) o.backend = "ref"; /* --study e */
    return run(&o);
}
