/* chat.h — the `chat` pipeline (DESIGN §8): image question answering with
 * streamed text, on two kinds of model folder.
 *
 * A LLaVA-1.5 folder mirrors transformers' LlavaForConditionalGeneration
 * (modeling_llava.py) and LlavaProcessor in the llava-hf/llava-1.5-7b-hf
 * layout: one config.json (vision_config, text_config, image_token_index or
 * image_token_id, projector_hidden_act, vision_feature_layer,
 * vision_feature_select_strategy), the weights, and tokenizer.json.
 *   image -> vision tower -> hidden_states[vision_feature_layer] (CLS dropped
 *     for the "default" strategy) -> multi_modal_projector -> N embeddings.
 * With SETOK_CHAT_IMAGE_SETOK the N embeddings are the projected SeTok
 * cluster means of the same features (paper Table 9), N = the token count.
 *
 * A SETOKIM bundle (bundle.h; tools/setokim/bundle.py SetokimModel):
 *   image -> vision/ -> hidden_states[manifest vision_feature_layer], CLS
 *     dropped -> SeTok clustering (the setok/ merger config's defaults, or
 *     the options' cluster) -> merger tokens [N, output_size] -> projector_in
 *     -> N embeddings; llm/ is the decoder and holds tokenizer.json.
 * Its comparison switch, SETOK_CHAT_IMAGE_PATCHES, makes every patch its own
 * cluster (the merger runs on N singleton clusters), because the bundle's
 * projector only understands merger tokens. projector_out/ is loaded and
 * checked when the manifest lists it (it maps LLM hidden states to visual
 * embeddings for generation; chat does not use it).
 *
 * Both: prompt -> ids (BOS added) -> the one image token repeated N times
 * -> embed_tokens, with the N embeddings scattered into those positions (the
 * model's masked_scatter); prefill through the KV cache, then one token at a
 * time through the sampler.
 *
 * The prompt follows the model's setok_prompt_format (model.h: a LLaVA
 * folder's chat template, or the LLaVA v1 form; a bundle's manifest). First
 * turn: "<system> USER: <img><question> ASSISTANT:", where <system> is the
 * options' system_prompt or else the format's (nothing, not even the space,
 * when it is empty) and <img> the format's image ("<image>\n", or
 * "[Img]<image>[/Img]\n" for a bundle); a turn without an image has no
 * <img>. Later turns are appended to the same cache without BOS, after the
 * answer's end: "</s>USER: <question> ASSISTANT:" in the LLaVA v1 form,
 * " USER: <question> ASSISTANT:" in llava-hf's. */
#ifndef SETOK_CHAT_H
#define SETOK_CHAT_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "model.h"
#include "models/setok.h"
#include "sampling.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_chat setok_chat;

typedef enum setok_chat_image_mode {
    SETOK_CHAT_IMAGE_DEFAULT = 0, /* the model's own: PATCHES for LLaVA, SETOK for a bundle */
    SETOK_CHAT_IMAGE_PATCHES,     /* every patch (bundle: each patch its own cluster) */
    SETOK_CHAT_IMAGE_SETOK,       /* SeTok clusters: means (LLaVA) or merger tokens (bundle) */
} setok_chat_image_mode;

typedef struct setok_chat_options {
    setok_sampling_params sampling;
    setok_chat_image_mode image_mode;
    setok_image_fit fit;             /* the whole image padded to a square (default), or
                                        the processor's centre crop (models/vit.h) */
    /* SeTok clustering: cluster when cluster_override, else the model's defaults
     * (setok_chat_cluster_defaults). */
    bool cluster_override;
    setok_cluster_params cluster;
    const atomic_bool *cancel;       /* checked before every layer and token */
    /* Each piece of answer text as it completes (never splits UTF-8 or a stop
     * string); return false to stop generating. May be NULL. */
    bool (*on_text)(const char *text, void *user);
    void *user;
    /* The system prompt of a conversation's first turn: NULL for the model's
     * (setok_model_prompt_format), "" for none. */
    const char *system_prompt;
} setok_chat_options;

SETOK_API void setok_chat_options_default(setok_chat_options *o);

