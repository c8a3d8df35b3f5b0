/* attention.cu — scaled dot-product attention, three ways by shape:
 *
 * - decode (at most ATT_DEC_ROWS query rows per kv head: a generation step, with or without
 *   grouped-query heads): a block per (kv head, split of the keys); its warps take interleaved
 *   groups of ATT_DEC_KEYS keys each, lanes own channels (lane l: l, l + 32, ...), the scores
 *   are warp sums, and an online softmax runs per warp; the warps' (max, sum, accumulator)
 *   triples are merged through shared memory (flash-decoding).
 * - tiles (more query rows, head dims <= ATT_MAX_DIM): flash style, K/V tiles of 32 keys staged
 *   in shared memory (as f32), ATT_WARPS query rows of one kv head per block (the rows of the
 *   Hq / Hkv query heads that share it), a warp per row; lane j scores key j, then the warp
 *   folds the 32 probabilities into its accumulators.
 * - cuBLAS (wider heads, e.g. a VAE's single 512-channel head): S = scale Q K^T in f32,
 *   P = softmax(S + mask) in q's dtype, Y = P V, as many heads and query rows at a time as fit
 *   in ATT_GEMM_SCRATCH.
 * When the fused kernels would leave the GPU idle (long keys, few rows) the keys are split over
 * gridDim.z and a second kernel merges the partial triples.
 *
 * k and v are read through their batch, head and key strides (rows contiguous), so a KV cache
 * prefix is attended in place. Fully masked rows come out as zeros, as in the reference. */
#include "attention.cuh"
#include "matmul.cuh"
#include "softmax.cuh"

#define ATT_BK 32      // keys per tile: one per lane
#define ATT_WARPS 8    // query rows per tile block
#define ATT_MAX_DIM 256
#define ATT_DEC_WARPS 4
#define ATT_DEC_ROWS 4 // query rows per decode block
#define ATT_DEC_KEYS 4 // keys a decode warp scores at once
#define ATT_GEMM_SCRATCH ((size_t)256 << 20)

typedef struct attn_params {
    int64_t hq, hkv, tq, tk;
    int d, dv;
    int64_t ks[3], vs[3]; // k and v strides over [B, Hkv, Tk] (elements; channels contiguous)
    int64_t rows;         // query rows per kv head: (Hq / Hkv) * Tq
    int64_t total_rows;   // B * Hq * Tq
    int64_t chunk;        // keys per split (blockIdx.z)
    int nsplit;
    float scale;
    bool causal;
    cuda_dims4 md;        // mask strides over [B, Hq, Tq, Tk]
} attn_params;

// ----------------------------------------------------------------------------
// kernels

