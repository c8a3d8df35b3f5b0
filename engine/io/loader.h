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
    setok_dtype dtype;
    const char *prefix;       /* before every name ("model." ...); may be NULL */
} setok_loader;

enum {
    SETOK_WEIGHT_OPTIONAL = 1u << 0, /* absent: dst stays empty (data NULL) */
    SETOK_WEIGHT_LINEAR = 1u << 1,   /* [n, k], also accepted as a 1x1 conv [n, k, 1, 1] */
    SETOK_WEIGHT_SKIP = 1u << 2,     /* not wanted by this configuration: not loaded */
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

/* Frees each of tensors[n] (any may be empty). */
void setok_tensors_free(setok_tensor *const *tensors, size_t n);

#endif
