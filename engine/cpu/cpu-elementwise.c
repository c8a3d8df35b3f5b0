/* cpu-elementwise.c — elementwise ops on the CPU backend: ADD/MUL with NumPy
 * broadcasting, SCALE, the activations, the gated units and the strided COPY.
 *
 * f32 only (COPY also moves same-dtype f16/bf16/i32 and converts f32 <-> f16/bf16);
 * anything else goes to the reference. Work is split over the thread pool in
 * rows, with chunks large enough that small tensors stay on one thread. */
#include "setok-config.h"

#include <math.h>
#include <string.h>

#include "cpu-impl.h"

// Elements per pool chunk below which threading costs more than it saves.
enum { MIN_CHUNK_ELEMS = 16384 };

static int64_t min_rows(int64_t row_len)
{
    return row_len >= MIN_CHUNK_ELEMS ? 1 : MIN_CHUNK_ELEMS / (row_len > 0 ? row_len : 1);
}

// t's shape right-aligned into 4 axes, leading axes 1
static void shape4(const setok_tensor *t, int64_t shape[SETOK_MAX_DIMS])
{
    int pad = SETOK_MAX_DIMS - t->ndim;
    for (int i = 0; i < SETOK_MAX_DIMS; i++) {
        shape[i] = i < pad ? 1 : t->shape[i - pad];
    }
}

// ----------------------------------------------------------------------------
// ADD, MUL

typedef struct binary_job {
    setok_op op;
    float *y;
    const float *a, *b;
    int64_t shape[SETOK_MAX_DIMS];    // y's, right-aligned
    int64_t bstride[SETOK_MAX_DIMS];  // b's element strides over y's axes, 0 where broadcast
} binary_job;

static void binary_rows(void *ctx, int64_t begin, int64_t end)
{
    const binary_job *t = ctx;
    int64_t inner = t->shape[3], bs = t->bstride[3];
    // row r's indices over the outer axes, stepped rather than divided out per row
    int64_t i2 = begin % t->shape[2], i1 = (begin / t->shape[2]) % t->shape[1];
    int64_t i0 = begin / (t->shape[2] * t->shape[1]);
    for (int64_t r = begin; r < end; r++) {
        const float *a = t->a + r * inner;
        const float *b = t->b + i0 * t->bstride[0] + i1 * t->bstride[1] + i2 * t->bstride[2];
        float *y = t->y + r * inner;
        if (bs == 0) {
            float bv = b[0];
            if (t->op == SETOK_OP_ADD) {
                for (int64_t j = 0; j < inner; j++) y[j] = a[j] + bv;
            } else {
                for (int64_t j = 0; j < inner; j++) y[j] = a[j] * bv;
            }
        } else if (t->op == SETOK_OP_ADD) {
            for (int64_t j = 0; j < inner; j++) y[j] = a[j] + b[j];
        } else {
            for (int64_t j = 0; j < inner; j++) y[j] = a[j] * b[j];
        }
        if (++i2 == t->shape[2]) {
            i2 = 0;
            if (++i1 == t->shape[1]) {
                i1 = 0;
                i0++;
            }
        }
    }
}

// same shapes: [begin, end) of the flat arrays
static void binary_flat(void *ctx, int64_t begin, int64_t end)
{
    const binary_job *t = ctx;
    const float *a = t->a, *b = t->b;
    float *y = t->y;
    if (t->op == SETOK_OP_ADD) {
        for (int64_t i = begin; i < end; i++) y[i] = a[i] + b[i];
    } else {
        for (int64_t i = begin; i < end; i++) y[i] = a[i] * b[i];
    }
}

