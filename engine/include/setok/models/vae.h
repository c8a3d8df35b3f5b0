/* vae.h — the image autoencoder (DESIGN §6 "vae").
 *
 * Mirrors diffusers' AutoencoderKL: a folder with config.json
 * (_class_name "AutoencoderKL") and diffusion_pytorch_model.safetensors.
 * The encoder turns pixels in [-1, 1] into the latent distribution's mean
 * and log-variance (quant_conv applied); the decoder turns latents back into
 * pixels (post_quant_conv applied). Latents are unscaled here: a pipeline
 * multiplies by scaling_factor after encoding and divides before decoding.
 * The mid-block attention loads under diffusers' current names (to_q, to_k,
 * to_v, to_out.0) or the old ones (query, key, value, proj_attn).
 *
 * Tiled decoding mirrors AutoencoderKL.tiled_decode: latent tiles of
 * tile_size / 2^(levels-1) with a quarter overlap, decoded one by one and
 * blended linearly into their upper and left neighbours, so memory no
 * longer grows with the image. */
#ifndef SETOK_MODELS_VAE_H
#define SETOK_MODELS_VAE_H

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

#define SETOK_VAE_MAX_LEVELS 8

typedef struct setok_vae_config {
    int in_channels, out_channels, latent_channels;
    int num_levels;                                  /* len(block_out_channels) */
    int block_out_channels[SETOK_VAE_MAX_LEVELS];
    int layers_per_block, norm_num_groups;
    int sample_size;                                 /* the default tile size */
    float scaling_factor;                            /* default 0.18215 */
    bool use_quant_conv, use_post_quant_conv, mid_block_add_attention;
} setok_vae_config;

/* Reads DIR/config.json; errors name the file and the key. Unsupported
 * settings (act_fn other than silu, other block types) are errors. */
SETOK_API setok_status setok_vae_config_load(setok_vae_config *cfg, const char *dir, setok_error *err);

/* Stable Diffusion 1.5's AutoencoderKL. */
SETOK_API void setok_vae_config_sd15(setok_vae_config *cfg);

typedef struct setok_vae setok_vae;

/* A VAE of cfg's shape with deterministic pseudo-random weights made directly
 * on backend (benchmarks: nothing is read or stored). */
SETOK_API setok_status setok_vae_create_random(setok_vae **out, const setok_vae_config *cfg,
                                     setok_backend *backend, setok_dtype dtype, uint32_t seed,
                                     setok_error *err);

/* Called after each decoded tile (done of total); may be NULL. */
typedef void (*setok_vae_progress_fn)(void *user, int done, int total);

/* Loads config.json and the weights of DIR onto backend as dtype. */
SETOK_API setok_status setok_vae_load(setok_vae **out, const char *dir, setok_backend *backend,
                            setok_dtype dtype, setok_error *err);
SETOK_API void setok_vae_free(setok_vae *vae);

SETOK_API const setok_vae_config *setok_vae_get_config(const setok_vae *vae);
SETOK_API setok_dtype setok_vae_dtype(const setok_vae *vae);
/* config.json's scaling_factor (0.18215 when absent). */
SETOK_API float setok_vae_scaling_factor(const setok_vae *vae);
/* Pixels per latent along each axis: 2^(levels - 1). */
SETOK_API int setok_vae_downscale(const setok_vae *vae);

/* Arena bytes of one encode of [B, in_channels, H, W] (outputs included). */
SETOK_API size_t setok_vae_encode_arena_bytes(const setok_vae *vae, int64_t batch, int64_t height,
                                    int64_t width);
/* Arena bytes of one decode of [B, latent_channels, h, w] (output included),
 * tiled with tile_size as setok_vae_decode would. */
SETOK_API size_t setok_vae_decode_arena_bytes(const setok_vae *vae, int64_t batch, int64_t height,
                                    int64_t width, int tile_size);

/* pixels [B, in_channels, H, W] (H and W multiples of the downscale) ->
 * mean, logvar [B, latent_channels, H / s, W / s], carved from arena and
 * valid until the caller resets it below them. logvar is the raw moment:
 * diffusers' DiagonalGaussianDistribution also clamps it to [-30, 20].
 * cancel (may be NULL) is checked before every block. */
SETOK_API setok_status setok_vae_encode(setok_vae *vae, setok_arena *arena, setok_tensor *mean,
                              setok_tensor *logvar, const setok_tensor *pixels,
                              const atomic_bool *cancel, setok_error *err);

/* latents [B, latent_channels, h, w] -> pixels [B, out_channels, h * s, w * s]
 * from arena. tile_size 0 decodes in one piece; > 0 decodes in tiles of
 * tile_size pixels (diffusers' tile_sample_min_size, e.g. sample_size) when
 * h or w exceeds tile_size / s, as AutoencoderKL with enable_tiling(). */
SETOK_API setok_status setok_vae_decode(setok_vae *vae, setok_arena *arena, setok_tensor *pixels,
                              const setok_tensor *latents, int tile_size,
                              setok_vae_progress_fn progress, void *user,
                              const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
