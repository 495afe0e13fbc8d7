/*
 * scratch.c - the per-test directory of scratch.h.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir */
#include "scratch.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char paths[4][192];

void scratch_setup(void)
{
    strcpy(dir, "/tmp/kvq-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

void scratch_teardown(void)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

const char *scratch_dir(void) { return dir; }

const char *scratch_path(int slot, const char *name)
{
    ck_assert(slot >= 0 && slot < 4);
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", dir, name);
    return paths[slot];
}

int scratch_count(const char *part)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}
