/* chat.c — the chat pipeline's conversation (chat.h): each turn's prompt in the
 * model's format (LLaVA v1 or llava-hf), the image rows spliced into its
 * embeddings, prefill through the KV cache, sampling and streamed answers. What
 * the model's kind means and the image side live in chat-model.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat-impl.h"
#include "core/util.h"
#include "setok/clock.h"

/* The turns of the Vicuna / LLaVA forms (model.h setok_prompt_format): the one place they
 * are spelled. */
static const char CHAT_USER[] = "USER: ";
static const char CHAT_ASSISTANT[] = " ASSISTANT:";

setok_status chat_ensure_arena(setok_chat *c, size_t need, setok_error *err)
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
    o->image_mode = SETOK_CHAT_IMAGE_DEFAULT;
    o->fit = SETOK_IMAGE_FIT_PAD;
    o->cluster = setok_cluster_params_default();
}

void setok_chat_result_free(setok_chat_result *r)
{
    free(r->text);
    free(r->ids);
    free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

// ----------------------------------------------------------------------------
// a conversation over a model

setok_status setok_chat_new(setok_chat **out, setok_model *model, int max_context,
                            setok_error *err)
{
    *out = NULL;
    setok_chat *c = calloc(1, sizeof *c);
    if (!c)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    c->model = model;
    c->backend = setok_model_backend(model);
    c->dtype = setok_model_dtype(model);
    c->pending = -1;
    setok_status st = chat_bind(c, err);
    if (st == SETOK_OK) {
        const setok_llama_config *lc = setok_llama_get_config(c->llm);
        c->vocab = lc->vocab_size;
        c->max_context = max_context > 0 ? max_context : 4096;
        if (lc->max_position_embeddings > 0 && c->max_context > lc->max_position_embeddings)
            c->max_context = lc->max_position_embeddings;
        st = setok_sampler_init(&c->sampler, c->vocab, err);
    }
    if (st == SETOK_OK && !(c->logits = malloc((size_t)c->vocab * sizeof *c->logits)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    if (st != SETOK_OK) {
        setok_chat_free(c);
        return st;
    }
    setok_rng_seed(&c->rng, 0);
    *out = c;
    return SETOK_OK;
}

void setok_chat_free(setok_chat *c)
{
    if (!c)
        return;
    if (c->arena.base)
        setok_arena_destroy(&c->arena);
    chat_unbind(c);
    setok_llama_cache_free(c->cache);
    setok_sampler_free(&c->sampler);
    free(c->logits);
    free(c->staging);
    free(c->image_embeds);
    free(c->history);
    free(c);
}

setok_model *setok_chat_model(const setok_chat *c)
{
    return c->model;
}

setok_cluster_params setok_chat_cluster_defaults(const setok_chat *c)
{
    return c->merger ? setok_merger_get_config(c->merger)->cluster
                     : setok_cluster_params_default();
}

void setok_chat_restart(setok_chat *c, const setok_chat_options *o)
{
    if (c->cache)
        setok_llama_cache_reset(c->cache);
    c->turns = 0;
    c->pending = -1;
    c->n_history = 0;
    memset(&c->image_timings, 0, sizeof c->image_timings);
    setok_rng_seed(&c->rng, o->sampling.seed);
}

setok_status setok_chat_start(setok_chat *c, const setok_image *image,
                              const setok_chat_options *o, setok_error *err)
{
    setok_chat_restart(c, o);
    free(c->image_embeds);
    c->image_embeds = NULL;
    c->n_image = 0;
    if (!image)
        return SETOK_OK;
    setok_status st = chat_encode_image(c, image, o, err);
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
        setok_status st = setok_grow((void **)&c->history, &cap, want, "chat", err);
        if (st != SETOK_OK)
            return st;
        c->history_cap = cap / sizeof *c->history;
    }
    memcpy(c->history + c->n_history, ids, n * sizeof *ids);
    c->n_history += n;
    return SETOK_OK;
}

setok_status chat_build_prompt(setok_chat *c, const char *question, const char *system,
                               int32_t **out, size_t *n_out, setok_error *err)
{
    const setok_prompt_format *f = c->form;
    bool first = c->turns == 0, image = first && c->image_embeds;
    if (!system)
        system = f->system;
    bool with_system = first && system[0];
    /* a later llava-hf turn continues the answer after " ": a tokenizer that puts a word
     * boundary before its text writes that space itself */
    int32_t eos = setok_text_tokenizer_eos_id(c->tok);
    bool eos_end = f->style == SETOK_PROMPT_LLAVA_V1;
    bool space = !first && !eos_end && !setok_text_tokenizer_adds_prefix_space(c->tok);
    size_t len = strlen(f->system_prefix) + strlen(system) + strlen(CHAT_USER) +
                 strlen(c->image_text) + strlen(question) + strlen(CHAT_ASSISTANT) + 4;
    char *text = malloc(len);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    snprintf(text, len, "%s%s%s%s%s%s%s%s", space ? " " : "",
             with_system ? f->system_prefix : "", with_system ? system : "",
             with_system ? " " : "", CHAT_USER, image ? c->image_text : "", question,
             CHAT_ASSISTANT);
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
    // a follow-up closes the previous answer: its unfed last token, then "</s>" (LLaVA v1)
    bool pending = !first && c->pending >= 0 && c->pending != eos;
    bool close = !first && eos_end && eos >= 0;
    size_t total = pending + close + n + (image ? (size_t)c->n_image - 1 : 0);
    int32_t *x = malloc((total ? total : 1) * sizeof *x);
    if (!x) {
        setok_text_tokenizer_buffer_free(ids);
        return setok_fail(err, SETOK_ERR_NOMEM, "chat: out of memory");
    }
    size_t j = 0;
    if (pending)
        x[j++] = c->pending;
    if (close)
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
        st = setok_grow(&c->staging, &c->staging_bytes, setok_tensor_nbytes(logits), "chat", err);
    if (st == SETOK_OK)
        st = setok_tensor_download(c->staging, logits, err);
    if (st == SETOK_OK)
        for (int i = 0; i < c->vocab; i++)
            c->logits[i] = setok_load_f32(c->staging, logits->dtype, i);
    return st;
}

setok_status chat_embed_prompt(setok_chat *c, const int32_t *ids, size_t n, setok_tensor *emb_out,
                               setok_error *err)
{
    int64_t dt = setok_llama_get_config(c->llm)->hidden_size, T = (int64_t)n;
    size_t row = (size_t)dt * setok_dtype_size(c->dtype);
    setok_tensor tids, emb = {0};
    setok_status st = setok_arena_tensor(&c->arena, &tids, SETOK_I32, 1, &T, err);
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
            st = setok_grow(&c->staging, &c->staging_bytes, n * row, "chat", err);
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
    *emb_out = emb;
    return st;
}

/* Prefills ids [n], the image rows spliced in; the last position's logits into c->logits. */
static setok_status prefill(setok_chat *c, const int32_t *ids, size_t n,
                            const setok_chat_options *o, setok_error *err)
{
    int64_t dt = setok_llama_get_config(c->llm)->hidden_size, T = (int64_t)n;
    size_t row = (size_t)dt * setok_dtype_size(c->dtype);
    size_t need = setok_llama_arena_bytes(c->llm, T) + n * (sizeof(int32_t) + row) + 8 * 4096;
    setok_status st = chat_ensure_arena(c, need, err);
    setok_tensor emb, logits;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = chat_embed_prompt(c, ids, n, &emb, err);
    }
    if (st == SETOK_OK)
        st = setok_llama_forward_embeds(c->llm, c->cache, &c->arena, &logits, &emb, true,
                                        o->cancel, err);
    if (st == SETOK_OK)
        st = read_logits(c, &logits, err);
    return st;
}

static setok_status decode_step(setok_chat *c, int32_t id, const setok_chat_options *o,
                                setok_error *err)
{
    size_t need = setok_llama_arena_bytes(c->llm, 1) + 2 * 4096;
    setok_status st = chat_ensure_arena(c, need, err);
    setok_tensor tid, logits;
    if (st == SETOK_OK) {
        setok_arena_reset(&c->arena, 0);
        st = setok_arena_tensor(&c->arena, &tid, SETOK_I32, 1, (int64_t[]){1}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload(&tid, &id, err);
    if (st == SETOK_OK)
        st = setok_llama_forward_ids(c->llm, c->cache, &c->arena, &logits, &tid, true, o->cancel,
                                     err);
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
    setok_status st = setok_grow((void **)&a->text, &a->cap, a->len + n + 1, "chat", err);
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
    if (!c->cache)
        st = setok_llama_cache_new(&c->cache, c->llm, c->max_context, err);
    if (st != SETOK_OK)
        return st;
    double t0 = setok_clock_ms();
    if (c->turns == 0) {
        r->timings.encode_ms = c->image_timings.encode_ms;
        r->timings.cluster_ms = c->image_timings.cluster_ms;
        r->timings.project_ms = c->image_timings.project_ms;
        r->n_image_tokens = c->image_embeds ? c->n_image : 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = chat_build_prompt(c, question, o->system_prompt, &ids, &n, err);
    int64_t cap = setok_llama_cache_capacity(c->cache);
    if (st == SETOK_OK && setok_llama_cache_length(c->cache) + (int64_t)n + 1 > cap)
        st = setok_fail(err, SETOK_ERR_INPUT, "chat: the conversation needs %lld positions, the "
                        "context holds %lld",
                        (long long)(setok_llama_cache_length(c->cache) + (int64_t)n + 1),
                        (long long)cap);
    if (st == SETOK_OK)
        st = cancelled(o, err);
    if (st == SETOK_OK)
        st = prefill(c, ids, n, o, err);
    if (st == SETOK_OK)
        st = push_history(c, ids, n, err);
    if (st != SETOK_OK) {
        free(ids);
        return st;
    }
    r->prompt_ids = ids;
    c->turns++;
    c->pending = -1;
    r->n_prompt = (int)n;
    double t1 = setok_clock_ms();
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
            t_first = setok_clock_ms();
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
        if (setok_llama_cache_length(c->cache) + 1 > cap) {
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
    double t2 = setok_clock_ms();
    r->timings.decode_ms = r->n_ids > 1 ? t2 - t_first : 0.0;
    r->timings.decode_tokens_per_s =
        r->timings.decode_ms > 0.0 ? (r->n_ids - 1) * 1e3 / r->timings.decode_ms : 0.0;
    return st;
}
