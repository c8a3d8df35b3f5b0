/* elementwise.cuh — ADD, MUL, SCALE, the activations and the gated units; the map kernel they
 * and COPY's contiguous conversions share. */
#ifndef SETOK_CUDA_ELEMENTWISE_CUH
#define SETOK_CUDA_ELEMENTWISE_CUH

#include "cuda-common.cuh"

// ----------------------------------------------------------------------------
// map: y[i] = op(a[i], b[i]) over contiguous tensors, math in f32

// a, b (b may be NULL: op sees 0) -> y, V elements per access; the n % V tail runs scalar.
template <typename Ty, typename Tx, int V, typename Op>
__global__ void map_kernel(Ty *y, const Tx *a, const Tx *b, int64_t n, Op op)
{
    int64_t first = grid_first<int64_t>(), step = grid_step<int64_t>(), nv = n / V;
    for (int64_t i = first; i < nv; i += step) {
        cuda_pack<Tx, V> av = ((const cuda_pack<Tx, V> *)a)[i], bv = {};
        if (b)
            bv = ((const cuda_pack<Tx, V> *)b)[i];
        cuda_pack<Ty, V> o;
#pragma unroll
        for (int j = 0; j < V; j++)
            o.v[j] = from_f32<Ty>(op(to_f32(av.v[j]), b ? to_f32(bv.v[j]) : 0.0f));
        ((cuda_pack<Ty, V> *)y)[i] = o;
    }
    for (int64_t i = nv * V + first; i < n; i += step)
        y[i] = from_f32<Ty>(op(to_f32(a[i]), b ? to_f32(b[i]) : 0.0f));
}

// Launches map_kernel with 16-byte accesses (for the wider of Ty, Tx) when every pointer is
// aligned to them, else one element at a time.
template <typename Ty, typename Tx, typename Op>
static setok_status cuda_map(setok_cuda_state *st, Ty *y, const Tx *a, const Tx *b, int64_t n,
                             Op op, setok_error *err)
{
    constexpr int V = 16 / (sizeof(Ty) > sizeof(Tx) ? sizeof(Ty) : sizeof(Tx));
    auto aligned = [](const void *p, size_t bytes) { return (uintptr_t)p % bytes == 0; };
    bool vec = aligned(y, sizeof(Ty) * V) && aligned(a, sizeof(Tx) * V) &&
               (!b || aligned(b, sizeof(Tx) * V));
    if (n == 0)
        return SETOK_OK;
    if (vec)
        map_kernel<Ty, Tx, V, Op><<<cuda_blocks((n + V - 1) / V, 256), 256, 0, st->stream>>>(
            y, a, b, n, op);
    else
        map_kernel<Ty, Tx, 1, Op><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(y, a, b, n, op);
    CUDA_CHECK_LAUNCH("map_kernel");
    return SETOK_OK;
}

// The identity: a dtype conversion.
struct map_convert {
    __device__ float operator()(float a, float) const { return a; }
};

setok_status setok_cuda_binary(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_scale(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_unary(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_glu(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
