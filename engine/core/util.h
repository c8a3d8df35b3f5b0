/* util.h — small helpers the engine's modules share: paths, files, growing
 * buffers. Not installed; not part of the public API. */
#ifndef SETOK_CORE_UTIL_H
#define SETOK_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "setok/error.h"

/* out = dir "/" name (no doubled slash); false when it does not fit in size. */
bool setok_path_join(char *out, size_t size, const char *dir, const char *name);
/* The same, malloc'd; NULL when out of memory. */
char *setok_path_join_alloc(const char *dir, const char *name);
/* Whether path is a directory / a regular file (symbolic links followed). */
bool setok_is_dir(const char *path);
bool setok_is_file(const char *path);
/* dir/name is a regular file. */
bool setok_has_file(const char *dir, const char *name);
/* Grows *buf (realloc) to hold at least bytes; *cap is its size. what names
 * the buffer's user in the out-of-memory message. */
setok_status setok_grow(void **buf, size_t *cap, size_t bytes, const char *what,
                        setok_error *err);

#endif
