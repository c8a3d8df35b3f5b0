/* diffusion.c — text-to-image and region editing on a diffusers Stable Diffusion folder or
 * a SETOKIM bundle (see diffusion.h): the U-Net's conditioning (CLIP text, or the bundle's
 * visual tokens through the mapper), the denoising loop with guidance, latent blending for
 * edits, VAE decoding, the feathered pixel composite and cheap previews. */
#include "setok/diffusion.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/bundle.h"
#include "setok/chat.h"
#include "setok/config.h"
#include "setok/models/clip_text.h"
#include "setok/models/qformer.h"
#include "setok/models/unet.h"
#include "setok/models/vae.h"
#include "setok/sampling.h"
#include "setok/tokenizer.h"

#define MAX_LATENT_CHANNELS 16

struct setok_diffusion {
    char dir[PATH_MAX];
    char sched_dir[PATH_MAX];
    /* a SETOKIM bundle: the LLM emits visual tokens, the mapper turns them into the
     * U-Net's encoder_hidden_states; unconditional = zeros */
    setok_chat *chat;
    setok_qformer *mapper;
    /* a Stable Diffusion folder: the CLIP text encoder */
    setok_backend *backend;
    setok_dtype dtype;
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
    void *staging;             /* model-dtype copies for upload / download */
    size_t staging_bytes;
};

void setok_diffusion_options_default(setok_diffusion_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 25;
    o->guidance = 7.5f;
    o->image_guidance = 1.5f;
    o->strength = 0.8f;
    o->feather = 4;
    o->scheduler = SETOK_SCHEDULER_FROM_CONFIG;
}

/* ---------------------------------------------------------------------------
 * loading */

/* out = dir/name; false when it does not fit. */
static bool join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < size;
}

static setok_status component(char *out, size_t size, const char *dir, const char *name,
                              setok_error *err)
{
    struct stat sb;
    if (!join(out, size, dir, name))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: path too long", dir);
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a Stable Diffusion folder (no %s/ "
                          "component folder)", dir, name);
    return SETOK_OK;
}

/* model_index.json, when present, must name a Stable Diffusion pipeline. */
static setok_status check_index(const char *dir, setok_error *err)
{
    char path[PATH_MAX];
    struct stat sb;
    if (!join(path, sizeof path, dir, "model_index.json") || stat(path, &sb) != 0)
        return SETOK_OK;
    setok_config *cfg = NULL;
    const char *cls = NULL;
    setok_status st = setok_config_load(&cfg, path, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "_class_name", "", &cls, err);
    if (st == SETOK_OK && strncmp(cls, "StableDiffusion", 15) != 0)
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: _class_name '%s' is not a Stable "
                        "Diffusion pipeline", path, cls);
    setok_config_free(cfg);
    return st;
}

