/* vit.c — the vision tower, mirroring transformers' CLIPVisionModel and
 * SiglipVisionModel (modeling_clip.py, modeling_siglip.py): config, weights
 * and forward. Preprocessing is in vit-preprocess.c.
 *
 * Rules: one function per layer, outputs first; every activation comes from
 * the caller's arena, reset to a mark after each sub-layer, so memory stays
 * at setok_vit_arena_bytes whatever the depth. q, k and v are one fused
 * [3C, C] projection (the checkpoint's three matrices stacked at load). */
#include "setok/models/vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

#include "clip-encoder.h"
#include "vit-stem.h"

struct setok_vit {
    setok_vit_config cfg;
    setok_vit_preprocessor pre;
    setok_backend *backend;
    setok_dtype dtype;
    setok_tensor patch_w, patch_b;      /* [C, Cin, p, p], [C] (SigLIP only) */
    vit_stem stem;                      /* instead of patch_w when cfg.stem_layers */
    setok_tensor class_emb;             /* [C] (CLIP only) */
    setok_tensor pos_emb;               /* [cls + grid^2, C] */
    setok_tensor pre_ln_w, pre_ln_b;    /* CLIP pre_layrnorm */
    setok_tensor post_ln_w, post_ln_b;  /* SigLIP post_layernorm */
    clip_layer *layers;
    setok_weights *weights;             /* kept open: tensors may point into it */
};

/* ---------------------------------------------------------------------------
 * config */

void setok_vit_config_defaults(setok_vit_config *cfg, setok_vit_arch arch)
{
    bool clip = arch == SETOK_VIT_CLIP;
    *cfg = (setok_vit_config){
        .arch = arch,
        .hidden_size = 768,
        .intermediate_size = 3072,
        .num_layers = 12,
        .num_heads = 12,
        .num_channels = 3,
        .image_size = 224,
        .patch_size = clip ? 32 : 16,
        .layer_norm_eps = clip ? 1e-5f : 1e-6f,
        .act = clip ? SETOK_OP_QUICK_GELU : SETOK_OP_GELU_TANH,
        .feature_layer = -1,
        .drop_cls = false,
    };
}

static bool is_any(const char *s, const char *const *names)
{
    for (; s && *names; names++)
        if (!strcmp(s, *names))
            return true;
    return false;
}

static setok_status read_int(const setok_config *json, const char *prefix, const char *name,
                             int lo, int hi, int *inout, setok_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return setok_config_int_in(json, key, false, lo, hi, inout, err);
}

/* Which tower a config.json describes and where its keys are: at the top
 * (CLIPVisionConfig, SiglipVisionConfig) or under vision_config (CLIPModel,
 * SiglipModel, LLaVA). Architecture names win over model_type. */
static setok_status config_layout(const setok_config *json, setok_vit_config *cfg,
                                  const char **prefix, bool *is_llava, setok_error *err)
{
    static const char *const clip_vision[] = {"CLIPVisionModel", "CLIPVisionModelWithProjection",
                                              "clip_vision_model", NULL};
    static const char *const siglip_vision[] = {"SiglipVisionModel", "siglip_vision_model", NULL};
    static const char *const clip_full[] = {"CLIPModel", "clip", NULL};
    static const char *const siglip_full[] = {"SiglipModel", "siglip", NULL};
    static const char *const llava[] = {"LlavaForConditionalGeneration", "llava", NULL};
    const char *path = setok_config_path(json), *arch = NULL, *type = NULL;
    const cJSON *root = setok_config_root(json);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    else if (cJSON_IsString(cls))
        arch = cls->valuestring;
    setok_status st = setok_config_string_or(json, "model_type", "", &type, err);
    if (st != SETOK_OK)
        return st;
    const char *names[2] = {arch, type};
    *is_llava = false;
    for (int i = 0; i < 2; i++) {
        const char *n = names[i];
        *prefix = "";
        if (is_any(n, clip_vision) || is_any(n, siglip_vision)) {
            setok_vit_config_defaults(cfg, is_any(n, clip_vision) ? SETOK_VIT_CLIP
                                                                  : SETOK_VIT_SIGLIP);
            return SETOK_OK;
        }
        *prefix = "vision_config.";
        if (is_any(n, clip_full) || is_any(n, siglip_full)) {
            setok_vit_config_defaults(cfg, is_any(n, clip_full) ? SETOK_VIT_CLIP
                                                                : SETOK_VIT_SIGLIP);
            return SETOK_OK;
        }
        if (!is_any(n, llava))
            continue;
        *is_llava = true;
        const char *sub = NULL;
        st = setok_config_string_or(json, "vision_config.model_type", "clip_vision_model", &sub,
                                    err);
        if (st != SETOK_OK)
            return st;
        if (!strcmp(sub, "siglip_vision_model")) {
            setok_vit_config_defaults(cfg, SETOK_VIT_SIGLIP);
        } else if (!strcmp(sub, "clip_vision_model")) {
            /* LlavaConfig's own vision_config defaults: CLIP ViT-L/14-336 */
            setok_vit_config_defaults(cfg, SETOK_VIT_CLIP);
            cfg->hidden_size = 1024;
            cfg->intermediate_size = 4096;
            cfg->num_layers = 24;
            cfg->num_heads = 16;
            cfg->image_size = 336;
            cfg->patch_size = 14;
        } else {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: vision_config.model_type '%s' is not "
                              "clip_vision_model or siglip_vision_model", path, sub);
        }
        return SETOK_OK;
    }
    return setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a CLIP, SigLIP or "
                      "LLaVA vision model", path, arch ? arch : "no architectures entry", type);
}

