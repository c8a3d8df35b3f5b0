/* diffusion.h — the `generate` and `edit` pipelines (DESIGN §8) on a SETOKIM
 * bundle or a diffusers Stable Diffusion folder.
 *
 * A SETOKIM bundle (setokim.json with visual_tokens and the projector_out/
 * mapper/ unet/ vae/ scheduler/ components; tools/setokim/generation.py has
 * the layout) conditions the U-Net on the mapper's (Q-Former's) output for
 * the visual tokens its LLM emits for the prompt (generate), or for the image
 * and the instruction (edit). Classifier-free guidance is against zeros, so a
 * bundle takes no negative prompt. The rest below applies to both kinds.
 *
 * A Stable Diffusion folder: text_encoder/ (CLIPTextModel), tokenizer/ (CLIP BPE:
 * tokenizer.json, or vocab.json + merges.txt), unet/ (UNet2DConditionModel,
 * 4 input channels, 8 for InstructPix2Pix, 9 for an inpainting checkpoint),
 * vae/ (AutoencoderKL) and scheduler/ (scheduler_config.json), as
 * model_index.json lists them.
 *
 * generate mirrors diffusers' StableDiffusionPipeline: the prompt and the
 * negative prompt padded to the tokenizer's 77 tokens, the U-Net on the batch
 * [negative, prompt] when guidance > 1, out = uncond + guidance * (cond -
 * uncond), the scheduler's step, latents / scaling_factor through the VAE
 * decoder, pixels (x / 2 + 0.5) clamped to [0, 1] and rounded to 8 bits.
 *
 * An inpainting U-Net (9 input channels: the latents, the mask at latent
 * size, the masked image's latents) follows StableDiffusionInpaintPipeline:
 * the image and the mask resized with Lanczos, the mask binarized at 0.5,
 * masked image = image * (mask < 0.5) in [-1, 1], its VAE latents (the mode)
 * times scaling_factor, the mask sampled at every latent's top-left pixel
 * (interpolate "nearest"), [latents, mask, masked latents] concatenated for
 * every batch item at every step; strength 1 starts from noise *
 * init_noise_sigma, a lower one from the image's latents noised to the start
 * step; no latent blending. generate on it is that pipeline with an all-ones
 * mask (the masked image is all zeros).
 *
 * edit changes only a region of an image (a mask, 255 = edit):
 *   - a 4-channel U-Net inpaints the region from the prompt (diffusers'
 *     img2img with strength, plus latent blending: after every step the
 *     latents outside the region are replaced by the source latents noised to
 *     that step's level, as RePaint-style blended diffusion does);
 *   - an 8-channel InstructPix2Pix U-Net follows the instruction with the
 *     source image latents as extra input and dual guidance (text_guidance,
 *     image_guidance), blended the same way;
 *   - a 9-channel inpainting U-Net repaints the region as above;
 *   the result is composited in pixel space with the mask feathered inwards,
 *   so every pixel outside the region is the input's, byte for byte.
 * The model edits a window of the image (setok_diffusion_edit_window): the
 * region's bounding box with `context` pixels around it, grown to a square of
 * at least the model's native size, so that a small region of a large photo
 * is edited pixel for pixel and pasted back at full resolution; or, with
 * context SETOK_DIFFUSION_WHOLE_IMAGE, the whole image scaled to the model's
 * size and back.
 *
 * Seeds are reproducible: the initial noise and every ancestral step's noise
 * come from setok_rng (xoshiro128** + Box-Muller) seeded by the options. */
#ifndef SETOK_DIFFUSION_H
#define SETOK_DIFFUSION_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "model.h"
#include "models/scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_diffusion setok_diffusion;

/* Over a model with SETOK_CAP_GENERATE (model.h: a SETOKIM bundle or a
 * diffusers Stable Diffusion folder); loads the components the first time.
 * The model must outlive d. */
SETOK_API setok_status setok_diffusion_new(setok_diffusion **out, setok_model *model, setok_error *err);
SETOK_API void setok_diffusion_free(setok_diffusion *d);

/* The default image size (the U-Net's sample_size times the VAE's downscale)
 * and the multiple every size must be. */
SETOK_API int setok_diffusion_default_size(const setok_diffusion *d);
SETOK_API int setok_diffusion_size_multiple(const setok_diffusion *d);
/* The latents of a width x height image: [1, *channels, *h, *w]. */
SETOK_API void setok_diffusion_latent_shape(const setok_diffusion *d, int width, int height, int *channels,
                                  int *h, int *w);
