/* ops-validate.c — setok_op_validate: the one place where op arguments are
 * checked, so that backends may trust a desc. */
#include <math.h>
#include <stdio.h>

#include "backend-impl.h"

typedef struct check {
    const setok_op_desc *d;
    setok_error *err;
} check;

#define FAIL(c, ...) setok_fail((c)->err, SETOK_ERR_INPUT, __VA_ARGS__)

static const char *describe(const setok_tensor *t, char *buf, size_t n)
{
    return setok_tensor_describe(t, buf, n);
}

/* t exists, is contiguous (or, with rows_only, a view whose last axis is contiguous) and
 * (when want != SETOK_DTYPE_COUNT) has dtype want. */
static setok_status need_layout(check *c, const setok_tensor *t, const char *what,
                                setok_dtype want, bool rows_only)
{
    const char *op = setok_op_name(c->d->op);
    if (!t)
        return FAIL(c, "%s: %s is missing", op, what);
    if (t->ndim < 0 || t->ndim > SETOK_MAX_DIMS)
        return FAIL(c, "%s: %s has %d dims", op, what, t->ndim);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return FAIL(c, "%s: %s has a negative extent", op, what);
    if (!t->data && setok_tensor_numel(t) > 0)
        return FAIL(c, "%s: %s has no data", op, what);
    if (rows_only) {
        for (int i = 0; i < t->ndim; i++)
            if (t->stride[i] < 0)
                return FAIL(c, "%s: %s has a negative stride", op, what);
        int last = t->ndim - 1;
        if (last >= 0 && t->shape[last] > 1 && t->stride[last] != 1)
            return FAIL(c, "%s: %s must have contiguous rows (last stride 1)", op, what);
        if (last >= 1 && t->shape[last - 1] > 1 && t->stride[last - 1] < t->shape[last])
            return FAIL(c, "%s: %s has overlapping rows", op, what);
    } else if (c->d->op != SETOK_OP_COPY && !setok_tensor_is_contiguous(t)) {
        return FAIL(c, "%s: %s must be contiguous", op, what);
    }
    if (want != SETOK_DTYPE_COUNT && t->dtype != want)
        return FAIL(c, "%s: %s is %s, expected %s", op, what, setok_dtype_name(t->dtype),
                    setok_dtype_name(want));
    return SETOK_OK;
}

static setok_status need(check *c, const setok_tensor *t, const char *what, setok_dtype want)
{
    return need_layout(c, t, what, want, false);
}

static setok_status need_float(check *c, const setok_tensor *t, const char *what)
{
    setok_status st = need(c, t, what, SETOK_DTYPE_COUNT);
    if (st == SETOK_OK && !setok_dtype_is_float(t->dtype))
        return FAIL(c, "%s: %s must be a float tensor, got %s", setok_op_name(c->d->op), what,
                    setok_dtype_name(t->dtype));
    return st;
}

/* Optional input: absent, or present with dst's dtype. */
static setok_status maybe(check *c, const setok_tensor *t, const char *what)
{
    return t ? need(c, t, what, c->d->dst->dtype) : SETOK_OK;
}

static setok_status same_shape(check *c, const setok_tensor *a, const char *an,
                               const setok_tensor *b, const char *bn)
{
    if (setok_tensor_same_shape(a, b))
        return SETOK_OK;
    char x[96], y[96];
    return FAIL(c, "%s: %s %s and %s %s differ in shape", setok_op_name(c->d->op), an,
                describe(a, x, sizeof x), bn, describe(b, y, sizeof y));
}

static setok_status vector_of(check *c, const setok_tensor *t, const char *what, int64_t n)
{
    if (!t)
        return SETOK_OK;
    if (t->ndim != 1 || t->shape[0] != n) {
        char x[96];
        return FAIL(c, "%s: %s is %s, expected [%lld]", setok_op_name(c->d->op), what,
                    describe(t, x, sizeof x), (long long)n);
    }
    return SETOK_OK;
}