/* The tokenizer's model_max_length and pad token (tokenizer_config.json). */
static setok_status tokenizer_settings(setok_diffusion *d, const char *tok_dir, setok_error *err)
{
    char path[PATH_MAX];
    struct stat sb;
    d->max_tokens = 77;
    d->pad_id = setok_text_tokenizer_eos_id(d->tok);
    if (!join(path, sizeof path, tok_dir, "tokenizer_config.json") || stat(path, &sb) != 0)
        return SETOK_OK;
    setok_config *cfg = NULL;
    setok_status st = setok_config_load(&cfg, path, err);
    int64_t max_len = d->max_tokens;
    if (st == SETOK_OK)
        st = setok_config_int_or(cfg, "model_max_length", max_len, &max_len, err);
    if (st == SETOK_OK && max_len >= 2 && max_len <= 4096)
        d->max_tokens = (int)max_len;
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

/* A Stable Diffusion folder: the text side, and where the rest is. */
static setok_status open_sd(setok_diffusion *d, const char *dir, char *unet_dir, char *vae_dir,
                            setok_error *err)
{
    char text_dir[PATH_MAX], tok_dir[PATH_MAX];
    setok_status st = check_index(dir, err);
    if (st == SETOK_OK)
        st = component(text_dir, sizeof text_dir, dir, "text_encoder", err);
    if (st == SETOK_OK)
        st = component(tok_dir, sizeof tok_dir, dir, "tokenizer", err);
    if (st == SETOK_OK)
        st = component(unet_dir, PATH_MAX, dir, "unet", err);
    if (st == SETOK_OK)
        st = component(vae_dir, PATH_MAX, dir, "vae", err);
    if (st == SETOK_OK)
        st = component(d->sched_dir, sizeof d->sched_dir, dir, "scheduler", err);
    if (st == SETOK_OK)
        st = setok_text_tokenizer_load(&d->tok, tok_dir, err);
    if (st == SETOK_OK)
        st = tokenizer_settings(d, tok_dir, err);
    if (st == SETOK_OK)
        st = setok_clip_text_load(&d->text, text_dir, d->backend, d->dtype, err);
    if (st == SETOK_OK) {
        const setok_clip_text_config *tc = setok_clip_text_get_config(d->text);
        if (d->max_tokens > tc->max_position_embeddings)
            d->max_tokens = tc->max_position_embeddings;
    }
    return st;
}

/* A SETOKIM bundle: the chat model (LLM + visual tokens), the mapper, and where the rest is. */
static setok_status open_bundle(setok_diffusion *d, const char *dir, const char *device,
                                int threads, char *unet_dir, char *vae_dir, setok_error *err)
{
    static const setok_bundle_component needed[] = {
        SETOK_BUNDLE_PROJECTOR_OUT, SETOK_BUNDLE_MAPPER, SETOK_BUNDLE_UNET, SETOK_BUNDLE_VAE,
        SETOK_BUNDLE_SCHEDULER};
    setok_bundle b;
    const char *path = NULL;
    setok_status st = setok_bundle_load(&b, dir, err);
    for (size_t i = 0; st == SETOK_OK && i < sizeof needed / sizeof *needed; i++)
        st = setok_bundle_require(&b, needed[i], "generating images", &path, err);
    if (st == SETOK_OK && b.n_visual_tokens == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: no visual_tokens, so this bundle cannot "
                        "generate images", b.manifest);
    if (st == SETOK_OK) {
        snprintf(unet_dir, PATH_MAX, "%s", b.components[SETOK_BUNDLE_UNET]);
        snprintf(vae_dir, PATH_MAX, "%s", b.components[SETOK_BUNDLE_VAE]);
        snprintf(d->sched_dir, sizeof d->sched_dir, "%s", b.components[SETOK_BUNDLE_SCHEDULER]);
        st = setok_qformer_load(&d->mapper, b.components[SETOK_BUNDLE_MAPPER], d->backend,
                                d->dtype, err);
    }
    if (st == SETOK_OK && setok_qformer_num_query_tokens(d->mapper) == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: the mapper has no query_tokens",
                        b.components[SETOK_BUNDLE_MAPPER]);
    if (st == SETOK_OK)
        st = setok_chat_open(&d->chat, dir, device, threads, 0, err);
    if (st == SETOK_OK && setok_chat_visual_token_dim(d->chat) !=
                              setok_qformer_get_config(d->mapper)->encoder_hidden_size)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: encoder_hidden_size %d is not "
                        "projector_out's out_features %d", b.components[SETOK_BUNDLE_MAPPER],
                        setok_qformer_get_config(d->mapper)->encoder_hidden_size,
                        setok_chat_visual_token_dim(d->chat));
    setok_bundle_free(&b);
    return st;
}

/* The width of the U-Net's conditioning: the text encoder's or the mapper's hidden size. */
static int condition_dim(const setok_diffusion *d)
{
    return d->mapper ? setok_qformer_get_config(d->mapper)->hidden_size
                     : setok_clip_text_get_config(d->text)->hidden_size;
}

