/* vae.c — the image autoencoder, mirroring diffusers' AutoencoderKL
 * (autoencoder_kl.py, vae.py: Encoder, Decoder, DownEncoderBlock2D,
 * UpDecoderBlock2D, UNetMidBlock2D): config, weights, encode, decode and
 * tiled decode.
 *
 * Rules: the running activation ping-pongs between two arena buffers sized
 * for the largest one; each layer's scratch sits above them and is reset by
 * the layer (diffusion-blocks.c). Tiled decode keeps two rows of decoded
 * tiles, because a tile blends into the already blended tiles above and to
 * its left, as diffusers blends its tiles in place. */
#include "setok/models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "diffusion-blocks.h"
#include "setok/config.h"
#include "setok/ops.h"
#include "setok/weights.h"

typedef struct vae_mid {
    diffusion_resnet r0, r1;
    diffusion_attention attn;
    bool has_attn;
} vae_mid;

typedef struct vae_level {
    diffusion_resnet *resnets;
    int count;
    bool has_resample;
    diffusion_downsample down; /* encoder levels */
    diffusion_upsample up;     /* decoder levels */
} vae_level;

struct setok_vae {
    setok_vae_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    /* encoder */
    setok_tensor enc_in_w, enc_in_b, enc_norm_w, enc_norm_b, enc_out_w, enc_out_b;
    vae_level down[SETOK_VAE_MAX_LEVELS];
    vae_mid enc_mid;
    setok_tensor quant_w, quant_b;
    /* decoder */
    setok_tensor post_quant_w, post_quant_b;
    setok_tensor dec_in_w, dec_in_b, dec_norm_w, dec_norm_b, dec_out_w, dec_out_b;
    vae_mid dec_mid;
    vae_level up[SETOK_VAE_MAX_LEVELS];
};

/* The overlap diffusers' tiling uses between neighbouring tiles. */
static const double TILE_OVERLAP = 0.25;
/* GroupNorm eps of every encoder and decoder norm. */
static const float VAE_EPS = 1e-6f;

/* ---------------------------------------------------------------------------
 * config */

/* key must be an array of n strings, each equal to want. */
static setok_status block_types(const setok_config *json, const char *key, const char *want,
                                int n, setok_error *err)
{
    const char *path = setok_config_path(json);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(setok_config_root(json), key);
    if (!a || cJSON_IsNull(a))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s is missing", path, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must list %d block types, one per "
                          "block_out_channels entry", path, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(s) || strcmp(s->valuestring, want))
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s[%d] is %s%s%s; only %s is "
                              "supported", path, key, i, cJSON_IsString(s) ? "'" : "",
                              cJSON_IsString(s) ? s->valuestring : "not a string",
                              cJSON_IsString(s) ? "'" : "", want);
    }
    return SETOK_OK;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_vae_config *c = out;
    const char *path = setok_config_path(json);
    const cJSON *root = setok_config_root(json);
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cJSON_IsString(cls) && strcmp(cls->valuestring, "AutoencoderKL"))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: _class_name is '%s', not AutoencoderKL",
                          path, cls->valuestring);
    *c = (setok_vae_config){.in_channels = 3, .out_channels = 3, .latent_channels = 4,
                            .layers_per_block = 1, .norm_num_groups = 32, .sample_size = 32,
                            .scaling_factor = 0.18215f, .use_quant_conv = true,
                            .use_post_quant_conv = true, .mid_block_add_attention = true};
    int64_t boc[SETOK_VAE_MAX_LEVELS];
    size_t n = 0;
    setok_status st = SETOK_OK;
    if (setok_config_has(json, "block_out_channels"))
        st = setok_config_int_array(json, "block_out_channels", boc, SETOK_VAE_MAX_LEVELS, &n,
                                    err);
    else
        boc[n++] = 64; /* AutoencoderKL's default (64,) */
    if (st != SETOK_OK)
        return st;
    if (n < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels is empty", path);
    c->num_levels = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (boc[i] < 1 || boc[i] > 1 << 16)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels[%zu] is %lld, must "
                              "be in [1, 65536]", path, i, (long long)boc[i]);
        c->block_out_channels[i] = (int)boc[i];
    }
    st = setok_config_int_in(json, "in_channels", false, 1, 64, &c->in_channels, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "out_channels", false, 1, 64, &c->out_channels, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "latent_channels", false, 1, 1024, &c->latent_channels,
                                 err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "layers_per_block", false, 1, 64, &c->layers_per_block,
                                 err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "norm_num_groups", false, 1, 1 << 16,
                                 &c->norm_num_groups, err);
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(root, "sample_size");
    if (st == SETOK_OK && cJSON_IsArray(ss))
        ss = cJSON_GetArrayItem(ss, 0); /* (height, width): diffusers tiles by the first */
    if (st == SETOK_OK && ss && !cJSON_IsNull(ss)) {
        if (!cJSON_IsNumber(ss) || ss->valuedouble < 1 || ss->valuedouble > 1 << 20 ||
            ss->valuedouble != (double)(int)ss->valuedouble)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: sample_size must be a positive "
                              "integer", path);
        c->sample_size = (int)ss->valuedouble;
    }
    double scaling = c->scaling_factor;
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "scaling_factor", scaling, &scaling, err);
    if (st == SETOK_OK && !(scaling > 0.0 && isfinite(scaling)))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: scaling_factor must be positive, got %g",
                        path, scaling);
    c->scaling_factor = (float)scaling;
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "use_quant_conv", true, &c->use_quant_conv, err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "use_post_quant_conv", true, &c->use_post_quant_conv,
                                  err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "mid_block_add_attention", true,
                                  &c->mid_block_add_attention, err);
    const char *act = NULL;
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "act_fn", "silu", &act, err);
    if (st == SETOK_OK && strcmp(act, "silu") && strcmp(act, "swish"))
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: act_fn '%s' is not supported (silu "
                        "only)", path, act);
    if (st == SETOK_OK && setok_config_has(json, "down_block_types"))
        st = block_types(json, "down_block_types", "DownEncoderBlock2D", c->num_levels, err);
    if (st == SETOK_OK && setok_config_has(json, "up_block_types"))
        st = block_types(json, "up_block_types", "UpDecoderBlock2D", c->num_levels, err);
    for (int i = 0; i < c->num_levels && st == SETOK_OK; i++)
        if (c->block_out_channels[i] % c->norm_num_groups)
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels[%d] = %d is not a "
                            "multiple of norm_num_groups %d", path, i, c->block_out_channels[i],
                            c->norm_num_groups);
    return st;
}

