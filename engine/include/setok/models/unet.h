/* unet.h — the denoising U-Net (DESIGN §6 "unet").
 *
 * Mirrors diffusers' UNet2DConditionModel with the Stable Diffusion 1.x /
 * 2.x block set: CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn,
 * UpBlock2D and CrossAttnUpBlock2D; ResNet blocks with a time embedding;
 * Transformer2DModel blocks (self-attention, cross-attention, GEGLU) with
 * conv or linear proj_in / proj_out; the positional timestep embedding
 * (flip_sin_to_cos, freq_shift) through TimestepEmbedding. in_channels 4,
 * or 8 for InstructPix2Pix (noisy latents concatenated with the image's).
 *
 * A model loads from a folder with config.json (_class_name
 * "UNet2DConditionModel") and diffusion_pytorch_model.safetensors. Config
 * keys this engine does not implement (class or addition embeddings,
 * dual cross-attention, other block or time-embedding types, ...) are
 * errors that name the key. */
#ifndef SETOK_MODELS_UNET_H
#define SETOK_MODELS_UNET_H

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

#define SETOK_UNET_MAX_BLOCKS 8

typedef struct setok_unet_config {
    int in_channels, out_channels;
    int num_blocks;                                  /* len(block_out_channels) */
    int block_out_channels[SETOK_UNET_MAX_BLOCKS];
    bool down_cross_attention[SETOK_UNET_MAX_BLOCKS]; /* CrossAttnDownBlock2D vs DownBlock2D */
    bool up_cross_attention[SETOK_UNET_MAX_BLOCKS];   /* CrossAttnUpBlock2D vs UpBlock2D */
    bool mid_cross_attention;                        /* UNetMidBlock2DCrossAttn vs none */
    int layers_per_block[SETOK_UNET_MAX_BLOCKS];
    int transformer_layers[SETOK_UNET_MAX_BLOCKS];
    int attention_heads[SETOK_UNET_MAX_BLOCKS];      /* diffusers' attention_head_dim */
    int cross_attention_dim[SETOK_UNET_MAX_BLOCKS];
    int norm_num_groups;
    float norm_eps;
    bool flip_sin_to_cos, center_input_sample, use_linear_projection;
    int freq_shift;
    int downsample_padding;
    float mid_block_scale_factor, resnet_out_scale_factor;
    int time_embed_dim;                              /* 4 * block_out_channels[0] by default */
} setok_unet_config;

/* Reads DIR/config.json; errors name the file and the key. */
SETOK_API setok_status setok_unet_config_load(setok_unet_config *cfg, const char *dir, setok_error *err);

/* Stable Diffusion 1.5's U-Net (diffusers' defaults, cross_attention_dim 768). */
SETOK_API void setok_unet_config_sd15(setok_unet_config *cfg);

typedef struct setok_unet setok_unet;

/* A U-Net of cfg's shape with deterministic pseudo-random weights made
 * directly on backend, placed as setok_unet_load would (benchmarks: nothing is
 * read or stored). */
SETOK_API setok_status setok_unet_create_random(setok_unet **out, const setok_unet_config *cfg,
                                                setok_backend *backend, setok_dtype dtype,
                                                setok_dtype matrix, uint32_t seed,
                                                setok_error *err);

/* Loads config.json and the weights of DIR onto backend: activations,
 * convolutions and norms as dtype, the transformer blocks' linear weights
 * (attention, feed-forward, projections) as matrix (vit.h). */
SETOK_API setok_status setok_unet_load(setok_unet **out, const char *dir, setok_backend *backend,
                                       setok_dtype dtype, setok_dtype matrix, setok_error *err);
SETOK_API void setok_unet_free(setok_unet *unet);

SETOK_API const setok_unet_config *setok_unet_get_config(const setok_unet *unet);
SETOK_API setok_dtype setok_unet_dtype(const setok_unet *unet);
/* Height and width of a sample must be multiples of this: 2^(blocks - 1). */
SETOK_API int setok_unet_size_multiple(const setok_unet *unet);

/* Arena bytes one forward of a [batch, in_channels, height, width] sample
 * with context_len conditioning tokens needs (output included). */
SETOK_API size_t setok_unet_arena_bytes(const setok_unet *unet, int64_t batch, int64_t height,
                              int64_t width, int64_t context_len);

/* sample [B, in_channels, h, w], timesteps[B] (host floats, one per batch
 * item), encoder_hidden_states [B, S, cross_attention_dim] (the model's dtype,
 * on its backend) -> noise [B, out_channels, h, w] (the model's prediction:
 * epsilon or v, per the scheduler's config), carved from arena and valid
 * until the caller resets it below. cancel (may be NULL) is checked before
 * every block. */
SETOK_API setok_status setok_unet_forward(setok_unet *unet, setok_arena *arena, setok_tensor *noise,
                                const setok_tensor *sample, const float *timesteps,
                                const setok_tensor *encoder_hidden_states,
                                const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
