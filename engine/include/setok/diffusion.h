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
 * 4 input channels, or 8 for InstructPix2Pix), vae/ (AutoencoderKL) and
 * scheduler/ (scheduler_config.json), as model_index.json lists them.
 *
 * generate mirrors diffusers' StableDiffusionPipeline: the prompt and the
 * negative prompt padded to the tokenizer's 77 tokens, the U-Net on the batch
 * [negative, prompt] when guidance > 1, out = uncond + guidance * (cond -
 * uncond), the scheduler's step, latents / scaling_factor through the VAE
 * decoder, pixels (x / 2 + 0.5) clamped to [0, 1] and rounded to 8 bits.
 *
 * edit changes only a region of an image (a mask, 255 = edit):
 *   - a 4-channel U-Net inpaints the region from the prompt (diffusers'
 *     img2img with strength, plus latent blending: after every step the
 *     latents outside the region are replaced by the source latents noised to
 *     that step's level, as RePaint-style blended diffusion does);
 *   - an 8-channel InstructPix2Pix U-Net follows the instruction with the
 *     source image latents as extra input and dual guidance (text_guidance,
 *     image_guidance), blended the same way;
 *   the result is composited in pixel space with the mask feathered inwards,
 *   so every pixel outside the region is the input's, byte for byte.
 *
 * Seeds are reproducible: the initial noise and every ancestral step's noise
 * come from setok_rng (xoshiro128** + Box-Muller) seeded by the options. */
#ifndef SETOK_DIFFUSION_H
#define SETOK_DIFFUSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "models/scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_diffusion setok_diffusion;

/* dir: a SETOKIM bundle or a diffusers Stable Diffusion folder. device: "cpu", "cuda" or "auto";
 * threads <= 0: all cores. Weights are f32 on the CPU, f16 on CUDA. */
setok_status setok_diffusion_open(setok_diffusion **out, const char *dir, const char *device,
                                  int threads, setok_error *err);
void setok_diffusion_free(setok_diffusion *d);

/* The default image size (the U-Net's sample_size times the VAE's downscale)
 * and the multiple every size must be. */
int setok_diffusion_default_size(const setok_diffusion *d);
int setok_diffusion_size_multiple(const setok_diffusion *d);
/* The latents of a width x height image: [1, *channels, *h, *w]. */
void setok_diffusion_latent_shape(const setok_diffusion *d, int width, int height, int *channels,
                                  int *h, int *w);
/* Whether the U-Net takes the source image as extra channels (InstructPix2Pix). */
bool setok_diffusion_is_instruct(const setok_diffusion *d);
const char *setok_diffusion_device(const setok_diffusion *d);

typedef struct setok_diffusion_options {
    const char *prompt;          /* the prompt or, for edit, the instruction */
    const char *negative_prompt; /* NULL: "" */
    int width, height;           /* generate; 0: setok_diffusion_default_size */
    int steps;                   /* 25 */
    float guidance;              /* 7.5; <= 1 runs the prompt alone */
    float image_guidance;        /* InstructPix2Pix image guidance, 1.5 */
    float strength;              /* edit with a 4-channel U-Net: how far to re-noise, 0.8 */
    int feather;                 /* edit: pixels the mask edge fades over, inside the region */
    uint64_t seed;
    setok_scheduler_kind scheduler; /* SETOK_SCHEDULER_FROM_CONFIG: the folder's */
    /* generate: start from these latents [1, C, h, w] (host f32, unit noise:
     * like diffusers' `latents` argument they are multiplied by the
     * scheduler's init_noise_sigma) instead of seeded noise; NULL for noise. */
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

void setok_diffusion_options_default(setok_diffusion_options *o);

/* prompt -> out (RGB, width x height). */
setok_status setok_diffusion_generate(setok_diffusion *d, const setok_diffusion_options *o,
                                      setok_image *out, setok_error *err);

/* image (any size; resized to a multiple of setok_diffusion_size_multiple for
 * the model, the result resized back) + mask (one channel, the image's size,
 * > 127 = edit) + instruction -> out (RGB, the image's size; outside the mask
 * byte-identical to image). */
setok_status setok_diffusion_edit(setok_diffusion *d, const setok_image *image,
                                  const setok_image *mask, const setok_diffusion_options *o,
                                  setok_image *out, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
