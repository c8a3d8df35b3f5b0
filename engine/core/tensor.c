/* tensor.c — tensor values, views and the half / bfloat16 conversions. */
#include "setok/tensor.h"

#include "setok/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;        /* bytes a block */
    int block;          /* elements a block */
} dtype_info[SETOK_DTYPE_COUNT] = {
    [SETOK_F32] = {"f32", 4, 1},
    [SETOK_F16] = {"f16", 2, 1},
    [SETOK_BF16] = {"bf16", 2, 1},
    [SETOK_I32] = {"i32", 4, 1},
    [SETOK_Q8] = {"q8", sizeof(setok_block_q8), SETOK_QBLOCK},
    [SETOK_Q4] = {"q4", sizeof(setok_block_q4), SETOK_QBLOCK},
};

size_t setok_dtype_size(setok_dtype dtype)
{
    return (unsigned)dtype < SETOK_DTYPE_COUNT && dtype_info[dtype].block == 1
               ? dtype_info[dtype].size : 0;
}

int setok_dtype_block(setok_dtype dtype)
{
    return (unsigned)dtype < SETOK_DTYPE_COUNT ? dtype_info[dtype].block : 1;
}

size_t setok_dtype_bytes(setok_dtype dtype, int64_t count)
{
    if ((unsigned)dtype >= SETOK_DTYPE_COUNT || count <= 0)
        return 0;
    return (size_t)(count / dtype_info[dtype].block) * dtype_info[dtype].size;
}

bool setok_dtype_is_quantized(setok_dtype dtype)
{
    return dtype == SETOK_Q8 || dtype == SETOK_Q4;
}

bool setok_dtype_from_name(const char *name, setok_dtype *out)
{
    for (int d = 0; name && d < SETOK_DTYPE_COUNT; d++)
        if (!strcmp(name, dtype_info[d].name)) {
            *out = (setok_dtype)d;
            return true;
        }
    return false;
}

const char *setok_dtype_name(setok_dtype dtype)
{
    return (unsigned)dtype < SETOK_DTYPE_COUNT ? dtype_info[dtype].name : "?";
}

bool setok_dtype_is_float(setok_dtype dtype)
{
    return dtype == SETOK_F32 || dtype == SETOK_F16 || dtype == SETOK_BF16;
}

static void set_contiguous_strides(setok_tensor *t)
{
    int64_t s = 1;
    for (int i = SETOK_MAX_DIMS - 1; i >= 0; i--) {
        t->stride[i] = s;
        if (i < t->ndim)
            s *= t->shape[i];
    }
}

setok_tensor setok_tensor_make(void *data, setok_backend *backend, setok_dtype dtype, int ndim,
                               const int64_t *shape)
{
    setok_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    t.data = data;
    t.backend = backend;
    for (int i = 0; i < SETOK_MAX_DIMS; i++)
        t.shape[i] = i < ndim ? shape[i] : 1;
    set_contiguous_strides(&t);
    return t;
}

setok_status setok_tensor_init(setok_tensor *t, void *data, setok_backend *backend,
                               setok_dtype dtype, int ndim, const int64_t *shape,
                               setok_error *err)
{
    if ((unsigned)dtype >= SETOK_DTYPE_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > SETOK_MAX_DIMS)
        return setok_fail(err, SETOK_ERR_INPUT, "tensors have 0 to %d dimensions, got %d",
                          SETOK_MAX_DIMS, ndim);
    int block = setok_dtype_block(dtype);
    if (block > 1 && (ndim == 0 || shape[ndim - 1] % block))
        return setok_fail(err, SETOK_ERR_INPUT, "a %s tensor's last dimension must be a multiple "
                          "of %d, got %lld", setok_dtype_name(dtype), block,
                          ndim ? (long long)shape[ndim - 1] : 0LL);
    uint64_t bytes = dtype_info[dtype].size;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return setok_fail(err, SETOK_ERR_INPUT, "dimension %d is negative (%lld)", i,
                              (long long)shape[i]);
        if (shape[i] > 0 && bytes > (UINT64_MAX >> 1) / (uint64_t)shape[i])
            return setok_fail(err, SETOK_ERR_INPUT, "tensor size overflows");
        bytes *= (uint64_t)shape[i];
    }
    *t = setok_tensor_make(data, backend, dtype, ndim, shape);
    return SETOK_OK;
}

