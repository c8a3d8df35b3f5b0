/* diffusion.c — text-to-image and region editing on a diffusers Stable Diffusion folder or
 * a SETOKIM bundle (see diffusion.h): the U-Net's conditioning (CLIP text, or the bundle's
 * visual tokens through the mapper), the denoising loop with guidance, latent blending for
 * edits, an inpainting U-Net's mask channels, the edit window, VAE decoding, the feathered
 * pixel composite and cheap previews. */
#include "setok/diffusion.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/chat.h"
#include "setok/config.h"
#include "setok/model.h"
#include "setok/models/clip_text.h"
#include "setok/models/qformer.h"
#include "setok/models/unet.h"
#include "setok/models/vae.h"
#include "setok/sampling.h"
#include "setok/tokenizer.h"

#define MAX_LATENT_CHANNELS 16

struct setok_diffusion {
    setok_model *model;
    setok_backend *backend;    /* the model's */
    setok_dtype dtype;
    /* a SETOKIM bundle: the LLM emits visual tokens (through a chat of this pipeline's own),
     * the mapper turns them into the U-Net's encoder_hidden_states; unconditional = zeros */
    setok_chat *chat;
    setok_qformer *mapper;
    /* a Stable Diffusion folder: the CLIP text encoder */
    setok_text_tokenizer *tok;
    int max_tokens;            /* the tokenizer's model_max_length (77) */
    int32_t pad_id;
    setok_clip_text *text;
    setok_unet *unet;
    setok_vae *vae;
    int sample_size;           /* the U-Net's, in latents */
    int latent_channels;       /* what the U-Net denoises (its output channels) */
    /* preview: rgb = map[c] . latent + map[C] (fitted on first use) */
    bool have_map;
    float map[MAX_LATENT_CHANNELS + 1][3];
};

void setok_diffusion_options_default(setok_diffusion_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 25;
    o->guidance = 7.5f;
    o->image_guidance = 1.5f;
    o->strength = 0.8f;
    o->feather = 4;
    o->context = SETOK_DIFFUSION_DEFAULT_CONTEXT;
    o->scheduler = SETOK_SCHEDULER_FROM_CONFIG;
}

/* ---------------------------------------------------------------------------
 * over a model */

/* The tokenizer's model_max_length and pad token (tokenizer_config.json). */
static setok_status tokenizer_settings(setok_diffusion *d, setok_error *err)
{
    const char *tok_dir = setok_model_tokenizer_dir(d->model);
    d->max_tokens = 77;
    d->pad_id = setok_text_tokenizer_eos_id(d->tok);
    setok_config *cfg = NULL;
    setok_status st = tok_dir ? setok_config_load_in(&cfg, tok_dir, "tokenizer_config.json", true,
                                                     err)
                              : SETOK_OK;
    if (st != SETOK_OK || !cfg)
        return st;
    const char *path = setok_config_path(cfg);
    int64_t max_len = d->max_tokens;
    if (st == SETOK_OK)
        st = setok_config_limit_or(cfg, "model_max_length", max_len, &max_len, err);
    /* no limit (transformers' 1e30) or a large one: the text encoder's positions bound it */
    if (st == SETOK_OK && max_len >= 2)
        d->max_tokens = max_len < INT_MAX ? (int)max_len : INT_MAX;
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "pad_token");
    if (cJSON_IsObject(pad))
        pad = cJSON_GetObjectItemCaseSensitive(pad, "content");
    if (st == SETOK_OK && cJSON_IsString(pad)) {
        int32_t id = setok_text_tokenizer_token_to_id(d->tok, pad->valuestring);
        if (id < 0)
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: pad_token '%s' is not in the vocabulary",
                            path, pad->valuestring);
        d->pad_id = id;
    }
    setok_config_free(cfg);
    return st;
}

/* The width of the U-Net's conditioning: the text encoder's or the mapper's hidden size. */
static int condition_dim(const setok_diffusion *d)
{
    return d->mapper ? setok_qformer_get_config(d->mapper)->hidden_size
                     : setok_clip_text_get_config(d->text)->hidden_size;
}

/* The U-Net's sample_size (its config.json; 64 when missing). */
static setok_status read_sample_size(setok_diffusion *d, setok_error *err)
{
    setok_component_info info;
    setok_model_component_info(d->model, SETOK_COMPONENT_UNET, &info);
    setok_config *cfg = NULL;
    int64_t size = 64;
    setok_status st = setok_config_load_in(&cfg, info.path, "config.json", false, err);
    const char *path = cfg ? setok_config_path(cfg) : info.path;
    if (st == SETOK_OK)
        st = setok_config_int_or(cfg, "sample_size", size, &size, err);
    if (st == SETOK_OK && (size < 1 || size > 4096))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: sample_size %lld is out of range", path,
                        (long long)size);
    d->sample_size = (int)size;
    setok_config_free(cfg);
    return st;
}

setok_status setok_diffusion_new(setok_diffusion **out, setok_model *model, setok_error *err)
{
    *out = NULL;
    setok_diffusion *d = calloc(1, sizeof *d);
    if (!d)
        return setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    d->model = model;
    d->backend = setok_model_backend(model);
    d->dtype = setok_model_dtype(model);
    bool bundle = setok_model_kind_of(model) == SETOK_MODEL_SETOKIM;
    setok_status st = setok_model_require(model, SETOK_CAP_GENERATE, err);
    if (st == SETOK_OK && bundle)
        st = setok_model_mapper(model, &d->mapper, err);
    if (st == SETOK_OK && bundle)
        st = setok_chat_new(&d->chat, model, 0, err);
    if (st == SETOK_OK && !bundle)
        st = setok_model_text_tokenizer(model, &d->tok, err);
    if (st == SETOK_OK && !bundle)
        st = setok_model_text_encoder(model, &d->text, err);
    if (st == SETOK_OK && !bundle)
        st = tokenizer_settings(d, err);
    if (st == SETOK_OK && !bundle) {
        const setok_clip_text_config *tc = setok_clip_text_get_config(d->text);
        if (d->max_tokens > tc->max_position_embeddings)
            d->max_tokens = tc->max_position_embeddings;
    }
    if (st == SETOK_OK)
        st = setok_model_unet(model, &d->unet, err);
    if (st == SETOK_OK)
        st = setok_model_vae(model, &d->vae, err);
    if (st == SETOK_OK) {
        d->latent_channels = setok_unet_get_config(d->unet)->out_channels;
        if (d->latent_channels > MAX_LATENT_CHANNELS)
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %d latent channels, at most %d",
                            setok_model_dir(model), d->latent_channels, MAX_LATENT_CHANNELS);
    }
    if (st == SETOK_OK)
        st = read_sample_size(d, err);
    if (st != SETOK_OK) {
        setok_diffusion_free(d);
        return st;
    }
    *out = d;
    return SETOK_OK;
}

