/* fuzz-index.c — a sharded checkpoint's model.safetensors.index.json, over two real shards
 * ("a" and "b" in model-00001-of-00002.safetensors, "c" in model-00002-of-00002): the weight
 * map's validation, shard names, and the cross-check of every tensor against its shard. */
#include "fuzz-common.h"

#include <string.h>

#include "setok/safetensors.h"
#include "setok/weights.h"

static void write_shards(void)
{
    static const float values[4] = {1, 2, 3, 4};
    static const int64_t two[1] = {2};
    setok_st_entry first[2] = {{"a", SETOK_ST_F32, 1, two, values},
                               {"b", SETOK_ST_F32, 1, two, values + 2}};
    setok_st_entry second[1] = {{"c", SETOK_ST_F32, 1, two, values}};
    setok_error err;
    char a[512], b[512];
    strcpy(a, fuzz_path("model-00001-of-00002.safetensors"));
    strcpy(b, fuzz_path("model-00002-of-00002.safetensors"));
    if (setok_safetensors_write(a, first, 2, NULL, &err) != SETOK_OK ||
        setok_safetensors_write(b, second, 1, NULL, &err) != SETOK_OK)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        write_shards();
        ready = 1;
    }
    fuzz_write("model.safetensors.index.json", data, size);
    setok_error err;
    setok_weights *w = NULL;
    if (setok_weights_open(&w, fuzz_dir(), &err) != SETOK_OK)
        return 0;
    for (size_t i = 0; i < setok_weights_count(w); i++) {
        const setok_st_tensor *t = setok_weights_at(w, i);
        if (setok_weights_find(w, t->name) != t)
            __builtin_trap();
    }
    static const char *const names[] = {"c", "a"};
    const setok_st_tensor *t = NULL;
    setok_weights_require(w, names, 2, 1, (const int64_t[]){2}, &t, &err);
    setok_weights_close(w);
    return 0;
}
