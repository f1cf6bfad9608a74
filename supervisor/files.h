/*
 * Filesystem helpers the supervisor needs around its data and run directories.
 */
#ifndef IMPACT_SUPERVISOR_FILES_H
#define IMPACT_SUPERVISOR_FILES_H

#include <stdbool.h>
#include <sys/types.h>

/** mkdir -p: missing parents get 0755 (less the umask), a missing last component exactly `mode`. 0 or -1 (errno). */
int files_mkdir_p(const char *path, mode_t mode);

/** rm -rf without following symlinks. A missing path counts as success. 0 or -1 (errno). */
int files_rmtree(const char *path);

/** Removes everything inside directory `path`, keeping the directory itself. 0 or -1 (errno). */
int files_rmtree_contents(const char *path);

/** True if `path` exists (any type, symlinks not followed). */
bool files_exists(const char *path);

#endif
