/*
 * fuzz_cli.c - the kvq tool's options and arguments (docs/CLI.md): the input
 * is one command line, its words separated by newlines, for a command that
 * reads and writes files (synth, quantize, dequantize, inspect, calibrate).
 * It runs in a scratch directory holding the golden set's files_round_trip
 * .kvt, .kvc and .kvqz and the keys-only and values-only .kvt of issue 17's
 * finding 1. Every command line must end with exit status 0, 1 or 2, without
 * a sanitizer report; a failed command leaves the directory as it was, and no
 * command leaves a temporary file.
 *
 * Two kinds of input are not run, because they would only measure the
 * machine: a word with '/' (a path outside the scratch directory; the tool
 * writes where it is told) and synth sizes of more than 2^18 elements.
 */
#define _GNU_SOURCE /* getopt_long's reset, chdir */
#include "cli_common.h"
#include "fuzz.h"
#include "kvq/kvq_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KVQ_FUZZ_GOLDEN_DIR
#error "KVQ_FUZZ_GOLDEN_DIR names the golden set"
#endif

enum { MAX_WORDS = 32, MAX_WORD = 256 };

/* The files every command line starts from, kept in memory: each run gets them afresh, so that
 * what one command line wrote never changes what the next one sees (a crash replays). */
enum { N_SEEDS = 5 };
static struct seed_file {
    const char *name;
    uint8_t *data;
    size_t size;
} seeds[N_SEEDS];

static void keep_seed(int i, const char *name, const char *from)
{
    seeds[i].name = name;
    seeds[i].data = fuzz_read_file(from, &seeds[i].size);
    fuzz_require(seeds[i].data != NULL, "cannot read %s", from);
}

/* A valid .kvt with one role only (flags 1 or 2): 1 x 1 x 1 x 4 fp16 ones. */
static void one_role_kvt(int i, const char *name, uint32_t flags)
{
    kvq_kvfile *f = NULL;
    fuzz_require(kvq_kvfile_create(1, 1, 1, 4, KVQ_DTYPE_FP16, flags, &f) == KVQ_OK, "%s", kvq_last_error());
    for (int j = 0; j < 4; j++) (flags == KVQ_KVFILE_KEYS ? f->keys : f->values)[j] = 1.0f;
    fuzz_require(kvq_kvfile_write(name, f) == KVQ_OK, "%s", kvq_last_error());
    kvq_kvfile_free(f);
    keep_seed(i, name, name);
}

/* Empties the scratch directory and writes the seed files. */
static void fresh_directory(void)
{
    DIR *d = opendir(".");
    fuzz_require(d != NULL, "cannot list the scratch directory");
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink(e->d_name);
    closedir(d);
    for (int i = 0; i < N_SEEDS; i++) fuzz_write_file(seeds[i].name, seeds[i].data, seeds[i].size);
}

/* The directory the fuzzer was started in: it reads and writes its corpus there, relative paths
 * included, so each command line runs in the scratch directory and comes back. */
static int origin = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    origin = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fuzz_require(origin >= 0, "cannot open the current directory");
    fuzz_require(chdir(fuzz_scratch_dir()) == 0, "cannot enter %s", fuzz_scratch_dir());
    keep_seed(0, "a.kvt", KVQ_FUZZ_GOLDEN_DIR "/files_round_trip.kv.kvt");
    keep_seed(1, "c.kvc", KVQ_FUZZ_GOLDEN_DIR "/files_round_trip.calibration.kvc");
    keep_seed(2, "q.kvqz", KVQ_FUZZ_GOLDEN_DIR "/files_round_trip.quantized.kvqz");
    one_role_kvt(3, "k.kvt", KVQ_KVFILE_KEYS);
    one_role_kvt(4, "v.kvt", KVQ_KVFILE_VALUES);
    /* the tool's output is not what is judged */
    fuzz_require(freopen("/dev/null", "w", stdout) != NULL, "cannot silence stdout");
    fuzz_require(fchdir(origin) == 0, "cannot go back");
    return 0;
}

/* The value of a size option of synth among words[1 .. n-1] (`--name N`, `--name=N`, or any
 * unambiguous prefix getopt_long accepts), or 1 when absent or not a number the tool takes. */
