/* cpu-norm.c — LAYERNORM, RMSNORM, GROUPNORM and SOFTMAX on the CPU backend.
 *
 * f32 tensors, threaded over rows (groups for GROUPNORM). Statistics are
 * accumulated in double and taken in two passes (mean, then squared
 * deviations), so large offsets do not cancel; softmax subtracts the row max.
 * Other dtypes go to the reference. */
#include "setok-config.h"

#include <math.h>

#include "cpu-impl.h"

enum { MIN_CHUNK_ELEMS = 16384 };

static int64_t min_rows(int64_t row_len)
{
    return row_len >= MIN_CHUNK_ELEMS ? 1 : MIN_CHUNK_ELEMS / (row_len > 0 ? row_len : 1);
}

static bool f32_or_null(const setok_tensor *t)
{
    return t == NULL || t->dtype == SETOK_F32;
}

// ----------------------------------------------------------------------------
// LAYERNORM, RMSNORM

typedef struct norm_job {
    bool rms;
    float *y;
    const float *x, *w, *b;
    int64_t c;
    float eps;
} norm_job;

static void norm_rows(void *ctx, int64_t begin, int64_t end)
{
    const norm_job *t = ctx;
    int64_t c = t->c;
    for (int64_t r = begin; r < end; r++) {
        const float *x = t->x + r * c;
        float *y = t->y + r * c;
        double mean = 0.0;
        if (!t->rms) {
            for (int64_t i = 0; i < c; i++) mean += x[i];
            mean /= (double)c;
        }
        double var = 0.0;
        for (int64_t i = 0; i < c; i++) {
            double dv = x[i] - mean;
            var += dv * dv;
        }
        var /= (double)c;
        float m = (float)mean, rstd = (float)(1.0 / sqrt(var + t->eps));
        for (int64_t i = 0; i < c; i++) {
            float v = (x[i] - m) * rstd;
            if (t->w != NULL) v *= t->w[i];
            if (t->b != NULL) v += t->b[i];
            y[i] = v;
        }
    }
}

setok_status setok_cpu_norm(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // x [..., C], weight [C]?, bias [C]? (LAYERNORM only) -> y [..., C]
    const setok_tensor *x = d->src[0], *w = d->src[1];
    const setok_tensor *b = d->op == SETOK_OP_LAYERNORM ? d->src[2] : NULL;
    setok_tensor *y = d->dst;
    if ((d->op != SETOK_OP_LAYERNORM && d->op != SETOK_OP_RMSNORM) || x->dtype != SETOK_F32 ||
        y->dtype != SETOK_F32 || !f32_or_null(w) || !f32_or_null(b) || x->ndim < 1) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    norm_job t = {
        .rms = d->op == SETOK_OP_RMSNORM, .y = y->data, .x = x->data,
        .w = w != NULL ? w->data : NULL, .b = b != NULL ? b->data : NULL,
        .c = x->shape[x->ndim - 1], .eps = d->p.norm.eps,
    };
    if (t.c == 0) {
        return SETOK_OK;
    }
    setok_cpu_parallel_for(backend, setok_tensor_numel(x) / t.c, min_rows(t.c), norm_rows, &t);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// GROUPNORM

typedef struct groupnorm_job {
    float *y;
    const float *x, *w, *b;
    int64_t channels, groups, spatial;
    float eps;
} groupnorm_job;

static void groupnorm_groups(void *ctx, int64_t begin, int64_t end)
{
    const groupnorm_job *t = ctx;
    int64_t cg = t->channels / t->groups, len = cg * t->spatial;
    for (int64_t ng = begin; ng < end; ng++) {
        // group ng of image ng / groups: channels [g * cg, (g + 1) * cg), contiguous
        const float *x = t->x + ng * len;
        float *y = t->y + ng * len;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < len; i++) mean += x[i];
        mean /= (double)len;
        for (int64_t i = 0; i < len; i++) {
            double dv = x[i] - mean;
            var += dv * dv;
        }
        var /= (double)len;
        float m = (float)mean, rstd = (float)(1.0 / sqrt(var + t->eps));
        int64_t c0 = (ng % t->groups) * cg;
        for (int64_t c = 0; c < cg; c++) {
            float wc = t->w != NULL ? t->w[c0 + c] * rstd : rstd;
            float bc = t->b != NULL ? t->b[c0 + c] : 0.0f;
            const float *xc = x + c * t->spatial;
            float *yc = y + c * t->spatial;
            for (int64_t i = 0; i < t->spatial; i++) {
                yc[i] = (xc[i] - m) * wc + bc;
            }
        }
    }
}

