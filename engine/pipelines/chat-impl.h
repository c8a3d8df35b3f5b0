/* chat-impl.h — the chat pipeline's state, shared by its three files: chat.c
 * (conversation: prompts, prefill, decoding, streaming), chat-model.c (what
 * the model's kind means for the prompt, and an image -> its projected
 * embeddings) and chat-visual.c (the bundle's visual tokens and <seg> state).
 * The weights belong to the setok_model; a chat holds one conversation.
 * Not installed; not part of the public API. */
#ifndef SETOK_CHAT_IMPL_H
#define SETOK_CHAT_IMPL_H

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/chat.h"
#include "setok/model.h"
#include "setok/models/llama.h"
#include "setok/models/projector.h"
#include "setok/models/setok.h"
#include "setok/models/vit.h"
#include "setok/tokenizer.h"

struct setok_chat {
    setok_model *model;
    setok_backend *backend;      /* the model's */
    setok_dtype dtype;
    /* the model's components (borrowed) */
    setok_vit *vit;
    setok_merger *merger;        /* bundle: the setok component; NULL for LLaVA */
    const setok_projector *projector; /* LLaVA multi_modal_projector / bundle projector_in */
    setok_llama *llm;
    setok_text_tokenizer *tok;
    int feature_layer;           /* hidden_states index of the image features */
    bool drop_cls;
    bool cluster_pe;             /* add the 2-D position embedding before clustering */
    /* The prompt (chat.h): the model's format, and what stands for the image in it
     * ("<image>\n" with the tokenizer's image token, "[Img]<image>[/Img]\n") */
    const setok_prompt_format *form;
    char *image_text;
    int32_t image_token;
    int32_t image_start;         /* bundle: the id of "[Img]"; -1 for LLaVA */
    int vocab;
    int64_t max_context;
    setok_llama_cache *cache;    /* the conversation; allocated on the first question */
    setok_arena arena;
    setok_sampler sampler;
    float *logits;               /* [vocab] host f32 */
    void *staging;               /* model-dtype host bytes */
    size_t staging_bytes;
    unsigned char *image_embeds; /* [n_image, hidden] model dtype; NULL: no image */
    int n_image;
    setok_chat_timings image_timings;
    int turns;                   /* user turns asked since start */
    int32_t pending;             /* the last answer's final id, not yet in the cache; -1: none */
    int32_t *history;            /* every id of the conversation, for the repetition penalty */
    size_t n_history, history_cap;
    setok_rng rng;
};

/* Makes c->arena hold at least need bytes (its contents are lost when it grows). */
setok_status chat_ensure_arena(setok_chat *c, size_t need, setok_error *err);

/* Takes the model's components and fills the template's parts for its kind. */
setok_status chat_bind(setok_chat *c, setok_error *err);
/* Frees what chat_bind allocated. */
void chat_unbind(setok_chat *c);
/* The id of a special token, which the tokenizer must know as one token. */
setok_status chat_special_id(const setok_chat *c, const char *key, const char *token,
                             int32_t *id, setok_error *err);

/* This turn's prompt ids (the chat template; the image token expanded to
 * n_image positions), malloc'd. system: the first turn's system prompt (NULL: the
 * format's). */
setok_status chat_build_prompt(setok_chat *c, const char *question, const char *system,
                               int32_t **out, size_t *n_out, setok_error *err);
/* ids [n] -> emb [n, hidden] (carved from c->arena, which the caller reset),
 * the image rows spliced into the image token positions. */
setok_status chat_embed_prompt(setok_chat *c, const int32_t *ids, size_t n, setok_tensor *emb,
                               setok_error *err);

/* image -> c->image_embeds [n_image, hidden] and c->image_timings. */
setok_status chat_encode_image(setok_chat *c, const setok_image *image,
                               const setok_chat_options *o, setok_error *err);

#endif
