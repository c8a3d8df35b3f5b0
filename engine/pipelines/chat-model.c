/* chat-model.c — the chat pipeline's two folder kinds (chat.h): loading a
 * LLaVA-1.5 folder or a SETOKIM bundle, and one image -> its projected
 * embeddings, kept on the host in the model's dtype for chat.c to splice into
 * the prompt. Activations come from the chat's arena. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat-impl.h"
#include "setok/bundle.h"
#include "setok/config.h"
#include "setok/weights.h"

/* The Vicuna v1 system prompt of LLaVA-1.5 (llava conv_vicuna_v1). */
static const char LLAVA_SYSTEM[] =
    "A chat between a curious human and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the human's questions.";

static setok_status set_string(char **out, const char *s, setok_error *err)
{
    free(*out);
    if (!(*out = strdup(s)))
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    return SETOK_OK;
}

void chat_unload(setok_chat *c)
{
    setok_projector_free(&c->projector);
    setok_projector_free(&c->projector_out);
    setok_projector_free(&c->projector_seg);
    free(c->features);
    c->features = NULL;
    c->seg_id = -1;
    setok_merger_free(c->merger);
    setok_llama_free(c->llm);
    setok_vit_free(c->vit);
    setok_text_tokenizer_free(c->tok);
    free(c->system_prompt);
    free(c->image_text);
    free(c->visual_ids);
    c->visual_ids = NULL;
    c->n_visual = 0;
    c->image_start = -1;
    c->merger = NULL;
    c->llm = NULL;
    c->vit = NULL;
    c->tok = NULL;
    c->system_prompt = c->image_text = NULL;
}

// ----------------------------------------------------------------------------
// LLaVA-1.5 folder

/* image_token_index (or image_token_id) and projector_hidden_act of dir/config.json. */
static setok_status llava_config(const char *dir, int32_t *image_token, setok_op *act,
                                 setok_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: model path too long");
    setok_config *cfg = NULL;
    setok_status st = setok_config_load(&cfg, path, err);
    if (st != SETOK_OK)
        return st;
    int64_t id = -1;
    const char *name = NULL;
    if (setok_config_has(cfg, "image_token_index"))
        st = setok_config_int(cfg, "image_token_index", &id, err);
    else
        st = setok_config_int_or(cfg, "image_token_id", 32000, &id, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "projector_hidden_act", "gelu", &name, err);
    if (st == SETOK_OK)
        st = setok_projector_act_from_name(name, act, path, err);
    if (st == SETOK_OK && (id < 0 || id > INT32_MAX))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %lld is out of range",
                        path, (long long)id);
    *image_token = (int32_t)id;
    setok_config_free(cfg);
    return st;
}

setok_status chat_load_llava(setok_chat *c, const char *dir, const char *adapter_dir,
                             setok_error *err)
{
    setok_op act = SETOK_OP_GELU;
    setok_status st = llava_config(dir, &c->image_token, &act, err);
    if (st == SETOK_OK)
        st = setok_text_tokenizer_load(&c->tok, dir, err);
    if (st == SETOK_OK)
        st = setok_vit_load(&c->vit, dir, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = setok_llama_load_with_lora(&c->llm, dir, adapter_dir, c->backend, c->dtype, err);
    if (st == SETOK_OK) {
        const setok_vit_config *vc = setok_vit_get_config(c->vit);
        c->feature_layer = vc->feature_layer;
        c->drop_cls = vc->drop_cls && setok_vit_has_cls(c->vit);
        c->cluster_pe = true;
        setok_weights *w = NULL;
        st = setok_weights_open(&w, dir, err);
        if (st == SETOK_OK)
            st = setok_projector_load_llava(&c->projector, w, vc->hidden_size,
                                            setok_llama_get_config(c->llm)->hidden_size, act,
                                            c->backend, c->dtype, err);
        setok_weights_close(w);
    }
    if (st == SETOK_OK && c->image_token >= setok_text_tokenizer_vocab_size(c->tok))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %d is not in the tokenizer",
                        dir, c->image_token);
    const char *image = st == SETOK_OK ? setok_text_tokenizer_id_to_token(c->tok, c->image_token)
                                       : NULL;
    if (st == SETOK_OK && !image)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: the tokenizer has no token for the image id "
                        "%d", dir, c->image_token);
    if (st == SETOK_OK)
        st = set_string(&c->system_prompt, LLAVA_SYSTEM, err);
    if (st == SETOK_OK)
        st = set_string(&c->image_text, image, err);
    return st;
}

