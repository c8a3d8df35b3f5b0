/* loader.c — one table of weights per layer, from the files or random (loader.h). */
#include "loader.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* Matrices and kernels uniform in +-1/sqrt(fan_in), norm scales around 1, biases and
 * embeddings near 0: activations stay O(1) through any depth. */
static setok_status random_weight(const setok_loader *ld, setok_tensor *out, const char *name,
                                  int ndim, const int64_t *shape, setok_error *err)
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
    return setok_tensor_alloc_random(out, ld->backend, ld->dtype, ndim, dims, offset, bound,
                                     ld->random_state, err);
}

setok_status setok_loader_one(const setok_loader *ld, setok_tensor *dst, const char *prefix,
                              const char *name, int ndim, const int64_t *shape, unsigned flags,
                              setok_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (flags & SETOK_WEIGHT_SKIP)
        return SETOK_OK;
    if (ld->random_state)
        return random_weight(ld, dst, name, ndim, shape, err);
    char full[MAX_ALIASES][MAX_NAME];
    const char *list[MAX_ALIASES];
    size_t count = spell(ld, prefix, name, full, list);
    const setok_st_tensor *t = setok_weights_find_any(ld->w, list, count);
    if (!t && (flags & SETOK_WEIGHT_OPTIONAL))
        return SETOK_OK;
    /* a 1x1 conv weight [n, k, 1, 1] is the same matrix as a linear [n, k] */
    bool as_conv = (flags & SETOK_WEIGHT_LINEAR) && t && t->ndim == 4 && ndim == 2;
    int64_t conv[4] = {shape[0], ndim > 1 ? shape[1] : -1, 1, 1};
    setok_status st = setok_weights_require(ld->w, list, count, as_conv ? 4 : ndim,
                                            as_conv ? conv : shape, &t, err);
    if (st == SETOK_OK)
        st = setok_lora_load_weight(ld->lora, dst, t, ld->backend, ld->dtype, err);
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
