/* file.h — writing a file so that a failed write cannot lose what the file held.
 *
 * The bytes go to a new temporary file in the target's own folder (same file system), which
 * is flushed to the disk and then renamed over the target in one step; after any failure
 * (a full disk, a file-size limit, a writer error, an unwritable folder) the target is left
 * byte for byte as it was and the temporary file is removed. A target that is a symbolic
 * link has the file it points to replaced; a replaced file keeps its permission bits, a new
 * one gets what fopen would give it (0666 less the umask). */
#ifndef SETOK_FILE_H
#define SETOK_FILE_H

#include "export.h"

#include <stdio.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the content to f; returns SETOK_OK, or a status with err filled. Write errors that
 * f records (ferror) count as failures even when the writer returns SETOK_OK. */
typedef setok_status (*setok_file_writer)(FILE *f, void *user, setok_error *err);

/* Replaces path with what write puts into a temporary file beside it. Errors name path and
 * say that it is unchanged. */
SETOK_API setok_status setok_file_replace(const char *path, setok_file_writer write, void *user,
                                          setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
