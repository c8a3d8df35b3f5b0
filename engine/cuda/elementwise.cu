/* elementwise.cu — ADD and MUL with NumPy broadcasting of b onto a, SCALE, the activations
 * (GELU erf and tanh forms, QuickGELU, SiLU, ReLU) and the gated units SWIGLU / GEGLU.
 *
 * One thread per output element in grid-stride loops; math in f32 with the accurate libm
 * functions (erff, tanhf, expf), never the fast intrinsics. */
#include "elementwise.cuh"

enum { ACT_GELU, ACT_GELU_TANH, ACT_QUICK_GELU, ACT_SILU, ACT_RELU };

// How b is indexed from a's flat index: the same index, the index modulo b's length (a row
// vector over the last axis, e.g. a bias) or the general broadcast strides.
enum { BCAST_SAME, BCAST_ROW, BCAST_GENERAL };

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

template <typename T, bool MUL, int BCAST>
__global__ void binary_kernel(T *y, const T *a, const T *b, cuda_dims4 bd, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t j = BCAST == BCAST_SAME  ? i
                    : BCAST == BCAST_ROW ? i % bd.ne[3]
                                         : dims_offset(bd, i);
        float av = to_f32(a[i]), bv = to_f32(b[j]);
        y[i] = from_f32<T>(MUL ? av * bv : av + bv);
    }
}

template <typename T>
__global__ void scale_kernel(T *y, const T *x, float scale, float bias, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = from_f32<T>(fmaf(to_f32(x[i]), scale, bias));
}

template <typename T, int ACT> __global__ void unary_kernel(T *y, const T *x, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = from_f32<T>(activate<ACT>(to_f32(x[i])));
}

// Two inputs: y[i] = act(gate[i]) * value[i].
template <typename T, int ACT>
__global__ void glu_kernel(T *y, const T *gate, const T *value, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = from_f32<T>(activate<ACT>(to_f32(gate[i])) * to_f32(value[i]));
}

// Split form: x [R, 2H] -> y [R, H] = x[:, :H] * act(x[:, H:]).
template <typename T, int ACT>
__global__ void glu_split_kernel(T *y, const T *x, int64_t n, int64_t h)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t r = i / h, c = i - r * h;
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
    cuda_dims4 bd = cuda_broadcast_dims(a, b);
    int mode = BCAST_GENERAL;
    if (setok_tensor_numel(b) == n)
        mode = BCAST_SAME;
    else if (bd.st[0] == 0 && bd.st[1] == 0 && bd.st[2] == 0 && bd.st[3] == 1)
        mode = BCAST_ROW;
    bool mul = d->op == SETOK_OP_MUL;
    unsigned grid = cuda_blocks(n, 256);

#define BINARY_LAUNCH(T, MUL, MODE)                                                            \
    binary_kernel<T, MUL, MODE><<<grid, 256, 0, st->stream>>>(                                 \
        (T *)d->dst->data, (const T *)a->data, (const T *)b->data, bd, n)
#define BINARY_MODES(T, MUL)                                                                   \
    (mode == BCAST_SAME ? BINARY_LAUNCH(T, MUL, BCAST_SAME)                                    \
     : mode == BCAST_ROW ? BINARY_LAUNCH(T, MUL, BCAST_ROW)                                    \
                         : BINARY_LAUNCH(T, MUL, BCAST_GENERAL))
    CUDA_FLOAT_SWITCH(a->dtype, T,
        if (mul)
            BINARY_MODES(T, true);
        else
            BINARY_MODES(T, false));
#undef BINARY_MODES
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
    int64_t n = setok_tensor_numel(x);
    if (n == 0)
        return SETOK_OK;
    CUDA_FLOAT_SWITCH(x->dtype, T,
        scale_kernel<T><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
            (T *)d->dst->data, (const T *)x->data, d->p.scale.scale, d->p.scale.bias, n));
    CUDA_CHECK_LAUNCH("scale_kernel");
    return SETOK_OK;
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
    if (n == 0)
        return SETOK_OK;
    unsigned grid = cuda_blocks(n, 256);

#define UNARY_LAUNCH(T, ACT)                                                                   \
    unary_kernel<T, ACT><<<grid, 256, 0, st->stream>>>((T *)d->dst->data, (const T *)x->data, n)
    CUDA_FLOAT_SWITCH(x->dtype, T,
        switch (d->op) {
        case SETOK_OP_GELU: UNARY_LAUNCH(T, ACT_GELU); break;
        case SETOK_OP_GELU_TANH: UNARY_LAUNCH(T, ACT_GELU_TANH); break;
        case SETOK_OP_QUICK_GELU: UNARY_LAUNCH(T, ACT_QUICK_GELU); break;
        case SETOK_OP_RELU: UNARY_LAUNCH(T, ACT_RELU); break;
        default: UNARY_LAUNCH(T, ACT_SILU); break;
        });
#undef UNARY_LAUNCH
    CUDA_CHECK_LAUNCH("unary_kernel");
    return SETOK_OK;
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
    int64_t h = y->ndim ? y->shape[y->ndim - 1] : 1;
    bool silu = d->op == SETOK_OP_SWIGLU;
    unsigned grid = cuda_blocks(n, 256);

#define GLU_LAUNCH(T, ACT)                                                                     \
    (v ? glu_kernel<T, ACT><<<grid, 256, 0, st->stream>>>(                                     \
             (T *)y->data, (const T *)g->data, (const T *)v->data, n)                          \
       : glu_split_kernel<T, ACT><<<grid, 256, 0, st->stream>>>(                               \
             (T *)y->data, (const T *)g->data, n, h))
    CUDA_FLOAT_SWITCH(y->dtype, T,
        if (silu)
            GLU_LAUNCH(T, ACT_SILU);
        else
            GLU_LAUNCH(T, ACT_GELU));
#undef GLU_LAUNCH
    CUDA_CHECK_LAUNCH("glu_kernel");
    return SETOK_OK;
}
