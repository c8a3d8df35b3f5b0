/* model.h — one loaded model per folder (DESIGN §4, §5).
 *
 * setok_model_open looks at a folder once and decides, in one place, what it
 * is and what it can do:
 *   SETOK_MODEL_SETOKIM    setokim.json (bundle.h): every capability its components allow
 *   SETOK_MODEL_LLAVA      config.json of LlavaForConditionalGeneration (chat.h)
 *   SETOK_MODEL_VISION     config.json of a CLIP/SigLIP tower (or vision/ [+ setok/]
 *                          subfolders without a manifest): tokens and segmentation by points
 *   SETOK_MODEL_DIFFUSION  a diffusers Stable Diffusion, InstructPix2Pix or inpainting
 *                          folder (model_index.json, or unet/ vae/ text_encoder/
 *                          tokenizer/ scheduler/): generation and editing
 *   SETOK_MODEL_SAM        config.json of transformers' SamModel (image encoder, prompt
 *                          encoder, mask decoder): segmentation by points and boxes
 * Nothing heavy happens at open: each component (the vision tower, the LLM, the
 * U-Net, ...) is loaded on first use, exactly once, onto the model's backend,
 * and stays until setok_model_free. The pipelines (tokens.h, chat.h,
 * segment.h, diffusion.h) are per-call state over a model; they never create
 * backends or read weights themselves, so any number of them share one copy.
 *
 * A capability whose components are missing is unavailable from the start,
 * with a reason; one whose component turns out broken when loaded becomes
 * unavailable with the load error, and the model's other capabilities keep
 * working. Not thread-safe: one thread uses a model at a time. */
#ifndef SETOK_MODEL_H
#define SETOK_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "bundle.h"
#include "error.h"
#include "export.h"
#include "image.h"
#include "models/clip_text.h"
#include "models/llama.h"
#include "models/mask_decoder.h"
#include "models/projector.h"
#include "models/qformer.h"
#include "models/sam_vision.h"
#include "models/setok.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/vit.h"
#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_model setok_model;

typedef enum setok_model_kind {
    SETOK_MODEL_SETOKIM = 0,
    SETOK_MODEL_LLAVA,
    SETOK_MODEL_VISION,
    SETOK_MODEL_DIFFUSION,
    SETOK_MODEL_SAM,
    SETOK_MODEL_KIND_COUNT
} setok_model_kind;

typedef enum setok_capability {
    SETOK_CAP_TOKENS = 0,     /* semantic tokens of an image (tokens.h) */
    SETOK_CAP_CHAT,           /* questions about an image (chat.h) */
    SETOK_CAP_SEGMENT_POINTS, /* the object under a point (segment.h) */
    SETOK_CAP_SEGMENT_PHRASE, /* the object a phrase names (segment.h) */
    SETOK_CAP_GENERATE,       /* text to image (diffusion.h) */
    SETOK_CAP_EDIT,           /* region editing (diffusion.h) */
    SETOK_CAP_COUNT
} setok_capability;

typedef enum setok_component {
    SETOK_COMPONENT_VISION = 0,     /* CLIP / SigLIP tower (setok_vit) */
    SETOK_COMPONENT_MERGER,         /* SeTok cluster merger (setok_merger) */
    SETOK_COMPONENT_TEXT_TOKENIZER, /* the LLM's, or Stable Diffusion's CLIP tokenizer */
    SETOK_COMPONENT_LLM,            /* LlamaForCausalLM (setok_llama) */
    SETOK_COMPONENT_PROJECTOR_IN,   /* LLaVA multi_modal_projector / bundle projector_in */
    SETOK_COMPONENT_PROJECTOR_OUT,  /* bundle: LLM states -> visual tokens */
    SETOK_COMPONENT_PROJECTOR_SEG,  /* bundle: LLM state at <seg> -> mask prompt */
    SETOK_COMPONENT_MAPPER,         /* bundle: Q-Former (setok_qformer) */
    SETOK_COMPONENT_TEXT_ENCODER,   /* Stable Diffusion: CLIPTextModel (setok_clip_text) */
    SETOK_COMPONENT_UNET,
    SETOK_COMPONENT_VAE,
    SETOK_COMPONENT_MASK_DECODER,   /* SAM prompt encoder + mask decoder */
    SETOK_COMPONENT_SAM_VISION,     /* SAM's image encoder (setok_sam_vision) */
    SETOK_COMPONENT_COUNT
} setok_component;