setok_status setok_vae_config_load(setok_vae_config *cfg, const char *dir, setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

static void mid_free(vae_mid *m)
{
    diffusion_resnet_free(&m->r0);
    diffusion_resnet_free(&m->r1);
    diffusion_attention_free(&m->attn);
}

static void level_free(vae_level *l)
{
    for (int i = 0; l->resnets && i < l->count; i++)
        diffusion_resnet_free(&l->resnets[i]);
    free(l->resnets);
    l->resnets = NULL;
    diffusion_downsample_free(&l->down);
    diffusion_upsample_free(&l->up);
}

void setok_vae_free(setok_vae *vae)
{
    if (!vae)
        return;
    for (int i = 0; i < SETOK_VAE_MAX_LEVELS; i++) {
        level_free(&vae->down[i]);
        level_free(&vae->up[i]);
    }
    mid_free(&vae->enc_mid);
    mid_free(&vae->dec_mid);
    setok_tensor *all[] = {&vae->enc_in_w,  &vae->enc_in_b,  &vae->enc_norm_w,   &vae->enc_norm_b,
                           &vae->enc_out_w, &vae->enc_out_b, &vae->quant_w,      &vae->quant_b,
                           &vae->post_quant_w, &vae->post_quant_b, &vae->dec_in_w, &vae->dec_in_b,
                           &vae->dec_norm_w, &vae->dec_norm_b, &vae->dec_out_w, &vae->dec_out_b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        setok_tensor_free(all[i]);
    free(vae);
}

/* UNetMidBlock2D: resnets.0, attentions.0 (one head of all C channels), resnets.1 */
static setok_status mid_load(vae_mid *m, const setok_loader *ld, const char *prefix,
                             const setok_vae_config *c, setok_error *err)
{
    int64_t C = c->block_out_channels[c->num_levels - 1];
    int g = c->norm_num_groups;
    char p[128];
    snprintf(p, sizeof p, "%s.resnets.0", prefix);
    setok_status st = diffusion_resnet_load(&m->r0, ld, p, C, C, 0, g, VAE_EPS, 1.0f, err);
    snprintf(p, sizeof p, "%s.resnets.1", prefix);
    if (st == SETOK_OK)
        st = diffusion_resnet_load(&m->r1, ld, p, C, C, 0, g, VAE_EPS, 1.0f, err);
    m->has_attn = c->mid_block_add_attention;
    snprintf(p, sizeof p, "%s.attentions.0", prefix);
    if (st == SETOK_OK && m->has_attn)
        st = diffusion_attention_load(&m->attn, ld, p, C, 1, g, VAE_EPS, 1.0f, err);
    return st;
}

static setok_status level_alloc(vae_level *l, int count, setok_error *err)
{
    l->resnets = calloc((size_t)count, sizeof *l->resnets);
    if (!l->resnets)
        return setok_fail(err, SETOK_ERR_NOMEM, "vae: out of memory");
    l->count = count;
    return SETOK_OK;
}

static setok_status load_encoder(setok_vae *vae, const setok_loader *ld, setok_error *err)
{
    const setok_vae_config *c = &vae->cfg;
    const int *boc = c->block_out_channels;
    int g = c->norm_num_groups, n = c->num_levels, L = c->layers_per_block;
    int64_t lat2 = 2 * (int64_t)c->latent_channels;
    unsigned quant = c->use_quant_conv ? 0 : SETOK_WEIGHT_SKIP;
    const setok_weight head[] = {
        {&vae->enc_in_w, "encoder.conv_in.weight", 4, {boc[0], c->in_channels, 3, 3}, 0},
        {&vae->enc_in_b, "encoder.conv_in.bias", 1, {boc[0]}, 0},
    };
    const setok_weight tail[] = {
        {&vae->enc_norm_w, "encoder.conv_norm_out.weight", 1, {boc[n - 1]}, 0},
        {&vae->enc_norm_b, "encoder.conv_norm_out.bias", 1, {boc[n - 1]}, 0},
        {&vae->enc_out_w, "encoder.conv_out.weight", 4, {lat2, boc[n - 1], 3, 3}, 0},
        {&vae->enc_out_b, "encoder.conv_out.bias", 1, {lat2}, 0},
        {&vae->quant_w, "quant_conv.weight", 4, {lat2, lat2, 1, 1}, quant},
        {&vae->quant_b, "quant_conv.bias", 1, {lat2}, quant},
    };
    setok_status st = setok_loader_load(ld, "", head, sizeof head / sizeof *head, err);
    for (int i = 0; i < n && st == SETOK_OK; i++) {
        vae_level *l = &vae->down[i];
        int64_t in = i == 0 ? boc[0] : boc[i - 1];
        st = level_alloc(l, L, err);
        for (int j = 0; j < L && st == SETOK_OK; j++) {
            char p[128];
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            st = diffusion_resnet_load(&l->resnets[j], ld, p, j == 0 ? in : boc[i], boc[i], 0, g,
                                       VAE_EPS, 1.0f, err);
        }
        l->has_resample = i < n - 1;
        if (st == SETOK_OK && l->has_resample) {
            char p[128];
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0", i);
            st = diffusion_downsample_load(&l->down, ld, p, boc[i], 0, err);
        }
    }
    if (st == SETOK_OK)
        st = mid_load(&vae->enc_mid, ld, "encoder.mid_block", c, err);
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", tail, sizeof tail / sizeof *tail, err);
    return st;
}

static setok_status load_decoder(setok_vae *vae, const setok_loader *ld, setok_error *err)
{
    const setok_vae_config *c = &vae->cfg;
    const int *boc = c->block_out_channels;
    int g = c->norm_num_groups, n = c->num_levels, L = c->layers_per_block + 1;
    int64_t lat = c->latent_channels;
    unsigned quant = c->use_post_quant_conv ? 0 : SETOK_WEIGHT_SKIP;
    const setok_weight head[] = {
        {&vae->post_quant_w, "post_quant_conv.weight", 4, {lat, lat, 1, 1}, quant},
        {&vae->post_quant_b, "post_quant_conv.bias", 1, {lat}, quant},
        {&vae->dec_in_w, "decoder.conv_in.weight", 4, {boc[n - 1], lat, 3, 3}, 0},
        {&vae->dec_in_b, "decoder.conv_in.bias", 1, {boc[n - 1]}, 0},
    };
    const setok_weight tail[] = {
        {&vae->dec_norm_w, "decoder.conv_norm_out.weight", 1, {boc[0]}, 0},
        {&vae->dec_norm_b, "decoder.conv_norm_out.bias", 1, {boc[0]}, 0},
        {&vae->dec_out_w, "decoder.conv_out.weight", 4, {c->out_channels, boc[0], 3, 3}, 0},
        {&vae->dec_out_b, "decoder.conv_out.bias", 1, {c->out_channels}, 0},
    };
    setok_status st = setok_loader_load(ld, "", head, sizeof head / sizeof *head, err);
    if (st == SETOK_OK)
        st = mid_load(&vae->dec_mid, ld, "decoder.mid_block", c, err);
    for (int i = 0; i < n && st == SETOK_OK; i++) {
        vae_level *l = &vae->up[i];
        int64_t out = boc[n - 1 - i], prev = boc[n - 1 - (i > 0 ? i - 1 : 0)];
        st = level_alloc(l, L, err);
        for (int j = 0; j < L && st == SETOK_OK; j++) {
            char p[128];
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            st = diffusion_resnet_load(&l->resnets[j], ld, p, j == 0 ? prev : out, out, 0, g,
                                       VAE_EPS, 1.0f, err);
        }
        l->has_resample = i < n - 1;
        if (st == SETOK_OK && l->has_resample) {
            char p[128];
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0", i);
            st = diffusion_upsample_load(&l->up, ld, p, out, err);
        }
    }
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", tail, sizeof tail / sizeof *tail, err);
    return st;
}

void setok_vae_config_sd15(setok_vae_config *c)
{
    *c = (setok_vae_config){.in_channels = 3, .out_channels = 3, .latent_channels = 4,
                            .num_levels = 4, .block_out_channels = {128, 256, 512, 512},
                            .layers_per_block = 2, .norm_num_groups = 32, .sample_size = 512,
                            .scaling_factor = 0.18215f, .use_quant_conv = true,
                            .use_post_quant_conv = true, .mid_block_add_attention = true};
}

/* A VAE of cfg's shape with its weights from ld (a checkpoint, or random values). */
static setok_status vae_build(setok_vae **out, const setok_vae_config *cfg,
                              const setok_loader *ld, setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(ld->dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "vae: dtype must be f32, f16 or bf16, got %s",
                          setok_dtype_name(ld->dtype));
    setok_vae *vae = calloc(1, sizeof *vae);
    if (!vae)
        return setok_fail(err, SETOK_ERR_NOMEM, "vae: out of memory");
    vae->backend = ld->backend;
    vae->dtype = ld->dtype;
    vae->cfg = *cfg;
    setok_status st = load_encoder(vae, ld, err);
    if (st == SETOK_OK)
        st = load_decoder(vae, ld, err);
    if (st != SETOK_OK) {
        setok_vae_free(vae);
        return st;
    }
    *out = vae;
    return SETOK_OK;
}

setok_status setok_vae_create_random(setok_vae **out, const setok_vae_config *cfg,
                                     setok_backend *backend, setok_dtype dtype, uint32_t seed,
                                     setok_error *err)
{
    *out = NULL;
    if (cfg->num_levels < 1 || cfg->num_levels > SETOK_VAE_MAX_LEVELS)
        return setok_fail(err, SETOK_ERR_INPUT, "vae: %d levels, must be 1..%d", cfg->num_levels,
                          SETOK_VAE_MAX_LEVELS);
    uint32_t state = seed * 2654435761u + 7u;
    setok_loader ld = {.backend = backend, .dtype = dtype, .matrix = dtype, .random_state = &state};
    return vae_build(out, cfg, &ld, err);
}

setok_status setok_vae_load(setok_vae **out, const char *dir, setok_backend *backend,
                            setok_dtype dtype, setok_error *err)
{
    *out = NULL;
    setok_vae_config cfg;
    setok_weights *w = NULL;
    setok_status st = setok_vae_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype, .matrix = dtype};
        st = vae_build(out, &cfg, &ld, err);
    }
    setok_weights_close(w);
    return st;
}

