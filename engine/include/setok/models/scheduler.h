/* scheduler.h — diffusion schedulers and classifier-free guidance (DESIGN §6 "scheduler").
 *
 * Mirrors diffusers' DDIMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler and DPMSolverMultistepScheduler
 * (DPM-Solver++ 2M, first- or second-order). Latents are small, so this is
 * plain host float math: every array is a host float buffer of n elements
 * (the whole batch), whatever backend runs the U-Net.
 *
 * A scheduler loads from a diffusers scheduler folder (scheduler_config.json).
 * Its "_class_name" picks the kind unless the caller overrides it; keys the
 * file lacks take the defaults of the kind actually run, as diffusers'
 * from_config does. A PNDMScheduler config (what Stable Diffusion 1.5 folders
 * ship) runs as DDIM with that config: PNDM's own pseudo-linear multistep
 * method is not implemented, and DDIM on SD-1.5's betas is the usual swap.
 *
 * Supported: beta_schedule linear / scaled_linear; prediction_type epsilon /
 * v_prediction; timestep_spacing leading / trailing / linspace; steps_offset;
 * DDIM set_alpha_to_one, clip_sample (+ clip_sample_range) and eta; Euler
 * final_sigmas_type; DPM solver_order 1 or 2, solver_type midpoint / heun,
 * lower_order_final, euler_at_final, final_sigmas_type, lambda_min_clipped.
 * Refused by name (SETOK_ERR_UNSUPPORTED): other beta schedules,
 * trained_betas, rescale_betas_zero_snr, thresholding, use_karras_sigmas and
 * the other sigma-spacing switches, sample / flow prediction, DPM's sde and
 * non-"++" algorithms, solver_order 3, learned variance, Euler's log_linear
 * interpolation and continuous timesteps.
 *
 * Use (as diffusers' pipelines do):
 *   set_timesteps(n); x = noise * init_noise_sigma;
 *   for i in 0..n-1:
 *       model_in = scale_model_input(i, x)          (duplicated for guidance)
 *       eps = unet(model_in, timesteps[i]) -> guidance_cfg / guidance_ip2p
 *       x = step(i, eps, x, noise_i)                (noise_i: ancestral, DDIM eta > 0)
 * Steps are addressed by their index into timesteps, never by timestep
 * value. DPM-Solver++ keeps the previous step's x0 prediction: a step uses
 * it when the step before it was index - 1 on the same n, and starts again
 * at first order otherwise (as diffusers after set_timesteps / set_begin_index).
 * Editing starts at setok_scheduler_start_index(strength) with the source
 * latents noised to that step by setok_scheduler_add_noise. */
#ifndef SETOK_MODELS_SCHEDULER_H
#define SETOK_MODELS_SCHEDULER_H

#include "../export.h"

#include <stdbool.h>
#include <stddef.h>

#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum setok_scheduler_kind {
    SETOK_SCHEDULER_FROM_CONFIG = -1, /* load: the kind the config's _class_name names */
    SETOK_SCHEDULER_DDIM = 0,
    SETOK_SCHEDULER_EULER,
    SETOK_SCHEDULER_EULER_ANCESTRAL,
    SETOK_SCHEDULER_DPMPP_2M,
    SETOK_SCHEDULER_KIND_COUNT
} setok_scheduler_kind;

typedef enum setok_beta_schedule {
    SETOK_BETAS_LINEAR = 0,
    SETOK_BETAS_SCALED_LINEAR, /* linspace of sqrt(beta), squared */
} setok_beta_schedule;

typedef enum setok_prediction_type {
    SETOK_PREDICT_EPSILON = 0,
    SETOK_PREDICT_V, /* "v_prediction" */
} setok_prediction_type;

typedef enum setok_timestep_spacing {
    SETOK_SPACING_LEADING = 0,
    SETOK_SPACING_TRAILING,
    SETOK_SPACING_LINSPACE,
} setok_timestep_spacing;

typedef struct setok_scheduler_config {
    setok_scheduler_kind kind;
    int num_train_timesteps;
    double beta_start, beta_end;
    setok_beta_schedule beta_schedule;
    setok_prediction_type prediction_type;
    setok_timestep_spacing timestep_spacing;
    int steps_offset;
    /* DDIM */
    bool set_alpha_to_one, clip_sample;
    double clip_sample_range;
    double eta;              /* not a config key: the pipeline's eta (0 = deterministic DDIM) */
    /* Euler and DPM: final_sigmas_type "zero" (true) or "sigma_min" */
    bool final_sigma_zero;
    /* DPM-Solver++ */
    int solver_order;        /* 1 or 2 */
    bool solver_heun;        /* solver_type "heun" (else "midpoint") */
    bool lower_order_final, euler_at_final;
    double lambda_min_clipped; /* -INFINITY unless set */
    bool from_pndm;          /* the file was a PNDMScheduler config, run as DDIM */
} setok_scheduler_config;

/* The diffusers class's defaults for kind. */
SETOK_API void setok_scheduler_config_defaults(setok_scheduler_config *cfg, setok_scheduler_kind kind);
/* Reads DIR/scheduler_config.json; kind SETOK_SCHEDULER_FROM_CONFIG takes
 * the kind from _class_name (an error when it names no supported class),
 * any other kind overrides it. Errors name the file and the key. */