static unsigned long long synth_size(char **words, int n, const char *name)
{
    unsigned long long value = 1;
    for (int i = 1; i < n; i++) {
        const char *w = words[i];
        if (strncmp(w, "--", 2) != 0 || w[2] == '\0') continue;
        size_t len = strcspn(w + 2, "=");
        if (len < 3 || strncmp(w + 2, name, len) != 0) continue;
        const char *text = w[2 + len] == '=' ? w + 3 + len : i + 1 < n ? words[i + 1] : "";
        char *end = NULL;
        unsigned long long v = strtoull(text, &end, 10);
        if (end != text && *end == '\0' && v > 0 && v <= (1ull << 30)) value = v;
    }
    return value;
}

/* A leftover temporary file: "<name>.tmp-XXXXXX" (S16.1) that no word of the command line names
 * (an output the user called so is not one). */
static bool leftover(const char *name, char **words, int n)
{
    const char *infix = strstr(name, ".tmp-");
    if (infix == NULL || strlen(infix) != 11) return false;
    for (int i = 0; i < n; i++)
        if (strstr(words[i], name) != NULL) return false;
    return true;
}

static bool is_seed(const char *name)
{
    for (int i = 0; i < N_SEEDS; i++)
        if (strcmp(name, seeds[i].name) == 0) return true;
    return false;
}

/* S13.3, S16.1: a failed command leaves the directory as it was (the seeds, unchanged); no
 * command leaves a temporary file. */
static void check_directory(int status, char **words, int n)
{
    DIR *d = opendir(".");
    fuzz_require(d != NULL, "cannot list the scratch directory");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        fuzz_require(!leftover(e->d_name, words, n), "%s: a temporary file was left behind", e->d_name);
        fuzz_require(status == CLI_OK || is_seed(e->d_name), "the failed command left %s behind", e->d_name);
    }
    closedir(d);
    for (int i = 0; status != CLI_OK && i < N_SEEDS; i++) {
        size_t size = 0;
        uint8_t *now = fuzz_read_file(seeds[i].name, &size);
        fuzz_require(now != NULL && size == seeds[i].size && memcmp(now, seeds[i].data, size) == 0,
                     "the failed command changed %s", seeds[i].name);
        free(now);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        const char *name;
        cli_command_fn run;
    } commands[] = {{"synth", cmd_synth},
                    {"quantize", cmd_quantize},
                    {"dequantize", cmd_dequantize},
                    {"inspect", cmd_inspect},
                    {"calibrate", cmd_calibrate}};
    char storage[MAX_WORDS][MAX_WORD];
    char *words[MAX_WORDS + 1];
    int n = 0;
    size_t at = 0;
    while (at <= size && n < MAX_WORDS) {
        size_t end = at;
        while (end < size && data[end] != '\n') end++;
        size_t len = end - at;
        if (len >= MAX_WORD || memchr(data + at, '\0', len) != NULL || memchr(data + at, '/', len) != NULL) return 0;
        memcpy(storage[n], data + at, len);
        storage[n][len] = '\0';
        words[n] = storage[n];
        n++;
        at = end + 1;
    }
    if (at <= size || n == 0) return 0; /* more words than MAX_WORDS */
    words[n] = NULL;
    cli_command_fn run = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(words[0], commands[i].name) == 0) run = commands[i].run;
    if (run == NULL) return 0;
    if (run == cmd_synth &&
        synth_size(words, n, "layers") * synth_size(words, n, "heads") * synth_size(words, n, "tokens") *
                synth_size(words, n, "head-dim") >
            (1ull << 18))
        return 0;
    fuzz_require(chdir(fuzz_scratch_dir()) == 0, "cannot enter %s", fuzz_scratch_dir());
    fresh_directory();
    /* GNU getopt keeps a pointer into the previous argv; optind = 0 makes it start afresh (the
     * commands set optind = 1, which is enough in a process that runs one command). */
    optind = 0;
    char *none[] = {"reset", NULL};
    while (getopt(1, none, "") != -1) {
    }
    int status = run(n, words);
    fuzz_require(status == CLI_OK || status == CLI_FAILED || status == CLI_USAGE, "exit status %d", status);
    check_directory(status, words, n);
    fflush(stdout);
    fuzz_require(fchdir(origin) == 0, "cannot go back");
    return 0;
}
