/* llama.h — the language model: LLaMA decoders with a KV cache (DESIGN §6 "llm").
 *
 * Mirrors transformers' LlamaForCausalLM (modeling_llama.py). A model loads
 * from a folder whose config.json is a LlamaConfig, or a LLaVA config with
 * the decoder under "text_config". Weights are "model.*" + "lm_head.weight",
 * or LLaVA's "language_model.model.*" / "model.language_model.*" spellings;
 * lm_head is the embedding table when tie_word_embeddings is set.
 *
 * Rotary scaling: rope_type default, linear, llama3 and dynamic, read from
 * rope_parameters (transformers >= 5) or rope_scaling + rope_theta (older);
 * inv_freq is computed at load as transformers' rope init functions do. For
 * dynamic, each forward whose last position + 1 (seq_len) exceeds the longest
 * seen so far recomputes it with theta * (factor * seq_len / max_pos -
 * (factor - 1))^(D / (D - 2)), and a forward back under max_pos restores the
 * original, as transformers' dynamic_rope_update does (keys already in the
 * cache keep the rotation they were stored with, as there).
 *
 * A setok_llama holds the weights only; a setok_llama_cache is one sequence
 * (K and V of every layer as [Hkv, max_ctx, head_dim], and the rope state),
 * so one loaded model serves any number of conversations. Each forward
 * appends its T tokens to the cache at positions length .. length+T-1 and
 * attends causally to everything cached; a decode step is a forward of one
 * token. Nothing is allocated per token: activations come from the caller's
 * arena (setok_llama_arena_bytes). */
#ifndef SETOK_MODELS_LLAMA_H
#define SETOK_MODELS_LLAMA_H

#include "../export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum setok_llama_rope_type {
    SETOK_LLAMA_ROPE_DEFAULT = 0,
    SETOK_LLAMA_ROPE_LINEAR,  /* inv_freq / factor */
    SETOK_LLAMA_ROPE_LLAMA3,  /* Llama 3.1 wavelength-dependent smoothing */
    SETOK_LLAMA_ROPE_DYNAMIC, /* NTK-aware: theta grows once the sequence passes
                                 max_position_embeddings */
} setok_llama_rope_type;

typedef struct setok_llama_config {
    int hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int vocab_size, max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    setok_llama_rope_type rope_type;
    double rope_factor, low_freq_factor, high_freq_factor; /* scaled types only */
    int original_max_position_embeddings;                   /* llama3 */
    bool tie_word_embeddings, attention_bias, mlp_bias;
} setok_llama_config;

/* Reads DIR/config.json (LlamaConfig defaults for missing keys); errors
 * name the file and the key. */
SETOK_API setok_status setok_llama_config_load(setok_llama_config *cfg, const char *dir, setok_error *err);

typedef struct setok_llama setok_llama;

/* Loads config.json and the weights of DIR onto backend, with the PEFT LoRA
 * adapter in adapter_dir (lora.h; NULL: none) merged into the weights it
 * targets. Activations and norms are dtype (f32 on the CPU); the linear
 * layers' weights and the embedding table are matrix (f32, f16, bf16, or q8 /
 * q4 on the CPU, where the table stays f16), used in place from the file when
 * it holds them so. */
SETOK_API setok_status setok_llama_load(setok_llama **out, const char *dir, const char *adapter_dir,
                                        setok_backend *backend, setok_dtype dtype,
                                        setok_dtype matrix, setok_error *err);
/* A model of shape cfg (head_dim and num_kv_heads set; rope and the other
 * fields as in setok_llama_config) with deterministic pseudo-random weights
 * from seed, generated in memory as setok_llama_load would place them: for
 * benchmarks and tests. Nothing is read or written. */
SETOK_API setok_status setok_llama_create_random(setok_llama **out, const setok_llama_config *cfg,
                                                 setok_backend *backend, setok_dtype dtype,
                                                 setok_dtype matrix, uint32_t seed,
                                                 setok_error *err);
