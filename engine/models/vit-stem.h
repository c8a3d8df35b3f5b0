/* vit-stem.h — private to engine/models: the convolutional stem a CLIP vision
 * tower may have in place of its patch-sized convolution (vit.c calls it),
 * mirroring tools/setokim/stem.py's ConvStem with BatchNorm folded in:
 * n k x k convolutions of stride s (padding k / 2), each followed by the
 * activation, then a 1 x 1 projection to the hidden size; s^n == patch_size.
 *
 * config.json: "conv_stem": {"channels": [...], "kernel_size": k,
 * "stride": s, "hidden_act": "relu" | "gelu" | "silu"}; weights
 * "embeddings.conv_stem.convs.{i}.weight|bias", "embeddings.conv_stem.proj.weight|bias". */
#ifndef SETOK_MODELS_VIT_STEM_H
#define SETOK_MODELS_VIT_STEM_H

#include <stddef.h>
#include <stdint.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/config.h"
#include "setok/error.h"
#include "setok/models/vit.h"
#include "setok/tensor.h"
#include "setok/weights.h"

#include "io/loader.h"

typedef struct vit_stem {
    setok_tensor conv_w[SETOK_VIT_STEM_MAX_LAYERS]; /* [c_i, c_{i-1}, k, k] */
    setok_tensor conv_b[SETOK_VIT_STEM_MAX_LAYERS]; /* [c_i] */
    setok_tensor proj_w, proj_b;                    /* [C, c_last, 1, 1], [C] */
} vit_stem;

/* Reads the "<prefix>conv_stem" block into cfg when the config has one. */
setok_status vit_stem_config_parse(setok_vit_config *cfg, const setok_config *json,
                                   const char *prefix, setok_error *err);
/* The stem's rules (a CLIP tower, s^n == patch_size, positive channels). */
setok_status vit_stem_config_check(const setok_vit_config *c, const char *where, setok_error *err);

/* The name (after the checkpoint prefix) and shape of the stem's first
 * weight, by which vit.c finds the prefix. */
const char *vit_stem_anchor(const setok_vit_config *c, int64_t shape[4]);

/* The stem's weights through ld (files or random), under ld->prefix. */
setok_status vit_stem_load(vit_stem *s, const setok_vit_config *c, const setok_loader *ld,
                           setok_error *err);
void vit_stem_free(vit_stem *s, int layers);

/* Arena bytes vit_stem_forward needs beyond its output, for a [B, *, H, W] input. */
size_t vit_stem_arena_bytes(const setok_vit_config *c, int64_t B, int64_t H, int64_t W,
                            size_t elem_size);

// x: [B, Cin, H, W] -> y: [B, C, H / patch, W / patch]; H and W must be multiples of
// patch_size (each stride-2 layer then halves them exactly)
setok_status vit_stem_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                              const setok_tensor *x, const vit_stem *s, const setok_vit_config *c,
                              setok_error *err);

#endif
