/* sam-vision.c — SAM's image encoder, mirroring transformers' SamVisionEncoder
 * (modeling_sam.py: SamPatchEmbeddings, SamVisionLayer, SamVisionAttention with
 * decomposed relative positions, SamVisionNeck): config, weights and forward.
 * The processor is in sam-preprocess.c.
 *
 * Rules: one function per layer, outputs first; activations come from the
 * caller's arena, reset to a mark after each sub-layer. Windows are cut and
 * pasted with strided copies of at most four axes. The relative-position term
 * rel_h[q, ky] + rel_w[q, kx] becomes the attention's additive mask a bounded
 * chunk of query rows at a time, so a global block at 1024 px never holds its
 * [heads, 4096, 4096] bias at once. rel_pos_h / rel_pos_w are interpolated and
 * gathered into [query, key, head_dim] tables once, at load. */
#include "io/loader.h"
#include "setok/models/sam_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/models/projector.h"
#include "setok/weights.h"

#include "sam-impl.h"

/* SamLayerNorm's default, which the neck's LayerNorm2d layers keep. */
#define NECK_LN_EPS 1e-6f
/* Floats of attention scores one chunk of rel_attention holds: a few MiB on the CPU, where
 * they stay in cache; on a GPU, a few heads of a global block at 1024 px. */
#define HOST_SCORE_FLOATS (1 << 20)
#define DEVICE_SCORE_FLOATS (1 << 26)

typedef struct sam_block {
    setok_tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    setok_tensor ln2_w, ln2_b, lin1_w, lin1_b, lin2_w, lin2_b;
    setok_tensor rel_h, rel_w; /* [S, S, head_dim]: table[q][k] = resized rel_pos[q - k + S - 1] */
    bool global;
    int size;                  /* S: the window, or the grid for a global block */
} sam_block;

struct setok_sam_vision {
    setok_sam_vision_config cfg;
    setok_sam_preprocessor pre;
    setok_backend *backend;
    setok_dtype dtype;
    setok_tensor patch_w, patch_b; /* [C, Cin, p, p], [C] */
    setok_tensor pos_emb;          /* [g * g, C] */
    sam_block *blocks;
    setok_tensor neck1_w;          /* [out, C] (the 1x1 conv) */
    setok_tensor neck_ln1_w, neck_ln1_b, neck2_w, neck_ln2_w, neck_ln2_b;
    setok_tensor zeros;            /* [3C]: q, k, v of padded window cells without qkv_bias */
    setok_weights *weights;        /* kept open: tensors may point into it */
};

/* ---------------------------------------------------------------------------
 * config */

void setok_sam_vision_config_defaults(setok_sam_vision_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden_size = 768;
    cfg->output_channels = 256;
    cfg->num_layers = 12;
    cfg->num_heads = 12;
    cfg->num_channels = 3;
    cfg->image_size = 1024;
    cfg->patch_size = 16;
    cfg->mlp_dim = 3072;
    cfg->window_size = 14;
    cfg->global_attn[2] = cfg->global_attn[5] = cfg->global_attn[8] = cfg->global_attn[11] = true;
    cfg->qkv_bias = cfg->use_abs_pos = cfg->use_rel_pos = true;
    cfg->layer_norm_eps = 1e-6f;
    cfg->act = SETOK_OP_GELU;
}

static int grid_of(const setok_sam_vision_config *c)
{
    return c->image_size / c->patch_size;
}

