/* ops.c — op names and the typed helpers that fill a desc and run it. */
#include "setok/ops.h"

#include <string.h>

static const char *const op_names[] = {
    [SETOK_OP_MATMUL] = "matmul",
    [SETOK_OP_ADD] = "add",
    [SETOK_OP_MUL] = "mul",
    [SETOK_OP_SCALE] = "scale",
    [SETOK_OP_LAYERNORM] = "layernorm",
    [SETOK_OP_RMSNORM] = "rmsnorm",
    [SETOK_OP_GROUPNORM] = "groupnorm",
    [SETOK_OP_SOFTMAX] = "softmax",
    [SETOK_OP_GELU] = "gelu",
    [SETOK_OP_GELU_TANH] = "gelu_tanh",
    [SETOK_OP_QUICK_GELU] = "quick_gelu",
    [SETOK_OP_SILU] = "silu",
    [SETOK_OP_RELU] = "relu",
    [SETOK_OP_SWIGLU] = "swiglu",
    [SETOK_OP_GEGLU] = "geglu",
    [SETOK_OP_ROPE] = "rope",
    [SETOK_OP_ATTENTION] = "attention",
    [SETOK_OP_CONV2D] = "conv2d",
    [SETOK_OP_CONV_TRANSPOSE2D] = "conv_transpose2d",
    [SETOK_OP_UPSAMPLE_NEAREST] = "upsample_nearest",
    [SETOK_OP_GET_ROWS] = "get_rows",
    [SETOK_OP_RESIZE_BICUBIC] = "resize_bicubic",
    [SETOK_OP_ARGMAX] = "argmax",
    [SETOK_OP_TOPK] = "topk",
    [SETOK_OP_COPY] = "copy",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == SETOK_OP_COUNT,
               "every op needs a name");

const char *setok_op_name(setok_op op)
{
    return (unsigned)op < SETOK_OP_COUNT ? op_names[op] : "?";
}

setok_op setok_op_from_name(const char *name)
{
    for (int i = 0; i < SETOK_OP_COUNT; i++)
        if (!strcmp(op_names[i], name))
            return (setok_op)i;
    return SETOK_OP_COUNT;
}

static setok_op_desc desc_of(setok_op op, setok_tensor *dst, const setok_tensor *s0,
                             const setok_tensor *s1, const setok_tensor *s2,
                             const setok_tensor *s3)
{
    setok_op_desc d;
    memset(&d, 0, sizeof d);
    d.op = op;
    d.dst = dst;
    d.src[0] = s0;
    d.src[1] = s1;
    d.src[2] = s2;
    d.src[3] = s3;
    return d;
}

setok_status setok_matmul(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                          const setok_tensor *bm, const setok_tensor *bias, bool trans_a,
                          bool trans_b, float alpha, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_MATMUL, y, a, bm, bias, NULL);
    d.p.matmul.trans_a = trans_a;
    d.p.matmul.trans_b = trans_b;
    d.p.matmul.alpha = alpha;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_linear(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                          const setok_tensor *w, const setok_tensor *bias, setok_error *err)
{
    // x: [..., K], w: [N, K] -> y: [..., N], as one [rows, K] @ [K, N]^T
    if (x->ndim < 1 || y->ndim != x->ndim)
        return setok_fail(err, SETOK_ERR_INPUT, "linear: x and y need the same number of dims");
    int64_t rows = 1;
    for (int i = 0; i < x->ndim - 1; i++)
        rows *= x->shape[i];
    setok_tensor x2, y2;
    int64_t xs[2] = {rows, x->shape[x->ndim - 1]};
    int64_t ys[2] = {rows, y->shape[y->ndim - 1]};
    setok_status st = setok_view_reshape(&x2, x, 2, xs, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&y2, y, 2, ys, err);
    if (st != SETOK_OK)
        return setok_error_prefix(err, "linear");
    return setok_matmul(b, &y2, &x2, w, bias, false, true, 1.0f, err);
}