setok_status setok_diffusion_open(setok_diffusion **out, const char *dir, const char *device,
                                  int threads, setok_error *err)
{
    *out = NULL;
    setok_diffusion *d = calloc(1, sizeof *d);
    if (!d)
        return setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    char unet_dir[PATH_MAX], vae_dir[PATH_MAX];
    setok_status st =
        setok_backend_create_by_name(&d->backend, device ? device : "auto", threads, err);
    if (st == SETOK_OK) {
        d->dtype = setok_backend_is_host(d->backend) ? SETOK_F32 : SETOK_F16;
        st = setok_bundle_is_bundle(dir)
                 ? open_bundle(d, dir, device, threads, unet_dir, vae_dir, err)
                 : open_sd(d, dir, unet_dir, vae_dir, err);
    }
    if (st == SETOK_OK) {
        /* the scheduler config is read per call (the caller may pick another kind); check
         * it now so a bad folder fails here */
        setok_scheduler_config sc;
        st = setok_scheduler_config_load(&sc, d->sched_dir, SETOK_SCHEDULER_FROM_CONFIG, err);
    }
    if (st == SETOK_OK)
        st = setok_unet_load(&d->unet, unet_dir, d->backend, d->dtype, err);
    if (st == SETOK_OK)
        st = setok_vae_load(&d->vae, vae_dir, d->backend, d->dtype, err);
    if (st == SETOK_OK) {
        const setok_unet_config *uc = setok_unet_get_config(d->unet);
        const setok_vae_config *vc = setok_vae_get_config(d->vae);
        d->latent_channels = uc->out_channels;
        if (uc->cross_attention_dim[0] != condition_dim(d))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: the U-Net's cross_attention_dim %d is not "
                            "the %s's hidden_size %d", unet_dir, uc->cross_attention_dim[0],
                            d->mapper ? "mapper" : "text encoder", condition_dim(d));
        else if (vc->latent_channels != uc->out_channels ||
                 (uc->in_channels != vc->latent_channels &&
                  uc->in_channels != 2 * vc->latent_channels))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: the U-Net's in/out channels %d/%d do not "
                            "fit the VAE's %d latent channels", dir, uc->in_channels,
                            uc->out_channels, vc->latent_channels);
        else if (vc->latent_channels > MAX_LATENT_CHANNELS)
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %d latent channels, at most %d",
                            dir, vc->latent_channels, MAX_LATENT_CHANNELS);
    }
    if (st == SETOK_OK) {
        char path[PATH_MAX];
        setok_config *cfg = NULL;
        int64_t size = 64;
        st = join(path, sizeof path, unet_dir, "config.json")
                 ? setok_config_load(&cfg, path, err)
                 : setok_fail(err, SETOK_ERR_INPUT, "%s: path too long", unet_dir);
        if (st == SETOK_OK)
            st = setok_config_int_or(cfg, "sample_size", size, &size, err);
        if (st == SETOK_OK && (size < 1 || size > 4096))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: sample_size %lld is out of range", path,
                            (long long)size);
        d->sample_size = (int)size;
        setok_config_free(cfg);
    }
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
    setok_vae_free(d->vae);
    setok_unet_free(d->unet);
    setok_clip_text_free(d->text);
    setok_text_tokenizer_free(d->tok);
    setok_qformer_free(d->mapper);
    setok_chat_free(d->chat);
    setok_backend_free(d->backend);
    free(d->staging);
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

const char *setok_diffusion_device(const setok_diffusion *d)
{
    return setok_backend_description(d->backend);
}

/* ---------------------------------------------------------------------------
 * host <-> device */

static setok_status staging(setok_diffusion *d, size_t bytes, setok_error *err)
{
    if (bytes <= d->staging_bytes)
        return SETOK_OK;
    void *p = realloc(d->staging, bytes);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    d->staging = p;
    d->staging_bytes = bytes;
    return SETOK_OK;
}

