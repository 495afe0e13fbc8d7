/*
 * installed_paths.h - where an installed `kvq` finds what `cmake --install` put beside it.
 */
#ifndef KVQ_INSTALLED_PATHS_H
#define KVQ_INSTALLED_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* The installed golden set: KVQ_INSTALL_GOLDEN_DIR (e.g. ../share/kvq/golden) taken from the
 * directory of the running executable, or as it is when absolute. True, with the path in
 * `path`, when that directory exists; false when it does not (a tool run from its build tree)
 * or the executable's location is unknown. */
bool installed_golden_dir(char *path, size_t size);

#endif