setok_status setok_cpu_groupnorm(setok_backend *backend, const setok_op_desc *d,
                                 setok_error *err)
{
    // x [N, C, ...] (3-D or 4-D), weight [C]?, bias [C]? -> y [N, C, ...]
    const setok_tensor *x = d->src[0], *w = d->src[1], *b = d->src[2];
    setok_tensor *y = d->dst;
    int groups = d->p.groupnorm.groups;
    if (x->dtype != SETOK_F32 || y->dtype != SETOK_F32 || !f32_or_null(w) || !f32_or_null(b) ||
        x->ndim < 2 || groups <= 0 || x->shape[1] % groups != 0) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    groupnorm_job t = {
        .y = y->data, .x = x->data, .w = w != NULL ? w->data : NULL,
        .b = b != NULL ? b->data : NULL, .channels = x->shape[1], .groups = groups,
        .spatial = 1, .eps = d->p.groupnorm.eps,
    };
    for (int ax = 2; ax < x->ndim; ax++) {
        t.spatial *= x->shape[ax];
    }
    int64_t len = t.channels / groups * t.spatial;
    if (len == 0) {
        return SETOK_OK;
    }
    setok_cpu_parallel_for(backend, x->shape[0] * groups, min_rows(len), groupnorm_groups, &t);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// SOFTMAX

typedef struct softmax_job {
    float *y;
    const float *x, *mask;
    int64_t shape[SETOK_MAX_DIMS];  // x's, right-aligned: [.., .., Tq, Tk]
    int64_t mstride[SETOK_MAX_DIMS];  // the mask's strides over x's axes, 0 where broadcast
    float scale;
    bool causal;
} softmax_job;

static void softmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const softmax_job *t = ctx;
    int64_t tq = t->shape[2], tk = t->shape[3];
    for (int64_t r = begin; r < end; r++) {
        int64_t i = r % tq, i1 = (r / tq) % t->shape[1], i0 = r / (tq * t->shape[1]);
        const float *x = t->x + r * tk;
        float *y = t->y + r * tk;
        const float *mask = NULL;
        int64_t ms = t->mstride[3];
        if (t->mask != NULL) {
            mask = t->mask + i0 * t->mstride[0] + i1 * t->mstride[1] + i * t->mstride[2];
        }
        // keys [0, keep) are visible to query i
        int64_t keep = tk;
        if (t->causal) {
            int64_t last = i + tk - tq;
            keep = last < 0 ? 0 : (last + 1 < tk ? last + 1 : tk);
        }
        for (int64_t j = 0; j < keep; j++) {
            y[j] = x[j] * t->scale + (mask != NULL ? mask[j * ms] : 0.0f);
        }
        setok_cpu_softmax_row(y, keep, tk);
    }
}

setok_status setok_cpu_softmax(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // x [..., Tq, Tk], mask? broadcastable to x -> y = softmax(x * scale + mask) over Tk
    const setok_tensor *x = d->src[0], *mask = d->src[1];
    setok_tensor *y = d->dst;
    if (x->dtype != SETOK_F32 || y->dtype != SETOK_F32 || !f32_or_null(mask) || x->ndim < 1 ||
        (mask != NULL && mask->ndim > x->ndim)) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    softmax_job t = {.y = y->data, .x = x->data, .mask = mask != NULL ? mask->data : NULL,
                     .scale = d->p.softmax.scale, .causal = d->p.softmax.causal};
    int pad = SETOK_MAX_DIMS - x->ndim;
    for (int ax = 0; ax < SETOK_MAX_DIMS; ax++) {
        t.shape[ax] = ax < pad ? 1 : x->shape[ax - pad];
    }
    if (mask != NULL) {
        int mpad = SETOK_MAX_DIMS - mask->ndim;
        int64_t stride = 1;
        for (int ax = SETOK_MAX_DIMS - 1; ax >= 0; ax--) {
            int64_t extent = ax < mpad ? 1 : mask->shape[ax - mpad];
            t.mstride[ax] = extent == 1 ? 0 : stride;
            stride *= extent;
        }
    }
    int64_t tk = t.shape[3];
    if (tk == 0 || setok_tensor_numel(x) == 0) {
        return SETOK_OK;
    }
    // exp dominates: a row costs about 8 multiply-adds per element
    int64_t rows = setok_tensor_numel(x) / tk;
    setok_cpu_parallel_for(backend, rows, min_rows(tk * 8), softmax_rows, &t);
    return SETOK_OK;
}