void setok_diffusion_free(setok_diffusion *d)
{
    if (!d)
        return;
    setok_chat_free(d->chat);
    free(d);
}

int setok_diffusion_size_multiple(const setok_diffusion *d)
{
    return setok_vae_downscale(d->vae) * setok_unet_size_multiple(d->unet);
}

int setok_diffusion_default_size(const setok_diffusion *d)
{
    return d->sample_size * setok_vae_downscale(d->vae);
}

void setok_diffusion_latent_shape(const setok_diffusion *d, int width, int height, int *channels,
                                  int *h, int *w)
{
    int s = setok_vae_downscale(d->vae);
    *channels = d->latent_channels;
    *h = height / s;
    *w = width / s;
}

bool setok_diffusion_is_instruct(const setok_diffusion *d)
{
    return setok_unet_get_config(d->unet)->in_channels == 2 * d->latent_channels;
}

bool setok_diffusion_is_inpaint(const setok_diffusion *d)
{
    return setok_unet_get_config(d->unet)->in_channels == 2 * d->latent_channels + 1;
}

/* ---------------------------------------------------------------------------
 * prompts */

/* text -> ids [max_tokens]: BOS, the text's tokens (truncated), EOS, then pad, as
 * tokenizer(text, padding="max_length", truncation=True) gives them. */
static setok_status prompt_ids(setok_diffusion *d, const char *text, int32_t *ids,
                               setok_error *err)
{
    int32_t *enc = NULL;
    size_t n = 0;
    setok_status st = setok_text_tokenizer_encode(d->tok, text ? text : "", text ? strlen(text) : 0,
                                                  true, &enc, &n, err);
    if (st != SETOK_OK)
        return st;
    size_t max = (size_t)d->max_tokens;
    if (n > max) {
        enc[max - 1] = enc[n - 1]; /* the closing EOS stays */
        n = max;
    }
    for (size_t i = 0; i < max; i++)
        ids[i] = i < n ? enc[i] : d->pad_id;
    setok_text_tokenizer_buffer_free(enc);
    return SETOK_OK;
}

