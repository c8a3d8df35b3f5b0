/* reduce.cu — ARGMAX and TOPK over the last axis. Order: larger first, NaN last, ties to the
 * lower index (-0 and +0 tie), exactly as the reference ranks.
 *
 * ARGMAX: a warp or a block per row, reducing (value, index) pairs.
 * TOPK: a block per row. A radix select over order-preserving 32-bit keys (4 passes of 8 bits)
 * finds the k-th largest key K; the elements above K and the lowest-index ones equal to K are
 * collected (k of them) and bitonic-sorted in shared memory. k <= TOPK_MAX_K. */
#include <limits.h>

#include "reduce.cuh"

#define TOPK_THREADS 1024

// ----------------------------------------------------------------------------
// kernels

// (a, ia) ranks before (b, ib); an index < 0 is "nothing yet" and ranks last.
__device__ __forceinline__ bool ranks_before(float a, int ia, float b, int ib)
{
    if (ib < 0)
        return ia >= 0;
    if (ia < 0)
        return false;
    bool na = isnan(a), nb = isnan(b);
    if (na || nb)
        return nb && (!na || ia < ib);
    return a > b || (a == b && ia < ib);
}

// x: [rows, C] -> y: I32 [rows]
template <typename T>
__global__ void argmax_kernel(int32_t *y, const T *x, int64_t rows, int64_t c)
{
    __shared__ float shv[32];
    __shared__ int shi[32];
    int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows)
        return; // only with a warp per row, where no barrier follows
    const T *xr = x + row * c;
    float bv = 0.0f;
    int bi = -1;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        float v = to_f32(xr[j]);
        if (ranks_before(v, (int)j, bv, bi)) {
            bv = v;
            bi = (int)j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ranks_before(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if (blockDim.x > 32) {
        int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        if (lane == 0) {
            shv[warp] = bv;
            shi[warp] = bi;
        }
        __syncthreads();
        if (warp != 0)
            return;
        int nwarps = blockDim.x / 32;
        bv = lane < nwarps ? shv[lane] : 0.0f;
        bi = lane < nwarps ? shi[lane] : -1;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ranks_before(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
    }
    if (threadIdx.x == 0)
        y[row] = bi;
}

// A 32-bit key whose unsigned order is the ranking order: NaN is 0 (last), -0 counts as +0.
__device__ __forceinline__ uint32_t order_key(float v)
{
    if (isnan(v))
        return 0u;
    if (v == 0.0f)
        v = 0.0f;
    uint32_t b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ bool key_before(uint32_t ka, int32_t ia, uint32_t kb, int32_t ib)
{
    return ka > kb || (ka == kb && ia < ib);
}

// x: [rows, C] -> values: [rows, k], indices: I32 [rows, k]. One block per row; dynamic shared
// memory holds sort_n (a power of two >= k) keys and indices.
template <typename T>
__global__ void __launch_bounds__(TOPK_THREADS)
topk_kernel(T *vals, int32_t *idx, const T *x, int64_t c, int k, int sort_n)
{
    extern __shared__ uint32_t topk_smem[];
    uint32_t *ckey = topk_smem;                  // [sort_n]
    int32_t *cidx = (int32_t *)(ckey + sort_n);  // [sort_n]
    __shared__ unsigned hist[256];
    __shared__ int warp_cnt[32];
    __shared__ uint32_t sel_prefix;
    __shared__ int sel_need, ncand;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, nwarps = blockDim.x / 32;
    const int64_t row = blockIdx.x;
    const T *xr = x + row * c;

    // Radix select: after the pass of `shift`, prefix holds the top bits of K and need the
    // number of elements still to take among those that share them.
    uint32_t prefix = 0, mask = 0;
    int need = k;
    if (tid == 0)
        ncand = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += blockDim.x)
            hist[i] = 0;
        __syncthreads();
        for (int64_t base = 0; base < c; base += blockDim.x) { // uniform trip count per warp
            int64_t j = base + tid;
            unsigned digit = 256;
            if (j < c) {
                uint32_t key = order_key(to_f32(xr[j]));
                if ((key & mask) == prefix)
                    digit = (key >> shift) & 255u;
            }
            // one atomic per distinct digit in the warp: logits crowd into a few bins
            unsigned peers = __match_any_sync(0xffffffffu, digit);
            if (digit < 256 && lane == __ffs(peers) - 1)
                atomicAdd(&hist[digit], (unsigned)__popc(peers));
        }
        __syncthreads();
        if (tid == 0) {
            unsigned above = 0;
            int dsel = 0;
            for (int dg = 255; dg >= 0; dg--) {
                if (above + hist[dg] >= (unsigned)need) {
                    dsel = dg;
                    break;
                }
                above += hist[dg];
            }
            sel_prefix = prefix | ((uint32_t)dsel << shift);
            sel_need = need - (int)above;
        }
        __syncthreads();
        prefix = sel_prefix;
        need = sel_need;
        mask |= 255u << shift;
    }
    const uint32_t kth = prefix; // k - need elements rank above kth; take `need` equal to it

    // Collect them: the equal ones in index order (a block-wide prefix count of matches).
    int eq_base = 0;
    for (int64_t base = 0; base < c; base += blockDim.x) {
        int64_t j = base + tid;
        uint32_t key = j < c ? order_key(to_f32(xr[j])) : 0u;
        bool gt = j < c && key > kth, eq = j < c && key == kth;
        unsigned bal = __ballot_sync(0xffffffffu, eq);
        if (lane == 0)
            warp_cnt[warp] = __popc(bal);
        __syncthreads();
        int before = eq_base + __popc(bal & ((1u << lane) - 1u)), total = 0;
        for (int w = 0; w < nwarps; w++) {
            before += w < warp ? warp_cnt[w] : 0;
            total += warp_cnt[w];
        }
        if (gt || (eq && before < need)) {
            int slot = atomicAdd(&ncand, 1);
            ckey[slot] = key;
            cidx[slot] = (int32_t)j;
        }
        eq_base += total;
        __syncthreads(); // warp_cnt is rewritten next round
    }
    for (int i = k + tid; i < sort_n; i += blockDim.x) {
        ckey[i] = 0u; // ranks after every real element, NaN included
        cidx[i] = INT_MAX;
    }
    __syncthreads();

    // Bitonic sort into ranking order.
    for (int size = 2; size <= sort_n; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = tid; i < sort_n; i += blockDim.x) {
                int l = i ^ stride;
                if (l <= i)
                    continue;
                bool first = key_before(ckey[i], cidx[i], ckey[l], cidx[l]);
                if (first != ((i & size) == 0)) {
                    uint32_t tk = ckey[i];
                    int32_t ti = cidx[i];
                    ckey[i] = ckey[l];
                    cidx[i] = cidx[l];
                    ckey[l] = tk;
                    cidx[l] = ti;
                }
            }
            __syncthreads();
        }

    for (int r = tid; r < k; r += blockDim.x) {
        int32_t j = cidx[r];
        vals[row * k + r] = xr[j];
        idx[row * k + r] = j;
    }
}

