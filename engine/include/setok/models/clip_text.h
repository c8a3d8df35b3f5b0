/* clip_text.h — the CLIP text encoder (DESIGN §6 "clip_text"): Stable
 * Diffusion 1.x's prompt conditioning.
 *
 * Mirrors transformers' CLIPTextModel (modeling_clip.py): token + position
 * embeddings, pre-LN encoder layers with a causal mask, final_layer_norm.
 * config.json is a CLIPTextConfig (architectures ["CLIPTextModel"] or
 * ["CLIPTextModelWithProjection"], model_type "clip_text_model") or a
 * CLIPModel config with the encoder under "text_config". Weights are named
 * "text_model.*" or bare (transformers >= 5); a text_projection is ignored.
 * The prompt tokenizer is the folder's tokenizer.json (CLIP BPE, loaded by
 * setok/tokenizer.h) or, for diffusers folders, ../tokenizer/tokenizer.json. */
#ifndef SETOK_MODELS_CLIP_TEXT_H
#define SETOK_MODELS_CLIP_TEXT_H

#include "../export.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../ops.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_clip_text_config {
    int vocab_size, hidden_size, intermediate_size, num_layers, num_heads;
    int max_position_embeddings;
    float layer_norm_eps;
    setok_op act;       /* SETOK_OP_QUICK_GELU (CLIP's), SETOK_OP_GELU or SETOK_OP_GELU_TANH */
    int eos_token_id;   /* 2 (old configs): the pooled token is argmax(input_ids), as HF does */
} setok_clip_text_config;

typedef struct setok_clip_text setok_clip_text;

/* Loads DIR/config.json and DIR's weights onto backend: activations and small
 * tensors as dtype, the encoder layers' linear weights as matrix (vit.h). */
SETOK_API setok_status setok_clip_text_load(setok_clip_text **out, const char *dir,
                                            setok_backend *backend, setok_dtype dtype,
                                            setok_dtype matrix, setok_error *err);
SETOK_API void setok_clip_text_free(setok_clip_text *m);

SETOK_API const setok_clip_text_config *setok_clip_text_get_config(const setok_clip_text *m);
SETOK_API setok_dtype setok_clip_text_dtype(const setok_clip_text *m);
/* Arena bytes one forward of batch sequences of length tokens needs (outputs included). */
SETOK_API size_t setok_clip_text_arena_bytes(const setok_clip_text *m, int64_t batch, int64_t tokens);

/* input_ids [B, T] (I32, T <= max_position_embeddings, on the model's
 * backend) -> last_hidden_state [B, T, hidden] (after final_layer_norm) and
 * pooler_output [B, hidden] (the EOS position's row); either may be NULL.
 * Both are carved from arena. hidden_layer: 0 for last_hidden_state as HF
 * returns it; k > 0 returns the output of layer L - k instead, without the
 * final layer norm (HF hidden_states[-1 - k], "clip skip"). cancel (may be
 * NULL) is checked before every layer. */
SETOK_API setok_status setok_clip_text_forward(setok_clip_text *m, setok_arena *arena,
                                     setok_tensor *last_hidden_state, setok_tensor *pooler_output,
                                     const setok_tensor *input_ids, int hidden_layer,
                                     const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