static setok_status binary(setok_backend *b, setok_op op, setok_tensor *y, const setok_tensor *a,
                           const setok_tensor *bb, setok_error *err)
{
    setok_op_desc d = desc_of(op, y, a, bb, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_add(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                       const setok_tensor *bb, setok_error *err)
{
    return binary(b, SETOK_OP_ADD, y, a, bb, err);
}

setok_status setok_mul(setok_backend *b, setok_tensor *y, const setok_tensor *a,
                       const setok_tensor *bb, setok_error *err)
{
    return binary(b, SETOK_OP_MUL, y, a, bb, err);
}

setok_status setok_scale(setok_backend *b, setok_tensor *y, const setok_tensor *x, float scale,
                         float bias, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_SCALE, y, x, NULL, NULL, NULL);
    d.p.scale.scale = scale;
    d.p.scale.bias = bias;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_layernorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                             const setok_tensor *w, const setok_tensor *bias, float eps,
                             setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_LAYERNORM, y, x, w, bias, NULL);
    d.p.norm.eps = eps;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_rmsnorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                           const setok_tensor *w, float eps, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_RMSNORM, y, x, w, NULL, NULL);
    d.p.norm.eps = eps;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_groupnorm(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                             const setok_tensor *w, const setok_tensor *bias, int groups,
                             float eps, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_GROUPNORM, y, x, w, bias, NULL);
    d.p.groupnorm.groups = groups;
    d.p.groupnorm.eps = eps;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_softmax(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                           const setok_tensor *mask, float scale, bool causal, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_SOFTMAX, y, x, mask, NULL, NULL);
    d.p.softmax.scale = scale;
    d.p.softmax.causal = causal;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_unary(setok_backend *b, setok_op op, setok_tensor *y, const setok_tensor *x,
                         setok_error *err)
{
    if (op != SETOK_OP_GELU && op != SETOK_OP_GELU_TANH && op != SETOK_OP_QUICK_GELU &&
        op != SETOK_OP_SILU && op != SETOK_OP_RELU)
        return setok_fail(err, SETOK_ERR_INPUT, "%s is not an activation", setok_op_name(op));
    setok_op_desc d = desc_of(op, y, x, NULL, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_glu(setok_backend *b, setok_op op, setok_tensor *y, const setok_tensor *gate,
                       const setok_tensor *value, setok_error *err)
{
    if (op != SETOK_OP_SWIGLU && op != SETOK_OP_GEGLU)
        return setok_fail(err, SETOK_ERR_INPUT, "%s is not a gated unit", setok_op_name(op));
    setok_op_desc d = desc_of(op, y, gate, value, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_rope(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                        const setok_tensor *positions, const setok_tensor *inv_freq, float theta,
                        float freq_scale, int rot_dims, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_ROPE, y, x, positions, inv_freq, NULL);
    d.p.rope.theta = theta;
    d.p.rope.freq_scale = freq_scale;
    d.p.rope.rot_dims = rot_dims;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_attention(setok_backend *b, setok_tensor *y, const setok_tensor *q,
                             const setok_tensor *k, const setok_tensor *v,
                             const setok_tensor *mask, float scale, bool causal,
                             setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_ATTENTION, y, q, k, v, mask);
    d.p.attention.scale = scale;
    d.p.attention.causal = causal;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_conv2d(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                          const setok_tensor *w, const setok_tensor *bias, int stride, int pad,
                          setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_CONV2D, y, x, w, bias, NULL);
    d.p.conv.stride_h = d.p.conv.stride_w = stride;
    d.p.conv.pad_h = d.p.conv.pad_w = pad;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_conv_transpose2d(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                    const setok_tensor *w, const setok_tensor *bias, int stride,
                                    setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_CONV_TRANSPOSE2D, y, x, w, bias, NULL);
    d.p.conv.stride_h = d.p.conv.stride_w = stride;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_upsample_nearest(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                    int factor, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_UPSAMPLE_NEAREST, y, x, NULL, NULL, NULL);
    d.p.upsample.factor = factor;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_get_rows(setok_backend *b, setok_tensor *y, const setok_tensor *table,
                            const setok_tensor *ids, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_GET_ROWS, y, table, ids, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_resize_bicubic(setok_backend *b, setok_tensor *y, const setok_tensor *x,
                                  bool align_corners, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_RESIZE_BICUBIC, y, x, NULL, NULL, NULL);
    d.p.resize.align_corners = align_corners;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_argmax(setok_backend *b, setok_tensor *idx, const setok_tensor *x,
                          setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_ARGMAX, idx, x, NULL, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_topk(setok_backend *b, setok_tensor *values, setok_tensor *indices,
                        const setok_tensor *x, int k, setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_TOPK, values, x, NULL, NULL, NULL);
    d.dst2 = indices;
    d.p.topk.k = k;
    return setok_backend_compute(b, &d, err);
}

setok_status setok_copy(setok_backend *b, setok_tensor *dst, const setok_tensor *src,
                        setok_error *err)
{
    setok_op_desc d = desc_of(SETOK_OP_COPY, dst, src, NULL, NULL, NULL);
    return setok_backend_compute(b, &d, err);
}

setok_status setok_permute(setok_backend *b, setok_tensor *dst, const setok_tensor *src,
                           const int *perm, setok_error *err)
{
    setok_tensor view;
    setok_status st = setok_view_permute(&view, src, perm, err);
    if (st != SETOK_OK)
        return st;
    return setok_copy(b, dst, &view, err);
}

setok_status setok_slice(setok_backend *b, setok_tensor *dst, const setok_tensor *src, int axis,
                         int64_t start, setok_error *err)
{
    if (axis < 0 || axis >= dst->ndim)
        return setok_fail(err, SETOK_ERR_INPUT, "slice: axis %d out of range", axis);
    setok_tensor view;
    setok_status st = setok_view_slice(&view, src, axis, start, dst->shape[axis], err);
    if (st != SETOK_OK)
        return st;
    return setok_copy(b, dst, &view, err);
}

setok_status setok_concat(setok_backend *b, setok_tensor *dst, const setok_tensor *const *srcs,
                          int count, int axis, setok_error *err)
{
    if (axis < 0 || axis >= dst->ndim)
        return setok_fail(err, SETOK_ERR_INPUT, "concat: axis %d out of range for %d dims", axis,
                          dst->ndim);
    int64_t offset = 0;
    for (int i = 0; i < count; i++) {
        if (srcs[i]->ndim != dst->ndim)
            return setok_fail(err, SETOK_ERR_INPUT, "concat: input %d has %d dims, output %d", i,
                              srcs[i]->ndim, dst->ndim);
        setok_tensor part;
        setok_status st = setok_view_slice(&part, dst, axis, offset, srcs[i]->shape[axis], err);
        if (st != SETOK_OK)
            return setok_error_prefix(err, "concat: input %d", i);
        st = setok_copy(b, &part, srcs[i], err);
        if (st != SETOK_OK)
            return st;
        offset += srcs[i]->shape[axis];
    }
    if (offset != dst->shape[axis])
        return setok_fail(err, SETOK_ERR_INPUT, "concat: inputs cover %lld of %lld along axis %d",
                          (long long)offset, (long long)dst->shape[axis], axis);
    return SETOK_OK;
}
