/* rope.cu — ROPE in the GPT-NeoX / HF LLaMA "rotate_half" layout: channel i of the first
 * rot_dims pairs with channel i + rot_dims / 2; channels past rot_dims are copied.
 *
 * A block serves one position t: it first builds that position's cos / sin table in shared
 * memory, computing inv_freq[i] = theta^(-2i / rot_dims) (or taking the given f32 inv_freq) and
 * the angle pos * freq_scale * inv_freq[i] in double and rounding only cos and sin to f32 (an
 * f32 angle is off by up to 1.5e-4 at a few thousand positions), then rotates every head's row
 * at t. One thread owns a whole pair, so y may alias x. */
#include "rope.cuh"

#define ROPE_MAX_HALF 6144 // cos / sin pairs a block keeps in shared memory (48 KiB)

// ----------------------------------------------------------------------------
// kernels

// x: [heads, T, D] (heads = [B?, H] flattened), positions: [T], inv_freq: [rot / 2]?
// grid: (T, slices of the heads); I must hold heads * T * D.
template <typename T, typename I>
__global__ void rope_kernel(T *y, const T *x, const int32_t *pos, const float *inv_freq,
                            I heads, I t, I dim, I rot, double theta, double freq_scale)
{
    extern __shared__ float2 cs[]; // [rot / 2]: (cos, sin) at this block's position
    I half = rot / 2, items = dim - half; // per row: half pairs, then dim - rot copies
    I ti = blockIdx.x;
    for (I k = threadIdx.x; k < half; k += blockDim.x) {
        double f = inv_freq ? (double)inv_freq[k] : pow(theta, -2.0 * (double)k / (double)rot);
        double s, c;
        sincos((double)pos[ti] * freq_scale * f, &s, &c);
        cs[k] = make_float2((float)c, (float)s);
    }
    __syncthreads();
    I n = heads * items, step = (I)gridDim.y * blockDim.x;
    for (I i = (I)blockIdx.y * blockDim.x + threadIdx.x; i < n; i += step) {
        I hd = i / items, k = i - hd * items;
        const T *xr = x + (hd * t + ti) * dim;
        T *yr = y + (hd * t + ti) * dim;
        if (k < half) {
            float2 a = cs[k];
            float x1 = to_f32(xr[k]), x2 = to_f32(xr[k + half]);
            yr[k] = from_f32<T>(x1 * a.x - x2 * a.y);
            yr[k + half] = from_f32<T>(x2 * a.x + x1 * a.y);
        } else {
            I ch = rot + (k - half);
            yr[ch] = xr[ch];
        }
    }
}

// ----------------------------------------------------------------------------
// op

bool setok_cuda_rope_fits(const setok_op_desc *d)
{
    const setok_tensor *x = d->src[0];
    int64_t rot = d->p.rope.rot_dims ? d->p.rope.rot_dims : x->shape[x->ndim - 1];
    return rot / 2 <= ROPE_MAX_HALF;
}

// x: [B?, H, T, D], positions: I32 [T], inv_freq: f32 [rot_dims / 2]? -> y: [B?, H, T, D]
setok_status setok_cuda_rope(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *pos = d->src[1], *inv = d->src[2];
    int64_t t = x->shape[x->ndim - 2], dim = x->shape[x->ndim - 1];
    int64_t rot = d->p.rope.rot_dims ? d->p.rope.rot_dims : dim;
    int64_t numel = setok_tensor_numel(x), heads = t * dim > 0 ? numel / (t * dim) : 0;
    if (numel == 0)
        return SETOK_OK;
    if (!setok_cuda_rope_fits(d) || t > INT32_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: rope: %lld positions of %lld "
                          "rotated channels exceed the kernel's limits", (long long)t,
                          (long long)rot);
    // about 8 items a thread, and one slice per position when that suffices
    int64_t per_position = heads * (dim - rot / 2), slices = (per_position + 2047) / 2048;
    dim3 grid((unsigned)t, (unsigned)(slices < 65535 ? slices : 65535));
    size_t smem = (size_t)(rot / 2) * sizeof(float2);
    CUDA_FLOAT_SWITCH(x->dtype, T,
        CUDA_INDEX_SWITCH(numel <= INT32_MAX, I,
            rope_kernel<T, I><<<grid, 256, smem, st->stream>>>(
                (T *)d->dst->data, (const T *)x->data, (const int32_t *)pos->data,
                inv ? (const float *)inv->data : NULL, (I)heads, (I)t, (I)dim, (I)rot,
                (double)d->p.rope.theta, (double)d->p.rope.freq_scale)));
    CUDA_CHECK_LAUNCH("rope_kernel");
    return SETOK_OK;
}
