/* qformer.c — the mapper, mirroring transformers' Blip2QFormerModel
 * (modeling_blip_2.py) on query embeddings: config, weights and forward.
 *
 * Rules: one function per layer, outputs first; the residual stream is the
 * output tensor itself, updated in place; every other activation comes from
 * the caller's arena and is released to a mark after each sub-layer, so
 * memory stays at setok_qformer_arena_bytes whatever the depth. */
#include "io/loader.h"
#include "setok/models/qformer.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

/* Blip2QFormerAttention: BertSelfAttention-style projections + SelfOutput. */
typedef struct qf_attention {
    setok_tensor q_w, q_b, k_w, k_b, v_w, v_b; /* q: [C, C]; k, v: [C, C] or [C, E] */
    setok_tensor out_w, out_b, ln_w, ln_b;      /* output.dense [C, C], output.LayerNorm */
} qf_attention;

typedef struct qf_layer {
    qf_attention self_attn, cross_attn;        /* cross_attn only where has_cross */
    bool has_cross;
    setok_tensor fc1_w, fc1_b;                 /* intermediate_query.dense [I, C] */
    setok_tensor fc2_w, fc2_b, ln_w, ln_b;     /* output_query.dense [C, I], LayerNorm */
} qf_layer;

struct setok_qformer {
    setok_qformer_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    setok_tensor ln_w, ln_b;     /* layernorm of the query embeddings */
    setok_tensor query_tokens;   /* [1, Q, C]; ndim 0 when the checkpoint has none */
    qf_layer *layers;
    setok_weights *weights;      /* kept open: tensors may point into it */
};

/* ---------------------------------------------------------------------------
 * config */

void setok_qformer_config_defaults(setok_qformer_config *cfg)
{
    *cfg = (setok_qformer_config){
        .hidden_size = 768,
        .intermediate_size = 3072,
        .num_layers = 12,
        .num_heads = 12,
        .encoder_hidden_size = 1408,
        .cross_attention_frequency = 2,
        .layer_norm_eps = 1e-12f,
        .act = SETOK_OP_GELU,
    };
}

static setok_status config_check(const setok_qformer_config *c, const char *where,
                                 setok_error *err)
{
    if (c->hidden_size < 1 || c->intermediate_size < 1 || c->num_layers < 0 ||
        c->num_heads < 1 || c->encoder_hidden_size < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: sizes must be positive", where);
    if (c->hidden_size % c->num_heads)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: hidden_size %d is not a multiple of "
                          "num_attention_heads %d", where, c->hidden_size, c->num_heads);
    if (c->cross_attention_frequency < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cross_attention_frequency must be >= 1, "
                          "got %d", where, c->cross_attention_frequency);
    if (!(c->layer_norm_eps > 0.0f && c->layer_norm_eps < 1.0f))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: layer_norm_eps must be in (0, 1)", where);
    return SETOK_OK;
}

/* hidden_act as transformers' ACT2FN spells it. */
static bool act_from_name(const char *name, setok_op *out)
{
    static const struct {
        const char *name;
        setok_op op;
    } acts[] = {
        {"gelu", SETOK_OP_GELU},           {"gelu_new", SETOK_OP_GELU_TANH},
        {"gelu_pytorch_tanh", SETOK_OP_GELU_TANH}, {"quick_gelu", SETOK_OP_QUICK_GELU},
        {"silu", SETOK_OP_SILU},           {"swish", SETOK_OP_SILU},
        {"relu", SETOK_OP_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(name, acts[i].name)) {
            *out = acts[i].op;
            return true;
        }
    return false;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_qformer_config *cfg = out;
    const char *path = setok_config_path(json), *arch = NULL, *type = NULL, *act = NULL;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(setok_config_root(json),
                                                          "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    setok_status st = setok_config_string_or(json, "model_type", "", &type, err);
    if (st != SETOK_OK)
        return st;
    if (!(arch && !strcmp(arch, "Blip2QFormerModel")) && strcmp(type, "blip_2_qformer"))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a "
                          "Blip2QFormerModel", path, arch ? arch : "no architectures entry", type);
    setok_qformer_config_defaults(cfg);
    st = setok_config_int_in(json, "hidden_size", false, 1, 1 << 16, &cfg->hidden_size, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "intermediate_size", false, 1, 1 << 20,
                                 &cfg->intermediate_size, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "num_hidden_layers", false, 0, 1024, &cfg->num_layers,
                                 err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "num_attention_heads", false, 1, 1 << 12,
                                 &cfg->num_heads, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "encoder_hidden_size", false, 1, 1 << 16,
                                 &cfg->encoder_hidden_size, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "cross_attention_frequency", false, 1, 1024,
                                 &cfg->cross_attention_frequency, err);
    double eps = cfg->layer_norm_eps;
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "layer_norm_eps", eps, &eps, err);
    cfg->layer_norm_eps = (float)eps;
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "hidden_act", "gelu", &act, err);
    if (st == SETOK_OK && !act_from_name(act, &cfg->act))
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not one of gelu, "
                        "gelu_new, gelu_pytorch_tanh, quick_gelu, silu, swish, relu", path, act);
    if (st == SETOK_OK)
        st = config_check(cfg, path, err);
    return st;
}

