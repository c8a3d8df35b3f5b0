/* ops.h — the closed set of tensor ops every backend implements.
 *
 * An op is described by a setok_op_desc: the op, its outputs, up to four
 * inputs and its parameters. setok_op_validate checks shapes, dtypes and
 * layouts once, so backends may assume a valid desc. The typed helpers
 * below (setok_matmul, setok_layernorm, ...) fill a desc and run it.
 *
 * Conventions. Shapes are PyTorch's (outermost first). Unless an op says
 * otherwise all tensors are contiguous and every float tensor of an op has
 * the same dtype (f32, f16 or bf16); index tensors are I32. "Broadcastable"
 * means NumPy's right-aligned rule. Backends accumulate in at least f32. */
#ifndef SETOK_OPS_H
#define SETOK_OPS_H

#include "export.h"

#include <stdbool.h>

#include "backend.h"
#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum setok_op {
    /* src: a, b, bias?  a [B?, M, K] ([B?, K, M] if trans_a), b [B|1?, K, N]
     * ([.., N, K] if trans_b; 2-D b is shared by every batch), bias [N]
     * -> dst [B?, M, N] = alpha * op(a) @ op(b) + bias.
     * A linear layer y = x W^T + b is trans_b with W [N, K]. */
    SETOK_OP_MATMUL = 0,
    /* src: a, b (b broadcastable to a) -> dst shape of a. */
    SETOK_OP_ADD,
    SETOK_OP_MUL,
    /* src: x -> dst = x * scale + bias. */
    SETOK_OP_SCALE,
    /* src: x [..., C], weight [C]?, bias [C]? -> dst [..., C]; biased variance. */
    SETOK_OP_LAYERNORM,
    /* src: x [..., C], weight [C]? -> dst = x / sqrt(mean(x^2) + eps) * weight. */
    SETOK_OP_RMSNORM,
    /* src: x [N, C, ...] (ndim 3 or 4), weight [C]?, bias [C]?; C % groups == 0. */
    SETOK_OP_GROUPNORM,
    /* src: x [..., Tq, Tk], mask? broadcastable to x (additive)
     * -> dst = softmax(x * scale + mask) over the last axis; causal keeps
     * key j for query i when j <= i + Tk - Tq. A row with no finite entry is 0. */
    SETOK_OP_SOFTMAX,
    /* Elementwise activations, src: x -> dst same shape. */
    SETOK_OP_GELU,       /* x * Phi(x), erf form */
    SETOK_OP_GELU_TANH,  /* PyTorch gelu(approximate="tanh") */
    SETOK_OP_QUICK_GELU, /* x * sigmoid(1.702 x) */
    SETOK_OP_SILU,       /* x * sigmoid(x) */
    SETOK_OP_RELU,       /* max(x, 0) */
    /* Gated units. With two inputs, src: gate, value (same shape) ->
     * dst = act(gate) * value (LLaMA: silu(gate_proj x) * up_proj x).
     * With one input, src: x [..., 2H] -> dst [..., H] = x[..., :H] * act(x[..., H:])
     * (diffusers GEGLU: hidden, gate = proj(x).chunk(2)). */
    SETOK_OP_SWIGLU,     /* act = silu */
    SETOK_OP_GEGLU,      /* act = gelu (erf) */
    /* Rotary embedding, GPT-NeoX / HF LLaMA "rotate_half" layout.
     * src: x [B?, H, T, D], positions I32 [T], inv_freq f32 [rot_dims/2]?
     * Rotates the first rot_dims (even, <= D; 0 means D) channels of each head:
     * angle(t, i) = positions[t] * freq_scale * inv_freq[i], with
     * inv_freq[i] = theta^(-2i/rot_dims) when src[2] is NULL. Linear
     * rope scaling by a factor f is freq_scale = 1/f. */
    SETOK_OP_ROPE,
    /* Scaled dot-product attention. src: q [B, Hq, Tq, D], k [B, Hkv, Tk, D],
     * v [B, Hkv, Tk, Dv], mask? broadcastable to [B, Hq, Tq, Tk] (additive)
     * -> dst [B, Hq, Tq, Dv]. Hq % Hkv == 0 (grouped-query: head h reads
     * kv head h / (Hq / Hkv)). causal as in SOFTMAX. scale 0 means 1/sqrt(D).
     * k and v may be strided views (any batch, head and key strides, channels
     * contiguous), so a KV cache prefix [Hkv, max_ctx, D][:, :Tk] or a
     * token-major [B, Tk, Hkv, D] permuted to [B, Hkv, Tk, D] is read in place. */
    SETOK_OP_ATTENTION,
    /* src: x [N, C, H, W], weight [OC, C, KH, KW], bias [OC]?
     * -> dst [N, OC, (H + 2 pad_h - KH) / stride_h + 1, (W + 2 pad_w - KW) / stride_w + 1]. */
    SETOK_OP_CONV2D,
    /* src: x [N, C, H, W], weight [C, OC, KH, KW] (PyTorch ConvTranspose2d layout),
     * bias [OC]?; no padding -> dst [N, OC, (H - 1) * stride_h + KH, (W - 1) * stride_w + KW]. */
    SETOK_OP_CONV_TRANSPOSE2D,
    /* src: x [N, C, H, W] -> dst [N, C, H * factor, W * factor]. */
    SETOK_OP_UPSAMPLE_NEAREST,
    /* Embedding gather. src: table [V, D] (any float dtype), ids I32 [...]
     * (ndim <= 3) -> dst [..., D] (any float dtype). An id outside [0, V)
     * is an error on host backends; device backends write a zero row. */
    SETOK_OP_GET_ROWS,
    /* src: x [N, C, H, W] -> dst [N, C, OH, OW], PyTorch
     * interpolate(mode="bicubic", A = -0.75, antialias=False). */
    SETOK_OP_RESIZE_BICUBIC,
    /* src: x [..., C] -> dst I32 [...]: index of the largest value; ties go to
     * the lowest index; NaN is never the maximum unless the row is all NaN. */
    SETOK_OP_ARGMAX,
    /* src: x [..., C] -> dst values [..., k], dst2 indices I32 [..., k],
     * largest first, ties by lowest index. */
    SETOK_OP_TOPK,
    /* Strided copy with dtype conversion between float dtypes (I32 only to I32).
     * src and dst may be any views of the same shape: this is how permute,
     * slice, concat, contiguous and dtype conversion run. */
    SETOK_OP_COPY,
    SETOK_OP_COUNT
} setok_op;

