/* llama.c — the language model, mirroring transformers' LlamaForCausalLM
 * (modeling_llama.py): config, weights, KV cache and forward.
 *
 * Rules: one function per layer, outputs first; activations come from the
 * caller's arena, reset to a mark after each sub-layer; the weights are
 * read-only during a forward, and everything a sequence changes (K, V, the
 * dynamic rope frequencies) lives in its setok_llama_cache, allocated once,
 * so a decode step allocates nothing and one model serves many caches.
 * Attention runs once per layer, reading the cached keys and values
 * [Hkv, max_ctx, D] in place as a strided view of their first Tk rows. */
#include "setok/models/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/loader.h"
#include "setok/config.h"
#include "setok/lora.h"
#include "setok/ops.h"
#include "setok/weights.h"

typedef struct llama_layer {
    setok_tensor ln1_w, q_w, k_w, v_w, o_w, q_b, k_b, v_b, o_b;
    setok_tensor ln2_w, gate_w, up_w, down_w, gate_b, up_b, down_b;
} llama_layer;

struct setok_llama {
    setok_llama_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    setok_dtype kv_dtype;   /* the cache's (setok_llama_kv_dtype) */
    setok_tensor embed;     /* [V, C] */
    setok_tensor norm_w;    /* [C] */
    setok_tensor lm_head;   /* [V, C]; aliases embed when tied */
    bool lm_head_owned;
    llama_layer *layers;
    setok_weights *weights; /* the files, kept open: tensors may point into them */
};

/* One sequence's state: what a forward appends to and attends over. */
struct setok_llama_cache {
    const setok_llama *m;   /* the model it was made for (not owned) */
    setok_tensor *k, *v;    /* [num_layers] of [Hkv, max_ctx, D] */
    setok_tensor inv_freq;  /* f32 [D / 2] */
    int64_t rope_seq_len;   /* dynamic rope: the longest sequence inv_freq was made for */
    setok_tensor positions; /* I32 [max_ctx] = 0, 1, 2, ... */
    int64_t max_ctx, length;
};

/* ---------------------------------------------------------------------------
 * config */

static setok_status read_int(const setok_config *json, const char *prefix, const char *name,
                             int lo, int hi, int *inout, setok_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return setok_config_int_in(json, key, false, lo, hi, inout, err);
}

static setok_status read_double(const setok_config *json, const char *prefix, const char *name,
                                double *inout, setok_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return setok_config_double_or(json, key, *inout, inout, err);
}

static setok_status read_bool(const setok_config *json, const char *prefix, const char *name,
                              bool *inout, setok_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return setok_config_bool_or(json, key, *inout, inout, err);
}

/* rope_parameters (transformers >= 5) or the older rope_scaling + rope_theta,
 * normalised as transformers' standardize_rope_params does. */