static setok_status expect_shape(check *c, const setok_tensor *t, const char *what, int ndim,
                                 const int64_t *shape)
{
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (ok)
        return SETOK_OK;
    char x[96], want[128];
    size_t n = (size_t)snprintf(want, sizeof want, "[");
    for (int i = 0; i < ndim && n < sizeof want; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, i ? ", %lld" : "%lld",
                              (long long)shape[i]);
    if (n < sizeof want)
        snprintf(want + n, sizeof want - n, "]");
    return FAIL(c, "%s: %s is %s, expected %s", setok_op_name(c->d->op), what,
                describe(t, x, sizeof x), want);
}

/* b broadcasts onto a under NumPy's right-aligned rule (b may have fewer dims). */
static setok_status broadcastable(check *c, const setok_tensor *b, const char *bn,
                                  const setok_tensor *a, const char *an)
{
    bool ok = b->ndim <= a->ndim;
    for (int i = 1; ok && i <= b->ndim; i++) {
        int64_t be = b->shape[b->ndim - i], ae = a->shape[a->ndim - i];
        ok = be == ae || be == 1;
    }
    if (ok)
        return SETOK_OK;
    char x[96], y[96];
    return FAIL(c, "%s: %s %s does not broadcast to %s %s", setok_op_name(c->d->op), bn,
                describe(b, x, sizeof x), an, describe(a, y, sizeof y));
}

#define TRY(expr)                                                                                \
    do {                                                                                         \
        setok_status st_ = (expr);                                                               \
        if (st_ != SETOK_OK)                                                                     \
            return st_;                                                                          \
    } while (0)

static setok_status check_matmul(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *a = d->src[0], *b = d->src[1], *y = d->dst;
    /* a weight matrix may keep its own dtype (f16, bf16, q8, q4) under f32 activations:
     * a linear layer, b 2-D [N, K] and transposed */
    bool weight = b && y->dtype == SETOK_F32 && b->dtype != SETOK_F32 && b->ndim == 2 &&
                  d->p.matmul.trans_b && !d->p.matmul.trans_a &&
                  (setok_dtype_is_float(b->dtype) || setok_dtype_is_quantized(b->dtype));
    TRY(need(c, b, "b", weight ? b->dtype : y->dtype));
    TRY(maybe(c, d->src[2], "bias"));
    if (a->ndim != 2 && a->ndim != 3)
        return FAIL(c, "matmul: a must have 2 or 3 dims, has %d", a->ndim);
    if (b->ndim != 2 && b->ndim != a->ndim)
        return FAIL(c, "matmul: b must have 2 dims or as many as a (%d), has %d", a->ndim,
                    b->ndim);
    int64_t batch = a->ndim == 3 ? a->shape[0] : 1;
    const int64_t *as = a->shape + (a->ndim - 2), *bs = b->shape + (b->ndim - 2);
    int64_t m = d->p.matmul.trans_a ? as[1] : as[0];
    int64_t k = d->p.matmul.trans_a ? as[0] : as[1];
    int64_t kb = d->p.matmul.trans_b ? bs[1] : bs[0];
    int64_t n = d->p.matmul.trans_b ? bs[0] : bs[1];
    if (k != kb) {
        char x[96], z[96];
        return FAIL(c, "matmul: inner dimensions differ: a %s%s, b %s%s (%lld vs %lld)",
                    describe(a, x, sizeof x), d->p.matmul.trans_a ? " transposed" : "",
                    describe(b, z, sizeof z), d->p.matmul.trans_b ? " transposed" : "",
                    (long long)k, (long long)kb);
    }
    if (b->ndim == 3 && b->shape[0] != batch)
        return FAIL(c, "matmul: b has batch %lld, a has %lld", (long long)b->shape[0],
                    (long long)batch);
    int64_t want[3] = {batch, m, n};
    TRY(expect_shape(c, y, "y", a->ndim, a->ndim == 3 ? want : want + 1));
    return vector_of(c, d->src[2], "bias", n);
}