/* texts[count] -> embeds [count, max_tokens, hidden] (allocated on the backend). */
static setok_status encode_prompts(setok_diffusion *d, const char *const *texts, int count,
                                   setok_tensor *embeds, const atomic_bool *cancel,
                                   setok_error *err)
{
    int64_t T = d->max_tokens, C = setok_clip_text_get_config(d->text)->hidden_size;
    int32_t *ids = malloc((size_t)(count * T) * sizeof *ids);
    setok_tensor ids_t = {0}, last;
    setok_arena arena = {0};
    setok_status st = ids ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    for (int i = 0; i < count && st == SETOK_OK; i++)
        st = prompt_ids(d, texts[i], ids + i * T, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&ids_t, d->backend, SETOK_I32, 2, (int64_t[]){count, T}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&ids_t, ids, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend, setok_clip_text_arena_bytes(d->text, count, T),
                              err);
    if (st == SETOK_OK)
        st = setok_clip_text_forward(d->text, &arena, &last, NULL, &ids_t, 0, cancel, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(embeds, d->backend, d->dtype, 3, (int64_t[]){count, T, C}, err);
    if (st == SETOK_OK)
        st = setok_copy(d->backend, embeds, &last, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(d->backend, err);
    setok_arena_destroy(&arena);
    setok_tensor_free(&ids_t);
    free(ids);
    return st;
}

/* A bundle's conditioning for a request (image NULL: generate) -> embeds [batch, Q, hidden]:
 * the mapper's output for the visual tokens (the LLM's, or o->condition_tokens when given),
 * after a zero row when batch is 2 (CFG). */
static setok_status visual_condition(setok_diffusion *d, const setok_image *image,
                                     const setok_diffusion_options *o, int batch,
                                     setok_tensor *embeds, setok_error *err)
{
    const atomic_bool *cancel = o->cancel;
    int64_t k = o->condition_tokens ? o->condition_count : setok_chat_visual_token_count(d->chat);
    int64_t e = setok_chat_visual_token_dim(d->chat);
    int64_t q = setok_qformer_num_query_tokens(d->mapper), h = condition_dim(d);
    float *tokens = malloc((size_t)(k * e) * sizeof *tokens);
    float *cond = calloc((size_t)(batch * q * h), sizeof *cond);
    setok_tensor enc = {0}, last;
    setok_arena arena = {0};
    setok_chat_options co;
    setok_chat_options_default(&co);
    co.cancel = cancel;
    setok_status st = tokens && cond ? SETOK_OK
                                     : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    if (st == SETOK_OK && o->condition_tokens)
        memcpy(tokens, o->condition_tokens, (size_t)(k * e) * sizeof *tokens);
    else if (st == SETOK_OK)
        st = setok_chat_visual_tokens(d->chat, image, o->prompt, &co, tokens, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&enc, d->backend, d->dtype, 3, (int64_t[]){1, k, e}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&enc, tokens, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend, setok_qformer_arena_bytes(d->mapper, 1, q, k),
                              err);
    if (st == SETOK_OK)
        st = setok_qformer_forward(d->mapper, &arena, &last, NULL, &enc, NULL, cancel, err);
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(cond + (batch - 1) * q * h, &last, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(embeds, d->backend, d->dtype, 3, (int64_t[]){batch, q, h}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(embeds, cond, err);
    setok_arena_destroy(&arena);
    setok_tensor_free(&enc);
    free(tokens);
    free(cond);
    return st;
}

/* ---------------------------------------------------------------------------
 * previews: a linear map from latents to RGB, fitted once by encoding flat colours */

/* Solves the k x k system a x = b in place (partial pivoting); false when singular. */
static bool solve(double *a, double *b, int k)
{
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(a[r * k + c]) > fabs(a[p * k + c]))
                p = r;
        if (fabs(a[p * k + c]) < 1e-12)
            return false;
        for (int j = 0; j < k; j++) {
            double t = a[c * k + j];
            a[c * k + j] = a[p * k + j];
            a[p * k + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = 0; r < k; r++) {
            if (r == c)
                continue;
            double f = a[r * k + c] / a[c * k + c];
            for (int j = c; j < k; j++)
                a[r * k + j] -= f * a[c * k + j];
            b[r] -= f * b[c];
        }
    }
    for (int c = 0; c < k; c++)
        b[c] /= a[c * k + c];
    return true;
}

static setok_status fit_preview_map(setok_diffusion *d, setok_error *err)
{
    enum { COLOURS = 27 }; /* a 3 x 3 x 3 grid of the RGB cube */
    int C = d->latent_channels, s = 4 * setok_vae_downscale(d->vae), K = C + 1;
    int64_t hw = (int64_t)s * s;
    float *px = malloc((size_t)(COLOURS * 3 * hw) * sizeof *px);
    float *lat = NULL;
    setok_tensor pixels = {0}, mean, logvar;
    setok_arena arena = {0};
    setok_status st = px ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    double rgb[COLOURS][3];
    for (int i = 0; i < COLOURS && st == SETOK_OK; i++) {
        rgb[i][0] = (i % 3) - 1.0;
        rgb[i][1] = (i / 3 % 3) - 1.0;
        rgb[i][2] = (i / 9) - 1.0;
        for (int c = 0; c < 3; c++)
            for (int64_t p = 0; p < hw; p++)
                px[(i * 3 + c) * hw + p] = (float)rgb[i][c];
    }
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&pixels, d->backend, d->dtype, 4,
                                (int64_t[]){COLOURS, 3, s, s}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&pixels, px, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend,
                              setok_vae_encode_arena_bytes(d->vae, COLOURS, s, s), err);
    if (st == SETOK_OK)
        st = setok_vae_encode(d->vae, &arena, &mean, &logvar, &pixels, NULL, err);
    int64_t lhw = setok_tensor_numel(&mean) / (COLOURS * C);
    if (st == SETOK_OK && !(lat = malloc((size_t)setok_tensor_numel(&mean) * sizeof *lat)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(lat, &mean, err);
    if (st == SETOK_OK) {
        /* features: the scaled latent means and 1; least squares per colour channel */
        double x[COLOURS][MAX_LATENT_CHANNELS + 1];
        float scale = setok_vae_scaling_factor(d->vae);
        for (int i = 0; i < COLOURS; i++) {
            for (int c = 0; c < C; c++) {
                double sum = 0.0;
                for (int64_t p = 0; p < lhw; p++)
                    sum += lat[(i * C + c) * lhw + p];
                x[i][c] = sum / (double)lhw * scale;
            }
            x[i][C] = 1.0;
        }
        for (int o = 0; o < 3; o++) {
            double a[(MAX_LATENT_CHANNELS + 1) * (MAX_LATENT_CHANNELS + 1)] = {0};
            double b[MAX_LATENT_CHANNELS + 1] = {0};
            for (int i = 0; i < COLOURS; i++)
                for (int r = 0; r < K; r++) {
                    b[r] += x[i][r] * rgb[i][o];
                    for (int c = 0; c < K; c++)
                        a[r * K + c] += x[i][r] * x[i][c];
                }
            for (int r = 0; r < K; r++)
                a[r * K + r] += 1e-6; /* ridge: latent channels may be collinear */
            if (!solve(a, b, K))
                memset(b, 0, sizeof b);
            for (int r = 0; r < K; r++)
                d->map[r][o] = (float)b[r];
        }
        d->have_map = true;
    }
    setok_arena_destroy(&arena);
    setok_tensor_free(&pixels);
    free(px);
    free(lat);
    return st;
}

/* x0 [C, h, w] (scaled latents) -> an RGB image of h x w. */
static setok_status preview(setok_diffusion *d, const float *x0, int h, int w, int step,
                            const setok_diffusion_options *o, setok_error *err)
{
    setok_status st = d->have_map ? SETOK_OK : fit_preview_map(d, err);
    setok_image img = {0};
    if (st == SETOK_OK)
        st = setok_image_alloc(&img, w, h, 3, err);
    int C = d->latent_channels;
    for (int64_t p = 0; p < (int64_t)h * w && st == SETOK_OK; p++)
        for (int c = 0; c < 3; c++) {
            float v = d->map[C][c];
            for (int k = 0; k < C; k++)
                v += d->map[k][c] * x0[k * (int64_t)h * w + p];
            v = (v * 0.5f + 0.5f) * 255.0f;
            img.pixels[p * 3 + c] = (uint8_t)(v < 0.0f ? 0 : v > 255.0f ? 255 : lrintf(v));
        }
    if (st == SETOK_OK)
        o->on_preview(&img, step, o->user);
    setok_image_free(&img);
    return st;
}

/* ---------------------------------------------------------------------------
 * the denoising loop */

typedef struct loop {
    setok_diffusion *d;
    const setok_diffusion_options *o;
    setok_scheduler *sched;
    setok_tensor embeds;        /* [B, T, D]: the prompt batch */
    int batch;                  /* 1 (no guidance), 2 (CFG) or 3 (InstructPix2Pix) */
    int h, w;
    size_t n;                   /* latent_channels * h * w */
    const float *image_latents; /* InstructPix2Pix: the source's, unscaled mode */
    const float *inpaint_mask;  /* inpainting U-Net: [h * w], 1 = repaint */
    const float *masked_latents; /* inpainting U-Net: the masked image's, scaled */
    const float *blend_source;  /* edit: the source latents (scaled) */
    const float *blend_mask;    /* edit: [h * w], 1 = edit */
    const float *noise0;        /* edit: the noise the source latents are noised with */
    setok_rng rng;
} loop;

static bool cancelled(const setok_diffusion_options *o)
{
    return o->cancel && atomic_load(o->cancel);
}

/* model input for one batch item: x (scaled by the scheduler), then the image latents for an
 * InstructPix2Pix U-Net (zero for its unconditional item), or the mask and the masked image's
 * latents for an inpainting U-Net (the same for every item). */
static void fill_input(const loop *L, float *dst, const float *xin, int item)
{
    memcpy(dst, xin, L->n * sizeof *dst);
    if (L->inpaint_mask) {
        size_t hw = (size_t)L->h * L->w;
        memcpy(dst + L->n, L->inpaint_mask, hw * sizeof *dst);
        memcpy(dst + L->n + hw, L->masked_latents, L->n * sizeof *dst);
    }
    if (!L->image_latents)
        return;
    if (item == 2)
        memset(dst + L->n, 0, L->n * sizeof *dst);
    else
        memcpy(dst + L->n, L->image_latents, L->n * sizeof *dst);
}

static setok_status run_loop(loop *L, float *x, int start, setok_error *err)
{
    setok_diffusion *d = L->d;
    const setok_diffusion_options *o = L->o;
    int total = 0;
    const float *timesteps = setok_scheduler_timesteps(L->sched, &total);
    int in_ch = setok_unet_get_config(d->unet)->in_channels;
    size_t in_n = (size_t)in_ch * L->h * L->w;
    float *xin = malloc(L->n * sizeof *xin), *batch_in = malloc(L->batch * in_n * sizeof *xin);
    float *eps = malloc(L->batch * L->n * sizeof *eps), *noise = malloc(L->n * sizeof *noise);
    float *x0 = malloc(L->n * sizeof *x0), *bg = malloc(L->n * sizeof *bg);
    float ts[3];
    setok_tensor sample = {0}, pred;
    setok_arena arena = {0};
    setok_status st = xin && batch_in && eps && noise && x0 && bg
                          ? SETOK_OK
                          : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&sample, d->backend, d->dtype, 4,
                                (int64_t[]){L->batch, in_ch, L->h, L->w}, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend,
                              setok_unet_arena_bytes(d->unet, L->batch, L->h, L->w,
                                                     L->embeds.shape[1]),
                              err);
    for (int i = start; i < total && st == SETOK_OK; i++) {
        if (cancelled(o)) {
            st = setok_fail(err, SETOK_ERR_CANCELLED, "diffusion: cancelled at step %d of %d",
                            i - start, total - start);
            break;
        }
        st = setok_scheduler_scale_model_input(L->sched, i, xin, x, L->n, err);
        for (int b = 0; b < L->batch && st == SETOK_OK; b++) {
            fill_input(L, batch_in + b * in_n, xin, b);
            ts[b] = timesteps[i];
        }
        if (st == SETOK_OK)
            st = setok_tensor_upload_f32(&sample, batch_in, err);
        setok_arena_reset(&arena, 0);
        if (st == SETOK_OK)
            st = setok_unet_forward(d->unet, &arena, &pred, &sample, ts, &L->embeds, o->cancel,
                                    err);
        if (st == SETOK_OK)
            st = setok_tensor_download_f32(eps, &pred, err);
        if (st != SETOK_OK)
            break;
        /* batch order: CFG [uncond, cond]; InstructPix2Pix [full, image only, uncond] */
        if (L->batch == 2)
            setok_guidance_cfg(eps, eps, eps + L->n, o->guidance, L->n);
        else if (L->batch == 3)
            setok_guidance_ip2p(eps, eps + 2 * L->n, eps + L->n, eps, o->guidance,
                                o->image_guidance, L->n);
        setok_rng_normal_fill(&L->rng, noise, L->n);
        st = setok_scheduler_step(L->sched, i, x, x0, eps, x, noise, L->n, err);
        if (st == SETOK_OK && L->blend_mask) {
            /* outside the region: the source at the noise level of the next step */
            if (i + 1 < total)
                st = setok_scheduler_add_noise(L->sched, i + 1, bg, L->blend_source, L->noise0,
                                               L->n, err);
            else
                memcpy(bg, L->blend_source, L->n * sizeof *bg);
            size_t hw = (size_t)L->h * L->w;
            for (size_t k = 0; k < L->n && st == SETOK_OK; k++) {
                float m = L->blend_mask[k % hw];
                x[k] = m * x[k] + (1.0f - m) * bg[k];
            }
        }
        if (st == SETOK_OK && o->on_step)
            o->on_step(i - start + 1, total - start, o->user);
        if (st == SETOK_OK && o->on_preview && o->preview_every > 0 &&
            (i - start + 1) % o->preview_every == 0 && i + 1 < total)
            st = preview(d, x0, L->h, L->w, i - start + 1, o, err);
    }
    setok_arena_destroy(&arena);
    setok_tensor_free(&sample);
    free(xin);
    free(batch_in);
    free(eps);
    free(noise);
    free(x0);
    free(bg);
    return st;
}

/* ---------------------------------------------------------------------------
 * decoding and encoding */

/* x [1, C, h, w] (scaled latents) -> out RGB, (h * s) x (w * s). */
static setok_status decode(setok_diffusion *d, const float *x, int h, int w,
                           const setok_diffusion_options *o, setok_image *out, setok_error *err)
{
    int s = setok_vae_downscale(d->vae), C = d->latent_channels;
    int64_t H = (int64_t)h * s, W = (int64_t)w * s, n = (int64_t)C * h * w;
    /* tiles beyond twice the VAE's native size keep memory flat */
    int native = setok_vae_get_config(d->vae)->sample_size;
    int tile = (H > 2 * native || W > 2 * native) ? native : 0;
    float inv = 1.0f / setok_vae_scaling_factor(d->vae);
    float *lat = malloc((size_t)n * sizeof *lat), *px = malloc((size_t)(3 * H * W) * sizeof *px);
    setok_tensor latents = {0}, pixels;
    setok_arena arena = {0};
    setok_status st = lat && px ? SETOK_OK
                                : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    for (int64_t i = 0; i < n && st == SETOK_OK; i++)
        lat[i] = x[i] * inv;
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&latents, d->backend, d->dtype, 4, (int64_t[]){1, C, h, w}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&latents, lat, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend,
                              setok_vae_decode_arena_bytes(d->vae, 1, h, w, tile), err);
    if (st == SETOK_OK)
        st = setok_vae_decode(d->vae, &arena, &pixels, &latents, tile, NULL, NULL, o->cancel, err);
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(px, &pixels, err);
    if (st == SETOK_OK)
        st = setok_image_alloc(out, (int)W, (int)H, 3, err);
    for (int64_t p = 0; p < H * W && st == SETOK_OK; p++)
        for (int c = 0; c < 3; c++) {
            /* diffusers: (x / 2 + 0.5).clamp(0, 1), then (x * 255).round() */
            float v = px[c * H * W + p] * 0.5f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            out->pixels[p * 3 + c] = (uint8_t)lrintf(v * 255.0f);
        }
    setok_arena_destroy(&arena);
    setok_tensor_free(&latents);
    free(lat);
    free(px);
    return st;
}

/* rgb -> pixels [3, H, W] in [-1, 1], as diffusers' image processor normalizes them. */
static float *normalized_pixels(const setok_image *rgb)
{
    size_t hw = (size_t)rgb->width * rgb->height;
    float *px = malloc(3 * hw * sizeof *px);
    for (size_t p = 0; px && p < hw; p++)
        for (int c = 0; c < 3; c++)
            px[c * hw + p] = rgb->pixels[p * 3 + c] / 255.0f * 2.0f - 1.0f;
    return px;
}

/* px [3, H, W] in [-1, 1] -> the latent mean [1, C, H / s, W / s] (unscaled), the mode
 * diffusers' pipelines take with sample_mode "argmax". */
static setok_status encode_pixels(setok_diffusion *d, const float *px, int64_t H, int64_t W,
                                  float *mean_out, const atomic_bool *cancel, setok_error *err)
{
    setok_tensor pixels = {0}, mean, logvar;
    setok_arena arena = {0};
    setok_status st = setok_tensor_alloc(&pixels, d->backend, d->dtype, 4,
                                         (int64_t[]){1, 3, H, W}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&pixels, px, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend, setok_vae_encode_arena_bytes(d->vae, 1, H, W),
                              err);
    if (st == SETOK_OK)
        st = setok_vae_encode(d->vae, &arena, &mean, &logvar, &pixels, cancel, err);
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(mean_out, &mean, err);
    setok_arena_destroy(&arena);
    setok_tensor_free(&pixels);
    return st;
}

/* rgb (the model's size) -> the latent mean [1, C, h, w] (unscaled). */
static setok_status encode_image(setok_diffusion *d, const setok_image *rgb, float *mean_out,
                                 const atomic_bool *cancel, setok_error *err)
{
    float *px = normalized_pixels(rgb);
    setok_status st = px ? encode_pixels(d, px, rgb->height, rgb->width, mean_out, cancel, err)
                         : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    free(px);
    return st;
}

/* ---------------------------------------------------------------------------
 * an inpainting U-Net's extra channels */

/* mask (the model's size, > 127 = repaint) -> the U-Net's mask channel [h * w]: diffusers
 * interpolates the binarized mask to the latent size with "nearest", which reads the top-left
 * pixel of every s x s block. */
static float *inpaint_mask_channel(const setok_image *mask, int h, int w, int s)
{
    float *m = malloc((size_t)h * w * sizeof *m);
    for (int y = 0; m && y < h; y++)
        for (int x = 0; x < w; x++)
            m[y * w + x] =
                mask->pixels[((size_t)y * s * mask->width + (size_t)x * s) * mask->channels] > 127;
    return m;
}

/* rgb and mask (the model's size) -> the masked image's latents [C, h, w], scaled: the image
 * in [-1, 1] times (mask < 0.5), through the VAE. rgb NULL: an all-zero image. */
static setok_status masked_image_latents(setok_diffusion *d, const setok_image *rgb,
                                         const setok_image *mask, int H, int W, float *out,
                                         const atomic_bool *cancel, setok_error *err)
{
    size_t hw = (size_t)H * W;
    float *px = rgb ? normalized_pixels(rgb) : calloc(3 * hw, sizeof *px);
    if (!px)
        return setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    for (size_t p = 0; rgb && p < hw; p++)
        if (mask->pixels[p * mask->channels] > 127)
            px[p] = px[hw + p] = px[2 * hw + p] = 0.0f;
    setok_status st = encode_pixels(d, px, H, W, out, cancel, err);
    float scale = setok_vae_scaling_factor(d->vae);
    int s = setok_vae_downscale(d->vae);
    size_t n = (size_t)d->latent_channels * (size_t)(H / s) * (size_t)(W / s);
    for (size_t i = 0; st == SETOK_OK && i < n; i++)
        out[i] *= scale;
    free(px);
    return st;
}

/* ---------------------------------------------------------------------------
 * generate */

/* The options' ranges; a bundle's guidance is against zeros, so it takes no negative prompt. */
static setok_status check_options(const setok_diffusion *d, const setok_diffusion_options *o,
                                  setok_error *err)
{
    if (!o->prompt && !o->condition_tokens)
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: no prompt");
    if (o->condition_tokens && (o->condition_count < 1 || o->condition_count > 4096))
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: condition_count must be 1..4096, "
                          "got %d", o->condition_count);
    if (o->steps < 1 || o->steps > 1000)
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: steps must be 1..1000, got %d",
                          o->steps);
    if (!(o->guidance >= 0.0f && o->guidance <= 100.0f) ||
        !(o->image_guidance >= 0.0f && o->image_guidance <= 100.0f))
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: guidance must be in [0, 100]");
    if (!(o->strength > 0.0f && o->strength <= 1.0f))
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: strength must be in (0, 1]");
    if (o->feather < 0 || o->feather > 256)
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: feather must be 0..256 pixels");
    if (o->context < SETOK_DIFFUSION_WHOLE_IMAGE || o->context > 65536)
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: context must be 0..65536 pixels, "
                          "got %d", o->context);
    if (d->chat && o->negative_prompt && o->negative_prompt[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: a SETOKIM bundle takes no negative prompt",
                          setok_model_dir(d->model));
    if (!d->chat && o->condition_tokens)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: condition tokens need a SETOKIM bundle",
                          setok_model_dir(d->model));
    return SETOK_OK;
}

