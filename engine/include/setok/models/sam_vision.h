/* sam_vision.h — SAM's image encoder (DESIGN §6 "mask_decoder": the image
 * side of a SAM folder) and SAM's image processor.
 *
 * Mirrors transformers' SamVisionEncoder (ViT-B/L/H): a 16x16 patch
 * embedding, an absolute position embedding, transformer blocks whose
 * attention is windowed (window_size, the grid zero-padded to a multiple of
 * it) or global (the blocks listed in global_attn_indexes), with decomposed
 * relative positions (rel_pos_h / rel_pos_w, linearly interpolated when their
 * length is not 2 * size - 1, as transformers' get_rel_pos does), and the
 * neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) -> the image embedding
 * [output_channels, image_size / patch_size, ...] ([256, 64, 64] at 1024 px).
 *
 * A model loads from a folder whose config.json is a SamConfig (its
 * vision_config; HF defaults fill missing keys) or a SamVisionConfig; weights
 * carry SamModel's names ("vision_encoder.*"), or SamVisionEncoder's own
 * ("patch_embed.*", ...). The linear layers' matrices take the matrix dtype
 * (setok_model_options: --dtype / --weights).
 *
 * The processor mirrors SamImageProcessor (its PIL backend) and SamProcessor:
 * the longest side resized to size.longest_edge (the other to
 * int(side * scale + 0.5)), rescaled, normalized, padded with zeros at the
 * bottom and right to pad_size; point and box coordinates of the original
 * image are scaled to the resized frame; masks are post-processed back to the
 * image (upscaled to pad_size, the valid region cropped, resized to the
 * original size, bilinear, then > 0). */
#ifndef SETOK_MODELS_SAM_VISION_H
#define SETOK_MODELS_SAM_VISION_H

#include "../export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../image.h"
#include "../ops.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_SAM_VISION_MAX_LAYERS 256

typedef struct setok_sam_vision_config {
    int hidden_size, output_channels, num_layers, num_heads, num_channels;
    int image_size, patch_size, mlp_dim;
    int window_size;                             /* of the windowed blocks */
    bool global_attn[SETOK_SAM_VISION_MAX_LAYERS]; /* block i attends globally */
    bool qkv_bias, use_abs_pos, use_rel_pos;
    float layer_norm_eps;
    setok_op act;                                /* hidden_act: gelu */
} setok_sam_vision_config;

/* HF's SamVisionConfig defaults (ViT-B: 768 wide, 12 blocks, global 2, 5, 8, 11). */
SETOK_API void setok_sam_vision_config_defaults(setok_sam_vision_config *cfg);
/* Reads DIR/config.json (see above); errors name the file and the key. */
SETOK_API setok_status setok_sam_vision_config_load(setok_sam_vision_config *cfg, const char *dir,
                                                    setok_error *err);

/* ------------------------------------------------------------------------
 * SamImageProcessor and SamProcessor */

typedef struct setok_sam_preprocessor {
    bool do_convert_rgb, do_resize, do_rescale, do_normalize, do_pad;
    int longest_edge;               /* size.longest_edge */
    int pad_width, pad_height;      /* pad_size */
    setok_resample resample;
    double rescale_factor;
    float mean[3], std[3];
    /* "preprocessor_config.json", "processor_config.json", or "" when neither
     * exists and the class defaults (sized to the model's image_size) are used */
    char source[32];
} setok_sam_preprocessor;

/* SamImageProcessor's defaults with image_size in place of 1024. */
SETOK_API void setok_sam_preprocessor_defaults(setok_sam_preprocessor *pp, int image_size);
/* DIR/preprocessor_config.json, else processor_config.json's image_processor
 * (as transformers 5 writes it), else the defaults for image_size. */
SETOK_API setok_status setok_sam_preprocessor_load(setok_sam_preprocessor *pp, const char *dir,
                                                   int image_size, setok_error *err);
/* The size an image of width x height is resized to (reshaped_input_sizes),
 * and the model input it is padded to (the resized size when do_pad is off). */
SETOK_API void setok_sam_preprocess_size(const setok_sam_preprocessor *pp, int width, int height,
                                         int *resized_w, int *resized_h, int *input_w,
                                         int *input_h);
/* img -> out [3, input_h, input_w] float32 pixel values; out_floats is out's
 * capacity. RGBA is composited onto white, gray replicated. */
SETOK_API setok_status setok_sam_preprocess(const setok_sam_preprocessor *pp, float *out,
                                            size_t out_floats, const setok_image *img,
                                            setok_error *err);
/* (x, y) of an image of width x height -> the model frame (SamProcessor's
 * _normalize_coordinates). */
SETOK_API void setok_sam_scale_point(const setok_sam_preprocessor *pp, int width, int height,
                                     double x, double y, float *fx, float *fy);
/* low-resolution mask logits [lh, lw] over the model input -> mask
 * [height, width] of the original image (255 inside) and its area:
 * SamImageProcessor's post_process_masks with mask_threshold 0. */
SETOK_API setok_status setok_sam_postprocess_mask(const setok_sam_preprocessor *pp,
                                                  const float *logits, int lh, int lw,
                                                  uint8_t *mask, int width, int height,
                                                  int64_t *area, setok_error *err);

/* ------------------------------------------------------------------------
 * Model */

typedef struct setok_sam_vision setok_sam_vision;

/* Loads config.json, the processor's config and the weights of DIR onto
 * backend: activations and small tensors as dtype, the linear layers'
 * matrices as matrix (as setok_vit_load). */
SETOK_API setok_status setok_sam_vision_load(setok_sam_vision **out, const char *dir,
                                             setok_backend *backend, setok_dtype dtype,
                                             setok_dtype matrix, setok_error *err);
/* An encoder of cfg's shape with deterministic pseudo-random weights (benchmarks). */
SETOK_API setok_status setok_sam_vision_create_random(setok_sam_vision **out,
                                                      const setok_sam_vision_config *cfg,
                                                      setok_backend *backend, setok_dtype dtype,
                                                      setok_dtype matrix, uint32_t seed,
                                                      setok_error *err);
SETOK_API void setok_sam_vision_free(setok_sam_vision *m);

SETOK_API const setok_sam_vision_config *setok_sam_vision_get_config(const setok_sam_vision *m);
SETOK_API const setok_sam_preprocessor *
setok_sam_vision_get_preprocessor(const setok_sam_vision *m);
SETOK_API setok_dtype setok_sam_vision_dtype(const setok_sam_vision *m);
/* The image embedding's grid: image_size / patch_size. */
SETOK_API int setok_sam_vision_grid(const setok_sam_vision *m);
/* Arena bytes one forward of a batch needs (the output included). */
SETOK_API size_t setok_sam_vision_arena_bytes(const setok_sam_vision *m, int64_t batch);

/* pixel_values [B, num_channels, image_size, image_size] (the model's dtype,
 * on its backend) -> image_embeddings [B, output_channels, g, g], carved from
 * arena (valid until the caller resets it below them). cancel (may be NULL)
 * is checked before every block. */
SETOK_API setok_status setok_sam_vision_forward(setok_sam_vision *m, setok_arena *arena,
                                                setok_tensor *image_embeddings,
                                                const setok_tensor *pixel_values,
                                                const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