/* LLaVA's vision_feature_layer / vision_feature_select_strategy. */
static setok_status llava_selection(const setok_config *json, setok_vit_config *cfg,
                                    setok_error *err)
{
    const char *path = setok_config_path(json);
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(setok_config_root(json),
                                                          "vision_feature_layer");
    if (cJSON_IsArray(layer))
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: vision_feature_layer lists several "
                          "layers; only one is supported", path);
    int64_t fl;
    const char *strategy = NULL;
    setok_status st = setok_config_int_or(json, "vision_feature_layer", -2, &fl, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "vision_feature_select_strategy", "default", &strategy,
                                    err);
    if (st != SETOK_OK)
        return st;
    if (fl < -(int64_t)cfg->num_layers - 1 || fl > cfg->num_layers)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: vision_feature_layer %lld is outside "
                          "[-%d, %d]", path, (long long)fl, cfg->num_layers + 1, cfg->num_layers);
    if (strcmp(strategy, "default") && strcmp(strategy, "full"))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: vision_feature_select_strategy must be "
                          "'default' or 'full', got '%s'", path, strategy);
    cfg->feature_layer = (int)fl;
    /* HF LLaVA drops token 0 even for towers without CLS; here only CLS is dropped */
    cfg->drop_cls = !strcmp(strategy, "default") && cfg->arch == SETOK_VIT_CLIP;
    return SETOK_OK;
}

/* The rules every config obeys, whether read from a file or built in code. */
static setok_status config_check(const setok_vit_config *c, const char *where, setok_error *err)
{
    if (c->hidden_size < 1 || c->intermediate_size < 1 || c->num_layers < 0 ||
        c->num_heads < 1 || c->num_channels < 1 || c->patch_size < 1 || c->image_size < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: sizes must be positive", where);
    if (c->hidden_size % c->num_heads)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: hidden_size %d is not a multiple of "
                          "num_attention_heads %d", where, c->hidden_size, c->num_heads);
    if (c->image_size < c->patch_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: image_size %d is smaller than patch_size %d",
                          where, c->image_size, c->patch_size);
    if (c->act != SETOK_OP_QUICK_GELU && c->act != SETOK_OP_GELU && c->act != SETOK_OP_GELU_TANH)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: act must be quick_gelu, gelu or gelu_tanh",
                          where);
    return vit_stem_config_check(c, where, err);
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_vit_config *cfg = out;
    const char *path = setok_config_path(json), *p = NULL;
    bool is_llava = false;
    setok_status st = config_layout(json, cfg, &p, &is_llava, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "hidden_size", 1, 1 << 16, &cfg->hidden_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "intermediate_size", 1, 1 << 20, &cfg->intermediate_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "num_hidden_layers", 0, 1024, &cfg->num_layers, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "num_attention_heads", 1, 1 << 12, &cfg->num_heads, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "num_channels", 1, 64, &cfg->num_channels, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "image_size", 1, 1 << 16, &cfg->image_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "patch_size", 1, 1 << 12, &cfg->patch_size, err);
    char key[128];
    double eps = cfg->layer_norm_eps;
    const char *act = NULL;
    snprintf(key, sizeof key, "%slayer_norm_eps", p);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, key, eps, &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be in (0, 1), got %g", path, key, eps);
    cfg->layer_norm_eps = (float)eps;
    snprintf(key, sizeof key, "%shidden_act", p);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, NULL, &act, err);
    if (st == SETOK_OK && act) {
        if (!strcmp(act, "quick_gelu"))
            cfg->act = SETOK_OP_QUICK_GELU;
        else if (!strcmp(act, "gelu"))
            cfg->act = SETOK_OP_GELU;
        else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new"))
            cfg->act = SETOK_OP_GELU_TANH;
        else
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s '%s' is not one of quick_gelu, "
                            "gelu, gelu_pytorch_tanh, gelu_new", path, key, act);
    }
    if (st == SETOK_OK)
        st = vit_stem_config_parse(cfg, json, p, err);
    if (st == SETOK_OK)
        st = config_check(cfg, path, err);
    if (st == SETOK_OK && is_llava)
        st = llava_selection(json, cfg, err);
    return st;
}