setok_status setok_cpu_binary(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // a [...], b broadcastable to a -> y shape of a
    const setok_tensor *a = d->src[0], *b = d->src[1];
    setok_tensor *y = d->dst;
    if ((d->op != SETOK_OP_ADD && d->op != SETOK_OP_MUL) || a->dtype != SETOK_F32 ||
        b->dtype != SETOK_F32 || y->dtype != SETOK_F32 || b->ndim > y->ndim) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    binary_job t = {.op = d->op, .y = y->data, .a = a->data, .b = b->data};
    int64_t bshape[SETOK_MAX_DIMS];
    shape4(y, t.shape);
    shape4(b, bshape);
    int64_t stride = 1;
    for (int i = SETOK_MAX_DIMS - 1; i >= 0; i--) {
        t.bstride[i] = bshape[i] == 1 ? 0 : stride;
        stride *= bshape[i];
    }
    if (setok_tensor_numel(b) == setok_tensor_numel(y)) {
        setok_cpu_parallel_for(backend, setok_tensor_numel(y), MIN_CHUNK_ELEMS, binary_flat, &t);
        return SETOK_OK;
    }
    int64_t rows = t.shape[0] * t.shape[1] * t.shape[2];
    setok_cpu_parallel_for(backend, rows, min_rows(t.shape[3]), binary_rows, &t);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// SCALE and the activations

static inline float sigmoid_f(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static inline float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

static inline float gelu_tanh(float x)
{
    const float k = 0.79788456080286536f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

typedef struct unary_job {
    setok_op op;
    float *y;
    const float *x;
    float scale, bias;
} unary_job;

static void unary_range(void *ctx, int64_t begin, int64_t end)
{
    const unary_job *t = ctx;
    const float *x = t->x;
    float *y = t->y;
    switch (t->op) {
    case SETOK_OP_SCALE:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] * t->scale + t->bias;
        break;
    case SETOK_OP_GELU:
        for (int64_t i = begin; i < end; i++) y[i] = gelu_erf(x[i]);
        break;
    case SETOK_OP_GELU_TANH:
        for (int64_t i = begin; i < end; i++) y[i] = gelu_tanh(x[i]);
        break;
    case SETOK_OP_QUICK_GELU:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] * sigmoid_f(1.702f * x[i]);
        break;
    case SETOK_OP_SILU:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] * sigmoid_f(x[i]);
        break;
    case SETOK_OP_RELU:
        for (int64_t i = begin; i < end; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    default:
        break;
    }
}

setok_status setok_cpu_unary(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // x [...] -> y same shape
    const setok_tensor *x = d->src[0];
    setok_tensor *y = d->dst;
    bool known = d->op == SETOK_OP_SCALE || d->op == SETOK_OP_GELU ||
                 d->op == SETOK_OP_GELU_TANH || d->op == SETOK_OP_QUICK_GELU ||
                 d->op == SETOK_OP_SILU || d->op == SETOK_OP_RELU;
    if (!known || x->dtype != SETOK_F32 || y->dtype != SETOK_F32) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    unary_job t = {.op = d->op, .y = y->data, .x = x->data};
    if (d->op == SETOK_OP_SCALE) {
        t.scale = d->p.scale.scale;
        t.bias = d->p.scale.bias;
    }
    // transcendental activations are ~10x the work of a multiply-add: smaller chunks pay
    int64_t min_chunk = d->op == SETOK_OP_SCALE ? MIN_CHUNK_ELEMS : MIN_CHUNK_ELEMS / 8;
    setok_cpu_parallel_for(backend, setok_tensor_numel(y), min_chunk, unary_range, &t);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// SWIGLU, GEGLU

typedef struct glu_job {
    bool gelu;
    float *y;
    const float *gate, *value;
    int64_t n;  // row length of y (split form; rows of gate and value are 2n apart)
} glu_job;

// y [n] = act(g [n]) * v [n]
static void glu_run(bool gelu, float *y, const float *g, const float *v, int64_t n)
{
    if (gelu) {
        for (int64_t j = 0; j < n; j++) y[j] = gelu_erf(g[j]) * v[j];
    } else {
        for (int64_t j = 0; j < n; j++) y[j] = g[j] * sigmoid_f(g[j]) * v[j];
    }
}

static void glu_flat(void *ctx, int64_t begin, int64_t end)
{
    const glu_job *t = ctx;
    glu_run(t->gelu, t->y + begin, t->gate + begin, t->value + begin, end - begin);
}

static void glu_rows(void *ctx, int64_t begin, int64_t end)
{
    const glu_job *t = ctx;
    for (int64_t r = begin; r < end; r++) {
        glu_run(t->gelu, t->y + r * t->n, t->gate + r * 2 * t->n, t->value + r * 2 * t->n, t->n);
    }
}

setok_status setok_cpu_glu(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // gate [...], value [...] -> y = act(gate) * value; or x [..., 2H] -> y [..., H] =
    // x[..., :H] * act(x[..., H:])
    const setok_tensor *g = d->src[0], *v = d->src[1];
    setok_tensor *y = d->dst;
    if ((d->op != SETOK_OP_SWIGLU && d->op != SETOK_OP_GEGLU) || g->dtype != SETOK_F32 ||
        (v != NULL && v->dtype != SETOK_F32) || y->dtype != SETOK_F32 || y->ndim < 1) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    glu_job t = {.gelu = d->op == SETOK_OP_GEGLU, .y = y->data};
    if (v != NULL) {
        // same shapes: one flat row
        t.n = setok_tensor_numel(y);
        t.gate = g->data;
        t.value = v->data;
        setok_cpu_parallel_for(backend, t.n, MIN_CHUNK_ELEMS / 8, glu_flat, &t);
        return SETOK_OK;
    }
    t.n = y->shape[y->ndim - 1];
    t.value = g->data;
    t.gate = (const float *)g->data + t.n;
    int64_t rows = t.n > 0 ? setok_tensor_numel(y) / t.n : 0;
    setok_cpu_parallel_for(backend, rows, min_rows(t.n * 8), glu_rows, &t);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// COPY

typedef struct copy_job {
    setok_dtype sdt, ddt;
    size_t elem;                   // bytes per element when sdt == ddt
    int nd;                        // axes left after merging, innermost last
    int64_t shape[SETOK_MAX_DIMS];
    int64_t sstride[SETOK_MAX_DIMS], dstride[SETOK_MAX_DIMS];
    const char *src;
    char *dst;
} copy_job;

// one innermost run of n elements
static void copy_run(const copy_job *t, char *dst, const char *src, int64_t n)
{
    int64_t ds = t->dstride[t->nd - 1], ss = t->sstride[t->nd - 1];
    if (t->sdt == t->ddt) {
        if (ds == 1 && ss == 1) {
            memcpy(dst, src, (size_t)n * t->elem);
        } else if (t->elem == 4) {
            for (int64_t j = 0; j < n; j++) memcpy(dst + j * ds * 4, src + j * ss * 4, 4);
        } else {
            for (int64_t j = 0; j < n; j++) memcpy(dst + j * ds * 2, src + j * ss * 2, 2);
        }
    } else if (t->sdt == SETOK_F32) {
        const float *s = (const float *)(const void *)src;
        uint16_t *o = (uint16_t *)(void *)dst;
        for (int64_t j = 0; j < n; j++) {
            float v = s[j * ss];
            o[j * ds] = t->ddt == SETOK_F16 ? setok_f32_to_f16(v) : setok_f32_to_bf16(v);
        }
    } else {
        const uint16_t *s = (const uint16_t *)(const void *)src;
        float *o = (float *)(void *)dst;
        for (int64_t j = 0; j < n; j++) {
            uint16_t v = s[j * ss];
            o[j * ds] = t->sdt == SETOK_F16 ? setok_f16_to_f32(v) : setok_bf16_to_f32(v);
        }
    }
}

static void copy_rows(void *ctx, int64_t begin, int64_t end)
{
    const copy_job *t = ctx;
    size_t ssize = setok_dtype_size(t->sdt), dsize = setok_dtype_size(t->ddt);
    int64_t inner = t->shape[t->nd - 1];
    for (int64_t r = begin; r < end; r++) {
        int64_t soff = 0, doff = 0, rest = r;
        for (int ax = t->nd - 2; ax >= 0; ax--) {
            int64_t i = rest % t->shape[ax];
            rest /= t->shape[ax];
            soff += i * t->sstride[ax];
            doff += i * t->dstride[ax];
        }
        copy_run(t, t->dst + doff * (int64_t)dsize, t->src + soff * (int64_t)ssize, inner);
    }
}

// a single merged axis: elements [begin, end)
static void copy_flat(void *ctx, int64_t begin, int64_t end)
{
    const copy_job *t = ctx;
    int64_t ssize = (int64_t)setok_dtype_size(t->sdt), dsize = (int64_t)setok_dtype_size(t->ddt);
    copy_run(t, t->dst + begin * t->dstride[0] * dsize, t->src + begin * t->sstride[0] * ssize,
             end - begin);
}

static bool copy_dtypes_covered(setok_dtype s, setok_dtype d)
{
    if (s == d) {
        return setok_dtype_size(s) == 4 || setok_dtype_size(s) == 2;
    }
    bool half_s = s == SETOK_F16 || s == SETOK_BF16, half_d = d == SETOK_F16 || d == SETOK_BF16;
    return (s == SETOK_F32 && half_d) || (half_s && d == SETOK_F32);
}

setok_status setok_cpu_copy(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // src view [...] -> dst view, same shape; any strides
    const setok_tensor *s = d->src[0];
    setok_tensor *y = d->dst;
    if (!copy_dtypes_covered(s->dtype, y->dtype) || s->ndim != y->ndim) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    copy_job t = {.sdt = s->dtype, .ddt = y->dtype, .elem = setok_dtype_size(s->dtype),
                  .src = s->data, .dst = y->data};
    // drop unit axes, then merge neighbours that are contiguous in both views
    for (int ax = 0; ax < y->ndim; ax++) {
        if (y->shape[ax] == 0) {
            return SETOK_OK;
        }
        if (y->shape[ax] == 1) {
            continue;
        }
        if (t.nd > 0 && t.sstride[t.nd - 1] == s->stride[ax] * y->shape[ax] &&
            t.dstride[t.nd - 1] == y->stride[ax] * y->shape[ax]) {
            t.shape[t.nd - 1] *= y->shape[ax];
            t.sstride[t.nd - 1] = s->stride[ax];
            t.dstride[t.nd - 1] = y->stride[ax];
            continue;
        }
        t.shape[t.nd] = y->shape[ax];
        t.sstride[t.nd] = s->stride[ax];
        t.dstride[t.nd] = y->stride[ax];
        t.nd++;
    }
    if (t.nd == 0) {
        // a single element
        t.nd = 1;
        t.shape[0] = 1;
        t.sstride[0] = t.dstride[0] = 1;
    }
    if (t.nd == 1) {
        setok_cpu_parallel_for(backend, t.shape[0], MIN_CHUNK_ELEMS, copy_flat, &t);
        return SETOK_OK;
    }
    int64_t inner = t.shape[t.nd - 1], rows = 1;
    for (int ax = 0; ax < t.nd - 1; ax++) {
        rows *= t.shape[ax];
    }
    setok_cpu_parallel_for(backend, rows, min_rows(inner), copy_rows, &t);
    return SETOK_OK;
}