/* Whether the U-Net takes the source image as extra channels (InstructPix2Pix). */
SETOK_API bool setok_diffusion_is_instruct(const setok_diffusion *d);
/* Whether it is an inpainting U-Net (the mask and the masked image's latents as extra
 * channels). */
SETOK_API bool setok_diffusion_is_inpaint(const setok_diffusion *d);

/* setok_diffusion_options.context: edit the whole image, scaled to the model's size. */
#define SETOK_DIFFUSION_WHOLE_IMAGE (-1)
/* The default margin around the region's bounding box, in pixels. */
#define SETOK_DIFFUSION_DEFAULT_CONTEXT 64

typedef struct setok_diffusion_options {
    const char *prompt;          /* the prompt or, for edit, the instruction */
    const char *negative_prompt; /* NULL: "" */
    int width, height;           /* generate; 0: setok_diffusion_default_size */
    int steps;                   /* 25 */
    float guidance;              /* 7.5; <= 1 runs the prompt alone */
    float image_guidance;        /* InstructPix2Pix image guidance, 1.5 */
    float strength;              /* edit (4- and 9-channel U-Nets): how far to re-noise, 0.8 */
    int feather;                 /* edit: pixels the mask edge fades over, inside the region */
    int context;                 /* edit: the window's margin around the region, pixels
                                  * (SETOK_DIFFUSION_DEFAULT_CONTEXT), or
                                  * SETOK_DIFFUSION_WHOLE_IMAGE */
    uint64_t seed;
    setok_scheduler_kind scheduler; /* SETOK_SCHEDULER_FROM_CONFIG: the folder's */
    /* this noise [1, C, h, w] (host f32, unit variance, at the model size)
     * instead of seeded noise; NULL for seeded noise. Like diffusers' `latents`
     * argument, generate, an InstructPix2Pix edit and an inpainting edit at
     * strength 1 start from it times the scheduler's init_noise_sigma; the
     * other edits add it to the source latents at the start step. */
    const float *initial_latents;
    /* generate with a SETOKIM bundle: condition the mapper on these tokens
     * [condition_count, dim] (host f32, in the merger's output space, e.g. an
     * image's own SeTok tokens: the paper's Stage-I reconstruction) instead of
     * the visual tokens the LLM predicts for the prompt; prompt may be NULL. */
    const float *condition_tokens;
    int condition_count;
    /* when not NULL: receives the final latents [1, C, h, w] (malloc'd, free()) */
    float **final_latents;
    int preview_every;           /* 0: no previews */
    void (*on_step)(int step, int total, void *user);
    /* a cheap RGB approximation of the current x0 prediction, at latent size */
    void (*on_preview)(const setok_image *preview, int step, void *user);
    void *user;
    const atomic_bool *cancel;   /* checked before every step and U-Net block */
} setok_diffusion_options;

SETOK_API void setok_diffusion_options_default(setok_diffusion_options *o);

/* prompt -> out (RGB, width x height). */
SETOK_API setok_status setok_diffusion_generate(setok_diffusion *d, const setok_diffusion_options *o,
                                      setok_image *out, setok_error *err);

/* The part of an image an edit works on, and the size the model sees it at. */
typedef struct setok_diffusion_window {
    int x, y, width, height;        /* the window, in the image's pixels */
    int model_width, model_height;  /* multiples of setok_diffusion_size_multiple */
} setok_diffusion_window;

/* The window setok_diffusion_edit uses for mask (one channel, > 127 = edit) and a
 * context margin: the region's bounding box grown by context pixels on every side,
 * then to a square (the U-Net's native shape) of at least the native size
 * (setok_diffusion_default_size) whose side is a multiple of the size step,
 * centred on the box, shifted into the image and cut to it. The model size is
 * the window with its longer side scaled down to the native size (never up),
 * each side rounded to the size step: a window at the native size is edited
 * pixel for pixel. context SETOK_DIFFUSION_WHOLE_IMAGE: the whole image. An
 * empty region, or an image over the pixel limit (SETOK_IMAGE_DEFAULT_MAX_PIXELS),
 * is SETOK_ERR_INPUT. */
SETOK_API setok_status setok_diffusion_edit_window(const setok_diffusion *d,
                                                   const setok_image *mask, int context,
                                                   setok_diffusion_window *out, setok_error *err);

/* image (any size up to the pixel limit) + mask (one channel, the image's size,
 * > 127 = edit) + instruction -> out (RGB, the image's size; outside the mask
 * byte-identical to image). The window (above) is cut out, scaled to the model
 * size, edited, scaled back and composited. */
SETOK_API setok_status setok_diffusion_edit(setok_diffusion *d, const setok_image *image,
                                  const setok_image *mask, const setok_diffusion_options *o,
                                  setok_image *out, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
