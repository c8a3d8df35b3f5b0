/* io-util.c — helpers shared by the io loaders: the name hash table (FNV-1a,
 * linear probing, load factor at most 1/2), printable names and shapes for
 * messages, JSON type names. */
#include "io-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211u;
    }
    return (size_t)h;
}

bool setok_io_names_init(setok_io_names *names, size_t max_names)
{
    memset(names, 0, sizeof *names);
    size_t cap = 16;
    while (cap < 2 * max_names + 1) {
        if (cap > SIZE_MAX / 4)
            return false;
        cap *= 2;
    }
    names->keys = calloc(cap, sizeof *names->keys);
    names->values = calloc(cap, sizeof *names->values);
    if (!names->keys || !names->values) {
        setok_io_names_free(names);
        return false;
    }
    names->mask = cap - 1;
    return true;
}

void setok_io_names_free(setok_io_names *names)
{
    free(names->keys);
    free(names->values);
    memset(names, 0, sizeof *names);
}

static size_t probe(const setok_io_names *names, const char *key)
{
    size_t i = hash_name(key) & names->mask;
    while (names->keys[i] && strcmp(names->keys[i], key) != 0)
        i = (i + 1) & names->mask;
    return i;
}

bool setok_io_names_add(setok_io_names *names, const char *key, size_t value, size_t *existing)
{
    size_t i = probe(names, key);
    if (names->keys[i]) {
        if (existing)
            *existing = names->values[i];
        return false;
    }
    if (names->count + 1 > (names->mask + 1) / 2) {
        if (existing)
            *existing = SIZE_MAX;
        return false;
    }
    names->keys[i] = key;
    names->values[i] = value;
    names->count++;
    return true;
}

bool setok_io_names_find(const setok_io_names *names, const char *key, size_t *value)
{
    if (!names->keys)
        return false;
    size_t i = probe(names, key);
    if (!names->keys[i])
        return false;
    if (value)
        *value = names->values[i];
    return true;
}

const char *setok_io_printable(char *buf, size_t size, const char *name)
{
    if (size == 0)
        return buf;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (n + 1 >= size) {
            /* cut, and mark the cut, without splitting a UTF-8 sequence */
            size_t keep = size >= 4 ? size - 4 : 0;
            while (keep > 0 && ((unsigned char)buf[keep] & 0xC0) == 0x80)
                keep--;
            if (size >= 4)
                memcpy(buf + keep, "...", 3);
            n = size >= 4 ? keep + 3 : size - 1;
            break;
        }
        buf[n++] = (*p < 0x20 || *p == 0x7F) ? '?' : (char)*p;
    }
    buf[n] = '\0';
    return buf;
}

const char *setok_io_format_shape(char *buf, size_t size, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++) {
        if (shape[i] < 0)
            n += (size_t)snprintf(buf + n, size - n, "%s*", i ? ", " : "");
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

const char *setok_io_json_type(const cJSON *item)
{
    if (!item || cJSON_IsInvalid(item))
        return "nothing";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsObject(item))
        return "object";
    return "raw JSON";
}

setok_status setok_io_open_regular(const char *path, const char *kind, int *fd, uint64_t *size,
                                   setok_error *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    setok_status status = SETOK_OK;
    if (fstat(*fd, &sb) != 0)
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: cannot stat: %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: is a directory, not %s", path, kind);
    else if (!S_ISREG(sb.st_mode))
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: not a regular file", path);
    if (status != SETOK_OK) {
        close(*fd);
        *fd = -1;
        return status;
    }
    *size = (uint64_t)sb.st_size;
    return SETOK_OK;
}