SETOK_API const char *setok_op_name(setok_op op);
/* SETOK_OP_COUNT when the name is unknown. */
SETOK_API setok_op setok_op_from_name(const char *name);

typedef struct setok_op_desc {
    setok_op op;
    setok_tensor *dst;
    setok_tensor *dst2;                /* TOPK indices; NULL otherwise */
    const setok_tensor *src[4];        /* unused entries NULL */
    union {
        struct { bool trans_a, trans_b; float alpha; } matmul;
        struct { float scale, bias; } scale;
        struct { float eps; } norm;                  /* LAYERNORM, RMSNORM */
        struct { int groups; float eps; } groupnorm;
        struct { float scale; bool causal; } softmax;
        struct { float theta, freq_scale; int rot_dims; } rope;
        struct { float scale; bool causal; } attention;
        struct { int stride_h, stride_w, pad_h, pad_w; } conv;  /* CONV2D, CONV_TRANSPOSE2D */
        struct { int factor; } upsample;
        struct { bool align_corners; } resize;
        struct { int k; } topk;
    } p;
} setok_op_desc;

/* Checks that desc is well formed: tensors present, dtypes, contiguity,
 * shapes consistent with the op's contract, parameters in range, all tensors
 * on one backend. The message names the op and the offending tensor. */
SETOK_API setok_status setok_op_validate(const setok_op_desc *desc, setok_error *err);