setok_status setok_qformer_config_load(setok_qformer_config *cfg, const char *dir,
                                       setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

static void free_attention(qf_attention *a)
{
    setok_tensor *all[] = {&a->q_w, &a->q_b, &a->k_w, &a->k_b, &a->v_w,
                           &a->v_b, &a->out_w, &a->out_b, &a->ln_w, &a->ln_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

void setok_qformer_free(setok_qformer *m)
{
    if (!m)
        return;
    for (int i = 0; m->layers && i < m->cfg.num_layers; i++) {
        qf_layer *l = &m->layers[i];
        free_attention(&l->self_attn);
        free_attention(&l->cross_attn);
        setok_tensor *all[] = {&l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b, &l->ln_w, &l->ln_b};
        setok_tensors_free(all, sizeof all / sizeof all[0]);
    }
    setok_tensor_free(&m->ln_w);
    setok_tensor_free(&m->ln_b);
    setok_tensor_free(&m->query_tokens);
    free(m->layers);
    setok_weights_close(m->weights);
    free(m);
}

/* encoder.layer.N.{attention,crossattention}: kv_in is hidden_size or encoder_hidden_size. */
static setok_status load_attention(const setok_loader *ld, qf_attention *a, const char *base,
                                   int64_t C, int64_t kv_in, setok_error *err)
{
    const setok_weight table[] = {
        {&a->q_w, "attention.query.weight", 2, {C, C}, SETOK_WEIGHT_MATRIX},
        {&a->q_b, "attention.query.bias", 1, {C}, 0},
        {&a->k_w, "attention.key.weight", 2, {C, kv_in}, SETOK_WEIGHT_MATRIX},
        {&a->k_b, "attention.key.bias", 1, {C}, 0},
        {&a->v_w, "attention.value.weight", 2, {C, kv_in}, SETOK_WEIGHT_MATRIX},
        {&a->v_b, "attention.value.bias", 1, {C}, 0},
        {&a->out_w, "output.dense.weight", 2, {C, C}, SETOK_WEIGHT_MATRIX},
        {&a->out_b, "output.dense.bias", 1, {C}, 0},
        {&a->ln_w, "output.LayerNorm.weight", 1, {C}, 0},
        {&a->ln_b, "output.LayerNorm.bias", 1, {C}, 0},
    };
    return setok_loader_load(ld, base, table, sizeof table / sizeof *table, err);
}

static setok_status load_layer(const setok_loader *ld, const setok_qformer_config *c, qf_layer *l,
                               int index, setok_error *err)
{
    int64_t C = c->hidden_size, I = c->intermediate_size;
    char base[64];
    snprintf(base, sizeof base, "encoder.layer.%d.attention", index);
    setok_status st = load_attention(ld, &l->self_attn, base, C, C, err);
    l->has_cross = index % c->cross_attention_frequency == 0;
    snprintf(base, sizeof base, "encoder.layer.%d.crossattention", index);
    if (st == SETOK_OK && l->has_cross)
        st = load_attention(ld, &l->cross_attn, base, C, c->encoder_hidden_size, err);
    const setok_weight table[] = {
        {&l->fc1_w, "intermediate_query.dense.weight", 2, {I, C}, SETOK_WEIGHT_MATRIX},
        {&l->fc1_b, "intermediate_query.dense.bias", 1, {I}, 0},
        {&l->fc2_w, "output_query.dense.weight", 2, {C, I}, SETOK_WEIGHT_MATRIX},
        {&l->fc2_b, "output_query.dense.bias", 1, {C}, 0},
        {&l->ln_w, "output_query.LayerNorm.weight", 1, {C}, 0},
        {&l->ln_b, "output_query.LayerNorm.bias", 1, {C}, 0},
    };
    snprintf(base, sizeof base, "encoder.layer.%d", index);
    if (st == SETOK_OK)
        st = setok_loader_load(ld, base, table, sizeof table / sizeof *table, err);
    return st;
}

static setok_status load_weights(setok_qformer *m, setok_loader *ld, setok_error *err)
{
    /* bare names (Blip2QFormerModel) or under qformer. (Blip2Model), told by the first LayerNorm */
    static const char *const prefixes[] = {"", "qformer."};
    int64_t C = m->cfg.hidden_size;
    char prefix[16];
    setok_status st = setok_loader_find_prefix(ld, prefixes, 2, "layernorm.weight", 1,
                                               (int64_t[]){C}, prefix, sizeof prefix, err);
    ld->prefix = prefix;
    const setok_weight table[] = {
        {&m->ln_w, "layernorm.weight", 1, {C}, 0},
        {&m->ln_b, "layernorm.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", table, sizeof table / sizeof *table, err);
    for (int i = 0; i < m->cfg.num_layers && st == SETOK_OK; i++)
        st = load_layer(ld, &m->cfg, &m->layers[i], i, err);
    ld->prefix = NULL;
    /* the learnable queries, always top-level, and optional */
    if (st == SETOK_OK)
        st = setok_loader_one(ld, &m->query_tokens, "", "query_tokens", 3, (int64_t[]){1, -1, C},
                              SETOK_WEIGHT_OPTIONAL, err);
    if (st == SETOK_OK && m->query_tokens.data && m->query_tokens.shape[1] < 1)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: query_tokens holds no query",
                        setok_loader_path(ld));
    return st;
}

setok_status setok_qformer_load(setok_qformer **out, const char *dir, setok_backend *backend,
                                setok_dtype dtype, setok_dtype matrix, setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: dtype must be f32, f16 or bf16, got %s",
                          setok_dtype_name(dtype));
    setok_qformer_config cfg;
    setok_status st = setok_qformer_config_load(&cfg, dir, err);
    if (st != SETOK_OK)
        return st;
    setok_qformer *m = calloc(1, sizeof *m);
    if (m)
        m->layers = calloc(cfg.num_layers > 0 ? (size_t)cfg.num_layers : 1, sizeof *m->layers);
    if (!m || !m->layers) {
        free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "qformer: out of memory");
    }
    m->cfg = cfg;
    m->backend = backend;
    m->dtype = dtype;
    setok_weights *w = NULL;
    st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype, .matrix = matrix,
                           .in_place = true};
        st = load_weights(m, &ld, err);
    }
    m->weights = w;
    if (st != SETOK_OK) {
        setok_qformer_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * accessors and sizes */

const setok_qformer_config *setok_qformer_get_config(const setok_qformer *m)
{
    return &m->cfg;
}

setok_dtype setok_qformer_dtype(const setok_qformer *m)
{
    return m->dtype;
}

int64_t setok_qformer_num_query_tokens(const setok_qformer *m)
{
    return m->query_tokens.ndim == 3 ? m->query_tokens.shape[1] : 0;
}

bool setok_qformer_layer_has_cross_attention(const setok_qformer *m, int layer)
{
    return layer >= 0 && layer < m->cfg.num_layers && m->layers[layer].has_cross;
}

/* Arena bytes of one tensor: its size rounded to the arena's 256-byte
 * alignment, plus the worst-case padding before it. */
static size_t slot(int64_t numel, size_t esize)
{
    size_t bytes = (size_t)numel * esize;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

size_t setok_qformer_arena_bytes(const setok_qformer *m, int64_t batch, int64_t queries,
                                 int64_t encoder_tokens)
{
    const setok_qformer_config *c = &m->cfg;
    size_t e = setok_dtype_size(m->dtype);
    int64_t C = c->hidden_size, I = c->intermediate_size;
    int64_t tk = queries > encoder_tokens ? queries : encoder_tokens;
    int64_t bqc = batch * queries * C, bkc = batch * tk * C, bqi = batch * queries * I;
    /* output (the residual stream), the broadcast learned queries, the additive mask */
    size_t fixed = 2 * slot(bqc, e) + slot(batch * encoder_tokens, e);
    /* attention: q k v heads, then q k v projections or attention output, merged heads,
     * dense output and the residual sum */
    size_t proj = slot(bqc, e) + 2 * slot(bkc, e), tail = 4 * slot(bqc, e);
    size_t attn = slot(bqc, e) + 2 * slot(bkc, e) + (proj > tail ? proj : tail);
    /* feed-forward: intermediate, activation, dense output, residual sum */
    size_t ffn = 2 * slot(bqi, e) + 2 * slot(bqc, e);
    return fixed + (attn > ffn ? attn : ffn) + 4096;
}

/* ---------------------------------------------------------------------------
 * layers */

typedef struct dims {
    int64_t B, Q, C, NH, I;
} dims;

// x: [B, T, C] -> heads: [B, NH, T, C / NH] (a contiguous copy)
static setok_status split_heads(setok_backend *be, setok_tensor *heads, const setok_tensor *x,
                                int64_t NH, setok_error *err)
{
    int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    setok_tensor v4, perm;
    setok_status st = setok_view_reshape(&v4, x, 4, (int64_t[]){B, T, NH, C / NH}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &v4, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, heads, &perm, err);
    return st;
}

// x: [B, Q, C] (updated in place), kv: [B, Tk, Ckv], mask: [B, 1, 1, Tk]? (additive)
// -> x = LayerNorm(x + dense(attention(q = x Wq^T, k = kv Wk^T, v = kv Wv^T))),
// NH heads of D = C / NH, scale 1 / sqrt(D)
static setok_status qformer_attention(setok_backend *be, setok_arena *arena, setok_tensor *x,
                                      const setok_tensor *kv, const setok_tensor *mask,
                                      const qf_attention *a, const dims *d, float eps,
                                      setok_error *err)
{
    int64_t B = d->B, Q = d->Q, C = d->C, NH = d->NH, D = C / NH, Tk = kv->shape[1];
    setok_dtype dt = x->dtype;
    size_t start = setok_arena_mark(arena);
    setok_tensor qh, kh, vh, q, k, v, att, merged, merged3, o, sum;
    setok_status st = setok_arena_tensor(arena, &qh, dt, 4, (int64_t[]){B, NH, Q, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &kh, dt, 4, (int64_t[]){B, NH, Tk, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &vh, dt, 4, (int64_t[]){B, NH, Tk, D}, err);
    size_t mark = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &q, dt, 3, (int64_t[]){B, Q, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &k, dt, 3, (int64_t[]){B, Tk, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &v, dt, 3, (int64_t[]){B, Tk, C}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &q, x, &a->q_w, &a->q_b, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &k, kv, &a->k_w, &a->k_b, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &v, kv, &a->v_w, &a->v_b, err);
    if (st == SETOK_OK)
        st = split_heads(be, &qh, &q, NH, err);
    if (st == SETOK_OK)
        st = split_heads(be, &kh, &k, NH, err);
    if (st == SETOK_OK)
        st = split_heads(be, &vh, &v, NH, err);
    setok_arena_reset(arena, mark);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &att, dt, 4, (int64_t[]){B, NH, Q, D}, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &qh, &kh, &vh, mask, (float)pow((double)D, -0.5), false,
                             err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &merged, dt, 4, (int64_t[]){B, Q, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &merged, &att, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&merged3, &merged, 3, (int64_t[]){B, Q, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, dt, 3, (int64_t[]){B, Q, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &sum, dt, 3, (int64_t[]){B, Q, C}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &o, &merged3, &a->out_w, &a->out_b, err);
    if (st == SETOK_OK)
        st = setok_add(be, &sum, &o, x, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, x, &sum, &a->ln_w, &a->ln_b, eps, err);
    setok_arena_reset(arena, start);
    return st;
}

// x: [B, Q, C] (updated in place) -> x = LayerNorm(x + fc2(act(fc1(x)))),
// fc1: [I, C], fc2: [C, I] (intermediate_query, output_query)
static setok_status qformer_feed_forward(setok_backend *be, setok_arena *arena, setok_tensor *x,
                                         const qf_layer *l, setok_op act, const dims *d,
                                         float eps, setok_error *err)
{
    setok_dtype dt = x->dtype;
    size_t start = setok_arena_mark(arena);
    setok_tensor h, a, o, sum;
    int64_t inner[3] = {d->B, d->Q, d->I}, outer[3] = {d->B, d->Q, d->C};
    setok_status st = setok_arena_tensor(arena, &h, dt, 3, inner, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a, dt, 3, inner, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, dt, 3, outer, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &sum, dt, 3, outer, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h, x, &l->fc1_w, &l->fc1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, act, &a, &h, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &o, &a, &l->fc2_w, &l->fc2_b, err);
    if (st == SETOK_OK)
        st = setok_add(be, &sum, &o, x, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, x, &sum, &l->ln_w, &l->ln_b, eps, err);
    setok_arena_reset(arena, start);
    return st;
}

// x: [B, Q, C] (in place), enc: [B, S, E], mask: [B, 1, 1, S]? -> one Blip2QFormerLayer
static setok_status qformer_layer(setok_qformer *m, setok_arena *arena, setok_tensor *x,
                                  const setok_tensor *enc, const setok_tensor *mask,
                                  const qf_layer *l, const dims *d, setok_error *err)
{
    setok_backend *be = m->backend;
    float eps = m->cfg.layer_norm_eps;
    setok_status st = qformer_attention(be, arena, x, x, NULL, &l->self_attn, d, eps, err);
    if (st == SETOK_OK && l->has_cross)
        st = qformer_attention(be, arena, x, enc, mask, &l->cross_attn, d, eps, err);
    if (st == SETOK_OK)
        st = qformer_feed_forward(be, arena, x, l, m->cfg.act, d, eps, err);
    return st;
}

// mask01: [B, S] (1 keep, 0 hide) -> additive: [B, S] = (mask01 - 1) * |lowest| of the
// dtype, transformers' finfo(dtype).min for hidden tokens
static setok_status additive_mask(setok_backend *be, setok_tensor *additive,
                                  const setok_tensor *mask01, setok_error *err)
{
    float big = additive->dtype == SETOK_F16 ? 65504.0f : FLT_MAX;
    return setok_scale(be, additive, mask01, big, -big, err);
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_inputs(const setok_qformer *m, const setok_arena *arena,
                                 const setok_tensor *query, const setok_tensor *enc,
                                 const setok_tensor *mask, setok_error *err)
{
    const setok_qformer_config *c = &m->cfg;
    char buf[96];
    const setok_tensor *all[3] = {query, enc, mask};
    for (int i = 0; i < 3; i++) {
        if (!all[i])
            continue;
        if (all[i]->dtype != m->dtype || !setok_tensor_is_contiguous(all[i]))
            return setok_fail(err, SETOK_ERR_INPUT, "qformer: inputs must be contiguous %s "
                              "tensors, got %s", setok_dtype_name(m->dtype),
                              setok_tensor_describe(all[i], buf, sizeof buf));
        if (all[i]->backend != m->backend)
            return setok_fail(err, SETOK_ERR_INPUT, "qformer: inputs must be on the model's "
                              "backend (%s)", setok_backend_name(m->backend));
    }
    if (arena->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: the arena must be on the model's "
                          "backend (%s)", setok_backend_name(m->backend));
    if (!enc || enc->ndim != 3 || enc->shape[0] < 1 || enc->shape[1] < 1 ||
        enc->shape[2] != c->encoder_hidden_size)
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: encoder_hidden_states must be "
                          "[B, S, %d] with B, S >= 1, got %s", c->encoder_hidden_size,
                          enc ? setok_tensor_describe(enc, buf, sizeof buf) : "none");
    if (query && (query->ndim != 3 || query->shape[0] != enc->shape[0] || query->shape[1] < 1 ||
                  query->shape[2] != c->hidden_size))
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: query_embeds must be [%lld, Q, %d] "
                          "with Q >= 1, got %s", (long long)enc->shape[0], c->hidden_size,
                          setok_tensor_describe(query, buf, sizeof buf));
    if (!query && !setok_qformer_num_query_tokens(m))
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: no query_embeds given and the "
                          "checkpoint has no query_tokens");
    if (mask && (mask->ndim != 2 || mask->shape[0] != enc->shape[0] ||
                 mask->shape[1] != enc->shape[1]))
        return setok_fail(err, SETOK_ERR_INPUT, "qformer: encoder_attention_mask must be "
                          "[%lld, %lld], got %s", (long long)enc->shape[0],
                          (long long)enc->shape[1], setok_tensor_describe(mask, buf, sizeof buf));
    return SETOK_OK;
}

setok_status setok_qformer_forward(setok_qformer *m, setok_arena *arena,
                                   setok_tensor *last_hidden_state,
                                   const setok_tensor *query_embeds,
                                   const setok_tensor *encoder_hidden_states,
                                   const setok_tensor *encoder_attention_mask,
                                   const atomic_bool *cancel, setok_error *err)
{
    const setok_qformer_config *c = &m->cfg;
    setok_backend *be = m->backend;
    setok_status st = check_inputs(m, arena, query_embeds, encoder_hidden_states,
                                   encoder_attention_mask, err);
    if (st != SETOK_OK)
        return st;
    int64_t B = encoder_hidden_states->shape[0], S = encoder_hidden_states->shape[1];
    dims d = {.B = B, .C = c->hidden_size, .NH = c->num_heads, .I = c->intermediate_size};
    d.Q = query_embeds ? query_embeds->shape[1] : setok_qformer_num_query_tokens(m);
    size_t start = setok_arena_mark(arena);
    setok_tensor *x = last_hidden_state, queries, mask_add, mask4;
    const setok_tensor *q_in = query_embeds, *mask = NULL;
    st = setok_arena_tensor(arena, x, m->dtype, 3, (int64_t[]){B, d.Q, d.C}, err);
    size_t outputs = setok_arena_mark(arena);
    /* the learned queries, one copy per batch */
    if (st == SETOK_OK && !query_embeds) {
        st = setok_arena_tensor(arena, &queries, m->dtype, 3, (int64_t[]){B, d.Q, d.C}, err);
        for (int64_t b = 0; b < B && st == SETOK_OK; b++) {
            setok_tensor row;
            st = setok_view_slice(&row, &queries, 0, b, 1, err);
            if (st == SETOK_OK)
                st = setok_copy(be, &row, &m->query_tokens, err);
        }
        q_in = &queries;
    }
    if (st == SETOK_OK && encoder_attention_mask) {
        st = setok_arena_tensor(arena, &mask_add, m->dtype, 2, (int64_t[]){B, S}, err);
        if (st == SETOK_OK)
            st = additive_mask(be, &mask_add, encoder_attention_mask, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&mask4, &mask_add, 4, (int64_t[]){B, 1, 1, S}, err);
        mask = &mask4;
    }
    if (st == SETOK_OK)
        st = setok_layernorm(be, x, q_in, &m->ln_w, &m->ln_b, c->layer_norm_eps, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        if (cancel && atomic_load(cancel)) {
            st = setok_fail(err, SETOK_ERR_CANCELLED, "qformer: cancelled before layer %d of %d",
                            i, c->num_layers);
            break;
        }
        st = qformer_layer(m, arena, x, encoder_hidden_states, mask, &m->layers[i], &d, err);
    }
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "qformer forward");
    return st;
}