setok_status setok_vit_config_load(setok_vit_config *cfg, const char *dir, setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

void setok_vit_free(setok_vit *vit)
{
    if (!vit)
        return;
    if (vit->layers)
        for (int i = 0; i < vit->cfg.num_layers; i++)
            clip_layer_free(&vit->layers[i]);
    setok_tensor *all[] = {&vit->patch_w,  &vit->patch_b,   &vit->class_emb,
                           &vit->pos_emb,  &vit->pre_ln_w,  &vit->pre_ln_b,
                           &vit->post_ln_w, &vit->post_ln_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
    vit_stem_free(&vit->stem, vit->cfg.stem_layers);
    free(vit->layers);
    setok_weights_close(vit->weights);
    free(vit);
}

static setok_status vit_alloc(setok_vit **out, const setok_vit_config *cfg,
                              setok_backend *backend, setok_dtype dtype, setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "vit: dtype must be f32, f16 or bf16, got %s",
                          setok_dtype_name(dtype));
    setok_vit *vit = calloc(1, sizeof *vit);
    if (vit)
        vit->layers = calloc(cfg->num_layers > 0 ? (size_t)cfg->num_layers : 1,
                             sizeof *vit->layers);
    if (!vit || !vit->layers) {
        free(vit);
        return setok_fail(err, SETOK_ERR_NOMEM, "vit: out of memory");
    }
    vit->cfg = *cfg;
    vit->backend = backend;
    vit->dtype = dtype;
    *out = vit;
    return SETOK_OK;
}

/* The tower's weights through ld (files or random). The checkpoint's prefix is
 * found from the patch embedding (or the stem): bare (transformers >= 5 CLIPVisionModel),
 * CLIPModel's vision_model., or a LLaVA spelling. */
static setok_status load_weights(setok_vit *vit, setok_loader *ld, setok_error *err)
{
    static const char *const prefixes[] = {
        "", "vision_model.", "vision_tower.vision_model.", "model.vision_tower.vision_model.",
        "vision_tower.", "model.vision_tower.",
    };
    const setok_vit_config *c = &vit->cfg;
    bool is_clip = c->arch == SETOK_VIT_CLIP;
    unsigned clip = is_clip ? 0 : SETOK_WEIGHT_SKIP, siglip = is_clip ? SETOK_WEIGHT_SKIP : 0;
    int64_t C = c->hidden_size, grid = c->image_size / c->patch_size;
    int64_t positions = grid * grid + (is_clip ? 1 : 0);
    /* the prefix is found from the first weight: the stem's first convolution or the patch
     * embedding */
    int64_t probe[4] = {C, c->num_channels, c->patch_size, c->patch_size};
    const char *anchor = c->stem_layers ? vit_stem_anchor(c, probe)
                                        : "embeddings.patch_embedding.weight";
    unsigned patch = c->stem_layers ? SETOK_WEIGHT_SKIP : 0;
    char prefix[96];
    setok_status st = setok_loader_find_prefix(ld, prefixes, sizeof prefixes / sizeof *prefixes,
                                               anchor, 4, probe, prefix, sizeof prefix, err);
    ld->prefix = prefix;
    const setok_weight table[] = {
        {&vit->patch_w, "embeddings.patch_embedding.weight", 4,
         {C, c->num_channels, c->patch_size, c->patch_size}, patch},
        {&vit->patch_b, "embeddings.patch_embedding.bias", 1, {C}, siglip},
        {&vit->pos_emb, "embeddings.position_embedding.weight", 2, {positions, C}, 0},
        {&vit->class_emb, "embeddings.class_embedding", 1, {C}, clip},
        {&vit->pre_ln_w, "pre_layrnorm.weight", 1, {C}, clip},
        {&vit->pre_ln_b, "pre_layrnorm.bias", 1, {C}, clip},
        {&vit->post_ln_w, "post_layernorm.weight", 1, {C}, siglip},
        {&vit->post_ln_b, "post_layernorm.bias", 1, {C}, siglip},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", table, sizeof table / sizeof *table, err);
    if (st == SETOK_OK && c->stem_layers)
        st = vit_stem_load(&vit->stem, c, ld, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        char layer[48];
        snprintf(layer, sizeof layer, "encoder.layers.%d", i);
        st = clip_layer_load(&vit->layers[i], ld, layer, C, c->intermediate_size, err);
    }
    ld->prefix = NULL;
    return st;
}

/* A tower without processor settings takes images at its own image_size: every published
 * CLIP / SigLIP processor is its class's defaults at that size (the class's 224 px would
 * make a 336 px tower see a stretched grid). setok_model says so where it opens one. */
static void default_size(setok_vit_preprocessor *pp, const setok_vit_config *cfg)
{
    if (pp->shortest_edge > 0)
        pp->shortest_edge = cfg->image_size;
    else
        pp->resize_width = pp->resize_height = cfg->image_size;
    if (pp->do_center_crop)
        pp->crop_width = pp->crop_height = cfg->image_size;
}

setok_status setok_vit_load(setok_vit **out, const char *dir, setok_backend *backend,
                            setok_dtype dtype, setok_dtype matrix, setok_error *err)
{
    *out = NULL;
    setok_vit_config cfg;
    setok_vit *vit = NULL;
    setok_weights *w = NULL;
    setok_status st = setok_vit_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = vit_alloc(&vit, &cfg, backend, dtype, err);
    if (st == SETOK_OK)
        st = setok_vit_preprocessor_load(&vit->pre, dir, cfg.arch, err);
    if (st == SETOK_OK && !setok_vit_preprocessor_file(dir))
        default_size(&vit->pre, &cfg);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype, .matrix = matrix,
                           .in_place = true};
        st = load_weights(vit, &ld, err);
    }
    if (vit)
        vit->weights = w;
    else
        setok_weights_close(w);
    if (st != SETOK_OK) {
        setok_vit_free(vit);
        return st;
    }
    *out = vit;
    return SETOK_OK;
}

