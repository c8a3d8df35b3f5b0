/* chat.c — the chat pipeline: LLaVA-1.5 (vision tower + multi_modal_projector
 * + LLaMA) with streamed, sampled answers. See chat.h for the data flow.
 * Activations come from one arena; the image embeddings are kept on the host
 * in the model's dtype and spliced into the prompt's embedding rows. */
#include "setok/chat.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/config.h"
#include "setok/models/llama.h"
#include "setok/models/vit.h"
#include "setok/ops.h"
#include "setok/tokenizer.h"
#include "setok/weights.h"

/* The Vicuna v1 template of LLaVA-1.5 (llava conv_vicuna_v1): the one place it is spelled. */
static const char CHAT_SYSTEM[] =
    "A chat between a curious human and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the human's questions.";
static const char CHAT_USER[] = "USER: ";
static const char CHAT_ASSISTANT[] = " ASSISTANT:";

struct setok_chat {
    char dir[PATH_MAX];
    setok_backend *backend;
    setok_backend *cpu;       /* clustering; the same as backend on the CPU */
    setok_vit *vit;
    setok_llama *llm;
    setok_text_tokenizer *tok;
    setok_tensor w1, b1, w2, b2; /* projector; w2.data NULL: linear_1 only */
    setok_op act;
    int32_t image_token;
    int vocab;
    setok_dtype dtype;
    setok_arena arena;
    setok_sampler sampler;
    float *logits;            /* [vocab] host f32 */
    void *staging;            /* model-dtype host bytes */
    size_t staging_bytes;
    unsigned char *image_embeds; /* [n_image, hidden] model dtype; NULL: no image */
    int n_image;
    setok_chat_timings image_timings;
    int turns;                /* user turns asked since start */
    int32_t pending;          /* the last answer's final id, not yet in the cache; -1: none */
    int32_t *history;         /* every id of the conversation, for the repetition penalty */
    size_t n_history, history_cap;
    setok_rng rng;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static setok_status grow(void **buf, size_t *cap, size_t bytes, setok_error *err)
{
    if (*cap >= bytes)
        return SETOK_OK;
    void *p = realloc(*buf, bytes ? bytes : 1);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory (%zu bytes)", bytes);
    *buf = p;
    *cap = bytes;
    return SETOK_OK;
}

static setok_status ensure_arena(setok_chat *c, size_t need, setok_error *err)
{
    if (c->arena.base && c->arena.capacity >= need)
        return SETOK_OK;
    if (c->arena.base)
        setok_arena_destroy(&c->arena);
    memset(&c->arena, 0, sizeof c->arena);
    return setok_arena_init(&c->arena, c->backend, need, err);
}

static setok_status cancelled(const setok_chat_options *o, setok_error *err)
{
    if (o->cancel && atomic_load(o->cancel))
        return setok_fail(err, SETOK_ERR_CANCELLED, "chat: cancelled");
    return SETOK_OK;
}

void setok_chat_options_default(setok_chat_options *o)
{
    memset(o, 0, sizeof *o);
    setok_sampling_params_default(&o->sampling);
    o->image_mode = SETOK_CHAT_IMAGE_PATCHES;
    o->cluster = setok_cluster_params_default();
}

void setok_chat_result_free(setok_chat_result *r)
{
    free(r->text);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

// ----------------------------------------------------------------------------
// loading

static setok_status act_from_name(const char *name, setok_op *op, const char *path,
                                  setok_error *err)
{
    if (!strcmp(name, "gelu"))
        *op = SETOK_OP_GELU;
    else if (!strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_new") ||
             !strcmp(name, "gelu_fast"))
        *op = SETOK_OP_GELU_TANH;
    else if (!strcmp(name, "quick_gelu"))
        *op = SETOK_OP_QUICK_GELU;
    else if (!strcmp(name, "silu"))
        *op = SETOK_OP_SILU;
    else
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: projector_hidden_act '%s' is not "
                          "supported (gelu, gelu_pytorch_tanh, quick_gelu, silu)", path, name);
    return SETOK_OK;
}

static setok_status load_config(setok_chat *c, setok_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/config.json", c->dir) >= (int)sizeof path)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: model path too long");
    setok_config *cfg = NULL;
    setok_status st = setok_config_load(&cfg, path, err);
    if (st != SETOK_OK)
        return st;
    int64_t image_token = -1;
    const char *act = NULL;
    if (setok_config_has(cfg, "image_token_index"))
        st = setok_config_int(cfg, "image_token_index", &image_token, err);
    else
        st = setok_config_int_or(cfg, "image_token_id", 32000, &image_token, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "projector_hidden_act", "gelu", &act, err);
    if (st == SETOK_OK)
        st = act_from_name(act, &c->act, path, err);
    if (st == SETOK_OK && (image_token < 0 || image_token > INT32_MAX))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %lld is out of range",
                        path, (long long)image_token);
    c->image_token = (int32_t)image_token;
    setok_config_free(cfg);
    return st;
}

