/* unet.c — the denoising U-Net, mirroring diffusers' UNet2DConditionModel
 * (unet_2d_condition.py, unet_2d_blocks.py: CrossAttnDownBlock2D,
 * DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D;
 * embeddings.py: get_timestep_embedding, TimestepEmbedding): config,
 * weights and forward.
 *
 * Rules: every down-path output (the skip connections) gets its own arena
 * tensor, kept until the up path concatenates it; everything else
 * ping-pongs between two buffers sized for the largest activation; layer
 * scratch sits above and is reset by each layer (diffusion-blocks.c). The
 * timestep embedding's sines are computed on the host in float32 as
 * PyTorch does, then uploaded. */
#include "setok/models/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "diffusion-blocks.h"
#include "setok/config.h"
#include "setok/ops.h"
#include "setok/weights.h"

/* One resnet, and the transformer after it in cross-attention blocks. */
typedef struct unet_layer {
    diffusion_resnet resnet;
    diffusion_transformer attn;
    bool has_attn;
} unet_layer;

typedef struct unet_block {
    unet_layer *layers;
    int count;
    bool has_resample;
    diffusion_downsample down;
    diffusion_upsample up;
} unet_block;

struct setok_unet {
    setok_unet_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    setok_weights *weights;  /* kept open: tensors may point into it */
    setok_tensor conv_in_w, conv_in_b;
    setok_tensor time1_w, time1_b, time2_w, time2_b; /* time_embedding.linear_1 / _2 */
    unet_block down[SETOK_UNET_MAX_BLOCKS], up[SETOK_UNET_MAX_BLOCKS];
    diffusion_resnet mid_r0, mid_r1;
    diffusion_transformer mid_attn;
    setok_tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
};

/* ---------------------------------------------------------------------------
 * config */

static const cJSON *item(const setok_config *json, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(setok_config_root(json), key);
    return it && !cJSON_IsNull(it) ? it : NULL;
}

/* A key whose only supported value is its diffusers default: absent, null,
 * or equal to want (a string, a bool, a number, or JSON null when all are unset). */
typedef struct fixed_key {
    const char *key;
    const char *want_string; /* the default string, or NULL */
    int want_bool;           /* 0 or 1; -1 when the key is not a bool */
    double want_number;      /* NAN when the key is not a number */
} fixed_key;

static setok_status check_fixed(const setok_config *json, const fixed_key *k, setok_error *err)
{
    const cJSON *it = item(json, k->key);
    if (!it)
        return SETOK_OK;
    if (k->want_string && cJSON_IsString(it) && !strcmp(it->valuestring, k->want_string))
        return SETOK_OK;
    if (k->want_bool >= 0 && cJSON_IsBool(it) && cJSON_IsTrue(it) == (k->want_bool == 1))
        return SETOK_OK;
    if (!isnan(k->want_number) && cJSON_IsNumber(it) && it->valuedouble == k->want_number)
        return SETOK_OK;
    char *text = cJSON_PrintUnformatted(it);
    setok_status st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s = %.64s is not supported "
                                 "(only the diffusers default)", setok_config_path(json), k->key,
                                 text ? text : "?");
    cJSON_free(text);
    return st;
}

/* An int, or a list of one int per block (diffusers' int | tuple[int]). */
static setok_status per_block(const setok_config *json, const char *key, int dflt, int n, int lo,
                              int hi, int *out, setok_error *err)
{
    const char *path = setok_config_path(json);
    const cJSON *it = item(json, key);
    for (int i = 0; i < n; i++)
        out[i] = dflt;
    if (!it)
        return SETOK_OK;
    if (cJSON_IsArray(it) && cJSON_GetArraySize(it) != n)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s lists %d values for %d blocks", path, key,
                          cJSON_GetArraySize(it), n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_IsArray(it) ? cJSON_GetArrayItem(it, i) : it;
        /* the range first: converting a double outside int's is undefined */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
            v->valuedouble != (double)(int)v->valuedouble)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be an integer in [%d, %d] or a "
                              "list of them, one per block", path, key, lo, hi);
        out[i] = (int)v->valuedouble;
    }
    return SETOK_OK;
}

