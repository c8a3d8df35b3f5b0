/* elementwise.cu — ADD and MUL with NumPy broadcasting of b onto a, SCALE, the activations
 * (GELU erf and tanh forms, QuickGELU, SiLU, ReLU) and the gated units SWIGLU / GEGLU.
 *
 * Same-shape ops run the map kernel (elementwise.cuh: 16-byte accesses where aligned);
 * broadcasts and the split GLU index per element, in 32 bits when the sizes allow. Math in f32
 * with the accurate libm functions (erff, tanhf, expf), never the fast intrinsics. */
#include "elementwise.cuh"

enum { ACT_GELU, ACT_GELU_TANH, ACT_QUICK_GELU, ACT_SILU, ACT_RELU };

// ----------------------------------------------------------------------------
// kernels

template <int ACT> __device__ __forceinline__ float activate(float x)
{
    if (ACT == ACT_GELU)
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    if (ACT == ACT_GELU_TANH) {
        const float k = 0.79788456080286536f; // sqrt(2 / pi)
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    if (ACT == ACT_QUICK_GELU)
        return x / (1.0f + expf(-1.702f * x));
    if (ACT == ACT_RELU)
        return x > 0.0f ? x : 0.0f;
    return x / (1.0f + expf(-x));
}

// The map operations (elementwise.cuh).
template <bool MUL> struct map_binary {
    __device__ float operator()(float a, float b) const { return MUL ? a * b : a + b; }
};
struct map_scale {
    float scale, bias;
    __device__ float operator()(float x, float) const { return fmaf(x, scale, bias); }
};
template <int ACT> struct map_unary {
    __device__ float operator()(float x, float) const { return activate<ACT>(x); }
};
template <int ACT> struct map_glu {
    __device__ float operator()(float gate, float value) const
    {
        return activate<ACT>(gate) * value;
    }
};

// b broadcast onto a: a row vector over the last axis (ROW) or general strides.
template <typename T, bool MUL, bool ROW, typename I>
__global__ void binary_kernel(T *y, const T *a, const T *b, cuda_dims<I> bd, I n)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I j = ROW ? i % bd.ne[3] : dims_offset(bd, i);
        float av = to_f32(a[i]), bv = to_f32(b[j]);
        y[i] = from_f32<T>(MUL ? av * bv : av + bv);
    }
}

// Split form: x [R, 2H] -> y [R, H] = x[:, :H] * act(x[:, H:]).
template <typename T, int ACT, typename I>
__global__ void glu_split_kernel(T *y, const T *x, I n, I h)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I r = i / h, c = i - r * h;
        const T *row = x + r * 2 * h;
        y[i] = from_f32<T>(to_f32(row[c]) * activate<ACT>(to_f32(row[h + c])));
    }
}

// ----------------------------------------------------------------------------
// ops

// a: [...], b: broadcastable to a -> y: shape of a (a + b or a * b)
setok_status setok_cuda_binary(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *a = d->src[0], *b = d->src[1];
    int64_t n = setok_tensor_numel(a);
    if (n == 0)
        return SETOK_OK;
    bool mul = d->op == SETOK_OP_MUL;
    if (setok_tensor_numel(b) == n) {
        CUDA_FLOAT_SWITCH(a->dtype, T,
            s = mul ? cuda_map(st, (T *)d->dst->data, (const T *)a->data, (const T *)b->data, n,
                               map_binary<true>(), err)
                    : cuda_map(st, (T *)d->dst->data, (const T *)a->data, (const T *)b->data, n,
                               map_binary<false>(), err));
        return s;
    }
    cuda_dims4 bd = cuda_broadcast_dims(a, b);
    bool row = bd.st[0] == 0 && bd.st[1] == 0 && bd.st[2] == 0 && bd.st[3] == 1;
    bool fits = n <= INT32_MAX && cuda_dims_fit32(bd);
    unsigned grid = cuda_blocks(n, 256);

#define BINARY_LAUNCH(T, MUL, ROW)                                                             \
    CUDA_INDEX_SWITCH(fits, I,                                                                 \
        binary_kernel<T, MUL, ROW, I><<<grid, 256, 0, st->stream>>>(                           \
            (T *)d->dst->data, (const T *)a->data, (const T *)b->data, cuda_dims_as<I>(bd),    \
            (I)n))
    CUDA_FLOAT_SWITCH(a->dtype, T,
        if (mul && row)
            BINARY_LAUNCH(T, true, true);
        else if (mul)
            BINARY_LAUNCH(T, true, false);
        else if (row)
            BINARY_LAUNCH(T, false, true);
        else
            BINARY_LAUNCH(T, false, false));
#undef BINARY_LAUNCH
    CUDA_CHECK_LAUNCH("binary_kernel");
    return SETOK_OK;
}

