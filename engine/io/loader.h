/* loader.h — how every model component loads its tensors (engine-private; the
 * models use it, nothing outside the engine sees it).
 *
 * A component describes each layer's weights as one table of setok_weight rows
 * (destination, name after the layer's prefix, shape, flags) and loads the
 * table in one call. The same table makes deterministic pseudo-random weights
 * when the loader has no file (benchmarks, real-size shapes without
 * checkpoints). Names may list aliases ("a|b": the first that exists), because
 * real checkpoints spell the same weight differently; the component's own
 * prefix among several spellings is found once (setok_loader_find_prefix).
 * Errors name the folder, the tensor and the shape. */
#ifndef SETOK_IO_LOADER_H
#define SETOK_IO_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "setok/backend.h"
#include "setok/error.h"
#include "setok/lora.h"
#include "setok/tensor.h"
#include "setok/weights.h"

typedef struct setok_loader {
    const setok_weights *w;   /* the files; NULL with random_state */
    uint32_t *random_state;   /* set: pseudo-random weights of the requested shapes */
    setok_lora *lora;         /* merged into the weights it targets (may be NULL) */
    setok_backend *backend;
    setok_dtype dtype;        /* activations, and every tensor not marked below */
    /* SETOK_WEIGHT_MATRIX rows (a linear layer's weight): f32, f16, bf16, q8 or q4
     * (a matrix whose rows are not a multiple of the 32-value block stays f16);
     * SETOK_WEIGHT_TABLE rows (an embedding table): this dtype too, f16 when it is
     * quantized. Components that mark rows set it (the same as dtype on a GPU). */
    setok_dtype matrix;
    /* On a host backend, a file tensor already in the dtype it loads as is used in
     * place from the mapping (no copy) when set: the component then keeps its
     * setok_weights open while it lives. */
    bool in_place;
    const char *prefix;       /* before every name ("model." ...); may be NULL */
} setok_loader;

enum {
    SETOK_WEIGHT_OPTIONAL = 1u << 0, /* absent: dst stays empty (data NULL) */
    SETOK_WEIGHT_LINEAR = 1u << 1,   /* [n, k], also accepted as a 1x1 conv [n, k, 1, 1] */
    SETOK_WEIGHT_SKIP = 1u << 2,     /* not wanted by this configuration: not loaded */
    SETOK_WEIGHT_MATRIX = 1u << 3,   /* a linear layer's [n, k] weight: in ld->matrix */
    SETOK_WEIGHT_TABLE = 1u << 4,    /* an embedding table [v, d]: in ld->matrix, never quantized */
};

typedef struct setok_weight {
    setok_tensor *dst;
    const char *name;       /* after the layer's prefix; aliases separated by '|' */
    int ndim;
    int64_t shape[4];       /* -1 matches any extent */
    unsigned flags;
} setok_weight;

/* The folder for messages ("random weights" without files). */
const char *setok_loader_path(const setok_loader *ld);

/* Loads every row of table[n]; each name is ld->prefix + prefix + "." + name
 * (no dot after an empty prefix or one that ends in '.'). On failure the
 * tensors loaded so far stay with their owner, who frees them. */
setok_status setok_loader_load(const setok_loader *ld, const char *prefix,
                               const setok_weight *table, size_t n, setok_error *err);
/* One row. */
setok_status setok_loader_one(const setok_loader *ld, setok_tensor *dst, const char *prefix,
                              const char *name, int ndim, const int64_t *shape, unsigned flags,
                              setok_error *err);
/* The first of prefixes[n] under which probe exists with that shape: copied to
 * buf (size bytes) for ld->prefix. Random weights take prefixes[0]. */
setok_status setok_loader_find_prefix(const setok_loader *ld, const char *const *prefixes,
                                      size_t n, const char *probe, int ndim,
                                      const int64_t *shape, char *buf, size_t size,
                                      setok_error *err);

/* Called for every matrix the calling thread loads block-quantized: the file's
 * tensor name and the quantized tensor (setok_model_quantize writes them out). */
typedef void (*setok_loader_recorder)(void *user, const char *name, const setok_tensor *t);
/* Sets (fn NULL: clears) the calling thread's recorder. */
void setok_loader_record(setok_loader_recorder fn, void *user);

/* The dtype a row with these flags loads as. */
setok_dtype setok_loader_dtype(const setok_loader *ld, unsigned flags);

/* Frees each of tensors[n] (any may be empty). */
void setok_tensors_free(setok_tensor *const *tensors, size_t n);

#endif
