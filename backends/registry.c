/*
 * registry.c - find a backend by name, or load a third party's from a shared
 * library, and check that it speaks this build's ABI before anything is called.
 */
#define _POSIX_C_SOURCE 200809L /* dlopen/dlsym through <dlfcn.h> under -std=c11 */
#include "kvq/kvq_backend.h"
#include "ref/ref_backend.h"
#ifdef KVQ_HAVE_OPENCL
#include "opencl/opencl_backend.h"
#endif
#ifdef KVQ_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

const kvq_backend_api *const *kvq_backend_builtins(void)
{
    /* Filled on first use: the entry functions return addresses of static tables. */
    static const kvq_backend_api *builtins[4];
    if (builtins[0] == NULL) {
        size_t n = 0;
        builtins[n++] = kvq_backend_ref();
#ifdef KVQ_HAVE_OPENCL
        builtins[n++] = kvq_backend_opencl();
#endif
#ifdef KVQ_HAVE_CUDA
        builtins[n++] = kvq_backend_cuda();
#endif
        builtins[n] = NULL;
    }
    return builtins;
}

static kvq_status say(char *message, size_t message_size, kvq_status status, const char *format, const char *a,
                      const char *b)
{
    if (message != NULL && message_size > 0) snprintf(message, message_size, format, a, b);
    return status;
}

/* A path is anything a user could only mean as a file: a '/' or a shared
 * library suffix (".so", ".so.6"). */
static int looks_like_path(const char *s) { return strchr(s, '/') != NULL || strstr(s, ".so") != NULL; }

/* dlopen searches LD_LIBRARY_PATH and the system's directories for a name
 * without a '/', and would load some other library of that name: a name the
 * user gave as a file is a file, relative to the current directory. */
static const char *as_path(const char *s, char *buffer, size_t size)
{
    if (strchr(s, '/') != NULL) return s;
    int n = snprintf(buffer, size, "./%s", s);
    return n > 0 && (size_t)n < size ? buffer : NULL;
}

/* The ABI header's promises that a loader can check without calling anything
 * but the entry function: version, table size, the slots every backend needs. */
static kvq_status check_table(const kvq_backend_api *api, const char *who, char *message, size_t message_size)
{
    char found[64];
    if (api->abi_version != KVQ_BACKEND_ABI_VERSION) {
        snprintf(found, sizeof found, "%u (this build speaks %u)", api->abi_version, KVQ_BACKEND_ABI_VERSION);
        return say(message, message_size, KVQ_ERR_FILE_VERSION, "%s: backend ABI version %s", who, found);
    }
    /* slots are appended within ABI 1: a table of an earlier build is smaller, and its missing slots are NULL */
    if (api->struct_size < KVQ_BACKEND_API_MIN_SIZE) {
        snprintf(found, sizeof found, "%u bytes, expected at least %zu", api->struct_size,
                 (size_t)KVQ_BACKEND_API_MIN_SIZE);
        return say(message, message_size, KVQ_ERR_SIZE_MISMATCH, "%s: backend table is %s", who, found);
    }
    const char *missing = api->name == NULL           ? "name"
                          : api->list_devices == NULL ? "list_devices"
                          : api->open == NULL         ? "open"
                          : api->close == NULL        ? "close"
                          : api->get_caps == NULL     ? "get_caps"
                          : api->device_name == NULL  ? "device_name"
                          : api->last_error == NULL   ? "last_error"
                                                      : NULL;
    if (missing != NULL)
        return say(message, message_size, KVQ_ERR_NULL_ARGUMENT,
                   "%s: backend table has no %s (mandatory: name, list_devices, open, close, get_caps, "
                   "device_name, last_error)",
                   who, missing);
    return KVQ_OK;
}

static kvq_status load_plugin(const char *path, const kvq_backend_api **api, char *message, size_t message_size)
{
    /* RTLD_LOCAL: a plugin's own symbols never satisfy another plugin's. The
     * handle is kept for the life of the process (the table points into it). */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        return say(message, message_size, KVQ_ERR_IO, "cannot load backend %s: %s", path, why ? why : "dlopen failed");
    }
    /* ISO C forbids converting void* to a function pointer; POSIX requires
     * dlsym's result to convert, which the memcpy spells out portably. */
    void *symbol = dlsym(handle, KVQ_BACKEND_ENTRY_SYMBOL);
    if (symbol == NULL) {
        dlclose(handle);
        return say(message, message_size, KVQ_ERR_BAD_ARGUMENT, "%s: no exported symbol %s (see docs/PLUGINS.md)",
                   path, KVQ_BACKEND_ENTRY_SYMBOL);
    }
    kvq_backend_entry_fn entry;
    memcpy(&entry, &symbol, sizeof entry);
    const kvq_backend_api *table = entry(KVQ_BACKEND_ABI_VERSION);
    if (table == NULL) {
        dlclose(handle);
        return say(message, message_size, KVQ_ERR_FILE_VERSION, "%s: %s() returned NULL (it cannot serve this ABI version)",
                   path, KVQ_BACKEND_ENTRY_SYMBOL);
    }
    kvq_status status = check_table(table, path, message, message_size);
    if (status != KVQ_OK) {
        dlclose(handle);
        return status;
    }
    *api = table;
    return KVQ_OK;
}

kvq_status kvq_backend_find(const char *name_or_path, const kvq_backend_api **api, char *message,
                            size_t message_size)
{
    if (name_or_path == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "%s%s", "name_or_path: NULL", "");
    if (api == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "%s%s", "api: NULL", "");
    if (looks_like_path(name_or_path)) {
        char buffer[4096];
        const char *path = as_path(name_or_path, buffer, sizeof buffer);
        if (path == NULL) return say(message, message_size, KVQ_ERR_BAD_ARGUMENT, "%s: %s", name_or_path, "name too long");
        return load_plugin(path, api, message, message_size);
    }

    char names[128] = "";
    for (const kvq_backend_api *const *b = kvq_backend_builtins(); *b != NULL; b++) {
        if (strcmp((*b)->name, name_or_path) == 0) {
            kvq_status status = check_table(*b, name_or_path, message, message_size);
            if (status == KVQ_OK) *api = *b;
            return status;
        }
        if (names[0] != '\0') strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, (*b)->name, sizeof names - strlen(names) - 1);
    }
    return say(message, message_size, KVQ_ERR_BAD_ARGUMENT,
               "no backend named \"%s\" in this build (built in: %s; or give the path of a plugin .so)", name_or_path,
               names);
}

kvq_status kvq_backend_open(const kvq_backend_api *api, const kvq_backend_options *options,
                            kvq_backend_context **ctx, char *message, size_t message_size)
{
    if (api == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "%s%s", "api: NULL", "");
    if (ctx == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "%s%s", "ctx: NULL", "");
    if (message != NULL && message_size > 0) message[0] = '\0';
    kvq_backend_context *opened = NULL;
    kvq_status status = api->open(options, &opened, message, message_size);
    if (status == KVQ_OK && opened == NULL)
        return say(message, message_size, KVQ_ERR_BAD_ARGUMENT, "backend %s: open returned KVQ_OK but no context%s",
                   api->name, " (a backend bug)");
    if (status != KVQ_OK) {
        if (message != NULL && message_size > 0 && message[0] == '\0')
            say(message, message_size, status, "backend %s: open failed with %s and gave no reason", api->name,
                kvq_status_name(status));
        return status;
    }
    *ctx = opened;
    return KVQ_OK;
}
