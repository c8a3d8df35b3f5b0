/* ref-ops.c — the reference implementation of every op.
 *
 * Plain loops in double precision over any dtype, written to be read: this
 * is the oracle the fast CPU paths and the CUDA kernels are tested against,
 * and the CPU backend's fallback. No threads, no blocking, no cleverness. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"

typedef setok_op_desc desc_t;

static double ld(const setok_tensor *t, int64_t i)
{
    return setok_load_f32(t->data, t->dtype, i);
}

static void st(setok_tensor *t, int64_t i, double v)
{
    setok_store_f32(t->data, t->dtype, i, (float)v);
}

static int64_t last_dim(const setok_tensor *t)
{
    return t->ndim ? t->shape[t->ndim - 1] : 1;
}

/* Splits a flat index of a contiguous tensor into a SETOK_MAX_DIMS index
 * aligned to the right (padded dims are 0). */
static void unravel(const setok_tensor *t, int64_t flat, int64_t idx[SETOK_MAX_DIMS])
{
    int off = SETOK_MAX_DIMS - t->ndim;
    for (int i = SETOK_MAX_DIMS - 1; i >= 0; i--) {
        int d = i - off;
        if (d < 0) {
            idx[i] = 0;
            continue;
        }
        idx[i] = flat % t->shape[d];
        flat /= t->shape[d];
    }
}

static int64_t dot4(const int64_t idx[SETOK_MAX_DIMS], const int64_t stride[SETOK_MAX_DIMS])
{
    int64_t o = 0;
    for (int i = 0; i < SETOK_MAX_DIMS; i++)
        o += idx[i] * stride[i];
    return o;
}

// ----------------------------------------------------------------------------

static setok_status ref_matmul(setok_backend *be, const desc_t *d, setok_error *err)
{
    // a: [B?, M, K] (or [B?, K, M]), b: [B|1?, K, N] (or [.., N, K]), bias: [N] -> y: [B?, M, N]
    const setok_tensor *a = d->src[0], *b = d->src[1], *bias = d->src[2];
    bool ta = d->p.matmul.trans_a, tb = d->p.matmul.trans_b;
    int64_t batch = a->ndim == 3 ? a->shape[0] : 1;
    int64_t m = d->dst->shape[d->dst->ndim - 2], n = d->dst->shape[d->dst->ndim - 1];
    int64_t k = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    bool b_batched = b->ndim == 3;
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t ao = bi * m * k, bo = b_batched ? bi * k * n : 0, yo = bi * m * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0.0;
                for (int64_t p = 0; p < k; p++) {
                    double av = ld(a, ao + (ta ? p * m + i : i * k + p));
                    double bv = ld(b, bo + (tb ? j * k + p : p * n + j));
                    s += av * bv;
                }
                s *= d->p.matmul.alpha;
                if (bias)
                    s += ld(bias, j);
                st(d->dst, yo + i * n + j, s);
            }
    }
    return SETOK_OK;
}

static setok_status ref_binary(setok_backend *be, const desc_t *d, setok_error *err)
{
    // a: [...], b: broadcastable to a -> y: shape of a
    const setok_tensor *a = d->src[0], *b = d->src[1];
    int64_t bstride[SETOK_MAX_DIMS], idx[SETOK_MAX_DIMS];
    setok_broadcast_strides(a, b, bstride);
    int64_t n = setok_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        unravel(a, i, idx);
        double x = ld(a, i), y = ld(b, dot4(idx, bstride));
        st(d->dst, i, d->op == SETOK_OP_ADD ? x + y : x * y);
    }
    return SETOK_OK;
}

static setok_status ref_scale(setok_backend *be, const desc_t *d, setok_error *err)
{
    int64_t n = setok_tensor_numel(d->src[0]);
    for (int64_t i = 0; i < n; i++)
        st(d->dst, i, ld(d->src[0], i) * d->p.scale.scale + d->p.scale.bias);
    return SETOK_OK;
}

