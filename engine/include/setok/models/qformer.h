/* qformer.h — the mapper: a BLIP-2 Q-Former (DESIGN §6 "mapper").
 *
 * Mirrors transformers' Blip2QFormerModel (modeling_blip_2.py) run on query
 * embeddings alone (no text input): LayerNorm of the queries, then
 * num_hidden_layers BERT-style post-LN layers of
 *   self-attention -> dense -> LayerNorm(x + residual),
 *   cross-attention to encoder_hidden_states (layers whose index is a
 *   multiple of cross_attention_frequency; keys and values project from
 *   encoder_hidden_size) -> dense -> LayerNorm(x + residual),
 *   intermediate_query (hidden_act) -> output_query dense -> LayerNorm(x + residual).
 * Dropout is the identity at inference.
 *
 * A model loads from a folder whose config.json is a Blip2QFormerConfig
 * (architectures ["Blip2QFormerModel"] or model_type "blip_2_qformer";
 * transformers' defaults fill missing keys). Weights carry the PyTorch names
 * ("layernorm.*", "encoder.layer.N.attention.attention.query.weight", ...),
 * bare or under "qformer." as in a Blip2Model checkpoint; the text branch
 * (use_qformer_text_input's intermediate / output) is not used.
 *
 * SETOKIM mapper convention: the learnable queries are the tensor
 * "query_tokens" [1, Q, hidden] stored next to the Q-Former's weights (as
 * Blip2Model stores them). When the checkpoint holds it, it is the default
 * query_embeds, broadcast over the batch; without it, callers pass
 * query_embeds themselves. */
#ifndef SETOK_MODELS_QFORMER_H
#define SETOK_MODELS_QFORMER_H

#include "../export.h"

#include <stdatomic.h>
#include <stdbool.h>
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

typedef struct setok_qformer_config {
    int hidden_size, intermediate_size, num_layers, num_heads;
    int encoder_hidden_size, cross_attention_frequency;
    float layer_norm_eps;
    setok_op act; /* SETOK_OP_GELU, SETOK_OP_GELU_TANH, SETOK_OP_QUICK_GELU or SETOK_OP_SILU */
} setok_qformer_config;

/* transformers' Blip2QFormerConfig defaults (768 hidden, 12 layers, 12 heads,
 * 3072 intermediate, gelu, eps 1e-12, cross-attention every 2 layers, 1408
 * encoder_hidden_size). */
SETOK_API void setok_qformer_config_defaults(setok_qformer_config *cfg);
/* Reads DIR/config.json; errors name the file and the key. */
SETOK_API setok_status setok_qformer_config_load(setok_qformer_config *cfg, const char *dir,
                                       setok_error *err);

typedef struct setok_qformer setok_qformer;

/* Loads config.json and the weights of DIR (query_tokens when present) onto
 * backend: activations and small tensors as dtype, the layers' linear weights
 * as matrix (vit.h). */
SETOK_API setok_status setok_qformer_load(setok_qformer **out, const char *dir,
                                          setok_backend *backend, setok_dtype dtype,
                                          setok_dtype matrix, setok_error *err);
SETOK_API void setok_qformer_free(setok_qformer *m);

SETOK_API const setok_qformer_config *setok_qformer_get_config(const setok_qformer *m);
SETOK_API setok_dtype setok_qformer_dtype(const setok_qformer *m);
/* Q of the checkpoint's query_tokens [1, Q, hidden]; 0 when it has none. */
SETOK_API int64_t setok_qformer_num_query_tokens(const setok_qformer *m);
/* Whether layer i has cross-attention (i % cross_attention_frequency == 0). */
SETOK_API bool setok_qformer_layer_has_cross_attention(const setok_qformer *m, int layer);

/* Arena bytes one forward of B batches of Q queries over S encoder tokens
 * needs, the output included. */
SETOK_API size_t setok_qformer_arena_bytes(const setok_qformer *m, int64_t batch, int64_t queries,
                                 int64_t encoder_tokens);

/* query_embeds [B, Q, hidden] (NULL: the checkpoint's query_tokens for every
 * batch), encoder_hidden_states [B, S, encoder_hidden_size] and
 * encoder_attention_mask [B, S] (NULL: every token; else 1 keeps a token and
 * 0 hides it, as transformers' mask) -> last_hidden_state [B, Q, hidden],
 * carved from arena (valid until the caller resets it below it). Inputs are
 * contiguous, of the model's dtype and on its backend. cancel (may be NULL)
 * is checked before every layer. */
SETOK_API setok_status setok_qformer_forward(setok_qformer *m, setok_arena *arena,
                                   setok_tensor *last_hidden_state,
                                   const setok_tensor *query_embeds,
                                   const setok_tensor *encoder_hidden_states,
                                   const setok_tensor *encoder_attention_mask,
                                   const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
