/* cpu-norm.c — LAYERNORM, RMSNORM, GROUPNORM and SOFTMAX on the CPU backend.
 *
 * f32 tensors, threaded over rows (groups for GROUPNORM). Statistics are
 * accumulated in double and taken in two passes (mean, then squared
 * deviations), so large offsets do not cancel; softmax subtracts the row max,
 * and on AVX-512 CPUs takes 16 exponentials at a time (a Cephes-style
 * polynomial within 2 ulp of expf), its sum still in double. Other dtypes go
 * to the reference. */
#include "setok-config.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86_AVX512 1
#else
#define HAVE_X86_AVX512 0
#endif

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

#if HAVE_X86_AVX512
#define AVX512 __attribute__((target("avx512f")))

// exp(x), 16 lanes: x = n ln2 + r, |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial, then
// 2^n by scalef (which also underflows to 0 far below the range)
AVX512 static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f)); // -inf and huge negatives: exp is 0
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// y[0, keep) = softmax(x * scale + mask) of one row (mask contiguous or NULL); false when
// the row has no finite maximum (the caller writes zeros)
AVX512 static bool softmax_row_avx512(float *y, const float *x, const float *mask, float scale,
                                      int64_t keep)
{
    __m512 vs = _mm512_set1_ps(scale), vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < keep; j += 16) {
        __mmask16 k = keep - j >= 16 ? 0xffff : (__mmask16)((1u << (keep - j)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + j), vs);
        if (mask != NULL)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, mask + j));
        _mm512_mask_storeu_ps(y + j, k, v);
        vmax = _mm512_mask_max_ps(vmax, k, vmax, v);
    }
    float mx = _mm512_reduce_max_ps(vmax);
    if (!isfinite(mx))
        return false;
    __m512 vm = _mm512_set1_ps(mx);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t j = 0; j < keep; j += 16) {
        __mmask16 k = keep - j >= 16 ? 0xffff : (__mmask16)((1u << (keep - j)) - 1);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, y + j),
                                                                vm)));
        _mm512_mask_storeu_ps(y + j, k, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                   _mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    for (int64_t j = 0; j < keep; j += 16) {
        __mmask16 k = keep - j >= 16 ? 0xffff : (__mmask16)((1u << (keep - j)) - 1);
        _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), inv));
    }
    return true;
}

static bool avx512_ok;

static void choose_softmax(void)
{
    __builtin_cpu_init();
    const char *cap = getenv("SETOK_CPU_ISA"); // the same cap as the weight kernels
    avx512_ok = __builtin_cpu_supports("avx512f") &&
                (!cap || !strcmp(cap, "avx512") || !strcmp(cap, "avx512bf16"));
}

static bool softmax_avx512(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_softmax);
    return avx512_ok;
}
#endif

static void softmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const softmax_job *t = ctx;
#if HAVE_X86_AVX512
    bool wide = softmax_avx512();
#endif
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
#if HAVE_X86_AVX512
        if (wide && (mask == NULL || ms == 1)) {
            if (!softmax_row_avx512(y, x, mask, t->scale, keep))
                keep = 0;
            for (int64_t j = keep; j < tk; j++) y[j] = 0.0f;
            continue;
        }
#endif
        float mx = -INFINITY;
        for (int64_t j = 0; j < keep; j++) {
            float v = x[j] * t->scale;
            if (mask != NULL) v += mask[j * ms];
            y[j] = v;
            if (v > mx) mx = v;
        }
        if (!isfinite(mx)) {
            keep = 0;  // no finite maximum: the row is 0
        }
        double sum = 0.0;
        for (int64_t j = 0; j < keep; j++) {
            float e = expf(y[j] - mx);
            y[j] = e;
            sum += e;
        }
        float inv = keep > 0 ? (float)(1.0 / sum) : 0.0f;
        for (int64_t j = 0; j < keep; j++) y[j] *= inv;
        for (int64_t j = keep; j < tk; j++) y[j] = 0.0f;
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