static setok_status load_projector(setok_chat *c, setok_error *err)
{
    setok_weights *w = NULL;
    setok_status st = setok_weights_open(&w, c->dir, err);
    if (st != SETOK_OK)
        return st;
    int dv = setok_vit_get_config(c->vit)->hidden_size;
    int dt = setok_llama_get_config(c->llm)->hidden_size;
    static const char *const w1n[] = {"multi_modal_projector.linear_1.weight",
                                      "model.multi_modal_projector.linear_1.weight"};
    static const char *const b1n[] = {"multi_modal_projector.linear_1.bias",
                                      "model.multi_modal_projector.linear_1.bias"};
    static const char *const w2n[] = {"multi_modal_projector.linear_2.weight",
                                      "model.multi_modal_projector.linear_2.weight"};
    static const char *const b2n[] = {"multi_modal_projector.linear_2.bias",
                                      "model.multi_modal_projector.linear_2.bias"};
    const setok_st_tensor *t1 = NULL, *t2 = setok_weights_find_any(w, w2n, 2), *t = NULL;
    // mlp2x_gelu: linear_1 [hidden, dv], linear_2 [hidden, hidden]; linear alone: [hidden, dv]
    st = setok_weights_require(w, w1n, 2, 2, (int64_t[]){dt, dv}, &t1, err);
    if (st == SETOK_OK)
        st = setok_weights_load(&c->w1, t1, c->backend, c->dtype, err);
    if (st == SETOK_OK && (t = setok_weights_find_any(w, b1n, 2))) {
        st = setok_weights_require(w, b1n, 2, 1, (int64_t[]){dt}, &t, err);
        if (st == SETOK_OK)
            st = setok_weights_load(&c->b1, t, c->backend, c->dtype, err);
    }
    if (st == SETOK_OK && t2) {
        st = setok_weights_require(w, w2n, 2, 2, (int64_t[]){dt, dt}, &t2, err);
        if (st == SETOK_OK)
            st = setok_weights_load(&c->w2, t2, c->backend, c->dtype, err);
        if (st == SETOK_OK && (t = setok_weights_find_any(w, b2n, 2))) {
            st = setok_weights_require(w, b2n, 2, 1, (int64_t[]){dt}, &t, err);
            if (st == SETOK_OK)
                st = setok_weights_load(&c->b2, t, c->backend, c->dtype, err);
        }
    }
    setok_weights_close(w);
    return st;
}

setok_status setok_chat_open(setok_chat **out, const char *dir, const char *device, int threads,
                             int max_context, setok_error *err)
{
    return setok_chat_open_with_adapter(out, dir, NULL, device, threads, max_context, err);
}