static setok_status open_scheduler(setok_diffusion *d, const setok_diffusion_options *o,
                                   setok_scheduler **out, setok_error *err)
{
    setok_status st = setok_scheduler_load(out, setok_model_scheduler_dir(d->model), o->scheduler, err);
    if (st == SETOK_OK)
        st = setok_scheduler_set_timesteps(*out, o->steps, err);
    return st;
}

setok_status setok_diffusion_generate(setok_diffusion *d, const setok_diffusion_options *o,
                                      setok_image *out, setok_error *err)
{
    memset(out, 0, sizeof *out);
    setok_status st = check_options(d, o, err);
    if (st != SETOK_OK)
        return st;
    if (setok_diffusion_is_instruct(d))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: an InstructPix2Pix U-Net edits images; it "
                          "does not generate from a prompt alone", setok_model_dir(d->model));
    int m = setok_diffusion_size_multiple(d), s = setok_vae_downscale(d->vae);
    int W = o->width > 0 ? o->width : setok_diffusion_default_size(d);
    int H = o->height > 0 ? o->height : setok_diffusion_default_size(d);
    if (W % m || H % m || W > 8192 || H > 8192)
        return setok_fail(err, SETOK_ERR_INPUT, "diffusion: the size %dx%d must be a multiple "
                          "of %d, at most 8192", W, H, m);
    loop L = {.d = d, .o = o, .h = H / s, .w = W / s};
    L.n = (size_t)d->latent_channels * L.h * L.w;
    L.batch = o->guidance > 1.0f ? 2 : 1;
    setok_rng_seed(&L.rng, o->seed);
    float *x = malloc(L.n * sizeof *x), *ones = NULL, *masked = NULL;
    const char *prompts[2] = {o->negative_prompt ? o->negative_prompt : "", o->prompt};
    st = x ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    if (st == SETOK_OK && setok_diffusion_is_inpaint(d)) {
        /* an inpainting U-Net draws everything: an all-ones mask over an all-zero image */
        ones = malloc((size_t)L.h * L.w * sizeof *ones);
        masked = malloc(L.n * sizeof *masked);
        st = ones && masked ? masked_image_latents(d, NULL, NULL, H, W, masked, o->cancel, err)
                            : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
        for (size_t i = 0; st == SETOK_OK && i < (size_t)L.h * L.w; i++)
            ones[i] = 1.0f;
        L.inpaint_mask = ones;
        L.masked_latents = masked;
    }
    if (st == SETOK_OK)
        st = open_scheduler(d, o, &L.sched, err);
    if (st == SETOK_OK && d->chat)
        st = visual_condition(d, NULL, o, L.batch, &L.embeds, err);
    else if (st == SETOK_OK)
        st = encode_prompts(d, L.batch == 2 ? prompts : prompts + 1, L.batch, &L.embeds,
                            o->cancel, err);
    if (st == SETOK_OK) {
        if (o->initial_latents)
            memcpy(x, o->initial_latents, L.n * sizeof *x);
        else
            setok_rng_normal_fill(&L.rng, x, L.n);
        float sigma = setok_scheduler_init_noise_sigma(L.sched);
        for (size_t i = 0; i < L.n; i++)
            x[i] *= sigma;
        st = run_loop(&L, x, 0, err);
    }
    if (st == SETOK_OK)
        st = decode(d, x, L.h, L.w, o, out, err);
    if (st == SETOK_OK && o->final_latents) {
        *o->final_latents = x;
        x = NULL;
    }
    if (st != SETOK_OK)
        setok_image_free(out);
    setok_tensor_free(&L.embeds);
    setok_scheduler_free(L.sched);
    free(x);
    free(ones);
    free(masked);
    return st;
}