int64_t setok_tensor_numel(const setok_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t setok_tensor_nbytes(const setok_tensor *t)
{
    return setok_dtype_bytes(t->dtype, setok_tensor_numel(t));
}

bool setok_tensor_is_contiguous(const setok_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

bool setok_tensor_same_shape(const setok_tensor *a, const setok_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

const char *setok_tensor_describe(const setok_tensor *t, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "] %s", setok_dtype_name(t->dtype));
    return buf;
}

setok_status setok_view_reshape(setok_tensor *out, const setok_tensor *t, int ndim,
                                const int64_t *shape, setok_error *err)
{
    if (!setok_tensor_is_contiguous(t))
        return setok_fail(err, SETOK_ERR_INPUT, "reshape needs a contiguous tensor");
    setok_tensor r;
    setok_status st = setok_tensor_init(&r, t->data, t->backend, t->dtype, ndim, shape, err);
    if (st != SETOK_OK)
        return st;
    if (setok_tensor_numel(&r) != setok_tensor_numel(t)) {
        char a[96], b[96];
        return setok_fail(err, SETOK_ERR_INPUT, "cannot reshape %s to %s",
                          setok_tensor_describe(t, a, sizeof a),
                          setok_tensor_describe(&r, b, sizeof b));
    }
    r.borrowed = t->borrowed; /* a view of mapped data is still mapped data */
    *out = r;
    return SETOK_OK;
}

setok_status setok_view_permute(setok_tensor *out, const setok_tensor *t, const int *perm,
                                setok_error *err)
{
    bool seen[SETOK_MAX_DIMS] = {false};
    setok_tensor r = *t;
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= t->ndim || seen[p])
            return setok_fail(err, SETOK_ERR_INPUT, "permute: axis list is not a permutation "
                              "of 0..%d", t->ndim - 1);
        seen[p] = true;
        r.shape[i] = t->shape[p];
        r.stride[i] = t->stride[p];
    }
    *out = r;
    return SETOK_OK;
}

setok_status setok_view_slice(setok_tensor *out, const setok_tensor *t, int axis, int64_t start,
                              int64_t len, setok_error *err)
{
    if (axis < 0 || axis >= t->ndim)
        return setok_fail(err, SETOK_ERR_INPUT, "slice: axis %d out of range for %d dims", axis,
                          t->ndim);
    if (start < 0 || len < 0 || start > t->shape[axis] || len > t->shape[axis] - start)
        return setok_fail(err, SETOK_ERR_INPUT, "slice: [%lld, %lld) outside axis %d of size %lld",
                          (long long)start, (long long)(start + len), axis,
                          (long long)t->shape[axis]);
    setok_tensor r = *t;
    r.shape[axis] = len;
    if (t->data)
        r.data = (char *)t->data + setok_dtype_bytes(t->dtype, start * t->stride[axis]);
    *out = r;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * half and bfloat16 */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float setok_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t setok_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan (keep nan quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0));
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: round abs * 2^24 to nearest even integer */
        float v = bits_f32(abs) * 16777216.0f; /* exact: scaling by a power of two */
        uint32_t m = (uint32_t)v;
        float frac = v - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    /* normal: rebias exponent, round mantissa to 10 bits, nearest even */
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

float setok_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

uint16_t setok_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float setok_load_f32(const void *data, setok_dtype dtype, int64_t i)
{
    switch (dtype) {
    case SETOK_F32: return ((const float *)data)[i];
    case SETOK_F16: return setok_f16_to_f32(((const uint16_t *)data)[i]);
    case SETOK_BF16: return setok_bf16_to_f32(((const uint16_t *)data)[i]);
    case SETOK_I32: return (float)((const int32_t *)data)[i];
    case SETOK_Q8: {
        const setok_block_q8 *b = (const setok_block_q8 *)data + i / SETOK_QBLOCK;
        return setok_f16_to_f32(b->d) * (float)b->q[i % SETOK_QBLOCK];
    }
    case SETOK_Q4: {
        const setok_block_q4 *b = (const setok_block_q4 *)data + i / SETOK_QBLOCK;
        int j = (int)(i % SETOK_QBLOCK);
        int q = j < SETOK_QBLOCK / 2 ? b->q[j] & 15 : b->q[j - SETOK_QBLOCK / 2] >> 4;
        return setok_f16_to_f32(b->d) * (float)q + setok_f16_to_f32(b->m);
    }
    default: return 0.0f;
    }
}

void setok_store_f32(void *data, setok_dtype dtype, int64_t i, float v)
{
    switch (dtype) {
    case SETOK_F32: ((float *)data)[i] = v; break;
    case SETOK_F16: ((uint16_t *)data)[i] = setok_f32_to_f16(v); break;
    case SETOK_BF16: ((uint16_t *)data)[i] = setok_f32_to_bf16(v); break;
    case SETOK_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    default: break;
    }
}
