/* chat-model.c — what the model's kind means for a conversation (chat.h): a
 * LLaVA-1.5 folder or a SETOKIM bundle gives the template's parts and the
 * image tokens; and one image -> its projected embeddings, kept on the host in
 * the model's dtype for chat.c to splice into the prompt. The image features
 * come from the model, computed once per image; activations from the chat's
 * arena. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat-impl.h"
#include "setok/bundle.h"
#include "setok/clock.h"

void chat_unbind(setok_chat *c)
{
    free(c->image_text);
    c->image_text = NULL;
}

setok_status chat_special_id(const setok_chat *c, const char *key, const char *token,
                             int32_t *id, setok_error *err)
{
    const setok_bundle *b = setok_model_bundle(c->model);
    *id = setok_text_tokenizer_token_to_id(c->tok, token);
    if (*id < 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s '%s' is not a token of %s/tokenizer.json",
                          b ? b->manifest : setok_model_dir(c->model), key, token,
                          b ? b->components[SETOK_BUNDLE_LLM] : setok_model_dir(c->model));
    return SETOK_OK;
}

/* LLaVA: the image token of config.json, written as the format writes "<image>" (with
 * its newline or without). */
static setok_status bind_llava(setok_chat *c, setok_error *err)
{
    const setok_vit_config *vc = setok_vit_get_config(c->vit);
    c->image_token = setok_model_image_token_index(c->model);
    c->image_start = -1;
    c->drop_cls = vc->drop_cls && setok_vit_has_cls(c->vit);
    c->cluster_pe = true;
    const char *image = setok_text_tokenizer_id_to_token(c->tok, c->image_token);
    if (!image)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the tokenizer has no token for the image "
                          "id %d", setok_model_dir(c->model), c->image_token);
    size_t n = strlen(c->form->image);
    bool newline = n && c->form->image[n - 1] == '\n';
    n = strlen(image) + 2;
    free(c->image_text);
    if (!(c->image_text = malloc(n)))
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    snprintf(c->image_text, n, "%s%s", image, newline ? "\n" : "");
    return SETOK_OK;
}