/* ---------------------------------------------------------------------------
 * edit */

/* The composite weight of every pixel: 0 outside the mask, rising from the mask's edge to 1 at
 * `feather` pixels inside it (chamfer distance to the nearest outside pixel). */
static float *feather_weights(const setok_image *mask, int feather)
{
    int W = mask->width, H = mask->height;
    float *d = malloc((size_t)W * H * sizeof *d);
    if (!d)
        return NULL;
    const float big = 1e9f;
    for (int i = 0; i < W * H; i++)
        d[i] = mask->pixels[(size_t)i * mask->channels] > 127 ? big : 0.0f;
    for (int y = 0; y < H; y++) /* forward pass: up and left neighbours */
        for (int x = 0; x < W; x++) {
            float *v = &d[y * W + x];
            if (*v == 0.0f)
                continue;
            float best = *v;
            if (x > 0 && d[y * W + x - 1] + 1.0f < best)
                best = d[y * W + x - 1] + 1.0f;
            if (y > 0 && d[(y - 1) * W + x] + 1.0f < best)
                best = d[(y - 1) * W + x] + 1.0f;
            if (x > 0 && y > 0 && d[(y - 1) * W + x - 1] + 1.4142f < best)
                best = d[(y - 1) * W + x - 1] + 1.4142f;
            if (x + 1 < W && y > 0 && d[(y - 1) * W + x + 1] + 1.4142f < best)
                best = d[(y - 1) * W + x + 1] + 1.4142f;
            *v = best;
        }
    for (int y = H - 1; y >= 0; y--) /* backward pass: down and right neighbours */
        for (int x = W - 1; x >= 0; x--) {
            float *v = &d[y * W + x];
            if (*v == 0.0f)
                continue;
            float best = *v;
            if (x + 1 < W && d[y * W + x + 1] + 1.0f < best)
                best = d[y * W + x + 1] + 1.0f;
            if (y + 1 < H && d[(y + 1) * W + x] + 1.0f < best)
                best = d[(y + 1) * W + x] + 1.0f;
            if (x + 1 < W && y + 1 < H && d[(y + 1) * W + x + 1] + 1.4142f < best)
                best = d[(y + 1) * W + x + 1] + 1.4142f;
            if (x > 0 && y + 1 < H && d[(y + 1) * W + x - 1] + 1.4142f < best)
                best = d[(y + 1) * W + x - 1] + 1.4142f;
            *v = best;
        }
    for (int i = 0; i < W * H; i++)
        d[i] = d[i] == 0.0f ? 0.0f : feather <= 0 ? 1.0f : fminf(1.0f, d[i] / (float)feather);
    return d;
}