static setok_status ref_layernorm(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [R, C], weight: [C]?, bias: [C]? -> y: [R, C]
    const setok_tensor *x = d->src[0], *w = d->src[1], *b = d->src[2];
    int64_t c = last_dim(x), rows = setok_tensor_numel(x) / (c ? c : 1);
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < c; i++)
            mean += ld(x, r * c + i);
        mean /= (double)c;
        for (int64_t i = 0; i < c; i++) {
            double t = ld(x, r * c + i) - mean;
            var += t * t;
        }
        var /= (double)c;
        double inv = 1.0 / sqrt(var + d->p.norm.eps);
        for (int64_t i = 0; i < c; i++) {
            double v = (ld(x, r * c + i) - mean) * inv;
            if (w)
                v *= ld(w, i);
            if (b)
                v += ld(b, i);
            st(d->dst, r * c + i, v);
        }
    }
    return SETOK_OK;
}

static setok_status ref_rmsnorm(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [R, C], weight: [C]? -> y: [R, C]
    const setok_tensor *x = d->src[0], *w = d->src[1];
    int64_t c = last_dim(x), rows = setok_tensor_numel(x) / (c ? c : 1);
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0.0;
        for (int64_t i = 0; i < c; i++) {
            double v = ld(x, r * c + i);
            ss += v * v;
        }
        double inv = 1.0 / sqrt(ss / (double)c + d->p.norm.eps);
        for (int64_t i = 0; i < c; i++)
            st(d->dst, r * c + i, ld(x, r * c + i) * inv * (w ? ld(w, i) : 1.0));
    }
    return SETOK_OK;
}

static setok_status ref_groupnorm(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [N, C, S...], weight: [C]?, bias: [C]? -> y: [N, C, S...]
    const setok_tensor *x = d->src[0], *w = d->src[1], *b = d->src[2];
    int64_t n = x->shape[0], c = x->shape[1];
    int64_t spatial = x->ndim == 4 ? x->shape[2] * x->shape[3] : x->shape[2];
    int64_t groups = d->p.groupnorm.groups, cg = c / groups, len = cg * spatial;
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t g = 0; g < groups; g++) {
            int64_t base = (ni * c + g * cg) * spatial;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < len; i++)
                mean += ld(x, base + i);
            mean /= (double)len;
            for (int64_t i = 0; i < len; i++) {
                double t = ld(x, base + i) - mean;
                var += t * t;
            }
            var /= (double)len;
            double inv = 1.0 / sqrt(var + d->p.groupnorm.eps);
            for (int64_t i = 0; i < len; i++) {
                int64_t ch = g * cg + i / spatial;
                double v = (ld(x, base + i) - mean) * inv;
                if (w)
                    v *= ld(w, ch);
                if (b)
                    v += ld(b, ch);
                st(d->dst, base + i, v);
            }
        }
    return SETOK_OK;
}

/* Whether key j is visible to query i of a causal [Tq, Tk] block. */
static bool causal_visible(int64_t i, int64_t j, int64_t tq, int64_t tk)
{
    return j <= i + tk - tq;
}

static setok_status ref_softmax(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [..., Tq, Tk], mask: broadcastable (additive) -> y: softmax over Tk
    const setok_tensor *x = d->src[0], *mask = d->src[1];
    int64_t tk = last_dim(x), rows = setok_tensor_numel(x) / (tk ? tk : 1);
    int64_t tq = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
    int64_t mstride[SETOK_MAX_DIMS], idx[SETOK_MAX_DIMS];
    if (mask)
        setok_broadcast_strides(x, mask, mstride);
    double *row = malloc((size_t)(tk ? tk : 1) * sizeof *row);
    if (!row)
        return setok_fail(err, SETOK_ERR_NOMEM, "softmax: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < tk; j++) {
            double v = ld(x, r * tk + j) * d->p.softmax.scale;
            if (mask) {
                unravel(x, r * tk + j, idx);
                v += ld(mask, dot4(idx, mstride));
            }
            if (d->p.softmax.causal && !causal_visible(r % tq, j, tq, tk))
                v = -INFINITY;
            row[j] = v;
            if (v > mx)
                mx = v;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < tk; j++) {
            row[j] = isfinite(mx) ? exp(row[j] - mx) : 0.0;
            sum += row[j];
        }
        for (int64_t j = 0; j < tk; j++)
            st(d->dst, r * tk + j, sum > 0.0 ? row[j] / sum : 0.0);
    }
    free(row);
    return SETOK_OK;
}