/* down_block_types / up_block_types: each entry is cross or plain. */
static setok_status block_types(const setok_config *json, const char *key, const char *cross,
                                const char *plain, const char *const *dflt, int n, bool *out,
                                setok_error *err)
{
    const char *path = setok_config_path(json);
    const cJSON *it = item(json, key);
    if (it && (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must list %d block types, one per "
                          "block_out_channels entry", path, key, n);
    if (!it && n != 4)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s is missing and the default has 4 "
                          "blocks, block_out_channels %d", path, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *s = it ? cJSON_GetArrayItem(it, i) : NULL;
        const char *name = it ? (cJSON_IsString(s) ? s->valuestring : NULL) : dflt[i];
        if (name && !strcmp(name, cross))
            out[i] = true;
        else if (name && !strcmp(name, plain))
            out[i] = false;
        else
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s[%d] '%s' is not supported "
                              "(%s or %s)", path, key, i, name ? name : "?", cross, plain);
    }
    return SETOK_OK;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_unet_config *c = out;
    static const char *const down_dflt[4] = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                             "CrossAttnDownBlock2D", "DownBlock2D"};
    static const char *const up_dflt[4] = {"UpBlock2D", "CrossAttnUpBlock2D",
                                           "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
    const char *path = setok_config_path(json);
    const cJSON *cls = item(json, "_class_name");
    if (cls && (!cJSON_IsString(cls) || strcmp(cls->valuestring, "UNet2DConditionModel")))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: _class_name is not UNet2DConditionModel",
                          path);
    const fixed_key fixed[] = {
        {"num_attention_heads", NULL, -1, NAN},
        {"act_fn", "silu", -1, NAN},
        {"resnet_time_scale_shift", "default", -1, NAN},
        {"resnet_skip_time_act", NULL, 0, NAN},
        {"time_embedding_type", "positional", -1, NAN},
        {"time_embedding_act_fn", NULL, -1, NAN},
        {"timestep_post_act", NULL, -1, NAN},
        {"time_cond_proj_dim", NULL, -1, NAN},
        {"conv_in_kernel", NULL, -1, 3},
        {"conv_out_kernel", NULL, -1, 3},
        {"attention_type", "default", -1, NAN},
        {"only_cross_attention", NULL, 0, NAN},
        {"mid_block_only_cross_attention", NULL, 0, NAN},
        {"dual_cross_attention", NULL, 0, NAN},
        {"class_embed_type", NULL, -1, NAN},
        {"num_class_embeds", NULL, -1, NAN},
        {"class_embeddings_concat", NULL, 0, NAN},
        {"addition_embed_type", NULL, -1, NAN},
        {"addition_time_embed_dim", NULL, -1, NAN},
        {"projection_class_embeddings_input_dim", NULL, -1, NAN},
        {"encoder_hid_dim", NULL, -1, NAN},
        {"encoder_hid_dim_type", NULL, -1, NAN},
        {"cross_attention_norm", NULL, -1, NAN},
        {"reverse_transformer_layers_per_block", NULL, -1, NAN},
    };
    setok_status st = SETOK_OK;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && st == SETOK_OK; i++)
        st = check_fixed(json, &fixed[i], err);
    if (st != SETOK_OK)
        return st;
    *c = (setok_unet_config){.in_channels = 4, .out_channels = 4, .norm_num_groups = 32,
                             .norm_eps = 1e-5f, .flip_sin_to_cos = true, .downsample_padding = 1,
                             .mid_block_scale_factor = 1.0f, .resnet_out_scale_factor = 1.0f};
    int64_t boc[SETOK_UNET_MAX_BLOCKS] = {320, 640, 1280, 1280};
    size_t n = 4;
    if (setok_config_has(json, "block_out_channels"))
        st = setok_config_int_array(json, "block_out_channels", boc, SETOK_UNET_MAX_BLOCKS, &n,
                                    err);
    if (st != SETOK_OK)
        return st;
    if (n < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels is empty", path);
    c->num_blocks = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (boc[i] < 1 || boc[i] > 1 << 16)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels[%zu] is %lld, must "
                              "be in [1, 65536]", path, i, (long long)boc[i]);
        c->block_out_channels[i] = (int)boc[i];
    }
    int N = c->num_blocks;
    st = setok_config_int_in(json, "in_channels", false, 1, 1024, &c->in_channels, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "out_channels", false, 1, 1024, &c->out_channels, err);
    if (st == SETOK_OK && setok_config_has(json, "norm_num_groups") &&
        !item(json, "norm_num_groups"))
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: norm_num_groups null (no output norm) "
                        "is not supported", path);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "norm_num_groups", false, 1, 1 << 16, &c->norm_num_groups,
                                 err);
    double eps = c->norm_eps, mid_scale = 1.0, out_scale = 1.0;
    int64_t shift = 0;
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "norm_eps", eps, &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: norm_eps must be in (0, 1), got %g", path, eps);
    c->norm_eps = (float)eps;
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "flip_sin_to_cos", true, &c->flip_sin_to_cos, err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "center_input_sample", false, &c->center_input_sample,
                                  err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, "use_linear_projection", false,
                                  &c->use_linear_projection, err);
    if (st == SETOK_OK)
        st = setok_config_int_or(json, "freq_shift", 0, &shift, err);
    if (st == SETOK_OK && (shift < 0 || shift > 1 << 16))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: freq_shift must be in [0, 65536], got %lld",
                        path, (long long)shift);
    c->freq_shift = (int)shift;
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "downsample_padding", false, 0, 1, &c->downsample_padding,
                                 err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "mid_block_scale_factor", 1.0, &mid_scale, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "resnet_out_scale_factor", 1.0, &out_scale, err);
    if (st == SETOK_OK && !(mid_scale > 0.0 && out_scale > 0.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: mid_block_scale_factor and "
                        "resnet_out_scale_factor must be positive", path);
    c->mid_block_scale_factor = (float)mid_scale;
    c->resnet_out_scale_factor = (float)out_scale;
    c->time_embed_dim = 4 * c->block_out_channels[0];
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "time_embedding_dim", false, 1, 1 << 20,
                                 &c->time_embed_dim, err);
    if (st == SETOK_OK)
        st = per_block(json, "layers_per_block", 2, N, 1, 64, c->layers_per_block, err);
    if (st == SETOK_OK)
        st = per_block(json, "transformer_layers_per_block", 1, N, 1, 64, c->transformer_layers,
                       err);
    if (st == SETOK_OK)
        st = per_block(json, "attention_head_dim", 8, N, 1, 1 << 12, c->attention_heads, err);
    if (st == SETOK_OK)
        st = per_block(json, "cross_attention_dim", 1280, N, 1, 1 << 16, c->cross_attention_dim,
                       err);
    if (st == SETOK_OK)
        st = block_types(json, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D",
                         down_dflt, N, c->down_cross_attention, err);
    if (st == SETOK_OK)
        st = block_types(json, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", up_dflt, N,
                         c->up_cross_attention, err);
    if (st != SETOK_OK)
        return st;
    c->mid_cross_attention = true;
    if (setok_config_has(json, "mid_block_type")) {
        const cJSON *mid = item(json, "mid_block_type");
        if (!mid)
            c->mid_cross_attention = false;
        else if (!cJSON_IsString(mid) || strcmp(mid->valuestring, "UNetMidBlock2DCrossAttn"))
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: mid_block_type '%s' is not "
                              "supported (UNetMidBlock2DCrossAttn or null)", path,
                              cJSON_IsString(mid) ? mid->valuestring : "?");
    }
    for (int i = 0; i < N; i++)
        if (c->block_out_channels[i] % c->norm_num_groups)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels[%d] = %d is not a "
                              "multiple of norm_num_groups %d", path, i,
                              c->block_out_channels[i], c->norm_num_groups);
    if (c->block_out_channels[0] < 2)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: block_out_channels[0] must be at least 2 "
                          "(the timestep embedding's width)", path);
    return SETOK_OK;
}

