/*
 * installed_paths.c - the installed golden set, found from the executable's own location so
 * that an installed tree works wherever `cmake --install --prefix` put it (nothing absolute is
 * compiled in unless the install directories themselves were absolute).
 */
#define _POSIX_C_SOURCE 200809L /* readlink, stat */
#include "installed_paths.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef KVQ_INSTALL_GOLDEN_DIR
#define KVQ_INSTALL_GOLDEN_DIR "../share/kvq/golden"
#endif

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of the running executable, without a trailing '/'. Linux's /proc/self/exe: on a
 * system without it the installed golden set is not looked for (--golden still works). */
static bool executable_directory(char *dir, size_t size)
{
    if (size < 2) return false;
    ssize_t n = readlink("/proc/self/exe", dir, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) return false; /* failed, or possibly truncated */
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL) return false;
    *slash = '\0';
    return true;
}

bool installed_golden_dir(char *path, size_t size)
{
    int n;
    if (KVQ_INSTALL_GOLDEN_DIR[0] == '/') {
        n = snprintf(path, size, "%s", KVQ_INSTALL_GOLDEN_DIR);
    } else {
        char dir[4096];
        if (!executable_directory(dir, sizeof dir)) return false;
        n = snprintf(path, size, "%s/%s", dir, KVQ_INSTALL_GOLDEN_DIR);
    }
    return n > 0 && (size_t)n < size && is_directory(path);
}
