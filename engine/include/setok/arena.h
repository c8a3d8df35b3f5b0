/* arena.h — per-job bump allocators for activations.
 *
 * One allocation from a backend up front; tensors are carved out of it with
 * 256-byte alignment and released all at once by resetting to a mark, so no
 * inner loop ever calls malloc or cudaMalloc. */
#ifndef SETOK_ARENA_H
#define SETOK_ARENA_H

#include "export.h"

#include <stddef.h>

#include "backend.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_arena {
    setok_backend *backend;
    unsigned char *base;
    size_t capacity;
    size_t used;
    size_t peak;
} setok_arena;

SETOK_API setok_status setok_arena_init(setok_arena *arena, setok_backend *backend, size_t capacity,
                              setok_error *err);
SETOK_API void setok_arena_destroy(setok_arena *arena);
/* SETOK_ERR_NOMEM with the sizes in the message when the arena is full. */
SETOK_API setok_status setok_arena_alloc(setok_arena *arena, size_t bytes, void **out, setok_error *err);
SETOK_API setok_status setok_arena_tensor(setok_arena *arena, setok_tensor *t, setok_dtype dtype, int ndim,
                                const int64_t *shape, setok_error *err);
static inline size_t setok_arena_mark(const setok_arena *arena) { return arena->used; }
SETOK_API void setok_arena_reset(setok_arena *arena, size_t mark);

#ifdef __cplusplus
}
#endif
#endif