// ----------------------------------------------------------------------------
// SETOKIM bundle

/* One special token of the manifest, which the tokenizer must know as one id. */
static setok_status special_id(const setok_chat *c, const setok_bundle *b, const char *key,
                               const char *token, int32_t *id, setok_error *err)
{
    *id = setok_text_tokenizer_token_to_id(c->tok, token);
    if (*id < 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s '%s' is not a token of "
                          "%s/tokenizer.json", b->manifest, key, token,
                          b->components[SETOK_BUNDLE_LLM]);
    return SETOK_OK;
}

/* The components must fit each other: vision -> merger -> projector_in -> LLM. */
static setok_status check_bundle_shapes(const setok_chat *c, const setok_bundle *b,
                                        setok_error *err)
{
    const setok_vit_config *vc = setok_vit_get_config(c->vit);
    const setok_merger_config *mc = setok_merger_get_config(c->merger);
    int hidden = setok_llama_get_config(c->llm)->hidden_size;
    const char *const *dirs = (const char *const *)b->components;
    if (mc->hidden_size != vc->hidden_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: hidden_size %d does not match "
                          "the vision tower's %d", dirs[SETOK_BUNDLE_SETOK], mc->hidden_size,
                          vc->hidden_size);
    if (c->projector.in_features != mc->output_size || c->projector.out_features != hidden)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: in_features %d, out_features "
                          "%d; the merger's output_size is %d and the LLM's hidden_size %d",
                          dirs[SETOK_BUNDLE_PROJECTOR_IN], c->projector.in_features,
                          c->projector.out_features, mc->output_size, hidden);
    if (c->projector_seg.w1.data && c->projector_seg.in_features != hidden)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: in_features %d does not match "
                          "the LLM's hidden_size %d", dirs[SETOK_BUNDLE_PROJECTOR_SEG],
                          c->projector_seg.in_features, hidden);
    if (c->projector_out.w1.data && c->projector_out.in_features != hidden)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: in_features %d does not match "
                          "the LLM's hidden_size %d", dirs[SETOK_BUNDLE_PROJECTOR_OUT],
                          c->projector_out.in_features, hidden);
    if (b->image_size > 0) {
        int w = 0, h = 0;
        setok_vit_preprocess_size(setok_vit_get_preprocessor(c->vit), b->image_size,
                                  b->image_size, &w, &h);
        if (vc->image_size != b->image_size || w != b->image_size || h != b->image_size)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: image_size is %d, but the vision tower "
                              "takes %d px and its processor makes %d x %d inputs",
                              b->manifest, b->image_size, vc->image_size, w, h);
    }
    return SETOK_OK;
}

