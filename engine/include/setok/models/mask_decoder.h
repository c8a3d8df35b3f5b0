/* mask_decoder.h — SAM's prompt encoder and two-way-transformer mask decoder
 * (DESIGN §6 "mask_decoder").
 *
 * Mirrors transformers' SamPromptEncoder and SamMaskDecoder as SamModel runs
 * them when it is given image_embeddings instead of pixel_values. A model
 * loads from a folder whose config.json is a SamConfig (architectures
 * ["SamModel"], model_type "sam"): mask_decoder_config, prompt_encoder_config
 * and vision_config (only its num_pos_feats is read; HF defaults fill
 * missing keys). Weights carry SamModel's names
 * ("shared_image_embedding.*", "prompt_encoder.*", "mask_decoder.*"); the
 * image encoder ("vision_encoder.*") is not needed and is skipped if present.
 *
 * Prompts (setok_sam_prompt) are what SamModel takes for one prompt per image
 * (point batch 1):
 *   points with labels: 1 foreground, 0 background, -1 "not a point"
 *     (not_a_point_embed), -10 padding (a zero embedding, ignored); as in
 *     transformers, a not-a-point entry is appended after the points when
 *     there is no box;
 *   a box (x1, y1, x2, y2): two corner tokens after the points;
 *   a mask [1, 4h, 4w] of logits, embedded by mask_embed into the dense
 *     embedding (else no_mask_embed is added to every image position).
 *
 * Referring segmentation. Extra [B, E, C] embeddings are appended after the
 * point and box embeddings (and the not-a-point padding) as further
 * sparse prompt tokens — exactly what SamMaskDecoder does with
 * torch.cat([sparse, extra], dim=2). This is how the SETOKIM bundle
 * conditions a mask on a vision token or an LLM hidden state (projected to
 * C): with no points at all the decoder sees only the output tokens and the
 * extra embeddings, as LISA-style models call it. */
#ifndef SETOK_MODELS_MASK_DECODER_H
#define SETOK_MODELS_MASK_DECODER_H

#include "../export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../ops.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Point labels (transformers' SamModel input_labels). */
enum {
    SETOK_SAM_LABEL_PAD = -10,
    SETOK_SAM_LABEL_NOT_A_POINT = -1,
    SETOK_SAM_LABEL_BACKGROUND = 0,
    SETOK_SAM_LABEL_FOREGROUND = 1,
};

typedef struct setok_mask_decoder_config {
    /* mask_decoder_config */
    int hidden_size;               /* C, also the prompt encoder's */
    int mlp_dim;
    int num_layers;                /* num_hidden_layers of the two-way transformer */
    int num_heads;
    int attention_downsample_rate; /* of final_attn_token_to_image; the blocks' cross
                                      attentions always use 2, as transformers builds them */
    int num_multimask_outputs;     /* mask tokens = this + 1 */
    int iou_head_depth, iou_head_hidden_dim;
    float layer_norm_eps;
    setok_op act;                  /* hidden_act of the transformer MLPs: relu (default) */
    /* prompt_encoder_config */
    int image_size;                /* the frame point coordinates are in (1024) */
    int image_embedding_size;      /* image_size / patch_size (64) */
    int num_point_embeddings;      /* 4: labels 0 and 1, then the two box corners */
    int mask_input_channels;       /* 16 */
    setok_op mask_act;             /* prompt_encoder_config.hidden_act: gelu */
    float mask_layer_norm_eps;     /* prompt_encoder_config.layer_norm_eps */
    /* vision_config */
    int num_pos_feats;             /* C / 2 random Fourier features */
} setok_mask_decoder_config;

/* HF's SamConfig defaults (facebook/sam-vit-*). */
SETOK_API void setok_mask_decoder_config_defaults(setok_mask_decoder_config *cfg);
/* Reads DIR/config.json (see above); errors name the file and the key. */
SETOK_API setok_status setok_mask_decoder_config_load(setok_mask_decoder_config *cfg, const char *dir,
                                            setok_error *err);

typedef struct setok_mask_decoder setok_mask_decoder;

/* Loads config.json and the weights of DIR onto backend as dtype. */
SETOK_API setok_status setok_mask_decoder_load(setok_mask_decoder **out, const char *dir,
                                     setok_backend *backend, setok_dtype dtype,
                                     setok_error *err);
/* A decoder of cfg's shape with deterministic pseudo-random weights (benchmarks). */
SETOK_API setok_status setok_mask_decoder_create_random(setok_mask_decoder **out,
                                                        const setok_mask_decoder_config *cfg,
                                                        setok_backend *backend, setok_dtype dtype,
                                                        uint32_t seed, setok_error *err);
SETOK_API void setok_mask_decoder_free(setok_mask_decoder *m);

SETOK_API const setok_mask_decoder_config *setok_mask_decoder_get_config(const setok_mask_decoder *m);
SETOK_API setok_dtype setok_mask_decoder_dtype(const setok_mask_decoder *m);
/* Masks per prompt: num_multimask_outputs when multimask, else 1. */
SETOK_API int setok_mask_decoder_num_masks(const setok_mask_decoder *m, bool multimask);

/* One prompt per image of a batch of B. Coordinates are pixels of the
 * image_size frame (x, y), as SamProcessor produces them. Every part is
 * optional; with none at all the decoder sees only its output tokens. */
typedef struct setok_sam_prompt {
    const float *points;       /* [B, P, 2], host memory; NULL when P == 0 */
    const int32_t *labels;     /* [B, P], host memory */
    int64_t num_points;        /* P */
    const float *boxes;        /* [B, 4] x1, y1, x2, y2, host memory, or NULL */
    const setok_tensor *masks; /* [B, 1, 4h, 4w] mask logits (model dtype, on the backend),
                                  or NULL */
    const setok_tensor *extra; /* [B, E, C] extra sparse embeddings (model dtype, on the
                                  backend), or NULL: after the points and the box */
} setok_sam_prompt;

/* Arena bytes one forward needs (outputs included) for a batch of B image
 * embeddings of h x w and this prompt (only its sizes are read; NULL: none). */
SETOK_API size_t setok_mask_decoder_arena_bytes(const setok_mask_decoder *m, int64_t batch, int64_t height,
                                      int64_t width, const setok_sam_prompt *prompt);

/* image_embeddings [B, C, h, w] (the model's dtype, on its backend; SAM's
 * own grid is image_embedding_size square, other grids get the positional
 * encoding of their own h x w) and prompt (NULL: none) ->
 * masks [B, M, 4h, 4w] (low-resolution mask logits, SamModel's pred_masks
 * without the point-batch axis) and iou_scores [B, M]: M =
 * num_multimask_outputs (masks 1..M) when multimask, else 1 (mask 0). Both
 * outputs are carved from arena and stay valid until the caller resets it
 * below them. cancel (may be NULL) is checked before every transformer
 * layer and before the upscaling. */
SETOK_API setok_status setok_mask_decoder_forward(setok_mask_decoder *m, setok_arena *arena,
                                        setok_tensor *masks, setok_tensor *iou_scores,
                                        const setok_tensor *image_embeddings,
                                        const setok_sam_prompt *prompt, bool multimask,
                                        const atomic_bool *cancel, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
