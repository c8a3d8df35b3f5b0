/* arena.c — per-job bump allocators on a backend. */
#include "setok/arena.h"

#include <stdint.h>
#include <string.h>

#define ARENA_ALIGN 256

setok_status setok_arena_init(setok_arena *arena, setok_backend *backend, size_t capacity,
                              setok_error *err)
{
    memset(arena, 0, sizeof *arena);
    void *base = NULL;
    setok_status st = setok_backend_alloc(backend, capacity ? capacity : ARENA_ALIGN, &base, err);
    if (st != SETOK_OK)
        return st;
    arena->backend = backend;
    arena->base = base;
    arena->capacity = capacity;
    return SETOK_OK;
}

void setok_arena_destroy(setok_arena *arena)
{
    if (arena->base)
        setok_backend_release(arena->backend, arena->base);
    memset(arena, 0, sizeof *arena);
}

setok_status setok_arena_alloc(setok_arena *arena, size_t bytes, void **out, setok_error *err)
{
    /* align the address itself: host bases are only 64-byte aligned */
    uintptr_t base = (uintptr_t)arena->base;
    uintptr_t aligned = (base + arena->used + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    size_t start = (size_t)(aligned - base);
    if (start > arena->capacity || bytes > arena->capacity - start)
        return setok_fail(err, SETOK_ERR_NOMEM,
                          "arena full: %zu bytes requested, %zu of %zu in use", bytes,
                          arena->used, arena->capacity);
    *out = arena->base + start;
    arena->used = start + bytes;
    if (arena->used > arena->peak)
        arena->peak = arena->used;
    return SETOK_OK;
}

setok_status setok_arena_tensor(setok_arena *arena, setok_tensor *t, setok_dtype dtype, int ndim,
                                const int64_t *shape, setok_error *err)
{
    setok_status st = setok_tensor_init(t, NULL, arena->backend, dtype, ndim, shape, err);
    if (st != SETOK_OK)
        return st;
    return setok_arena_alloc(arena, setok_tensor_nbytes(t), &t->data, err);
}

void setok_arena_reset(setok_arena *arena, size_t mark)
{
    if (mark <= arena->used)
        arena->used = mark;
}