const setok_vae_config *setok_vae_get_config(const setok_vae *vae)
{
    return &vae->cfg;
}

setok_dtype setok_vae_dtype(const setok_vae *vae)
{
    return vae->dtype;
}

float setok_vae_scaling_factor(const setok_vae *vae)
{
    return vae->cfg.scaling_factor;
}

int setok_vae_downscale(const setok_vae *vae)
{
    return 1 << (vae->cfg.num_levels - 1);
}

/* ---------------------------------------------------------------------------
 * sizes */

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The largest activation (elements) and layer scratch (bytes) of one pass. */
typedef struct vae_plan {
    int64_t act;
    size_t scratch;
} vae_plan;

static void plan_act(vae_plan *p, int64_t numel)
{
    p->act = numel > p->act ? numel : p->act;
}

static void plan_mid(vae_plan *p, const vae_mid *m, int64_t B, int64_t H, int64_t W, size_t e)
{
    p->scratch = max_size(p->scratch, diffusion_resnet_scratch(&m->r0, B, H, W, e));
    if (m->has_attn)
        p->scratch = max_size(p->scratch, diffusion_attention_scratch(&m->attn, B, H, W, e));
}

static vae_plan encoder_plan(const setok_vae *vae, int64_t B, int64_t H, int64_t W)
{
    const setok_vae_config *c = &vae->cfg;
    size_t e = setok_dtype_size(vae->dtype);
    vae_plan p = {0, 0};
    plan_act(&p, B * c->block_out_channels[0] * H * W);
    for (int i = 0; i < c->num_levels; i++) {
        const vae_level *l = &vae->down[i];
        for (int j = 0; j < l->count; j++) {
            plan_act(&p, B * l->resnets[j].out_ch * H * W);
            p.scratch = max_size(p.scratch, diffusion_resnet_scratch(&l->resnets[j], B, H, W, e));
        }
        if (l->has_resample) {
            p.scratch = max_size(p.scratch, diffusion_downsample_scratch(&l->down, B, H, W, e));
            H = diffusion_downsample_extent(&l->down, H);
            W = diffusion_downsample_extent(&l->down, W);
            plan_act(&p, B * l->down.ch * H * W);
        }
    }
    plan_mid(&p, &vae->enc_mid, B, H, W, e);
    plan_act(&p, B * 2 * c->latent_channels * H * W);
    return p;
}

