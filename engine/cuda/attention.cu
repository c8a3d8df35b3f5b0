/* attention.cu — fused scaled dot-product attention, flash style: K/V tiles of 32 keys staged in
 * shared memory (as f32), an online softmax with a running max and sum, no T x T matrix.
 *
 * A block serves ATT_WARPS query rows that read one kv head (the rows of the Hq / Hkv query heads
 * that share it, so a grouped-query decode step fills the block); each warp owns one row. For a
 * tile, lane j scores key j (a dot product over D from shared memory), then the warp folds the
 * 32 probabilities into its output accumulators, lane l holding channels l, l + 32, ... of Dv.
 * When there are too few blocks to fill the GPU (decode: Tq = 1, long Tk), the keys are split
 * over gridDim.z and a second kernel merges the partial (max, sum, accumulator) triples.
 *
 * Limits: D, Dv <= 256. Fully masked rows (nothing finite) come out as zeros, as in the
 * reference. */
#include "attention.cuh"

#define ATT_BK 32    // keys per tile: one per lane
#define ATT_WARPS 8  // query rows per block
#define ATT_MAX_DIM 256

typedef struct attn_params {
    int64_t hq, hkv, tq, tk;
    int d, dv;
    int64_t rows;       // query rows per kv head: (Hq / Hkv) * Tq
    int64_t total_rows; // B * Hq * Tq
    int64_t chunk;      // keys per split (blockIdx.z)
    int nsplit;
    float scale;
    bool causal;
    cuda_dims4 md;      // mask strides over [B, Hq, Tq, Tk]
} attn_params;

// ----------------------------------------------------------------------------
// kernels

// q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], mask? -> y: [B, Hq, Tq, Dv], or
// with several splits part: [nsplit, B * Hq * Tq, Dv + 2] (unnormalised accumulator, max, sum).
// grid: (ceil(rows / ATT_WARPS), B * Hkv, nsplit); NACC = ceil(Dv / 32) rounded up to 1, 2, 4, 8.
template <typename T, int NACC>
__global__ void __launch_bounds__(ATT_WARPS * 32)
attention_kernel(T *y, float *part, const T *q, const T *k, const T *v, const T *mask,
                 attn_params p)
{
    extern __shared__ float smem[];
    const int dim = p.d, dv = p.dv, kst = p.d | 1; // odd row stride: lanes hit distinct banks
    float *ks = smem;                               // [ATT_BK][kst]
    float *vs = ks + ATT_BK * kst;                  // [ATT_BK][dv]
    float *qs = vs + ATT_BK * dv + (threadIdx.x / 32) * dim; // this warp's query row [dim]
    const int lane = threadIdx.x % 32;

    int64_t group = p.hq / p.hkv;
    int64_t bkv = blockIdx.y, b = bkv / p.hkv, hk = bkv % p.hkv;
    int64_t row0 = (int64_t)blockIdx.x * ATT_WARPS, row = row0 + threadIdx.x / 32;
    bool active = row < p.rows;
    int64_t h = hk * group + (active ? row / p.tq : 0), t = active ? row % p.tq : 0;
    int64_t qrow = (b * p.hq + h) * p.tq + t; // row of q and of y

    // This split's keys, cut at the causal horizon of the block's last-seeing row.
    int64_t kbeg = (int64_t)blockIdx.z * p.chunk;
    int64_t kend = min(p.tk, kbeg + p.chunk);
    int64_t last = p.causal ? t + p.tk - p.tq : p.tk - 1; // this row's last visible key
    if (p.causal) {
        int64_t rlast = min(row0 + ATT_WARPS, p.rows) - 1;
        int64_t tmax = row0 / p.tq != rlast / p.tq ? p.tq - 1 : rlast % p.tq;
        kend = min(kend, tmax + p.tk - p.tq + 1);
    }

    if (active)
        for (int e = lane; e < dim; e += 32)
            qs[e] = to_f32(q[qrow * dim + e]);
    const T *mrow = mask ? mask + b * p.md.st[0] + h * p.md.st[1] + t * p.md.st[2] : NULL;
    const T *kb = k + bkv * p.tk * dim;
    const T *vb = v + bkv * p.tk * dv;

    float m = -INFINITY, l = 0.0f, acc[NACC];
#pragma unroll
    for (int a = 0; a < NACC; a++)
        acc[a] = 0.0f;

    for (int64_t k0 = kbeg; k0 < kend; k0 += ATT_BK) {
        int nk = (int)min((int64_t)ATT_BK, kend - k0);
        __syncthreads(); // the previous tile is consumed (and qs written)
        for (int i = threadIdx.x; i < nk * dim; i += blockDim.x) {
            int j = i / dim;
            ks[j * kst + (i - j * dim)] = to_f32(kb[k0 * dim + i]);
        }
        for (int i = threadIdx.x; i < nk * dv; i += blockDim.x)
            vs[i] = to_f32(vb[k0 * dv + i]);
        __syncthreads();
        if (!active || k0 > last)
            continue; // warp-uniform

        int64_t j = k0 + lane;
        float s = -INFINITY;
        if (lane < nk && j <= last) {
            const float *kr = ks + lane * kst;
            float dot = 0.0f;
#pragma unroll 4
            for (int e = 0; e < dim; e++)
                dot = fmaf(qs[e], kr[e], dot);
            s = dot * p.scale;
            if (mrow)
                s += to_f32(mrow[j * p.md.st[3]]);
        }
        float mnew = fmaxf(m, warp_max(s));
        if (mnew == -INFINITY)
            continue; // nothing visible yet
        float pj = expf(s - mnew);
        float corr = expf(m - mnew);
        l = l * corr + warp_sum(pj);
#pragma unroll
        for (int a = 0; a < NACC; a++)
            acc[a] *= corr;
        for (int jj = 0; jj < nk; jj++) {
            float w = __shfl_sync(0xffffffffu, pj, jj);
            const float *vr = vs + jj * dv;
#pragma unroll
            for (int a = 0; a < NACC; a++) {
                int e = lane + 32 * a;
                if (e < dv)
                    acc[a] = fmaf(w, vr[e], acc[a]);
            }
        }
        m = mnew;
    }
    if (!active)
        return;

    if (p.nsplit == 1) {
        T *yr = y + qrow * dv;
#pragma unroll
        for (int a = 0; a < NACC; a++) {
            int e = lane + 32 * a;
            if (e < dv)
                yr[e] = from_f32<T>(l > 0.0f ? acc[a] / l : 0.0f);
        }
    } else {
        float *pr = part + ((int64_t)blockIdx.z * p.total_rows + qrow) * (dv + 2);
#pragma unroll
        for (int a = 0; a < NACC; a++) {
            int e = lane + 32 * a;
            if (e < dv)
                pr[e] = acc[a];
        }
        if (lane == 0) {
            pr[dv] = m;
            pr[dv + 1] = l;
        }
    }
}

