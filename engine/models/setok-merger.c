/* setok-merger.c — the SeTok cluster merger (official SetokTokenizer.group_encoding,
 * inner_encoder / inter_encoder / out; paper §2.1 and Appendix D), mirrored by
 * tools/setokim/setok.py SetokMerger.
 *
 * Config and weight names are in setok.h. The official code runs the intra
 * blocks on each cluster separately; here all patches go through each block at
 * once with an additive mask that keeps attention inside each cluster (the
 * same sums, one GEMM per linear), and the mean-pooling is one matmul with a
 * [T, N] averaging matrix. Activations come from the caller's arena and are
 * released after every block. */
#include "io/loader.h"
#include "setok/models/setok.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

typedef struct merger_block {
    setok_tensor norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b;
    setok_tensor norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} merger_block;

struct setok_merger {
    setok_merger_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    merger_block *intra, *inter;
    setok_tensor out_w, out_b;
};

// ----------------------------------------------------------------------------
// loading

static setok_status read_int(const setok_config *cfg, const char *key, int64_t dflt, bool need,
                             int lo, int *out, setok_error *err)
{
    *out = (int)dflt;
    return setok_config_int_in(cfg, key, need, lo, 1 << 24, out, err);
}

static setok_status read_cluster_defaults(setok_cluster_params *p, const setok_config *cfg,
                                          setok_error *err)
{
    *p = setok_cluster_params_default();
    const char *mode = NULL;
    double threshold = p->threshold;
    setok_status st = setok_config_string_or(cfg, "cluster_mode", "dpc", &mode, err);
    if (st == SETOK_OK) {
        p->mode = setok_cluster_mode_from_name(mode);
        if (p->mode == SETOK_CLUSTER_MODE_COUNT)
            return setok_fail(err, SETOK_ERR_INPUT,
                              "%s: cluster_mode '%s' is not one of dpc, soft, fixed",
                              setok_config_path(cfg), mode);
    }
    if (st == SETOK_OK)
        st = read_int(cfg, "cluster_k", p->k, false, 1, &p->k, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(cfg, "cluster_threshold", threshold, &threshold, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "min_clusters", p->min_clusters, false, 1, &p->min_clusters, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "max_clusters", p->max_clusters, false, 0, &p->max_clusters, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "fixed_k", p->fixed_k, false, 1, &p->fixed_k, err);
    p->threshold = (float)threshold;
    return st;
}

static setok_status read_config(const setok_config *cfg, void *out, setok_error *err)
{
    setok_merger_config *c = out;
    const char *path = setok_config_path(cfg);
    memset(c, 0, sizeof *c);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "architectures");
    if (arch != NULL) {
        const cJSON *first = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
        if (!cJSON_IsString(first) || strcmp(first->valuestring, "SetokMerger") != 0)
            return setok_fail(err, SETOK_ERR_INPUT,
                              "%s: architectures must be [\"SetokMerger\"]", path);
    }
    double eps = 1e-5, ratio = 4.0;
    const char *act = NULL;
    setok_status st = read_int(cfg, "hidden_size", 0, true, 1, &c->hidden_size, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "num_heads", 2, false, 1, &c->num_heads, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "intra_layers", 2, false, 0, &c->intra_layers, err);
    if (st == SETOK_OK)
        st = read_int(cfg, "inter_layers", 2, false, 0, &c->inter_layers, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(cfg, "mlp_ratio", ratio, &ratio, err);
    if (st == SETOK_OK) {
        int64_t dflt = (int64_t)llround(ratio * c->hidden_size);
        st = read_int(cfg, "intermediate_size", dflt, false, 1, &c->intermediate_size, err);
    }
    if (st == SETOK_OK)
        st = read_int(cfg, "output_size", c->hidden_size, false, 1, &c->output_size, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(cfg, "layer_norm_eps", eps, &eps, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "hidden_act", "gelu", &act, err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(cfg, "qkv_bias", true, &c->qkv_bias, err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(cfg, "position_embedding", true, &c->position_embedding, err);
    if (st == SETOK_OK)
        st = read_cluster_defaults(&c->cluster, cfg, err);
    if (st != SETOK_OK)
        return st;
    if (c->hidden_size % c->num_heads != 0)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: hidden_size %d is not a multiple of num_heads %d", path,
                          c->hidden_size, c->num_heads);
    if (!(eps > 0.0 && eps < 1.0))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: layer_norm_eps %g must be in (0, 1)", path,
                          eps);
    c->layer_norm_eps = (float)eps;
    static const struct { const char *name; setok_op op; } acts[] = {
        {"gelu", SETOK_OP_GELU},
        {"gelu_pytorch_tanh", SETOK_OP_GELU_TANH},
        {"gelu_new", SETOK_OP_GELU_TANH},
        {"quick_gelu", SETOK_OP_QUICK_GELU},
        {"silu", SETOK_OP_SILU},
    };
    c->act = SETOK_OP_COUNT;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(acts[i].name, act))
            c->act = acts[i].op;
    if (c->act == SETOK_OP_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: hidden_act '%s' is not one of gelu, gelu_pytorch_tanh, gelu_new, "
                          "quick_gelu, silu", path, act);
    return SETOK_OK;
}

static setok_status load_block(merger_block *b, const setok_merger_config *cfg,
                               const setok_loader *ld, const char *prefix, setok_error *err)
{
    const int64_t c = cfg->hidden_size, inner = cfg->intermediate_size;
    const setok_weight table[] = {
        {&b->norm1_w, "norm1.weight", 1, {c}, 0},
        {&b->norm1_b, "norm1.bias", 1, {c}, 0},
        {&b->qkv_w, "attn.qkv.weight", 2, {3 * c, c}, 0},
        {&b->qkv_b, "attn.qkv.bias", 1, {3 * c}, cfg->qkv_bias ? 0 : SETOK_WEIGHT_SKIP},
        {&b->proj_w, "attn.proj.weight", 2, {c, c}, 0},
        {&b->proj_b, "attn.proj.bias", 1, {c}, 0},
        {&b->norm2_w, "norm2.weight", 1, {c}, 0},
        {&b->norm2_b, "norm2.bias", 1, {c}, 0},
        {&b->fc1_w, "mlp.fc1.weight", 2, {inner, c}, 0},
        {&b->fc1_b, "mlp.fc1.bias", 1, {inner}, 0},
        {&b->fc2_w, "mlp.fc2.weight", 2, {c, inner}, 0},
        {&b->fc2_b, "mlp.fc2.bias", 1, {c}, 0},
    };
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

static void free_block(merger_block *b)
{
    setok_tensor *all[] = {&b->norm1_w, &b->norm1_b, &b->qkv_w, &b->qkv_b, &b->proj_w,
                           &b->proj_b, &b->norm2_w, &b->norm2_b, &b->fc1_w, &b->fc1_b,
                           &b->fc2_w, &b->fc2_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

void setok_merger_free(setok_merger *m)
{
    if (m == NULL)
        return;
    for (int i = 0; m->intra != NULL && i < m->cfg.intra_layers; i++)
        free_block(&m->intra[i]);
    for (int i = 0; m->inter != NULL && i < m->cfg.inter_layers; i++)
        free_block(&m->inter[i]);
    free(m->intra);
    free(m->inter);
    setok_tensor_free(&m->out_w);
    setok_tensor_free(&m->out_b);
    free(m);
}

static setok_status load_weights(setok_merger *m, const setok_weights *w, setok_error *err)
{
    m->intra = calloc((size_t)m->cfg.intra_layers + 1, sizeof *m->intra);
    m->inter = calloc((size_t)m->cfg.inter_layers + 1, sizeof *m->inter);
    if (m->intra == NULL || m->inter == NULL)
        return setok_fail(err, SETOK_ERR_NOMEM, "setok merger: out of memory");
    setok_loader ld = {.w = w, .backend = m->backend, .dtype = m->dtype};
    setok_status st = SETOK_OK;
    char prefix[32];
    for (int i = 0; st == SETOK_OK && i < m->cfg.intra_layers; i++) {
        snprintf(prefix, sizeof prefix, "intra.%d", i);
        st = load_block(&m->intra[i], &m->cfg, &ld, prefix, err);
    }
    for (int i = 0; st == SETOK_OK && i < m->cfg.inter_layers; i++) {
        snprintf(prefix, sizeof prefix, "inter.%d", i);
        st = load_block(&m->inter[i], &m->cfg, &ld, prefix, err);
    }
    const setok_weight out[] = {
        {&m->out_w, "out.weight", 2, {m->cfg.output_size, m->cfg.hidden_size}, 0},
        {&m->out_b, "out.bias", 1, {m->cfg.output_size}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(&ld, "", out, 2, err);
    return st;
}

setok_status setok_merger_load(setok_merger **out, const char *dir, setok_backend *backend,
                               setok_dtype dtype, setok_error *err)
{
    *out = NULL;
    if (dir == NULL || backend == NULL)
        return setok_fail(err, SETOK_ERR_INPUT, "setok merger: a folder and a backend are needed");
    if (dtype != SETOK_F32 && dtype != SETOK_F16 && dtype != SETOK_BF16)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the merger runs in f32, f16 or bf16, not %s",
                          dir, setok_dtype_name(dtype));
    setok_merger *m = calloc(1, sizeof *m);
    if (m == NULL)
        return setok_fail(err, SETOK_ERR_NOMEM, "setok merger: out of memory");
    m->backend = backend;
    m->dtype = dtype;

    setok_status st = setok_config_read(dir, read_config, &m->cfg, err);
    setok_weights *w = NULL;
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK)
        st = load_weights(m, w, err);
    setok_weights_close(w);
    if (st != SETOK_OK) {
        setok_merger_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

const setok_merger_config *setok_merger_get_config(const setok_merger *m)
{
    return &m->cfg;
}

size_t setok_merger_arena_bytes(const setok_merger *m, int n_patches, int n_tokens)
{
    // host-forward input and output, out, x + PE, mask, pool, u, their f32 staging, then
    // one block's activations: h, r, qkv, qkv by head, attention, by row (10 C) and the MLP
    size_t n = (size_t)n_patches, t = (size_t)n_tokens, c = (size_t)m->cfg.hidden_size;
    size_t inner = (size_t)m->cfg.intermediate_size, o = (size_t)m->cfg.output_size;
    size_t rows = n > t ? n : t;
    size_t elems = n * c + 3 * t * o + 2 * n * c + 2 * (n * c + n * n + t * n) + t * c;
    elems += rows * (10 * c + inner);
    return elems * sizeof(float) + 64 * 256;
}

// ----------------------------------------------------------------------------
// layers

// x: [T, C], mask: [T, T] additive or NULL -> y: [T, C] = proj(attention(qkv(x)))
static setok_status attention_forward(setok_merger *m, setok_arena *a, setok_tensor *y,
                                      const setok_tensor *x, const merger_block *b,
                                      const setok_tensor *mask, int64_t t, int64_t c,
                                      setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t heads = m->cfg.num_heads, hd = c / heads;
    setok_tensor qkv, qkv4, qkvp, q, k, v, att, att3, attp, attp2;
    int64_t s_qkv[2] = {t, 3 * c}, s_qkv4[4] = {t, 3, heads, hd}, s_qkvp[4] = {3, heads, t, hd};
    int64_t s_att[4] = {1, heads, t, hd}, s_att3[3] = {heads, t, hd}, s_attp[3] = {t, heads, hd};
    int64_t s_y[2] = {t, c};
    static const int to_heads[4] = {1, 2, 0, 3}, to_rows[3] = {1, 0, 2};
    setok_status st = setok_arena_tensor(a, &qkv, m->dtype, 2, s_qkv, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &qkv, x, &b->qkv_w, m->cfg.qkv_bias ? &b->qkv_b : NULL, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&qkv4, &qkv, 4, s_qkv4, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(a, &qkvp, m->dtype, 4, s_qkvp, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &qkvp, &qkv4, to_heads, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&q, &qkvp, 0, 0, 1, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&k, &qkvp, 0, 1, 1, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&v, &qkvp, 0, 2, 1, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(a, &att, m->dtype, 4, s_att, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &q, &k, &v, mask, 0.0f, false, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&att3, &att, 3, s_att3, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(a, &attp, m->dtype, 3, s_attp, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &attp, &att3, to_rows, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&attp2, &attp, 2, s_y, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &attp2, &b->proj_w, &b->proj_b, err);
    return st;
}

// x: [T, C] -> y: [T, C] = fc2(act(fc1(x)))
static setok_status mlp_forward(setok_merger *m, setok_arena *a, setok_tensor *y,
                                const setok_tensor *x, const merger_block *b, int64_t t,
                                setok_error *err)
{
    setok_tensor h;
    int64_t s_h[2] = {t, m->cfg.intermediate_size};
    setok_status st = setok_arena_tensor(a, &h, m->dtype, 2, s_h, err);
    if (st == SETOK_OK)
        st = setok_linear(m->backend, &h, x, &b->fc1_w, &b->fc1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(m->backend, m->cfg.act, &h, &h, err);
    if (st == SETOK_OK)
        st = setok_linear(m->backend, y, &h, &b->fc2_w, &b->fc2_b, err);
    return st;
}

// x: [T, C] in place; mask: [T, T] additive or NULL. Pre-LN block.
static setok_status block_forward(setok_merger *m, setok_arena *a, setok_tensor *x,
                                  const merger_block *b, const setok_tensor *mask,
                                  setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t t = x->shape[0], c = x->shape[1];
    size_t mark = setok_arena_mark(a);
    setok_tensor h, r;
    int64_t s[2] = {t, c};
    float eps = m->cfg.layer_norm_eps;
    setok_status st = setok_arena_tensor(a, &h, m->dtype, 2, s, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(a, &r, m->dtype, 2, s, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &h, x, &b->norm1_w, &b->norm1_b, eps, err);
    if (st == SETOK_OK)
        st = attention_forward(m, a, &r, &h, b, mask, t, c, err);
    if (st == SETOK_OK)
        st = setok_add(be, x, x, &r, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &h, x, &b->norm2_w, &b->norm2_b, eps, err);
    if (st == SETOK_OK)
        st = mlp_forward(m, a, &r, &h, b, t, err);
    if (st == SETOK_OK)
        st = setok_add(be, x, x, &r, err);
    setok_arena_reset(a, mark);
    return st;
}

// ----------------------------------------------------------------------------
// forward

// host f32 [count] -> t (the merger's dtype) on the backend, through an f32 tensor if needed
static setok_status upload_f32(setok_merger *m, setok_arena *a, setok_tensor *t,
                               const float *host, setok_error *err)
{
    if (t->dtype == SETOK_F32)
        return setok_tensor_upload(t, host, err);
    setok_tensor f;
    setok_status st = setok_arena_tensor(a, &f, SETOK_F32, t->ndim, t->shape, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&f, host, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, t, &f, err);
    return st;
}

static setok_status check_clusters(const setok_clusters *c, setok_error *err)
{
    if (c == NULL || c->labels == NULL || c->n_tokens < 1 || c->n_patches < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "setok merger: no clusters");
    for (int j = 0; j < c->n_patches; j++)
        if (c->labels[j] < 0 || c->labels[j] >= c->n_tokens)
            return setok_fail(err, SETOK_ERR_INPUT,
                              "setok merger: patch %d has label %d, outside [0, %d)", j,
                              c->labels[j], c->n_tokens);
    return SETOK_OK;
}

// x0 [N, C] = features + PE, mask [N, N], pool [T, N]: built on the host, then uploaded
static setok_status merger_inputs(setok_merger *m, setok_arena *a, setok_tensor *x0,
                                  setok_tensor *mask, setok_tensor *pool,
                                  const setok_tensor *features, const setok_clusters *c,
                                  setok_error *err)
{
    int64_t n = c->n_patches, t = c->n_tokens, ch = m->cfg.hidden_size;
    int64_t s_x[2] = {n, ch}, s_mask[2] = {n, n}, s_pool[2] = {t, n};
    size_t count = (size_t)(n * ch > n * n ? n * ch : n * n);
    float *host = malloc((count > (size_t)(t * n) ? count : (size_t)(t * n)) * sizeof *host);
    if (host == NULL)
        return setok_fail(err, SETOK_ERR_NOMEM, "setok merger: out of memory");
    setok_status st = setok_arena_tensor(a, x0, m->dtype, 2, s_x, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, x0, features, err);
    if (st == SETOK_OK && m->cfg.position_embedding) {
        setok_tensor pe;
        st = setok_arena_tensor(a, &pe, m->dtype, 2, s_x, err);
        if (st == SETOK_OK)
            st = setok_position_embedding_2d(host, c->grid_h, c->grid_w, (int)ch, err);
        if (st == SETOK_OK)
            st = upload_f32(m, a, &pe, host, err);
        if (st == SETOK_OK)
            st = setok_add(m->backend, x0, x0, &pe, err);
    }
    if (st == SETOK_OK) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                host[i * n + j] = c->labels[i] == c->labels[j] ? 0.0f : -INFINITY;
        st = setok_arena_tensor(a, mask, m->dtype, 2, s_mask, err);
    }
    if (st == SETOK_OK)
        st = upload_f32(m, a, mask, host, err);
    if (st == SETOK_OK) {
        memset(host, 0, (size_t)(t * n) * sizeof *host);
        for (int64_t j = 0; j < n; j++)
            host[c->labels[j] * n + j] = 1.0f;
        for (int64_t k = 0; k < t; k++) {
            float area = 0.0f;
            for (int64_t j = 0; j < n; j++)
                area += host[k * n + j];
            for (int64_t j = 0; j < n && area > 0.0f; j++)
                host[k * n + j] /= area;
        }
        st = setok_arena_tensor(a, pool, m->dtype, 2, s_pool, err);
    }
    if (st == SETOK_OK)
        st = upload_f32(m, a, pool, host, err);
    free(host);
    return st;
}

setok_status setok_merger_forward(setok_merger *m, setok_arena *arena, setok_tensor *out,
                                  const setok_tensor *features, const setok_clusters *c,
                                  setok_error *err)
{
    // features: [N, C] -> out: [T, O]
    setok_status st = check_clusters(c, err);
    if (st != SETOK_OK)
        return st;
    int64_t n = c->n_patches, t = c->n_tokens, ch = m->cfg.hidden_size;
    if (features->ndim != 2 || features->shape[0] != n || features->shape[1] != ch) {
        char buf[64];
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok merger: features are %s, expected [%lld, %lld] (patches, "
                          "hidden_size)", setok_tensor_describe(features, buf, sizeof buf),
                          (long long)n, (long long)ch);
    }
    if (features->backend != m->backend || arena->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok merger: features and arena must be on the merger's backend");
    if (features->dtype != SETOK_F32 && features->dtype != m->dtype)
        return setok_fail(err, SETOK_ERR_INPUT, "setok merger: features must be f32 or %s",
                          setok_dtype_name(m->dtype));
    int64_t s_out[2] = {t, m->cfg.output_size}, s_u[2] = {t, ch};
    st = setok_arena_tensor(arena, out, m->dtype, 2, s_out, err);
    if (st != SETOK_OK)
        return st;
    size_t mark = setok_arena_mark(arena);
    setok_tensor x, mask, pool, u;
    st = merger_inputs(m, arena, &x, &mask, &pool, features, c, err);
    for (int i = 0; st == SETOK_OK && i < m->cfg.intra_layers; i++)
        st = block_forward(m, arena, &x, &m->intra[i], &mask, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &u, m->dtype, 2, s_u, err);
    if (st == SETOK_OK)
        st = setok_matmul(m->backend, &u, &pool, &x, NULL, false, false, 1.0f, err);
    for (int i = 0; st == SETOK_OK && i < m->cfg.inter_layers; i++)
        st = block_forward(m, arena, &u, &m->inter[i], NULL, err);
    if (st == SETOK_OK)
        st = setok_linear(m->backend, out, &u, &m->out_w, &m->out_b, err);
    setok_arena_reset(arena, mark);
    if (st != SETOK_OK)
        return setok_error_prefix(err, "setok merger");
    return SETOK_OK;
}

setok_status setok_merger_forward_host(setok_merger *m, float *out, const float *features,
                                       const setok_clusters *c, setok_error *err)
{
    // features: host [N, C] f32 -> out: host [T, O] f32
    setok_status st = check_clusters(c, err);
    if (st != SETOK_OK)
        return st;
    int64_t s_x[2] = {c->n_patches, m->cfg.hidden_size};
    setok_arena arena;
    st = setok_arena_init(&arena, m->backend,
                          setok_merger_arena_bytes(m, c->n_patches, c->n_tokens), err);
    if (st != SETOK_OK)
        return st;
    setok_tensor x, y, y32;
    st = setok_arena_tensor(&arena, &x, SETOK_F32, 2, s_x, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&x, features, err);
    if (st == SETOK_OK)
        st = setok_merger_forward(m, &arena, &y, &x, c, err);
    if (st == SETOK_OK)
        y32 = y;
    if (st == SETOK_OK && y.dtype != SETOK_F32) {
        st = setok_arena_tensor(&arena, &y32, SETOK_F32, 2, y.shape, err);
        if (st == SETOK_OK)
            st = setok_copy(m->backend, &y32, &y, err);
    }
    if (st == SETOK_OK)
        st = setok_backend_synchronize(m->backend, err);
    if (st == SETOK_OK)
        st = setok_tensor_download(out, &y32, err);
    setok_arena_destroy(&arena);
    return st;
}
