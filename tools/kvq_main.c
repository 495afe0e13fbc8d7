/*
 * kvq_main.c - the `kvq` command-line tool: dispatches `kvq CMD ...` to one
 * subcommand (one file each, cmd_*.c) and prints the general usage.
 *
 * Exit status of every subcommand: 0 success, 1 the operation failed (the
 * message names the kvq status), 2 usage error (docs/CLI.md).
 */
#include "bench/cmd_bench.h"
#include "cli_common.h"
#include "conform/commands.h"
#include "figures/figures.h"
#include "kvq/kvq_backend.h"

#include <string.h>

/* One row per subcommand. Adding one is one row here plus its sources in
 * tools/CMakeLists.txt. `usage` may be NULL when the command prints its own
 * usage on `kvq CMD --help` (as cmd_golden.c does); `kvq help CMD` then runs
 * `kvq CMD --help`. */
typedef struct cli_command {
    const char *name;
    cli_command_fn run;
    void (*usage)(FILE *out);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"synth", cmd_synth, cli_usage_synth, "write synthetic KV tensors (.kvt) with kvq_synth_kv (S14.3)"},
    {"quantize", cmd_quantize, cli_usage_quantize, "quantize a .kvt into a .kvqz (S4, S7, S8, S10)"},
    {"dequantize", cmd_dequantize, cli_usage_dequantize, "dequantize a .kvqz back into a .kvt (S4.5)"},
    {"inspect", cmd_inspect, cli_usage_inspect, "statistics of a .kvt or .kvqz; errors against an original"},
    {"calibrate", cmd_calibrate, cli_usage_calibrate, "key channel ranges and NUQ codebooks into a .kvc (S6.9, S6.6)"},
    {"golden", cmd_golden, NULL, "write or verify the golden set with the reference (S16.7)"},
    {"conform", cmd_conform, cli_usage_conform, "judge a backend (or output files) against the golden set (S12)"},
    {"accuracy", cmd_accuracy, cli_usage_accuracy, "score a format kvq does not know against the original data (NMSE)"},
    {"devices", cmd_devices, cli_usage_devices, "list the devices of the built-in backends"},
    {"bench", cmd_bench, cli_usage_bench, "benchmark studies to JSON and SVG; `bench report DIR` renders them"},
    {"figures", cmd_figures, cli_usage_figures, "draw the figures of docs/LEARN.md from the reference (kvq figures DIR)"},
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kvq COMMAND [ARGS...]\n"
            "       kvq help [COMMAND]     usage of kvq or of one command (also: kvq COMMAND --help)\n"
            "       kvq --version          library, spec and backend ABI versions, the backends built in\n"
            "\ncommands:\n");
    for (size_t i = 0; i < n_commands; i++) fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit status: 0 success, 1 the operation failed, 2 usage error\n");
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < n_commands; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* `kvq help [CMD]` */
static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return CLI_OK;
    }
    if (argc > 2) return cli_usage_error("help", "expected at most one command name, got %d", argc - 1);
    const cli_command *c = find_command(argv[1]);
    if (c == NULL) return cli_usage_error("help", "unknown command '%s'", argv[1]);
    if (c->usage != NULL) {
        c->usage(stdout);
        return CLI_OK;
    }
    char help_flag[] = "--help";
    char *args[] = {argv[1], help_flag, NULL};
    return c->run(2, args);
}

/* `kvq --version`: the library's version, the spec it implements, the backend
 * ABI and the backends compiled into this build (docs/CLI.md; CHANGELOG.md
 * has the rule that ties a release tag to these numbers). The tool is built
 * from the same tree as the library; the spec version is the one the header
 * declares (S0). */
static int version(void)
{
    printf("kvq %s (library), spec %s, backend ABI %u; backends:", KVQ_TOOL_VERSION, KVQ_SPEC_VERSION_STRING,
           (unsigned)KVQ_BACKEND_ABI_VERSION);
    for (const kvq_backend_api *const *b = kvq_backend_builtins(); *b != NULL; b++) printf(" %s", (*b)->name);
    printf("\n");
    return CLI_OK;
}

int main(int argc, char **argv)
{
    /* A command ended by a signal leaves no temporary file behind (S16.1, docs/GUARANTEES.md). */
    cli_remove_temporaries_on_signals();
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) return version();
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return help(argc - 1, argv + 1);
    const cli_command *c = find_command(name);
    if (c == NULL) {
        fprintf(stderr, "kvq: unknown command '%s'\n", name);
        usage(stderr);
        return CLI_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