static setok_status rope_parse(setok_llama_config *cfg, const setok_config *json, const char *p,
                               setok_error *err)
{
    const char *path = setok_config_path(json);
    char key[160], rp[96];
    snprintf(key, sizeof key, "%srope_parameters", p);
    const char *obj = setok_config_has(json, key) ? "rope_parameters." : "rope_scaling.";
    snprintf(rp, sizeof rp, "%s%s", p, obj);
    setok_status st = read_double(json, p, "rope_theta", &cfg->rope_theta, err);
    if (st == SETOK_OK)
        st = read_double(json, rp, "rope_theta", &cfg->rope_theta, err);
    const char *type = "default";
    snprintf(key, sizeof key, "%stype", rp);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, type, &type, err);
    snprintf(key, sizeof key, "%srope_type", rp);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, type, &type, err);
    if (st != SETOK_OK)
        return st;
    if (!(cfg->rope_theta > 1.0))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: rope_theta must be > 1, got %g", path,
                          cfg->rope_theta);
    if (!strcmp(type, "default"))
        cfg->rope_type = SETOK_LLAMA_ROPE_DEFAULT;
    else if (!strcmp(type, "linear"))
        cfg->rope_type = SETOK_LLAMA_ROPE_LINEAR;
    else if (!strcmp(type, "llama3"))
        cfg->rope_type = SETOK_LLAMA_ROPE_LLAMA3;
    else if (!strcmp(type, "dynamic"))
        cfg->rope_type = SETOK_LLAMA_ROPE_DYNAMIC;
    else
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: rope type '%s' is not supported "
                          "(default, linear, llama3, dynamic)", path, type);
    if (cfg->rope_type == SETOK_LLAMA_ROPE_DEFAULT)
        return SETOK_OK;
    snprintf(key, sizeof key, "%sfactor", rp);
    st = setok_config_double(json, key, &cfg->rope_factor, err);
    if (st == SETOK_OK && !(cfg->rope_factor >= 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be >= 1, got %g", path, key,
                        cfg->rope_factor);
    if (st != SETOK_OK || cfg->rope_type != SETOK_LLAMA_ROPE_LLAMA3)
        return st;
    snprintf(key, sizeof key, "%slow_freq_factor", rp);
    st = setok_config_double(json, key, &cfg->low_freq_factor, err);
    snprintf(key, sizeof key, "%shigh_freq_factor", rp);
    if (st == SETOK_OK)
        st = setok_config_double(json, key, &cfg->high_freq_factor, err);
    cfg->original_max_position_embeddings = cfg->max_position_embeddings;
    if (st == SETOK_OK)
        st = read_int(json, p, "original_max_position_embeddings", 1, INT32_MAX,
                      &cfg->original_max_position_embeddings, err);
    if (st == SETOK_OK)
        st = read_int(json, rp, "original_max_position_embeddings", 1, INT32_MAX,
                      &cfg->original_max_position_embeddings, err);
    if (st == SETOK_OK && !(cfg->low_freq_factor > 0.0 &&
                            cfg->high_freq_factor > cfg->low_freq_factor))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: llama3 rope needs 0 < low_freq_factor < "
                        "high_freq_factor, got %g and %g", path, cfg->low_freq_factor,
                        cfg->high_freq_factor);
    return st;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_llama_config *cfg = out;
    const char *path = setok_config_path(json);
    /* LLaVA keeps the decoder's config under text_config */
    const char *p = setok_config_has(json, "text_config") ? "text_config." : "";
    /* LlamaConfig's defaults (LLaMA-2 7B) */
    *cfg = (setok_llama_config){
        .hidden_size = 4096, .intermediate_size = 11008, .num_layers = 32, .num_heads = 32,
        .vocab_size = 32000, .max_position_embeddings = 2048, .rms_norm_eps = 1e-6f,
        .rope_theta = 10000.0, .rope_factor = 1.0,
    };
    setok_status st = read_int(json, p, "hidden_size", 1, 1 << 16, &cfg->hidden_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "intermediate_size", 1, 1 << 20, &cfg->intermediate_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "num_hidden_layers", 0, 1024, &cfg->num_layers, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "num_attention_heads", 1, 1 << 12, &cfg->num_heads, err);
    cfg->num_kv_heads = cfg->num_heads;
    if (st == SETOK_OK)
        st = read_int(json, p, "num_key_value_heads", 1, 1 << 12, &cfg->num_kv_heads, err);
    cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    if (st == SETOK_OK)
        st = read_int(json, p, "head_dim", 1, 1 << 12, &cfg->head_dim, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "vocab_size", 1, 1 << 24, &cfg->vocab_size, err);
    if (st == SETOK_OK)
        st = read_int(json, p, "max_position_embeddings", 1, INT32_MAX,
                      &cfg->max_position_embeddings, err);
    double eps = cfg->rms_norm_eps;
    if (st == SETOK_OK)
        st = read_double(json, p, "rms_norm_eps", &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: rms_norm_eps must be in (0, 1), got %g", path,
                        eps);
    cfg->rms_norm_eps = (float)eps;
    if (st == SETOK_OK)
        st = read_bool(json, p, "tie_word_embeddings", &cfg->tie_word_embeddings, err);
    if (st == SETOK_OK)
        st = read_bool(json, p, "attention_bias", &cfg->attention_bias, err);
    if (st == SETOK_OK)
        st = read_bool(json, p, "mlp_bias", &cfg->mlp_bias, err);
    if (st == SETOK_OK)
        st = rope_parse(cfg, json, p, err);
    if (st != SETOK_OK)
        return st;
    const char *act = NULL;
    char key[128];
    snprintf(key, sizeof key, "%shidden_act", p);
    st = setok_config_string_or(json, key, "silu", &act, err);
    if (st == SETOK_OK && strcmp(act, "silu"))
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported "
                        "(silu)", path, act);
    if (st == SETOK_OK && cfg->num_heads % cfg->num_kv_heads)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: num_attention_heads %d is not a multiple of "
                        "num_key_value_heads %d", path, cfg->num_heads, cfg->num_kv_heads);
    if (st == SETOK_OK && cfg->head_dim % 2)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: head_dim %d must be even for rotary "
                        "embeddings", path, cfg->head_dim);
    return st;
}

