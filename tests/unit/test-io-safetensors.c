/* test-io-safetensors.c — the io layer: safetensors write -> open round trip,
 * component weights (single file, sharded index, aliases, shape checks),
 * setok_weights_load conversions, and config.json access with its errors.
 * Prints one line per check; exits 1 if any failed. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "setok/backend.h"
#include "setok/config.h"
#include "setok/safetensors.h"
#include "setok/weights.h"

static int failures, checks;
static char tmpdir[256];

static void check(bool ok, const char *what, const char *detail)
{
    checks++;
    if (!ok)
        failures++;
    printf("%s - %s%s%s\n", ok ? "ok" : "FAIL", what, !ok && detail ? ": " : "",
           !ok && detail ? detail : "");
    fflush(stdout);
}

/* A failing call must fail with status and a message containing want. */
static void check_error(setok_status got, const setok_error *err, setok_status status,
                        const char *want, const char *what)
{
    char detail[SETOK_ERROR_MAX + 64];
    snprintf(detail, sizeof detail, "status %s, message \"%s\"", setok_status_name(got),
             err->message);
    check(got == status && err->status == status && strstr(err->message, want) != NULL, what,
          detail);
}

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

// ----------------------------------------------------------------------------

static void test_dtypes(void)
{
    check(strcmp(setok_st_dtype_name(SETOK_ST_BF16), "BF16") == 0 &&
              strcmp(setok_st_dtype_name(SETOK_ST_F8_E4M3), "F8_E4M3") == 0,
          "dtype names", NULL);
    check(setok_st_dtype_size(SETOK_ST_F64) == 8 && setok_st_dtype_size(SETOK_ST_BOOL) == 1 &&
              setok_st_dtype_size(SETOK_ST_I16) == 2,
          "dtype sizes", NULL);
    check(setok_st_dtype_to_engine(SETOK_ST_F16) == SETOK_F16 &&
              setok_st_dtype_to_engine(SETOK_ST_I32) == SETOK_I32 &&
              setok_st_dtype_to_engine(SETOK_ST_I64) == SETOK_DTYPE_COUNT,
          "dtype to engine", NULL);
}

