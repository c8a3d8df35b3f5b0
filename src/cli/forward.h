/* forward.h — what `setok forward`'s component runners share. Each
 * component family has its runner in its own file (forward-<name>.c), listed
 * by architecture name in cmd-forward.c's table. */
#ifndef SETOK_CLI_FORWARD_H
#define SETOK_CLI_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "setok/backend.h"
#include "setok/error.h"
#include "setok/safetensors.h"
#include "setok/tensor.h"

/* params.feature_layer when --set does not give one. */
#define FROM_CONFIG INT32_MIN

typedef struct params
{
  float alpha, scale, bias, eps, theta, freq_scale;
  int trans_a, trans_b, groups, causal, rot_dims, stride, pad, factor, align_corners, k;
  int feature_layer, drop_cls; /* components; FROM_CONFIG and -1: the folder's default */
  int tile;                    /* vae: tiled decode's tile size in pixels, 0 = whole */
  int multimask;               /* SamModel multimask_output (default 1) */
  int64_t size_h, size_w;
  int perm[SETOK_MAX_DIMS], has_perm;
  setok_dtype out_dtype;
  int has_out_dtype;
} params;

typedef struct component_args
{
  const params *p;
  const char *dir, *in, *out, *device;
  setok_dtype dtype;
} component_args;

typedef int (*component_fn) (const component_args *a);

#define FORWARD_MAX_OUTPUTS 16

/* Loads a file tensor onto the backend: floats as dtype, indices as I32
 * (range-checked by setok_weights_load). */
setok_status forward_load_input (setok_tensor *out, const setok_st_tensor *t, bool index,
                                 setok_dtype dtype, setok_backend *be, setok_error *err);

/* Writes count (<= FORWARD_MAX_OUTPUTS) tensors to path as f32 (i32 stays
 * i32), downloading them from their backend. */
setok_status forward_write_outputs (const char *path, setok_tensor *const *outs,
                                    const char *const *names, int count, setok_error *err);

/* Component runners (forward-<name>.c). */
int forward_run_clip_text (const component_args *a);
int forward_run_qformer (const component_args *a);
int forward_run_sam (const component_args *a);
int forward_run_vae (const component_args *a);
int forward_run_unet (const component_args *a);

#endif