// part: [nsplit, rows, Dv + 2] -> y: [rows, Dv]; a warp per row.
template <typename T>
__global__ void attention_merge_kernel(T *y, const float *part, int64_t rows, int dv,
                                       int nsplit)
{
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    int64_t split_stride = rows * (dv + 2);
    const float *pr = part + row * (dv + 2);
    float mx = -INFINITY;
    for (int z = 0; z < nsplit; z++)
        mx = fmaxf(mx, pr[z * split_stride + dv]);
    float sum = 0.0f;
    if (mx != -INFINITY)
        for (int z = 0; z < nsplit; z++) {
            const float *pz = pr + z * split_stride;
            if (pz[dv] != -INFINITY)
                sum += pz[dv + 1] * expf(pz[dv] - mx);
        }
    T *yr = y + row * dv;
    for (int e = lane; e < dv; e += 32) {
        float o = 0.0f;
        if (sum > 0.0f) {
            for (int z = 0; z < nsplit; z++) {
                const float *pz = pr + z * split_stride;
                if (pz[dv] != -INFINITY)
                    o += pz[e] * expf(pz[dv] - mx);
            }
            o /= sum;
        }
        yr[e] = from_f32<T>(o);
    }
}

// ----------------------------------------------------------------------------
// launchers

template <typename T, int NACC>
static setok_status attention_launch(setok_cuda_state *st, T *y, float *part, const T *q,
                                     const T *k, const T *v, const T *mask, const attn_params &p,
                                     dim3 grid, size_t smem, setok_error *err)
{
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T, NACC>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attention_kernel<T, NACC><<<grid, ATT_WARPS * 32, smem, st->stream>>>(y, part, q, k, v, mask,
                                                                          p);
    CUDA_CHECK_LAUNCH("attention_kernel");
    if (p.nsplit > 1) {
        attention_merge_kernel<T><<<cuda_blocks(p.total_rows, 4), 128, 0, st->stream>>>(
            y, part, p.total_rows, p.dv, p.nsplit);
        CUDA_CHECK_LAUNCH("attention_merge_kernel");
    }
    return SETOK_OK;
}

