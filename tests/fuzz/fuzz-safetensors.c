/* fuzz-safetensors.c — a safetensors file: the header's validation, then every tensor the
 * file hands out is read (first and last elements, a view, and small ones loaded as f32
 * and i32 the way models load them). */
#include "fuzz-common.h"

#include "setok/safetensors.h"
#include "setok/weights.h"

static void read_tensor(const setok_st_tensor *t)
{
    setok_error err;
    uint64_t n = t->nbytes / (setok_st_dtype_size(t->dtype) ? setok_st_dtype_size(t->dtype) : 1);
    volatile double sink = 0;
    if (n > 0)
        sink += setok_st_tensor_float_at(t, 0) + setok_st_tensor_float_at(t, n - 1);
    (void)sink;
    setok_tensor view;
    setok_st_tensor_view(&view, t, &err);
    if (n > 4096)
        return;
    setok_dtype targets[2] = {SETOK_F32, SETOK_I32};
    for (int i = 0; i < 2; i++) {
        setok_tensor loaded;
        if (setok_weights_load(&loaded, t, fuzz_cpu(), targets[i], &err) == SETOK_OK)
            setok_tensor_free(&loaded);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.safetensors", data, size);
    setok_error err;
    setok_safetensors *st = NULL;
    if (setok_safetensors_open(&st, path, &err) != SETOK_OK)
        return 0;
    for (size_t i = 0; i < setok_safetensors_count(st); i++) {
        const setok_st_tensor *t = setok_safetensors_at(st, i);
        if (setok_safetensors_find(st, t->name) != t)
            __builtin_trap(); /* the name index must find what the list holds */
        read_tensor(t);
    }
    for (size_t i = 0; i < setok_safetensors_metadata_count(st); i++) {
        const char *key, *value;
        setok_safetensors_metadata_at(st, i, &key, &value);
        if (setok_safetensors_metadata(st, key) == NULL)
            __builtin_trap();
    }
    setok_safetensors_close(st);
    return 0;
}