/* A bundle: the manifest's special tokens and system prompt. */
static setok_status bind_bundle(setok_chat *c, setok_error *err)
{
    const setok_bundle *b = setok_model_bundle(c->model);
    int32_t end = -1;
    setok_status st = chat_special_id(c, "special_tokens.image", b->image_token, &c->image_token,
                                      err);
    if (st == SETOK_OK)
        st = chat_special_id(c, "special_tokens.image_start", b->image_start, &c->image_start,
                             err);
    if (st == SETOK_OK)
        st = chat_special_id(c, "special_tokens.image_end", b->image_end, &end, err);
    free(c->image_text);
    c->image_text = NULL;
    if (st == SETOK_OK && !(c->image_text = strdup(c->form->image)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    c->drop_cls = setok_vit_has_cls(c->vit);
    c->cluster_pe = setok_merger_get_config(c->merger)->position_embedding;
    return st;
}

setok_status chat_bind(setok_chat *c, setok_error *err)
{
    setok_model *m = c->model;
    setok_status st = setok_model_require(m, SETOK_CAP_CHAT, err);
    if (st == SETOK_OK)
        st = setok_model_vit(m, &c->vit, err);
    if (st == SETOK_OK)
        st = setok_model_merger(m, &c->merger, err);
    if (st == SETOK_OK)
        st = setok_model_projector(m, SETOK_COMPONENT_PROJECTOR_IN, &c->projector, err);
    if (st == SETOK_OK)
        st = setok_model_llm(m, &c->llm, err);
    if (st == SETOK_OK)
        st = setok_model_text_tokenizer(m, &c->tok, err);
    if (st == SETOK_OK)
        st = setok_model_feature_layer(m, &c->feature_layer, err);
    if (st == SETOK_OK && !(c->form = setok_model_prompt_format(m)))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: no prompt format", setok_model_dir(m));
    if (st == SETOK_OK)
        st = c->merger ? bind_bundle(c, err) : bind_llava(c, err);
    return st;
}

// ----------------------------------------------------------------------------
// image -> projected embeddings

/* x [n, dv] (on the backend) -> c->image_embeds [n, hidden] on the host. */
static setok_status project(setok_chat *c, const setok_tensor *x, setok_error *err)
{
    setok_tensor y;
    setok_status st = setok_projector_forward(c->projector, &c->arena, &y, x, err);
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

/* host rows [n, dv] f32 -> *x on the backend, carved from the chat's arena. */
static setok_status upload_rows(setok_chat *c, setok_tensor *x, const float *rows, int64_t n,
                                int64_t dv, setok_error *err)
{
    setok_status st = setok_arena_tensor(&c->arena, x, c->dtype, 2, (int64_t[]){n, dv}, err);
    return st == SETOK_OK ? setok_tensor_upload_f32(x, rows, err) : st;
}

/* the patch features f (host) -> *x: the image's vision tokens, SeTok cluster means
 * (LLaVA) or merger tokens (bundle), on the backend. */
static setok_status image_tokens(setok_chat *c, setok_tensor *x, const setok_image_features *f,
                                 bool singletons, const setok_chat_options *o, setok_error *err)
{
    int gh = f->grid_h, gw = f->grid_w;
    int64_t n = (int64_t)gh * gw, dv = f->dim;
    const float *patches = f->rows + (f->has_cls ? dv : 0);
    setok_clusters cl = {0};
    setok_status st = SETOK_OK;
    if (singletons && c->merger) {
        st = singleton_clusters(&cl, gh, gw, err);
    } else {
        // a grid smaller than the neighbour count (tiny towers) uses every patch
        setok_cluster_params cp = o->cluster_override ? o->cluster
                                                      : setok_chat_cluster_defaults(c);
        cp.k = cp.k > n ? (int)n : cp.k;
        cp.fixed_k = cp.fixed_k > n ? (int)n : cp.fixed_k;
        st = setok_cluster(&cl, setok_model_host_backend(c->model), patches, gh, gw, (int)dv,
                           &cp, c->cluster_pe, err);
    }
    if (st == SETOK_OK && c->merger) {
        setok_tensor p;
        st = upload_rows(c, &p, patches, n, dv, err);
        if (st == SETOK_OK)
            st = setok_merger_forward(c->merger, &c->arena, x, &p, &cl, err);
    } else if (st == SETOK_OK) {
        int64_t k = cl.n_tokens;
        float *means = malloc((size_t)(k ? k : 1) * (size_t)dv * sizeof *means);
        st = means ? setok_tokens_average(means, patches, (int)dv, &cl, err)
                   : setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
        if (st == SETOK_OK)
            st = upload_rows(c, x, means, k, dv, err);
        free(means);
    }
    if (singletons && c->merger)
        free(cl.labels);
    else
        setok_clusters_free(&cl);
    return st;
}

setok_status chat_encode_image(setok_chat *c, const setok_image *image,
                               const setok_chat_options *o, setok_error *err)
{
    setok_image_features f;
    setok_status st = setok_model_encode_image(c->model, image, c->feature_layer, o->fit,
                                               o->cancel, &f, err);
    if (st != SETOK_OK)
        return st;
    setok_chat_image_mode mode = o->image_mode;
    if (mode == SETOK_CHAT_IMAGE_DEFAULT)
        mode = c->merger ? SETOK_CHAT_IMAGE_SETOK : SETOK_CHAT_IMAGE_PATCHES;
    bool tokens = c->merger || mode == SETOK_CHAT_IMAGE_SETOK;
    int64_t n = f.n_rows - (c->drop_cls && f.has_cls ? 1 : 0), dv = f.dim;
    int64_t k = tokens ? (int64_t)f.grid_h * f.grid_w : n; /* an upper bound on the tokens */
    size_t el = setok_dtype_size(c->dtype);
    size_t need = 2 * (size_t)n * (size_t)dv * el + setok_projector_arena_bytes(c->projector, k) +
                  (c->merger ? setok_merger_arena_bytes(c->merger, (int)n, (int)n) : 0) +
                  16 * 4096;
    st = chat_ensure_arena(c, need, err);
    setok_tensor x;
    if (st == SETOK_OK)
        setok_arena_reset(&c->arena, 0);
    double t1 = setok_clock_ms();
    c->image_timings.encode_ms = f.encode_ms;
    if (st == SETOK_OK && tokens)
        st = image_tokens(c, &x, &f, mode == SETOK_CHAT_IMAGE_PATCHES, o, err);
    else if (st == SETOK_OK)
        st = upload_rows(c, &x, f.rows + (f.n_rows - n) * dv, n, dv, err);
    double t2 = setok_clock_ms();
    c->image_timings.cluster_ms = tokens ? t2 - t1 : 0.0;
    if (st == SETOK_OK)
        st = project(c, &x, err);
    c->image_timings.project_ms = setok_clock_ms() - t2;
    return st;
}