/* mask (the model's size) -> [h * w] latent weights: 1 where any pixel of the latent's block
 * is in the region, so the edit covers the whole region. */
static float *latent_mask(const setok_image *mask, int h, int w, int s)
{
    float *m = calloc((size_t)h * w, sizeof *m);
    if (!m)
        return NULL;
    for (int y = 0; y < mask->height; y++)
        for (int x = 0; x < mask->width; x++)
            if (mask->pixels[((size_t)y * mask->width + x) * mask->channels] > 127)
                m[(y / s) * w + x / s] = 1.0f;
    return m;
}

/* The model size for an image: the longer side at the default size (or the image's own, if
 * smaller), both rounded to the size multiple. */
static void model_size(const setok_diffusion *d, int W, int H, int *mw, int *mh)
{
    int m = setok_diffusion_size_multiple(d), target = setok_diffusion_default_size(d);
    double scale = (double)target / (W > H ? W : H);
    if (scale > 1.0)
        scale = 1.0;
    *mw = (int)lround(W * scale / m) * m;
    *mh = (int)lround(H * scale / m) * m;
    *mw = *mw < m ? m : *mw;
    *mh = *mh < m ? m : *mh;
}

setok_status setok_diffusion_edit_window(const setok_diffusion *d, const setok_image *mask,
                                         int context, setok_diffusion_window *out,
                                         setok_error *err)
{
    memset(out, 0, sizeof *out);
    if (!mask || !mask->pixels || mask->width < 1 || mask->height < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: no mask");
    int W = mask->width, H = mask->height;
    if ((uint64_t)W * (uint64_t)H > SETOK_IMAGE_DEFAULT_MAX_PIXELS)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: the image is %dx%d, %llu pixels; the limit "
                          "is %llu", W, H, (unsigned long long)W * (unsigned long long)H,
                          (unsigned long long)SETOK_IMAGE_DEFAULT_MAX_PIXELS);
    if (context < SETOK_DIFFUSION_WHOLE_IMAGE)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: context must be >= 0, got %d", context);
    int x0 = W, y0 = H, x1 = 0, y1 = 0; /* the region's bounding box, ends exclusive */
    for (int y = 0; y < H; y++) {
        const uint8_t *row = mask->pixels + (size_t)y * W * mask->channels;
        for (int x = 0; x < W; x++)
            if (row[(size_t)x * mask->channels] > 127) {
                x0 = x < x0 ? x : x0;
                x1 = x + 1 > x1 ? x + 1 : x1;
                y0 = y < y0 ? y : y0;
                y1 = y + 1;
            }
    }
    if (x1 == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: the region is empty");
    int ww = W, wh = H;
    if (context != SETOK_DIFFUSION_WHOLE_IMAGE) {
        int64_t m = setok_diffusion_size_multiple(d), native = setok_diffusion_default_size(d);
        int64_t side = (x1 - x0 > y1 - y0 ? x1 - x0 : y1 - y0) + 2 * (int64_t)context;
        side = side < native ? native : side;
        side = (side + m - 1) / m * m;
        ww = side < W ? (int)side : W;
        wh = side < H ? (int)side : H;
        /* centred on the box, then shifted into the image; the box stays inside */
        int left = (x0 + x1 - ww) / 2, top = (y0 + y1 - wh) / 2;
        out->x = left < 0 ? 0 : left > W - ww ? W - ww : left;
        out->y = top < 0 ? 0 : top > H - wh ? H - wh : top;
    }
    out->width = ww;
    out->height = wh;
    model_size(d, ww, wh, &out->model_width, &out->model_height);
    return SETOK_OK;
}

/* dst = the w x h rectangle of src at (x, y) (allocated). */
static setok_status cut(setok_image *dst, const setok_image *src, int x, int y, int w, int h,
                        setok_error *err)
{
    setok_status st = setok_image_alloc(dst, w, h, src->channels, err);
    size_t row = (size_t)w * src->channels;
    for (int r = 0; st == SETOK_OK && r < h; r++)
        memcpy(dst->pixels + (size_t)r * row,
               src->pixels + (((size_t)(y + r) * src->width + x) * src->channels), row);
    return st;
}

/* rgb and mask (the window) -> edited (RGB, model_w x model_h): the denoising of one window
 * at the model's size. */
static setok_status edit_at_model_size(setok_diffusion *d, const setok_image *rgb,
                                       const setok_image *mask, int mw, int mh,
                                       const setok_diffusion_options *o, setok_image *edited,
                                       setok_error *err)
{
    int s = setok_vae_downscale(d->vae);
    bool ip2p = setok_diffusion_is_instruct(d), inpaint = setok_diffusion_is_inpaint(d);
    loop L = {.d = d, .o = o, .h = mh / s, .w = mw / s};
    L.n = (size_t)d->latent_channels * L.h * L.w;
    L.batch = ip2p ? 3 : o->guidance > 1.0f ? 2 : 1;
    setok_rng_seed(&L.rng, o->seed);
    setok_image small = {0}, small_mask = {0};
    float *src = malloc(L.n * sizeof *src), *x = malloc(L.n * sizeof *x);
    float *noise0 = malloc(L.n * sizeof *noise0), *lmask = NULL, *masked = NULL;
    float *image_latents = NULL;
    const char *prompts[3] = {o->prompt, o->negative_prompt ? o->negative_prompt : "",
                              o->negative_prompt ? o->negative_prompt : ""};
    const char *cfg_prompts[2] = {prompts[1], o->prompt};
    setok_status st = src && x && noise0 ? SETOK_OK
                                         : setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    /* an inpainting pipeline's processors resize with Lanczos; its mask is binarized at 0.5 */
    if (st == SETOK_OK)
        st = setok_image_resize(&small, rgb, mw, mh,
                                inpaint ? SETOK_RESAMPLE_LANCZOS : SETOK_RESAMPLE_BICUBIC, err);
    if (st == SETOK_OK)
        st = setok_image_resize(&small_mask, mask, mw, mh,
                                inpaint ? SETOK_RESAMPLE_LANCZOS : SETOK_RESAMPLE_NEAREST, err);
    if (st == SETOK_OK && !(lmask = inpaint ? inpaint_mask_channel(&small_mask, L.h, L.w, s)
                                            : latent_mask(&small_mask, L.h, L.w, s)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    /* InstructPix2Pix, and inpainting at strength 1, start from noise; the inpainting U-Net
     * then has no use for the image's own latents */
    bool from_noise = ip2p || (inpaint && o->strength >= 1.0f);
    bool need_source = !inpaint || !from_noise;
    if (st == SETOK_OK && need_source)
        st = encode_image(d, &small, src, o->cancel, err);
    if (st == SETOK_OK && inpaint) {
        masked = malloc(L.n * sizeof *masked);
        st = masked ? masked_image_latents(d, &small, &small_mask, mh, mw, masked, o->cancel, err)
                    : setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
        L.inpaint_mask = lmask;
        L.masked_latents = masked;
    }
    if (st == SETOK_OK)
        st = open_scheduler(d, o, &L.sched, err);
    if (st == SETOK_OK && d->chat)
        st = visual_condition(d, rgb, o, L.batch, &L.embeds, err);
    else if (st == SETOK_OK)
        st = encode_prompts(d, ip2p ? prompts : L.batch == 2 ? cfg_prompts : cfg_prompts + 1,
                            L.batch, &L.embeds, o->cancel, err);
    if (st == SETOK_OK && ip2p) {
        /* InstructPix2Pix conditions on the unscaled latent mode and starts from noise */
        image_latents = malloc(L.n * sizeof *image_latents);
        if (!image_latents)
            st = setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
        else
            memcpy(image_latents, src, L.n * sizeof *src);
        L.image_latents = image_latents;
    }
    int start = 0;
    if (st == SETOK_OK) {
        float scale = setok_vae_scaling_factor(d->vae);
        for (size_t i = 0; i < L.n && need_source; i++)
            src[i] *= scale;
        if (o->initial_latents)
            memcpy(noise0, o->initial_latents, L.n * sizeof *noise0);
        else
            setok_rng_normal_fill(&L.rng, noise0, L.n);
        int total = 0;
        setok_scheduler_timesteps(L.sched, &total);
        start = ip2p ? 0 : setok_scheduler_start_index(L.sched, o->strength);
        if (start >= total)
            start = total - 1;
        if (from_noise) {
            float sigma = setok_scheduler_init_noise_sigma(L.sched);
            for (size_t i = 0; i < L.n; i++)
                x[i] = noise0[i] * sigma;
        } else {
            st = setok_scheduler_add_noise(L.sched, start, x, src, noise0, L.n, err);
        }
        if (!inpaint) {
            L.blend_source = src;
            L.blend_mask = lmask;
            L.noise0 = noise0;
        }
    }
    if (st == SETOK_OK)
        st = run_loop(&L, x, start, err);
    if (st == SETOK_OK)
        st = decode(d, x, L.h, L.w, o, edited, err);
    if (st == SETOK_OK && o->final_latents) {
        *o->final_latents = x;
        x = NULL;
    }
    setok_tensor_free(&L.embeds);
    setok_scheduler_free(L.sched);
    setok_image_free(&small);
    setok_image_free(&small_mask);
    free(image_latents);
    free(masked);
    free(src);
    free(x);
    free(noise0);
    free(lmask);
    return st;
}

setok_status setok_diffusion_edit(setok_diffusion *d, const setok_image *image,
                                  const setok_image *mask, const setok_diffusion_options *o,
                                  setok_image *out, setok_error *err)
{
    memset(out, 0, sizeof *out);
    setok_status st = check_options(d, o, err);
    if (st != SETOK_OK)
        return st;
    if (!image || !mask || mask->width != image->width || mask->height != image->height)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: the mask must have the image's size");
    setok_diffusion_window win;
    st = setok_diffusion_edit_window(d, mask, o->context, &win, err);
    if (st != SETOK_OK)
        return st;
    /* the feathering reads one pixel around the window (outside the region: the box is inside) */
    int fx = win.x > 0 ? win.x - 1 : 0, fy = win.y > 0 ? win.y - 1 : 0;
    int fw = (win.x + win.width < image->width ? win.x + win.width + 1 : image->width) - fx;
    int fh = (win.y + win.height < image->height ? win.y + win.height + 1 : image->height) - fy;
    setok_image rgb = {0}, window_mask = {0}, ring_mask = {0}, edited = {0}, back = {0};
    float *weights = NULL;
    st = setok_image_to_rgb(out, image, err);
    if (st == SETOK_OK)
        st = cut(&rgb, out, win.x, win.y, win.width, win.height, err);
    if (st == SETOK_OK)
        st = cut(&window_mask, mask, win.x, win.y, win.width, win.height, err);
    if (st == SETOK_OK)
        st = edit_at_model_size(d, &rgb, &window_mask, win.model_width, win.model_height, o,
                                &edited, err);
    if (st == SETOK_OK)
        st = setok_image_resize(&back, &edited, win.width, win.height, SETOK_RESAMPLE_BICUBIC,
                                err);
    if (st == SETOK_OK)
        st = cut(&ring_mask, mask, fx, fy, fw, fh, err);
    if (st == SETOK_OK && !(weights = feather_weights(&ring_mask, o->feather)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    for (int y = 0; st == SETOK_OK && y < win.height; y++)
        for (int x = 0; x < win.width; x++) {
            float f = weights[(size_t)(win.y + y - fy) * fw + (win.x + x - fx)];
            uint8_t *a = out->pixels + ((size_t)(win.y + y) * image->width + win.x + x) * 3;
            const uint8_t *b = back.pixels + ((size_t)y * win.width + x) * 3;
            for (int c = 0; f > 0.0f && c < 3; c++)
                a[c] = (uint8_t)lrintf((1.0f - f) * (float)a[c] + f * (float)b[c]);
        }
    if (st != SETOK_OK)
        setok_image_free(out);
    setok_image_free(&rgb);
    setok_image_free(&window_mask);
    setok_image_free(&ring_mask);
    setok_image_free(&edited);
    setok_image_free(&back);
    free(weights);
    return st;
}
