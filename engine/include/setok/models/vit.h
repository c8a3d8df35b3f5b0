/* vit.h — the vision tower: CLIP and SigLIP ViT encoders (DESIGN §6 "vision").
 *
 * Mirrors transformers' CLIPVisionModel and SiglipVisionModel. A model loads
 * from a folder whose config.json is a CLIPVisionConfig / SiglipVisionConfig,
 * or a CLIPModel / SiglipModel / LLaVA config with the tower under
 * "vision_config" (HF defaults fill missing keys). Weights may be named
 * "embeddings.*" (transformers >= 5), "vision_model.*", "[model.]vision_tower.*",
 * "vision_tower.vision_model.*" or "model.vision_tower.vision_model.*"; a
 * CLIP config with a "conv_stem" block has a convolutional stem instead of
 * the patch convolution (see setok_vit_config); the
 * SigLIP attention-pooling head and CLIP's post_layernorm (pooled output
 * only) are not used and may be present or not.
 *
 * Outputs follow HF's `hidden_states` tuple: index 0 is the embeddings output
 * (after CLIP's pre_layrnorm), index i the output of encoder layer i, negative
 * indices count from the end (-1 = last layer, -2 = LLaVA's penultimate).
 * None of these has a post layer norm. last_hidden_state is HF's: the last
 * layer's output for CLIP, post_layernorm of it for SigLIP. */
#ifndef SETOK_MODELS_VIT_H
#define SETOK_MODELS_VIT_H

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

typedef enum setok_vit_arch {
    SETOK_VIT_CLIP = 0, /* class token, pre_layrnorm, patch conv without bias */
    SETOK_VIT_SIGLIP,   /* no class token, patch conv with bias, post_layernorm */
} setok_vit_arch;

/* Most convolutions a convolutional stem may have. */
#define SETOK_VIT_STEM_MAX_LAYERS 6

/* feature_layer value that selects last_hidden_state (SigLIP: with post_layernorm). */
#define SETOK_VIT_LAST_HIDDEN_STATE 0x7fffffff

typedef struct setok_vit_config {
    setok_vit_arch arch;
    int hidden_size, intermediate_size, num_layers, num_heads, num_channels;
    int image_size, patch_size;
    float layer_norm_eps;
    setok_op act;      /* SETOK_OP_QUICK_GELU, SETOK_OP_GELU or SETOK_OP_GELU_TANH */
    /* The folder's own feature selection: LLaVA's vision_feature_layer and
     * vision_feature_select_strategy ("default" drops CLS; HF would drop the
     * first patch of a tower without one, here all patches are kept); else
     * -1 and false. */
    int feature_layer;
    bool drop_cls;
    /* A convolutional stem in place of the patch convolution (config.json's
     * "conv_stem", CLIP towers only; tools/setokim/stem.py): stem_layers
     * convolutions of stem_kernel x stem_kernel, stride stem_stride, widths
     * stem_channels, each followed by stem_act, then a 1 x 1 projection to
     * hidden_size. stem_layers 0: the plain patch embedding. */
    int stem_layers, stem_kernel, stem_stride;
    int stem_channels[SETOK_VIT_STEM_MAX_LAYERS];
    setok_op stem_act;
} setok_vit_config;

/* HF's CLIPVisionConfig / SiglipVisionConfig defaults. */
SETOK_API void setok_vit_config_defaults(setok_vit_config *cfg, setok_vit_arch arch);
/* Reads DIR/config.json (see above); errors name the file and the key. */
SETOK_API setok_status setok_vit_config_load(setok_vit_config *cfg, const char *dir, setok_error *err);

/* ------------------------------------------------------------------------
 * Preprocessing: HF CLIPImageProcessor / SiglipImageProcessor (their PIL
 * backends: convert RGB, resize, center crop, rescale, normalize). */

typedef struct setok_vit_preprocessor {
    bool do_convert_rgb, do_resize, do_center_crop, do_rescale, do_normalize;
    int shortest_edge;                  /* > 0: the short side becomes this (CLIP) */
    int resize_width, resize_height;    /* else: resized to exactly this (SigLIP) */
    int crop_width, crop_height;
    setok_resample resample;
    double rescale_factor;
    float mean[3], std[3];
} setok_vit_preprocessor;

/* The HF class defaults: CLIPImageProcessor (shortest edge 224, crop 224,
 * OpenAI mean / std) or SiglipImageProcessor (224 x 224, mean = std = 0.5). */
SETOK_API void setok_vit_preprocessor_defaults(setok_vit_preprocessor *pp, setok_vit_arch arch);
/* Where DIR keeps its image processor settings, in transformers' order:
 * "processor_config.json" (its image_processor object, as transformers 5 saves
 * a processor), else "preprocessor_config.json"; NULL when it has neither. */
SETOK_API const char *setok_vit_preprocessor_file(const char *dir);
/* Reads those settings; for keys they lack, the defaults of the HF processor
 * class they name (image_processor_type), else of arch's class. When DIR has
 * neither file: arch's class defaults (setok_vit_load then sizes them to the
 * tower's image_size). A malformed file, or an image_processor that is not an
 * object, is SETOK_ERR_INPUT naming the file. */
SETOK_API setok_status setok_vit_preprocessor_load(setok_vit_preprocessor *pp, const char *dir,
                                         setok_vit_arch arch, setok_error *err);