// ----------------------------------------------------------------------------
// ops

// x: [..., C] -> y: I32 [...]
setok_status setok_cuda_argmax(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    int64_t c = x->shape[x->ndim - 1], rows = cuda_rows(x, c);
    if (rows == 0)
        return SETOK_OK;
    if (rows > INT_MAX || c > INT_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: argmax: [%lld, %lld] is too large",
                          (long long)rows, (long long)c);
    dim3 grid, block;
    cuda_row_launch(rows, c, &grid, &block);
    CUDA_FLOAT_SWITCH(x->dtype, T,
        argmax_kernel<T><<<grid, block, 0, st->stream>>>(
            (int32_t *)d->dst->data, (const T *)x->data, rows, c));
    CUDA_CHECK_LAUNCH("argmax_kernel");
    return SETOK_OK;
}

// x: [..., C] -> values: [..., k], indices: I32 [..., k]
setok_status setok_cuda_topk(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    int64_t c = x->shape[x->ndim - 1], rows = cuda_rows(x, c);
    int k = d->p.topk.k;
    if (rows == 0)
        return SETOK_OK;
    if (k > TOPK_MAX_K || rows > INT_MAX || c > INT_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: topk: k = %d of [%lld, %lld] is beyond k <= %d", k,
                          (long long)rows, (long long)c, TOPK_MAX_K);
    int sort_n = 1;
    while (sort_n < k)
        sort_n <<= 1;
    size_t smem = (size_t)sort_n * (sizeof(uint32_t) + sizeof(int32_t));
    CUDA_FLOAT_SWITCH(x->dtype, T,
        topk_kernel<T><<<(unsigned)rows, TOPK_THREADS, smem, st->stream>>>(
            (T *)d->dst->data, (int32_t *)d->dst2->data, (const T *)x->data, c, k, sort_n));
    CUDA_CHECK_LAUNCH("topk_kernel");
    return SETOK_OK;
}