static setok_status upload(setok_diffusion *d, setok_tensor *dst, const float *src,
                           setok_error *err)
{
    int64_t n = setok_tensor_numel(dst);
    if (dst->dtype == SETOK_F32)
        return setok_tensor_upload(dst, src, err);
    setok_status st = staging(d, (size_t)n * setok_dtype_size(dst->dtype), err);
    for (int64_t i = 0; i < n && st == SETOK_OK; i++)
        setok_store_f32(d->staging, dst->dtype, i, src[i]);
    return st == SETOK_OK ? setok_tensor_upload(dst, d->staging, err) : st;
}

static setok_status download(setok_diffusion *d, float *dst, const setok_tensor *src,
                             setok_error *err)
{
    int64_t n = setok_tensor_numel(src);
    setok_status st = setok_backend_synchronize(d->backend, err);
    if (st == SETOK_OK && src->dtype == SETOK_F32)
        return setok_tensor_download(dst, src, err);
    if (st == SETOK_OK)
        st = staging(d, (size_t)n * setok_dtype_size(src->dtype), err);
    if (st == SETOK_OK)
        st = setok_tensor_download(d->staging, src, err);
    for (int64_t i = 0; i < n && st == SETOK_OK; i++)
        dst[i] = setok_load_f32(d->staging, src->dtype, i);
    return st;
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
        st = upload(d, &enc, tokens, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend, setok_qformer_arena_bytes(d->mapper, 1, q, k),
                              err);
    if (st == SETOK_OK)
        st = setok_qformer_forward(d->mapper, &arena, &last, NULL, &enc, NULL, cancel, err);
    if (st == SETOK_OK)
        st = download(d, cond + (batch - 1) * q * h, &last, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(embeds, d->backend, d->dtype, 3, (int64_t[]){batch, q, h}, err);
    if (st == SETOK_OK)
        st = upload(d, embeds, cond, err);
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
        st = upload(d, &pixels, px, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend,
                              setok_vae_encode_arena_bytes(d->vae, COLOURS, s, s), err);
    if (st == SETOK_OK)
        st = setok_vae_encode(d->vae, &arena, &mean, &logvar, &pixels, NULL, err);
    int64_t lhw = setok_tensor_numel(&mean) / (COLOURS * C);
    if (st == SETOK_OK && !(lat = malloc((size_t)setok_tensor_numel(&mean) * sizeof *lat)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    if (st == SETOK_OK)
        st = download(d, lat, &mean, err);
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
 * InstructPix2Pix U-Net (zero for its unconditional item). */
static void fill_input(const loop *L, float *dst, const float *xin, int item)
{
    memcpy(dst, xin, L->n * sizeof *dst);
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
            st = upload(d, &sample, batch_in, err);
        setok_arena_reset(&arena, 0);
        if (st == SETOK_OK)
            st = setok_unet_forward(d->unet, &arena, &pred, &sample, ts, &L->embeds, o->cancel,
                                    err);
        if (st == SETOK_OK)
            st = download(d, eps, &pred, err);
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
        st = upload(d, &latents, lat, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend,
                              setok_vae_decode_arena_bytes(d->vae, 1, h, w, tile), err);
    if (st == SETOK_OK)
        st = setok_vae_decode(d->vae, &arena, &pixels, &latents, tile, NULL, NULL, o->cancel, err);
    if (st == SETOK_OK)
        st = download(d, px, &pixels, err);
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

/* rgb (the model's size) -> the latent mean [1, C, h, w] (unscaled). */
static setok_status encode_image(setok_diffusion *d, const setok_image *rgb, float *mean_out,
                                 const atomic_bool *cancel, setok_error *err)
{
    int64_t H = rgb->height, W = rgb->width, hw = H * W;
    float *px = malloc((size_t)(3 * hw) * sizeof *px);
    setok_tensor pixels = {0}, mean, logvar;
    setok_arena arena = {0};
    setok_status st = px ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
    for (int64_t p = 0; p < hw && st == SETOK_OK; p++)
        for (int c = 0; c < 3; c++)
            px[c * hw + p] = rgb->pixels[p * 3 + c] / 127.5f - 1.0f; /* [0, 255] -> [-1, 1] */
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&pixels, d->backend, d->dtype, 4, (int64_t[]){1, 3, H, W}, err);
    if (st == SETOK_OK)
        st = upload(d, &pixels, px, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, d->backend, setok_vae_encode_arena_bytes(d->vae, 1, H, W),
                              err);
    if (st == SETOK_OK)
        st = setok_vae_encode(d->vae, &arena, &mean, &logvar, &pixels, cancel, err);
    if (st == SETOK_OK)
        st = download(d, mean_out, &mean, err);
    setok_arena_destroy(&arena);
    setok_tensor_free(&pixels);
    free(px);
    return st;
}

/* ---------------------------------------------------------------------------
 * generate */

static setok_status check_options(const setok_diffusion_options *o, setok_error *err)
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
    return SETOK_OK;
}

/* The bundle's guidance is against zeros: it has no negative prompt. */
static setok_status check_bundle_options(const setok_diffusion *d,
                                         const setok_diffusion_options *o, setok_error *err)
{
    if (d->chat && o->negative_prompt && o->negative_prompt[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: a SETOKIM bundle takes no negative prompt",
                          d->dir);
    if (!d->chat && o->condition_tokens)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: condition tokens need a SETOKIM bundle",
                          d->dir);
    return SETOK_OK;
}

static setok_status open_scheduler(setok_diffusion *d, const setok_diffusion_options *o,
                                   setok_scheduler **out, setok_error *err)
{
    setok_status st = setok_scheduler_load(out, d->sched_dir, o->scheduler, err);
    if (st == SETOK_OK)
        st = setok_scheduler_set_timesteps(*out, o->steps, err);
    return st;
}

setok_status setok_diffusion_generate(setok_diffusion *d, const setok_diffusion_options *o,
                                      setok_image *out, setok_error *err)
{
    memset(out, 0, sizeof *out);
    setok_status st = check_options(o, err);
    if (st == SETOK_OK)
        st = check_bundle_options(d, o, err);
    if (st != SETOK_OK)
        return st;
    if (setok_diffusion_is_instruct(d))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: an InstructPix2Pix U-Net edits images; it "
                          "does not generate from a prompt alone", d->dir);
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
    float *x = malloc(L.n * sizeof *x);
    const char *prompts[2] = {o->negative_prompt ? o->negative_prompt : "", o->prompt};
    st = x ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "diffusion: out of memory");
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

setok_status setok_diffusion_edit(setok_diffusion *d, const setok_image *image,
                                  const setok_image *mask, const setok_diffusion_options *o,
                                  setok_image *out, setok_error *err)
{
    memset(out, 0, sizeof *out);
    setok_status st = check_options(o, err);
    if (st == SETOK_OK)
        st = check_bundle_options(d, o, err);
    if (st != SETOK_OK)
        return st;
    if (!image || !mask || mask->width != image->width || mask->height != image->height)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: the mask must have the image's size");
    bool any = false;
    for (size_t i = 0; i < (size_t)mask->width * mask->height && !any; i++)
        any = mask->pixels[i * mask->channels] > 127;
    if (!any)
        return setok_fail(err, SETOK_ERR_INPUT, "edit: the region is empty");
    int s = setok_vae_downscale(d->vae), mw, mh;
    model_size(d, image->width, image->height, &mw, &mh);
    bool ip2p = setok_diffusion_is_instruct(d);
    loop L = {.d = d, .o = o, .h = mh / s, .w = mw / s};
    L.n = (size_t)d->latent_channels * L.h * L.w;
    L.batch = ip2p ? 3 : o->guidance > 1.0f ? 2 : 1;
    setok_rng_seed(&L.rng, o->seed);
    setok_image rgb = {0}, small = {0}, small_mask = {0}, edited = {0}, back = {0};
    float *src = malloc(L.n * sizeof *src), *x = malloc(L.n * sizeof *x);
    float *noise0 = malloc(L.n * sizeof *noise0), *lmask = NULL, *weights = NULL;
    const char *prompts[3] = {o->prompt, o->negative_prompt ? o->negative_prompt : "",
                              o->negative_prompt ? o->negative_prompt : ""};
    const char *cfg_prompts[2] = {prompts[1], o->prompt};
    st = src && x && noise0 ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    if (st == SETOK_OK)
        st = setok_image_to_rgb(&rgb, image, err);
    if (st == SETOK_OK)
        st = setok_image_resize(&small, &rgb, mw, mh, SETOK_RESAMPLE_BICUBIC, err);
    if (st == SETOK_OK)
        st = setok_image_resize(&small_mask, mask, mw, mh, SETOK_RESAMPLE_NEAREST, err);
    if (st == SETOK_OK && !(lmask = latent_mask(&small_mask, L.h, L.w, s)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    if (st == SETOK_OK)
        st = encode_image(d, &small, src, o->cancel, err);
    if (st == SETOK_OK)
        st = open_scheduler(d, o, &L.sched, err);
    if (st == SETOK_OK && d->chat)
        st = visual_condition(d, &rgb, o, L.batch, &L.embeds, err);
    else if (st == SETOK_OK)
        st = encode_prompts(d, ip2p ? prompts : L.batch == 2 ? cfg_prompts : cfg_prompts + 1,
                            L.batch, &L.embeds, o->cancel, err);
    float *image_latents = NULL;
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
        for (size_t i = 0; i < L.n; i++)
            src[i] *= scale;
        setok_rng_normal_fill(&L.rng, noise0, L.n);
        int total = 0;
        setok_scheduler_timesteps(L.sched, &total);
        start = ip2p ? 0 : setok_scheduler_start_index(L.sched, o->strength);
        if (start >= total)
            start = total - 1;
        if (ip2p) {
            float sigma = setok_scheduler_init_noise_sigma(L.sched);
            for (size_t i = 0; i < L.n; i++)
                x[i] = noise0[i] * sigma;
        } else {
            st = setok_scheduler_add_noise(L.sched, start, x, src, noise0, L.n, err);
        }
        L.blend_source = src;
        L.blend_mask = lmask;
        L.noise0 = noise0;
    }
    if (st == SETOK_OK)
        st = run_loop(&L, x, start, err);
    if (st == SETOK_OK)
        st = decode(d, x, L.h, L.w, o, &edited, err);
    if (st == SETOK_OK)
        st = setok_image_resize(&back, &edited, image->width, image->height,
                                SETOK_RESAMPLE_BICUBIC, err);
    if (st == SETOK_OK && !(weights = feather_weights(mask, o->feather)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "edit: out of memory");
    if (st == SETOK_OK)
        st = setok_image_alloc(out, image->width, image->height, 3, err);
    for (size_t p = 0; st == SETOK_OK && p < (size_t)image->width * image->height; p++)
        for (int c = 0; c < 3; c++) {
            float f = weights[p];
            uint8_t a = rgb.pixels[p * 3 + c], b = back.pixels[p * 3 + c];
            out->pixels[p * 3 + c] =
                f == 0.0f ? a : (uint8_t)lrintf((1.0f - f) * (float)a + f * (float)b);
        }
    if (st != SETOK_OK)
        setok_image_free(out);
    setok_tensor_free(&L.embeds);
    setok_scheduler_free(L.sched);
    setok_image_free(&rgb);
    setok_image_free(&small);
    setok_image_free(&small_mask);
    setok_image_free(&edited);
    setok_image_free(&back);
    free(image_latents);
    free(src);
    free(x);
    free(noise0);
    free(lmask);
    free(weights);
    return st;
}
