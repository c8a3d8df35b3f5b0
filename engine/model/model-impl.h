/* model-impl.h — the state of a setok_model, shared by model.c (kinds,
 * capabilities, the component table), model-load.c (loading each component
 * and checking that they fit) and model-features.c (the image feature cache).
 * Not installed; nothing outside engine/model includes it. */
#ifndef SETOK_MODEL_IMPL_H
#define SETOK_MODEL_IMPL_H

#include "setok/arena.h"
#include "setok/model.h"

/* One component: where it is, and once loaded, the object. */
typedef struct model_component {
    char *path;          /* NULL: the model has none */
    void *obj;           /* setok_vit *, setok_llama *, setok_projector *, ... */
    int loads;
    double load_ms;
    size_t bytes;
    char *error;         /* the load failed with this; it is not retried */
} model_component;

#define MODEL_FEATURE_CACHE 4

typedef struct model_features {
    uint64_t key;        /* hash of the image's pixels and size, the layer and the fit */
    int layer;
    setok_image_fit fit;
    uint64_t stamp;      /* last use, for eviction; 0: empty */
    float *rows;
    setok_image_features f;
} model_features;

#define MODEL_SAM_CACHE 4

typedef struct model_sam_slot {
    uint64_t key;        /* hash of the image's pixels and size */
    uint64_t stamp;      /* last use, for eviction; 0: empty */
    float *data;
    setok_sam_embedding e;
} model_sam_slot;

struct setok_model {
    char *dir;
    setok_model_kind kind;
    char *adapter;
    setok_backend *backend;
    setok_backend *host;          /* the same as backend on the CPU */
    setok_dtype dtype;            /* activations and small tensors */
    setok_dtype matrix;           /* linear layers' weights and embedding tables */
    setok_bundle bundle;          /* SETOKIM only */
    int32_t image_token_index;    /* LLaVA only; else -1 */
    setok_op llava_projector_act; /* LLaVA only */
    char *scheduler_dir, *tokenizer_dir;
    /* chat prompts (model-prompt.c): valid when has_prompt; its strings are owned here */
    bool has_prompt;
    setok_prompt_format prompt;
    char *prompt_strings[4];
    char **notes;
    int n_notes;
    model_component comp[SETOK_COMPONENT_COUNT];
    /* per capability: the components it needs, and why it is unavailable (NULL: it is) */
    unsigned needs[SETOK_CAP_COUNT];
    char *why_not[SETOK_CAP_COUNT];
    bool checked[SETOK_CAP_COUNT]; /* its components loaded and found to fit */
    /* image features */
    model_features cache[MODEL_FEATURE_CACHE];
    uint64_t clock;
    int encodes;
    setok_arena arena;
    void *staging;
    size_t staging_bytes;
    float *pixels;
    size_t pixels_bytes;
    model_sam_slot sam_cache[MODEL_SAM_CACHE];
};

/* Adds a note (setok_model_note): printf-style. */
setok_status model_note(setok_model *m, const char *fmt, ...) SETOK_PRINTF(2, 3);
/* The prompt format of a LLaVA folder or a bundle (model-prompt.c), with its notes. A
 * malformed template file is an error naming it (the chat capability's reason). */
setok_status model_prompt_init(setok_model *m, setok_error *err);
/* A note for each vision tower without image processor settings. */
setok_status model_processor_notes(setok_model *m, setok_error *err);
void model_prompt_free(setok_model *m);

/* Loads component c into m->comp[c] (once; a failure is remembered). */
setok_status model_load_component(setok_model *m, setok_component c, setok_error *err);
/* Checks that the loaded components of cap fit each other (shapes, tokens). */
setok_status model_check_fit(setok_model *m, setok_capability cap, setok_error *err);
/* Frees every loaded component and the feature cache. */
void model_unload(setok_model *m);
void model_features_free(setok_model *m);
/* Frees the SAM embedding cache (model-sam.c). */
void model_sam_free(setok_model *m);
/* A hash of the image's pixels and size, and of tag (what the key is for: the feature
 * layer and fit, or the SAM embedding). */
uint64_t model_image_key(const setok_image *image, int tag);
/* m->arena with at least need bytes (its contents are lost when it grows). */
setok_status model_ensure_arena(setok_model *m, size_t need, setok_error *err);

#endif