static setok_status check_norm(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    TRY(same_shape(c, d->dst, "y", x, "x"));
    if (x->ndim < 1)
        return FAIL(c, "%s: x needs at least one dim", setok_op_name(d->op));
    if (!(d->p.norm.eps >= 0.0f) || !isfinite(d->p.norm.eps))
        return FAIL(c, "%s: eps must be a finite non-negative number", setok_op_name(d->op));
    int64_t ch = x->shape[x->ndim - 1];
    TRY(maybe(c, d->src[1], "weight"));
    TRY(vector_of(c, d->src[1], "weight", ch));
    if (d->op == SETOK_OP_RMSNORM && d->src[2])
        return FAIL(c, "rmsnorm: takes no bias");
    TRY(maybe(c, d->src[2], "bias"));
    return vector_of(c, d->src[2], "bias", ch);
}

static setok_status check_groupnorm(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    TRY(same_shape(c, d->dst, "y", x, "x"));
    if (x->ndim != 3 && x->ndim != 4)
        return FAIL(c, "groupnorm: x must be [N, C, L] or [N, C, H, W]");
    int g = d->p.groupnorm.groups;
    if (g <= 0 || x->shape[1] % g)
        return FAIL(c, "groupnorm: %lld channels do not split into %d groups",
                    (long long)x->shape[1], g);
    if (!(d->p.groupnorm.eps >= 0.0f) || !isfinite(d->p.groupnorm.eps))
        return FAIL(c, "groupnorm: eps must be a finite non-negative number");
    TRY(maybe(c, d->src[1], "weight"));
    TRY(vector_of(c, d->src[1], "weight", x->shape[1]));
    TRY(maybe(c, d->src[2], "bias"));
    return vector_of(c, d->src[2], "bias", x->shape[1]);
}

static setok_status check_softmax(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    TRY(same_shape(c, d->dst, "y", x, "x"));
    if (x->ndim < 1 || (d->p.softmax.causal && x->ndim < 2))
        return FAIL(c, "softmax: x needs %s", d->p.softmax.causal ? "2 dims for causal" :
                    "at least one dim");
    if (d->src[1]) {
        TRY(maybe(c, d->src[1], "mask"));
        TRY(broadcastable(c, d->src[1], "mask", x, "x"));
    }
    return SETOK_OK;
}

static setok_status check_glu(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *g = d->src[0];
    if (d->src[1]) {
        TRY(need(c, d->src[1], "value", d->dst->dtype));
        TRY(same_shape(c, d->src[1], "value", g, "gate"));
        return same_shape(c, d->dst, "y", g, "gate");
    }
    if (g->ndim < 1 || g->shape[g->ndim - 1] % 2)
        return FAIL(c, "%s: the split form needs an even last dim", setok_op_name(d->op));
    setok_tensor half = *g;
    half.shape[g->ndim - 1] /= 2;
    return same_shape(c, d->dst, "y", &half, "x (half)");
}

static setok_status check_rope(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    TRY(same_shape(c, d->dst, "y", x, "x"));
    if (x->ndim != 3 && x->ndim != 4)
        return FAIL(c, "rope: x must be [H, T, D] or [B, H, T, D]");
    int64_t t = x->shape[x->ndim - 2], dim = x->shape[x->ndim - 1];
    TRY(need(c, d->src[1], "positions", SETOK_I32));
    TRY(vector_of(c, d->src[1], "positions", t));
    int rot = d->p.rope.rot_dims ? d->p.rope.rot_dims : (int)dim;
    if (rot <= 0 || rot % 2 || rot > dim)
        return FAIL(c, "rope: rot_dims %d must be even and at most the head dim %lld", rot,
                    (long long)dim);
    if (d->src[2]) {
        TRY(need(c, d->src[2], "inv_freq", SETOK_F32));
        TRY(vector_of(c, d->src[2], "inv_freq", rot / 2));
    } else if (!(d->p.rope.theta > 0.0f)) {
        return FAIL(c, "rope: theta must be positive");
    }
    if (!isfinite(d->p.rope.freq_scale))
        return FAIL(c, "rope: freq_scale must be finite");
    return SETOK_OK;
}