static vae_plan decoder_plan(const setok_vae *vae, int64_t B, int64_t H, int64_t W)
{
    const setok_vae_config *c = &vae->cfg;
    size_t e = setok_dtype_size(vae->dtype);
    vae_plan p = {0, 0};
    plan_act(&p, B * c->latent_channels * H * W);
    plan_act(&p, B * c->block_out_channels[c->num_levels - 1] * H * W);
    plan_mid(&p, &vae->dec_mid, B, H, W, e);
    for (int i = 0; i < c->num_levels; i++) {
        const vae_level *l = &vae->up[i];
        for (int j = 0; j < l->count; j++) {
            plan_act(&p, B * l->resnets[j].out_ch * H * W);
            p.scratch = max_size(p.scratch, diffusion_resnet_scratch(&l->resnets[j], B, H, W, e));
        }
        if (l->has_resample) {
            p.scratch = max_size(p.scratch, diffusion_upsample_scratch(&l->up, B, H, W, e));
            H *= 2;
            W *= 2;
            plan_act(&p, B * l->up.ch * H * W);
        }
    }
    return p;
}

/* Two ping-pong buffers plus the largest scratch. */
static size_t plan_bytes(const vae_plan *p, size_t e)
{
    return 2 * diffusion_slot(p->act, e) + p->scratch;
}

size_t setok_vae_encode_arena_bytes(const setok_vae *vae, int64_t batch, int64_t height,
                                    int64_t width)
{
    size_t e = setok_dtype_size(vae->dtype);
    int s = setok_vae_downscale(vae);
    vae_plan p = encoder_plan(vae, batch, height, width);
    int64_t out = batch * vae->cfg.latent_channels * (height / s) * (width / s);
    return 2 * diffusion_slot(out, e) + plan_bytes(&p, e) + 4096;
}

/* The geometry of a tiled decode (AutoencoderKL.tiled_decode). */
typedef struct tiling {
    int64_t latent_tile, sample_tile, overlap, blend, row_limit;
    int64_t rows, cols, out_h, out_w;
} tiling;

static bool tiling_plan(tiling *t, const setok_vae *vae, int64_t h, int64_t w, int tile_size)
{
    int s = setok_vae_downscale(vae);
    memset(t, 0, sizeof *t);
    if (tile_size <= 0)
        return false;
    t->sample_tile = tile_size;
    t->latent_tile = (int64_t)((double)tile_size / s);
    if (h <= t->latent_tile && w <= t->latent_tile)
        return false;
    t->overlap = (int64_t)((double)t->latent_tile * (1.0 - TILE_OVERLAP));
    t->blend = (int64_t)((double)t->sample_tile * TILE_OVERLAP);
    t->row_limit = t->sample_tile - t->blend;
    if (t->overlap < 1)
        return true; /* refused by setok_vae_decode */
    t->rows = (h + t->overlap - 1) / t->overlap;
    t->cols = (w + t->overlap - 1) / t->overlap;
    for (int64_t i = 0; i < t->rows; i++) {
        int64_t th = h - i * t->overlap < t->latent_tile ? h - i * t->overlap : t->latent_tile;
        t->out_h += th * s < t->row_limit ? th * s : t->row_limit;
    }
    for (int64_t j = 0; j < t->cols; j++) {
        int64_t tw = w - j * t->overlap < t->latent_tile ? w - j * t->overlap : t->latent_tile;
        t->out_w += tw * s < t->row_limit ? tw * s : t->row_limit;
    }
    return true;
}