SETOK_API setok_status setok_scheduler_config_load(setok_scheduler_config *cfg, const char *dir,
                                         setok_scheduler_kind kind, setok_error *err);

/* "DDIMScheduler", ...; NULL for a value out of range. */
SETOK_API const char *setok_scheduler_kind_name(setok_scheduler_kind kind);
/* A diffusers class name (PNDMScheduler gives DDIM) or a short name: ddim,
 * euler, euler_a (euler_ancestral), dpm++2m (dpmsolver++); SETOK_SCHEDULER_KIND_COUNT
 * when unknown. */
SETOK_API setok_scheduler_kind setok_scheduler_kind_from_name(const char *name);

typedef struct setok_scheduler setok_scheduler;

/* Checks cfg and builds the training noise schedule (betas, cumulative alphas). */
SETOK_API setok_status setok_scheduler_create(setok_scheduler **out, const setok_scheduler_config *cfg,
                                    setok_error *err);
SETOK_API setok_status setok_scheduler_load(setok_scheduler **out, const char *dir,
                                  setok_scheduler_kind kind, setok_error *err);
SETOK_API void setok_scheduler_free(setok_scheduler *s);
SETOK_API const setok_scheduler_config *setok_scheduler_get_config(const setok_scheduler *s);
/* The pipeline's DDIM eta (>= 0; ignored by the other kinds). */
SETOK_API setok_status setok_scheduler_set_eta(setok_scheduler *s, double eta, setok_error *err);

/* Builds the inference schedule of num_inference_steps (1 .. num_train_timesteps)
 * and forgets any multistep history. */
SETOK_API setok_status setok_scheduler_set_timesteps(setok_scheduler *s, int num_inference_steps,
                                           setok_error *err);
/* The timesteps the model is called with, in order (integers for DDIM and
 * DPM, fractional for Euler with linspace spacing); *n gets their count.
 * NULL (and *n = 0) before set_timesteps. Valid until the next set_timesteps. */
SETOK_API const float *setok_scheduler_timesteps(const setok_scheduler *s, int *n);
/* The noise level of each step plus the final one (n + 1 values) for the
 * sigma-parameterised kinds (Euler, Euler ancestral, DPM); NULL for DDIM. */
SETOK_API const float *setok_scheduler_sigmas(const setok_scheduler *s, int *n);
/* What the initial noise is multiplied by: 1 for DDIM and DPM; Euler's
 * largest sigma (sqrt(sigma^2 + 1) with leading spacing). Needs set_timesteps. */
SETOK_API float setok_scheduler_init_noise_sigma(const setok_scheduler *s);
/* The first step index of an image-to-image / editing run of this strength
 * (0..1], as diffusers' img2img pipelines count it. */
SETOK_API int setok_scheduler_start_index(const setok_scheduler *s, double strength);

/* x -> out (may be x): the model input at step_index; x / sqrt(sigma^2 + 1)
 * for Euler, unchanged for DDIM and DPM. */
SETOK_API setok_status setok_scheduler_scale_model_input(const setok_scheduler *s, int step_index,
                                               float *out, const float *x, size_t n,
                                               setok_error *err);
/* One denoising step: model_output (the guided prediction) and sample at
 * step_index -> out (the sample for step_index + 1; may alias sample or
 * model_output) and, when pred_original is not NULL, the x0 prediction
 * (diffusers' pred_original_sample; for DPM the converted model output).
 * noise: standard normal values, required by Euler ancestral and by DDIM
 * with eta > 0 (what diffusers draws from its generator), else ignored. */
SETOK_API setok_status setok_scheduler_step(setok_scheduler *s, int step_index, float *out,
                                  float *pred_original, const float *model_output,
                                  const float *sample, const float *noise, size_t n,
                                  setok_error *err);
/* Forward diffusion to the noise level step_index starts from:
 * out = a * original + b * noise (out may alias either), with
 * (a, b) = (sqrt(alphas_cumprod[t]), sqrt(1 - alphas_cumprod[t])) for DDIM,
 * (1, sigma) for Euler and (alpha_t, sigma_t) of that sigma for DPM — what
 * diffusers' add_noise(original, noise, timesteps[step_index]) gives. */
SETOK_API setok_status setok_scheduler_add_noise(const setok_scheduler *s, int step_index, float *out,
                                       const float *original, const float *noise, size_t n,
                                       setok_error *err);

/* Classifier-free guidance, the U-Net run on the batch [uncond, cond]:
 * out = uncond + scale * (cond - uncond). out may alias an input. */
SETOK_API void setok_guidance_cfg(float *out, const float *uncond, const float *cond, float scale,
                        size_t n);
/* InstructPix2Pix dual guidance. diffusers runs the U-Net on the batch
 * [full_cond, img_cond, uncond] = [(prompt, image latents),
 * (empty prompt, image latents), (empty prompt, zero image latents)] and
 * combines: out = uncond + text_scale * (full_cond - img_cond)
 *                 + image_scale * (img_cond - uncond). out may alias an input. */
SETOK_API void setok_guidance_ip2p(float *out, const float *uncond, const float *img_cond,
                         const float *full_cond, float text_scale, float image_scale, size_t n);

#ifdef __cplusplus
}
#endif
#endif