// q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], mask? -> y: [B, Hq, Tq, Dv], or
// with several splits part: [nsplit, B * Hq * Tq, Dv + 2] (unnormalised accumulator, max, sum).
// grid: (ceil(rows / ATT_WARPS), B * Hkv, nsplit); NACC = ceil(Dv / 32) rounded up to 1, 2, 4, 8.
// (Without a blocks-per-SM hint ptxas for sm_80 caps the registers at 64 and spills.)
template <typename T, int NACC>
__global__ void __launch_bounds__(ATT_WARPS * 32, 2)
attention_tile_kernel(T *y, float *part, const T *q, const T *k, const T *v, const T *mask,
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
    const T *kb = k + b * p.ks[0] + hk * p.ks[1];
    const T *vb = v + b * p.vs[0] + hk * p.vs[1];

    float m = -INFINITY, l = 0.0f, acc[NACC];
#pragma unroll
    for (int a = 0; a < NACC; a++)
        acc[a] = 0.0f;

    for (int64_t k0 = kbeg; k0 < kend; k0 += ATT_BK) {
        int nk = (int)min((int64_t)ATT_BK, kend - k0);
        const T *kt = kb + k0 * p.ks[2], *vt = vb + k0 * p.vs[2];
        __syncthreads(); // the previous tile is consumed (and qs written)
        for (int i = threadIdx.x; i < nk * dim; i += blockDim.x) {
            int j = i / dim, e = i - j * dim;
            ks[j * kst + e] = to_f32(kt[j * p.ks[2] + e]);
        }
        for (int i = threadIdx.x; i < nk * dv; i += blockDim.x) {
            int j = i / dv, e = i - j * dv;
            vs[i] = to_f32(vt[j * p.vs[2] + e]);
        }
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

// Same contract as the tile kernel for at most ATT_DEC_ROWS rows per block.
// grid: (B * Hkv, ceil(rows / ATT_DEC_ROWS), nsplit); NACC = ceil(max(D, Dv) / 32) rounded up.
// (Without a blocks-per-SM hint ptxas caps the D = 128 instance at 128 registers and spills.)
template <typename T, int NACC>
__global__ void __launch_bounds__(ATT_DEC_WARPS * 32, 2)
attention_decode_kernel(T *y, float *part, const T *q, const T *k, const T *v, const T *mask,
                        attn_params p)
{
    constexpr int W = NACC * 32 + 2; // a warp's row in `red`: accumulator, max, sum
    __shared__ float red[ATT_DEC_WARPS][ATT_DEC_ROWS][W];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int64_t group = p.hq / p.hkv;
    int64_t bkv = blockIdx.x, b = bkv / p.hkv, hk = bkv % p.hkv;
    int64_t row0 = (int64_t)blockIdx.y * ATT_DEC_ROWS;
    int nrows = (int)min((int64_t)ATT_DEC_ROWS, p.rows - row0);

    // Row r of the block is query row (b, h, t) = qrow(r) of q and y.
    auto qrow = [&](int r) {
        int64_t row = row0 + r;
        return (b * p.hq + hk * group + row / p.tq) * p.tq + row % p.tq;
    };
    float qr[ATT_DEC_ROWS][NACC], acc[ATT_DEC_ROWS][NACC], m[ATT_DEC_ROWS], l[ATT_DEC_ROWS];
    int64_t last[ATT_DEC_ROWS], horizon = -1;
    const T *mrow[ATT_DEC_ROWS];
#pragma unroll
    for (int r = 0; r < ATT_DEC_ROWS; r++) {
        int64_t row = row0 + (r < nrows ? r : 0);
        int64_t h = hk * group + row / p.tq, t = row % p.tq;
        last[r] = r >= nrows ? -1 : p.causal ? t + p.tk - p.tq : p.tk - 1;
        horizon = max(horizon, last[r]);
        mrow[r] = mask ? mask + b * p.md.st[0] + h * p.md.st[1] + t * p.md.st[2] : NULL;
        const T *qp = q + qrow(r < nrows ? r : 0) * p.d;
#pragma unroll
        for (int a = 0; a < NACC; a++) {
            int e = lane + 32 * a;
            qr[r][a] = e < p.d ? to_f32(qp[e]) * p.scale : 0.0f;
            acc[r][a] = 0.0f;
        }
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }

    int64_t kbeg = (int64_t)blockIdx.z * p.chunk;
    int64_t kend = min(min(p.tk, kbeg + p.chunk), horizon + 1);
    const T *kb = k + b * p.ks[0] + hk * p.ks[1];
    const T *vb = v + b * p.vs[0] + hk * p.vs[1];
    for (int64_t j0 = kbeg + warp * ATT_DEC_KEYS; j0 < kend;
         j0 += ATT_DEC_WARPS * ATT_DEC_KEYS) {
        float kr[ATT_DEC_KEYS][NACC], vr[ATT_DEC_KEYS][NACC];
#pragma unroll
        for (int kk = 0; kk < ATT_DEC_KEYS; kk++) {
            int64_t j = j0 + kk;
#pragma unroll
            for (int a = 0; a < NACC; a++) {
                int e = lane + 32 * a;
                kr[kk][a] = j < kend && e < p.d ? to_f32(kb[j * p.ks[2] + e]) : 0.0f;
                vr[kk][a] = j < kend && e < p.dv ? to_f32(vb[j * p.vs[2] + e]) : 0.0f;
            }
        }
#pragma unroll
        for (int r = 0; r < ATT_DEC_ROWS; r++) {
            if (r >= nrows)
                break; // block-uniform
            float s[ATT_DEC_KEYS], smax = -INFINITY;
#pragma unroll
            for (int kk = 0; kk < ATT_DEC_KEYS; kk++) {
                float dot = 0.0f;
#pragma unroll
                for (int a = 0; a < NACC; a++)
                    dot = fmaf(qr[r][a], kr[kk][a], dot);
                s[kk] = warp_sum(dot);
                int64_t j = j0 + kk;
                if (j >= kend || j > last[r])
                    s[kk] = -INFINITY;
                else if (mrow[r])
                    s[kk] += to_f32(mrow[r][j * p.md.st[3]]);
                smax = fmaxf(smax, s[kk]);
            }
            float mnew = fmaxf(m[r], smax);
            if (mnew == -INFINITY)
                continue; // nothing visible yet
            float corr = expf(m[r] - mnew), psum = 0.0f;
#pragma unroll
            for (int a = 0; a < NACC; a++)
                acc[r][a] *= corr;
#pragma unroll
            for (int kk = 0; kk < ATT_DEC_KEYS; kk++) {
                float pk = expf(s[kk] - mnew);
                psum += pk;
#pragma unroll
                for (int a = 0; a < NACC; a++)
                    acc[r][a] = fmaf(pk, vr[kk][a], acc[r][a]);
            }
            l[r] = l[r] * corr + psum;
            m[r] = mnew;
        }
    }

    // Merge the warps' triples: warp r combines row r.
#pragma unroll
    for (int r = 0; r < ATT_DEC_ROWS; r++) {
#pragma unroll
        for (int a = 0; a < NACC; a++)
            red[warp][r][lane + 32 * a] = acc[r][a];
        if (lane == 0) {
            red[warp][r][W - 2] = m[r];
            red[warp][r][W - 1] = l[r];
        }
    }
    __syncthreads();
    for (int r = warp; r < nrows; r += ATT_DEC_WARPS) {
        float mx = -INFINITY, sum = 0.0f, o[NACC];
        for (int w = 0; w < ATT_DEC_WARPS; w++)
            mx = fmaxf(mx, red[w][r][W - 2]);
#pragma unroll
        for (int a = 0; a < NACC; a++)
            o[a] = 0.0f;
        for (int w = 0; w < ATT_DEC_WARPS && mx != -INFINITY; w++) {
            float mw = red[w][r][W - 2];
            if (mw == -INFINITY)
                continue;
            float c = expf(mw - mx);
            sum += red[w][r][W - 1] * c;
#pragma unroll
            for (int a = 0; a < NACC; a++)
                o[a] += red[w][r][lane + 32 * a] * c;
        }
        if (p.nsplit == 1) {
            T *yr = y + qrow(r) * p.dv;
#pragma unroll
            for (int a = 0; a < NACC; a++) {
                int e = lane + 32 * a;
                if (e < p.dv)
                    yr[e] = from_f32<T>(sum > 0.0f ? o[a] / sum : 0.0f);
            }
        } else {
            float *pr = part + ((int64_t)blockIdx.z * p.total_rows + qrow(r)) * (p.dv + 2);
#pragma unroll
            for (int a = 0; a < NACC; a++) {
                int e = lane + 32 * a;
                if (e < p.dv)
                    pr[e] = o[a];
            }
            if (lane == 0) {
                pr[p.dv] = mx;
                pr[p.dv + 1] = sum;
            }
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

enum attn_kind { ATT_DECODE, ATT_TILE };

template <typename T, int NACC>
static setok_status attention_launch(setok_cuda_state *st, attn_kind kind, T *y, float *part,
                                     const T *q, const T *k, const T *v, const T *mask,
                                     const attn_params &p, dim3 grid, size_t smem,
                                     setok_error *err)
{
    if (kind == ATT_DECODE) {
        attention_decode_kernel<T, NACC><<<grid, ATT_DEC_WARPS * 32, 0, st->stream>>>(
            y, part, q, k, v, mask, p);
        CUDA_CHECK_LAUNCH("attention_decode_kernel");
    } else {
        if (smem > 48 * 1024)
            CUDA_CHECK(cudaFuncSetAttribute(attention_tile_kernel<T, NACC>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)smem));
        attention_tile_kernel<T, NACC><<<grid, ATT_WARPS * 32, smem, st->stream>>>(
            y, part, q, k, v, mask, p);
        CUDA_CHECK_LAUNCH("attention_tile_kernel");
    }
    if (p.nsplit > 1) {
        attention_merge_kernel<T><<<cuda_blocks(p.total_rows, 4), 128, 0, st->stream>>>(
            y, part, p.total_rows, p.dv, p.nsplit);
        CUDA_CHECK_LAUNCH("attention_merge_kernel");
    }
    return SETOK_OK;
}

// NACC: the decode kernel's lanes hold channels of both q/k (D) and v (Dv); the tile kernel's
// only of v (q and k stay in shared memory).
template <typename T>
static setok_status attention_dispatch(setok_cuda_state *st, attn_kind kind,
                                       const setok_op_desc *d, float *part, const attn_params &p,
                                       dim3 grid, size_t smem, setok_error *err)
{
    T *y = (T *)d->dst->data;
    const T *q = (const T *)d->src[0]->data, *k = (const T *)d->src[1]->data;
    const T *v = (const T *)d->src[2]->data;
    const T *mask = d->src[3] ? (const T *)d->src[3]->data : NULL;
    int width = kind == ATT_DECODE && p.d > p.dv ? p.d : p.dv;
    if (width <= 32)
        return attention_launch<T, 1>(st, kind, y, part, q, k, v, mask, p, grid, smem, err);
    if (width <= 64)
        return attention_launch<T, 2>(st, kind, y, part, q, k, v, mask, p, grid, smem, err);
    if (width <= 128)
        return attention_launch<T, 4>(st, kind, y, part, q, k, v, mask, p, grid, smem, err);
    return attention_launch<T, 8>(st, kind, y, part, q, k, v, mask, p, grid, smem, err);
}

// Number of key splits that gives about `want` blocks, each split at least `min_keys` keys and
// a multiple of `align`; sets p->chunk and p->nsplit.
static void attention_split(attn_params *p, int64_t blocks, int64_t want, int64_t min_keys,
                            int64_t align)
{
    int64_t nsplit = 1;
    if (blocks < want && p->tk >= 2 * min_keys) {
        nsplit = (want + blocks - 1) / blocks;
        int64_t most = p->tk / min_keys;
        nsplit = nsplit < most ? nsplit : most;
    }
    p->chunk = (p->tk + nsplit - 1) / nsplit;
    p->chunk = (p->chunk + align - 1) / align * align;
    if (p->chunk == 0)
        p->chunk = align;
    nsplit = (p->tk + p->chunk - 1) / p->chunk;
    p->nsplit = nsplit > 1 ? (int)nsplit : 1;
}

// S = scale Q K^T (f32) -> P = softmax(S + mask) (q's dtype) -> Y = P V on cuBLAS, for head dims
// the fused kernels do not hold. Heads hk0 .. hk0 + nh of batch b, query rows r0 .. r0 + nr of
// each (out of rows = G * Tq; nh > 1 only with all rows) are one pair of batched GEMMs.
static setok_status attention_gemm(setok_backend *backend, setok_cuda_state *st,
                                   const setok_op_desc *d, const attn_params &p, int64_t nb,
                                   setok_error *err)
{
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *mask = d->src[3];
    setok_dtype dt = q->dtype;
    size_t es = setok_dtype_size(dt);
    size_t row_bytes = (size_t)p.tk * (sizeof(float) + es);
    int64_t fit = (int64_t)(ATT_GEMM_SCRATCH / row_bytes);
    fit = fit > 0 ? fit : 1;
    int64_t heads = fit >= p.rows ? fit / p.rows : 1;
    heads = heads < p.hkv ? heads : p.hkv;
    int64_t nrows = fit < p.rows ? fit : p.rows;
    size_t s_bytes = ((size_t)(heads * nrows * p.tk) * sizeof(float) + 255) / 256 * 256;
    void *scratch;
    setok_status s = setok_cuda_scratch(backend, s_bytes + (size_t)(heads * nrows * p.tk) * es,
                                        &scratch, err);
    if (s != SETOK_OK)
        return s;
    float *scores = (float *)scratch;
    char *probs = (char *)scratch + s_bytes;
    // A lone key row may carry any stride; cuBLAS wants one at least as long as the row.
    int64_t ldk = p.tk > 1 ? p.ks[2] : p.d, ldv = p.tk > 1 ? p.vs[2] : p.dv;
    int64_t group = p.hq / p.hkv;
    const char *qb = (const char *)q->data, *kb = (const char *)k->data;
    const char *vb = (const char *)v->data;
    char *yb = (char *)d->dst->data;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t hk0 = 0; hk0 < p.hkv; hk0 += heads) {
            int64_t nh = p.hkv - hk0 < heads ? p.hkv - hk0 : heads;
            const char *kh = kb + (size_t)(b * p.ks[0] + hk0 * p.ks[1]) * es;
            const char *vh = vb + (size_t)(b * p.vs[0] + hk0 * p.vs[1]) * es;
            for (int64_t r0 = 0; r0 < p.rows && s == SETOK_OK; r0 += nrows) {
                int64_t nr = p.rows - r0 < nrows ? p.rows - r0 : nrows;
                int64_t row = (b * p.hq + hk0 * group) * p.tq + r0; // first row of [B, Hq, Tq]
                s = cuda_gemm(st, dt, SETOK_F32, false, true, nr, p.tk, p.d, p.scale,
                              qb + (size_t)(row * p.d) * es, p.d, p.rows * p.d, kh, ldk,
                              p.ks[1], 0.0f, scores, p.tk, nr * p.tk, nh, err);
                if (s == SETOK_OK)
                    s = cuda_softmax_rows(st, SETOK_F32, scores, dt, probs,
                                          mask ? mask->data : NULL, p.md, row, nh * nr, p.tq,
                                          p.tk, 1.0f, p.causal, err);
                if (s == SETOK_OK)
                    s = cuda_gemm(st, dt, dt, false, false, nr, p.dv, p.tk, 1.0f, probs, p.tk,
                                  nr * p.tk, vh, ldv, p.vs[1], 0.0f,
                                  yb + (size_t)(row * p.dv) * es, p.dv, p.rows * p.dv, nh, err);
            }
            if (s != SETOK_OK)
                return s;
        }
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// op

// q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] (views, rows contiguous), mask:
// broadcastable to [B, Hq, Tq, Tk]? -> y: [B, Hq, Tq, Dv]
setok_status setok_cuda_attention(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *mask = d->src[3];
    attn_params p;
    int64_t nb = q->shape[0];
    p.hq = q->shape[1];
    p.tq = q->shape[2];
    p.d = (int)q->shape[3];
    p.hkv = k->shape[1];
    p.tk = k->shape[2];
    p.dv = (int)v->shape[3];
    for (int i = 0; i < 3; i++) {
        p.ks[i] = k->stride[i];
        p.vs[i] = v->stride[i];
    }
    p.rows = (p.hq / p.hkv) * p.tq;
    p.total_rows = nb * p.hq * p.tq;
    p.scale = d->p.attention.scale != 0.0f ? d->p.attention.scale : 1.0f / sqrtf((float)p.d);
    p.causal = d->p.attention.causal;
    p.nsplit = 1;
    p.chunk = p.tk;
    int64_t target[4] = {nb, p.hq, p.tq, p.tk};
    p.md = mask ? cuda_broadcast_to(target, mask) : cuda_broadcast_to(target, q);
    if (p.total_rows == 0 || p.dv == 0)
        return SETOK_OK;
    if (p.tk == 0) { // nothing to attend to: zeros, as for fully masked rows
        CUDA_CHECK(cudaMemsetAsync(d->dst->data, 0, setok_tensor_nbytes(d->dst), st->stream));
        return SETOK_OK;
    }

    size_t tile_smem = (size_t)(ATT_BK * (p.d | 1) + ATT_BK * p.dv + ATT_WARPS * p.d) *
                       sizeof(float);
    if (p.d > ATT_MAX_DIM || p.dv > ATT_MAX_DIM || tile_smem > (size_t)st->smem_optin)
        return attention_gemm(backend, st, d, p, nb, err);

    attn_kind kind = p.rows <= ATT_DEC_ROWS ? ATT_DECODE : ATT_TILE;
    int64_t row_blocks = kind == ATT_DECODE ? (p.rows + ATT_DEC_ROWS - 1) / ATT_DEC_ROWS
                                            : (p.rows + ATT_WARPS - 1) / ATT_WARPS;
    if (nb * p.hkv > (kind == ATT_DECODE ? INT32_MAX : 65535) || row_blocks > 65535)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: attention: %lld x %lld kv heads and %lld query rows per head "
                          "exceed the launch grid", (long long)nb, (long long)p.hkv,
                          (long long)p.rows);
    // Split the keys when the blocks would leave most of the GPU idle: decode blocks are small
    // (4 warps), so they aim at more of them.
    int64_t blocks = row_blocks * nb * p.hkv;
    if (kind == ATT_DECODE)
        attention_split(&p, blocks, 4 * (int64_t)st->sm_count, 64,
                        ATT_DEC_WARPS * ATT_DEC_KEYS);
    else
        attention_split(&p, blocks, 2 * (int64_t)st->sm_count, 128, ATT_BK);

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
    dim3 grid = kind == ATT_DECODE
                    ? dim3((unsigned)(nb * p.hkv), (unsigned)row_blocks, (unsigned)p.nsplit)
                    : dim3((unsigned)row_blocks, (unsigned)(nb * p.hkv), (unsigned)p.nsplit);
    size_t smem = kind == ATT_DECODE ? 0 : tile_smem;
    switch (q->dtype) {
    case SETOK_F32:
        return attention_dispatch<float>(st, kind, d, part, p, grid, smem, err);
    case SETOK_F16:
        return attention_dispatch<__half>(st, kind, d, part, p, grid, smem, err);
    case SETOK_BF16:
        return attention_dispatch<__nv_bfloat16>(st, kind, d, part, p, grid, smem, err);
    default:
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: attention: dtype %s",
                          setok_dtype_name(q->dtype));
    }
}