setok_status setok_vit_create_random(setok_vit **out, const setok_vit_config *cfg,
                                     setok_backend *backend, setok_dtype dtype,
                                     setok_dtype matrix, uint32_t seed, setok_error *err)
{
    *out = NULL;
    setok_vit *vit = NULL;
    setok_status st = config_check(cfg, "vit", err);
    if (st == SETOK_OK)
        st = vit_alloc(&vit, cfg, backend, dtype, err);
    if (st != SETOK_OK)
        return st;
    setok_vit_preprocessor_defaults(&vit->pre, cfg->arch);
    uint32_t state = seed * 2654435761u + 1u;
    setok_loader ld = {.random_state = &state, .backend = backend, .dtype = dtype,
                       .matrix = matrix};
    st = load_weights(vit, &ld, err);
    if (st != SETOK_OK) {
        setok_vit_free(vit);
        return st;
    }
    *out = vit;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * accessors and sizes */

const setok_vit_config *setok_vit_get_config(const setok_vit *vit)
{
    return &vit->cfg;
}

const setok_vit_preprocessor *setok_vit_get_preprocessor(const setok_vit *vit)
{
    return &vit->pre;
}

setok_dtype setok_vit_dtype(const setok_vit *vit)
{
    return vit->dtype;
}

bool setok_vit_has_cls(const setok_vit *vit)
{
    return vit->cfg.arch == SETOK_VIT_CLIP;
}

int64_t setok_vit_num_tokens(const setok_vit *vit, int64_t height, int64_t width, bool drop_cls,
                             int64_t *grid_h, int64_t *grid_w)
{
    int64_t gh = height > 0 ? height / vit->cfg.patch_size : 0;
    int64_t gw = width > 0 ? width / vit->cfg.patch_size : 0;
    if (grid_h)
        *grid_h = gh;
    if (grid_w)
        *grid_w = gw;
    if (gh == 0 || gw == 0)
        return 0;
    return gh * gw + (setok_vit_has_cls(vit) && !drop_cls ? 1 : 0);
}

size_t setok_vit_arena_bytes(const setok_vit *vit, int64_t batch, int64_t height, int64_t width)
{
    const setok_vit_config *c = &vit->cfg;
    size_t e = setok_dtype_size(vit->dtype);
    int64_t gh, gw, g0 = c->image_size / c->patch_size;
    int64_t t = setok_vit_num_tokens(vit, height, width, false, &gh, &gw);
    int64_t C = c->hidden_size, I = c->intermediate_size, P = gh * gw;
    int64_t btc = batch * t * C;
    /* outputs (features, last_hidden_state), the residual stream and its scratch */
    size_t fixed = 4 * clip_arena_slot(btc, e);
    /* embeddings: conv output, position table, its grid and the resized grid */
    size_t embed = clip_arena_slot(batch * C * P, e) + clip_arena_slot(t * C, e) +
                   clip_arena_slot(C * g0 * g0, e) + clip_arena_slot(C * P, e) +
                   vit_stem_arena_bytes(c, batch, height, width, e);
    clip_dims d = {.B = batch, .T = t, .C = C, .I = I, .NH = c->num_heads};
    size_t layer = clip_layer_arena_bytes(&d, e);
    size_t peak = embed > layer ? embed : layer;
    return fixed + peak + 4096;
}

/* ---------------------------------------------------------------------------
 * layers */

// pos_table: [cls + g0*g0, C] -> pos: [cls + gh*gw, C]; the patch rows resized as a
// [C, g0, g0] image (bicubic, align_corners=False, to size (gh, gw), as transformers'
// interpolate_pos_encoding), the class row kept
static setok_status vit_position_embedding(setok_backend *be, setok_arena *arena,
                                           setok_tensor *pos, const setok_tensor *pos_table,
                                           int64_t cls, int64_t g0, int64_t gh, int64_t gw,
                                           int64_t C, setok_error *err)
{
    setok_tensor rows, grid_view, grid, resized, resized_view, dst_rows, dst;
    setok_status st = setok_arena_tensor(arena, pos, pos_table->dtype, 2,
                                         (int64_t[]){cls + gh * gw, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &grid, pos_table->dtype, 4, (int64_t[]){1, C, g0, g0}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &resized, pos_table->dtype, 4, (int64_t[]){1, C, gh, gw},
                                err);
    if (st == SETOK_OK)
        st = setok_view_slice(&rows, pos_table, 0, cls, g0 * g0, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&rows, &rows, 4, (int64_t[]){1, g0, g0, C}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&grid_view, &rows, (int[]){0, 3, 1, 2}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &grid, &grid_view, err);
    if (st == SETOK_OK)
        st = setok_resize_bicubic(be, &resized, &grid, false, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&resized_view, &resized, (int[]){0, 2, 3, 1}, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&dst_rows, pos, 0, cls, gh * gw, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&dst, &dst_rows, 4, (int64_t[]){1, gh, gw, C}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &dst, &resized_view, err);
    if (st == SETOK_OK && cls) {
        setok_tensor src_row, dst_row;
        st = setok_view_slice(&src_row, pos_table, 0, 0, 1, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&dst_row, pos, 0, 0, 1, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &dst_row, &src_row, err);
    }
    return st;
}

// pixel_values: [B, Cin, H, W] -> h: [B, T, C] = ([class_embedding,] patches) + positions,
// then CLIP's pre_layrnorm; tmp: [B, T, C] scratch
static setok_status vit_embeddings(setok_vit *vit, setok_arena *arena, setok_tensor *h,
                                   setok_tensor *tmp, const setok_tensor *pixel_values,
                                   int64_t gh, int64_t gw, const clip_dims *d, setok_error *err)
{
    setok_backend *be = vit->backend;
    const setok_vit_config *c = &vit->cfg;
    bool clip = c->arch == SETOK_VIT_CLIP;
    int64_t cls = clip ? 1 : 0, P = gh * gw, g0 = c->image_size / c->patch_size;
    /* CLIP: tokens in h, + positions into tmp, layer norm back into h; SigLIP: tmp, then h */
    setok_tensor *tokens = clip ? h : tmp, *summed = clip ? tmp : h;
    setok_tensor conv, flat, patches, dst, pos = vit->pos_emb;
    setok_status st = setok_arena_tensor(arena, &conv, vit->dtype, 4,
                                         (int64_t[]){d->B, d->C, gh, gw}, err);
    if (st == SETOK_OK && c->stem_layers)
        st = vit_stem_forward(be, arena, &conv, pixel_values, &vit->stem, c, err);
    else if (st == SETOK_OK)
        st = setok_conv2d(be, &conv, pixel_values, &vit->patch_w, clip ? NULL : &vit->patch_b,
                          c->patch_size, 0, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&flat, &conv, 3, (int64_t[]){d->B, d->C, P}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&patches, &flat, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&dst, tokens, 1, cls, P, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &dst, &patches, err);
    for (int64_t b = 0; b < d->B && cls && st == SETOK_OK; b++) {
        setok_tensor row, src;
        st = setok_view_slice(&row, tokens, 0, b, 1, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&row, &row, 1, 0, 1, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&src, &vit->class_emb, 3, (int64_t[]){1, 1, d->C}, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &row, &src, err);
    }
    if (st == SETOK_OK && (gh != g0 || gw != g0))
        st = vit_position_embedding(be, arena, &pos, &vit->pos_emb, cls, g0, gh, gw, d->C, err);
    if (st == SETOK_OK)
        st = setok_add(be, summed, tokens, &pos, err);
    if (st == SETOK_OK && clip)
        st = setok_layernorm(be, h, summed, &vit->pre_ln_w, &vit->pre_ln_b, c->layer_norm_eps,
                             err);
    return st;
}

// h: [B, T, C] -> out: [B, T - drop, C] (a copy, without the class token when drop)
static setok_status select_tokens(setok_backend *be, setok_tensor *out, const setok_tensor *h,
                                  bool drop, setok_error *err)
{
    setok_tensor src = *h;
    setok_status st = drop ? setok_view_slice(&src, h, 1, 1, h->shape[1] - 1, err) : SETOK_OK;
    if (st == SETOK_OK)
        st = setok_copy(be, out, &src, err);
    return st;
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_input(const setok_vit *vit, const setok_arena *arena,
                                const setok_tensor *px, setok_error *err)
{
    char buf[96];
    if (!px || px->ndim != 4 || px->shape[1] != vit->cfg.num_channels ||
        px->dtype != vit->dtype || !setok_tensor_is_contiguous(px))
        return setok_fail(err, SETOK_ERR_INPUT, "vit: pixel_values must be a contiguous "
                          "[B, %d, H, W] %s tensor, got %s", vit->cfg.num_channels,
                          setok_dtype_name(vit->dtype),
                          px ? setok_tensor_describe(px, buf, sizeof buf) : "none");
    if (px->backend != vit->backend || arena->backend != vit->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "vit: pixel_values and the arena must be on the "
                          "model's backend (%s)", setok_backend_name(vit->backend));
    if (px->shape[0] < 1 || px->shape[2] < vit->cfg.patch_size ||
        px->shape[3] < vit->cfg.patch_size)
        return setok_fail(err, SETOK_ERR_INPUT, "vit: pixel_values %s holds no %dx%d patch",
                          setok_tensor_describe(px, buf, sizeof buf), vit->cfg.patch_size,
                          vit->cfg.patch_size);
    return SETOK_OK;
}

setok_status setok_vit_forward(setok_vit *vit, setok_arena *arena, setok_tensor *features,
                               setok_tensor *last_hidden_state, const setok_tensor *pixel_values,
                               int feature_layer, bool drop_cls, const atomic_bool *cancel,
                               setok_error *err)
{
    const setok_vit_config *c = &vit->cfg;
    setok_backend *be = vit->backend;
    int L = c->num_layers;
    bool clip = c->arch == SETOK_VIT_CLIP;
    if (!features && !last_hidden_state)
        return setok_fail(err, SETOK_ERR_INPUT, "vit: no output requested");
    setok_status st = check_input(vit, arena, pixel_values, err);
    if (st != SETOK_OK)
        return st;
    /* sel: the hidden_states index for features; from_last: features come from
     * last_hidden_state (SigLIP: after post_layernorm) */
    int sel = -1;
    bool from_last = false;
    if (features) {
        if (feature_layer == SETOK_VIT_LAST_HIDDEN_STATE) {
            sel = L;
            from_last = true;
        } else if (feature_layer < -L - 1 || feature_layer > L) {
            return setok_fail(err, SETOK_ERR_INPUT, "vit: feature_layer %d is outside [-%d, %d] "
                              "(%d layers)", feature_layer, L + 1, L, L);
        } else {
            sel = feature_layer < 0 ? L + 1 + feature_layer : feature_layer;
        }
        if (drop_cls && !clip)
            return setok_fail(err, SETOK_ERR_INPUT, "vit: drop_cls: this SigLIP tower has no "
                              "class token");
    }
    int64_t gh, gw;
    clip_dims d = {.B = pixel_values->shape[0], .C = c->hidden_size, .I = c->intermediate_size,
              .NH = c->num_heads};
    d.T = setok_vit_num_tokens(vit, pixel_values->shape[2], pixel_values->shape[3], false, &gh,
                               &gw);
    int64_t shape[3] = {d.B, d.T, d.C};
    size_t start = setok_arena_mark(arena);
    setok_tensor h, tmp;
    if (features)
        st = setok_arena_tensor(arena, features, vit->dtype, 3,
                                (int64_t[]){d.B, d.T - (drop_cls ? 1 : 0), d.C}, err);
    if (st == SETOK_OK && last_hidden_state)
        st = setok_arena_tensor(arena, last_hidden_state, vit->dtype, 3, shape, err);
    size_t outputs = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h, vit->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tmp, vit->dtype, 3, shape, err);
    size_t mark = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = vit_embeddings(vit, arena, &h, &tmp, pixel_values, gh, gw, &d, err);
    setok_arena_reset(arena, mark);
    if (st == SETOK_OK && sel == 0 && !from_last)
        st = select_tokens(be, features, &h, drop_cls, err);
    int depth = last_hidden_state || from_last ? L : sel;
    for (int i = 0; i < depth && st == SETOK_OK; i++) {
        if (cancel && atomic_load(cancel)) {
            st = setok_fail(err, SETOK_ERR_CANCELLED, "vit: cancelled before layer %d of %d", i,
                            L);
            break;
        }
        st = clip_layer_forward(be, arena, &h, &tmp, &vit->layers[i], &d, c->act, c->layer_norm_eps,
                                false, err);
        if (st == SETOK_OK && i + 1 == sel && !from_last)
            st = select_tokens(be, features, &h, drop_cls, err);
    }
    if (st == SETOK_OK && (last_hidden_state || from_last)) {
        /* last_hidden_state: CLIP returns the last layer as is, SigLIP post_layernorm of it */
        setok_tensor *last = last_hidden_state ? last_hidden_state : features;
        if (clip && last_hidden_state)
            st = setok_copy(be, last_hidden_state, &h, err);
        else if (!clip)
            st = setok_layernorm(be, last, &h, &vit->post_ln_w, &vit->post_ln_b,
                                 c->layer_norm_eps, err);
        if (st == SETOK_OK && from_last && last != features)
            st = select_tokens(be, features, last, drop_cls, err);
        else if (st == SETOK_OK && from_last && clip)
            st = select_tokens(be, features, &h, drop_cls, err);
    }
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "vit forward");
    return st;
}
