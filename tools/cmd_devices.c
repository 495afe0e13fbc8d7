/*
 * cmd_devices.c - `kvq devices`: every device each built-in backend (or one
 * given with --backend, a plugin included) could open, one line each:
 * backend, platform index, device index, name. Listing nothing is not an
 * error (a machine without a GPU has no CUDA device); it is said so.
 */
#define _GNU_SOURCE /* getopt_long */
#include "cli_common.h"
#include "conform/commands.h"
#include "kvq/kvq_backend.h"

#include <getopt.h>
#include <string.h>

#define CMD "devices"

void cli_usage_devices(FILE *out)
{
    fprintf(out,
            "usage: kvq devices [--backend NAME|PATH.so]\n"
            "  Lists the devices of every built-in backend (or of the one named), one line each:\n"
            "  backend, platform index, device index, device name. Use the indices with\n"
            "  `kvq conform --backend NAME --platform P --device D`. Exit status 0 even when none is found.\n");
}

typedef struct listing {
    const char *backend;
    size_t count;
} listing;

static void print_device(void *user, int32_t platform, int32_t device, const char *name)
{
    listing *l = user;
    printf("%-10s %8d %6d  %s\n", l->backend, (int)platform, (int)device, name != NULL ? name : "");
    l->count++;
}

/* Lists one backend's devices; returns how many. */
static size_t list_backend(const kvq_backend_api *api)
{
    listing l = {api->name, 0};
    char message[512] = "";
    kvq_status st = api->list_devices(print_device, &l, message, sizeof message);
    if (st != KVQ_OK)
        printf("%-10s        -      -  (cannot list devices: %s: %s)\n", api->name, kvq_status_name(st),
               message[0] ? message : "no reason given");
    else if (l.count == 0)
        printf("%-10s        -      -  (no device found)\n", api->name);
    return l.count;
}

enum { OPT_BACKEND = 1, OPT_HELP };

int cmd_devices(int argc, char **argv)
{
    static const struct option options[] = {
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *only = NULL;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_devices(stdout); return CLI_OK;
        case OPT_BACKEND: only = optarg; break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);

    printf("%-10s %8s %6s  %s\n", "backend", "platform", "device", "name");
    size_t total = 0;
    char names[256] = "";
    if (only != NULL) {
        const kvq_backend_api *api = NULL;
        char message[512] = "";
        kvq_status st = kvq_backend_find(only, &api, message, sizeof message);
        if (st != KVQ_OK) {
            fprintf(stderr, "kvq devices: error: cannot load backend %s: %s (%s)\n", only, message, kvq_status_name(st));
            return CLI_USAGE;
        }
        total = list_backend(api);
        snprintf(names, sizeof names, "%s", api->name);
    } else {
        for (const kvq_backend_api *const *b = kvq_backend_builtins(); *b != NULL; b++) {
            total += list_backend(*b);
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", (*b)->name);
        }
    }
    if (total == 0) printf("no devices found (backends asked: %s)\n", names);
    return CLI_OK;
}
