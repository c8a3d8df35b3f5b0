/* weights.h — the tensors of one model component, from one or many files.
 *
 * A component folder holds model.safetensors, diffusion_pytorch_model.safetensors
 * or adapter_model.safetensors, or a sharded *.safetensors.index.json whose
 * weight_map names the shard of every tensor (each shard is validated; a
 * tensor the map names must be in its shard). A single .safetensors path
 * also works. Lookups accept alias lists, because real checkpoints spell the
 * same weight differently (both LLaVA prefixes, old and new VAE names). */
#ifndef SETOK_WEIGHTS_H
#define SETOK_WEIGHTS_H

#include "export.h"

#include <stddef.h>

#include "backend.h"
#include "error.h"
#include "safetensors.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_weights setok_weights;

SETOK_API setok_status setok_weights_open(setok_weights **out, const char *path, setok_error *err);
SETOK_API void setok_weights_close(setok_weights *w);

/* The folder or file it was opened from. */
SETOK_API const char *setok_weights_path(const setok_weights *w);
SETOK_API size_t setok_weights_count(const setok_weights *w);
SETOK_API const setok_st_tensor *setok_weights_at(const setok_weights *w, size_t i);
SETOK_API size_t setok_weights_file_count(const setok_weights *w);
SETOK_API const setok_safetensors *setok_weights_file(const setok_weights *w, size_t i);

/* NULL when absent. */
SETOK_API const setok_st_tensor *setok_weights_find(const setok_weights *w, const char *name);
/* The first of names[0..count) that exists, or NULL. */
SETOK_API const setok_st_tensor *setok_weights_find_any(const setok_weights *w, const char *const *names,
                                              size_t count);

/* Finds one of the aliases and checks its shape (ndim entries; -1 matches
 * any extent). Errors: "DIR: tensor 'a.weight' (or 'b.weight') not found",
 * "FILE: tensor 'a.weight' has shape [3, 4], expected [4, 4]". */
SETOK_API setok_status setok_weights_require(const setok_weights *w, const char *const *names, size_t count,
                                   int ndim, const int64_t *shape, const setok_st_tensor **out,
                                   setok_error *err);

/* Converts a file tensor to dtype into a new allocation on backend. */
SETOK_API setok_status setok_weights_load(setok_tensor *out, const setok_st_tensor *t,
                                setok_backend *backend, setok_dtype dtype, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