static void test_round_trip(void)
{
    float a[6] = {1, -2, 3.5f, 4, 5, -6e-3f};
    uint16_t h[4] = {0x3C00, 0xC100, 0x7BFF, 0x0001};
    uint16_t b[4] = {0x3F80, 0xC020, 0x7F7F, 0x0001};
    int32_t ids[3] = {7, -1, 2147483647};
    uint8_t u8[3] = {1, 2, 255};
    float s = 42.0f, five[2] = {1, 2};
    int64_t sa[2] = {2, 3}, sh[1] = {4}, sb[2] = {2, 2}, si[1] = {3}, su[1] = {3};
    int64_t se[2] = {0, 5}, s5[5] = {1, 1, 1, 2, 1};
    setok_st_entry entries[] = {
        {"layer.0.weight", SETOK_ST_F32, 2, sa, a},
        {"h", SETOK_ST_F16, 1, sh, h},
        {"b", SETOK_ST_BF16, 2, sb, b},
        {"ids", SETOK_ST_I32, 1, si, ids},
        {"scalar", SETOK_ST_F32, 0, NULL, &s},
        {"empty", SETOK_ST_F32, 2, se, NULL},
        {"five.dims", SETOK_ST_F32, 5, s5, five},
        {"bytes", SETOK_ST_U8, 1, su, u8},
    };
    size_t n = sizeof entries / sizeof entries[0];
    const char *meta[] = {"format", "pt", "note", "round \"trip\"", NULL};
    const char *path = path_in("round.safetensors");
    setok_error err;
    setok_status st = setok_safetensors_write(path, entries, n, meta, &err);
    check(st == SETOK_OK, "write 8 tensors with metadata", err.message);
    check(access(path_in("round.safetensors.tmp"), F_OK) != 0, "no .tmp file left behind", NULL);

    FILE *f = fopen(path, "rb");
    unsigned char len8[8] = {0};
    bool read_ok = f && fread(len8, 1, 8, f) == 8;
    if (f)
        fclose(f);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | len8[i];
    check(read_ok && header_len % 8 == 0, "header length is a multiple of 8", NULL);

    setok_safetensors *sf = NULL;
    st = setok_safetensors_open(&sf, path, &err);
    check(st == SETOK_OK, "open what was written", err.message);
    if (st != SETOK_OK)
        return;
    check(setok_safetensors_count(sf) == n, "tensor count", NULL);
    check(strcmp(setok_safetensors_path(sf), path) == 0, "path", NULL);
    bool all = true;
    char detail[256] = "";
    for (size_t i = 0; i < n; i++) {
        const setok_st_tensor *t = setok_safetensors_find(sf, entries[i].name);
        size_t bytes = setok_st_dtype_size(entries[i].dtype);
        for (int d = 0; d < entries[i].ndim; d++)
            bytes *= (size_t)entries[i].shape[d];
        bool ok = t && t->dtype == entries[i].dtype && t->ndim == entries[i].ndim &&
                  t->nbytes == bytes && strcmp(t->file, path) == 0 &&
                  (bytes == 0 || memcmp(t->data, entries[i].data, bytes) == 0);
        for (int d = 0; ok && d < entries[i].ndim; d++)
            ok = t->shape[d] == entries[i].shape[d];
        if (!ok) {
            all = false;
            snprintf(detail, sizeof detail, "tensor '%s' differs", entries[i].name);
        }
    }
    check(all, "names, dtypes, shapes and bytes survive", detail);
    check(setok_safetensors_find(sf, "nope") == NULL, "find of a missing name is NULL", NULL);
    bool sorted = true;
    for (size_t i = 1; i < n; i++)
        sorted = sorted && (const char *)setok_safetensors_at(sf, i)->data >=
                               (const char *)setok_safetensors_at(sf, i - 1)->data;
    check(sorted && setok_safetensors_at(sf, n) == NULL, "at() is in offset order", NULL);
    const char *k0, *v0;
    setok_safetensors_metadata_at(sf, 0, &k0, &v0);
    check(setok_safetensors_metadata_count(sf) == 2 &&
              strcmp(setok_safetensors_metadata(sf, "format"), "pt") == 0 &&
              strcmp(setok_safetensors_metadata(sf, "note"), "round \"trip\"") == 0 &&
              setok_safetensors_metadata(sf, "missing") == NULL && strcmp(k0, "format") == 0 &&
              strcmp(v0, "pt") == 0,
          "metadata survives", NULL);

    setok_tensor view;
    st = setok_st_tensor_view(&view, setok_safetensors_find(sf, "layer.0.weight"), &err);
    check(st == SETOK_OK && view.dtype == SETOK_F32 && view.ndim == 2 && view.shape[1] == 3 &&
              view.backend == NULL && ((const float *)view.data)[2] == 3.5f,
          "tensor view of F32", err.message);
    st = setok_st_tensor_view(&view, setok_safetensors_find(sf, "scalar"), &err);
    check(st == SETOK_OK && view.ndim == 0 && *(const float *)view.data == 42.0f,
          "tensor view of a scalar", err.message);
    st = setok_st_tensor_view(&view, setok_safetensors_find(sf, "bytes"), &err);
    check_error(st, &err, SETOK_ERR_UNSUPPORTED, "U8", "tensor view of U8 is unsupported");
    st = setok_st_tensor_view(&view, setok_safetensors_find(sf, "five.dims"), &err);
    check_error(st, &err, SETOK_ERR_UNSUPPORTED, "5 dimensions",
                "tensor view of 5 dims is unsupported");
    setok_safetensors_close(sf);

    /* the writer refuses what the reader would refuse */
    setok_st_entry dup[2] = {entries[0], entries[0]};
    st = setok_safetensors_write(path_in("dup.safetensors"), dup, 2, NULL, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "given twice", "writer: duplicate name");
    setok_st_entry empty_name = entries[0];
    empty_name.name = "";
    st = setok_safetensors_write(path_in("e.safetensors"), &empty_name, 1, NULL, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "non-empty", "writer: empty name");
    int64_t negative[2] = {2, -3};
    setok_st_entry neg = entries[0];
    neg.shape = negative;
    st = setok_safetensors_write(path_in("n.safetensors"), &neg, 1, NULL, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "shape[1] = -3 is outside", "writer: negative extent");
    const char *odd_meta[] = {"key", NULL};
    st = setok_safetensors_write(path_in("m.safetensors"), entries, 1, odd_meta, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "has no value", "writer: metadata key without value");
    st = setok_safetensors_write("/nonexistent-dir/x.safetensors", entries, 1, NULL, &err);
    check_error(st, &err, SETOK_ERR_RUNTIME, "/nonexistent-dir/x.safetensors",
                "writer: unwritable path");

    /* an empty file list is a valid file */
    st = setok_safetensors_write(path_in("none.safetensors"), NULL, 0, NULL, &err);
    check(st == SETOK_OK && setok_safetensors_open(&sf, path_in("none.safetensors"), &err) ==
                                SETOK_OK,
          "zero tensors round trip", err.message);
    if (st == SETOK_OK && sf) {
        check(setok_safetensors_count(sf) == 0, "zero tensors counted", NULL);
        setok_safetensors_close(sf);
    }
}