template <typename T>
static setok_status attention_dispatch(setok_cuda_state *st, const setok_op_desc *d, float *part,
                                       const attn_params &p, dim3 grid, size_t smem,
                                       setok_error *err)
{
    T *y = (T *)d->dst->data;
    const T *q = (const T *)d->src[0]->data, *k = (const T *)d->src[1]->data;
    const T *v = (const T *)d->src[2]->data;
    const T *mask = d->src[3] ? (const T *)d->src[3]->data : NULL;
    if (p.dv <= 32)
        return attention_launch<T, 1>(st, y, part, q, k, v, mask, p, grid, smem, err);
    if (p.dv <= 64)
        return attention_launch<T, 2>(st, y, part, q, k, v, mask, p, grid, smem, err);
    if (p.dv <= 128)
        return attention_launch<T, 4>(st, y, part, q, k, v, mask, p, grid, smem, err);
    return attention_launch<T, 8>(st, y, part, q, k, v, mask, p, grid, smem, err);
}

// ----------------------------------------------------------------------------
// op

bool setok_cuda_attention_fits(const setok_op_desc *d)
{
    return d->src[2] && d->src[0]->shape[3] <= ATT_MAX_DIM && d->src[2]->shape[3] <= ATT_MAX_DIM;
}

// q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], mask: broadcastable to
// [B, Hq, Tq, Tk]? -> y: [B, Hq, Tq, Dv]
setok_status setok_cuda_attention(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *mask = d->src[3];
    if (!setok_cuda_attention_fits(d))
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: attention: head dims %lld / %lld exceed %d",
                          (long long)q->shape[3], (long long)v->shape[3], ATT_MAX_DIM);
    attn_params p;
    int64_t nb = q->shape[0];
    p.hq = q->shape[1];
    p.tq = q->shape[2];
    p.d = (int)q->shape[3];
    p.hkv = k->shape[1];
    p.tk = k->shape[2];
    p.dv = (int)v->shape[3];
    p.rows = (p.hq / p.hkv) * p.tq;
    p.total_rows = nb * p.hq * p.tq;
    p.scale = d->p.attention.scale != 0.0f ? d->p.attention.scale : 1.0f / sqrtf((float)p.d);
    p.causal = d->p.attention.causal;
    int64_t target[4] = {nb, p.hq, p.tq, p.tk};
    p.md = mask ? cuda_broadcast_to(target, mask) : cuda_broadcast_to(target, q);
    if (p.total_rows == 0 || p.dv == 0)
        return SETOK_OK;
    if (nb * p.hkv > 65535)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: attention: batch x kv heads = %lld exceeds 65535",
                          (long long)(nb * p.hkv));

    // Split the keys when the blocks would leave most of the GPU idle (at least 128 keys each).
    int64_t blocks_x = (p.rows + ATT_WARPS - 1) / ATT_WARPS, blocks = blocks_x * nb * p.hkv;
    int64_t nsplit = 1;
    if (blocks < 2 * st->sm_count && p.tk >= 256) {
        nsplit = (2 * st->sm_count + blocks - 1) / blocks;
        int64_t most = (p.tk + 127) / 128;
        nsplit = nsplit < most ? nsplit : most;
    }
    p.chunk = (p.tk + nsplit - 1) / nsplit;
    p.chunk = (p.chunk + ATT_BK - 1) / ATT_BK * ATT_BK;
    if (p.chunk == 0)
        p.chunk = ATT_BK;
    nsplit = (p.tk + p.chunk - 1) / p.chunk;
    p.nsplit = nsplit > 1 ? (int)nsplit : 1;

    float *part = NULL;
    if (p.nsplit > 1) {
        void *scratch;
        size_t bytes = (size_t)p.nsplit * (size_t)p.total_rows * (size_t)(p.dv + 2) *
                       sizeof(float);
        s = setok_cuda_scratch(backend, bytes, &scratch, err);
        if (s != SETOK_OK)
            return s;
        part = (float *)scratch;
    }

    size_t smem = (size_t)(ATT_BK * (p.d | 1) + ATT_BK * p.dv + ATT_WARPS * p.d) * sizeof(float);
    if (smem > (size_t)st->smem_optin)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: attention: head dims %d / %d need %zu bytes of shared memory, "
                          "the device allows %d", p.d, p.dv, smem, st->smem_optin);
    dim3 grid((unsigned)blocks_x, (unsigned)(nb * p.hkv), (unsigned)p.nsplit);
    switch (q->dtype) {
    case SETOK_F32:
        return attention_dispatch<float>(st, d, part, p, grid, smem, err);
    case SETOK_F16:
        return attention_dispatch<__half>(st, d, part, p, grid, smem, err);
    case SETOK_BF16:
        return attention_dispatch<__nv_bfloat16>(st, d, part, p, grid, smem, err);
    default:
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: attention: dtype %s",
                          setok_dtype_name(q->dtype));
    }
}
