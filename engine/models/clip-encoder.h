/* clip-encoder.h — private to engine/models: the transformer encoder layer of
 * CLIP and SigLIP, shared by the vision tower (vit.c) and the CLIP text
 * encoder (clip-text.c). Mirrors transformers' CLIPEncoderLayer /
 * SiglipEncoderLayer: x = r + mlp(layer_norm2(r)), r = x + attn(layer_norm1(x)),
 * attention with q, k and v fused into one [3C, C] projection at load. */
#ifndef SETOK_MODELS_CLIP_ENCODER_H
#define SETOK_MODELS_CLIP_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/error.h"
#include "setok/ops.h"
#include "setok/tensor.h"
#include "io/loader.h"
#include "setok/weights.h"

typedef struct clip_layer {
    setok_tensor ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b;
    setok_tensor ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} clip_layer;

/* B sequences of T tokens, width C, MLP width I, NH heads. */
typedef struct clip_dims {
    int64_t B, T, C, I, NH;
} clip_dims;

void clip_layer_free(clip_layer *l);

/* Loads "<prefix>.layer_norm1.weight", "<prefix>.self_attn.q_proj.weight", ...
 * (prefix e.g. "text_model.encoder.layers.3") through ld (files or random). */
setok_status clip_layer_load(clip_layer *l, const setok_loader *ld, const char *prefix, int64_t C,
                             int64_t I, setok_error *err);

/* Arena bytes clip_layer_forward needs beyond x and tmp. */
size_t clip_layer_arena_bytes(const clip_dims *d, size_t elem_size);

/* Arena bytes of one tensor of numel elements, alignment padding included. */
size_t clip_arena_slot(int64_t numel, size_t elem_size);

// x: [B, T, C] -> x = r + mlp(layer_norm2(r)), r = x + attn(layer_norm1(x)); tmp: [B, T, C]
// scratch. causal: token t attends to tokens <= t only (the text encoder).
setok_status clip_layer_forward(setok_backend *be, setok_arena *arena, setok_tensor *x,
                                setok_tensor *tmp, const clip_layer *l, const clip_dims *d,
                                setok_op act, float eps, bool causal, setok_error *err);

#endif
