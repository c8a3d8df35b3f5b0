/* diffusion-blocks.h — private to engine/models: the layers that diffusers'
 * AutoencoderKL (vae.c) and UNet2DConditionModel (unet.c) share. Mirrors
 * diffusers' ResnetBlock2D, Downsample2D, Upsample2D (resnet.py,
 * downsampling.py, upsampling.py), the VAE mid-block Attention with group
 * norm and residual (attention_processor.py) and Transformer2DModel with
 * BasicTransformerBlock (transformer_2d.py, attention.py).
 *
 * Rules: each layer loads from its PyTorch prefix ("decoder.mid_block.resnets.0"),
 * checking every shape; each forward takes outputs first, carves its scratch
 * from the caller's arena and resets it on return; each *_scratch function
 * returns those bytes for one call, so models can size their arenas. An
 * output never aliases its input. */
#ifndef SETOK_MODELS_DIFFUSION_BLOCKS_H
#define SETOK_MODELS_DIFFUSION_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "setok/arena.h"
#include "setok/backend.h"
#include "setok/error.h"
#include "setok/ops.h"
#include "setok/tensor.h"
#include "io/loader.h"
#include "setok/weights.h"

/* Arena bytes of one tensor of numel elements: rounded to the arena's
 * 256-byte alignment, plus the worst-case padding before it. */
size_t diffusion_slot(int64_t numel, size_t esize);

/* ------------------------------------------------------------------------
 * ResnetBlock2D (time_embedding_norm "default") */

typedef struct diffusion_resnet {
    int64_t in_ch, out_ch, temb_ch; /* temb_ch 0: no time embedding */
    int groups;
    float eps, out_scale;
    setok_tensor norm1_w, norm1_b, conv1_w, conv1_b, temb_w, temb_b;
    setok_tensor norm2_w, norm2_b, conv2_w, conv2_b;
    setok_tensor short_w, short_b; /* 1x1 conv_shortcut when in_ch != out_ch */
} diffusion_resnet;

setok_status diffusion_resnet_load(diffusion_resnet *r, const setok_loader *ld,
                                   const char *prefix, int64_t in_ch, int64_t out_ch,
                                   int64_t temb_ch, int groups, float eps, float out_scale,
                                   setok_error *err);
void diffusion_resnet_free(diffusion_resnet *r);
/* x: [B, Cin, H, W], temb_act: [B, temb_ch] = silu(temb) (NULL without time
 * embedding) -> y: [B, Cout, H, W] */
setok_status diffusion_resnet_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                      const setok_tensor *x, const setok_tensor *temb_act,
                                      const diffusion_resnet *r, setok_error *err);
size_t diffusion_resnet_scratch(const diffusion_resnet *r, int64_t B, int64_t H, int64_t W,
                                size_t esize);

/* ------------------------------------------------------------------------
 * Downsample2D (use_conv): a stride-2 3x3 conv with padding 1, or with
 * padding 0 after the (0, 1, 0, 1) zero pad the VAE encoder uses. */

typedef struct diffusion_downsample {
    int64_t ch;
    int padding;
    setok_tensor conv_w, conv_b;
    setok_tensor zero; /* one element, the source of the pad (padding 0) */
} diffusion_downsample;

setok_status diffusion_downsample_load(diffusion_downsample *d, const setok_loader *ld,
                                       const char *prefix, int64_t ch, int padding,
                                       setok_error *err);
void diffusion_downsample_free(diffusion_downsample *d);
/* The output extent of an input extent. */
int64_t diffusion_downsample_extent(const diffusion_downsample *d, int64_t n);
// x: [B, C, H, W] -> y: [B, C, H', W'], H' = diffusion_downsample_extent(H)
setok_status diffusion_downsample_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                          const setok_tensor *x, const diffusion_downsample *d,
                                          setok_error *err);
size_t diffusion_downsample_scratch(const diffusion_downsample *d, int64_t B, int64_t H,
                                    int64_t W, size_t esize);

/* ------------------------------------------------------------------------
 * Upsample2D (use_conv): nearest x2, then a 3x3 conv */

typedef struct diffusion_upsample {
    int64_t ch;
    setok_tensor conv_w, conv_b;
} diffusion_upsample;

setok_status diffusion_upsample_load(diffusion_upsample *u, const setok_loader *ld,
                                     const char *prefix, int64_t ch, setok_error *err);
