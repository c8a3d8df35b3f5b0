/* clip-text.c — the CLIP text encoder, mirroring transformers' CLIPTextModel
 * (modeling_clip.py: CLIPTextEmbeddings, CLIPEncoder with a causal mask,
 * final_layer_norm, the EOS-row pooler). The encoder layer is shared with the
 * vision tower (clip-encoder.c). */
#include "setok/models/clip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

#include "clip-encoder.h"

struct setok_clip_text {
    setok_clip_text_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    setok_tensor tok_emb;          /* [vocab, C] */
    setok_tensor pos_emb;          /* [max_positions, C] */
    setok_tensor final_w, final_b; /* final_layer_norm */
    clip_layer *layers;
    setok_dtype matrix;            /* the encoder layers' linear weights */
    setok_weights *weights;        /* kept open: tensors may point into it */
};

/* ---------------------------------------------------------------------------
 * config */

static void config_defaults(setok_clip_text_config *c)
{
    /* transformers' CLIPTextConfig */
    *c = (setok_clip_text_config){.vocab_size = 49408,
                                  .hidden_size = 512,
                                  .intermediate_size = 2048,
                                  .num_layers = 12,
                                  .num_heads = 8,
                                  .max_position_embeddings = 77,
                                  .layer_norm_eps = 1e-5f,
                                  .act = SETOK_OP_QUICK_GELU,
                                  .eos_token_id = 49407};
}

/* Where the text encoder's keys are: at the top or under text_config. */
static setok_status config_prefix(const setok_config *json, const char **prefix, setok_error *err)
{
    const cJSON *root = setok_config_root(json);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *arch = NULL, *type = NULL;
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    setok_status st = setok_config_string_or(json, "model_type", "", &type, err);
    if (st != SETOK_OK)
        return st;
    static const char *const top[] = {"CLIPTextModel", "CLIPTextModelWithProjection",
                                      "clip_text_model"};
    static const char *const nested[] = {"CLIPModel", "clip"};
    for (size_t i = 0; i < 3; i++)
        if ((arch && !strcmp(arch, top[i])) || !strcmp(type, top[i])) {
            *prefix = "";
            return SETOK_OK;
        }
    for (size_t i = 0; i < 2; i++)
        if ((arch && !strcmp(arch, nested[i])) || !strcmp(type, nested[i])) {
            *prefix = "text_config.";
            return SETOK_OK;
        }
    return setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a CLIP text model",
                      setok_config_path(json), arch ? arch : "no architectures entry", type);
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_clip_text_config *c = out;
    const char *path = setok_config_path(json), *p = "", *act = NULL;
    char key[128];
    config_defaults(c);
    setok_status st = config_prefix(json, &p, err);
    struct {
        const char *name;
        int lo, hi, *v;
    } ints[] = {
        {"vocab_size", 1, 1 << 24, &c->vocab_size},
        {"hidden_size", 1, 1 << 16, &c->hidden_size},
        {"intermediate_size", 1, 1 << 20, &c->intermediate_size},
        {"num_hidden_layers", 0, 1024, &c->num_layers},
        {"num_attention_heads", 1, 1 << 12, &c->num_heads},
        {"max_position_embeddings", 1, 1 << 20, &c->max_position_embeddings},
        {"eos_token_id", 0, 1 << 24, &c->eos_token_id},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == SETOK_OK; i++) {
        snprintf(key, sizeof key, "%s%s", p, ints[i].name);
        st = setok_config_int_in(json, key, false, ints[i].lo, ints[i].hi, ints[i].v, err);
    }
    double eps = c->layer_norm_eps;
    snprintf(key, sizeof key, "%slayer_norm_eps", p);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, key, eps, &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be in (0, 1), got %g", path, key, eps);
    c->layer_norm_eps = (float)eps;
    snprintf(key, sizeof key, "%shidden_act", p);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, "quick_gelu", &act, err);
    if (st == SETOK_OK) {
        if (!strcmp(act, "quick_gelu"))
            c->act = SETOK_OP_QUICK_GELU;
        else if (!strcmp(act, "gelu"))
            c->act = SETOK_OP_GELU;
        else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new"))
            c->act = SETOK_OP_GELU_TANH;
        else
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s '%s' is not one of quick_gelu, "
                            "gelu, gelu_pytorch_tanh, gelu_new", path, key, act);
    }
    if (st == SETOK_OK && c->hidden_size % c->num_heads)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: hidden_size %d is not a multiple of "
                        "num_attention_heads %d", path, c->hidden_size, c->num_heads);
    return st;
}

/* ---------------------------------------------------------------------------
 * weights */