setok_status chat_load_bundle(setok_chat *c, const char *dir, const char *adapter_dir,
                              setok_error *err)
{
    setok_bundle b;
    const char *vision = NULL, *setok = NULL, *llm = NULL, *proj = NULL;
    setok_status st = setok_bundle_load(&b, dir, err);
    if (st == SETOK_OK)
        st = setok_bundle_require(&b, SETOK_BUNDLE_VISION, "chat", &vision, err);
    if (st == SETOK_OK)
        st = setok_bundle_require(&b, SETOK_BUNDLE_SETOK, "chat", &setok, err);
    if (st == SETOK_OK)
        st = setok_bundle_require(&b, SETOK_BUNDLE_LLM, "chat", &llm, err);
    if (st == SETOK_OK)
        st = setok_bundle_require(&b, SETOK_BUNDLE_PROJECTOR_IN, "chat", &proj, err);
    if (st == SETOK_OK)
        st = setok_text_tokenizer_load(&c->tok, llm, err);
    if (st == SETOK_OK)
        st = setok_vit_load(&c->vit, vision, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = setok_merger_load(&c->merger, setok, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = setok_projector_load(&c->projector, proj, c->backend, c->dtype, err);
    if (st == SETOK_OK && b.components[SETOK_BUNDLE_PROJECTOR_OUT])
        st = setok_projector_load(&c->projector_out, b.components[SETOK_BUNDLE_PROJECTOR_OUT],
                                  c->backend, c->dtype, err);
    if (st == SETOK_OK && b.components[SETOK_BUNDLE_PROJECTOR_SEG])
        st = setok_projector_load(&c->projector_seg, b.components[SETOK_BUNDLE_PROJECTOR_SEG],
                                  c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = setok_llama_load_with_lora(&c->llm, llm, adapter_dir, c->backend, c->dtype, err);
    if (st == SETOK_OK)
        st = check_bundle_shapes(c, &b, err);
    c->seg_id = -1;
    if (st == SETOK_OK && b.segment_token && c->projector_seg.w1.data)
        st = special_id(c, &b, "segment_token", b.segment_token, &c->seg_id, err);
    int32_t start = -1, end = -1;
    if (st == SETOK_OK)
        st = special_id(c, &b, "special_tokens.image", b.image_token, &c->image_token, err);
    if (st == SETOK_OK)
        st = special_id(c, &b, "special_tokens.image_start", b.image_start, &start, err);
    if (st == SETOK_OK)
        st = special_id(c, &b, "special_tokens.image_end", b.image_end, &end, err);
    c->image_start = start;
    if (st == SETOK_OK && b.n_visual_tokens > 0 &&
        !(c->visual_ids = malloc((size_t)b.n_visual_tokens * sizeof *c->visual_ids)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    for (int i = 0; st == SETOK_OK && i < b.n_visual_tokens; i++) {
        char key[48];
        snprintf(key, sizeof key, "visual_tokens[%d]", i);
        st = special_id(c, &b, key, b.visual_tokens[i], &c->visual_ids[i], err);
        c->n_visual = i + 1;
    }
    if (st == SETOK_OK) {
        size_t n = strlen(b.image_start) + strlen(b.image_token) + strlen(b.image_end) + 1;
        free(c->image_text);
        if (!(c->image_text = malloc(n)))
            st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
        else
            snprintf(c->image_text, n, "%s%s%s", b.image_start, b.image_token, b.image_end);
    }
    if (st == SETOK_OK)
        st = set_string(&c->system_prompt, b.system_prompt, err);
    if (st == SETOK_OK) {
        c->feature_layer = b.vision_feature_layer;
        c->drop_cls = setok_vit_has_cls(c->vit);
        c->cluster_pe = setok_merger_get_config(c->merger)->position_embedding;
    }
    setok_bundle_free(&b);
    return st;
}

// ----------------------------------------------------------------------------
// image -> projected embeddings

setok_status chat_upload_f32(setok_chat *c, setok_tensor *t, const float *host, size_t n,
                             setok_error *err)
{
    setok_status st = chat_grow(&c->staging, &c->staging_bytes,
                                n * setok_dtype_size(t->dtype), err);
    if (st != SETOK_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        setok_store_f32(c->staging, t->dtype, (int64_t)i, host[i]);
    return setok_tensor_upload(t, c->staging, err);
}

setok_status chat_download_f32(setok_chat *c, float *host, const setok_tensor *x,
                               setok_error *err)
{
    int64_t n = setok_tensor_numel(x);
    setok_status st = setok_backend_synchronize(c->backend, err);
    if (st == SETOK_OK)
        st = chat_grow(&c->staging, &c->staging_bytes, setok_tensor_nbytes(x), err);
    if (st == SETOK_OK)
        st = setok_tensor_download(c->staging, x, err);
    for (int64_t i = 0; st == SETOK_OK && i < n; i++)
        host[i] = setok_load_f32(c->staging, x->dtype, i);
    return st;
}

/* x [n, dv] (on the backend) -> c->image_embeds [n, hidden] on the host. */
static setok_status project(setok_chat *c, const setok_tensor *x, setok_error *err)
{
    setok_tensor y;
    setok_status st = setok_projector_forward(&c->projector, &c->arena, &y, x, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(c->backend, err);
    size_t bytes = st == SETOK_OK ? setok_tensor_nbytes(&y) : 0;
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
    c->n_image = (int)y.shape[0];
    return SETOK_OK;
}

/* Every patch its own cluster: the bundle's patches mode. */
static setok_status singleton_clusters(setok_clusters *cl, int gh, int gw, setok_error *err)
{
    int n = gh * gw;
    memset(cl, 0, sizeof *cl);
    if (!(cl->labels = malloc((size_t)n * sizeof *cl->labels)))
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    for (int j = 0; j < n; j++)
        cl->labels[j] = j;
    cl->grid_h = gh;
    cl->grid_w = gw;
    cl->n_patches = cl->n_tokens = n;
    return SETOK_OK;
}

/* patches [N, dv] (on the backend; N = gh * gw) -> *x: the image's vision
 * tokens, SeTok cluster means (LLaVA) or merger tokens (bundle), on the backend. */
static setok_status image_tokens(setok_chat *c, setok_tensor *x, const setok_tensor *patches,
                                 int gh, int gw, bool singletons, const setok_chat_options *o,
                                 setok_error *err)
{
    int64_t n = (int64_t)gh * gw, dv = patches->shape[1];
    setok_clusters cl = {0};
    float *host = NULL;
    setok_status st = SETOK_OK;
    if (!singletons || !c->merger) {
        // clustering (and the means) on the host: [N, dv] features + [N, dv] means
        if (!(host = malloc((size_t)(2 * n * dv) * sizeof *host)))
            st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
        // a bundle has just kept them (keep_features): no second download
        if (st == SETOK_OK && c->merger && c->features)
            memcpy(host, c->features, (size_t)(n * dv) * sizeof *host);
        else if (st == SETOK_OK)
            st = chat_download_f32(c, host, patches, err);
        // a grid smaller than the neighbour count (tiny towers) uses every patch
        setok_cluster_params cp = o->cluster_override ? o->cluster : setok_chat_cluster_defaults(c);
        cp.k = cp.k > n ? (int)n : cp.k;
        cp.fixed_k = cp.fixed_k > n ? (int)n : cp.fixed_k;
        if (st == SETOK_OK)
            st = setok_cluster(&cl, c->cpu, host, gh, gw, (int)dv, &cp, c->cluster_pe, err);
    } else {
        st = singleton_clusters(&cl, gh, gw, err);
    }
    if (st == SETOK_OK && c->merger) {
        st = setok_merger_forward(c->merger, &c->arena, x, patches, &cl, err);
    } else if (st == SETOK_OK) {
        int64_t k = cl.n_tokens;
        st = setok_tokens_average(host + n * dv, host, (int)dv, &cl, err);
        if (st == SETOK_OK)
            st = setok_arena_tensor(&c->arena, x, c->dtype, 2, (int64_t[]){k, dv}, err);
        if (st == SETOK_OK)
            st = chat_upload_f32(c, x, host + n * dv, (size_t)(k * dv), err);
    }
    if (singletons && c->merger)
        free(cl.labels);
    else
        setok_clusters_free(&cl);
    free(host);
    return st;
}

/* A bundle keeps the patch features (the mask decoder's image embeddings). */
static setok_status keep_features(setok_chat *c, const setok_tensor *patches, int gh, int gw,
                                  setok_error *err)
{
    int dim = (int)patches->shape[1];
    float *f = realloc(c->features, (size_t)gh * gw * dim * sizeof *f);
    if (!f)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    c->features = f;
    c->grid_h = gh;
    c->grid_w = gw;
    c->feature_dim = dim;
    return chat_download_f32(c, f, patches, err);
}

setok_status chat_encode_image(setok_chat *c, const setok_image *image,
                               const setok_chat_options *o, setok_error *err)
{
    double t0 = chat_now_ms();
    const setok_vit_config *vc = setok_vit_get_config(c->vit);
    const setok_vit_preprocessor *pp = setok_vit_get_preprocessor(c->vit);
    int w = 0, h = 0;
    setok_vit_preprocess_size(pp, image->width, image->height, &w, &h);
    int64_t gh = 0, gw = 0;
    int64_t n = setok_vit_num_tokens(c->vit, h, w, c->drop_cls, &gh, &gw);
    if (n <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: a %d x %d model input is smaller than one "
                          "%d-pixel patch", w, h, vc->patch_size);
    setok_chat_image_mode mode = o->image_mode;
    if (mode == SETOK_CHAT_IMAGE_DEFAULT)
        mode = c->merger ? SETOK_CHAT_IMAGE_SETOK : SETOK_CHAT_IMAGE_PATCHES;
    bool tokens = c->merger || mode == SETOK_CHAT_IMAGE_SETOK;
    int64_t dv = vc->hidden_size;
    size_t el = setok_dtype_size(c->dtype), n_px = (size_t)3 * (size_t)w * (size_t)h;
    size_t need = setok_vit_arena_bytes(c->vit, 1, h, w) + n_px * el +
                  (size_t)n * (size_t)dv * el + setok_projector_arena_bytes(&c->projector, n) +
                  (c->merger ? setok_merger_arena_bytes(c->merger, (int)n, (int)n) : 0) +
                  16 * 4096;
    float *pixels = malloc(n_px * sizeof *pixels);
    setok_status st = pixels ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK)
        st = setok_vit_preprocess(pp, pixels, n_px, image, err);
    if (st == SETOK_OK)
        st = chat_ensure_arena(c, need, err);
    setok_tensor px, feat, x;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = setok_arena_tensor(&c->arena, &px, c->dtype, 4, (int64_t[]){1, 3, h, w}, err);
    }
    if (st == SETOK_OK)
        st = chat_upload_f32(c, &px, pixels, n_px, err);
    free(pixels);
    if (st == SETOK_OK)
        st = setok_vit_forward(c->vit, &c->arena, &feat, NULL, &px, c->feature_layer,
                               c->drop_cls, o->cancel, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&x, &feat, 2, (int64_t[]){n, dv}, err);
    double t1 = chat_now_ms();
    c->image_timings.encode_ms = t1 - t0;

    if (st == SETOK_OK && tokens) {
        // a kept CLS row is not a patch
        setok_tensor patches;
        st = setok_view_slice(&patches, &x, 0, n - gh * gw, gh * gw, err);
        if (st == SETOK_OK && c->merger)
            st = keep_features(c, &patches, (int)gh, (int)gw, err);
        if (st == SETOK_OK)
            st = image_tokens(c, &x, &patches, (int)gh, (int)gw,
                               mode == SETOK_CHAT_IMAGE_PATCHES, o, err);
    }
    double t2 = chat_now_ms();
    c->image_timings.cluster_ms = tokens ? t2 - t1 : 0.0;
    if (st == SETOK_OK)
        st = project(c, &x, err);
    c->image_timings.project_ms = chat_now_ms() - t2;
    return st;
}
