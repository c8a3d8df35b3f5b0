/* util.c — paths, files, growing buffers and the clock (util.h, clock.h). */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "setok/clock.h"

double setok_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

bool setok_path_join(char *out, size_t size, const char *dir, const char *name)
{
    size_t d = strlen(dir);
    int n = snprintf(out, size, "%s%s%s", dir, d && dir[d - 1] == '/' ? "" : "/", name);
    return n >= 0 && (size_t)n < size;
}

char *setok_path_join_alloc(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        setok_path_join(p, n, dir, name);
    return p;
}

bool setok_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool setok_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

bool setok_has_file(const char *dir, const char *name)
{
    char *p = setok_path_join_alloc(dir, name);
    bool ok = p && setok_is_file(p);
    free(p);
    return ok;
}

setok_status setok_grow(void **buf, size_t *cap, size_t bytes, const char *what,
                        setok_error *err)
{
    if (*buf && *cap >= bytes)
        return SETOK_OK;
    void *p = realloc(*buf, bytes ? bytes : 1);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory (%zu bytes)", what, bytes);
    *buf = p;
    *cap = bytes;
    return SETOK_OK;
}