void setok_clip_text_free(setok_clip_text *m)
{
    if (!m)
        return;
    if (m->layers)
        for (int i = 0; i < m->cfg.num_layers; i++)
            clip_layer_free(&m->layers[i]);
    setok_tensor *all[] = {&m->tok_emb, &m->pos_emb, &m->final_w, &m->final_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
    setok_weights_close(m->weights);
    free(m->layers);
    free(m);
}

static setok_status load_weights(setok_clip_text *m, const setok_weights *w, setok_error *err)
{
    static const char *const prefixes[] = {"text_model.", ""};
    const setok_clip_text_config *c = &m->cfg;
    int64_t C = c->hidden_size;
    char prefix[64];
    setok_loader ld = {.w = w, .backend = m->backend, .dtype = m->dtype, .matrix = m->matrix,
                       .in_place = true};
    /* the checkpoint's prefix, found from the token embedding */
    setok_status st = setok_loader_find_prefix(&ld, prefixes, 2,
                                               "embeddings.token_embedding.weight", 2,
                                               (int64_t[]){c->vocab_size, C}, prefix,
                                               sizeof prefix, err);
    ld.prefix = prefix;
    const setok_weight table[] = {
        {&m->tok_emb, "embeddings.token_embedding.weight", 2, {c->vocab_size, C}, 0},
        {&m->pos_emb, "embeddings.position_embedding.weight", 2, {c->max_position_embeddings, C},
         0},
        {&m->final_w, "final_layer_norm.weight", 1, {C}, 0},
        {&m->final_b, "final_layer_norm.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(&ld, "", table, sizeof table / sizeof *table, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        char layer[48];
        snprintf(layer, sizeof layer, "encoder.layers.%d", i);
        st = clip_layer_load(&m->layers[i], &ld, layer, C, c->intermediate_size, err);
    }
    return st;
}

setok_status setok_clip_text_load(setok_clip_text **out, const char *dir, setok_backend *backend,
                                  setok_dtype dtype, setok_dtype matrix, setok_error *err)
{
    *out = NULL;
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: dtype must be f32, f16 or bf16");
    setok_clip_text *m = calloc(1, sizeof *m);
    if (!m)
        return setok_fail(err, SETOK_ERR_NOMEM, "clip_text: out of memory");
    m->backend = backend;
    m->dtype = dtype;
    m->matrix = matrix;
    setok_weights *w = NULL;
    setok_status st = setok_config_read(dir, config_parse, &m->cfg, err);
    if (st == SETOK_OK) {
        m->layers = calloc(m->cfg.num_layers > 0 ? (size_t)m->cfg.num_layers : 1,
                           sizeof *m->layers);
        if (!m->layers)
            st = setok_fail(err, SETOK_ERR_NOMEM, "clip_text: out of memory");
    }
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK)
        st = load_weights(m, w, err);
    m->weights = w;
    if (st != SETOK_OK) {
        setok_clip_text_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

const setok_clip_text_config *setok_clip_text_get_config(const setok_clip_text *m)
{
    return &m->cfg;
}

setok_dtype setok_clip_text_dtype(const setok_clip_text *m)
{
    return m->dtype;
}

size_t setok_clip_text_arena_bytes(const setok_clip_text *m, int64_t batch, int64_t tokens)
{
    const setok_clip_text_config *c = &m->cfg;
    size_t e = setok_dtype_size(m->dtype);
    clip_dims d = {.B = batch, .T = tokens, .C = c->hidden_size, .I = c->intermediate_size,
                   .NH = c->num_heads};
    int64_t btc = batch * tokens * c->hidden_size;
    /* outputs, the residual stream, its scratch; the position ids */
    size_t fixed = 4 * clip_arena_slot(btc, e) + clip_arena_slot(batch * c->hidden_size, e) +
                   clip_arena_slot(tokens, 4);
    return fixed + clip_layer_arena_bytes(&d, e) + 4096;
}

/* ---------------------------------------------------------------------------
 * forward */

// ids: [B, T] -> h: [B, T, C] = token_embedding[ids] + position_embedding[0..T)
static setok_status embeddings(setok_clip_text *m, setok_tensor *h, setok_tensor *tmp,
                               const setok_tensor *ids, setok_error *err)
{
    int64_t B = ids->shape[0], T = ids->shape[1];
    setok_tensor flat_ids, flat_h, pos;
    setok_status st = setok_view_reshape(&flat_ids, ids, 1, (int64_t[]){B * T}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&flat_h, tmp, 2, (int64_t[]){B * T, m->cfg.hidden_size}, err);
    if (st == SETOK_OK)
        st = setok_get_rows(m->backend, &flat_h, &m->tok_emb, &flat_ids, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&pos, &m->pos_emb, 0, 0, T, err);
    if (st == SETOK_OK)
        st = setok_add(m->backend, h, tmp, &pos, err);
    return st;
}

// h: [B, T, C], ids: [B, T] -> pooled: [B, C] = h[b, eos position of row b]
static setok_status pool(setok_clip_text *m, setok_tensor *pooled, const setok_tensor *h,
                         const setok_tensor *ids, setok_error *err)
{
    int64_t B = ids->shape[0], T = ids->shape[1];
    int32_t *host = malloc((size_t)(B * T) * sizeof *host);
    if (!host)
        return setok_fail(err, SETOK_ERR_NOMEM, "clip_text: out of memory");
    setok_status st = setok_tensor_download(host, ids, err);
    for (int64_t b = 0; b < B && st == SETOK_OK; b++) {
        const int32_t *row = host + b * T;
        int64_t at = 0;
        if (m->cfg.eos_token_id == 2) {
            /* legacy configs: the highest id is the EOS token */
            for (int64_t t = 1; t < T; t++)
                if (row[t] > row[at])
                    at = t;
        } else {
            while (at < T - 1 && row[at] != m->cfg.eos_token_id)
                at++;
            /* HF's argmax over (ids == eos) gives 0 when there is none */
            if (row[at] != m->cfg.eos_token_id)
                at = 0;
        }
        setok_tensor src, dst;
        st = setok_view_slice(&src, h, 0, b, 1, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&src, &src, 1, at, 1, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&src, &src, 2, (int64_t[]){1, m->cfg.hidden_size}, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&dst, pooled, 0, b, 1, err);
        if (st == SETOK_OK)
            st = setok_copy(m->backend, &dst, &src, err);
    }
    free(host);
    return st;
}

setok_status setok_clip_text_forward(setok_clip_text *m, setok_arena *arena,
                                     setok_tensor *last_hidden_state, setok_tensor *pooler_output,
                                     const setok_tensor *input_ids, int hidden_layer,
                                     const atomic_bool *cancel, setok_error *err)
{
    const setok_clip_text_config *c = &m->cfg;
    setok_backend *be = m->backend;
    char buf[96];
    if (!last_hidden_state && !pooler_output)
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: no output requested");
    if (!input_ids || input_ids->ndim != 2 || input_ids->dtype != SETOK_I32 ||
        input_ids->backend != be || !setok_tensor_is_contiguous(input_ids))
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: input_ids must be a contiguous "
                          "[B, T] i32 tensor on the model's backend, got %s",
                          input_ids ? setok_tensor_describe(input_ids, buf, sizeof buf) : "none");
    int64_t B = input_ids->shape[0], T = input_ids->shape[1];
    if (B < 1 || T < 1 || T > c->max_position_embeddings)
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: %lld tokens, the model takes 1 to %d",
                          (long long)T, c->max_position_embeddings);
    if (hidden_layer < 0 || hidden_layer >= c->num_layers + 1)
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: hidden_layer %d is outside [0, %d]",
                          hidden_layer, c->num_layers);
    if (hidden_layer > 0 && pooler_output)
        return setok_fail(err, SETOK_ERR_INPUT, "clip_text: pooler_output comes from the last "
                          "layer (hidden_layer 0)");
    clip_dims d = {.B = B, .T = T, .C = c->hidden_size, .I = c->intermediate_size,
                   .NH = c->num_heads};
    int64_t shape[3] = {B, T, c->hidden_size};
    size_t start = setok_arena_mark(arena);
    setok_tensor h, tmp, last;
    setok_status st = setok_arena_tensor(arena, &last, m->dtype, 3, shape, err);
    if (st == SETOK_OK && pooler_output)
        st = setok_arena_tensor(arena, pooler_output, m->dtype, 2,
                                (int64_t[]){B, c->hidden_size}, err);
    size_t outputs = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h, m->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tmp, m->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = embeddings(m, &h, &tmp, input_ids, err);
    int depth = c->num_layers - hidden_layer;
    for (int i = 0; i < depth && st == SETOK_OK; i++) {
        if (cancel && atomic_load(cancel)) {
            st = setok_fail(err, SETOK_ERR_CANCELLED, "clip_text: cancelled before layer %d of %d",
                            i, c->num_layers);
            break;
        }
        st = clip_layer_forward(be, arena, &h, &tmp, &m->layers[i], &d, c->act, c->layer_norm_eps,
                                true, err);
    }
    if (st == SETOK_OK && hidden_layer == 0)
        st = setok_layernorm(be, &last, &h, &m->final_w, &m->final_b, c->layer_norm_eps, err);
    else if (st == SETOK_OK)
        st = setok_copy(be, &last, &h, err);
    if (st == SETOK_OK && pooler_output)
        st = pool(m, pooler_output, &last, input_ids, err);
    if (st == SETOK_OK && last_hidden_state)
        *last_hidden_state = last;
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "clip_text forward");
    return st;
}