static double act(setok_op op, double x)
{
    switch (op) {
    case SETOK_OP_GELU:
    case SETOK_OP_GEGLU:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case SETOK_OP_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case SETOK_OP_QUICK_GELU:
        return x / (1.0 + exp(-1.702 * x));
    case SETOK_OP_SILU:
    case SETOK_OP_SWIGLU:
        return x / (1.0 + exp(-x));
    case SETOK_OP_RELU:
        return x > 0.0 ? x : 0.0;
    default:
        return x;
    }
}

static setok_status ref_unary(setok_backend *be, const desc_t *d, setok_error *err)
{
    int64_t n = setok_tensor_numel(d->src[0]);
    for (int64_t i = 0; i < n; i++)
        st(d->dst, i, act(d->op, ld(d->src[0], i)));
    return SETOK_OK;
}

static setok_status ref_glu(setok_backend *be, const desc_t *d, setok_error *err)
{
    // two inputs: y = act(gate) * value; split: x [R, 2H] -> y [R, H] = x[:, :H] * act(x[:, H:])
    const setok_tensor *g = d->src[0], *v = d->src[1];
    int64_t n = setok_tensor_numel(d->dst);
    if (v) {
        for (int64_t i = 0; i < n; i++)
            st(d->dst, i, act(d->op, ld(g, i)) * ld(v, i));
        return SETOK_OK;
    }
    int64_t h = last_dim(d->dst), rows = n / (h ? h : 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < h; i++)
            st(d->dst, r * h + i, ld(g, r * 2 * h + i) * act(d->op, ld(g, r * 2 * h + h + i)));
    return SETOK_OK;
}

static setok_status ref_rope(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [B?, H, T, D], positions: [T], inv_freq: [rot/2]? -> y: [B?, H, T, D]
    const setok_tensor *x = d->src[0], *pos = d->src[1], *inv = d->src[2];
    int64_t t = x->shape[x->ndim - 2], dim = x->shape[x->ndim - 1];
    int64_t rot = d->p.rope.rot_dims ? d->p.rope.rot_dims : dim, half = rot / 2;
    int64_t heads = t * dim > 0 ? setok_tensor_numel(x) / (t * dim) : 0;
    const int32_t *p = pos->data;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t ti = 0; ti < t; ti++) {
            int64_t base = (h * t + ti) * dim;
            for (int64_t i = 0; i < half; i++) {
                double f = inv ? ld(inv, i) : pow(d->p.rope.theta, -2.0 * (double)i / (double)rot);
                double angle = (double)p[ti] * d->p.rope.freq_scale * f;
                double c = cos(angle), s = sin(angle);
                double x1 = ld(x, base + i), x2 = ld(x, base + half + i);
                st(d->dst, base + i, x1 * c - x2 * s);
                st(d->dst, base + half + i, x2 * c + x1 * s);
            }
            for (int64_t i = rot; i < dim; i++)
                st(d->dst, base + i, ld(x, base + i));
        }
    return SETOK_OK;
}

