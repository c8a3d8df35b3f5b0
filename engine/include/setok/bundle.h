/* bundle.h — the SETOKIM model bundle (DESIGN §5): a folder with a manifest,
 * setokim.json, and one Hugging Face-layout subfolder per component.
 *
 * The one reader of setokim.json. Version 1 (tools/setokim/bundle.py writes it):
 *   "format": "setokim"                       required
 *   "version": 1                              required; other versions are refused
 *   "components": {"vision": "vision", ...}   required object of relative paths; the
 *       names are setok_bundle_component's. A missing entry means the feature is not
 *       in this bundle; names this engine does not know are ignored.
 *   "image_size": 128                         optional (0: not stated); the vision
 *       tower's processor must produce image_size x image_size inputs
 *   "vision_feature_layer": -1                optional, default -1 (HF hidden_states index)
 *   "special_tokens": {"image": "<image>", "image_start": "[Img]", "image_end": "[/Img]"}
 *                                             optional, these defaults
 *   "system_prompt": ""                       optional, default none
 *   "visual_tokens": ["<vis_0>", ...]         optional: the added tokens whose final hidden
 *       states are a generated image's visual tokens (tools/setokim/generation.py has the
 *       layout); without it the bundle does not generate
 *   "segment_token": "<seg>"                  optional: the added token whose final hidden
 *       state, through projector_seg, prompts the mask decoder (referring segmentation;
 *       tools/setokim/segmentation.py)
 *   "domain": {                               optional: what the model was trained on
 *       "kind": "synthetic-shapes",           required in domain: a short identifier
 *           ("synthetic-shapes": the world generator's scenes, setok/world.h; "photographs";
 *           "any"). Apps may check images against kinds they know and warn.
 *       "description": "...",                 optional: a sentence for people
 *       "suggest": "..."}                     optional: what to load for images outside it
 *   "card": {                                 optional: the model card in brief
 *       "summary": "...",                     optional: a paragraph for people
 *       "metrics": [{"name": "qa_accuracy",   optional, at most SETOK_BUNDLE_MAX_CARD_ITEMS:
 *                    "label": "...",          headline numbers; name and label non-empty,
 *                    "value": 0.5,            value a number, unit "fraction" (shown as a
 *                    "unit": "fraction"}],    percentage), "ms" or absent (a plain number)
 *       "questions": [{"kind": "count",       optional, at most SETOK_BUNDLE_MAX_CARD_ITEMS:
 *                      "example": "..."}]}    the question kinds it was trained on, each with
 *                                             an example it answers as trained
 * Component paths must be relative, free of ".." and stay inside the bundle
 * after symbolic links are resolved; every listed component must be a folder.
 * Errors name setokim.json and the key: "m/setokim.json: components.llm: 'x' is
 * not a folder". */
#ifndef SETOK_BUNDLE_H
#define SETOK_BUNDLE_H

#include "export.h"

#include <stdbool.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_BUNDLE_MANIFEST "setokim.json"
#define SETOK_BUNDLE_VERSION 1
#define SETOK_BUNDLE_MAX_VISUAL_TOKENS 256
#define SETOK_BUNDLE_MAX_CARD_ITEMS 32

typedef enum setok_bundle_component {
    SETOK_BUNDLE_VISION = 0,    /* CLIPVisionModel / SiglipVisionModel */
    SETOK_BUNDLE_SETOK,         /* SetokMerger (+ clustering defaults) */
    SETOK_BUNDLE_LLM,           /* LlamaForCausalLM + tokenizer.json */
    SETOK_BUNDLE_PROJECTOR_IN,  /* SetokimProjector: merger tokens -> LLM embeddings */
    SETOK_BUNDLE_PROJECTOR_OUT, /* SetokimProjector: LLM hidden states -> visual embeddings */
    SETOK_BUNDLE_MAPPER,
    SETOK_BUNDLE_UNET,
    SETOK_BUNDLE_VAE,
    SETOK_BUNDLE_SCHEDULER,
    SETOK_BUNDLE_MASK_DECODER,  /* SamModel: prompt encoder + mask decoder */
    SETOK_BUNDLE_PROJECTOR_SEG, /* SetokimProjector: LLM state at the segment token -> prompt */
    SETOK_BUNDLE_COMPONENT_COUNT
} setok_bundle_component;

/* A headline number of the model card. */
typedef struct setok_bundle_metric {
    char *name;   /* "qa_accuracy" */
    char *label;  /* "Question answering accuracy" */
    double value;
    char *unit;   /* "fraction", "ms", or "" for a plain number */
} setok_bundle_metric;

/* A kind of question the model was trained on, with an example. */
typedef struct setok_bundle_question {
    char *kind;    /* "count" */
    char *example; /* "how many objects are there?" */
} setok_bundle_question;

typedef struct setok_bundle {
    char *dir;                                       /* the bundle folder, as given */
    char *manifest;                                  /* dir/setokim.json */
    int version;
    char *components[SETOK_BUNDLE_COMPONENT_COUNT];  /* dir/<path>; NULL when not listed */
    int image_size;                                  /* 0: not stated */
    int vision_feature_layer;
    char *image_token, *image_start, *image_end;     /* "<image>", "[Img]", "[/Img]" */
    char *system_prompt;                             /* "" when none */
    char **visual_tokens;                            /* [n_visual_tokens]; NULL when none */
    int n_visual_tokens;
    char *segment_token;                             /* NULL when none */
    /* the training domain; NULL when not stated */
    char *domain_kind, *domain_description, *domain_suggest;
    char *card_summary;                              /* NULL when not stated */
    setok_bundle_metric *metrics;                    /* [n_metrics] */
    int n_metrics;
    setok_bundle_question *questions;                /* [n_questions] */
    int n_questions;
} setok_bundle;

/* Whether dir holds a setokim.json (a regular file). */
SETOK_API bool setok_bundle_is_bundle(const char *dir);

/* Reads and validates dir/setokim.json into b (zeroed first; free with
 * setok_bundle_free, also after a failure). Malformed manifests are
 * SETOK_ERR_INPUT. */
SETOK_API setok_status setok_bundle_load(setok_bundle *b, const char *dir, setok_error *err);
SETOK_API void setok_bundle_free(setok_bundle *b);

/* "vision", "setok", "llm", "projector_in", ... as the manifest spells them. */
SETOK_API const char *setok_bundle_component_name(setok_bundle_component c);

/* The component's folder, or a SETOK_ERR_INPUT error naming the manifest and
 * what the component is needed for (`purpose`, e.g. "chat"). */
SETOK_API setok_status setok_bundle_require(const setok_bundle *b, setok_bundle_component c,
                                  const char *purpose, const char **path, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