static size_t decode_core_bytes(const setok_vae *vae, int64_t B, int64_t h, int64_t w)
{
    vae_plan p = decoder_plan(vae, B, h, w);
    return plan_bytes(&p, setok_dtype_size(vae->dtype));
}

size_t setok_vae_decode_arena_bytes(const setok_vae *vae, int64_t batch, int64_t height,
                                    int64_t width, int tile_size)
{
    size_t e = setok_dtype_size(vae->dtype);
    int64_t s = setok_vae_downscale(vae), oc = vae->cfg.out_channels;
    tiling t;
    if (!tiling_plan(&t, vae, height, width, tile_size) || t.overlap < 1)
        return diffusion_slot(batch * oc * height * s * width * s, e) +
               decode_core_bytes(vae, batch, height, width) + 4096;
    int64_t th = height < t.latent_tile ? height : t.latent_tile;
    int64_t tw = width < t.latent_tile ? width : t.latent_tile;
    size_t tile = diffusion_slot(batch * oc * t.sample_tile * t.sample_tile, e);
    size_t blend = 2 * diffusion_slot(batch * oc * t.blend * t.sample_tile, e) +
                   2 * diffusion_slot(t.blend, e);
    /* per tile: its latents, then the decoder, then the blends */
    size_t work = diffusion_slot(batch * vae->cfg.latent_channels * th * tw, e) +
                  max_size(decode_core_bytes(vae, batch, th, tw), blend);
    return diffusion_slot(batch * oc * t.out_h * t.out_w, e) + 2 * (size_t)t.cols * tile + work +
           4096;
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_cancel(const atomic_bool *cancel, const char *where, setok_error *err)
{
    if (cancel && atomic_load(cancel))
        return setok_fail(err, SETOK_ERR_CANCELLED, "vae: cancelled before %s", where);
    return SETOK_OK;
}

/* The running activation and the buffer it does not occupy. */
typedef struct pingpong {
    void *buf[2];
    int cur;
    setok_tensor x;
} pingpong;

/* A tensor of shape over the free buffer; after the layer wrote it, flip(). */
static setok_tensor pp_next(const pingpong *pp, setok_backend *be, setok_dtype dtype,
                            const int64_t *shape)
{
    return setok_tensor_make(pp->buf[1 - pp->cur], be, dtype, 4, shape);
}

static void pp_flip(pingpong *pp, const setok_tensor *y)
{
    pp->cur = 1 - pp->cur;
    pp->x = *y;
}

// x: [B, C, H, W] -> x through resnets.0, attentions.0, resnets.1
static setok_status mid_forward(setok_backend *be, setok_arena *arena, pingpong *pp,
                                const vae_mid *m, setok_error *err)
{
    setok_tensor y = pp_next(pp, be, pp->x.dtype, pp->x.shape);
    setok_status st = diffusion_resnet_forward(be, arena, &y, &pp->x, NULL, &m->r0, err);
    if (st == SETOK_OK)
        pp_flip(pp, &y);
    if (st == SETOK_OK && m->has_attn) {
        y = pp_next(pp, be, pp->x.dtype, pp->x.shape);
        st = diffusion_attention_forward(be, arena, &y, &pp->x, &m->attn, err);
        if (st == SETOK_OK)
            pp_flip(pp, &y);
    }
    if (st == SETOK_OK) {
        y = pp_next(pp, be, pp->x.dtype, pp->x.shape);
        st = diffusion_resnet_forward(be, arena, &y, &pp->x, NULL, &m->r1, err);
        if (st == SETOK_OK)
            pp_flip(pp, &y);
    }
    return st;
}

// x: [B, C, H, W] -> y: [B, OC, H, W] = conv_out(silu(group_norm(x))); tmp: [B, C, H, W]
static setok_status norm_act_conv(setok_backend *be, setok_tensor *y, setok_tensor *tmp,
                                  const setok_tensor *x, const setok_tensor *norm_w,
                                  const setok_tensor *norm_b, const setok_tensor *conv_w,
                                  const setok_tensor *conv_b, int groups, setok_error *err)
{
    setok_status st = setok_groupnorm(be, tmp, x, norm_w, norm_b, groups, VAE_EPS, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_SILU, tmp, tmp, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, y, tmp, conv_w, conv_b, 1, 1, err);
    return st;
}

static setok_status check_input(const setok_vae *vae, const setok_arena *arena,
                                const setok_tensor *x, int64_t channels, int64_t multiple,
                                const char *name, setok_error *err)
{
    char buf[96];
    if (!x || x->ndim != 4 || x->shape[1] != channels || x->dtype != vae->dtype ||
        !setok_tensor_is_contiguous(x))
        return setok_fail(err, SETOK_ERR_INPUT, "vae: %s must be a contiguous [B, %lld, H, W] "
                          "%s tensor, got %s", name, (long long)channels,
                          setok_dtype_name(vae->dtype),
                          x ? setok_tensor_describe(x, buf, sizeof buf) : "none");
    if (x->backend != vae->backend || arena->backend != vae->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "vae: %s and the arena must be on the model's "
                          "backend (%s)", name, setok_backend_name(vae->backend));
    if (x->shape[0] < 1 || x->shape[2] < 1 || x->shape[3] < 1 || x->shape[2] % multiple ||
        x->shape[3] % multiple)
        return setok_fail(err, SETOK_ERR_INPUT, "vae: %s is %s; height and width must be "
                          "positive multiples of %lld", name,
                          setok_tensor_describe(x, buf, sizeof buf), (long long)multiple);
    return SETOK_OK;
}

setok_status setok_vae_encode(setok_vae *vae, setok_arena *arena, setok_tensor *mean,
                              setok_tensor *logvar, const setok_tensor *pixels,
                              const atomic_bool *cancel, setok_error *err)
{
    const setok_vae_config *c = &vae->cfg;
    setok_backend *be = vae->backend;
    setok_dtype dt = vae->dtype;
    size_t e = setok_dtype_size(dt);
    setok_status st = check_input(vae, arena, pixels, c->in_channels, setok_vae_downscale(vae),
                                  "pixels", err);
    if (st != SETOK_OK)
        return st;
    int64_t B = pixels->shape[0], H = pixels->shape[2], W = pixels->shape[3];
    int64_t lat = c->latent_channels, s = setok_vae_downscale(vae);
    int64_t lat_shape[4] = {B, lat, H / s, W / s};
    vae_plan plan = encoder_plan(vae, B, H, W);
    size_t start = setok_arena_mark(arena);
    pingpong pp = {.cur = 0};
    st = setok_arena_tensor(arena, mean, dt, 4, lat_shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, logvar, dt, 4, lat_shape, err);
    size_t outputs = setok_arena_mark(arena);
    for (int i = 0; i < 2 && st == SETOK_OK; i++)
        st = setok_arena_alloc(arena, (size_t)plan.act * e, &pp.buf[i], err);
    setok_tensor y;
    if (st == SETOK_OK) {
        y = pp_next(&pp, be, dt, (int64_t[]){B, c->block_out_channels[0], H, W});
        st = setok_conv2d(be, &y, pixels, &vae->enc_in_w, &vae->enc_in_b, 1, 1, err);
        if (st == SETOK_OK)
            pp_flip(&pp, &y);
    }
    for (int i = 0; i < c->num_levels && st == SETOK_OK; i++) {
        const vae_level *l = &vae->down[i];
        char where[48];
        snprintf(where, sizeof where, "encoder block %d", i);
        st = check_cancel(cancel, where, err);
        for (int j = 0; j < l->count && st == SETOK_OK; j++) {
            y = pp_next(&pp, be, dt, (int64_t[]){B, l->resnets[j].out_ch, H, W});
            st = diffusion_resnet_forward(be, arena, &y, &pp.x, NULL, &l->resnets[j], err);
            if (st == SETOK_OK)
                pp_flip(&pp, &y);
        }
        if (st == SETOK_OK && l->has_resample) {
            H = diffusion_downsample_extent(&l->down, H);
            W = diffusion_downsample_extent(&l->down, W);
            y = pp_next(&pp, be, dt, (int64_t[]){B, l->down.ch, H, W});
            st = diffusion_downsample_forward(be, arena, &y, &pp.x, &l->down, err);
            if (st == SETOK_OK)
                pp_flip(&pp, &y);
        }
    }
    if (st == SETOK_OK)
        st = check_cancel(cancel, "the encoder mid-block", err);
    if (st == SETOK_OK)
        st = mid_forward(be, arena, &pp, &vae->enc_mid, err);
    if (st == SETOK_OK) {
        /* normed copy in the free buffer, moments over the consumed input, quant_conv back */
        int64_t mshape[4] = {B, 2 * lat, H, W};
        setok_tensor tmp = pp_next(&pp, be, dt, pp.x.shape);
        setok_tensor moments = setok_tensor_make(pp.buf[pp.cur], be, dt, 4, mshape);
        setok_tensor q = moments, half;
        st = norm_act_conv(be, &moments, &tmp, &pp.x, &vae->enc_norm_w, &vae->enc_norm_b,
                           &vae->enc_out_w, &vae->enc_out_b, c->norm_num_groups, err);
        if (st == SETOK_OK && c->use_quant_conv) {
            q = setok_tensor_make(pp.buf[1 - pp.cur], be, dt, 4, mshape);
            st = setok_conv2d(be, &q, &moments, &vae->quant_w, &vae->quant_b, 1, 0, err);
        }
        if (st == SETOK_OK)
            st = setok_view_slice(&half, &q, 1, 0, lat, err);
        if (st == SETOK_OK)
            st = setok_copy(be, mean, &half, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&half, &q, 1, lat, lat, err);
        if (st == SETOK_OK)
            st = setok_copy(be, logvar, &half, err);
    }
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "vae encode");
    return st;
}