static setok_status ref_attention(setok_backend *be, const desc_t *d, setok_error *err)
{
    // q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] (views: read through their
    // strides), mask? -> y: [B, Hq, Tq, Dv]
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *mask = d->src[3];
    const int64_t *ks = k->stride, *vs = v->stride;
    int64_t nb = q->shape[0], hq = q->shape[1], tq = q->shape[2], dh = q->shape[3];
    int64_t hkv = k->shape[1], tk = k->shape[2], dv = v->shape[3];
    double scale = d->p.attention.scale != 0.0f ? d->p.attention.scale : 1.0 / sqrt((double)dh);
    int64_t mstride[SETOK_MAX_DIMS];
    setok_tensor scores = setok_tensor_make(NULL, NULL, q->dtype, 4,
                                            (int64_t[4]){nb, hq, tq, tk});
    if (mask)
        setok_broadcast_strides(&scores, mask, mstride);
    double *p = malloc((size_t)(tk ? tk : 1) * sizeof *p);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "attention: out of memory");
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < hq; h++) {
            int64_t kvh = h / (hq / hkv);
            int64_t qo = (b * hq + h) * tq * dh, ko = b * ks[0] + kvh * ks[1];
            int64_t vo = b * vs[0] + kvh * vs[1], yo = (b * hq + h) * tq * dv;
            for (int64_t i = 0; i < tq; i++) {
                double mx = -INFINITY;
                for (int64_t j = 0; j < tk; j++) {
                    double s = 0.0;
                    for (int64_t e = 0; e < dh; e++)
                        s += ld(q, qo + i * dh + e) * ld(k, ko + j * ks[2] + e * ks[3]);
                    s *= scale;
                    if (mask) {
                        int64_t idx[4] = {b, h, i, j};
                        s += ld(mask, dot4(idx, mstride));
                    }
                    if (d->p.attention.causal && !causal_visible(i, j, tq, tk))
                        s = -INFINITY;
                    p[j] = s;
                    if (s > mx)
                        mx = s;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < tk; j++) {
                    p[j] = isfinite(mx) ? exp(p[j] - mx) : 0.0;
                    sum += p[j];
                }
                for (int64_t e = 0; e < dv; e++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < tk; j++)
                        acc += p[j] * ld(v, vo + j * vs[2] + e * vs[3]);
                    st(d->dst, yo + i * dv + e, sum > 0.0 ? acc / sum : 0.0);
                }
            }
        }
    free(p);
    return SETOK_OK;
}

static setok_status ref_conv2d(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [N, C, H, W], w: [OC, C, KH, KW], bias: [OC]? -> y: [N, OC, OH, OW]
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t oc = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    int64_t oh = d->dst->shape[2], ow = d->dst->shape[3];
    int sh = d->p.conv.stride_h, sw = d->p.conv.stride_w, ph = d->p.conv.pad_h,
        pw = d->p.conv.pad_w;
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t o = 0; o < oc; o++)
            for (int64_t yi = 0; yi < oh; yi++)
                for (int64_t xi = 0; xi < ow; xi++) {
                    double s = bias ? ld(bias, o) : 0.0;
                    for (int64_t ci = 0; ci < c; ci++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = yi * sh - ph + ky, ix = xi * sw - pw + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd)
                                    continue;
                                s += ld(x, ((ni * c + ci) * h + iy) * wd + ix) *
                                     ld(w, ((o * c + ci) * kh + ky) * kw + kx);
                            }
                    st(d->dst, ((ni * oc + o) * oh + yi) * ow + xi, s);
                }
    return SETOK_OK;
}

static setok_status ref_conv_transpose2d(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [N, C, H, W], w: [C, OC, KH, KW], bias: [OC]? -> y: [N, OC, (H-1)s+KH, (W-1)s+KW]
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t oc = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int64_t oh = d->dst->shape[2], ow = d->dst->shape[3];
    int sh = d->p.conv.stride_h, sw = d->p.conv.stride_w;
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t o = 0; o < oc; o++)
            for (int64_t yi = 0; yi < oh; yi++)
                for (int64_t xi = 0; xi < ow; xi++) {
                    // gather form: input pixel (iy, ix) reaches yi through ky = yi - iy * s
                    double s = bias ? ld(bias, o) : 0.0;
                    for (int64_t ci = 0; ci < c; ci++)
                        for (int64_t ky = 0; ky < kh; ky++) {
                            if ((yi - ky) % sh || yi - ky < 0 || (yi - ky) / sh >= h)
                                continue;
                            int64_t iy = (yi - ky) / sh;
                            for (int64_t kx = 0; kx < kw; kx++) {
                                if ((xi - kx) % sw || xi - kx < 0 || (xi - kx) / sw >= wd)
                                    continue;
                                int64_t ix = (xi - kx) / sw;
                                s += ld(x, ((ni * c + ci) * h + iy) * wd + ix) *
                                     ld(w, ((ci * oc + o) * kh + ky) * kw + kx);
                            }
                        }
                    st(d->dst, ((ni * oc + o) * oh + yi) * ow + xi, s);
                }
    return SETOK_OK;
}