static setok_status check_attention(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2];
    /* k and v share q's dtype, or a 16-bit one under f32 queries (a compact KV cache) */
    setok_dtype kv = q->dtype;
    if (k && q->dtype == SETOK_F32 && (k->dtype == SETOK_F16 || k->dtype == SETOK_BF16))
        kv = k->dtype;
    TRY(need_layout(c, k, "k", kv, true));
    TRY(need_layout(c, v, "v", kv, true));
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return FAIL(c, "attention: q, k and v must be [B, H, T, D]");
    int64_t b = q->shape[0], hq = q->shape[1], tq = q->shape[2], dh = q->shape[3];
    int64_t hkv = k->shape[1], tk = k->shape[2], dv = v->shape[3];
    int64_t kshape[4] = {b, hkv, tk, dh}, vshape[4] = {b, hkv, tk, dv};
    TRY(expect_shape(c, k, "k", 4, kshape));
    TRY(expect_shape(c, v, "v", 4, vshape));
    if (hkv <= 0 || hq % hkv)
        return FAIL(c, "attention: %lld query heads are not a multiple of %lld kv heads",
                    (long long)hq, (long long)hkv);
    int64_t oshape[4] = {b, hq, tq, dv};
    TRY(expect_shape(c, d->dst, "y", 4, oshape));
    if (d->src[3]) {
        TRY(maybe(c, d->src[3], "mask"));
        setok_tensor scores = *q;
        scores.shape[3] = tk;
        TRY(broadcastable(c, d->src[3], "mask", &scores, "scores [B, Hq, Tq, Tk]"));
    }
    if (!isfinite(d->p.attention.scale))
        return FAIL(c, "attention: scale must be finite");
    return SETOK_OK;
}

static setok_status conv_out(check *c, int64_t in, int64_t k, int stride, int pad, bool transpose,
                             int64_t *out)
{
    if (stride <= 0 || pad < 0)
        return FAIL(c, "%s: stride must be positive and padding non-negative",
                    setok_op_name(c->d->op));
    if (transpose) {
        *out = (in - 1) * stride + k;
        return SETOK_OK;
    }
    if (in + 2 * (int64_t)pad < k)
        return FAIL(c, "%s: kernel %lld is larger than the padded input %lld",
                    setok_op_name(c->d->op), (long long)k, (long long)(in + 2 * pad));
    *out = (in + 2 * (int64_t)pad - k) / stride + 1;
    return SETOK_OK;
}

static setok_status check_conv(check *c, bool transpose)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0], *w = d->src[1];
    TRY(need(c, w, "weight", d->dst->dtype));
    if (x->ndim != 4 || w->ndim != 4)
        return FAIL(c, "%s: x must be [N, C, H, W] and weight 4-D", setok_op_name(d->op));
    if (transpose && (d->p.conv.pad_h || d->p.conv.pad_w))
        return FAIL(c, "conv_transpose2d: padding is not supported");
    int64_t cin = transpose ? w->shape[0] : w->shape[1];
    int64_t cout = transpose ? w->shape[1] : w->shape[0];
    if (cin != x->shape[1]) {
        char a[96], b[96];
        return FAIL(c, "%s: weight %s does not take the %lld channels of x %s",
                    setok_op_name(d->op), describe(w, a, sizeof a), (long long)x->shape[1],
                    describe(x, b, sizeof b));
    }
    if (w->shape[2] <= 0 || w->shape[3] <= 0)
        return FAIL(c, "%s: empty kernel", setok_op_name(d->op));
    int64_t oh, ow;
    TRY(conv_out(c, x->shape[2], w->shape[2], d->p.conv.stride_h, d->p.conv.pad_h, transpose,
                 &oh));
    TRY(conv_out(c, x->shape[3], w->shape[3], d->p.conv.stride_w, d->p.conv.pad_w, transpose,
                 &ow));
    int64_t want[4] = {x->shape[0], cout, oh, ow};
    TRY(expect_shape(c, d->dst, "y", 4, want));
    TRY(maybe(c, d->src[2], "bias"));
    return vector_of(c, d->src[2], "bias", cout);
}

