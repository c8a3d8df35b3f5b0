/* chat-visual.c — what a SETOKIM bundle's LLM emits besides text: the visual
 * tokens between [Img] and [/Img] of a generation or an edit request, and the
 * <seg> state that prompts the mask decoder (chat.h). Each request is one
 * prefill in a cache of its own length, so the conversation's cache is not
 * touched. */
#include "chat-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The final hidden states of a request: the first-turn prompt for text (with the image
 * set by the last setok_chat_start, if any), then tail[n_tail]; the last n_read of them
 * through proj -> out [n_read, proj->out_features] host f32. */
static setok_status request_states(setok_chat *c, const char *text, const int32_t *tail,
                                   int n_tail, int n_read, const setok_projector *proj,
                                   const atomic_bool *cancel, float *out, setok_error *err)
{
    int32_t *prompt = NULL, *ids = NULL;
    size_t n = 0;
    int turns = c->turns;
    c->turns = 0;
    /* the request as the bundle was trained on it: its own system prompt */
    setok_status st = chat_build_prompt(c, text, NULL, &prompt, &n, err);
    c->turns = turns;
    size_t T = n + (size_t)n_tail;
    if (st == SETOK_OK && !(ids = malloc(T * sizeof *ids)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK) {
        memcpy(ids, prompt, n * sizeof *ids);
        memcpy(ids + n, tail, (size_t)n_tail * sizeof *ids);
    }
    if (st == SETOK_OK && (int64_t)T > c->max_context)
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: the request needs %zu positions, the "
                        "model's context holds %lld", T, (long long)c->max_context);
    int64_t hidden = setok_llama_get_config(c->llm)->hidden_size;
    size_t row = (size_t)hidden * setok_dtype_size(c->dtype);
    size_t need = setok_llama_arena_bytes(c->llm, (int64_t)T) + T * (sizeof(int32_t) + row) +
                  setok_projector_arena_bytes(proj, n_read) + 16 * 4096;
    setok_llama_cache *cache = NULL;
    if (st == SETOK_OK)
        st = setok_llama_cache_new(&cache, c->llm, (int64_t)T, err);
    if (st == SETOK_OK)
        st = chat_ensure_arena(c, need, err);
    setok_tensor emb, states, rows, y;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = chat_embed_prompt(c, ids, T, &emb, err);
    }
    if (st == SETOK_OK)
        st = setok_llama_forward_hidden(c->llm, cache, &c->arena, &states, &emb, cancel, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&rows, &states, 0, (int64_t)T - n_read, n_read, err);
    if (st == SETOK_OK)
        st = setok_projector_forward(proj, &c->arena, &y, &rows, err);
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(out, &y, err);
    setok_llama_cache_free(cache);
    free(prompt);
    free(ids);
    return st;
}

int setok_chat_visual_token_count(const setok_chat *c)
{
    const setok_bundle *b = setok_model_bundle(c->model);
    return b && setok_model_can(c->model, SETOK_CAP_GENERATE) ? b->n_visual_tokens : 0;
}

setok_status setok_chat_visual_tokens(setok_chat *c, const setok_image *image, const char *text,
                                      const setok_chat_options *o, float *out, setok_error *err)
{
    int k = setok_chat_visual_token_count(c);
    if (k == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "this model has no visual tokens (setokim.json "
                          "visual_tokens and projector_out): it cannot generate images");
    const setok_bundle *b = setok_model_bundle(c->model);
    const setok_projector *proj = NULL;
    setok_status st = setok_model_projector(c->model, SETOK_COMPONENT_PROJECTOR_OUT, &proj, err);
    int32_t *tail = st == SETOK_OK ? malloc((size_t)(k + 1) * sizeof *tail) : NULL;
    if (st == SETOK_OK && !tail)
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK)
        tail[0] = c->image_start;
    for (int i = 0; st == SETOK_OK && i < k; i++) {
        char key[48];
        snprintf(key, sizeof key, "visual_tokens[%d]", i);
        st = chat_special_id(c, key, b->visual_tokens[i], &tail[i + 1], err);
    }
    if (st == SETOK_OK)
        st = setok_chat_start(c, image, o, err);
    if (st == SETOK_OK)
        st = request_states(c, text, tail, k + 1, k, proj, o->cancel, out, err);
    free(tail);
    return st;
}

int setok_chat_visual_token_dim(setok_chat *c)
{
    const setok_projector *proj = NULL;
    if (setok_chat_visual_token_count(c) == 0 ||
        setok_model_projector(c->model, SETOK_COMPONENT_PROJECTOR_OUT, &proj, NULL) != SETOK_OK)
        return 0;
    return proj->out_features;
}

int setok_chat_segment_dim(setok_chat *c)
{
    const setok_projector *proj = NULL;
    if (!setok_model_can(c->model, SETOK_CAP_SEGMENT_PHRASE) ||
        setok_model_projector(c->model, SETOK_COMPONENT_PROJECTOR_SEG, &proj, NULL) != SETOK_OK)
        return 0;
    return proj->out_features;
}

setok_status setok_chat_segment_embedding(setok_chat *c, const char *expression,
                                          const setok_chat_options *o, float *out,
                                          setok_error *err)
{
    const setok_bundle *b = setok_model_bundle(c->model);
    const setok_projector *proj = NULL;
    int32_t seg = -1;
    setok_status st = setok_model_require(c->model, SETOK_CAP_SEGMENT_PHRASE, err);
    if (st == SETOK_OK)
        st = setok_model_projector(c->model, SETOK_COMPONENT_PROJECTOR_SEG, &proj, err);
    if (st == SETOK_OK)
        st = chat_special_id(c, "segment_token", b->segment_token, &seg, err);
    if (st == SETOK_OK && !c->image_embeds)
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: no image to segment (setok_chat_start "
                        "with an image first)");
    if (st != SETOK_OK)
        return st;
    size_t len = strlen(expression) + sizeof "segment ";
    char *text = malloc(len);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    snprintf(text, len, "segment %s", expression);
    st = request_states(c, text, &seg, 1, 1, proj, o->cancel, out, err);
    free(text);
    return st;
}
