/* loader.c — one table of weights per layer, from the files or random (loader.h). */
#include "loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"
#include "setok/quant.h"

#define MAX_ALIASES 4
#define MAX_NAME 320

const char *setok_loader_path(const setok_loader *ld)
{
    return ld->w ? setok_weights_path(ld->w) : "random weights";
}

void setok_tensors_free(setok_tensor *const *tensors, size_t n)
{
    for (size_t i = 0; i < n; i++)
        setok_tensor_free(tensors[i]);
}

/* ld->prefix + prefix + "." + alias: the aliases of name, spelled in full into full[]. */
static size_t spell(const setok_loader *ld, const char *prefix, const char *name,
                    char full[MAX_ALIASES][MAX_NAME], const char *list[MAX_ALIASES])
{
    const char *base = ld->prefix ? ld->prefix : "";
    prefix = prefix ? prefix : "";
    size_t pl = strlen(prefix);
    const char *dot = pl && prefix[pl - 1] != '.' ? "." : "";
    size_t count = 0;
    for (const char *p = name; count < MAX_ALIASES;) {
        const char *bar = strchr(p, '|');
        int len = bar ? (int)(bar - p) : (int)strlen(p);
        snprintf(full[count], MAX_NAME, "%s%s%s%.*s", base, prefix, dot, len, p);
        list[count] = full[count];
        count++;
        if (!bar)
            break;
        p = bar + 1;
    }
    return count;
}

setok_dtype setok_loader_dtype(const setok_loader *ld, unsigned flags)
{
    if (flags & SETOK_WEIGHT_MATRIX)
        return ld->matrix;
    if (flags & SETOK_WEIGHT_TABLE)
        return setok_dtype_is_quantized(ld->matrix) ? SETOK_F16 : ld->matrix;
    return ld->dtype;
}

/* The dtype a row of shape loads as: a quantized matrix whose rows do not split into
 * blocks stays f16. */
static setok_dtype dtype_for(const setok_loader *ld, unsigned flags, int ndim,
                             const int64_t *shape)
{
    setok_dtype dt = setok_loader_dtype(ld, flags);
    if (setok_dtype_is_quantized(dt) && (ndim < 1 || shape[ndim - 1] % SETOK_QBLOCK))
        return SETOK_F16;
    return dt;
}

static _Thread_local setok_loader_recorder recorder;
static _Thread_local void *recorder_user;

void setok_loader_record(setok_loader_recorder fn, void *user)
{
    recorder = fn;
    recorder_user = user;
}

/* A matrix a file stores block-quantized (setok_model_quantize): a U8 tensor [n, bytes]
 * whose rows are k values of q8 or q4. SETOK_DTYPE_COUNT when t is not one. */
static setok_dtype stored_format(const setok_st_tensor *t, int ndim, const int64_t *shape)
{
    if (t->dtype != SETOK_ST_U8 || t->ndim != 2 || ndim != 2 || t->shape[0] != shape[0] ||
        shape[1] <= 0 || shape[1] % SETOK_QBLOCK)
        return SETOK_DTYPE_COUNT;
    for (setok_dtype q = SETOK_Q8; q <= SETOK_Q4; q++)
        if ((size_t)t->shape[1] == setok_dtype_bytes(q, shape[1]))
            return q;
    return SETOK_DTYPE_COUNT;
}

/* A stored quantized matrix as dt: in place, copied, or decoded (merged with the
 * adapter when it targets the matrix) and converted to dt. */
static setok_status load_stored(const setok_loader *ld, setok_tensor *dst, setok_dtype dt,
                                setok_dtype stored, const setok_st_tensor *t,
                                const int64_t *shape, setok_error *err)
{
    bool host = setok_backend_is_host(ld->backend);
    if (!host && setok_dtype_is_quantized(dt))
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s: %s weights run on the CPU only",
                          setok_loader_path(ld), t->name, setok_dtype_name(dt));
    bool lora = ld->lora && setok_lora_targets(ld->lora, t->name);
    if (dt == stored && !lora && ld->in_place && host) {
        *dst = setok_tensor_make((void *)t->data, ld->backend, stored, 2, shape);
        dst->borrowed = true;
        setok_backend_borrow(ld->backend, setok_tensor_nbytes(dst));
        return SETOK_OK;
    }
    setok_status st = setok_tensor_alloc(dst, ld->backend, dt, 2, shape, err);
    if (st == SETOK_OK && dt == stored && !lora) {
        st = setok_tensor_upload(dst, t->data, err);
        if (st != SETOK_OK)
            setok_tensor_free(dst);
        return st;
    }
    int64_t rows = shape[0], k = shape[1];
    size_t in_row = setok_dtype_bytes(stored, k), out_row = setok_dtype_bytes(dt, k);
    float *f32 = st == SETOK_OK ? malloc((size_t)(rows * k) * sizeof *f32) : NULL;
    void *out = host ? dst->data : malloc(setok_tensor_nbytes(dst));
    if (st == SETOK_OK && (!f32 || !out))
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", setok_loader_path(ld));
    for (int64_t r = 0; st == SETOK_OK && r < rows; r++)
        setok_dequantize(f32 + r * k, (const char *)t->data + r * in_row, stored, k);
    bool merged;
    if (st == SETOK_OK && lora)
        st = setok_lora_merge_f32(ld->lora, t->name, f32, rows, k, &merged, err);
    for (int64_t r = 0; st == SETOK_OK && r < rows; r++) {
        char *row = (char *)out + r * out_row;
        if (setok_dtype_is_quantized(dt))
            setok_quantize(row, dt, f32 + r * k, k);
        else
            for (int64_t i = 0; i < k; i++)
                setok_store_f32(row, dt, i, f32[r * k + i]);
    }
    if (st == SETOK_OK && !host)
        st = setok_tensor_upload(dst, out, err);
    free(f32);
    if (!host)
        free(out);
    if (st != SETOK_OK)
        setok_tensor_free(dst);
    return st;
}