typedef struct setok_chat_timings {
    double encode_ms;        /* preprocess + vision tower */
    double cluster_ms;       /* SeTok clustering and the means or the merger; 0 for LLaVA
                                patches */
    double project_ms;       /* multi_modal_projector / projector_in */
    double prefill_ms;       /* prompt through the LLM */
    double first_token_ms;   /* from the call to the first token (prefill + sampling) */
    double decode_ms;        /* the tokens after the first */
    double decode_tokens_per_s;
} setok_chat_timings;

/* Zero-initialize; setok_chat_ask refills it; free with setok_chat_result_free. */
typedef struct setok_chat_result {
    char *text;              /* the answer, stop string and EOS excluded */
    int32_t *ids;            /* [n_ids] generated ids, the final EOS included */
    int n_ids;
    int32_t *prompt_ids;     /* [n_prompt] the ids this turn prefilled: the template, the
                                image token once per image position, and on a later turn
                                the previous answer's unfed last id and separator first */
    int n_prompt;            /* positions this turn prefilled (image tokens included) */
    int n_image_tokens;
    const char *stop_reason; /* "eos", "stop", "length", "callback" or "context" */
    setok_chat_timings timings;
} setok_chat_result;

SETOK_API void setok_chat_result_free(setok_chat_result *r);

/* A conversation over a model with SETOK_CAP_CHAT (model.h: a LLaVA folder or
 * a SETOKIM bundle; a LoRA adapter is the model's option). Loads the
 * components the first time; the model must outlive c. max_context <= 0:
 * min(max_position_embeddings, 4096) positions, allocated at the first
 * question. */
SETOK_API setok_status setok_chat_new(setok_chat **out, setok_model *model, int max_context,
                            setok_error *err);
SETOK_API void setok_chat_free(setok_chat *c);
SETOK_API setok_model *setok_chat_model(const setok_chat *c);

/* The clustering used when the options do not override it: the bundle
 * merger's config (cluster_mode, cluster_k, ...), else
 * setok_cluster_params_default(). */
SETOK_API setok_cluster_params setok_chat_cluster_defaults(const setok_chat *c);

/* Starts a new conversation (the cache is emptied) about image, or about no
 * image when image is NULL; the image is encoded here, once. */
SETOK_API setok_status setok_chat_start(setok_chat *c, const setok_image *image,
                              const setok_chat_options *o, setok_error *err);
/* Starts a new conversation about the image the last setok_chat_start encoded (or about no
 * image), without encoding it again. */
SETOK_API void setok_chat_restart(setok_chat *c, const setok_chat_options *o);
/* Adds a user turn and generates the assistant's answer into r. The whole
 * conversation stays in the KV cache, so a follow-up prefills only itself. */
SETOK_API setok_status setok_chat_ask(setok_chat *c, const char *question, const setok_chat_options *o,
                            setok_chat_result *r, setok_error *err);

/* A SETOKIM bundle's image output (tools/setokim/generation.py has the layout): the
 * prompt for a generation request (image NULL: "USER: {text} ASSISTANT:") or an edit
 * request (the image in the prompt, text the instruction), then [Img] and the bundle's
 * visual_tokens; the LLM's final hidden states at those slots through projector_out are
 * the image's visual tokens -> out [count, dim] host f32 (setok_chat_visual_token_count
 * and _dim; 0 when the model cannot generate). Starts a fresh conversation about image,
 * as setok_chat_start does; the request itself runs in a cache of its own. */
SETOK_API int setok_chat_visual_token_count(const setok_chat *c);
SETOK_API int setok_chat_visual_token_dim(setok_chat *c);
SETOK_API setok_status setok_chat_visual_tokens(setok_chat *c, const setok_image *image, const char *text,
                                      const setok_chat_options *o, float *out, setok_error *err);

/* Referring segmentation on a bundle with segment_token and projector_seg
 * (tools/setokim/segmentation.py): the request "segment {expression}" about
 * the image the last setok_chat_start encoded, then the segment token; the
 * LLM's final hidden state there through projector_seg -> out
 * [setok_chat_segment_dim] host f32, the mask decoder's prompt embedding.
 * The conversation is left as it was. */
SETOK_API int setok_chat_segment_dim(setok_chat *c);
SETOK_API setok_status setok_chat_segment_embedding(setok_chat *c, const char *expression,
                                          const setok_chat_options *o, float *out,
                                          setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