setok_status setok_unet_config_load(setok_unet_config *cfg, const char *dir, setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

static void block_free(unet_block *b)
{
    for (int i = 0; b->layers && i < b->count; i++) {
        diffusion_resnet_free(&b->layers[i].resnet);
        diffusion_transformer_free(&b->layers[i].attn);
    }
    free(b->layers);
    b->layers = NULL;
    diffusion_downsample_free(&b->down);
    diffusion_upsample_free(&b->up);
}

void setok_unet_free(setok_unet *u)
{
    if (!u)
        return;
    for (int i = 0; i < SETOK_UNET_MAX_BLOCKS; i++) {
        block_free(&u->down[i]);
        block_free(&u->up[i]);
    }
    diffusion_resnet_free(&u->mid_r0);
    diffusion_resnet_free(&u->mid_r1);
    diffusion_transformer_free(&u->mid_attn);
    setok_tensor *all[] = {&u->conv_in_w, &u->conv_in_b, &u->time1_w,    &u->time1_b,
                           &u->time2_w,   &u->time2_b,   &u->norm_out_w, &u->norm_out_b,
                           &u->conv_out_w, &u->conv_out_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
    setok_weights_close(u->weights);
    free(u);
}

static setok_status block_alloc(unet_block *b, int count, setok_error *err)
{
    b->layers = calloc((size_t)count, sizeof *b->layers);
    if (!b->layers)
        return setok_fail(err, SETOK_ERR_NOMEM, "unet: out of memory");
    b->count = count;
    return SETOK_OK;
}

/* resnets.j and, in cross-attention blocks, attentions.j of a block. */
static setok_status layer_load(unet_layer *l, const setok_loader *ld, const char *block,
                               int j, int64_t in, int64_t out, bool cross, int heads,
                               int transformer_layers, int64_t cross_dim, float out_scale,
                               const setok_unet_config *c, setok_error *err)
{
    char p[160];
    snprintf(p, sizeof p, "%s.resnets.%d", block, j);
    setok_status st = diffusion_resnet_load(&l->resnet, ld, p, in, out, c->time_embed_dim,
                                            c->norm_num_groups, c->norm_eps, out_scale, err);
    l->has_attn = cross;
    snprintf(p, sizeof p, "%s.attentions.%d", block, j);
    if (st == SETOK_OK && cross)
        st = diffusion_transformer_load(&l->attn, ld, p, out, heads, transformer_layers,
                                        cross_dim, c->norm_num_groups,
                                        c->use_linear_projection, err);
    return st;
}

static setok_status load_weights(setok_unet *u, const setok_loader *ld, setok_error *err)
{
    const setok_unet_config *c = &u->cfg;
    const int *boc = c->block_out_channels;
    int N = c->num_blocks;
    int64_t C0 = boc[0], TE = c->time_embed_dim;
    /* channels of the skip connections, pushed by the down path, popped by the up path */
    int64_t skips[1 + SETOK_UNET_MAX_BLOCKS * 65];
    int nskips = 0;
    const setok_weight head[] = {
        {&u->conv_in_w, "conv_in.weight", 4, {C0, c->in_channels, 3, 3}, 0},
        {&u->conv_in_b, "conv_in.bias", 1, {C0}, 0},
        {&u->time1_w, "time_embedding.linear_1.weight", 2, {TE, C0}, 0},
        {&u->time1_b, "time_embedding.linear_1.bias", 1, {TE}, 0},
        {&u->time2_w, "time_embedding.linear_2.weight", 2, {TE, TE}, 0},
        {&u->time2_b, "time_embedding.linear_2.bias", 1, {TE}, 0},
    };
    setok_status st = setok_loader_load(ld, "", head, sizeof head / sizeof *head, err);
    skips[nskips++] = C0;
    for (int i = 0; i < N && st == SETOK_OK; i++) {
        unet_block *b = &u->down[i];
        int64_t in = i == 0 ? C0 : boc[i - 1];
        char block[64];
        snprintf(block, sizeof block, "down_blocks.%d", i);
        st = block_alloc(b, c->layers_per_block[i], err);
        for (int j = 0; j < b->count && st == SETOK_OK; j++) {
            st = layer_load(&b->layers[j], ld, block, j, j == 0 ? in : boc[i], boc[i],
                            c->down_cross_attention[i], c->attention_heads[i],
                            c->transformer_layers[i], c->cross_attention_dim[i],
                            c->resnet_out_scale_factor, c, err);
            skips[nskips++] = boc[i];
        }
        b->has_resample = i < N - 1;
        if (st == SETOK_OK && b->has_resample) {
            char p[96];
            snprintf(p, sizeof p, "%s.downsamplers.0", block);
            st = diffusion_downsample_load(&b->down, ld, p, boc[i], c->downsample_padding, err);
            skips[nskips++] = boc[i];
        }
    }
    int64_t ch = boc[N - 1];
    if (st == SETOK_OK && c->mid_cross_attention) {
        float s = c->mid_block_scale_factor;
        int g = c->norm_num_groups;
        st = diffusion_resnet_load(&u->mid_r0, ld, "mid_block.resnets.0", ch, ch, TE, g,
                                   c->norm_eps, s, err);
        if (st == SETOK_OK)
            st = diffusion_transformer_load(&u->mid_attn, ld, "mid_block.attentions.0", ch,
                                            c->attention_heads[N - 1], c->transformer_layers[N - 1],
                                            c->cross_attention_dim[N - 1], g,
                                            c->use_linear_projection, err);
        if (st == SETOK_OK)
            st = diffusion_resnet_load(&u->mid_r1, ld, "mid_block.resnets.1", ch, ch, TE, g,
                                       c->norm_eps, s, err);
    }
    for (int i = 0; i < N && st == SETOK_OK; i++) {
        unet_block *b = &u->up[i];
        int r = N - 1 - i; /* the up path reads the per-block settings reversed */
        int64_t out = boc[r];
        char block[64];
        snprintf(block, sizeof block, "up_blocks.%d", i);
        st = block_alloc(b, c->layers_per_block[r] + 1, err);
        for (int j = 0; j < b->count && st == SETOK_OK; j++) {
            if (nskips == 0)
                return setok_fail(err, SETOK_ERR_INPUT, "%s: up_blocks.%d has more layers than "
                                  "the down path has outputs", setok_loader_path(ld), i);
            int64_t skip = skips[--nskips];
            st = layer_load(&b->layers[j], ld, block, j, ch + skip, out,
                            c->up_cross_attention[i], c->attention_heads[r],
                            c->transformer_layers[r], c->cross_attention_dim[r],
                            c->resnet_out_scale_factor, c, err);
            ch = out;
        }
        b->has_resample = i < N - 1;
        if (st == SETOK_OK && b->has_resample) {
            char p[96];
            snprintf(p, sizeof p, "%s.upsamplers.0", block);
            st = diffusion_upsample_load(&b->up, ld, p, out, err);
        }
    }
    if (st == SETOK_OK && nskips != 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: layers_per_block leaves %d down-path outputs "
                        "unused", setok_loader_path(ld), nskips);
    const setok_weight tail[] = {
        {&u->norm_out_w, "conv_norm_out.weight", 1, {C0}, 0},
        {&u->norm_out_b, "conv_norm_out.bias", 1, {C0}, 0},
        {&u->conv_out_w, "conv_out.weight", 4, {c->out_channels, C0, 3, 3}, 0},
        {&u->conv_out_b, "conv_out.bias", 1, {c->out_channels}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", tail, sizeof tail / sizeof *tail, err);
    return st;
}

/* A U-Net of cfg's shape with its weights from ld (a checkpoint, or random values). */
static setok_status unet_build(setok_unet **out, const setok_unet_config *cfg,
                               const setok_loader *ld, setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(ld->dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "unet: dtype must be f32, f16 or bf16, got %s",
                          setok_dtype_name(ld->dtype));
    setok_unet *u = calloc(1, sizeof *u);
    if (!u)
        return setok_fail(err, SETOK_ERR_NOMEM, "unet: out of memory");
    u->backend = ld->backend;
    u->dtype = ld->dtype;
    u->cfg = *cfg;
    setok_status st = load_weights(u, ld, err);
    if (st != SETOK_OK) {
        setok_unet_free(u);
        return st;
    }
    *out = u;
    return SETOK_OK;
}

setok_status setok_unet_load(setok_unet **out, const char *dir, setok_backend *backend,
                             setok_dtype dtype, setok_dtype matrix, setok_error *err)
{
    *out = NULL;
    setok_unet_config cfg;
    setok_weights *w = NULL;
    setok_status st = setok_unet_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype, .matrix = matrix,
                           .in_place = true};
        st = unet_build(out, &cfg, &ld, err);
    }
    if (*out)
        (*out)->weights = w;
    else
        setok_weights_close(w);
    return st;
}

void setok_unet_config_sd15(setok_unet_config *c)
{
    *c = (setok_unet_config){.in_channels = 4, .out_channels = 4, .num_blocks = 4,
                             .block_out_channels = {320, 640, 1280, 1280},
                             .down_cross_attention = {true, true, true, false},
                             .up_cross_attention = {false, true, true, true},
                             .mid_cross_attention = true, .norm_num_groups = 32,
                             .norm_eps = 1e-5f, .flip_sin_to_cos = true, .downsample_padding = 1,
                             .mid_block_scale_factor = 1.0f, .resnet_out_scale_factor = 1.0f,
                             .time_embed_dim = 1280};
    for (int i = 0; i < 4; i++) {
        c->layers_per_block[i] = 2;
        c->transformer_layers[i] = 1;
        c->attention_heads[i] = 8;
        c->cross_attention_dim[i] = 768;
    }
}

setok_status setok_unet_create_random(setok_unet **out, const setok_unet_config *cfg,
                                      setok_backend *backend, setok_dtype dtype,
                                      setok_dtype matrix, uint32_t seed, setok_error *err)
{
    *out = NULL;
    if (cfg->num_blocks < 1 || cfg->num_blocks > SETOK_UNET_MAX_BLOCKS)
        return setok_fail(err, SETOK_ERR_INPUT, "unet: %d blocks, must be 1..%d",
                          cfg->num_blocks, SETOK_UNET_MAX_BLOCKS);
    uint32_t state = seed * 2654435761u + 1u;
    setok_loader ld = {.backend = backend, .dtype = dtype, .matrix = matrix,
                       .random_state = &state};
    return unet_build(out, cfg, &ld, err);
}

const setok_unet_config *setok_unet_get_config(const setok_unet *unet)
{
    return &unet->cfg;
}

setok_dtype setok_unet_dtype(const setok_unet *unet)
{
    return unet->dtype;
}

int setok_unet_size_multiple(const setok_unet *unet)
{
    return 1 << (unet->cfg.num_blocks - 1);
}

/* ---------------------------------------------------------------------------
 * sizes: one walk over the layers in forward order */

typedef struct unet_plan {
    int64_t act;     /* the largest ping-pong activation (elements) */
    size_t scratch;  /* the largest layer scratch (bytes) */
    size_t skips;    /* the kept down-path outputs (bytes) */
} unet_plan;

static void plan_act(unet_plan *p, int64_t numel)
{
    p->act = numel > p->act ? numel : p->act;
}

static void plan_scratch(unet_plan *p, size_t bytes)
{
    p->scratch = bytes > p->scratch ? bytes : p->scratch;
}

static void plan_layer(unet_plan *p, const unet_layer *l, int64_t B, int64_t H, int64_t W,
                       int64_t S, size_t e)
{
    plan_act(p, B * l->resnet.in_ch * H * W);
    plan_act(p, B * l->resnet.out_ch * H * W);
    plan_scratch(p, diffusion_resnet_scratch(&l->resnet, B, H, W, e));
    if (l->has_attn)
        plan_scratch(p, diffusion_transformer_scratch(&l->attn, B, H, W, S, e));
}

static unet_plan unet_walk(const setok_unet *u, int64_t B, int64_t H, int64_t W, int64_t S)
{
    const setok_unet_config *c = &u->cfg;
    size_t e = setok_dtype_size(u->dtype);
    unet_plan p = {0, 0, 0};
    p.skips += diffusion_slot(B * c->block_out_channels[0] * H * W, e);
    for (int i = 0; i < c->num_blocks; i++) {
        const unet_block *b = &u->down[i];
        for (int j = 0; j < b->count; j++) {
            plan_layer(&p, &b->layers[j], B, H, W, S, e);
            p.skips += diffusion_slot(B * b->layers[j].resnet.out_ch * H * W, e);
        }
        if (b->has_resample) {
            plan_scratch(&p, diffusion_downsample_scratch(&b->down, B, H, W, e));
            H = diffusion_downsample_extent(&b->down, H);
            W = diffusion_downsample_extent(&b->down, W);
            p.skips += diffusion_slot(B * b->down.ch * H * W, e);
        }
    }
    if (c->mid_cross_attention) {
        unet_layer mid = {.resnet = u->mid_r0, .attn = u->mid_attn, .has_attn = true};
        plan_layer(&p, &mid, B, H, W, S, e);
    }
    for (int i = 0; i < c->num_blocks; i++) {
        const unet_block *b = &u->up[i];
        for (int j = 0; j < b->count; j++)
            plan_layer(&p, &b->layers[j], B, H, W, S, e);
        if (b->has_resample) {
            plan_scratch(&p, diffusion_upsample_scratch(&b->up, B, H, W, e));
            H *= 2;
            W *= 2;
            plan_act(&p, B * b->up.ch * H * W);
        }
    }
    plan_act(&p, B * c->block_out_channels[0] * H * W); /* the output norm */
    return p;
}

size_t setok_unet_arena_bytes(const setok_unet *unet, int64_t batch, int64_t height,
                              int64_t width, int64_t context_len)
{
    const setok_unet_config *c = &unet->cfg;
    size_t e = setok_dtype_size(unet->dtype);
    unet_plan p = unet_walk(unet, batch, height, width, context_len);
    /* output, centred input, timestep embedding (sinusoids, hidden, silu(temb)), buffers */
    size_t fixed = diffusion_slot(batch * c->out_channels * height * width, e) +
                   diffusion_slot(batch * c->in_channels * height * width, e) +
                   diffusion_slot(batch * c->block_out_channels[0], e) +
                   2 * diffusion_slot(batch * (int64_t)c->time_embed_dim, e) +
                   2 * diffusion_slot(p.act, e);
    return fixed + p.skips + p.scratch + 4096;
}

/* ---------------------------------------------------------------------------
 * forward */

/* diffusers' get_timestep_embedding(t, dim, flip_sin_to_cos, freq_shift) in
 * float32 like PyTorch: exponent_i = -ln(10000) * i / (dim/2 - shift),
 * arg = t * exp(exponent_i), [sin(arg), cos(arg)] (or cos first), a zero
 * column when dim is odd. out: [B * dim] host floats. */
static void timestep_embedding(float *out, const float *t, int64_t B, int64_t dim, bool flip,
                               int shift)
{
    int64_t half = dim / 2;
    float neg_log = (float)-log(10000.0);
    for (int64_t b = 0; b < B; b++) {
        float *row = out + b * dim;
        for (int64_t i = 0; i < half; i++) {
            float exponent = (neg_log * (float)i) / (float)(half - shift);
            float arg = t[b] * (float)exp((double)exponent);
            float s = (float)sin((double)arg), c = (float)cos((double)arg);
            row[i] = flip ? c : s;
            row[half + i] = flip ? s : c;
        }
        if (dim % 2)
            row[dim - 1] = 0.0f;
    }
}

// timesteps: [B] host -> temb_act: [B, TE] = silu(linear_2(silu(linear_1(sinusoids))))
static setok_status time_embedding(setok_unet *u, setok_arena *arena, setok_tensor *temb_act,
                                   const float *timesteps, int64_t B, setok_error *err)
{
    const setok_unet_config *c = &u->cfg;
    setok_backend *be = u->backend;
    int64_t C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    if (c->freq_shift >= C0 / 2)
        return setok_fail(err, SETOK_ERR_INPUT, "unet: freq_shift %d must be below half the "
                          "timestep embedding width %lld", c->freq_shift, (long long)C0);
    float *host = malloc((size_t)(B * C0) * sizeof(float));
    void *conv = malloc((size_t)(B * C0) * setok_dtype_size(u->dtype));
    setok_tensor sinus, hidden;
    setok_status st = SETOK_OK;
    if (!host || !conv)
        st = setok_fail(err, SETOK_ERR_NOMEM, "unet: out of memory for the timestep embedding");
    if (st == SETOK_OK) {
        timestep_embedding(host, timesteps, B, C0, c->flip_sin_to_cos, c->freq_shift);
        for (int64_t i = 0; i < B * C0; i++)
            setok_store_f32(conv, u->dtype, i, host[i]);
        st = setok_arena_tensor(arena, &sinus, u->dtype, 2, (int64_t[]){B, C0}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload(&sinus, conv, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &hidden, u->dtype, 2, (int64_t[]){B, TE}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, temb_act, u->dtype, 2, (int64_t[]){B, TE}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &hidden, &sinus, &u->time1_w, &u->time1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_SILU, &hidden, &hidden, err);
    if (st == SETOK_OK)
        st = setok_linear(be, temb_act, &hidden, &u->time2_w, &u->time2_b, err);
    /* every ResnetBlock2D applies silu to temb before its projection */
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_SILU, temb_act, temb_act, err);
    /* the upload read host memory: wait before freeing it */
    if (st == SETOK_OK)
        st = setok_backend_synchronize(be, err);
    free(host);
    free(conv);
    return st;
}

/* The forward's state: the running activation x, in buf[cur] or in a kept
 * skip tensor, and the other buffer free for the next layer's output. */
typedef struct unet_run {
    setok_unet *u;
    setok_arena *arena;
    setok_backend *be;
    const setok_tensor *temb, *context;
    void *buf[2];
    int cur;
    setok_tensor x;
    setok_tensor *skips;
    int nskips;
} unet_run;

static setok_tensor run_next(const unet_run *r, int64_t C, int64_t H, int64_t W)
{
    return setok_tensor_make(r->buf[1 - r->cur], r->be, r->u->dtype, 4,
                             (int64_t[]){r->x.shape[0], C, H, W});
}

static void run_flip(unet_run *r, const setok_tensor *y)
{
    r->cur = 1 - r->cur;
    r->x = *y;
}

/* A new kept tensor for the skip stack. */
static setok_status run_keep(unet_run *r, setok_tensor *out, int64_t C, int64_t H, int64_t W,
                             setok_error *err)
{
    setok_status st = setok_arena_tensor(r->arena, out, r->u->dtype, 4,
                                         (int64_t[]){r->x.shape[0], C, H, W}, err);
    if (st == SETOK_OK)
        r->skips[r->nskips++] = *out;
    return st;
}

static setok_status check_context(const diffusion_transformer *t, const setok_tensor *ctx,
                                  const char *where, setok_error *err)
{
    if (ctx->shape[2] != t->cross_dim)
        return setok_fail(err, SETOK_ERR_INPUT, "%s cross-attends to %lld-wide "
                          "encoder_hidden_states, got %lld", where, (long long)t->cross_dim,
                          (long long)ctx->shape[2]);
    return SETOK_OK;
}

// x (down path) -> x through resnet [+ transformer]; the result is kept as a skip
static setok_status down_layer(unet_run *r, const unet_layer *l, const char *where,
                               setok_error *err)
{
    int64_t H = r->x.shape[2], W = r->x.shape[3], C = l->resnet.out_ch;
    setok_tensor y;
    setok_status st = SETOK_OK;
    if (l->has_attn) {
        y = run_next(r, C, H, W);
        st = diffusion_resnet_forward(r->be, r->arena, &y, &r->x, r->temb, &l->resnet, err);
        if (st == SETOK_OK)
            run_flip(r, &y);
        if (st == SETOK_OK)
            st = check_context(&l->attn, r->context, where, err);
        if (st == SETOK_OK)
            st = run_keep(r, &y, C, H, W, err);
        if (st == SETOK_OK)
            st = diffusion_transformer_forward(r->be, r->arena, &y, &r->x, r->context, &l->attn,
                                               err);
    } else {
        st = run_keep(r, &y, C, H, W, err);
        if (st == SETOK_OK)
            st = diffusion_resnet_forward(r->be, r->arena, &y, &r->x, r->temb, &l->resnet, err);
    }
    if (st == SETOK_OK)
        r->x = y; /* kept: both buffers are free again */
    return st;
}

// x (mid / up path) -> x through resnet [+ transformer], ping-ponging
static setok_status pp_layer(unet_run *r, const unet_layer *l, const char *where,
                             setok_error *err)
{
    int64_t H = r->x.shape[2], W = r->x.shape[3], C = l->resnet.out_ch;
    setok_tensor y = run_next(r, C, H, W);
    setok_status st = diffusion_resnet_forward(r->be, r->arena, &y, &r->x, r->temb, &l->resnet,
                                               err);
    if (st == SETOK_OK)
        run_flip(r, &y);
    if (st == SETOK_OK && l->has_attn) {
        y = run_next(r, C, H, W);
        st = check_context(&l->attn, r->context, where, err);
        if (st == SETOK_OK)
            st = diffusion_transformer_forward(r->be, r->arena, &y, &r->x, r->context, &l->attn,
                                               err);
        if (st == SETOK_OK)
            run_flip(r, &y);
    }
    return st;
}

// x -> [x, skip] on channels (torch.cat([hidden_states, res_hidden_states], dim=1))
static setok_status concat_skip(unet_run *r, setok_error *err)
{
    const setok_tensor *skip = &r->skips[--r->nskips];
    setok_tensor y = run_next(r, r->x.shape[1] + skip->shape[1], r->x.shape[2], r->x.shape[3]);
    const setok_tensor *srcs[2] = {&r->x, skip};
    setok_status st = setok_concat(r->be, &y, srcs, 2, 1, err);
    if (st == SETOK_OK)
        run_flip(r, &y);
    return st;
}

static setok_status cancelled(const atomic_bool *cancel, const char *where, setok_error *err)
{
    if (cancel && atomic_load(cancel))
        return setok_fail(err, SETOK_ERR_CANCELLED, "unet: cancelled before %s", where);
    return SETOK_OK;
}

static setok_status check_inputs(const setok_unet *u, const setok_arena *arena,
                                 const setok_tensor *x, const float *t, const setok_tensor *ctx,
                                 setok_error *err)
{
    const setok_unet_config *c = &u->cfg;
    char buf[96];
    int m = setok_unet_size_multiple(u);
    if (!x || x->ndim != 4 || x->shape[1] != c->in_channels || x->dtype != u->dtype ||
        !setok_tensor_is_contiguous(x))
        return setok_fail(err, SETOK_ERR_INPUT, "unet: sample must be a contiguous [B, %d, h, w] "
                          "%s tensor, got %s", c->in_channels, setok_dtype_name(u->dtype),
                          x ? setok_tensor_describe(x, buf, sizeof buf) : "none");
    if (x->shape[0] < 1 || x->shape[2] < 1 || x->shape[3] < 1 || x->shape[2] % m ||
        x->shape[3] % m)
        return setok_fail(err, SETOK_ERR_INPUT, "unet: sample is %s; h and w must be positive "
                          "multiples of %d", setok_tensor_describe(x, buf, sizeof buf), m);
    if (!ctx || ctx->ndim != 3 || ctx->shape[0] != x->shape[0] || ctx->shape[1] < 1 ||
        ctx->dtype != u->dtype || !setok_tensor_is_contiguous(ctx))
        return setok_fail(err, SETOK_ERR_INPUT, "unet: encoder_hidden_states must be a "
                          "contiguous [%lld, S, D] %s tensor, got %s", (long long)x->shape[0],
                          setok_dtype_name(u->dtype),
                          ctx ? setok_tensor_describe(ctx, buf, sizeof buf) : "none");
    if (!t)
        return setok_fail(err, SETOK_ERR_INPUT, "unet: no timesteps");
    for (int64_t b = 0; b < x->shape[0]; b++)
        if (!isfinite(t[b]))
            return setok_fail(err, SETOK_ERR_INPUT, "unet: timestep %lld is not finite",
                              (long long)b);
    if (x->backend != u->backend || ctx->backend != u->backend || arena->backend != u->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "unet: inputs and the arena must be on the "
                          "model's backend (%s)", setok_backend_name(u->backend));
    return SETOK_OK;
}

setok_status setok_unet_forward(setok_unet *u, setok_arena *arena, setok_tensor *noise,
                                const setok_tensor *sample, const float *timesteps,
                                const setok_tensor *encoder_hidden_states,
                                const atomic_bool *cancel, setok_error *err)
{
    const setok_unet_config *c = &u->cfg;
    setok_backend *be = u->backend;
    setok_dtype dt = u->dtype;
    setok_status st = check_inputs(u, arena, sample, timesteps, encoder_hidden_states, err);
    if (st != SETOK_OK)
        return st;
    int64_t B = sample->shape[0], H = sample->shape[2], W = sample->shape[3];
    int64_t S = encoder_hidden_states->shape[1];
    unet_plan plan = unet_walk(u, B, H, W, S);
    setok_tensor skips[1 + SETOK_UNET_MAX_BLOCKS * 65], temb, centred, y;
    unet_run r = {.u = u, .arena = arena, .be = be, .temb = &temb,
                  .context = encoder_hidden_states, .skips = skips, .x = *sample};
    size_t start = setok_arena_mark(arena);
    st = setok_arena_tensor(arena, noise, dt, 4, (int64_t[]){B, c->out_channels, H, W}, err);
    size_t outputs = setok_arena_mark(arena);
    for (int i = 0; i < 2 && st == SETOK_OK; i++)
        st = setok_arena_alloc(arena, (size_t)plan.act * setok_dtype_size(dt), &r.buf[i], err);
    if (st == SETOK_OK)
        st = time_embedding(u, arena, &temb, timesteps, B, err);
    const setok_tensor *in = sample;
    if (st == SETOK_OK && c->center_input_sample) {
        st = setok_arena_tensor(arena, &centred, dt, 4, sample->shape, err);
        if (st == SETOK_OK)
            st = setok_scale(be, &centred, sample, 2.0f, -1.0f, err);
        in = &centred;
    }
    if (st == SETOK_OK)
        st = run_keep(&r, &y, c->block_out_channels[0], H, W, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, &y, in, &u->conv_in_w, &u->conv_in_b, 1, 1, err);
    if (st == SETOK_OK)
        r.x = y;
    char where[64];
    for (int i = 0; i < c->num_blocks && st == SETOK_OK; i++) {
        const unet_block *b = &u->down[i];
        snprintf(where, sizeof where, "down block %d", i);
        st = cancelled(cancel, where, err);
        for (int j = 0; j < b->count && st == SETOK_OK; j++)
            st = down_layer(&r, &b->layers[j], where, err);
        if (st == SETOK_OK && b->has_resample) {
            int64_t h2 = diffusion_downsample_extent(&b->down, r.x.shape[2]);
            int64_t w2 = diffusion_downsample_extent(&b->down, r.x.shape[3]);
            st = run_keep(&r, &y, b->down.ch, h2, w2, err);
            if (st == SETOK_OK)
                st = diffusion_downsample_forward(be, arena, &y, &r.x, &b->down, err);
            if (st == SETOK_OK)
                r.x = y;
        }
    }
    if (st == SETOK_OK && c->mid_cross_attention) {
        st = cancelled(cancel, "the mid block", err);
        unet_layer first = {.resnet = u->mid_r0, .attn = u->mid_attn, .has_attn = true};
        unet_layer second = {.resnet = u->mid_r1, .has_attn = false};
        if (st == SETOK_OK)
            st = pp_layer(&r, &first, "the mid block", err);
        if (st == SETOK_OK)
            st = pp_layer(&r, &second, "the mid block", err);
    }
    for (int i = 0; i < c->num_blocks && st == SETOK_OK; i++) {
        const unet_block *b = &u->up[i];
        snprintf(where, sizeof where, "up block %d", i);
        st = cancelled(cancel, where, err);
        for (int j = 0; j < b->count && st == SETOK_OK; j++) {
            st = concat_skip(&r, err);
            if (st == SETOK_OK)
                st = pp_layer(&r, &b->layers[j], where, err);
        }
        if (st == SETOK_OK && b->has_resample) {
            y = run_next(&r, b->up.ch, 2 * r.x.shape[2], 2 * r.x.shape[3]);
            st = diffusion_upsample_forward(be, arena, &y, &r.x, &b->up, err);
            if (st == SETOK_OK)
                run_flip(&r, &y);
        }
    }
    if (st == SETOK_OK) {
        /* conv_norm_out, SiLU, conv_out */
        setok_tensor tmp = run_next(&r, r.x.shape[1], H, W);
        st = setok_groupnorm(be, &tmp, &r.x, &u->norm_out_w, &u->norm_out_b, c->norm_num_groups,
                             c->norm_eps, err);
        if (st == SETOK_OK)
            st = setok_unary(be, SETOK_OP_SILU, &tmp, &tmp, err);
        if (st == SETOK_OK)
            st = setok_conv2d(be, noise, &tmp, &u->conv_out_w, &u->conv_out_b, 1, 1, err);
    }
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "unet forward");
    return st;
}
