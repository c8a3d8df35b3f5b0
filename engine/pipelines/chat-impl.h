/* chat-impl.h — the chat pipeline's state, shared by chat.c (conversation:
 * prompts, prefill, decoding, streaming) and chat-model.c (the two folder
 * kinds: loading a LLaVA folder or a SETOKIM bundle, and an image -> its
 * projected embeddings). Not installed; not part of the public API. */
#ifndef SETOK_CHAT_IMPL_H
#define SETOK_CHAT_IMPL_H

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/chat.h"
#include "setok/models/llama.h"
#include "setok/models/projector.h"
#include "setok/models/setok.h"
#include "setok/models/vit.h"
#include "setok/tokenizer.h"

struct setok_chat {
    setok_backend *backend;
    setok_backend *cpu;          /* clustering; the same as backend on the CPU */
    setok_dtype dtype;
    setok_vit *vit;
    int feature_layer;           /* hidden_states index of the image features */
    bool drop_cls;
    setok_merger *merger;        /* bundle: the setok component; NULL for LLaVA */
    bool cluster_pe;             /* add the 2-D position embedding before clustering */
    setok_projector projector;   /* LLaVA multi_modal_projector / bundle projector_in */
    setok_projector projector_out; /* bundle projector_out when listed; else zeroed */
    setok_projector projector_seg; /* bundle projector_seg when listed; else zeroed */
    int32_t seg_id;              /* bundle segment_token's id; -1 when none */
    /* bundle: the last encoded image's patch features [grid_h * grid_w, dim] host f32
     * (the vision feature layer, CLS dropped); NULL before the first image */
    float *features;
    int grid_h, grid_w, feature_dim;
    setok_llama *llm;
    setok_text_tokenizer *tok;
    /* The template's model-specific parts (chat.h): */
    char *system_prompt;         /* "" for none */
    char *image_text;            /* what stands for the image: "<image>", "[Img]<image>[/Img]" */
    int32_t image_token;
    int32_t image_start;         /* bundle: the id of "[Img]"; -1 for LLaVA */
    int32_t *visual_ids;         /* bundle: the ids of setokim.json's visual_tokens */
    int n_visual;
    int vocab;
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

double chat_now_ms(void);
/* Grows *buf to at least bytes. */
setok_status chat_grow(void **buf, size_t *cap, size_t bytes, setok_error *err);
/* Makes c->arena hold at least need bytes (its contents are lost when it grows). */
setok_status chat_ensure_arena(setok_chat *c, size_t need, setok_error *err);

/* Fill the model parts of c (backend and dtype already set): the vision side,
 * the projector(s), the LLM, the tokenizer and the template's parts. */
setok_status chat_load_llava(setok_chat *c, const char *dir, const char *adapter_dir,
                             setok_error *err);
setok_status chat_load_bundle(setok_chat *c, const char *dir, const char *adapter_dir,
                              setok_error *err);
/* Frees what the loaders filled. */
void chat_unload(setok_chat *c);

/* This turn's prompt ids (the chat template; the image token expanded to
 * n_image positions), malloc'd. */
setok_status chat_build_prompt(setok_chat *c, const char *question, int32_t **out, size_t *n_out,
                               setok_error *err);
/* ids [n] -> emb [n, hidden] (carved from c->arena, which the caller reset),
 * the image rows spliced into the image token positions. */
setok_status chat_embed_prompt(setok_chat *c, const int32_t *ids, size_t n, setok_tensor *emb,
                               setok_error *err);

/* The final hidden states of a request: the first-turn prompt for text (with the image
 * set by the last setok_chat_start, if any), then tail[n_tail]; the last n_read of them
 * through proj -> out [n_read, proj->out_features] host f32. The cache is emptied after. */
setok_status chat_request_states(setok_chat *c, const char *text, const int32_t *tail, int n_tail,
                                 int n_read, const setok_projector *proj, const atomic_bool *cancel,
                                 float *out, setok_error *err);

/* host [n] f32 -> t (its dtype, on the backend; through c->staging). */
setok_status chat_upload_f32(setok_chat *c, setok_tensor *t, const float *host, size_t n,
                             setok_error *err);
/* x [n, d] on the backend -> host [n, d] f32 (through c->staging). */
setok_status chat_download_f32(setok_chat *c, float *host, const setok_tensor *x,
                               setok_error *err);

/* image -> c->image_embeds [n_image, hidden] and c->image_timings. */
setok_status chat_encode_image(setok_chat *c, const setok_image *image,
                               const setok_chat_options *o, setok_error *err);

#endif