/* The rules every config obeys, whether read from a file or built in code. */
static setok_status config_check(const setok_sam_vision_config *c, const char *where,
                                 setok_error *err)
{
    if (c->hidden_size < 1 || c->num_heads < 1 || c->hidden_size % c->num_heads)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: num_attention_heads %d must divide "
                          "hidden_size %d", where, c->num_heads, c->hidden_size);
    if (c->num_layers < 1 || c->num_layers > SETOK_SAM_VISION_MAX_LAYERS)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: num_hidden_layers %d is outside [1, %d]",
                          where, c->num_layers, SETOK_SAM_VISION_MAX_LAYERS);
    if (c->patch_size < 1 || c->image_size < c->patch_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: image_size %d holds no %d-pixel patch",
                          where, c->image_size, c->patch_size);
    if (c->window_size < 0 || c->mlp_dim < 1 || c->output_channels < 1 || c->num_channels < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: window_size, mlp_dim, output_channels and "
                          "num_channels must be positive (window_size 0: every block global)",
                          where);
    return SETOK_OK;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_sam_vision_config *cfg = out;
    const char *path = setok_config_path(json), *arch = NULL, *type = NULL, *act = NULL;
    const cJSON *root = setok_config_root(json);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    setok_status st = setok_config_string_or(json, "model_type", "", &type, err);
    if (st != SETOK_OK)
        return st;
    const char *px;
    if ((arch && !strcmp(arch, "SamModel")) || !strcmp(type, "sam"))
        px = "vision_config.";
    else if ((arch && !strcmp(arch, "SamVisionModel")) || !strcmp(type, "sam_vision_model"))
        px = "";
    else
        return setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a SamModel "
                          "or SamVisionModel", path, arch ? arch : "no architectures entry",
                          type);
    setok_sam_vision_config_defaults(cfg);
    char key[96];
    struct {
        const char *key;
        int lo, hi;
        int *v;
    } ints[] = {
        {"hidden_size", 1, 1 << 16, &cfg->hidden_size},
        {"output_channels", 1, 1 << 16, &cfg->output_channels},
        {"num_hidden_layers", 1, SETOK_SAM_VISION_MAX_LAYERS, &cfg->num_layers},
        {"num_attention_heads", 1, 1 << 12, &cfg->num_heads},
        {"num_channels", 1, 64, &cfg->num_channels},
        {"image_size", 1, 1 << 15, &cfg->image_size},
        {"patch_size", 1, 1 << 12, &cfg->patch_size},
        {"window_size", 0, 1 << 12, &cfg->window_size},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == SETOK_OK; i++) {
        snprintf(key, sizeof key, "%s%s", px, ints[i].key);
        st = setok_config_int_in(json, key, false, ints[i].lo, ints[i].hi, ints[i].v, err);
    }
    /* mlp_dim: null or absent means int(hidden_size * mlp_ratio) */
    double ratio = 4.0;
    snprintf(key, sizeof key, "%smlp_ratio", px);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, key, 4.0, &ratio, err);
    if (st == SETOK_OK && !(ratio > 0.0 && ratio < 1024.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be positive, got %g", path, key,
                        ratio);
    cfg->mlp_dim = (int)(cfg->hidden_size * ratio);
    snprintf(key, sizeof key, "%smlp_dim", px);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, key, false, 1, 1 << 20, &cfg->mlp_dim, err);
    struct {
        const char *key;
        bool *v;
    } flags[] = {
        {"qkv_bias", &cfg->qkv_bias},
        {"use_abs_pos", &cfg->use_abs_pos},
        {"use_rel_pos", &cfg->use_rel_pos},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0] && st == SETOK_OK; i++) {
        snprintf(key, sizeof key, "%s%s", px, flags[i].key);
        st = setok_config_bool_or(json, key, *flags[i].v, flags[i].v, err);
    }
    double eps = cfg->layer_norm_eps;
    snprintf(key, sizeof key, "%slayer_norm_eps", px);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, key, eps, &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be in (0, 1), got %g", path, key, eps);
    cfg->layer_norm_eps = (float)eps;
    snprintf(key, sizeof key, "%shidden_act", px);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, "gelu", &act, err);
    if (st == SETOK_OK)
        st = setok_projector_act_from_name(act, &cfg->act, path, err);
    /* global_attn_indexes: as transformers, an index that names no block changes nothing */
    snprintf(key, sizeof key, "%sglobal_attn_indexes", px);
    if (st == SETOK_OK && setok_config_has(json, key)) {
        int64_t idx[SETOK_SAM_VISION_MAX_LAYERS];
        size_t n = 0;
        st = setok_config_int_array(json, key, idx, SETOK_SAM_VISION_MAX_LAYERS, &n, err);
        memset(cfg->global_attn, 0, sizeof cfg->global_attn);
        for (size_t i = 0; st == SETOK_OK && i < n; i++)
            if (idx[i] >= 0 && idx[i] < cfg->num_layers)
                cfg->global_attn[idx[i]] = true;
    }
    if (st == SETOK_OK)
        st = config_check(cfg, path, err);
    return st;
}

setok_status setok_sam_vision_config_load(setok_sam_vision_config *cfg, const char *dir,
                                          setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

static void free_block(sam_block *b)
{
    setok_tensor *all[] = {&b->ln1_w, &b->ln1_b, &b->qkv_w,  &b->qkv_b,  &b->proj_w, &b->proj_b,
                           &b->ln2_w, &b->ln2_b, &b->lin1_w, &b->lin1_b, &b->lin2_w, &b->lin2_b,
                           &b->rel_h, &b->rel_w};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

void setok_sam_vision_free(setok_sam_vision *m)
{
    if (!m)
        return;
    for (int i = 0; m->blocks && i < m->cfg.num_layers; i++)
        free_block(&m->blocks[i]);
    setok_tensor *all[] = {&m->patch_w,    &m->patch_b,    &m->pos_emb,    &m->neck1_w,
                           &m->neck_ln1_w, &m->neck_ln1_b, &m->neck2_w,    &m->neck_ln2_w,
                           &m->neck_ln2_b, &m->zeros};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
    free(m->blocks);
    setok_weights_close(m->weights);
    free(m);
}

static setok_status alloc_model(setok_sam_vision **out, const setok_sam_vision_config *cfg,
                                setok_backend *backend, setok_dtype dtype, setok_error *err)
{
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "sam vision: dtype must be f32, f16 or bf16, "
                          "got %s", setok_dtype_name(dtype));
    setok_sam_vision *m = calloc(1, sizeof *m);
    if (m)
        m->blocks = calloc((size_t)cfg->num_layers, sizeof *m->blocks);
    if (!m || !m->blocks) {
        free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "sam vision: out of memory");
    }
    m->cfg = *cfg;
    m->backend = backend;
    m->dtype = dtype;
    for (int i = 0; i < cfg->num_layers; i++) {
        m->blocks[i].global = cfg->global_attn[i] || cfg->window_size == 0;
        m->blocks[i].size = m->blocks[i].global ? grid_of(cfg) : cfg->window_size;
    }
    *out = m;
    return SETOK_OK;
}

/* rel [L, D] -> dst [S, S, D] with dst[q][k] = resized[q - k + S - 1], resized = rel
 * linearly interpolated to 2S - 1 rows (get_rel_pos for query and key size S). */