static setok_status check_get_rows(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *table = d->src[0], *ids = d->src[1];
    TRY(need(c, ids, "ids", SETOK_I32));
    if (table->ndim != 2)
        return FAIL(c, "get_rows: table must be [V, D]");
    if (ids->ndim > 3)
        return FAIL(c, "get_rows: ids may have at most 3 dims");
    int64_t want[SETOK_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++)
        want[i] = ids->shape[i];
    want[ids->ndim] = table->shape[1];
    return expect_shape(c, d->dst, "y", ids->ndim + 1, want);
}

static setok_status check_reduce(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    if (x->ndim < 1 || x->shape[x->ndim - 1] < 1)
        return FAIL(c, "%s: x needs a non-empty last dim", setok_op_name(d->op));
    int64_t want[SETOK_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++)
        want[i] = x->shape[i];
    if (d->op == SETOK_OP_ARGMAX) {
        TRY(need(c, d->dst, "y", SETOK_I32));
        return expect_shape(c, d->dst, "y", x->ndim - 1, want);
    }
    int k = d->p.topk.k;
    if (k < 1 || k > x->shape[x->ndim - 1])
        return FAIL(c, "topk: k = %d outside 1..%lld", k, (long long)x->shape[x->ndim - 1]);
    want[x->ndim - 1] = k;
    TRY(need(c, d->dst, "values", x->dtype));
    TRY(expect_shape(c, d->dst, "values", x->ndim, want));
    TRY(need(c, d->dst2, "indices", SETOK_I32));
    return expect_shape(c, d->dst2, "indices", x->ndim, want);
}

static setok_status check_copy(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0], *y = d->dst;
    TRY(same_shape(c, y, "dst", x, "src"));
    if ((x->dtype == SETOK_I32) != (y->dtype == SETOK_I32))
        return FAIL(c, "copy: cannot convert between %s and %s", setok_dtype_name(x->dtype),
                    setok_dtype_name(y->dtype));
    return SETOK_OK;
}