setok_status setok_llama_config_load(setok_llama_config *cfg, const char *dir, setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * rotary frequencies */

// inv_freq: [D / 2] as transformers' rope init functions compute it in float32:
// default theta^(-2i/D); linear divides by factor; llama3 divides long wavelengths by
// factor and smooths the band between high_freq_wavelen and low_freq_wavelen; dynamic
// (seq_len > max_position_embeddings) raises theta as _compute_dynamic_ntk_parameters does,
// in float32 like its forward-time path
static void rope_inv_freq(float *inv_freq, const setok_llama_config *c, int D, int64_t seq_len)
{
    double theta = c->rope_theta;
    bool dynamic = c->rope_type == SETOK_LLAMA_ROPE_DYNAMIC && seq_len > c->max_position_embeddings;
    float base = 0.0f;
    if (dynamic) {
        float factor = (float)c->rope_factor;
        float ratio = factor * (float)seq_len / (float)c->max_position_embeddings - (factor - 1.0f);
        base = (float)theta * powf(ratio, (float)D / (float)(D - 2));
    }
    for (int i = 0; i < D / 2; i++) {
        float e = (float)(2 * i) / (float)D;
        float f = dynamic ? 1.0f / powf(base, e) : 1.0f / (float)pow(theta, (double)e);
        float factor = (float)c->rope_factor;
        if (c->rope_type == SETOK_LLAMA_ROPE_LINEAR) {
            f = f / factor;
        } else if (c->rope_type == SETOK_LLAMA_ROPE_LLAMA3) {
            float old_len = (float)c->original_max_position_embeddings;
            float lo = (float)c->low_freq_factor, hi = (float)c->high_freq_factor;
            float low_freq_wavelen = old_len / lo, high_freq_wavelen = old_len / hi;
            float wavelen = (float)6.283185307179586 / f; /* 2 pi */
            float scaled = wavelen > low_freq_wavelen ? f / factor : f;
            if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
                float smooth = (old_len / wavelen - lo) / (hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            f = scaled;
        }
        inv_freq[i] = f;
    }
}

/* ---------------------------------------------------------------------------
 * weights */

static void free_layer(llama_layer *l)
{
    setok_tensor *all[] = {&l->ln1_w,  &l->q_w,  &l->k_w,    &l->v_w,    &l->o_w,     &l->q_b,
                           &l->k_b,    &l->v_b,  &l->o_b,    &l->ln2_w,  &l->gate_w,  &l->up_w,
                           &l->down_w, &l->gate_b, &l->up_b, &l->down_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

void setok_llama_free(setok_llama *m)
{
    if (!m)
        return;
    if (m->layers)
        for (int i = 0; i < m->cfg.num_layers; i++)
            free_layer(&m->layers[i]);
    if (m->lm_head_owned)
        setok_tensor_free(&m->lm_head);
    setok_tensor_free(&m->embed);
    setok_tensor_free(&m->norm_w);
    free(m->layers);
    setok_weights_close(m->weights);
    free(m);
}

static setok_status load_layer(setok_llama *m, const setok_loader *ld, llama_layer *l, int index,
                               setok_error *err)
{
    const setok_llama_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size;
    int64_t QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    unsigned ab = c->attention_bias ? 0 : SETOK_WEIGHT_SKIP;
    unsigned mb = c->mlp_bias ? 0 : SETOK_WEIGHT_SKIP;
    const setok_weight table[] = {
        {&l->ln1_w, "input_layernorm.weight", 1, {C}, 0},
        {&l->q_w, "self_attn.q_proj.weight", 2, {QD, C}, SETOK_WEIGHT_MATRIX},
        {&l->k_w, "self_attn.k_proj.weight", 2, {KD, C}, SETOK_WEIGHT_MATRIX},
        {&l->v_w, "self_attn.v_proj.weight", 2, {KD, C}, SETOK_WEIGHT_MATRIX},
        {&l->o_w, "self_attn.o_proj.weight", 2, {C, QD}, SETOK_WEIGHT_MATRIX},
        {&l->q_b, "self_attn.q_proj.bias", 1, {QD}, ab},
        {&l->k_b, "self_attn.k_proj.bias", 1, {KD}, ab},
        {&l->v_b, "self_attn.v_proj.bias", 1, {KD}, ab},
        {&l->o_b, "self_attn.o_proj.bias", 1, {C}, ab},
        {&l->ln2_w, "post_attention_layernorm.weight", 1, {C}, 0},
        {&l->gate_w, "mlp.gate_proj.weight", 2, {I, C}, SETOK_WEIGHT_MATRIX},
        {&l->up_w, "mlp.up_proj.weight", 2, {I, C}, SETOK_WEIGHT_MATRIX},
        {&l->down_w, "mlp.down_proj.weight", 2, {C, I}, SETOK_WEIGHT_MATRIX},
        {&l->gate_b, "mlp.gate_proj.bias", 1, {I}, mb},
        {&l->up_b, "mlp.up_proj.bias", 1, {I}, mb},
        {&l->down_b, "mlp.down_proj.bias", 1, {C}, mb},
    };
    char prefix[32];
    snprintf(prefix, sizeof prefix, "layers.%d", index);
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

/* The weights through ld (files or random). The decoder's prefix is found from the
 * embedding table; lm_head sits outside it. */
static setok_status load_weights(setok_llama *m, setok_loader *ld, setok_error *err)
{
    static const char *const prefixes[] = {"model.", "model.language_model.",
                                           "language_model.model.", ""};
    const setok_llama_config *c = &m->cfg;
    int64_t C = c->hidden_size, V = c->vocab_size;
    char prefix[64];
    setok_status st = setok_loader_find_prefix(ld, prefixes, sizeof prefixes / sizeof *prefixes,
                                               "embed_tokens.weight", 2, (int64_t[]){V, C},
                                               prefix, sizeof prefix, err);
    ld->prefix = prefix;
    const setok_weight table[] = {
        {&m->embed, "embed_tokens.weight", 2, {V, C}, SETOK_WEIGHT_TABLE},
        {&m->norm_w, "norm.weight", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "", table, sizeof table / sizeof *table, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++)
        st = load_layer(m, ld, &m->layers[i], i, err);
    ld->prefix = NULL;
    if (st != SETOK_OK || c->tie_word_embeddings) {
        m->lm_head = m->embed;
        return st;
    }
    m->lm_head_owned = true;
    return setok_loader_one(ld, &m->lm_head, "", "lm_head.weight|language_model.lm_head.weight",
                            2, (int64_t[]){V, C}, SETOK_WEIGHT_MATRIX, err);
}

setok_dtype setok_llama_kv_dtype(const setok_backend *backend, setok_dtype dtype,
                                 setok_dtype matrix)
{
    return setok_backend_is_host(backend) && dtype == SETOK_F32 && matrix != SETOK_F32
               ? SETOK_F16
               : dtype;
}

static setok_status llama_alloc(setok_llama **out, const setok_llama_config *cfg,
                                setok_backend *backend, setok_dtype dtype, setok_dtype matrix,
                                setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "llama: dtype must be f32, f16 or bf16, got %s",
                          setok_dtype_name(dtype));
    setok_llama *m = calloc(1, sizeof *m);
    if (m)
        m->layers = calloc(cfg->num_layers > 0 ? (size_t)cfg->num_layers : 1, sizeof *m->layers);
    if (!m || !m->layers) {
        free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "llama: out of memory");
    }
    m->cfg = *cfg;
    m->backend = backend;
    m->dtype = dtype;
    m->kv_dtype = setok_llama_kv_dtype(backend, dtype, matrix);
    *out = m;
    return SETOK_OK;
}

setok_status setok_llama_load(setok_llama **out, const char *dir, const char *adapter_dir,
                              setok_backend *backend, setok_dtype dtype, setok_dtype matrix,
                              setok_error *err)
{
    *out = NULL;
    setok_llama_config cfg;
    setok_llama *m = NULL;
    setok_weights *w = NULL;
    setok_lora *lora = NULL;
    setok_status st = setok_llama_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = llama_alloc(&m, &cfg, backend, dtype, matrix, err);
    if (st == SETOK_OK && adapter_dir)
        st = setok_lora_open(&lora, adapter_dir, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .lora = lora, .backend = backend, .dtype = dtype,
                           .matrix = matrix, .in_place = true};
        st = load_weights(m, &ld, err);
    }
    if (st == SETOK_OK)
        st = setok_lora_check_used(lora, err);
    m->weights = w; /* tensors may point into its mapping */
    setok_lora_free(lora);
    if (st != SETOK_OK) {
        setok_llama_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

setok_status setok_llama_create_random(setok_llama **out, const setok_llama_config *cfg,
                                       setok_backend *backend, setok_dtype dtype,
                                       setok_dtype matrix, uint32_t seed, setok_error *err)
{
    *out = NULL;
    if (cfg->hidden_size <= 0 || cfg->intermediate_size <= 0 || cfg->num_layers <= 0 ||
        cfg->num_heads <= 0 || cfg->num_kv_heads <= 0 || cfg->head_dim <= 0 ||
        cfg->head_dim % 2 || cfg->num_heads % cfg->num_kv_heads || cfg->vocab_size <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: invalid random-model configuration "
                          "(hidden %d, intermediate %d, layers %d, heads %d/%d, head_dim %d, "
                          "vocab %d)", cfg->hidden_size, cfg->intermediate_size, cfg->num_layers,
                          cfg->num_heads, cfg->num_kv_heads, cfg->head_dim, cfg->vocab_size);
    setok_llama *m = NULL;
    setok_status st = llama_alloc(&m, cfg, backend, dtype, matrix, err);
    if (st != SETOK_OK)
        return st;
    uint32_t state = seed;
    setok_loader ld = {.random_state = &state, .backend = backend, .dtype = dtype,
                       .matrix = matrix};
    st = load_weights(m, &ld, err);
    if (st != SETOK_OK) {
        setok_llama_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

size_t setok_llama_weight_bytes(const setok_llama_config *c, setok_dtype dtype,
                                setok_dtype matrix)
{
    int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    setok_loader ld = {.dtype = dtype, .matrix = matrix};
    setok_dtype table = setok_loader_dtype(&ld, SETOK_WEIGHT_TABLE);
    size_t layer = setok_dtype_bytes(matrix, 2 * QD * C + 2 * KD * C + 3 * I * C) +
                   setok_dtype_bytes(dtype, 2 * C);
    return (size_t)c->num_layers * layer + setok_dtype_bytes(table, V * C) +
           setok_dtype_bytes(dtype, C) +
           (c->tie_word_embeddings ? 0 : setok_dtype_bytes(matrix, V * C));
}

const setok_llama_config *setok_llama_get_config(const setok_llama *m)
{
    return &m->cfg;
}

setok_dtype setok_llama_dtype(const setok_llama *m)
{
    return m->dtype;
}

/* ---------------------------------------------------------------------------
 * cache */

/* inv_freq for sequences of seq_len (only dynamic rope depends on it), allocated on first use. */
static setok_status rope_upload(setok_llama_cache *c, int64_t seq_len, setok_error *err)
{
    const setok_llama *m = c->m;
    int D = m->cfg.head_dim;
    float *host = malloc((size_t)D / 2 * sizeof *host);
    if (!host)
        return setok_fail(err, SETOK_ERR_NOMEM, "llama: out of memory");
    rope_inv_freq(host, &m->cfg, D, seq_len);
    setok_status st = SETOK_OK;
    if (!c->inv_freq.data)
        st = setok_tensor_alloc(&c->inv_freq, m->backend, SETOK_F32, 1, (int64_t[]){D / 2}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&c->inv_freq, host, err);
    c->rope_seq_len = seq_len > m->cfg.max_position_embeddings ? seq_len
                                                                : m->cfg.max_position_embeddings;
    free(host);
    return st;
}

/* Dynamic rope before a forward reaching position seq_len - 1 (transformers'
 * dynamic_frequency_update): grow past the longest seen, or back to the original. */
static setok_status rope_update(setok_llama_cache *c, int64_t seq_len, setok_error *err)
{
    if (c->m->cfg.rope_type != SETOK_LLAMA_ROPE_DYNAMIC)
        return SETOK_OK;
    int64_t original = c->m->cfg.max_position_embeddings, cached = c->rope_seq_len;
    setok_status st = SETOK_OK;
    if (seq_len > cached)
        st = rope_upload(c, seq_len, err);
    if (st == SETOK_OK && seq_len < original && cached > original)
        st = rope_upload(c, original, err);
    return st;
}

void setok_llama_cache_free(setok_llama_cache *c)
{
    if (!c)
        return;
    for (int i = 0; c->k && i < c->m->cfg.num_layers; i++) {
        setok_tensor_free(&c->k[i]);
        setok_tensor_free(&c->v[i]);
    }
    setok_tensor_free(&c->inv_freq);
    setok_tensor_free(&c->positions);
    free(c->k);
    free(c->v);
    free(c);
}

setok_status setok_llama_cache_new(setok_llama_cache **out, const setok_llama *m, int64_t max_ctx,
                                   setok_error *err)
{
    *out = NULL;
    const setok_llama_config *cfg = &m->cfg;
    if (max_ctx < 1 || max_ctx > INT32_MAX)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: cache size %lld must be in [1, %d]",
                          (long long)max_ctx, INT32_MAX);
    size_t layers = cfg->num_layers > 0 ? (size_t)cfg->num_layers : 1;
    setok_llama_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->m = m;
        c->k = calloc(layers, sizeof *c->k);
        c->v = calloc(layers, sizeof *c->v);
    }
    if (!c || !c->k || !c->v) {
        setok_llama_cache_free(c);
        return setok_fail(err, SETOK_ERR_NOMEM, "llama: out of memory");
    }
    int64_t shape[3] = {cfg->num_kv_heads, max_ctx, cfg->head_dim};
    setok_status st = SETOK_OK;
    for (int i = 0; i < cfg->num_layers && st == SETOK_OK; i++) {
        st = setok_tensor_alloc(&c->k[i], m->backend, m->kv_dtype, 3, shape, err);
        if (st == SETOK_OK)
            st = setok_tensor_alloc(&c->v[i], m->backend, m->kv_dtype, 3, shape, err);
    }
    int32_t *host = st == SETOK_OK ? malloc((size_t)max_ctx * sizeof *host) : NULL;
    if (st == SETOK_OK && !host)
        st = setok_fail(err, SETOK_ERR_NOMEM, "llama: out of memory for %lld positions",
                        (long long)max_ctx);
    for (int64_t t = 0; host && t < max_ctx; t++)
        host[t] = (int32_t)t;
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&c->positions, m->backend, SETOK_I32, 1, (int64_t[]){max_ctx},
                                err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&c->positions, host, err);
    free(host);
    if (st == SETOK_OK)
        st = rope_upload(c, 0, err);
    if (st != SETOK_OK) {
        setok_llama_cache_free(c);
        return st;
    }
    c->max_ctx = max_ctx;
    *out = c;
    return SETOK_OK;
}

void setok_llama_cache_reset(setok_llama_cache *c)
{
    c->length = 0;
}

int64_t setok_llama_cache_length(const setok_llama_cache *c)
{
    return c->length;
}

int64_t setok_llama_cache_capacity(const setok_llama_cache *c)
{
    return c->max_ctx;
}

size_t setok_llama_cache_bytes(const setok_llama *m, int64_t max_ctx)
{
    const setok_llama_config *c = &m->cfg;
    return (size_t)2 * (size_t)c->num_layers * (size_t)c->num_kv_heads * (size_t)max_ctx *
           (size_t)c->head_dim * setok_dtype_size(m->kv_dtype);
}

/* Arena bytes of one tensor: its size rounded to the arena's 256-byte
 * alignment, plus the worst-case padding before it. */
static size_t slot(int64_t numel, size_t esize)
{
    size_t bytes = (size_t)numel * esize;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

size_t setok_llama_arena_bytes(const setok_llama *m, int64_t T)
{
    const setok_llama_config *c = &m->cfg;
    size_t e = setok_dtype_size(m->dtype);
    int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    /* logits, the residual stream and its scratch, the final norm */
    size_t fixed = slot(T * V, e) + 3 * slot(T * C, e);
    /* attention: normed x, output; q, k, v; q and k heads before and after rope; merged heads */
    size_t attn = 2 * slot(T * C, e) + 4 * slot(T * QD, e) + 4 * slot(T * KD, e) + slot(T * QD, e);
    /* MLP: normed x, output, gate, up, act */
    size_t mlp = 2 * slot(T * C, e) + 3 * slot(T * I, e);
    return fixed + (attn > mlp ? attn : mlp) + 4096;
}

/* ---------------------------------------------------------------------------
 * layers */

typedef struct dims {
    int64_t T, C, I, NH, NKV, D, pos; /* pos: the first token's position */
} dims;

// x: [T, C] -> y: [T, C] = o_proj(attention(rope(q), cache k, cache v)), q = x Wq^T [T, NH*D],
// k, v = x Wk^T, x Wv^T [T, NKV*D] written to the cache at rows pos .. pos+T-1; query head h
// reads kv head h / (NH / NKV); causal over the pos + T cached positions
static setok_status llama_attention(setok_llama *m, setok_llama_cache *cache, int li,
                                    setok_arena *arena, setok_tensor *y, const setok_tensor *x,
                                    const dims *d, setok_error *err)
{
    const llama_layer *l = &m->layers[li];
    const setok_tensor *k_cache = &cache->k[li], *v_cache = &cache->v[li];
    setok_backend *be = m->backend;
    setok_dtype dt = x->dtype;
    int64_t T = d->T, NH = d->NH, NKV = d->NKV, D = d->D, Tk = d->pos + T;
    float theta = (float)m->cfg.rope_theta; /* unused: inv_freq is given */
    setok_tensor q, k, v, qh, kh, qr, kr, att, merged, view, dst, pos;
    setok_status st = setok_arena_tensor(arena, &q, dt, 2, (int64_t[]){T, NH * D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &k, dt, 2, (int64_t[]){T, NKV * D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &v, dt, 2, (int64_t[]){T, NKV * D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &qh, dt, 4, (int64_t[]){1, NH, T, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &qr, dt, 4, (int64_t[]){1, NH, T, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &kh, dt, 4, (int64_t[]){1, NKV, T, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &kr, dt, 4, (int64_t[]){1, NKV, T, D}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &q, x, &l->q_w, l->q_b.data ? &l->q_b : NULL, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &k, x, &l->k_w, l->k_b.data ? &l->k_b : NULL, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &v, x, &l->v_w, l->v_b.data ? &l->v_b : NULL, err);
    /* [T, H*D] -> [1, H, T, D] */
    if (st == SETOK_OK)
        st = setok_view_reshape(&view, &q, 4, (int64_t[]){1, T, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &qh, &view, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&view, &k, 4, (int64_t[]){1, T, NKV, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &kh, &view, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&pos, &cache->positions, 0, d->pos, T, err);
    if (st == SETOK_OK)
        st = setok_rope(be, &qr, &qh, &pos, &cache->inv_freq, theta, 1.0f, 0, err);
    if (st == SETOK_OK)
        st = setok_rope(be, &kr, &kh, &pos, &cache->inv_freq, theta, 1.0f, 0, err);
    /* cache rows pos .. pos+T-1: k from kr [NKV, T, D], v from v [T, NKV, D] */
    if (st == SETOK_OK)
        st = setok_view_slice(&dst, k_cache, 1, d->pos, T, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&view, &kr, 3, (int64_t[]){NKV, T, D}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &dst, &view, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&dst, v_cache, 1, d->pos, T, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&view, &v, 3, (int64_t[]){T, NKV, D}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&view, &view, (int[]){1, 0, 2}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &dst, &view, err);
    /* the heads are done with q, k, v; att reuses qh. One launch for all heads: k and v are
     * the cache's first Tk rows, [1, NKV, Tk, D] with head stride max_ctx * D, and query head
     * h reads kv head h / (NH / NKV). */
    setok_tensor kc, vc;
    att = qh;
    if (st == SETOK_OK)
        st = setok_view_reshape(&kc, k_cache, 4, (int64_t[]){1, NKV, k_cache->shape[1], D}, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&kc, &kc, 2, 0, Tk, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&vc, v_cache, 4, (int64_t[]){1, NKV, v_cache->shape[1], D}, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&vc, &vc, 2, 0, Tk, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &qr, &kc, &vc, NULL, 0.0f, true, err);
    /* [1, NH, T, D] -> [T, NH*D]; merged reuses q's memory */
    if (st == SETOK_OK)
        st = setok_view_reshape(&merged, &q, 4, (int64_t[]){1, T, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &merged, &att, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &q, &l->o_w, l->o_b.data ? &l->o_b : NULL, err);
    return st;
}

// x: [T, C] -> y: [T, C] = down_proj(silu(gate_proj(x)) * up_proj(x)), gate, up: [I, C],
// down: [C, I]
static setok_status llama_mlp(setok_backend *be, setok_arena *arena, setok_tensor *y,
                              const setok_tensor *x, const llama_layer *l, const dims *d,
                              setok_error *err)
{
    setok_tensor gate, up, a;
    int64_t shape[2] = {d->T, d->I};
    setok_status st = setok_arena_tensor(arena, &gate, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &up, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &gate, x, &l->gate_w, l->gate_b.data ? &l->gate_b : NULL, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &up, x, &l->up_w, l->up_b.data ? &l->up_b : NULL, err);
    if (st == SETOK_OK)
        st = setok_glu(be, SETOK_OP_SWIGLU, &a, &gate, &up, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &a, &l->down_w, l->down_b.data ? &l->down_b : NULL, err);
    return st;
}

// x: [T, C] -> x = r + mlp(post_attention_layernorm(r)), r = x + attn(input_layernorm(x));
// tmp: [T, C] scratch (holds r)
static setok_status llama_decoder_layer(setok_llama *m, setok_llama_cache *cache, int li,
                                        setok_arena *arena, setok_tensor *x, setok_tensor *tmp,
                                        const dims *d, setok_error *err)
{
    const llama_layer *l = &m->layers[li];
    setok_backend *be = m->backend;
    float eps = m->cfg.rms_norm_eps;
    int64_t shape[2] = {d->T, d->C};
    size_t mark = setok_arena_mark(arena);
    setok_tensor xn, o;
    setok_status st = setok_arena_tensor(arena, &xn, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_rmsnorm(be, &xn, x, &l->ln1_w, eps, err);
    if (st == SETOK_OK)
        st = llama_attention(m, cache, li, arena, &o, &xn, d, err);
    if (st == SETOK_OK)
        st = setok_add(be, tmp, x, &o, err);
    setok_arena_reset(arena, mark);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &xn, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, x->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_rmsnorm(be, &xn, tmp, &l->ln2_w, eps, err);
    if (st == SETOK_OK)
        st = llama_mlp(be, arena, &o, &xn, l, d, err);
    if (st == SETOK_OK)
        st = setok_add(be, x, tmp, &o, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_tokens(const setok_llama *m, const setok_llama_cache *c,
                                 const setok_arena *arena, int64_t T, setok_error *err)
{
    if (!c || c->m != m)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: the cache was made for another model");
    if (arena->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: the arena must be on the model's "
                          "backend (%s)", setok_backend_name(m->backend));
    if (T < 1 || T > c->max_ctx - c->length)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: %lld tokens do not fit: the cache "
                          "holds %lld of %lld positions", (long long)T, (long long)c->length,
                          (long long)c->max_ctx);
    return SETOK_OK;
}

/* What a forward returns. */
typedef enum output_kind {
    OUT_LOGITS,      /* logits [T, V] */
    OUT_LAST_LOGITS, /* logits [1, V] of the last position */
    OUT_HIDDEN,      /* the final norm's output [T, C] (LlamaModel's last_hidden_state) */
} output_kind;

// x: [T, C] (the embeddings, overwritten) -> out: [T or 1, V] or [T, C]; tmp: [T, C] scratch
static setok_status llama_forward(setok_llama *m, setok_llama_cache *cache, setok_arena *arena,
                                  setok_tensor *out, setok_tensor *x, setok_tensor *tmp,
                                  output_kind kind, const atomic_bool *cancel, setok_error *err)
{
    bool last_only = kind == OUT_LAST_LOGITS;
    const setok_llama_config *c = &m->cfg;
    dims d = {.T = x->shape[0], .C = c->hidden_size, .I = c->intermediate_size,
              .NH = c->num_heads, .NKV = c->num_kv_heads, .D = c->head_dim, .pos = cache->length};
    setok_status st = rope_update(cache, d.pos + d.T, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        if (cancel && atomic_load(cancel))
            return setok_fail(err, SETOK_ERR_CANCELLED, "llama: cancelled before layer %d of %d",
                              i, c->num_layers);
        st = llama_decoder_layer(m, cache, i, arena, x, tmp, &d, err);
    }
    setok_tensor last = *x, normed = *tmp;
    if (st == SETOK_OK && last_only)
        st = setok_view_slice(&last, x, 0, d.T - 1, 1, err);
    if (st == SETOK_OK && last_only)
        st = setok_view_slice(&normed, tmp, 0, 0, 1, err);
    if (st == SETOK_OK && kind == OUT_HIDDEN)
        st = setok_rmsnorm(m->backend, out, &last, &m->norm_w, c->rms_norm_eps, err);
    else if (st == SETOK_OK)
        st = setok_rmsnorm(m->backend, &normed, &last, &m->norm_w, c->rms_norm_eps, err);
    if (st == SETOK_OK && kind != OUT_HIDDEN)
        st = setok_linear(m->backend, out, &normed, &m->lm_head, NULL, err);
    if (st == SETOK_OK)
        cache->length += d.T;
    return st;
}

/* Allocates the output, x and tmp for T tokens; returns the mark above the output. */
static setok_status forward_begin(setok_llama *m, setok_arena *arena, setok_tensor *out,
                                  setok_tensor *x, setok_tensor *tmp, int64_t T, output_kind kind,
                                  size_t *outputs, setok_error *err)
{
    int64_t C = m->cfg.hidden_size;
    int64_t shape[2] = {kind == OUT_LAST_LOGITS ? 1 : T,
                        kind == OUT_HIDDEN ? C : m->cfg.vocab_size};
    setok_status st = setok_arena_tensor(arena, out, m->dtype, 2, shape, err);
    *outputs = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, x, m->dtype, 2, (int64_t[]){T, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, tmp, m->dtype, 2, (int64_t[]){T, C}, err);
    return st;
}

setok_status setok_llama_embed(setok_llama *m, setok_tensor *embeds, const setok_tensor *ids,
                               setok_error *err)
{
    return setok_get_rows(m->backend, embeds, &m->embed, ids, err);
}

static setok_status forward_embeds(setok_llama *m, setok_llama_cache *cache, setok_arena *arena,
                                   setok_tensor *out, const setok_tensor *embeds,
                                   output_kind kind, const atomic_bool *cancel, setok_error *err)
{
    char buf[96];
    if (!embeds || embeds->ndim != 2 || embeds->shape[1] != m->cfg.hidden_size ||
        embeds->dtype != m->dtype || embeds->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: inputs_embeds must be a [T, %d] %s "
                          "tensor on the model's backend, got %s", m->cfg.hidden_size,
                          setok_dtype_name(m->dtype),
                          embeds ? setok_tensor_describe(embeds, buf, sizeof buf) : "none");
    setok_status st = check_tokens(m, cache, arena, embeds->shape[0], err);
    if (st != SETOK_OK)
        return st;
    size_t start = setok_arena_mark(arena), outputs = start;
    setok_tensor x, tmp;
    st = forward_begin(m, arena, out, &x, &tmp, embeds->shape[0], kind, &outputs, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, &x, embeds, err);
    if (st == SETOK_OK)
        st = llama_forward(m, cache, arena, out, &x, &tmp, kind, cancel, err);
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "llama forward");
    return st;
}

setok_status setok_llama_forward_embeds(setok_llama *m, setok_llama_cache *cache,
                                        setok_arena *arena, setok_tensor *logits,
                                        const setok_tensor *embeds, bool last_only,
                                        const atomic_bool *cancel, setok_error *err)
{
    return forward_embeds(m, cache, arena, logits, embeds, last_only ? OUT_LAST_LOGITS : OUT_LOGITS,
                          cancel, err);
}

setok_status setok_llama_forward_hidden(setok_llama *m, setok_llama_cache *cache,
                                        setok_arena *arena, setok_tensor *hidden,
                                        const setok_tensor *embeds, const atomic_bool *cancel,
                                        setok_error *err)
{
    return forward_embeds(m, cache, arena, hidden, embeds, OUT_HIDDEN, cancel, err);
}

setok_status setok_llama_forward_ids(setok_llama *m, setok_llama_cache *cache,
                                     setok_arena *arena, setok_tensor *logits,
                                     const setok_tensor *ids, bool last_only,
                                     const atomic_bool *cancel, setok_error *err)
{
    char buf[96];
    if (!ids || ids->ndim != 1 || ids->dtype != SETOK_I32 || ids->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "llama: input_ids must be an I32 [T] tensor on "
                          "the model's backend, got %s",
                          ids ? setok_tensor_describe(ids, buf, sizeof buf) : "none");
    setok_status st = check_tokens(m, cache, arena, ids->shape[0], err);
    if (st != SETOK_OK)
        return st;
    size_t start = setok_arena_mark(arena), outputs = start;
    setok_tensor x, tmp;
    output_kind kind = last_only ? OUT_LAST_LOGITS : OUT_LOGITS;
    st = forward_begin(m, arena, logits, &x, &tmp, ids->shape[0], kind, &outputs, err);
    if (st == SETOK_OK)
        st = setok_llama_embed(m, &x, ids, err);
    if (st == SETOK_OK)
        st = llama_forward(m, cache, arena, logits, &x, &tmp, kind, cancel, err);
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "llama forward");
    return st;
}

/* ---------------------------------------------------------------------------
 * test and CLI hook */

setok_status setok_llama_logits_f32(const char *dir, const char *adapter_dir, const int32_t *ids,
                                    int64_t T, float *logits, size_t capacity, setok_error *err)
{
    setok_backend *be = NULL;
    setok_llama *m = NULL;
    setok_llama_cache *cache = NULL;
    setok_arena arena = {0};
    setok_tensor ids_t = {0}, out;
    setok_status st = setok_backend_cpu_create(&be, 0, err);
    if (st == SETOK_OK)
        st = setok_llama_load(&m, dir, adapter_dir, be, SETOK_F32, SETOK_F32, err);
    if (st == SETOK_OK && (T < 1 || (size_t)T * (size_t)m->cfg.vocab_size > capacity))
        st = setok_fail(err, SETOK_ERR_INPUT, "llama: %lld tokens of %d logits do not fit in "
                        "%zu floats", (long long)T, m->cfg.vocab_size, capacity);
    if (st == SETOK_OK)
        st = setok_llama_cache_new(&cache, m, T, err);
    if (st == SETOK_OK)
        st = setok_arena_init(&arena, be, setok_llama_arena_bytes(m, T), err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&ids_t, be, SETOK_I32, 1, (int64_t[]){T}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload(&ids_t, ids, err);
    if (st == SETOK_OK)
        st = setok_llama_forward_ids(m, cache, &arena, &out, &ids_t, false, NULL, err);
    if (st == SETOK_OK)
        st = setok_tensor_download(logits, &out, err);
    setok_tensor_free(&ids_t);
    setok_arena_destroy(&arena);
    setok_llama_cache_free(cache);
    setok_llama_free(m);
    setok_backend_free(be);
    return st;
}