static setok_status rel_table(setok_sam_vision *m, setok_tensor *dst, const setok_tensor *rel,
                              int64_t S, setok_error *err)
{
    int64_t L = rel->shape[0], D = rel->shape[1], n = 2 * S - 1;
    float *src = malloc((size_t)(L * D) * sizeof *src);
    float *res = malloc((size_t)(n * D) * sizeof *res);
    float *tab = malloc((size_t)(S * S * D) * sizeof *tab);
    sam_lerp *lerp = malloc((size_t)n * sizeof *lerp);
    setok_status st = src && res && tab && lerp
                          ? setok_tensor_download_f32(src, rel, err)
                          : setok_fail(err, SETOK_ERR_NOMEM, "sam vision: out of memory");
    if (st == SETOK_OK) {
        sam_lerp_axis(lerp, (int)n, (int)L);
        for (int64_t i = 0; i < n; i++)
            for (int64_t d = 0; d < D; d++)
                res[i * D + d] = src[lerp[i].i0 * D + d] * lerp[i].w0 +
                                 src[lerp[i].i1 * D + d] * lerp[i].w1;
        for (int64_t q = 0; q < S; q++)
            for (int64_t k = 0; k < S; k++)
                memcpy(tab + (q * S + k) * D, res + (q - k + S - 1) * D, (size_t)D * sizeof *tab);
        st = setok_tensor_alloc(dst, m->backend, m->dtype, 3, (int64_t[]){S, S, D}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(dst, tab, err);
    free(src);
    free(res);
    free(tab);
    free(lerp);
    return st;
}

static setok_status load_block(setok_sam_vision *m, const setok_loader *ld, int index,
                               setok_error *err)
{
    const setok_sam_vision_config *c = &m->cfg;
    sam_block *b = &m->blocks[index];
    int64_t C = c->hidden_size, M = c->mlp_dim, D = C / c->num_heads, S = b->size;
    /* a table of any length is interpolated, as transformers does */
    int64_t L = ld->random_state ? 2 * S - 1 : -1;
    unsigned rel = c->use_rel_pos ? 0 : SETOK_WEIGHT_SKIP, qb = c->qkv_bias ? 0 : SETOK_WEIGHT_SKIP;
    unsigned mat = SETOK_WEIGHT_MATRIX;
    setok_tensor rel_h = {0}, rel_w = {0};
    const setok_weight table[] = {
        {&b->ln1_w, "layer_norm1.weight", 1, {C}, 0},
        {&b->ln1_b, "layer_norm1.bias", 1, {C}, 0},
        {&b->qkv_w, "attn.qkv.weight", 2, {3 * C, C}, mat},
        {&b->qkv_b, "attn.qkv.bias", 1, {3 * C}, qb},
        {&b->proj_w, "attn.proj.weight", 2, {C, C}, mat},
        {&b->proj_b, "attn.proj.bias", 1, {C}, 0},
        {&rel_h, "attn.rel_pos_h", 2, {L, D}, rel},
        {&rel_w, "attn.rel_pos_w", 2, {L, D}, rel},
        {&b->ln2_w, "layer_norm2.weight", 1, {C}, 0},
        {&b->ln2_b, "layer_norm2.bias", 1, {C}, 0},
        {&b->lin1_w, "mlp.lin1.weight", 2, {M, C}, mat},
        {&b->lin1_b, "mlp.lin1.bias", 1, {M}, 0},
        {&b->lin2_w, "mlp.lin2.weight", 2, {C, M}, mat},
        {&b->lin2_b, "mlp.lin2.bias", 1, {C}, 0},
    };
    char prefix[48];
    snprintf(prefix, sizeof prefix, "layers.%d", index);
    setok_status st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    if (st == SETOK_OK && c->use_rel_pos)
        st = rel_table(m, &b->rel_h, &rel_h, S, err);
    if (st == SETOK_OK && c->use_rel_pos)
        st = rel_table(m, &b->rel_w, &rel_w, S, err);
    setok_tensor_free(&rel_h);
    setok_tensor_free(&rel_w);
    return st;
}

static setok_status load_weights(setok_sam_vision *m, setok_loader *ld, setok_error *err)
{
    static const char *const prefixes[] = {"vision_encoder.", ""};
    const setok_sam_vision_config *c = &m->cfg;
    int64_t C = c->hidden_size, O = c->output_channels, p = c->patch_size, g = grid_of(c);
    char prefix[64];
    setok_status st = setok_loader_find_prefix(ld, prefixes, 2, "patch_embed.projection.weight",
                                               4, (int64_t[]){C, c->num_channels, p, p}, prefix,
                                               sizeof prefix, err);
    ld->prefix = prefix;
    setok_tensor pos = {0};
    const setok_weight table[] = {
        {&m->patch_w, "patch_embed.projection.weight", 4, {C, c->num_channels, p, p}, 0},
        {&m->patch_b, "patch_embed.projection.bias", 1, {C}, 0},
        {&pos, "pos_embed", 4, {1, g, g, C}, c->use_abs_pos ? 0 : SETOK_WEIGHT_SKIP},
        {&m->neck1_w, "neck.conv1.weight", 2, {O, C}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&m->neck_ln1_w, "neck.layer_norm1.weight", 1, {O}, 0},
        {&m->neck_ln1_b, "neck.layer_norm1.bias", 1, {O}, 0},
        {&m->neck2_w, "neck.conv2.weight", 4, {O, O, 3, 3}, 0},
        {&m->neck_ln2_w, "neck.layer_norm2.weight", 1, {O}, 0},
        {&m->neck_ln2_b, "neck.layer_norm2.bias", 1, {O}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", table, sizeof table / sizeof *table, err);
    m->pos_emb = pos;
    if (st == SETOK_OK && c->use_abs_pos)
        st = setok_view_reshape(&m->pos_emb, &pos, 2, (int64_t[]){g * g, C}, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++)
        st = load_block(m, ld, i, err);
    if (st == SETOK_OK && !c->qkv_bias) {
        float *zero = calloc((size_t)(3 * C), sizeof *zero);
        st = zero ? setok_tensor_alloc(&m->zeros, m->backend, m->dtype, 1, (int64_t[]){3 * C}, err)
                  : setok_fail(err, SETOK_ERR_NOMEM, "sam vision: out of memory");
        if (st == SETOK_OK)
            st = setok_tensor_upload_f32(&m->zeros, zero, err);
        free(zero);
    }
    ld->prefix = NULL;
    return st;
}

setok_status setok_sam_vision_load(setok_sam_vision **out, const char *dir,
                                   setok_backend *backend, setok_dtype dtype, setok_dtype matrix,
                                   setok_error *err)
{
    *out = NULL;
    setok_sam_vision_config cfg;
    setok_sam_vision *m = NULL;
    setok_weights *w = NULL;
    setok_status st = setok_sam_vision_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = alloc_model(&m, &cfg, backend, dtype, err);
    if (st == SETOK_OK)
        st = setok_sam_preprocessor_load(&m->pre, dir, cfg.image_size, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype, .matrix = matrix,
                           .in_place = true};
        st = load_weights(m, &ld, err);
    }
    if (m)
        m->weights = w;
    else
        setok_weights_close(w);
    if (st != SETOK_OK) {
        setok_sam_vision_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

setok_status setok_sam_vision_create_random(setok_sam_vision **out,
                                            const setok_sam_vision_config *cfg,
                                            setok_backend *backend, setok_dtype dtype,
                                            setok_dtype matrix, uint32_t seed, setok_error *err)
{
    *out = NULL;
    setok_sam_vision *m = NULL;
    setok_status st = config_check(cfg, "sam vision", err);
    if (st == SETOK_OK)
        st = alloc_model(&m, cfg, backend, dtype, err);
    if (st != SETOK_OK)
        return st;
    setok_sam_preprocessor_defaults(&m->pre, cfg->image_size);
    uint32_t state = seed * 2654435761u + 1u;
    setok_loader ld = {.random_state = &state, .backend = backend, .dtype = dtype,
                       .matrix = matrix};
    st = load_weights(m, &ld, err);
    if (st != SETOK_OK) {
        setok_sam_vision_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * accessors and sizes */

const setok_sam_vision_config *setok_sam_vision_get_config(const setok_sam_vision *m)
{
    return &m->cfg;
}

const setok_sam_preprocessor *setok_sam_vision_get_preprocessor(const setok_sam_vision *m)
{
    return &m->pre;
}

setok_dtype setok_sam_vision_dtype(const setok_sam_vision *m)
{
    return m->dtype;
}

int setok_sam_vision_grid(const setok_sam_vision *m)
{
    return grid_of(&m->cfg);
}

/* Arena bytes of one tensor: its size rounded to the arena's 256-byte
 * alignment, plus the worst-case padding before it. */
static size_t slot(int64_t numel, size_t esize)
{
    size_t bytes = (size_t)numel * esize;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* How one block attends: n sequences (windows x heads) of t = s * s positions. */
typedef struct attn_dims {
    int64_t B, g, C, H, D; /* batch, grid, width, heads, head_dim */
    int64_t s, nw, bp, t;  /* window (or grid) side, windows per side, sequences, positions */
    bool windowed;
} attn_dims;

static attn_dims dims_of(const setok_sam_vision *m, const sam_block *b, int64_t batch)
{
    const setok_sam_vision_config *c = &m->cfg;
    attn_dims d = {.B = batch, .g = grid_of(c), .C = c->hidden_size, .H = c->num_heads};
    d.D = d.C / d.H;
    d.windowed = !b->global;
    d.s = b->size;
    d.nw = d.windowed ? (d.g + d.s - 1) / d.s : 1;
    d.bp = batch * d.nw * d.nw;
    d.t = d.s * d.s;
    return d;
}

/* The bias chunk of rel_attention: g sequences of r query rows (r < t only when g is 1). */
static void score_chunk(const setok_sam_vision *m, int64_t t, int64_t *g, int64_t *r)
{
    int64_t budget = setok_backend_is_host(m->backend) ? HOST_SCORE_FLOATS : DEVICE_SCORE_FLOATS;
    if (t * t <= budget) {
        *g = budget / (t * t);
        *r = t;
        return;
    }
    *g = 1;
    *r = budget / t >= 64 ? budget / t / 64 * 64 : (budget / t > 0 ? budget / t : 1);
}

static size_t attention_bytes(const setok_sam_vision *m, const attn_dims *d, size_t e)
{
    int64_t n = d->bp * d->H, seq = d->bp * d->t, g, r;
    score_chunk(m, d->t, &g, &r);
    size_t keep = 4 * slot(seq * d->C, e) + (m->cfg.use_rel_pos ? 2 * slot(n * d->t * d->s, e) : 0);
    size_t split = slot(d->B * d->g * d->g * 3 * d->C, e) +
                   (d->windowed ? slot(seq * 3 * d->C, e) : 0);
    size_t rel = slot(seq * d->C, e) + slot(n * d->t * d->s, e);
    size_t att = slot(g * r * d->t, e);
    size_t merge = d->windowed ? slot(seq * d->C, e) : 0;
    return keep + max_size(max_size(split, rel), max_size(att, merge));
}

size_t setok_sam_vision_arena_bytes(const setok_sam_vision *m, int64_t batch)
{
    const setok_sam_vision_config *c = &m->cfg;
    size_t e = setok_dtype_size(m->dtype);
    int64_t g = grid_of(c), T = g * g, C = c->hidden_size, O = c->output_channels;
    size_t fixed = slot(batch * O * T, e) + 2 * slot(batch * T * C, e);
    size_t peak = slot(batch * C * T, e); /* the patch convolution */
    size_t mlp = 2 * slot(batch * T * c->mlp_dim, e);
    for (int i = 0; i < c->num_layers; i++) {
        attn_dims d = dims_of(m, &m->blocks[i], batch);
        size_t block = 2 * slot(batch * T * C, e) + max_size(attention_bytes(m, &d, e), mlp);
        peak = max_size(peak, block);
    }
    peak = max_size(peak, 4 * slot(batch * T * O, e)); /* the neck */
    return fixed + peak + 4096;
}

/* ---------------------------------------------------------------------------
 * layers */

/* A view of base's memory from element offset off, with its own shape and strides (in
 * elements; a stride of 0 repeats one element along that axis). */
static setok_tensor strided_view(const setok_tensor *base, int64_t off, int ndim,
                                 const int64_t *shape, const int64_t *stride)
{
    setok_tensor v = *base;
    v.data = (char *)base->data + setok_dtype_bytes(base->dtype, off);
    v.ndim = ndim;
    for (int i = 0; i < SETOK_MAX_DIMS; i++) {
        v.shape[i] = i < ndim ? shape[i] : 1;
        v.stride[i] = i < ndim ? stride[i] : 1;
    }
    v.borrowed = true;
    return v;
}

/* A contiguous view of base's memory from element offset off. */
static setok_tensor flat_view(const setok_tensor *base, int64_t off, int ndim,
                              const int64_t *shape)
{
    int64_t stride[SETOK_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i];
    }
    return strided_view(base, off, ndim, shape, stride);
}

static setok_status copy_view(setok_backend *be, setok_tensor dst, setok_tensor src,
                              setok_error *err)
{
    return setok_copy(be, &dst, &src, err);
}

// grid: [B, g, g, E] <-> win: [B * nw * nw, s * s, E], the grid padded to nw * s and cut into
// s x s windows in row-major order (window_partition / window_unpartition). to_windows: the
// padded cells take fill [E]; else the windows' padded cells are dropped.
static setok_status window_copy(setok_backend *be, setok_tensor *win, setok_tensor *grid,
                                const setok_tensor *fill, const attn_dims *d, bool to_windows,
                                setok_error *err)
{
    int64_t g = d->g, s = d->s, nw = d->nw, E = grid->shape[3];
    int64_t full = g / s, rest = g - full * s, ws = s * s * E;
    setok_status st = SETOK_OK;
    for (int64_t b = 0; b < d->B && st == SETOK_OK; b++)
        for (int64_t r = 0; r < nw && st == SETOK_OK; r++) {
            int64_t ry = g - r * s < s ? g - r * s : s, wo = (b * nw + r) * nw * ws;
            int64_t go = (b * g + r * s) * g * E;
            setok_tensor w, c;
            if (full > 0) { /* windows wholly inside the grid: [window, y, x, E] */
                w = strided_view(win, wo, 4, (int64_t[]){full, ry, s, E},
                                 (int64_t[]){ws, s * E, E, 1});
                c = strided_view(grid, go, 4, (int64_t[]){full, ry, s, E},
                                 (int64_t[]){s * E, g * E, E, 1});
                st = to_windows ? copy_view(be, w, c, err) : copy_view(be, c, w, err);
            }
            if (st == SETOK_OK && rest > 0) { /* the last window's cells inside the grid */
                w = strided_view(win, wo + full * ws, 3, (int64_t[]){ry, rest, E},
                                 (int64_t[]){s * E, E, 1});
                c = strided_view(grid, go + full * s * E, 3, (int64_t[]){ry, rest, E},
                                 (int64_t[]){g * E, E, 1});
                st = to_windows ? copy_view(be, w, c, err) : copy_view(be, c, w, err);
            }
            if (st == SETOK_OK && to_windows && rest > 0) /* its padded columns */
                st = copy_view(be, strided_view(win, wo + full * ws + rest * E, 3,
                                                (int64_t[]){ry, s - rest, E},
                                                (int64_t[]){s * E, E, 1}),
                               strided_view(fill, 0, 3, (int64_t[]){ry, s - rest, E},
                                            (int64_t[]){0, 0, 1}),
                               err);
            if (st == SETOK_OK && to_windows && ry < s) /* padded rows of the whole row */
                st = copy_view(be, strided_view(win, wo + ry * s * E, 4,
                                                (int64_t[]){nw, s - ry, s, E},
                                                (int64_t[]){ws, s * E, E, 1}),
                               strided_view(fill, 0, 4, (int64_t[]){nw, s - ry, s, E},
                                            (int64_t[]){0, 0, 0, 1}),
                               err);
        }
    return st;
}

// x: [N, T, 3C] -> q, k, v: [N, H, T, D] (qkv's reshape(.., 3, H, D) and permute)
static setok_status split_heads(setok_backend *be, setok_tensor *q, setok_tensor *k,
                                setok_tensor *v, const setok_tensor *x, int64_t H,
                                setok_error *err)
{
    int64_t N = x->shape[0], T = x->shape[1], D = x->shape[2] / 3 / H;
    setok_tensor *out[3] = {q, k, v}, x4;
    setok_status st = setok_view_reshape(&x4, x, 4, (int64_t[]){N, T, 3 * H, D}, err);
    for (int j = 0; j < 3 && st == SETOK_OK; j++) {
        setok_tensor part, perm;
        st = setok_view_slice(&part, &x4, 2, j * H, H, err);
        if (st == SETOK_OK)
            st = setok_view_permute(&perm, &part, (int[]){0, 2, 1, 3}, err);
        if (st == SETOK_OK)
            st = setok_copy(be, out[j], &perm, err);
    }
    return st;
}

// q: [n, s, s, D] (query rows y, columns x), tab: [s, s, D] -> out: [n, s * s, s] with
// out[i, y, x, k] = q[i, y, x] . tab[y][k] (axis 0: rel_h) or q[i, y, x] . tab[x][k]
// (axis 1: rel_w), get_decomposed_rel_pos's einsums as one batched matmul per axis
static setok_status rel_logits(setok_backend *be, setok_arena *arena, setok_tensor *out,
                               const setok_tensor *q, const setok_tensor *tab, int axis,
                               setok_error *err)
{
    int64_t n = q->shape[0], s = q->shape[1], D = q->shape[3];
    static const int in_perm[2][4] = {{1, 0, 2, 3}, {2, 0, 1, 3}};
    static const int out_perm[2][4] = {{1, 0, 2, 3}, {1, 2, 0, 3}};
    size_t mark = setok_arena_mark(arena);
    setok_tensor qp, raw, qp3, raw4;
    setok_status st = setok_arena_tensor(arena, &qp, q->dtype, 4, (int64_t[]){s, n, s, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &raw, q->dtype, 3, (int64_t[]){s, n * s, s}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &qp, q, in_perm[axis], err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&qp3, &qp, 3, (int64_t[]){s, n * s, D}, err);
    if (st == SETOK_OK)
        st = setok_matmul(be, &raw, &qp3, tab, NULL, false, true, 1.0f, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&raw4, &raw, 4, (int64_t[]){s, n, s, s}, err);
    setok_tensor out4 = flat_view(out, 0, 4, (int64_t[]){n, s, s, s});
    if (st == SETOK_OK)
        st = setok_permute(be, &out4, &raw4, out_perm[axis], err);
    setok_arena_reset(arena, mark);
    return st;
}

// q, k, v: [n, t, D] (t = s * s positions), relh, relw: [n, t, s] -> y: [n, t, D] =
// softmax(q k^T / sqrt(D) + relh[:, :, ky] + relw[:, :, kx]) v (SamVisionAttention), in chunks
// of whole sequences or of query rows (score_chunk). Scores are matmuls and a softmax rather
// than the attention op: the matmuls reach BLAS, and the bias is added in place.
static setok_status rel_attention(setok_sam_vision *m, setok_arena *arena, setok_tensor *y,
                                  const setok_tensor *q, const setok_tensor *k,
                                  const setok_tensor *v, const setok_tensor *relh,
                                  const setok_tensor *relw, int64_t s, setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t n = q->shape[0], t = q->shape[1], D = q->shape[2], G, R;
    float scale = (float)pow((double)D, -0.5);
    score_chunk(m, t, &G, &R);
    size_t mark = setok_arena_mark(arena);
    setok_tensor scores;
    setok_status st = setok_arena_tensor(arena, &scores, q->dtype, 1, (int64_t[]){G * R * t},
                                         err);
    for (int64_t i = 0; i < n && st == SETOK_OK; i += G) {
        int64_t g = n - i < G ? n - i : G;
        for (int64_t r0 = 0; r0 < t && st == SETOK_OK; r0 += R) {
            int64_t r = t - r0 < R ? t - r0 : R, rows = g * r, first = i * t + r0;
            setok_tensor sc = flat_view(&scores, 0, 3, (int64_t[]){g, r, t});
            setok_tensor grid = flat_view(&scores, 0, 3, (int64_t[]){rows, s, s});
            setok_tensor qv = flat_view(q, first * D, 3, (int64_t[]){g, r, D});
            setok_tensor kv = flat_view(k, i * t * D, 3, (int64_t[]){g, t, D});
            setok_tensor vv = flat_view(v, i * t * D, 3, (int64_t[]){g, t, D});
            setok_tensor yv = flat_view(y, first * D, 3, (int64_t[]){g, r, D});
            setok_tensor bh = flat_view(relh, first * s, 3, (int64_t[]){rows, s, 1});
            setok_tensor bw = flat_view(relw, first * s, 3, (int64_t[]){rows, 1, s});
            st = setok_matmul(be, &sc, &qv, &kv, NULL, false, true, scale, err);
            if (st == SETOK_OK)
                st = setok_add(be, &grid, &grid, &bh, err);
            if (st == SETOK_OK)
                st = setok_add(be, &grid, &grid, &bw, err);
            if (st == SETOK_OK)
                st = setok_softmax(be, &sc, &sc, NULL, 1.0f, false, err);
            if (st == SETOK_OK)
                st = setok_matmul(be, &yv, &sc, &vv, NULL, false, false, 1.0f, err);
        }
    }
    setok_arena_reset(arena, mark);
    return st;
}

// xn: [B, g*g, C] (after layer_norm1) -> out: [B, g*g, C], the attention before its proj
// (SamVisionAttention in a window or over the whole grid, window_partition and unpartition)
static setok_status block_attention(setok_sam_vision *m, setok_arena *arena, setok_tensor *out,
                                    const setok_tensor *xn, const sam_block *b, int64_t batch,
                                    setok_error *err)
{
    setok_backend *be = m->backend;
    attn_dims d = dims_of(m, b, batch);
    int64_t n = d.bp * d.H, C = d.C;
    bool rel = m->cfg.use_rel_pos;
    size_t mark = setok_arena_mark(arena);
    setok_tensor q, k, v, ah, relh, relw, qkv, win, q4;
    int64_t heads[4] = {d.bp, d.H, d.t, d.D};
    setok_tensor *keep[4] = {&q, &k, &v, &ah};
    setok_status st = SETOK_OK;
    for (int i = 0; i < 4 && st == SETOK_OK; i++)
        st = setok_arena_tensor(arena, keep[i], m->dtype, 4, heads, err);
    if (st == SETOK_OK && rel)
        st = setok_arena_tensor(arena, &relh, m->dtype, 3, (int64_t[]){n, d.t, d.s}, err);
    if (st == SETOK_OK && rel)
        st = setok_arena_tensor(arena, &relw, m->dtype, 3, (int64_t[]){n, d.t, d.s}, err);
    size_t scratch = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &qkv, m->dtype, 3, (int64_t[]){batch, d.g * d.g, 3 * C},
                                err);
    if (st == SETOK_OK)
        st = setok_linear(be, &qkv, xn, &b->qkv_w, m->cfg.qkv_bias ? &b->qkv_b : NULL, err);
    if (st == SETOK_OK && d.windowed) {
        setok_tensor grid;
        st = setok_arena_tensor(arena, &win, m->dtype, 3, (int64_t[]){d.bp, d.t, 3 * C}, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&grid, &qkv, 4, (int64_t[]){batch, d.g, d.g, 3 * C}, err);
        if (st == SETOK_OK) /* a padded cell is zero after layer_norm1: its q, k, v are the bias */
            st = window_copy(be, &win, &grid, m->cfg.qkv_bias ? &b->qkv_b : &m->zeros, &d, true,
                             err);
    }
    if (st == SETOK_OK)
        st = split_heads(be, &q, &k, &v, d.windowed ? &win : &qkv, d.H, err);
    setok_arena_reset(arena, scratch);
    if (st == SETOK_OK)
        st = setok_view_reshape(&q4, &q, 4, (int64_t[]){n, d.s, d.s, d.D}, err);
    if (st == SETOK_OK && rel)
        st = rel_logits(be, arena, &relh, &q4, &b->rel_h, 0, err);
    if (st == SETOK_OK && rel)
        st = rel_logits(be, arena, &relw, &q4, &b->rel_w, 1, err);
    if (st == SETOK_OK && rel) {
        setok_tensor q3 = flat_view(&q, 0, 3, (int64_t[]){n, d.t, d.D});
        setok_tensor k3 = flat_view(&k, 0, 3, (int64_t[]){n, d.t, d.D});
        setok_tensor v3 = flat_view(&v, 0, 3, (int64_t[]){n, d.t, d.D});
        setok_tensor y3 = flat_view(&ah, 0, 3, (int64_t[]){n, d.t, d.D});
        st = rel_attention(m, arena, &y3, &q3, &k3, &v3, &relh, &relw, d.s, err);
    } else if (st == SETOK_OK) {
        st = setok_attention(be, &ah, &q, &k, &v, NULL, (float)pow((double)d.D, -0.5), false,
                             err);
    }
    /* heads merged: [bp, t, H, D]; windows pasted back into the grid */
    setok_tensor merged = {0}, perm;
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &ah, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK && d.windowed)
        st = setok_arena_tensor(arena, &merged, m->dtype, 4, (int64_t[]){d.bp, d.t, d.H, d.D},
                                err);
    setok_tensor heads_out = d.windowed ? merged
                                        : flat_view(out, 0, 4, (int64_t[]){batch, d.t, d.H, d.D});
    if (st == SETOK_OK)
        st = setok_copy(be, &heads_out, &perm, err);
    if (st == SETOK_OK && d.windowed) {
        setok_tensor win3 = flat_view(&merged, 0, 3, (int64_t[]){d.bp, d.t, C});
        setok_tensor grid = flat_view(out, 0, 4, (int64_t[]){batch, d.g, d.g, C});
        st = window_copy(be, &win3, &grid, NULL, &d, false, err);
    }
    setok_arena_reset(arena, mark);
    return st;
}

// h: [B, T, C] -> h = r + mlp(layer_norm2(r)), r = h + proj(attn(layer_norm1(h))); tmp: [B, T, C]
// scratch (SamVisionLayer)
static setok_status block_forward(setok_sam_vision *m, setok_arena *arena, setok_tensor *h,
                                  setok_tensor *tmp, const sam_block *b, setok_error *err)
{
    setok_backend *be = m->backend;
    const setok_sam_vision_config *c = &m->cfg;
    float eps = c->layer_norm_eps;
    int64_t B = h->shape[0], T = h->shape[1];
    size_t mark = setok_arena_mark(arena);
    setok_tensor xn, att, a1, a2;
    setok_status st = setok_arena_tensor(arena, &xn, m->dtype, 3, h->shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &att, m->dtype, 3, h->shape, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &xn, h, &b->ln1_w, &b->ln1_b, eps, err);
    if (st == SETOK_OK)
        st = block_attention(m, arena, &att, &xn, b, B, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &xn, &att, &b->proj_w, &b->proj_b, err);
    if (st == SETOK_OK)
        st = setok_add(be, tmp, h, &xn, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &att, tmp, &b->ln2_w, &b->ln2_b, eps, err);
    int64_t hidden[3] = {B, T, c->mlp_dim};
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a1, m->dtype, 3, hidden, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a2, m->dtype, 3, hidden, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &a1, &att, &b->lin1_w, &b->lin1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, c->act, &a2, &a1, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &xn, &a2, &b->lin2_w, &b->lin2_b, err);
    if (st == SETOK_OK)
        st = setok_add(be, h, tmp, &xn, err);
    setok_arena_reset(arena, mark);
    return st;
}

// pixel_values: [B, Cin, S, S] -> h: [B, g*g, C] = patches + pos_embed (SamPatchEmbeddings)
static setok_status embed(setok_sam_vision *m, setok_arena *arena, setok_tensor *h,
                          const setok_tensor *px, setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t B = px->shape[0], C = m->cfg.hidden_size, g = grid_of(&m->cfg);
    size_t mark = setok_arena_mark(arena);
    setok_tensor conv, flat, perm;
    setok_status st = setok_arena_tensor(arena, &conv, m->dtype, 4, (int64_t[]){B, C, g, g}, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, &conv, px, &m->patch_w, &m->patch_b, m->cfg.patch_size, 0, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&flat, &conv, 3, (int64_t[]){B, C, g * g}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &flat, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, h, &perm, err);
    if (st == SETOK_OK && m->cfg.use_abs_pos)
        st = setok_add(be, h, h, &m->pos_emb, err);
    setok_arena_reset(arena, mark);
    return st;
}

// h: [B, g*g, C] -> emb: [B, O, g, g] = ln2(conv2(ln1(conv1(h)))) (SamVisionNeck, layer norms
// over channels)
static setok_status neck(setok_sam_vision *m, setok_arena *arena, setok_tensor *emb,
                         const setok_tensor *h, setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t B = h->shape[0], T = h->shape[1], O = m->cfg.output_channels, g = grid_of(&m->cfg);
    size_t mark = setok_arena_mark(arena);
    int64_t last[4] = {B, g, g, O}, first[4] = {B, O, g, g};
    setok_tensor a, b, img, conv, a4, b4;
    setok_status st = setok_arena_tensor(arena, &a, m->dtype, 3, (int64_t[]){B, T, O}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &b, m->dtype, 3, (int64_t[]){B, T, O}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &img, m->dtype, 4, first, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &conv, m->dtype, 4, first, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&a4, &a, 4, last, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&b4, &b, 4, last, err);
    /* conv1 (1x1) and layer_norm1 channels-last, conv2 channels-first, layer_norm2 channels-last */
    if (st == SETOK_OK)
        st = setok_linear(be, &a, h, &m->neck1_w, NULL, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &b, &a, &m->neck_ln1_w, &m->neck_ln1_b, NECK_LN_EPS, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &img, &b4, (int[]){0, 3, 1, 2}, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, &conv, &img, &m->neck2_w, NULL, 1, 1, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &a4, &conv, (int[]){0, 2, 3, 1}, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &b4, &a4, &m->neck_ln2_w, &m->neck_ln2_b, NECK_LN_EPS, err);
    if (st == SETOK_OK)
        st = setok_permute(be, emb, &b4, (int[]){0, 3, 1, 2}, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_input(const setok_sam_vision *m, const setok_arena *arena,
                                const setok_tensor *px, setok_error *err)
{
    const setok_sam_vision_config *c = &m->cfg;
    char buf[96];
    if (!px || px->ndim != 4 || px->shape[0] < 1 || px->shape[1] != c->num_channels ||
        px->shape[2] != c->image_size || px->shape[3] != c->image_size ||
        px->dtype != m->dtype || !setok_tensor_is_contiguous(px))
        return setok_fail(err, SETOK_ERR_INPUT, "sam vision: pixel_values must be a contiguous "
                          "[B, %d, %d, %d] %s tensor, got %s", c->num_channels, c->image_size,
                          c->image_size, setok_dtype_name(m->dtype),
                          px ? setok_tensor_describe(px, buf, sizeof buf) : "none");
    if (px->backend != m->backend || arena->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "sam vision: pixel_values and the arena must be "
                          "on the model's backend (%s)", setok_backend_name(m->backend));
    return SETOK_OK;
}

setok_status setok_sam_vision_forward(setok_sam_vision *m, setok_arena *arena,
                                      setok_tensor *image_embeddings,
                                      const setok_tensor *pixel_values, const atomic_bool *cancel,
                                      setok_error *err)
{
    const setok_sam_vision_config *c = &m->cfg;
    setok_status st = check_input(m, arena, pixel_values, err);
    if (st != SETOK_OK)
        return st;
    int64_t B = pixel_values->shape[0], g = grid_of(c);
    size_t start = setok_arena_mark(arena);
    st = setok_arena_tensor(arena, image_embeddings, m->dtype, 4,
                            (int64_t[]){B, c->output_channels, g, g}, err);
    size_t outputs = setok_arena_mark(arena);
    setok_tensor h, tmp;
    int64_t shape[3] = {B, g * g, c->hidden_size};
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h, m->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tmp, m->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = embed(m, arena, &h, pixel_values, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        if (cancel && atomic_load(cancel)) {
            st = setok_fail(err, SETOK_ERR_CANCELLED, "sam vision: cancelled before block %d of "
                            "%d", i, c->num_layers);
            break;
        }
        st = block_forward(m, arena, &h, &tmp, &m->blocks[i], err);
    }
    if (st == SETOK_OK)
        st = neck(m, arena, image_embeddings, &h, err);
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "sam vision forward");
    return st;
}