setok_status setok_chat_open_with_adapter(setok_chat **out, const char *dir,
                                          const char *adapter_dir, const char *device,
                                          int threads, int max_context, setok_error *err)
{
    *out = NULL;
    setok_chat *c = calloc(1, sizeof *c);
    if (!c)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    setok_status st = SETOK_OK;
    if (snprintf(c->dir, sizeof c->dir, "%s", dir) >= (int)sizeof c->dir)
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: model path too long");
    if (st == SETOK_OK)
        st = load_config(c, err);
    if (st == SETOK_OK)
        st = setok_backend_create_by_name(&c->backend, device, threads, err);
    if (st == SETOK_OK && !setok_backend_is_host(c->backend))
        st = setok_backend_cpu_create(&c->cpu, threads, err);
    if (st == SETOK_OK && !c->cpu)
        c->cpu = c->backend;
    c->dtype = c->backend && !setok_backend_is_host(c->backend) ? SETOK_F16 : SETOK_F32;
    if (st == SETOK_OK)
        st = setok_text_tokenizer_load(&c->tok, dir, err);
    if (st == SETOK_OK)
        st = setok_vit_load(&c->vit, dir, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = setok_llama_load_with_lora(&c->llm, dir, adapter_dir, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = load_projector(c, err);
    if (st == SETOK_OK) {
        const setok_llama_config *lc = setok_llama_get_config(c->llm);
        c->vocab = lc->vocab_size;
        int64_t ctx = max_context > 0 ? max_context : 4096;
        if (lc->max_position_embeddings > 0 && ctx > lc->max_position_embeddings)
            ctx = lc->max_position_embeddings;
        if (c->image_token >= setok_text_tokenizer_vocab_size(c->tok))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %d is not in the "
                            "tokenizer", dir, c->image_token);
        if (st == SETOK_OK)
            st = setok_llama_cache_init(c->llm, ctx, err);
    }
    if (st == SETOK_OK)
        st = setok_sampler_init(&c->sampler, c->vocab, err);
    if (st == SETOK_OK && !(c->logits = malloc((size_t)c->vocab * sizeof *c->logits)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st != SETOK_OK) {
        setok_chat_free(c);
        return st;
    }
    c->pending = -1;
    setok_rng_seed(&c->rng, 0);
    *out = c;
    return SETOK_OK;
}

void setok_chat_free(setok_chat *c)
{
    if (!c)
        return;
    setok_tensor *ws[] = {&c->w1, &c->b1, &c->w2, &c->b2};
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
        if (ws[i]->data)
            setok_tensor_free(ws[i]);
    if (c->arena.base)
        setok_arena_destroy(&c->arena);
    setok_llama_free(c->llm);
    setok_vit_free(c->vit);
    setok_text_tokenizer_free(c->tok);
    setok_sampler_free(&c->sampler);
    if (c->cpu && c->cpu != c->backend)
        setok_backend_free(c->cpu);
    setok_backend_free(c->backend);
    free(c->logits);
    free(c->staging);
    free(c->image_embeds);
    free(c->history);
    free(c);
}

// ----------------------------------------------------------------------------
// image -> projected embeddings

static setok_status upload_host_f32(setok_chat *c, setok_tensor *t, const float *host,
                                    size_t n, setok_error *err)
{
    setok_status st = grow(&c->staging, &c->staging_bytes, n * setok_dtype_size(t->dtype), err);
    if (st != SETOK_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        setok_store_f32(c->staging, t->dtype, (int64_t)i, host[i]);
    return setok_tensor_upload(t, c->staging, err);
}

/* features [n, dv] (on the backend) -> c->image_embeds [n, hidden] on the host. */
static setok_status project(setok_chat *c, const setok_tensor *x, int64_t n, setok_error *err)
{
    int64_t dt = setok_llama_get_config(c->llm)->hidden_size;
    setok_tensor h1, g, y;
    const int64_t shape[2] = {n, dt};
    setok_status st = setok_arena_tensor(&c->arena, &h1, c->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_linear(c->backend, &h1, x, &c->w1, c->b1.data ? &c->b1 : NULL, err);
    y = h1;
    if (st == SETOK_OK && c->w2.data) {
        st = setok_arena_tensor(&c->arena, &g, c->dtype, 2, shape, err);
        if (st == SETOK_OK)
            st = setok_unary(c->backend, c->act, &g, &h1, err);
        if (st == SETOK_OK)
            st = setok_arena_tensor(&c->arena, &y, c->dtype, 2, shape, err);
        if (st == SETOK_OK)
            st = setok_linear(c->backend, &y, &g, &c->w2, c->b2.data ? &c->b2 : NULL, err);
    }
    if (st == SETOK_OK)
        st = setok_backend_synchronize(c->backend, err);
    size_t bytes = setok_tensor_nbytes(&y);
    unsigned char *host = NULL;
    if (st == SETOK_OK && !(host = malloc(bytes ? bytes : 1)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download(host, &y, err);
    if (st != SETOK_OK) {
        free(host);
        return st;
    }
    free(c->image_embeds);
    c->image_embeds = host;
    c->n_image = (int)n;
    return SETOK_OK;
}

static setok_status encode_image(setok_chat *c, const setok_image *image,
                                 const setok_chat_options *o, setok_error *err)
{
    double t0 = now_ms();
    const setok_vit_config *vc = setok_vit_get_config(c->vit);
    const setok_vit_preprocessor *pp = setok_vit_get_preprocessor(c->vit);
    int w = 0, h = 0;
    setok_vit_preprocess_size(pp, image->width, image->height, &w, &h);
    int64_t gh = 0, gw = 0;
    bool drop_cls = vc->drop_cls && setok_vit_has_cls(c->vit);
    int64_t n = setok_vit_num_tokens(c->vit, h, w, drop_cls, &gh, &gw);
    if (n <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: a %d x %d model input is smaller than one "
                          "%d-pixel patch", w, h, vc->patch_size);
    int64_t dv = vc->hidden_size, dt = setok_llama_get_config(c->llm)->hidden_size;
    size_t el = setok_dtype_size(c->dtype), n_px = (size_t)3 * (size_t)w * (size_t)h;
    size_t need = setok_vit_arena_bytes(c->vit, 1, h, w) + n_px * el +
                  (size_t)n * (size_t)(dv + 3 * dt) * el + 16 * 4096;
    float *pixels = malloc(n_px * sizeof *pixels);
    float *host = NULL;
    setok_status st = pixels ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK)
        st = setok_vit_preprocess(pp, pixels, n_px, image, err);
    if (st == SETOK_OK)
        st = ensure_arena(c, need, err);
    setok_tensor px, feat, x;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = setok_arena_tensor(&c->arena, &px, c->dtype, 4, (int64_t[]){1, 3, h, w}, err);
    }
    if (st == SETOK_OK)
        st = upload_host_f32(c, &px, pixels, n_px, err);
    if (st == SETOK_OK)
        st = setok_vit_forward(c->vit, &c->arena, &feat, NULL, &px, vc->feature_layer, drop_cls,
                               o->cancel, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&x, &feat, 2, (int64_t[]){n, dv}, err);
    double t1 = now_ms();
    c->image_timings.encode_ms = t1 - t0;

    if (st == SETOK_OK && o->image_mode == SETOK_CHAT_IMAGE_SETOK) {
        // cluster the patch features on the host; a kept CLS row is not a patch
        int64_t skip = n - gh * gw;
        setok_clusters cl = {0};
        size_t bytes = (size_t)2 * (size_t)n * (size_t)dv * sizeof(float); // + the means
        st = setok_backend_synchronize(c->backend, err);
        if (st == SETOK_OK && !(host = malloc(bytes)))
            st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
        if (st == SETOK_OK)
            st = grow(&c->staging, &c->staging_bytes, (size_t)n * (size_t)dv * el, err);
        if (st == SETOK_OK)
            st = setok_tensor_download(c->staging, &x, err);
        if (st == SETOK_OK)
            for (int64_t i = 0; i < n * dv; i++)
                host[i] = setok_load_f32(c->staging, c->dtype, i);
        // a grid smaller than the neighbour count (tiny towers) uses every patch
        setok_cluster_params cp = o->cluster;
        cp.k = cp.k > gh * gw ? (int)(gh * gw) : cp.k;
        cp.fixed_k = cp.fixed_k > gh * gw ? (int)(gh * gw) : cp.fixed_k;
        if (st == SETOK_OK)
            st = setok_cluster(&cl, c->cpu, host + skip * dv, (int)gh, (int)gw, (int)dv, &cp,
                               true, err);
        int64_t k = st == SETOK_OK ? cl.n_tokens : 0;
        if (st == SETOK_OK)
            st = setok_tokens_average(host + n * dv, host + skip * dv, (int)dv, &cl, err);
        setok_clusters_free(&cl);
        if (st == SETOK_OK)
            st = setok_arena_tensor(&c->arena, &x, c->dtype, 2, (int64_t[]){k, dv}, err);
        if (st == SETOK_OK)
            st = upload_host_f32(c, &x, host + n * dv, (size_t)(k * dv), err);
        n = k;
    }
    double t2 = now_ms();
    c->image_timings.cluster_ms = o->image_mode == SETOK_CHAT_IMAGE_SETOK ? t2 - t1 : 0.0;
    if (st == SETOK_OK)
        st = project(c, &x, n, err);
    c->image_timings.project_ms = now_ms() - t2;
    free(pixels);
    free(host);
    return st;
}

setok_status setok_chat_start(setok_chat *c, const setok_image *image,
                              const setok_chat_options *o, setok_error *err)
{
    setok_llama_reset(c->llm);
    c->turns = 0;
    c->pending = -1;
    c->n_history = 0;
    free(c->image_embeds);
    c->image_embeds = NULL;
    c->n_image = 0;
    memset(&c->image_timings, 0, sizeof c->image_timings);
    setok_rng_seed(&c->rng, o->sampling.seed);
    if (!image)
        return SETOK_OK;
    setok_status st = encode_image(c, image, o, err);
    if (st != SETOK_OK) {
        free(c->image_embeds);
        c->image_embeds = NULL;
        c->n_image = 0;
    }
    return st;
}

// ----------------------------------------------------------------------------
// one turn: prompt -> prefill -> decode

static setok_status push_history(setok_chat *c, const int32_t *ids, size_t n, setok_error *err)
{
    size_t cap = c->history_cap * sizeof *c->history;
    size_t need = (c->n_history + n) * sizeof *c->history;
    if (need > cap) {
        size_t want = need * 2;
        setok_status st = grow((void **)&c->history, &cap, want, err);
        if (st != SETOK_OK)
            return st;
        c->history_cap = cap / sizeof *c->history;
    }
    memcpy(c->history + c->n_history, ids, n * sizeof *ids);
    c->n_history += n;
    return SETOK_OK;
}

/* This turn's prompt ids, the image token expanded to n_image positions. */
static setok_status build_prompt(setok_chat *c, const char *question, int32_t **out, size_t *n_out,
                                 setok_error *err)
{
    bool first = c->turns == 0, image = first && c->image_embeds;
    const char *image_str = image ? setok_text_tokenizer_id_to_token(c->tok, c->image_token) : "";
    if (!image_str)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: the tokenizer has no id %d for the image "
                          "token", c->image_token);
    size_t len = strlen(CHAT_SYSTEM) + strlen(CHAT_USER) + strlen(image_str) + strlen(question) +
                 strlen(CHAT_ASSISTANT) + 4;
    char *text = malloc(len);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (first)
        snprintf(text, len, "%s %s%s%s%s%s", CHAT_SYSTEM, CHAT_USER, image_str, image ? "\n" : "",
                 question, CHAT_ASSISTANT);
    else
        snprintf(text, len, "%s%s%s", CHAT_USER, question, CHAT_ASSISTANT);
    int32_t *ids = NULL;
    size_t n = 0;
    setok_status st = setok_text_tokenizer_encode(c->tok, text, strlen(text), first, &ids, &n, err);
    free(text);
    if (st != SETOK_OK)
        return st;
    size_t n_img = 0;
    for (size_t i = 0; i < n; i++)
        n_img += ids[i] == c->image_token;
    if (n_img != (image ? 1u : 0u)) {
        setok_text_tokenizer_buffer_free(ids);
        return setok_fail(err, SETOK_ERR_INPUT, "chat: the prompt has %zu image tokens, expected "
                          "%d (the question may not contain '%s')", n_img, image ? 1 : 0,
                          setok_text_tokenizer_id_to_token(c->tok, c->image_token));
    }
    // a follow-up closes the previous answer: its unfed last token, then "</s>"
    int32_t eos = setok_text_tokenizer_eos_id(c->tok);
    size_t pre = first ? 0 : (size_t)(c->pending >= 0 && c->pending != eos) + (eos >= 0);
    size_t total = pre + n + (image ? (size_t)c->n_image - 1 : 0);
    int32_t *x = malloc((total ? total : 1) * sizeof *x);
    if (!x) {
        setok_text_tokenizer_buffer_free(ids);
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    }
    size_t j = 0;
    if (!first && c->pending >= 0 && c->pending != eos)
        x[j++] = c->pending;
    if (!first && eos >= 0)
        x[j++] = eos;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == c->image_token)
            for (int k = 0; k < c->n_image; k++)
                x[j++] = c->image_token;
        else
            x[j++] = ids[i];
    }
    setok_text_tokenizer_buffer_free(ids);
    *out = x;
    *n_out = j;
    return SETOK_OK;
}

static setok_status read_logits(setok_chat *c, const setok_tensor *logits, setok_error *err)
{
    setok_status st = setok_backend_synchronize(c->backend, err);
    if (st == SETOK_OK)
        st = grow(&c->staging, &c->staging_bytes, setok_tensor_nbytes(logits), err);
    if (st == SETOK_OK)
        st = setok_tensor_download(c->staging, logits, err);
    if (st == SETOK_OK)
        for (int i = 0; i < c->vocab; i++)
            c->logits[i] = setok_load_f32(c->staging, logits->dtype, i);
    return st;
}

/* Prefills ids [n], the image rows spliced in; the last position's logits into c->logits. */
static setok_status prefill(setok_chat *c, const int32_t *ids, size_t n,
                            const setok_chat_options *o, setok_error *err)
{
    int64_t dt = setok_llama_get_config(c->llm)->hidden_size, T = (int64_t)n;
    size_t el = setok_dtype_size(c->dtype), row = (size_t)dt * el;
    size_t need = setok_llama_arena_bytes(c->llm, T) + n * (sizeof(int32_t) + row) + 8 * 4096;
    setok_status st = ensure_arena(c, need, err);
    setok_tensor tids, emb, logits;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = setok_arena_tensor(&c->arena, &tids, SETOK_I32, 1, &T, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload(&tids, ids, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(&c->arena, &emb, c->dtype, 2, (int64_t[]){T, dt}, err);
    if (st == SETOK_OK)
        st = setok_llama_embed(c->llm, &emb, &tids, err);
    bool splice = false;
    for (size_t i = 0; i < n && c->image_embeds; i++)
        splice |= ids[i] == c->image_token;
    if (st == SETOK_OK && splice) {
        // the model's masked_scatter: image rows, in order, into the image token positions
        st = setok_backend_synchronize(c->backend, err);
        if (st == SETOK_OK)
            st = grow(&c->staging, &c->staging_bytes, n * row, err);
        if (st == SETOK_OK)
            st = setok_tensor_download(c->staging, &emb, err);
        int k = 0;
        for (size_t i = 0; st == SETOK_OK && i < n; i++)
            if (ids[i] == c->image_token && k < c->n_image)
                memcpy((unsigned char *)c->staging + i * row, c->image_embeds + (size_t)k++ * row,
                       row);
        if (st == SETOK_OK)
            st = setok_tensor_upload(&emb, c->staging, err);
    }
    if (st == SETOK_OK)
        st = setok_llama_forward_embeds(c->llm, &c->arena, &logits, &emb, true, o->cancel, err);
    if (st == SETOK_OK)
        st = read_logits(c, &logits, err);
    return st;
}

static setok_status decode_step(setok_chat *c, int32_t id, const setok_chat_options *o,
                                setok_error *err)
{
    size_t need = setok_llama_arena_bytes(c->llm, 1) + 2 * 4096;
    setok_status st = ensure_arena(c, need, err);
    setok_tensor tid, logits;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = setok_arena_tensor(&c->arena, &tid, SETOK_I32, 1, (int64_t[]){1}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload(&tid, &id, err);
    if (st == SETOK_OK)
        st = setok_llama_forward_ids(c->llm, &c->arena, &logits, &tid, true, o->cancel, err);
    if (st == SETOK_OK)
        st = read_logits(c, &logits, err);
    return st;
}

/* The answer so far and how much of it went to the callback; text that could
 * still become a stop string is held back. */
typedef struct answer {
    char *text;
    size_t len, cap, sent;
} answer;

static setok_status answer_append(answer *a, const char *s, setok_error *err)
{
    size_t n = strlen(s);
    setok_status st = grow((void **)&a->text, &a->cap, a->len + n + 1, err);
    if (st != SETOK_OK)
        return st;
    memcpy(a->text + a->len, s, n + 1);
    a->len += n;
    return SETOK_OK;
}

/* Sends text[sent, upto) to the callback; false when it asks to stop. */
static bool answer_emit(answer *a, size_t upto, const setok_chat_options *o)
{
    if (upto <= a->sent)
        return true;
    bool go = true;
    if (o->on_text) {
        char keep = a->text[upto];
        a->text[upto] = '\0';
        go = o->on_text(a->text + a->sent, o->user);
        a->text[upto] = keep;
    }
    a->sent = upto;
    return go;
}

/* Cuts the answer at the first stop string; returns whether one was found. */
static bool answer_stop(answer *a, const setok_sampling_params *p, size_t *hold)
{
    size_t longest = 0, cut = a->len;
    bool found = false;
    for (int i = 0; i < SETOK_SAMPLING_MAX_STOPS && p->stop[i]; i++) {
        size_t l = strlen(p->stop[i]);
        if (!l)
            continue;
        longest = l > longest ? l : longest;
        size_t from = a->sent >= l ? a->sent - l + 1 : 0;
        const char *hit = strstr(a->text + from, p->stop[i]);
        if (hit && (size_t)(hit - a->text) < cut) {
            cut = (size_t)(hit - a->text);
            found = true;
        }
    }
    if (found) {
        a->len = cut;
        a->text[cut] = '\0';
        *hold = cut;
        return true;
    }
    // hold back the last longest - 1 bytes, and never split a UTF-8 sequence
    size_t safe = a->len;
    if (longest)
        safe = a->len >= longest - 1 ? a->len - (longest - 1) : 0;
    while (safe > a->sent && safe < a->len && ((unsigned char)a->text[safe] & 0xc0) == 0x80)
        safe--;
    *hold = safe;
    return false;
}

setok_status setok_chat_ask(setok_chat *c, const char *question, const setok_chat_options *o,
                            setok_chat_result *r, setok_error *err)
{
    setok_chat_result_free(r);
    setok_status st = setok_sampling_params_check(&o->sampling, err);
    if (st != SETOK_OK)
        return st;
    double t0 = now_ms();
    if (c->turns == 0) {
        r->timings.encode_ms = c->image_timings.encode_ms;
        r->timings.cluster_ms = c->image_timings.cluster_ms;
        r->timings.project_ms = c->image_timings.project_ms;
        r->n_image_tokens = c->image_embeds ? c->n_image : 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = build_prompt(c, question, &ids, &n, err);
    int64_t cap = setok_llama_cache_capacity(c->llm);
    if (st == SETOK_OK && setok_llama_cache_length(c->llm) + (int64_t)n + 1 > cap)
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: the conversation needs %lld positions, the "
                        "context holds %lld",
                        (long long)(setok_llama_cache_length(c->llm) + (int64_t)n + 1),
                        (long long)cap);
    if (st == SETOK_OK)
        st = cancelled(o, err);
    if (st == SETOK_OK)
        st = prefill(c, ids, n, o, err);
    if (st == SETOK_OK)
        st = push_history(c, ids, n, err);
    free(ids);
    if (st != SETOK_OK)
        return st;
    c->turns++;
    c->pending = -1;
    r->n_prompt = (int)n;
    double t1 = now_ms();
    r->timings.prefill_ms = t1 - t0;

    setok_text_stream *stream = NULL;
    st = setok_text_stream_new(&stream, c->tok, true, err);
    int max_new = o->sampling.max_new_tokens;
    if (st == SETOK_OK && !(r->ids = malloc((size_t)(max_new > 0 ? max_new : 1) * sizeof *r->ids)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    int32_t eos = setok_text_tokenizer_eos_id(c->tok);
    answer a = {0};
    if (st == SETOK_OK)
        st = answer_append(&a, "", err);
    r->stop_reason = "length";
    double t_first = t1;
    while (st == SETOK_OK && r->n_ids < max_new) {
        int32_t id = 0;
        st = setok_sample(&c->sampler, c->logits, c->vocab, &o->sampling, c->history,
                          c->n_history, &c->rng, &id, err);
        if (st == SETOK_OK)
            st = push_history(c, &id, 1, err);
        if (st != SETOK_OK)
            break;
        r->ids[r->n_ids++] = id;
        c->pending = id;
        if (r->n_ids == 1) {
            t_first = now_ms();
            r->timings.first_token_ms = t_first - t0;
        }
        if (id == eos) {
            r->stop_reason = "eos";
            break;
        }
        const char *piece = NULL;
        size_t hold = 0;
        st = setok_text_stream_push(stream, id, &piece, err);
        if (st == SETOK_OK)
            st = answer_append(&a, piece, err);
        if (st != SETOK_OK)
            break;
        bool stop = answer_stop(&a, &o->sampling, &hold);
        if (!answer_emit(&a, hold, o)) {
            r->stop_reason = "callback";
            break;
        }
        if (stop) {
            r->stop_reason = "stop";
            break;
        }
        if (r->n_ids >= max_new)
            break;
        if (setok_llama_cache_length(c->llm) + 1 > cap) {
            r->stop_reason = "context";
            break;
        }
        st = cancelled(o, err);
        if (st == SETOK_OK)
            st = decode_step(c, id, o, err);
        if (st == SETOK_OK)
            c->pending = -1;
    }
    if (st == SETOK_OK && strcmp(r->stop_reason, "stop") && strcmp(r->stop_reason, "callback")) {
        const char *rest = NULL;
        st = setok_text_stream_flush(stream, &rest, err);
        if (st == SETOK_OK)
            st = answer_append(&a, rest, err);
        size_t hold = 0;
        if (st == SETOK_OK && answer_stop(&a, &o->sampling, &hold))
            r->stop_reason = "stop";
        if (st == SETOK_OK)
            answer_emit(&a, a.len, o);
    }
    setok_text_stream_free(stream);
    r->text = a.text;
    double t2 = now_ms();
    r->timings.decode_ms = r->n_ids > 1 ? t2 - t_first : 0.0;
    r->timings.decode_tokens_per_s =
        r->timings.decode_ms > 0.0 ? (r->n_ids - 1) * 1e3 / r->timings.decode_ms : 0.0;
    return st;
}
