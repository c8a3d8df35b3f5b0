/* error.h — status codes and error messages for libsetok.
 *
 * Errors are values: every fallible call returns a setok_status and, when
 * given a setok_error, fills it with a message that names the file, the
 * tensor or the key and the rule that was broken. Nothing in the engine
 * aborts or exits on input that came from a file or a user. */
#ifndef SETOK_ERROR_H
#define SETOK_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum setok_status {
    SETOK_OK = 0,
    SETOK_ERR_INPUT,       /* bad input: malformed file, wrong shape, bad argument */
    SETOK_ERR_RUNTIME,     /* the input was fine but the work failed (I/O, internal) */
    SETOK_ERR_NOMEM,       /* host or device allocation failed */
    SETOK_ERR_DEVICE,      /* CUDA / cuBLAS reported an error */
    SETOK_ERR_UNSUPPORTED, /* not compiled in, or an op/dtype a backend cannot run */
    SETOK_ERR_CANCELLED,   /* the caller's cancel flag was set */
} setok_status;

#define SETOK_ERROR_MAX 1024

typedef struct setok_error {
    setok_status status;
    char message[SETOK_ERROR_MAX];
} setok_error;

#if defined(__GNUC__)
#define SETOK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SETOK_PRINTF(f, a)
#endif

/* Sets err (which may be NULL) to status and a printf-style message;
 * returns status so callers can write `return setok_fail(err, ...)`. */
SETOK_API setok_status setok_fail(setok_error *err, setok_status status, const char *fmt, ...)
    SETOK_PRINTF(3, 4);

/* Prepends "context: " to the message already in err; returns err->status
 * (SETOK_ERR_RUNTIME when err is NULL). */
SETOK_API setok_status setok_error_prefix(setok_error *err, const char *fmt, ...) SETOK_PRINTF(2, 3);

SETOK_API void setok_error_clear(setok_error *err);

SETOK_API const char *setok_status_name(setok_status status);

/* The CLI's exit code for a status: 0 ok, 2 bad input or usage, 1 otherwise. */
SETOK_API int setok_status_exit_code(setok_status status);

#ifdef __cplusplus
}
#endif
#endif