// x: [...] -> y = x * scale + bias
setok_status setok_cuda_scale(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    map_scale op = {d->p.scale.scale, d->p.scale.bias};
    CUDA_FLOAT_SWITCH(x->dtype, T,
        s = cuda_map(st, (T *)d->dst->data, (const T *)x->data, (const T *)NULL,
                     setok_tensor_numel(x), op, err));
    return s;
}

// x: [...] -> y = act(x), act one of GELU, GELU_TANH, QUICK_GELU, SILU, RELU
setok_status setok_cuda_unary(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    int64_t n = setok_tensor_numel(x);

#define UNARY_MAP(T, ACT)                                                                      \
    cuda_map(st, (T *)d->dst->data, (const T *)x->data, (const T *)NULL, n, map_unary<ACT>(), err)
    CUDA_FLOAT_SWITCH(x->dtype, T,
        switch (d->op) {
        case SETOK_OP_GELU: s = UNARY_MAP(T, ACT_GELU); break;
        case SETOK_OP_GELU_TANH: s = UNARY_MAP(T, ACT_GELU_TANH); break;
        case SETOK_OP_QUICK_GELU: s = UNARY_MAP(T, ACT_QUICK_GELU); break;
        case SETOK_OP_RELU: s = UNARY_MAP(T, ACT_RELU); break;
        default: s = UNARY_MAP(T, ACT_SILU); break;
        });
#undef UNARY_MAP
    return s;
}

// gate, value: [...] -> y = act(gate) * value; or split: x [..., 2H] -> y [..., H]
// = x[..., :H] * act(x[..., H:]); act = silu (SWIGLU) or gelu (GEGLU)
setok_status setok_cuda_glu(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *g = d->src[0], *v = d->src[1];
    setok_tensor *y = d->dst;
    int64_t n = setok_tensor_numel(y);
    if (n == 0)
        return SETOK_OK;
    bool silu = d->op == SETOK_OP_SWIGLU;
    if (v) {
        CUDA_FLOAT_SWITCH(y->dtype, T,
            s = silu ? cuda_map(st, (T *)y->data, (const T *)g->data, (const T *)v->data, n,
                                map_glu<ACT_SILU>(), err)
                     : cuda_map(st, (T *)y->data, (const T *)g->data, (const T *)v->data, n,
                                map_glu<ACT_GELU>(), err));
        return s;
    }
    int64_t h = y->ndim ? y->shape[y->ndim - 1] : 1;
    unsigned grid = cuda_blocks(n, 256);

#define GLU_LAUNCH(T, ACT)                                                                     \
    CUDA_INDEX_SWITCH(2 * n <= INT32_MAX, I,                                                   \
        glu_split_kernel<T, ACT, I><<<grid, 256, 0, st->stream>>>(                             \
            (T *)y->data, (const T *)g->data, (I)n, (I)h))
    CUDA_FLOAT_SWITCH(y->dtype, T,
        if (silu)
            GLU_LAUNCH(T, ACT_SILU);
        else
            GLU_LAUNCH(T, ACT_GELU));
#undef GLU_LAUNCH
    CUDA_CHECK_LAUNCH("glu_split_kernel");
    return SETOK_OK;
}
