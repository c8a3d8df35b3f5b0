/* rope.cu — ROPE in the GPT-NeoX / HF LLaMA "rotate_half" layout: channel i of the first
 * rot_dims pairs with channel i + rot_dims / 2; channels past rot_dims are copied.
 *
 * The angle is computed in f32 the way HF does: inv_freq[i] = 1 / theta^(2i / rot_dims) (or the
 * given inv_freq), angle = (float)pos * freq_scale * inv_freq[i], then cosf / sinf. One thread
 * owns a whole pair, so y may alias x. */
#include "rope.cuh"

// ----------------------------------------------------------------------------
// kernels

// x: [rows, D] with rows = [B?, H, T] flattened, positions: [T], inv_freq: [rot / 2]?
template <typename T>
__global__ void rope_kernel(T *y, const T *x, const int32_t *pos, const float *inv_freq,
                            int64_t rows, int64_t t, int64_t dim, int64_t rot, float theta,
                            float freq_scale)
{
    int64_t half = rot / 2, items = dim - half; // per row: half pairs, then dim - rot copies
    int64_t n = rows * items, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t r = i / items, k = i - r * items;
        const T *xr = x + r * dim;
        T *yr = y + r * dim;
        if (k < half) {
            float f = inv_freq ? inv_freq[k] : 1.0f / powf(theta, (float)(2 * k) / (float)rot);
            float angle = (float)pos[r % t] * freq_scale * f;
            float c = cosf(angle), s = sinf(angle);
            float x1 = to_f32(xr[k]), x2 = to_f32(xr[k + half]);
            yr[k] = from_f32<T>(x1 * c - x2 * s);
            yr[k + half] = from_f32<T>(x2 * c + x1 * s);
        } else {
            int64_t ch = rot + (k - half);
            yr[ch] = xr[ch];
        }
    }
}

// ----------------------------------------------------------------------------
// op

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
    int64_t rows = cuda_rows(x, dim), n = rows * (dim - rot / 2);
    if (n == 0)
        return SETOK_OK;
    CUDA_FLOAT_SWITCH(x->dtype, T,
        rope_kernel<T><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
            (T *)d->dst->data, (const T *)x->data, (const int32_t *)pos->data,
            inv ? (const float *)inv->data : NULL, rows, t, dim, rot, d->p.rope.theta,
            d->p.rope.freq_scale));
    CUDA_CHECK_LAUNCH("rope_kernel");
    return SETOK_OK;
}