// ----------------------------------------------------------------------------

static void make_dir(const char *name)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path_in(name));
    if (system(cmd) != 0)
        fprintf(stderr, "mkdir failed\n");
}

static void test_weights(void)
{
    setok_error err;
    float x12[12] = {0}, x4[4] = {0}, x3[3] = {0};
    int64_t s34[2] = {3, 4}, s4[1] = {4}, s3[1] = {3};
    make_dir("sharded");
    setok_st_entry shard1[] = {
        {"model.layers.0.w", SETOK_ST_F32, 2, s34, x12},
        {"model.norm", SETOK_ST_F32, 1, s4, x4},
    };
    setok_st_entry shard2[] = {{"lm_head.weight", SETOK_ST_F32, 1, s3, x3}};
    setok_safetensors_write(path_in("sharded/model-00001-of-00002.safetensors"), shard1, 2, NULL,
                            &err);
    setok_safetensors_write(path_in("sharded/model-00002-of-00002.safetensors"), shard2, 1, NULL,
                            &err);
    write_text(path_in("sharded/model.safetensors.index.json"),
               "{\"metadata\": {\"total_size\": 76}, \"weight_map\": {\n"
               "  \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
               "  \"model.layers.0.w\": \"model-00001-of-00002.safetensors\",\n"
               "  \"model.norm\": \"model-00001-of-00002.safetensors\"}}\n");

    setok_weights *w = NULL;
    setok_status st = setok_weights_open(&w, path_in("sharded"), &err);
    check(st == SETOK_OK, "weights: open a sharded folder", err.message);
    if (st != SETOK_OK)
        return;
    check(setok_weights_count(w) == 3 && setok_weights_file_count(w) == 2,
          "weights: 3 tensors in 2 shards", NULL);
    const setok_st_tensor *t = setok_weights_find(w, "lm_head.weight");
    check(t && strstr(t->file, "model-00002-of-00002.safetensors") && t->shape[0] == 3,
          "weights: find in the second shard", NULL);
    check(strstr(setok_safetensors_path(setok_weights_file(w, 0)), "00001-of") != NULL,
          "weights: shards in name order", NULL);
    const char *aliases[] = {"language_model.model.norm", "model.norm"};
    check(setok_weights_find_any(w, aliases, 2) == setok_weights_find(w, "model.norm"),
          "weights: find_any takes the first alias that exists", NULL);

    int64_t want4[1] = {4}, want_any[2] = {-1, 4}, want_bad[2] = {4, 4};
    st = setok_weights_require(w, aliases, 2, 1, want4, &t, &err);
    check(st == SETOK_OK && t && strcmp(t->name, "model.norm") == 0,
          "require: alias and shape match", err.message);
    const char *layer[] = {"model.layers.0.w"};
    st = setok_weights_require(w, layer, 1, 2, want_any, &t, &err);
    check(st == SETOK_OK, "require: -1 matches any extent", err.message);
    st = setok_weights_require(w, layer, 1, 2, want_bad, &t, &err);
    char want_msg[600];
    snprintf(want_msg, sizeof want_msg,
             "%s: tensor 'model.layers.0.w' has shape [3, 4], expected [4, 4]",
             path_in("sharded/model-00001-of-00002.safetensors"));
    check(st == SETOK_ERR_INPUT && strcmp(err.message, want_msg) == 0 && t == NULL,
          "require: shape mismatch message", err.message);
    st = setok_weights_require(w, layer, 1, 1, want4, &t, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "has shape [3, 4], expected [4]",
                "require: rank mismatch message");
    const char *missing[] = {"a.weight", "b.weight"};
    st = setok_weights_require(w, missing, 2, 1, want4, &t, &err);
    snprintf(want_msg, sizeof want_msg, "%s: tensor 'a.weight' (or 'b.weight') not found",
             path_in("sharded"));
    check(st == SETOK_ERR_INPUT && strcmp(err.message, want_msg) == 0,
          "require: not-found message names the aliases", err.message);
    setok_weights_close(w);

    /* opening the index file itself works too */
    st = setok_weights_open(&w, path_in("sharded/model.safetensors.index.json"), &err);
    check(st == SETOK_OK && setok_weights_count(w) == 3, "weights: open the index.json path",
          err.message);
    if (st == SETOK_OK)
        setok_weights_close(w);

    /* single-file folders, by each of the names */
    static const char *const singles[] = {"model.safetensors",
                                          "diffusion_pytorch_model.safetensors",
                                          "adapter_model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char dir[64], file[160], what[160];
        snprintf(dir, sizeof dir, "single%d", i);
        make_dir(dir);
        snprintf(file, sizeof file, "%s/%s", dir, singles[i]);
        setok_safetensors_write(path_in(file), shard2, 1, NULL, &err);
        st = setok_weights_open(&w, path_in(dir), &err);
        snprintf(what, sizeof what, "weights: folder with %s", singles[i]);
        check(st == SETOK_OK && setok_weights_count(w) == 1, what, err.message);
        if (st == SETOK_OK)
            setok_weights_close(w);
    }

    make_dir("emptydir");
    st = setok_weights_open(&w, path_in("emptydir"), &err);
    check_error(st, &err, SETOK_ERR_INPUT, "looked for model.safetensors",
                "weights: an empty folder lists what was looked for");

    /* the same tensor in two shards */
    make_dir("twice");
    setok_safetensors_write(path_in("twice/a.safetensors"), shard2, 1, NULL, &err);
    setok_safetensors_write(path_in("twice/b.safetensors"), shard2, 1, NULL, &err);
    write_text(path_in("twice/model.safetensors.index.json"),
               "{\"weight_map\": {\"lm_head.weight\": \"a.safetensors\", "
               "\"x\": \"b.safetensors\"}}");
    st = setok_weights_open(&w, path_in("twice"), &err);
    check_error(st, &err, SETOK_ERR_INPUT, "is in both", "weights: a tensor in two shards");

    /* the index puts a tensor in the wrong shard */
    make_dir("wrong");
    setok_safetensors_write(path_in("wrong/a.safetensors"), shard1, 2, NULL, &err);
    setok_safetensors_write(path_in("wrong/b.safetensors"), shard2, 1, NULL, &err);
    write_text(path_in("wrong/model.safetensors.index.json"),
               "{\"weight_map\": {\"lm_head.weight\": \"a.safetensors\", "
               "\"model.norm\": \"b.safetensors\"}}");
    st = setok_weights_open(&w, path_in("wrong"), &err);
    check_error(st, &err, SETOK_ERR_INPUT, "but it is in", "weights: tensor not in its shard");

    write_text(path_in("wrong/model.safetensors.index.json"),
               "{\"weight_map\": {\"lm_head.weight\": \"../b.safetensors\"}}");
    st = setok_weights_open(&w, path_in("wrong"), &err);
    check_error(st, &err, SETOK_ERR_INPUT, "not a plain file name",
                "weights: shard path with ../ refused");
}