static setok_status ref_upsample_nearest(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [N, C, H, W] -> y: [N, C, H f, W f]
    const setok_tensor *x = d->src[0];
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
    int64_t f = d->p.upsample.factor, oh = h * f, ow = w * f;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t yi = 0; yi < oh; yi++)
            for (int64_t xi = 0; xi < ow; xi++)
                st(d->dst, (p * oh + yi) * ow + xi, ld(x, (p * h + yi / f) * w + xi / f));
    return SETOK_OK;
}

static setok_status ref_get_rows(setok_backend *be, const desc_t *d, setok_error *err)
{
    // table: [V, D], ids: [...] -> y: [..., D]
    const setok_tensor *table = d->src[0], *ids = d->src[1];
    int64_t v = table->shape[0], dim = table->shape[1], n = setok_tensor_numel(ids);
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < n; i++) {
        if (id[i] < 0 || id[i] >= v)
            return setok_fail(err, SETOK_ERR_INPUT, "get_rows: id %d at position %lld is "
                              "outside the table of %lld rows", id[i], (long long)i, (long long)v);
        for (int64_t j = 0; j < dim; j++)
            st(d->dst, i * dim + j, ld(table, (int64_t)id[i] * dim + j));
    }
    return SETOK_OK;
}

static double cubic1(double x, double a) /* |x| <= 1 */
{
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
}

static double cubic2(double x, double a) /* 1 < |x| < 2 */
{
    return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
}

/* PyTorch's source coordinate for output index o (cubic: not clamped at 0). */
static double resize_source(int64_t o, int64_t in, int64_t out, bool align_corners)
{
    if (align_corners)
        return out > 1 ? (double)o * (double)(in - 1) / (double)(out - 1) : 0.0;
    return ((double)o + 0.5) * (double)in / (double)out - 0.5;
}

static setok_status ref_resize_bicubic(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [N, C, H, W] -> y: [N, C, OH, OW]; A = -0.75, border indices clamped
    const setok_tensor *x = d->src[0];
    const double a = -0.75;
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
    int64_t oh = d->dst->shape[2], ow = d->dst->shape[3];
    bool ac = d->p.resize.align_corners;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t yi = 0; yi < oh; yi++) {
            double sy = resize_source(yi, h, oh, ac);
            int64_t y0 = (int64_t)floor(sy);
            double ty = sy - (double)y0;
            double cy[4] = {cubic2(ty + 1.0, a), cubic1(ty, a), cubic1(1.0 - ty, a),
                            cubic2(2.0 - ty, a)};
            for (int64_t xi = 0; xi < ow; xi++) {
                double sx = resize_source(xi, w, ow, ac);
                int64_t x0 = (int64_t)floor(sx);
                double tx = sx - (double)x0;
                double cx[4] = {cubic2(tx + 1.0, a), cubic1(tx, a), cubic1(1.0 - tx, a),
                                cubic2(2.0 - tx, a)};
                double s = 0.0;
                for (int i = 0; i < 4; i++) {
                    int64_t yy = y0 - 1 + i;
                    yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                    for (int j = 0; j < 4; j++) {
                        int64_t xx = x0 - 1 + j;
                        xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                        s += cy[i] * cx[j] * ld(x, (p * h + yy) * w + xx);
                    }
                }
                st(d->dst, (p * oh + yi) * ow + xi, s);
            }
        }
    return SETOK_OK;
}

/* a ranks before b: larger first, NaN last, ties by index. */
static bool ranks_before(double a, int64_t ia, double b, int64_t ib)
{
    if (isnan(a) || isnan(b))
        return isnan(b) && (!isnan(a) || ia < ib);
    return a > b || (a == b && ia < ib);
}