// z: [B, latent, h, w] -> y: [B, out_channels, h * s, w * s]
static setok_status decode_core(setok_vae *vae, setok_arena *arena, setok_tensor *y_out,
                                const setok_tensor *z, const atomic_bool *cancel,
                                setok_error *err)
{
    const setok_vae_config *c = &vae->cfg;
    setok_backend *be = vae->backend;
    setok_dtype dt = vae->dtype;
    int64_t B = z->shape[0], H = z->shape[2], W = z->shape[3];
    vae_plan plan = decoder_plan(vae, B, H, W);
    size_t mark = setok_arena_mark(arena);
    pingpong pp = {.cur = 0, .x = *z};
    setok_status st = SETOK_OK;
    for (int i = 0; i < 2 && st == SETOK_OK; i++)
        st = setok_arena_alloc(arena, (size_t)plan.act * setok_dtype_size(dt), &pp.buf[i], err);
    setok_tensor y;
    if (st == SETOK_OK && c->use_post_quant_conv) {
        y = pp_next(&pp, be, dt, z->shape);
        st = setok_conv2d(be, &y, z, &vae->post_quant_w, &vae->post_quant_b, 1, 0, err);
        if (st == SETOK_OK)
            pp_flip(&pp, &y);
    }
    if (st == SETOK_OK) {
        y = pp_next(&pp, be, dt, (int64_t[]){B, c->block_out_channels[c->num_levels - 1], H, W});
        st = setok_conv2d(be, &y, &pp.x, &vae->dec_in_w, &vae->dec_in_b, 1, 1, err);
        if (st == SETOK_OK)
            pp_flip(&pp, &y);
    }
    if (st == SETOK_OK)
        st = check_cancel(cancel, "the decoder mid-block", err);
    if (st == SETOK_OK)
        st = mid_forward(be, arena, &pp, &vae->dec_mid, err);
    for (int i = 0; i < c->num_levels && st == SETOK_OK; i++) {
        const vae_level *l = &vae->up[i];
        char where[48];
        snprintf(where, sizeof where, "decoder block %d", i);
        st = check_cancel(cancel, where, err);
        for (int j = 0; j < l->count && st == SETOK_OK; j++) {
            y = pp_next(&pp, be, dt, (int64_t[]){B, l->resnets[j].out_ch, H, W});
            st = diffusion_resnet_forward(be, arena, &y, &pp.x, NULL, &l->resnets[j], err);
            if (st == SETOK_OK)
                pp_flip(&pp, &y);
        }
        if (st == SETOK_OK && l->has_resample) {
            H *= 2;
            W *= 2;
            y = pp_next(&pp, be, dt, (int64_t[]){B, l->up.ch, H, W});
            st = diffusion_upsample_forward(be, arena, &y, &pp.x, &l->up, err);
            if (st == SETOK_OK)
                pp_flip(&pp, &y);
        }
    }
    if (st == SETOK_OK) {
        setok_tensor tmp = pp_next(&pp, be, dt, pp.x.shape);
        st = norm_act_conv(be, y_out, &tmp, &pp.x, &vae->dec_norm_w, &vae->dec_norm_b,
                           &vae->dec_out_w, &vae->dec_out_b, c->norm_num_groups, err);
    }
    setok_arena_reset(arena, mark);
    return st;
}