// ----------------------------------------------------------------------------

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_load(void)
{
    setok_error err;
    setok_backend *cpu = NULL;
    setok_status st = setok_backend_cpu_create(&cpu, 1, &err);
    check(st == SETOK_OK, "cpu backend", err.message);
    if (st != SETOK_OK)
        return;

    /* 1.0, -2.5, 65504, 2^-24 (subnormal), +inf, -0, NaN */
    uint16_t h[7] = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00, 0x8000, 0x7E00};
    const uint32_t h_want[7] = {0x3F800000, 0xC0200000, 0x477FE000, 0x33800000, 0x7F800000,
                                0x80000000, 0x7FC00000};
    /* 1.0, -2.5, max finite, smallest subnormal, -inf, -0, NaN */
    uint16_t b[7] = {0x3F80, 0xC020, 0x7F7F, 0x0001, 0xFF80, 0x8000, 0x7FC0};
    const uint32_t b_want[7] = {0x3F800000, 0xC0200000, 0x7F7F0000, 0x00010000, 0xFF800000,
                                0x80000000, 0x7FC00000};
    double f64[3] = {0.1, -1e300, 3.0};
    int64_t i64[3] = {5, -7, 2147483647}, i64_big[2] = {1, 2147483648LL};
    uint8_t pad[1] = {9};
    float f32[4] = {1.5f, -0.25f, 3.0f, 65536.0f};
    int64_t s7[1] = {7}, s3[1] = {3}, s2[1] = {2}, s1[1] = {1}, s4[2] = {2, 2};
    setok_st_entry entries[] = {
        {"pad", SETOK_ST_U8, 1, s1, pad}, /* misaligns everything after it */
        {"h", SETOK_ST_F16, 1, s7, h},
        {"b", SETOK_ST_BF16, 1, s7, b},
        {"f64", SETOK_ST_F64, 1, s3, f64},
        {"i64", SETOK_ST_I64, 1, s3, i64},
        {"i64_big", SETOK_ST_I64, 1, s2, i64_big},
        {"f32", SETOK_ST_F32, 2, s4, f32},
    };
    const char *path = path_in("load.safetensors");
    setok_weights *w = NULL;
    st = setok_safetensors_write(path, entries, sizeof entries / sizeof entries[0], NULL, &err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, path, &err);
    check(st == SETOK_OK, "load: write and open a single file", err.message);
    if (st != SETOK_OK) {
        setok_backend_free(cpu);
        return;
    }

    setok_tensor out;
    st = setok_weights_load(&out, setok_weights_find(w, "h"), cpu, SETOK_F32, &err);
    bool exact = st == SETOK_OK && out.dtype == SETOK_F32 && out.shape[0] == 7;
    for (int i = 0; exact && i < 7; i++)
        exact = float_bits(((float *)out.data)[i]) == h_want[i];
    check(exact, "load: F16 -> F32 exactly (subnormal, inf, -0, NaN)", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "b"), cpu, SETOK_F32, &err);
    exact = st == SETOK_OK;
    for (int i = 0; exact && i < 7; i++)
        exact = float_bits(((float *)out.data)[i]) == b_want[i];
    check(exact, "load: BF16 -> F32 exactly", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "b"), cpu, SETOK_BF16, &err);
    exact = st == SETOK_OK && memcmp(out.data, b, sizeof b) == 0;
    check(exact, "load: BF16 -> BF16 is a copy (from an unaligned offset)", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "f32"), cpu, SETOK_F16, &err);
    const uint16_t f16_want[4] = {0x3E00, 0xB400, 0x4200, 0x7C00}; /* 65536 overflows to inf */
    exact = st == SETOK_OK && out.ndim == 2 && memcmp(out.data, f16_want, sizeof f16_want) == 0;
    check(exact, "load: F32 -> F16 rounds as PyTorch does", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "f64"), cpu, SETOK_F32, &err);
    exact = st == SETOK_OK && ((float *)out.data)[0] == 0.1f &&
            isinf(((float *)out.data)[1]) && ((float *)out.data)[2] == 3.0f;
    check(exact, "load: F64 -> F32", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "i64"), cpu, SETOK_I32, &err);
    exact = st == SETOK_OK && ((int32_t *)out.data)[1] == -7 &&
            ((int32_t *)out.data)[2] == 2147483647;
    check(exact, "load: I64 -> I32 in range", err.message);
    if (st == SETOK_OK)
        setok_tensor_free(&out);

    st = setok_weights_load(&out, setok_weights_find(w, "i64_big"), cpu, SETOK_I32, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "element 1 does not fit in i32",
                "load: I64 -> I32 out of range is refused");
    st = setok_weights_load(&out, setok_weights_find(w, "pad"), cpu, SETOK_F32, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "cannot be loaded as", "load: U8 -> f32 is refused");
    st = setok_weights_load(&out, setok_weights_find(w, "h"), cpu, SETOK_I32, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "cannot be loaded as", "load: F16 -> i32 is refused");

    setok_tensor view;
    st = setok_st_tensor_view(&view, setok_weights_find(w, "h"), &err);
    check_error(st, &err, SETOK_ERR_UNSUPPORTED, "aligned", "view: unaligned data is refused");

    setok_weights_close(w);
    setok_backend_free(cpu);
}