SETOK_API const char *setok_model_kind_name(setok_model_kind kind);          /* "setokim", ... */
SETOK_API const char *setok_capability_name(setok_capability cap);          /* "chat", ... */
SETOK_API const char *setok_component_name(setok_component component);      /* "llm", ... */

typedef struct setok_model_options {
    const char *device;  /* "cpu", "cuda" or "auto" (NULL: "auto") */
    int threads;         /* CPU threads; <= 0: every core */
    const char *adapter; /* a PEFT LoRA folder merged into the LLM when it loads, or NULL */
    /* The weights' dtype: "f32", "f16", "bf16", or "auto" (NULL). On a GPU the
     * model runs in it (auto: f16). On the CPU activations are f32 and the
     * matrices of the linear layers (LLM, vision tower, Q-Former, text encoder,
     * U-Net transformers) and the embedding tables stay in it, used in place
     * from the files when they hold it (auto: f32 for models up to 2 GiB in
     * f32, where widening is fastest, else the files' own 16-bit dtype). */
    const char *dtype;
    /* "q8" or "q4": those matrices block-quantized (quant.h) on load, or taken
     * as stored by `setok quantize`; CPU only. NULL: none, except that a folder
     * `setok quantize` wrote keeps its format unless dtype names another. */
    const char *weights;
} setok_model_options;

SETOK_API void setok_model_options_default(setok_model_options *o);

/* Decides dir's kind and capabilities and creates the backends; loads no
 * weights. A folder of no known kind is SETOK_ERR_INPUT naming what was
 * looked for. o NULL: the defaults. */
SETOK_API setok_status setok_model_open(setok_model **out, const char *dir,
                                        const setok_model_options *o, setok_error *err);
SETOK_API void setok_model_free(setok_model *m);

SETOK_API const char *setok_model_dir(const setok_model *m);
SETOK_API setok_model_kind setok_model_kind_of(const setok_model *m);
/* Where the components run, and the host backend clustering uses (the same
 * backend on the CPU). */
SETOK_API setok_backend *setok_model_backend(const setok_model *m);
SETOK_API setok_backend *setok_model_host_backend(const setok_model *m);
/* The dtype activations and small tensors take (f32 on the CPU, f16 on CUDA), and
 * the one the matrices of the linear layers take (model options). */
SETOK_API setok_dtype setok_model_dtype(const setok_model *m);
SETOK_API setok_dtype setok_model_matrix_dtype(const setok_model *m);
/* "CPU, 2 threads, OpenBLAS 0.3.21" or the GPU's name. */
SETOK_API const char *setok_model_device(const setok_model *m);

/* Whether the capability is available now; when not, why (a sentence naming
 * the file or the missing part), else NULL. */
SETOK_API bool setok_model_can(const setok_model *m, setok_capability cap);
SETOK_API const char *setok_model_why_not(const setok_model *m, setok_capability cap);
/* Loads every component the capability needs (once) and checks they fit each
 * other. An unavailable capability, or a component that fails to load, is an
 * error "CAPABILITY: REASON" (SETOK_ERR_INPUT for missing or malformed files);
 * after a failure the capability stays unavailable with that reason. */
SETOK_API setok_status setok_model_require(setok_model *m, setok_capability cap,
                                           setok_error *err);
/* Loads every component the folder has (setok info --load). The first
 * failure is returned; the other components are still loaded. */
SETOK_API setok_status setok_model_load_all(setok_model *m, setok_error *err);

/* Copies model folder in_dir to out_dir (created; not inside in_dir) with the
 * matrices of the linear layers stored block-quantized ("q8" or "q4"), so that
 * loading it reads a quarter / an eighth of the bytes and quantizes nothing.
 * Every other file is copied as it is. The copy opens with or without
 * options.weights (another dtype decodes the blocks). Only this engine reads
 * such folders: their config.json says so under "setok_quantization".
 * progress (may be NULL) hears of each component folder before it is written. */
