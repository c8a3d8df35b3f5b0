/* error.c — status codes and error messages. */
#include "setok/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

setok_status setok_fail(setok_error *err, setok_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

setok_status setok_error_prefix(setok_error *err, const char *fmt, ...)
{
    if (!err)
        return SETOK_ERR_RUNTIME;
    char prefix[SETOK_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[SETOK_ERROR_MAX];
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = '\0';
    /* truncation of very long chains is acceptable: the start says the most */
    size_t n = strnlen(prefix, sizeof err->message - 3);
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t room = sizeof err->message - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
    return err->status;
}

void setok_error_clear(setok_error *err)
{
    if (err) {
        err->status = SETOK_OK;
        err->message[0] = '\0';
    }
}

const char *setok_status_name(setok_status status)
{
    switch (status) {
    case SETOK_OK: return "ok";
    case SETOK_ERR_INPUT: return "bad input";
    case SETOK_ERR_RUNTIME: return "runtime error";
    case SETOK_ERR_NOMEM: return "out of memory";
    case SETOK_ERR_DEVICE: return "device error";
    case SETOK_ERR_UNSUPPORTED: return "unsupported";
    case SETOK_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

int setok_status_exit_code(setok_status status)
{
    switch (status) {
    case SETOK_OK: return 0;
    case SETOK_ERR_INPUT: return 2;
    default: return 1;
    }
}