// ----------------------------------------------------------------------------

static void test_config(void)
{
    setok_error err;
    setok_config *cfg = NULL;
    const char *text =
        "{\n"
        "  \"hidden_size\": 4096, \"eps\": 1e-6, \"tie\": true, \"act\": \"silu\",\n"
        "  \"nothing\": null, \"half\": 1.5, \"name\": 7,\n"
        "  \"text_config\": {\"hidden_size\": 512, \"vision\": {\"patch\": 14}},\n"
        "  \"a.b\": 3, \"a\": {\"c\": 4},\n"
        "  \"channels\": [128, 256, 512, 512], \"mean\": [0.5, 0.25, 1], \"mixed\": [1, \"x\"],\n"
        "  \"big\": 1e300\n"
        "}\n";
    setok_status st = setok_config_parse(&cfg, text, "llm/config.json", &err);
    check(st == SETOK_OK, "config: parse", err.message);
    if (st != SETOK_OK)
        return;
    check(strcmp(setok_config_path(cfg), "llm/config.json") == 0 && setok_config_root(cfg),
          "config: path and root", NULL);

    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    check(setok_config_int(cfg, "hidden_size", &i, &err) == SETOK_OK && i == 4096, "config: int",
          err.message);
    check(setok_config_double(cfg, "eps", &d, &err) == SETOK_OK && d == 1e-6, "config: double",
          err.message);
    check(setok_config_double(cfg, "hidden_size", &d, &err) == SETOK_OK && d == 4096.0,
          "config: an integer is a double too", err.message);
    check(setok_config_bool(cfg, "tie", &b, &err) == SETOK_OK && b, "config: bool", err.message);
    check(setok_config_string(cfg, "act", &s, &err) == SETOK_OK && strcmp(s, "silu") == 0,
          "config: string", err.message);
    check(setok_config_int(cfg, "text_config.hidden_size", &i, &err) == SETOK_OK && i == 512,
          "config: dotted key", err.message);
    check(setok_config_int(cfg, "text_config.vision.patch", &i, &err) == SETOK_OK && i == 14,
          "config: two-level dotted key", err.message);
    check(setok_config_int(cfg, "a.b", &i, &err) == SETOK_OK && i == 3 &&
              setok_config_int(cfg, "a.c", &i, &err) == SETOK_OK && i == 4,
          "config: literal dotted key first, then the path", err.message);
    check(setok_config_has(cfg, "text_config.vision") && !setok_config_has(cfg, "text_config.x"),
          "config: has", NULL);

    check(setok_config_int_or(cfg, "missing", 11, &i, &err) == SETOK_OK && i == 11 &&
              setok_config_int_or(cfg, "nothing", 12, &i, &err) == SETOK_OK && i == 12 &&
              setok_config_int_or(cfg, "hidden_size", 1, &i, &err) == SETOK_OK && i == 4096,
          "config: int_or (missing, null, present)", err.message);
    check(setok_config_double_or(cfg, "missing", 0.5, &d, &err) == SETOK_OK && d == 0.5,
          "config: double_or", err.message);
    check(setok_config_bool_or(cfg, "missing", true, &b, &err) == SETOK_OK && b,
          "config: bool_or", err.message);
    check(setok_config_string_or(cfg, "missing", "gelu", &s, &err) == SETOK_OK &&
              strcmp(s, "gelu") == 0,
          "config: string_or", err.message);

    int64_t ch[4];
    double mean[3];
    size_t n = 0;
    check(setok_config_int_array(cfg, "channels", ch, 4, &n, &err) == SETOK_OK && n == 4 &&
              ch[3] == 512,
          "config: int array", err.message);
    check(setok_config_double_array(cfg, "mean", mean, 3, &n, &err) == SETOK_OK && n == 3 &&
              mean[1] == 0.25 && mean[2] == 1.0,
          "config: double array", err.message);

    st = setok_config_int(cfg, "act", &i, &err);
    check(st == SETOK_ERR_INPUT &&
              strcmp(err.message, "llm/config.json: key 'act' must be an integer, got string") ==
                  0,
          "config: wrong type message", err.message);
    st = setok_config_int(cfg, "half", &i, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "must be an integer, got 1.5",
                "config: 1.5 is not an integer");
    st = setok_config_int(cfg, "big", &i, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "must be an integer", "config: 1e300 is out of range");
    st = setok_config_int(cfg, "absent", &i, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "llm/config.json: missing required key 'absent'",
                "config: missing required key");
    st = setok_config_string_or(cfg, "name", "x", &s, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "key 'name' must be a string, got 7",
                "config: optional but mistyped");
    st = setok_config_bool(cfg, "act", &b, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "must be true or false, got string",
                "config: bool mistyped");
    st = setok_config_double(cfg, "text_config", &d, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "must be a number, got object",
                "config: double mistyped");
    st = setok_config_int_array(cfg, "channels", ch, 3, &n, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "has 4 entries, at most 3", "config: array too long");
    st = setok_config_int_array(cfg, "mixed", ch, 4, &n, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "key 'mixed': entry 1 must be an integer, got string",
                "config: array entry mistyped");
    st = setok_config_int_array(cfg, "mean", ch, 4, &n, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "entry 0 must be an integer, got 0.5",
                "config: int array of fractions");
    st = setok_config_double_array(cfg, "act", mean, 3, &n, &err);
    check_error(st, &err, SETOK_ERR_INPUT, "must be an array, got string",
                "config: array mistyped");
    setok_config_free(cfg);

    st = setok_config_parse(&cfg, "{\"a\": 1,\n \"b\": }", "bad.json", &err);
    check_error(st, &err, SETOK_ERR_INPUT, "bad.json: invalid JSON at byte 15 (line 2, column 7)",
                "config: invalid JSON reports the offset");
    st = setok_config_parse(&cfg, "[1, 2]", "arr.json", &err);
    check_error(st, &err, SETOK_ERR_INPUT, "top level must be a JSON object, got array",
                "config: top level must be an object");
    st = setok_config_parse(&cfg, "{} {}", "two.json", &err);
    check_error(st, &err, SETOK_ERR_INPUT, "after the top-level value",
                "config: trailing data refused");
    st = setok_config_load(&cfg, path_in("no-such.json"), &err);
    check_error(st, &err, SETOK_ERR_INPUT, "no-such.json", "config: missing file");

    /* a sparse file over the 64 MB limit */
    const char *huge = path_in("huge.json");
    FILE *f = fopen(huge, "wb");
    bool made = f && fputc('{', f) != EOF && fclose(f) == 0 && truncate(huge, 65000001) == 0;
    st = made ? setok_config_load(&cfg, huge, &err) : SETOK_ERR_RUNTIME;
    check_error(st, &err, SETOK_ERR_INPUT, "limit", "config: files over 64 MB are refused");

    write_text(path_in("ok.json"), "{\"k\": [1, 2]}  \n");
    st = setok_config_load(&cfg, path_in("ok.json"), &err);
    check(st == SETOK_OK, "config: load a file", err.message);
    if (st == SETOK_OK)
        setok_config_free(cfg);
}

int main(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test-io-XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_dtypes();
    test_round_trip();
    test_weights();
    test_load();
    test_config();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