/* The [3, out_h, out_w] size an image of width x height becomes. */
SETOK_API void setok_vit_preprocess_size(const setok_vit_preprocessor *pp, int width, int height,
                               int *out_w, int *out_h);
/* out [3, H, W] float32 pixel values; out_floats is out's capacity. RGBA is
 * composited onto white (transformers' convert_to_rgb), gray replicated. */
SETOK_API setok_status setok_vit_preprocess(const setok_vit_preprocessor *pp, float *out, size_t out_floats,
                                  const setok_image *img, setok_error *err);

/* How an image of any aspect ratio becomes the model's input (DESIGN §8). */
typedef enum setok_image_fit {
    /* padded to a square of the processor's mean colour first, then processed:
     * LLaVA-1.5's image_aspect_ratio "pad" (expand2square with
     * tuple(int(m * 255) for m in image_mean)), so the whole image is seen */
    SETOK_IMAGE_FIT_PAD = 0,
    /* the processor alone: resize, then its centre crop (the sides of a
     * non-square image are cut off) */
    SETOK_IMAGE_FIT_CROP,
    SETOK_IMAGE_FIT_COUNT
} setok_image_fit;

/* "pad", "crop"; setok_image_fit_from_name gives SETOK_IMAGE_FIT_COUNT for others. */
SETOK_API const char *setok_image_fit_name(setok_image_fit fit);
SETOK_API setok_image_fit setok_image_fit_from_name(const char *name);

/* Where fit puts a width x height image inside the square it pads to: the
 * square's side and the image's offset in it (side = max(width, height),
 * the offset centres the short side, floored as expand2square does). */
SETOK_API void setok_image_fit_square(int width, int height, int *side, int *off_x, int *off_y);
/* The [3, out_h, out_w] size an image of width x height becomes under fit. */
SETOK_API void setok_vit_preprocess_fit_size(const setok_vit_preprocessor *pp, setok_image_fit fit,
                                             int width, int height, int *out_w, int *out_h);
/* setok_vit_preprocess after fit: with SETOK_IMAGE_FIT_PAD a non-square image
 * is first made RGB (as setok_vit_preprocess does) and padded to a square. */
SETOK_API setok_status setok_vit_preprocess_fit(const setok_vit_preprocessor *pp,
                                                setok_image_fit fit, float *out, size_t out_floats,
                                                const setok_image *img, setok_error *err);

/* ------------------------------------------------------------------------
 * Model */

typedef struct setok_vit setok_vit;

/* Loads config.json, the image processor settings (setok_vit_preprocessor_load;
 * without them, the class defaults at the tower's image_size: the resolution its
 * position embeddings were trained at, which is what every published CLIP and SigLIP
 * processor uses) and the weights of DIR onto
 * backend: activations and small tensors as dtype (f32 on the CPU backend; f16 /
 * bf16 on CUDA), the encoder layers' linear weights as matrix (the same on
 * CUDA; on the CPU also f16, bf16, q8 or q4, used in place when stored so). */
SETOK_API setok_status setok_vit_load(setok_vit **out, const char *dir, setok_backend *backend,
                                      setok_dtype dtype, setok_dtype matrix, setok_error *err);
/* A model of cfg's shape with deterministic pseudo-random weights, placed as
 * setok_vit_load would (for benchmarks; nothing is read or stored). */
SETOK_API setok_status setok_vit_create_random(setok_vit **out, const setok_vit_config *cfg,
                                               setok_backend *backend, setok_dtype dtype,
                                               setok_dtype matrix, uint32_t seed,
                                               setok_error *err);
SETOK_API void setok_vit_free(setok_vit *vit);

SETOK_API const setok_vit_config *setok_vit_get_config(const setok_vit *vit);
SETOK_API const setok_vit_preprocessor *setok_vit_get_preprocessor(const setok_vit *vit);
SETOK_API setok_dtype setok_vit_dtype(const setok_vit *vit);
SETOK_API bool setok_vit_has_cls(const setok_vit *vit);
/* Tokens of an input of height x width (CLS included unless drop_cls), and
 * its patch grid; 0 when the input is smaller than one patch. */
SETOK_API int64_t setok_vit_num_tokens(const setok_vit *vit, int64_t height, int64_t width, bool drop_cls,
                             int64_t *grid_h, int64_t *grid_w);
/* Arena bytes one forward needs (both outputs included). */
SETOK_API size_t setok_vit_arena_bytes(const setok_vit *vit, int64_t batch, int64_t height, int64_t width);

/* pixel_values [B, num_channels, H, W] (the model's dtype, on its backend)
 * -> features [B, T, hidden] = hidden_states[feature_layer] (T drops the
 * class token when drop_cls; an error for SigLIP, which has none) and
 * last_hidden_state [B, T_all, hidden]. Either output may be NULL; both are
 * carved from arena and stay valid until the caller resets it below them.
 * A grid other than the config's interpolates the position embedding
 * (bicubic, as transformers' interpolate_pos_encoding=True). cancel (may be
 * NULL) is checked before every layer. */
SETOK_API setok_status setok_vit_forward(setok_vit *vit, setok_arena *arena, setok_tensor *features,
                               setok_tensor *last_hidden_state, const setok_tensor *pixel_values,
                               int feature_layer, bool drop_cls, const atomic_bool *cancel,
                               setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