typedef void (*setok_quantize_progress)(const char *folder, int done, int total, void *user);
SETOK_API setok_status setok_model_quantize(const char *in_dir, const char *out_dir,
                                            const char *weights, int threads,
                                            setok_quantize_progress progress, void *user,
                                            setok_error *err);

/* What the model knows of one component. */
typedef struct setok_component_info {
    const char *path;   /* its folder or file; NULL when the model has none */
    bool loaded;
    int loads;          /* times it was loaded: 0 or 1 */
    double load_ms;     /* wall time of the load */
    size_t bytes;       /* backend memory it took (weights and tables) */
    const char *error;  /* why its load failed, else NULL */
} setok_component_info;

SETOK_API void setok_model_component_info(const setok_model *m, setok_component c,
                                          setok_component_info *info);
/* How many times a vision tower ran (setok_model_encode_image cache misses). */
SETOK_API int setok_model_encode_count(const setok_model *m);

/* ------------------------------------------------------------------------
 * Components, loaded on first call. Each returns SETOK_ERR_INPUT naming the
 * folder when the model has no such component. */

SETOK_API setok_status setok_model_vit(setok_model *m, setok_vit **out, setok_error *err);
/* NULL (and SETOK_OK) when the model's tokens are cluster means (LLaVA, a tower alone). */
SETOK_API setok_status setok_model_merger(setok_model *m, setok_merger **out, setok_error *err);
SETOK_API setok_status setok_model_text_tokenizer(setok_model *m, setok_text_tokenizer **out,
                                                  setok_error *err);
SETOK_API setok_status setok_model_llm(setok_model *m, setok_llama **out, setok_error *err);
SETOK_API setok_status setok_model_projector(setok_model *m, setok_component which,
                                             const setok_projector **out, setok_error *err);
SETOK_API setok_status setok_model_mapper(setok_model *m, setok_qformer **out, setok_error *err);
SETOK_API setok_status setok_model_text_encoder(setok_model *m, setok_clip_text **out,
                                                setok_error *err);
SETOK_API setok_status setok_model_unet(setok_model *m, setok_unet **out, setok_error *err);
SETOK_API setok_status setok_model_vae(setok_model *m, setok_vae **out, setok_error *err);
SETOK_API setok_status setok_model_mask_decoder(setok_model *m, setok_mask_decoder **out,
                                                setok_error *err);
SETOK_API setok_status setok_model_sam_vision(setok_model *m, setok_sam_vision **out,
                                              setok_error *err);

/* ------------------------------------------------------------------------
 * How a chat model writes its prompts (chat.h), decided at open.
 *
 * A LLaVA folder's comes from its chat template: chat_template.json, else
 * chat_template.jinja, else tokenizer_config.json's chat_template (the
 * "default" one of a list), the order transformers reads them in. The engine
 * has no Jinja interpreter: it recognises the LLaVA-1.5 / Vicuna templates by
 * the strings they write, as two forms:
 *   SETOK_PROMPT_LLAVA_HF  llava-hf's: "USER: <image>\n<q> ASSISTANT: <a> USER: <q2> ASSISTANT:",
 *                          a system prompt (only when asked for) written as "<s> " in front;
 *   SETOK_PROMPT_LLAVA_V1  LLaVA's conv_vicuna_v1: "<system> USER: <image>\n<q> ASSISTANT:
 *                          <a></s>USER: <q2> ASSISTANT:", the system prompt the template's.
 * A folder without a template, or with one it does not recognise, takes the
 * LLaVA v1 form with LLaVA's Vicuna system prompt, and says so in a note
 * (setok_model_note). A SETOKIM bundle takes the v1 form with its manifest's
 * system prompt and "[Img]<image>[/Img]". */

typedef enum setok_prompt_style {
    SETOK_PROMPT_LLAVA_V1 = 0, /* an answer ends with EOS ("</s>") before the next turn */
    SETOK_PROMPT_LLAVA_HF,     /* an answer ends with " " */
} setok_prompt_style;