static setok_status ref_argmax(setok_backend *be, const desc_t *d, setok_error *err)
{
    const setok_tensor *x = d->src[0];
    int64_t c = last_dim(x), rows = setok_tensor_numel(x) / c;
    int32_t *out = d->dst->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (ranks_before(ld(x, r * c + j), j, ld(x, r * c + best), best))
                best = j;
        out[r] = (int32_t)best;
    }
    return SETOK_OK;
}

static setok_status ref_topk(setok_backend *be, const desc_t *d, setok_error *err)
{
    // x: [R, C] -> values [R, k], indices [R, k]: k rounds of "best not yet taken"
    const setok_tensor *x = d->src[0];
    int64_t c = last_dim(x), rows = setok_tensor_numel(x) / c, k = d->p.topk.k;
    int32_t *idx = d->dst2->data;
    unsigned char *taken = malloc((size_t)c);
    if (!taken)
        return setok_fail(err, SETOK_ERR_NOMEM, "topk: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        memset(taken, 0, (size_t)c);
        for (int64_t t = 0; t < k; t++) {
            int64_t best = -1;
            for (int64_t j = 0; j < c; j++)
                if (!taken[j] &&
                    (best < 0 || ranks_before(ld(x, r * c + j), j, ld(x, r * c + best), best)))
                    best = j;
            taken[best] = 1;
            idx[r * k + t] = (int32_t)best;
            st(d->dst, r * k + t, ld(x, r * c + best));
        }
    }
    free(taken);
    return SETOK_OK;
}

static setok_status ref_copy(setok_backend *be, const desc_t *d, setok_error *err)
{
    // src, dst: any strided views of one shape
    const setok_tensor *x = d->src[0];
    setok_tensor *y = d->dst;
    int64_t n = setok_tensor_numel(x), idx[SETOK_MAX_DIMS];
    int64_t xs[SETOK_MAX_DIMS] = {0}, ys[SETOK_MAX_DIMS] = {0};
    int off = SETOK_MAX_DIMS - x->ndim;
    for (int i = 0; i < x->ndim; i++) {
        xs[off + i] = x->stride[i];
        ys[off + i] = y->stride[i];
    }
    for (int64_t i = 0; i < n; i++) {
        unravel(x, i, idx);
        int64_t xo = dot4(idx, xs), yo = dot4(idx, ys);
        if (x->dtype == SETOK_I32)
            ((int32_t *)y->data)[yo] = ((const int32_t *)x->data)[xo];
        else
            st(y, yo, ld(x, xo));
    }
    return SETOK_OK;
}

const setok_op_fn setok_ref_ops[SETOK_OP_COUNT] = {
    [SETOK_OP_MATMUL] = ref_matmul,
    [SETOK_OP_ADD] = ref_binary,
    [SETOK_OP_MUL] = ref_binary,
    [SETOK_OP_SCALE] = ref_scale,
    [SETOK_OP_LAYERNORM] = ref_layernorm,
    [SETOK_OP_RMSNORM] = ref_rmsnorm,
    [SETOK_OP_GROUPNORM] = ref_groupnorm,
    [SETOK_OP_SOFTMAX] = ref_softmax,
    [SETOK_OP_GELU] = ref_unary,
    [SETOK_OP_GELU_TANH] = ref_unary,
    [SETOK_OP_QUICK_GELU] = ref_unary,
    [SETOK_OP_SILU] = ref_unary,
    [SETOK_OP_RELU] = ref_unary,
    [SETOK_OP_SWIGLU] = ref_glu,
    [SETOK_OP_GEGLU] = ref_glu,
    [SETOK_OP_ROPE] = ref_rope,
    [SETOK_OP_ATTENTION] = ref_attention,
    [SETOK_OP_CONV2D] = ref_conv2d,
    [SETOK_OP_CONV_TRANSPOSE2D] = ref_conv_transpose2d,
    [SETOK_OP_UPSAMPLE_NEAREST] = ref_upsample_nearest,
    [SETOK_OP_GET_ROWS] = ref_get_rows,
    [SETOK_OP_RESIZE_BICUBIC] = ref_resize_bicubic,
    [SETOK_OP_ARGMAX] = ref_argmax,
    [SETOK_OP_TOPK] = ref_topk,
    [SETOK_OP_COPY] = ref_copy,
};