/* f32 [rows, k] on the host -> dst [rows, k] quantized as dt (allocated on ld's backend). */
static setok_status quantize_rows(const setok_loader *ld, setok_tensor *dst, setok_dtype dt,
                                  const setok_tensor *f32, setok_error *err)
{
    int64_t k = f32->shape[f32->ndim - 1], rows = setok_tensor_numel(f32) / (k ? k : 1);
    setok_status st = setok_tensor_alloc(dst, ld->backend, dt, f32->ndim, f32->shape, err);
    for (int64_t r = 0; st == SETOK_OK && r < rows; r++)
        setok_quantize((char *)dst->data + setok_dtype_bytes(dt, r * k), dt,
                       (const float *)f32->data + r * k, k);
    return st;
}

/* A quantized matrix from the f32 that would otherwise load (host backends only). */
static setok_status load_quantized(const setok_loader *ld, setok_tensor *dst, setok_dtype dt,
                                   const char *name, const setok_st_tensor *t, int ndim,
                                   const int64_t *shape, setok_error *err)
{
    if (!setok_backend_is_host(ld->backend))
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s: %s weights run on the CPU only",
                          setok_loader_path(ld), name, setok_dtype_name(dt));
    int64_t k = ndim ? shape[ndim - 1] : 0;
    if (k <= 0 || k % SETOK_QBLOCK)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s: rows of %lld values cannot be %s "
                          "(a multiple of %d is needed)", setok_loader_path(ld), name,
                          (long long)k, setok_dtype_name(dt), SETOK_QBLOCK);
    setok_tensor f32 = {0};
    uint32_t *rs = ld->random_state;
    setok_status st = rs ? setok_tensor_alloc_random(&f32, ld->backend, SETOK_F32, ndim, shape,
                                                     0.0f, 1.0f / sqrtf((float)k), rs, err)
                         : setok_lora_load_weight(ld->lora, &f32, t, ld->backend, SETOK_F32, err);
    setok_tensor rows = f32; /* a 1x1 conv [n, k, 1, 1] read as the matrix [n, k] */
    if (st == SETOK_OK)
        st = setok_view_reshape(&rows, &f32, ndim, shape, err);
    if (st == SETOK_OK)
        st = quantize_rows(ld, dst, dt, &rows, err);
    setok_tensor_free(&f32);
    return st;
}

/* t as dt: in place from the mapping when nothing needs converting, else a copy. */
static setok_status load_as(const setok_loader *ld, setok_tensor *dst, setok_dtype dt,
                            const setok_st_tensor *t, setok_error *err)
{
    size_t el = setok_dtype_size(dt);
    bool lora = ld->lora && setok_lora_targets(ld->lora, t->name);
    if (ld->in_place && !lora && setok_backend_is_host(ld->backend) &&
        setok_st_dtype_to_engine(t->dtype) == dt &&
        el && (uintptr_t)t->data % el == 0 && t->ndim <= SETOK_MAX_DIMS) {
        *dst = setok_tensor_make((void *)t->data, ld->backend, dt, t->ndim, t->shape);
        dst->borrowed = true;
        setok_backend_borrow(ld->backend, setok_tensor_nbytes(dst));
        return SETOK_OK;
    }
    return setok_lora_load_weight(ld->lora, dst, t, ld->backend, dt, err);
}

/* Matrices and kernels uniform in +-1/sqrt(fan_in), norm scales around 1, biases and
 * embeddings near 0: activations stay O(1) through any depth. */
