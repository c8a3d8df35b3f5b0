/* chat-visual.c — what a SETOKIM bundle's LLM emits besides text: the visual
 * tokens between [Img] and [/Img] of a generation or an edit request, and the
 * <seg> state that prompts the mask decoder (chat.h). */
#include "chat-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

setok_status chat_request_states(setok_chat *c, const char *text, const int32_t *tail, int n_tail,
                                 int n_read, const setok_projector *proj, const atomic_bool *cancel,
                                 float *out, setok_error *err)
{
    int32_t *prompt = NULL, *ids = NULL;
    size_t n = 0;
    setok_status st = chat_build_prompt(c, text, &prompt, &n, err);
    size_t T = n + (size_t)n_tail;
    if (st == SETOK_OK && !(ids = malloc(T * sizeof *ids)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK) {
        memcpy(ids, prompt, n * sizeof *ids);
        memcpy(ids + n, tail, (size_t)n_tail * sizeof *ids);
    }
    if (st == SETOK_OK && (int64_t)T > setok_llama_cache_capacity(c->llm))
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: the request needs %zu positions, the "
                        "model's context holds %lld", T,
                        (long long)setok_llama_cache_capacity(c->llm));
    int64_t hidden = setok_llama_get_config(c->llm)->hidden_size;
    size_t row = (size_t)hidden * setok_dtype_size(c->dtype);
    size_t need = setok_llama_arena_bytes(c->llm, (int64_t)T) + T * (sizeof(int32_t) + row) +
                  setok_projector_arena_bytes(proj, n_read) + 16 * 4096;
    if (st == SETOK_OK)
        st = chat_ensure_arena(c, need, err);
    setok_tensor emb, states, rows, y;
    if (st == SETOK_OK) {
        setok_llama_reset(c->llm);
        setok_arena_reset(&c->arena, 0);
        st = chat_embed_prompt(c, ids, T, &emb, err);
    }
    if (st == SETOK_OK)
        st = setok_llama_forward_hidden(c->llm, &c->arena, &states, &emb, cancel, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&rows, &states, 0, (int64_t)T - n_read, n_read, err);
    if (st == SETOK_OK)
        st = setok_projector_forward(proj, &c->arena, &y, &rows, err);
    if (st == SETOK_OK)
        st = chat_download_f32(c, out, &y, err);
    setok_llama_reset(c->llm);
    c->turns = 0;
    c->pending = -1;
    c->n_history = 0;
    free(prompt);
    free(ids);
    return st;
}

int setok_chat_visual_token_count(const setok_chat *c)
{
    return c->projector_out.w1.data ? c->n_visual : 0;
}

int setok_chat_visual_token_dim(const setok_chat *c)
{
    return c->projector_out.w1.data ? c->projector_out.out_features : 0;
}

setok_status setok_chat_visual_tokens(setok_chat *c, const setok_image *image, const char *text,
                                      const setok_chat_options *o, float *out, setok_error *err)
{
    int k = setok_chat_visual_token_count(c);
    if (k == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "this model has no visual tokens (setokim.json "
                          "visual_tokens and projector_out): it cannot generate images");
    int32_t *tail = malloc((size_t)(k + 1) * sizeof *tail);
    if (!tail)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    tail[0] = c->image_start;
    memcpy(tail + 1, c->visual_ids, (size_t)k * sizeof *tail);
    setok_status st = setok_chat_start(c, image, o, err);
    if (st == SETOK_OK)
        st = chat_request_states(c, text, tail, k + 1, k, &c->projector_out, o->cancel, out, err);
    free(tail);
    return st;
}

int setok_chat_segment_dim(const setok_chat *c)
{
    return c->seg_id >= 0 ? c->projector_seg.out_features : 0;
}

setok_status setok_chat_segment_embedding(setok_chat *c, const char *expression,
                                          const setok_chat_options *o, float *out,
                                          setok_error *err)
{
    if (setok_chat_segment_dim(c) == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "this model has no segment token (setokim.json "
                          "segment_token and projector_seg): it cannot segment by a phrase");
    if (!c->image_embeds)
        return setok_fail(err, SETOK_ERR_INPUT, "chat: no image to segment (setok_chat_start "
                          "with an image first)");
    size_t len = strlen(expression) + sizeof "segment ";
    char *text = malloc(len);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    snprintf(text, len, "segment %s", expression);
    setok_chat_restart(c, o);
    setok_status st =
        chat_request_states(c, text, &c->seg_id, 1, 1, &c->projector_seg, o->cancel, out, err);
    free(text);
    return st;
}

setok_status setok_chat_image_features(const setok_chat *c, const float **features, int *grid_h,
                                       int *grid_w, int *dim)
{
    *features = c->features;
    *grid_h = c->grid_h;
    *grid_w = c->grid_w;
    *dim = c->feature_dim;
    return c->features ? SETOK_OK : SETOK_ERR_INPUT;
}