static setok_status check_op(check *c)
{
    const setok_op_desc *d = c->d;
    const setok_tensor *x = d->src[0];
    const char *op = setok_op_name(d->op);

    TRY(need(c, d->dst, "the output", SETOK_DTYPE_COUNT));
    TRY(need(c, x, "the input", SETOK_DTYPE_COUNT));
    /* Ops whose tensors all share one float dtype. */
    bool float_op = d->op != SETOK_OP_COPY && d->op != SETOK_OP_GET_ROWS &&
                    d->op != SETOK_OP_ARGMAX && d->op != SETOK_OP_TOPK;
    if (float_op) {
        TRY(need_float(c, d->dst, "the output"));
        TRY(need(c, x, "the input", d->dst->dtype));
    }
    if (d->dst2 && d->op != SETOK_OP_TOPK)
        return FAIL(c, "%s: has one output", op);

    switch (d->op) {
    case SETOK_OP_MATMUL:
        if (!isfinite(d->p.matmul.alpha))
            return FAIL(c, "matmul: alpha must be finite");
        return check_matmul(c);
    case SETOK_OP_ADD:
    case SETOK_OP_MUL:
        TRY(need(c, d->src[1], "b", d->dst->dtype));
        TRY(same_shape(c, d->dst, "y", x, "a"));
        return broadcastable(c, d->src[1], "b", x, "a");
    case SETOK_OP_SCALE:
        if (!isfinite(d->p.scale.scale) || !isfinite(d->p.scale.bias))
            return FAIL(c, "scale: scale and bias must be finite");
        return same_shape(c, d->dst, "y", x, "x");
    case SETOK_OP_LAYERNORM:
    case SETOK_OP_RMSNORM:
        return check_norm(c);
    case SETOK_OP_GROUPNORM:
        return check_groupnorm(c);
    case SETOK_OP_SOFTMAX:
        if (!isfinite(d->p.softmax.scale))
            return FAIL(c, "softmax: scale must be finite");
        return check_softmax(c);
    case SETOK_OP_GELU:
    case SETOK_OP_GELU_TANH:
    case SETOK_OP_QUICK_GELU:
    case SETOK_OP_SILU:
    case SETOK_OP_RELU:
        return same_shape(c, d->dst, "y", x, "x");
    case SETOK_OP_SWIGLU:
    case SETOK_OP_GEGLU:
        return check_glu(c);
    case SETOK_OP_ROPE:
        return check_rope(c);
    case SETOK_OP_ATTENTION:
        return check_attention(c);
    case SETOK_OP_CONV2D:
        return check_conv(c, false);
    case SETOK_OP_CONV_TRANSPOSE2D:
        return check_conv(c, true);
    case SETOK_OP_UPSAMPLE_NEAREST: {
        int f = d->p.upsample.factor;
        if (x->ndim != 4 || f < 1 || f > 64)
            return FAIL(c, "upsample_nearest: x must be [N, C, H, W] and factor in 1..64");
        int64_t want[4] = {x->shape[0], x->shape[1], x->shape[2] * f, x->shape[3] * f};
        return expect_shape(c, d->dst, "y", 4, want);
    }
    case SETOK_OP_GET_ROWS:
        TRY(need_float(c, x, "table"));
        TRY(need_float(c, d->dst, "y"));
        return check_get_rows(c);
    case SETOK_OP_RESIZE_BICUBIC:
        if (x->ndim != 4 || d->dst->ndim != 4 || x->shape[0] != d->dst->shape[0] ||
            x->shape[1] != d->dst->shape[1])
            return FAIL(c, "resize_bicubic: x and y must be [N, C, H, W] with equal N and C");
        if ((x->shape[2] == 0 || x->shape[3] == 0) && setok_tensor_numel(d->dst) > 0)
            return FAIL(c, "resize_bicubic: empty input");
        return SETOK_OK;
    case SETOK_OP_ARGMAX:
    case SETOK_OP_TOPK:
        TRY(need_float(c, x, "x"));
        return check_reduce(c);
    case SETOK_OP_COPY:
        return check_copy(c);
    case SETOK_OP_COUNT:
        break;
    }
    return FAIL(c, "unknown op %d", (int)d->op);
}

setok_status setok_op_validate(const setok_op_desc *desc, setok_error *err)
{
    if ((unsigned)desc->op >= SETOK_OP_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "unknown op %d", (int)desc->op);
    check c = {desc, err};
    return check_op(&c);
}

void setok_broadcast_strides(const setok_tensor *a, const setok_tensor *b,
                             int64_t out_stride[SETOK_MAX_DIMS])
{
    /* a's shape padded on the left to SETOK_MAX_DIMS; b aligned to the right. */
    int off_a = SETOK_MAX_DIMS - a->ndim, off_b = SETOK_MAX_DIMS - b->ndim;
    for (int i = 0; i < SETOK_MAX_DIMS; i++) {
        out_stride[i] = 0;
        int ib = i - off_b;
        if (i >= off_a && ib >= 0 && b->shape[ib] != 1)
            out_stride[i] = b->stride[ib];
    }
}