static setok_status random_weight(const setok_loader *ld, setok_tensor *out, const char *name,
                                  int ndim, const int64_t *shape, setok_dtype dtype,
                                  setok_error *err)
{
    int64_t fan_in = 1, dims[4];
    for (int i = 0; i < ndim; i++) {
        dims[i] = shape[i] > 0 ? shape[i] : 1;
        if (i > 0)
            fan_in *= dims[i];
    }
    const char *bar = strchr(name, '|');
    size_t n = bar ? (size_t)(bar - name) : strlen(name);
    bool scale = ndim == 1 && n >= 6 && !strncmp(name + n - 6, "weight", 6);
    float offset = scale ? 1.0f : 0.0f;
    float bound = ndim >= 2 ? 1.0f / sqrtf((float)fan_in) : scale ? 0.1f : 0.02f;
    return setok_tensor_alloc_random(out, ld->backend, dtype, ndim, dims, offset, bound,
                                     ld->random_state, err);
}

setok_status setok_loader_one(const setok_loader *ld, setok_tensor *dst, const char *prefix,
                              const char *name, int ndim, const int64_t *shape, unsigned flags,
                              setok_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (flags & SETOK_WEIGHT_SKIP)
        return SETOK_OK;
    setok_dtype dt = dtype_for(ld, flags, ndim, shape);
    if (ld->random_state && setok_dtype_is_quantized(dt))
        return load_quantized(ld, dst, dt, name, NULL, ndim, shape, err);
    if (ld->random_state)
        return random_weight(ld, dst, name, ndim, shape, dt, err);
    char full[MAX_ALIASES][MAX_NAME];
    const char *list[MAX_ALIASES];
    size_t count = spell(ld, prefix, name, full, list);
    const setok_st_tensor *t = setok_weights_find_any(ld->w, list, count);
    if (!t && (flags & SETOK_WEIGHT_OPTIONAL))
        return SETOK_OK;
    setok_dtype stored = t && (flags & SETOK_WEIGHT_MATRIX) ? stored_format(t, ndim, shape)
                                                            : SETOK_DTYPE_COUNT;
    if (stored != SETOK_DTYPE_COUNT) {
        setok_status st = load_stored(ld, dst, dt, stored, t, shape, err);
        if (st == SETOK_OK && recorder && setok_dtype_is_quantized(dt))
            recorder(recorder_user, t->name, dst);
        return st;
    }
    /* a 1x1 conv weight [n, k, 1, 1] is the same matrix as a linear [n, k] */
    bool as_conv = (flags & SETOK_WEIGHT_LINEAR) && t && t->ndim == 4 && ndim == 2;
    int64_t conv[4] = {shape[0], ndim > 1 ? shape[1] : -1, 1, 1};
    setok_status st = setok_weights_require(ld->w, list, count, as_conv ? 4 : ndim,
                                            as_conv ? conv : shape, &t, err);
    if (st == SETOK_OK && setok_dtype_is_quantized(dt)) {
        st = load_quantized(ld, dst, dt, t->name, t, ndim, as_conv ? (int64_t[]){t->shape[0],
                            t->shape[1]} : t->shape, err);
        if (st == SETOK_OK && recorder)
            recorder(recorder_user, t->name, dst);
    } else if (st == SETOK_OK)
        st = load_as(ld, dst, dt, t, err);
    if (st == SETOK_OK && as_conv) {
        setok_tensor flat;
        st = setok_view_reshape(&flat, dst, 2, (int64_t[]){t->shape[0], t->shape[1]}, err);
        if (st == SETOK_OK)
            *dst = flat;
    }
    return st;
}

setok_status setok_loader_load(const setok_loader *ld, const char *prefix,
                               const setok_weight *table, size_t n, setok_error *err)
{
    setok_status st = SETOK_OK;
    for (size_t i = 0; i < n && st == SETOK_OK; i++)
        st = setok_loader_one(ld, table[i].dst, prefix, table[i].name, table[i].ndim,
                              table[i].shape, table[i].flags, err);
    return st;
}

setok_status setok_loader_find_prefix(const setok_loader *ld, const char *const *prefixes,
                                      size_t n, const char *probe, int ndim,
                                      const int64_t *shape, char *buf, size_t size,
                                      setok_error *err)
{
    enum { MAX_PREFIXES = 8 };
    if (ld->random_state || n == 0) {
        snprintf(buf, size, "%s", n ? prefixes[0] : "");
        return SETOK_OK;
    }
    char names[MAX_PREFIXES][MAX_NAME];
    const char *list[MAX_PREFIXES];
    n = n < MAX_PREFIXES ? n : MAX_PREFIXES;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", prefixes[i], probe);
        list[i] = names[i];
    }
    const setok_st_tensor *t = NULL;
    setok_status st = setok_weights_require(ld->w, list, n, ndim, shape, &t, err);
    if (st != SETOK_OK)
        return st;
    size_t len = strlen(t->name) - strlen(probe);
    snprintf(buf, size, "%.*s", (int)len, t->name);
    return SETOK_OK;
}
