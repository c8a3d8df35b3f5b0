/* io-private.h — helpers shared by the io loaders (safetensors, weights,
 * config): a string -> index hash table, names made safe for messages, and
 * JSON type names. Not installed; not part of the public API. */
#ifndef SETOK_IO_PRIVATE_H
#define SETOK_IO_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "setok/error.h"

/* Open addressing with linear probing, sized up front for a known number of
 * names so it never grows. Keys are borrowed, not copied. */
typedef struct setok_io_names {
    size_t mask;            /* capacity - 1; capacity is a power of two */
    size_t count;
    const char **keys;      /* NULL marks an empty slot */
    size_t *values;
} setok_io_names;

/* Room for up to max_names names. False when out of memory. */
bool setok_io_names_init(setok_io_names *names, size_t max_names);
void setok_io_names_free(setok_io_names *names);
/* Adds key -> value. False when the key is already there (*existing gets its
 * value) or the table is full (*existing gets SIZE_MAX); nothing changes then. */
bool setok_io_names_add(setok_io_names *names, const char *key, size_t value, size_t *existing);
bool setok_io_names_find(const setok_io_names *names, const char *key, size_t *value);

/* A name from a file, fit for an error message: control bytes become '?',
 * and names longer than the buffer are cut with "...". Returns buf. */
const char *setok_io_printable(char *buf, size_t size, const char *name);

/* "[3, 4]" into buf; negative extents (wildcards) show as "*". Returns buf. */
const char *setok_io_format_shape(char *buf, size_t size, const int64_t *shape, int ndim);

/* Opens path read-only as a regular file (O_NONBLOCK, so a FIFO cannot hang
 * the open) and gets its size; kind names what was expected in the message
 * for a directory ("a JSON file"). On failure nothing stays open. */
setok_status setok_io_open_regular(const char *path, const char *kind, int *fd, uint64_t *size,
                                   setok_error *err);

/* "string", "number", "object", ... for "must be X, got Y" messages. */
const char *setok_io_json_type(const cJSON *item);

#endif