void diffusion_upsample_free(diffusion_upsample *u);
// x: [B, C, H, W] -> y: [B, C, 2H, 2W]
setok_status diffusion_upsample_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                        const setok_tensor *x, const diffusion_upsample *u,
                                        setok_error *err);
size_t diffusion_upsample_scratch(const diffusion_upsample *u, int64_t B, int64_t H, int64_t W,
                                  size_t esize);

/* ------------------------------------------------------------------------
 * Multi-head attention on token tensors (no projections) */

// q: [B, Tq, NH*D], k: [B, Tk, NH*D], v: [B, Tk, NH*D] -> y: [B, Tq, NH*D],
// softmax(q k^T / sqrt(D)) v per head
setok_status diffusion_mha(setok_backend *be, setok_arena *arena, setok_tensor *y,
                           const setok_tensor *q, const setok_tensor *k, const setok_tensor *v,
                           int heads, setok_error *err);
size_t diffusion_mha_scratch(int64_t B, int64_t Tq, int64_t Tk, int64_t inner, int heads,
                             size_t esize);

/* ------------------------------------------------------------------------
 * The VAE's mid-block Attention: group norm, single- or multi-head
 * self-attention over the H*W positions, residual, / rescale. Weights under
 * the new names (to_q, to_k, to_v, to_out.0) or the old ones (query, key,
 * value, proj_attn); linear [C, C] or 1x1 conv [C, C, 1, 1]. */

typedef struct diffusion_attention {
    int64_t ch;
    int heads, groups;
    float eps, rescale;
    setok_tensor norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
} diffusion_attention;

setok_status diffusion_attention_load(diffusion_attention *a, const setok_loader *ld,
                                      const char *prefix, int64_t ch, int heads, int groups,
                                      float eps, float rescale, setok_error *err);
void diffusion_attention_free(diffusion_attention *a);
// x: [B, C, H, W] -> y: [B, C, H, W] = (x + to_out(attn(group_norm(x)))) / rescale
setok_status diffusion_attention_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                         const setok_tensor *x, const diffusion_attention *a,
                                         setok_error *err);
size_t diffusion_attention_scratch(const diffusion_attention *a, int64_t B, int64_t H, int64_t W,
                                   size_t esize);

/* ------------------------------------------------------------------------
 * Transformer2DModel (continuous input) with BasicTransformerBlocks:
 * norm1 -> self-attention, norm2 -> cross-attention over
 * encoder_hidden_states, norm3 -> GEGLU feed-forward, each residual;
 * proj_in / proj_out as 1x1 convs or linears (use_linear_projection). */

typedef struct diffusion_tblock {
    setok_tensor n1_w, n1_b, q1_w, q1_b, k1_w, k1_b, v1_w, v1_b, o1_w, o1_b;
    setok_tensor n2_w, n2_b, q2_w, q2_b, k2_w, k2_b, v2_w, v2_b, o2_w, o2_b;
    setok_tensor n3_w, n3_b, ff1_w, ff1_b, ff2_w, ff2_b;
} diffusion_tblock;

typedef struct diffusion_transformer {
    int64_t ch, inner, cross_dim, ff_inner;
    int heads, groups, layers;
    float norm_eps;                  /* the blocks' LayerNorms (GroupNorm: 1e-6) */
    setok_tensor norm_w, norm_b;     /* GroupNorm over ch */
    setok_tensor proj_in_w, proj_in_b, proj_out_w, proj_out_b; /* as linears */
    diffusion_tblock *blocks;
} diffusion_transformer;

setok_status diffusion_transformer_load(diffusion_transformer *t, const setok_loader *ld,
                                        const char *prefix, int64_t ch, int heads, int layers,
                                        int64_t cross_dim, int groups, bool linear_projection,
                                        setok_error *err);
void diffusion_transformer_free(diffusion_transformer *t);
// x: [B, C, H, W], context: [B, S, cross_dim] -> y: [B, C, H, W]
setok_status diffusion_transformer_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                           const setok_tensor *x, const setok_tensor *context,
                                           const diffusion_transformer *t, setok_error *err);
size_t diffusion_transformer_scratch(const diffusion_transformer *t, int64_t B, int64_t H,
                                     int64_t W, int64_t S, size_t esize);

#endif