// a: [B, C, Ha, Wa], b: [B, C, Hb, Wb] -> b's first E rows (axis 2) or columns (axis 3),
// E = min(a's, b's extent, extent), become a's last E * (1 - i / E) + b's * (i / E)
// (AutoencoderKL.blend_v / blend_h); host: 2 * extent floats of scratch
static setok_status blend(setok_backend *be, setok_arena *arena, const setok_tensor *a,
                          setok_tensor *b, int axis, int64_t extent, float *host,
                          setok_error *err)
{
    int64_t E = extent;
    E = a->shape[axis] < E ? a->shape[axis] : E;
    E = b->shape[axis] < E ? b->shape[axis] : E;
    if (E <= 0)
        return SETOK_OK;
    size_t mark = setok_arena_mark(arena);
    setok_dtype dt = b->dtype;
    int64_t shape[4] = {b->shape[0], b->shape[1], b->shape[2], b->shape[3]};
    int64_t wshape[4] = {1, 1, 1, 1};
    shape[axis] = E;
    wshape[axis] = E;
    setok_tensor ta, tb, wa, wb, va, vb;
    setok_status st = setok_arena_tensor(arena, &ta, dt, 4, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tb, dt, 4, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &wa, dt, 4, wshape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &wb, dt, 4, wshape, err);
    if (st == SETOK_OK) {
        /* the weights in the model's dtype, as PyTorch rounds the Python floats */
        uint16_t *h16 = (uint16_t *)(void *)host;
        for (int64_t i = 0; i < E; i++) {
            double f = (double)i / (double)E;
            if (dt == SETOK_F32) {
                host[i] = (float)(1.0 - f);
                host[E + i] = (float)f;
            } else {
                setok_store_f32(h16, dt, i, (float)(1.0 - f));
                setok_store_f32(h16, dt, E + i, (float)f);
            }
        }
        size_t wsize = (size_t)E * setok_dtype_size(dt);
        st = setok_tensor_upload(&wa, host, err);
        if (st == SETOK_OK)
            st = setok_tensor_upload(&wb, (const char *)host + wsize, err);
    }
    if (st == SETOK_OK)
        st = setok_view_slice(&va, a, axis, a->shape[axis] - E, E, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&vb, b, axis, 0, E, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &ta, &va, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &tb, &vb, err);
    if (st == SETOK_OK)
        st = setok_mul(be, &ta, &ta, &wa, err);
    if (st == SETOK_OK)
        st = setok_mul(be, &tb, &tb, &wb, err);
    if (st == SETOK_OK)
        st = setok_add(be, &tb, &ta, &tb, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &vb, &tb, err);
    /* the host weights are reused by the next blend: wait for the uploads' readers */
    if (st == SETOK_OK)
        st = setok_backend_synchronize(be, err);
    setok_arena_reset(arena, mark);
    return st;
}