/* Bytes the weights take on the backend as placed (their dtypes). */
SETOK_API size_t setok_llama_weight_bytes(const setok_llama_config *cfg, setok_dtype dtype,
                                          setok_dtype matrix);
SETOK_API void setok_llama_free(setok_llama *m);

SETOK_API const setok_llama_config *setok_llama_get_config(const setok_llama *m);
SETOK_API setok_dtype setok_llama_dtype(const setok_llama *m);

typedef struct setok_llama_cache setok_llama_cache;

/* The dtype of the cache of a model placed so: f16 on the CPU when the weight
 * matrices are 16-bit or quantized (half the memory of f32; its rounding is
 * below the weights'), else the model's dtype. */
SETOK_API setok_dtype setok_llama_kv_dtype(const setok_backend *backend, setok_dtype dtype,
                                           setok_dtype matrix);

/* An empty cache of max_ctx positions for m, on m's backend, in
 * setok_llama_kv_dtype. It keeps a pointer to m, which must outlive it. */
SETOK_API setok_status setok_llama_cache_new(setok_llama_cache **out, const setok_llama *m, int64_t max_ctx,
                                   setok_error *err);
SETOK_API void setok_llama_cache_free(setok_llama_cache *c);
/* Empties the cache (keeps its memory). */
SETOK_API void setok_llama_cache_reset(setok_llama_cache *c);
/* Positions cached so far: the position of the next token. */
SETOK_API int64_t setok_llama_cache_length(const setok_llama_cache *c);
SETOK_API int64_t setok_llama_cache_capacity(const setok_llama_cache *c);
/* Bytes of K and V a cache of max_ctx positions holds. */
SETOK_API size_t setok_llama_cache_bytes(const setok_llama *m, int64_t max_ctx);

/* Arena bytes one forward of up to T tokens needs, logits included. */
SETOK_API size_t setok_llama_arena_bytes(const setok_llama *m, int64_t T);

/* ids I32 [T] (on the model's backend) -> embeds [T, hidden] (caller's
 * tensor, model dtype): the embed_tokens rows, for splicing in other tokens. */
SETOK_API setok_status setok_llama_embed(setok_llama *m, setok_tensor *embeds, const setok_tensor *ids,
                               setok_error *err);

/* embeds [T, hidden] (model dtype, on the model's backend) -> logits
 * [T, vocab], or [1, vocab] for the last position only when last_only.
 * Appends T positions to the cache; logits is carved from arena and stays
 * valid until the caller resets it below it. cancel (may be NULL) is
 * checked before every layer. On error the cache length is unchanged. */
SETOK_API setok_status setok_llama_forward_embeds(setok_llama *m, setok_llama_cache *cache,
                                        setok_arena *arena, setok_tensor *logits,
                                        const setok_tensor *embeds, bool last_only,
                                        const atomic_bool *cancel, setok_error *err);
/* The same, returning LlamaModel's last_hidden_state instead of logits:
 * hidden [T, hidden] (the final RMSNorm's output, model dtype). */
SETOK_API setok_status setok_llama_forward_hidden(setok_llama *m, setok_llama_cache *cache,
                                        setok_arena *arena, setok_tensor *hidden,
                                        const setok_tensor *embeds, const atomic_bool *cancel,
                                        setok_error *err);
/* The same from token ids I32 [T]; T = 1 is a decode step. */
SETOK_API setok_status setok_llama_forward_ids(setok_llama *m, setok_llama_cache *cache,
                                     setok_arena *arena, setok_tensor *logits,
                                     const setok_tensor *ids, bool last_only,
                                     const atomic_bool *cancel, setok_error *err);

/* Test and CLI hook, for callers without the engine's structs (ctypes):
 * loads DIR (plus adapter_dir when not NULL) on the CPU in f32, runs one
 * forward of ids[0..T) from an empty cache and writes logits [T, vocab] to
 * logits, which holds capacity floats. */
SETOK_API setok_status setok_llama_logits_f32(const char *dir, const char *adapter_dir, const int32_t *ids,
                                    int64_t T, float *logits, size_t capacity, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