typedef struct setok_prompt_format {
    setok_prompt_style style;
    const char *name;          /* "llava-v1", "llava-hf" or "setokim" */
    const char *source;        /* the file it was read from; NULL: the engine's default */
    const char *system;        /* the default system prompt; "" for none */
    const char *system_prefix; /* written before a system prompt: "" or "SYSTEM: " */
    const char *image;         /* what stands for the image before the first question */
} setok_prompt_format;

/* NULL for a model that cannot chat, or whose chat template files are malformed
 * (the chat capability then says why). */
SETOK_API const setok_prompt_format *setok_model_prompt_format(const setok_model *m);

/* ------------------------------------------------------------------------
 * What the engine chose where the folder says nothing: one sentence each,
 * naming the folder and what is missing (a vision tower without image
 * processor settings takes its class's defaults at the tower's image size; a
 * LLaVA folder without a chat template it recognises takes the LLaVA v1
 * prompt). The CLI prints them on stderr and `setok info` lists them. */
SETOK_API int setok_model_note_count(const setok_model *m);
SETOK_API const char *setok_model_note(const setok_model *m, int i);

/* The manifest of a SETOKIM bundle; NULL for other kinds. */
SETOK_API const setok_bundle *setok_model_bundle(const setok_model *m);
/* A LLaVA folder's image_token_index; -1 for other kinds. */
SETOK_API int32_t setok_model_image_token_index(const setok_model *m);
/* A diffusers folder's scheduler/ (scheduler_config.json), or a bundle's; NULL when none. */
SETOK_API const char *setok_model_scheduler_dir(const setok_model *m);
/* A diffusers folder's tokenizer/ (for tokenizer_config.json); NULL for other kinds. */
SETOK_API const char *setok_model_tokenizer_dir(const setok_model *m);
/* The hidden_states index image features come from: a bundle's
 * vision_feature_layer, LLaVA's vision_feature_layer, else the last layer.
 * Needs the vision tower's config (loads the tower). */
SETOK_API setok_status setok_model_feature_layer(setok_model *m, int *layer, setok_error *err);

/* ------------------------------------------------------------------------
 * Image features, computed once per image */

typedef struct setok_image_features {
    const float *rows;   /* [n_rows, dim] host f32, valid until the next call on the model */
    int n_rows;          /* grid_h * grid_w, plus 1 when has_cls */
    int grid_h, grid_w, dim;
    bool has_cls;        /* rows[0] is the class token; the patches follow */
    int width, height;   /* the model input (after padding, resize and crop) */
    double encode_ms;    /* preprocessing + the tower; 0 when it came from the cache */
} setok_image_features;

/* image -> the vision tower's hidden_states[layer] (every token, CLS
 * included), through fit (models/vit.h: padded to a square, or centre-cropped)
 * and the tower's processor. The last few results are kept, keyed by the
 * image's pixels, the layer and the fit, so the tokens, chat, segment and
 * edit pipelines encode an image once between them. cancel may be NULL. */
SETOK_API setok_status setok_model_encode_image(setok_model *m, const setok_image *image,
                                                int layer, setok_image_fit fit,
                                                const atomic_bool *cancel,
                                                setok_image_features *out, setok_error *err);

/* ------------------------------------------------------------------------
 * SAM image embeddings, computed once per image */

typedef struct setok_sam_embedding {
    const float *data;           /* [channels, grid, grid] host f32, valid until the next call
                                    on the model */
    int channels, grid;
    int resized_w, resized_h;    /* the image inside the padded input (reshaped_input_sizes) */
    int input_w, input_h;        /* the padded model input */
    double encode_ms;            /* preprocessing + the encoder; 0 when it came from the cache */
} setok_sam_embedding;

/* image -> SAM's image embedding through the folder's SamImageProcessor and
 * image encoder. The last few results are kept, keyed by the image's pixels,
 * so every click on one image encodes it once. cancel may be NULL. */
SETOK_API setok_status setok_model_sam_embed(setok_model *m, const setok_image *image,
                                             const atomic_bool *cancel, setok_sam_embedding *out,
                                             setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