static setok_status decode_tiled(setok_vae *vae, setok_arena *arena, setok_tensor *pixels,
                                 const setok_tensor *z, const tiling *t,
                                 setok_vae_progress_fn progress, void *user,
                                 const atomic_bool *cancel, setok_error *err)
{
    setok_backend *be = vae->backend;
    setok_dtype dt = vae->dtype;
    int64_t B = z->shape[0], h = z->shape[2], w = z->shape[3], s = setok_vae_downscale(vae);
    int64_t oc = vae->cfg.out_channels, ts = t->sample_tile;
    size_t tile_bytes = (size_t)(B * oc * ts * ts) * setok_dtype_size(dt);
    /* two rows of tiles: the row above (blended) and the current one */
    void **store = calloc((size_t)(2 * t->cols), sizeof *store);
    setok_tensor *tiles = calloc((size_t)(2 * t->cols), sizeof *tiles);
    float *host = malloc((size_t)(2 * t->blend + 2) * sizeof(float));
    setok_status st = SETOK_OK;
    if (!store || !tiles || !host)
        st = setok_fail(err, SETOK_ERR_NOMEM, "vae: out of memory for tiling");
    for (int64_t k = 0; k < 2 * t->cols && st == SETOK_OK; k++)
        st = setok_arena_alloc(arena, tile_bytes, &store[k], err);
    int total = (int)(t->rows * t->cols), done = 0;
    int64_t oy = 0;
    for (int64_t r = 0; r < t->rows && st == SETOK_OK; r++) {
        setok_tensor *cur = tiles + (r % 2) * t->cols, *above = tiles + ((r + 1) % 2) * t->cols;
        void **cur_store = store + (r % 2) * t->cols;
        int64_t i = r * t->overlap, th = h - i < t->latent_tile ? h - i : t->latent_tile;
        int64_t ox = 0, crop_h = th * s < t->row_limit ? th * s : t->row_limit;
        for (int64_t col = 0; col < t->cols && st == SETOK_OK; col++) {
            int64_t j = col * t->overlap, tw = w - j < t->latent_tile ? w - j : t->latent_tile;
            int64_t crop_w = tw * s < t->row_limit ? tw * s : t->row_limit;
            char where[64];
            snprintf(where, sizeof where, "tile %d of %d", done + 1, total);
            st = check_cancel(cancel, where, err);
            size_t mark = setok_arena_mark(arena);
            setok_tensor zt, zc, src, dst;
            if (st == SETOK_OK)
                st = setok_view_slice(&zt, z, 2, i, th, err);
            if (st == SETOK_OK)
                st = setok_view_slice(&zt, &zt, 3, j, tw, err);
            if (st == SETOK_OK)
                st = setok_arena_tensor(arena, &zc, dt, 4, (int64_t[]){B, z->shape[1], th, tw},
                                        err);
            if (st == SETOK_OK)
                st = setok_copy(be, &zc, &zt, err);
            if (st == SETOK_OK) {
                cur[col] = setok_tensor_make(cur_store[col], be, dt, 4,
                                             (int64_t[]){B, oc, th * s, tw * s});
                st = decode_core(vae, arena, &cur[col], &zc, cancel, err);
            }
            if (st == SETOK_OK && r > 0)
                st = blend(be, arena, &above[col], &cur[col], 2, t->blend, host, err);
            if (st == SETOK_OK && col > 0)
                st = blend(be, arena, &cur[col - 1], &cur[col], 3, t->blend, host, err);
            if (st == SETOK_OK)
                st = setok_view_slice(&src, &cur[col], 2, 0, crop_h, err);
            if (st == SETOK_OK)
                st = setok_view_slice(&src, &src, 3, 0, crop_w, err);
            if (st == SETOK_OK)
                st = setok_view_slice(&dst, pixels, 2, oy, crop_h, err);
            if (st == SETOK_OK)
                st = setok_view_slice(&dst, &dst, 3, ox, crop_w, err);
            if (st == SETOK_OK)
                st = setok_copy(be, &dst, &src, err);
            setok_arena_reset(arena, mark);
            ox += crop_w;
            done++;
            if (st == SETOK_OK && progress)
                progress(user, done, total);
        }
        oy += crop_h;
    }
    free(store);
    free(tiles);
    free(host);
    return st;
}

setok_status setok_vae_decode(setok_vae *vae, setok_arena *arena, setok_tensor *pixels,
                              const setok_tensor *latents, int tile_size,
                              setok_vae_progress_fn progress, void *user,
                              const atomic_bool *cancel, setok_error *err)
{
    const setok_vae_config *c = &vae->cfg;
    setok_status st = check_input(vae, arena, latents, c->latent_channels, 1, "latents", err);
    if (st != SETOK_OK)
        return st;
    int64_t B = latents->shape[0], h = latents->shape[2], w = latents->shape[3];
    int64_t s = setok_vae_downscale(vae);
    tiling t;
    bool tiled = tiling_plan(&t, vae, h, w, tile_size);
    if (tiled && t.overlap < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "vae: tile size %d is too small for %lld-fold "
                          "downscaling", tile_size, (long long)s);
    size_t start = setok_arena_mark(arena);
    int64_t shape[4] = {B, c->out_channels, tiled ? t.out_h : h * s, tiled ? t.out_w : w * s};
    st = setok_arena_tensor(arena, pixels, vae->dtype, 4, shape, err);
    size_t outputs = setok_arena_mark(arena);
    if (st == SETOK_OK && tiled) {
        st = decode_tiled(vae, arena, pixels, latents, &t, progress, user, cancel, err);
    } else if (st == SETOK_OK) {
        st = decode_core(vae, arena, pixels, latents, cancel, err);
        if (st == SETOK_OK && progress)
            progress(user, 1, 1);
    }
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "vae decode");
    return st;
}
