/* chat-visual.c — a SETOKIM bundle's image output: the visual tokens the LLM
 * emits between [Img] and [/Img] for a generation or an edit request (chat.h). */
#include "chat-impl.h"

#include <stdlib.h>
#include <string.h>

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
    setok_status st = setok_chat_start(c, image, o, err);
    int32_t *prompt = NULL, *ids = NULL;
    size_t n = 0;
    if (st == SETOK_OK)
        st = chat_build_prompt(c, text, &prompt, &n, err);
    size_t T = n + 1 + (size_t)k;
    if (st == SETOK_OK && !(ids = malloc(T * sizeof *ids)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st == SETOK_OK) {
        memcpy(ids, prompt, n * sizeof *ids);
        ids[n] = c->image_start;
        memcpy(ids + n + 1, c->visual_ids, (size_t)k * sizeof *ids);
    }
    if (st == SETOK_OK && (int64_t)T > setok_llama_cache_capacity(c->llm))
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: the request needs %zu positions, the "
                        "model's context holds %lld", T,
                        (long long)setok_llama_cache_capacity(c->llm));
    int64_t hidden = setok_llama_get_config(c->llm)->hidden_size;
    size_t row = (size_t)hidden * setok_dtype_size(c->dtype);
    size_t need = setok_llama_arena_bytes(c->llm, (int64_t)T) + T * (sizeof(int32_t) + row) +
                  setok_projector_arena_bytes(&c->projector_out, k) + 16 * 4096;
    if (st == SETOK_OK)
        st = chat_ensure_arena(c, need, err);
    setok_tensor emb, states, slots, tokens;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = chat_embed_prompt(c, ids, T, &emb, err);
    }
    if (st == SETOK_OK)
        st = setok_llama_forward_hidden(c->llm, &c->arena, &states, &emb, o->cancel, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&slots, &states, 0, (int64_t)T - k, k, err);
    if (st == SETOK_OK)
        st = setok_projector_forward(&c->projector_out, &c->arena, &tokens, &slots, err);
    if (st == SETOK_OK)
        st = chat_download_f32(c, out, &tokens, err);
    setok_chat_restart(c, o);
    free(prompt);
    free(ids);
    return st;
}