/* Typed helpers. Outputs first; NULL for optional inputs. */
SETOK_API setok_status setok_matmul(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                          const setok_tensor *bm, const setok_tensor *bias, bool trans_a,
                          bool trans_b, float alpha, setok_error *err);
/* y [..., N] = x [..., K] @ w^T + bias, w [N, K]. x may have any leading dims. */
SETOK_API setok_status setok_linear(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                          const setok_tensor *w, const setok_tensor *bias, setok_error *err);
SETOK_API setok_status setok_add(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                       const setok_tensor *bb, setok_error *err);
SETOK_API setok_status setok_mul(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                       const setok_tensor *bb, setok_error *err);
SETOK_API setok_status setok_scale(setok_backend *b, setok_tensor *y, const setok_tensor *x, float scale,
                         float bias, setok_error *err);
SETOK_API setok_status setok_layernorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                             const setok_tensor *w, const setok_tensor *bias, float eps,
                             setok_error *err);
SETOK_API setok_status setok_rmsnorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                           const setok_tensor *w, float eps, setok_error *err);
SETOK_API setok_status setok_groupnorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                             const setok_tensor *w, const setok_tensor *bias, int groups,
                             float eps, setok_error *err);
SETOK_API setok_status setok_softmax(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                           const setok_tensor *mask, float scale, bool causal, setok_error *err);
/* op is one of GELU, GELU_TANH, QUICK_GELU, SILU, RELU. */
SETOK_API setok_status setok_unary(setok_backend *b, setok_op op, setok_tensor *y, const setok_tensor *x,
                         setok_error *err);
/* op is SWIGLU or GEGLU; value NULL for the split form. */
SETOK_API setok_status setok_glu(setok_backend *b, setok_op op, setok_tensor *y, const setok_tensor *gate,
                       const setok_tensor *value, setok_error *err);
SETOK_API setok_status setok_rope(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                        const setok_tensor *positions, const setok_tensor *inv_freq, float theta,
                        float freq_scale, int rot_dims, setok_error *err);
SETOK_API setok_status setok_attention(setok_backend *b, setok_tensor *y, const setok_tensor *q,
                             const setok_tensor *k, const setok_tensor *v,
                             const setok_tensor *mask, float scale, bool causal,
                             setok_error *err);
SETOK_API setok_status setok_conv2d(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                          const setok_tensor *w, const setok_tensor *bias, int stride, int pad,
                          setok_error *err);
SETOK_API setok_status setok_conv_transpose2d(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                    const setok_tensor *w, const setok_tensor *bias, int stride,
                                    setok_error *err);
SETOK_API setok_status setok_upsample_nearest(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                    int factor, setok_error *err);
SETOK_API setok_status setok_get_rows(setok_backend *b, setok_tensor *y, const setok_tensor *table,
                            const setok_tensor *ids, setok_error *err);
SETOK_API setok_status setok_resize_bicubic(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                  bool align_corners, setok_error *err);
SETOK_API setok_status setok_argmax(setok_backend *b, setok_tensor *idx, const setok_tensor *x,
                          setok_error *err);
SETOK_API setok_status setok_topk(setok_backend *b, setok_tensor *values, setok_tensor *indices,
                        const setok_tensor *x, int k, setok_error *err);
/* Strided copy with conversion (dst and src same shape). */
SETOK_API setok_status setok_copy(setok_backend *b, setok_tensor *dst, const setok_tensor *src,
                        setok_error *err);
/* Layout ops built on COPY. dst is contiguous with the result's shape. */
SETOK_API setok_status setok_permute(setok_backend *b, setok_tensor *dst, const setok_tensor *src,
                           const int *perm, setok_error *err);
SETOK_API setok_status setok_slice(setok_backend *b, setok_tensor *dst, const setok_tensor *src, int axis,
                         int64_t start, setok_error *err);
SETOK_API setok_status setok_concat(setok_backend *b, setok_tensor *dst, const setok_tensor *const *srcs,
                          int count, int axis, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
