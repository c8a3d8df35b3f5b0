/* test-core.c — tensors, views, half / bfloat16 conversion, arenas, and the
 * op validator's refusals. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "setok/arena.h"
#include "setok/ops.h"

#include "check.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16(void)
{
    /* Every half value converts to float and back unchanged (NaN payloads stay NaN). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = setok_f16_to_f32((uint16_t)h);
        uint16_t back = setok_f32_to_f16(f);
        bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) : back != h)
            bad++;
#if defined(__FLT16_MAX__)
        if (!is_nan) {
            _Float16 ref;
            memcpy(&ref, &h, 2);
            if (bits((float)ref) != bits(f))
                bad++;
        }
#endif
    }
    CHECK(bad == 0, "%d half values do not round-trip", bad);

#if defined(__FLT16_MAX__)
    /* float -> half against the compiler's own conversion (round to nearest even)
     * on a sweep of float bit patterns covering every exponent. */
    bad = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 0x1235) {
        float f = from_bits((uint32_t)u);
        if (isnan(f))
            continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (setok_f32_to_f16(f) != rb)
            bad++;
    }
    CHECK(bad == 0, "%d floats convert to half differently from _Float16", bad);
#endif
    CHECK(setok_f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(setok_f32_to_f16(65519.0f) == 0x7bff, "65519 rounds to 65504");
    CHECK(setok_f32_to_f16(from_bits(0x33000000)) == 0, "2^-25 ties to even zero");
    CHECK(setok_f32_to_f16(from_bits(0x33000001)) == 1, "just above 2^-25 rounds up");
    CHECK(setok_f32_to_f16(-0.0f) == 0x8000, "negative zero keeps its sign");
}

static void test_bf16(void)
{
    CHECK(setok_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(setok_f32_to_bf16(from_bits(0x3f808000)) == 0x3f80, "tie rounds to even (down)");
    CHECK(setok_f32_to_bf16(from_bits(0x3f818000)) == 0x3f82, "tie rounds to even (up)");
    CHECK(setok_f32_to_bf16(from_bits(0x3f808001)) == 0x3f81, "above tie rounds up");
    CHECK(setok_f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80, "max float rounds to inf");
    uint16_t nan = setok_f32_to_bf16(NAN);
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f), "NaN stays NaN");
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = setok_bf16_to_f32((uint16_t)b);
        if (!isnan(f) && setok_f32_to_bf16(f) != b)
            bad++;
    }
    CHECK(bad == 0, "%d bf16 values do not round-trip", bad);
}

static void test_views(void)
{
    float data[24];
    for (int i = 0; i < 24; i++)
        data[i] = (float)i;
    setok_tensor t = setok_tensor_make(data, NULL, SETOK_F32, 3, (int64_t[]){2, 3, 4});
    CHECK(setok_tensor_is_contiguous(&t), "fresh tensor is contiguous");
    CHECK(setok_tensor_numel(&t) == 24 && setok_tensor_nbytes(&t) == 96, "numel and bytes");
    setok_error err = {0};
    setok_tensor v;
    CHECK(setok_view_permute(&v, &t, (int[]){2, 0, 1}, &err) == SETOK_OK, "permute");
    CHECK(v.shape[0] == 4 && v.stride[0] == 1 && v.stride[1] == 12 &&
              !setok_tensor_is_contiguous(&v), "permuted strides");
    CHECK(setok_view_permute(&v, &t, (int[]){0, 0, 1}, &err) == SETOK_ERR_INPUT,
          "a repeated axis is refused");
    CHECK(setok_view_reshape(&v, &t, 2, (int64_t[]){6, 4}, &err) == SETOK_OK, "reshape");
    CHECK(setok_view_reshape(&v, &t, 2, (int64_t[]){5, 4}, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "cannot reshape"), "reshape to another size: %s", err.message);
    CHECK(setok_view_slice(&v, &t, 1, 1, 2, &err) == SETOK_OK && ((float *)v.data)[0] == 4.0f,
          "slice offsets the data pointer");
    CHECK(setok_view_slice(&v, &t, 1, 2, 2, &err) == SETOK_ERR_INPUT, "slice past the end");
    CHECK(setok_tensor_init(&v, NULL, NULL, SETOK_F32, 2, (int64_t[]){-1, 3}, &err) ==
              SETOK_ERR_INPUT, "negative extent");
    CHECK(setok_tensor_init(&v, NULL, NULL, SETOK_F32, 2, (int64_t[]){INT64_MAX / 2, 16}, &err) ==
              SETOK_ERR_INPUT, "overflowing size");
    CHECK(setok_tensor_init(&v, NULL, NULL, SETOK_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, &err) ==
              SETOK_ERR_INPUT, "too many dims");
}

static void test_arena(setok_backend *be)
{
    setok_error err = {0};
    setok_arena a;
    CHECK(setok_arena_init(&a, be, 4096, &err) == SETOK_OK, "arena init");
    setok_tensor x, y;
    CHECK(setok_arena_tensor(&a, &x, SETOK_F32, 2, (int64_t[]){10, 10}, &err) == SETOK_OK,
          "first tensor");
    size_t mark = setok_arena_mark(&a);
    CHECK(setok_arena_tensor(&a, &y, SETOK_F16, 1, (int64_t[]){7}, &err) == SETOK_OK, "second");
    CHECK(((uintptr_t)y.data & 255) == 0, "256-byte aligned");
    CHECK((char *)y.data >= (char *)x.data + 400, "no overlap");
    CHECK(setok_arena_tensor(&a, &y, SETOK_F32, 1, (int64_t[]){4096}, &err) == SETOK_ERR_NOMEM &&
              strstr(err.message, "arena full"), "full arena: %s", err.message);
    setok_arena_reset(&a, mark);
    CHECK(a.used == mark && a.peak >= mark, "reset to mark keeps the peak");
    setok_arena_destroy(&a);
}

/* The validator names the op and the problem, and nothing runs. */
static void test_validation(setok_backend *be)
{
    float buf[64] = {0};
    setok_error err = {0};
    setok_tensor a = setok_tensor_make(buf, NULL, SETOK_F32, 2, (int64_t[]){2, 3});
    setok_tensor b = setok_tensor_make(buf, NULL, SETOK_F32, 2, (int64_t[]){4, 5});
    setok_tensor y = setok_tensor_make(buf, NULL, SETOK_F32, 2, (int64_t[]){2, 5});
    CHECK(setok_matmul(be, &y, &a, &b, NULL, false, false, 1.0f, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "matmul: inner dimensions differ"), "%s", err.message);
    setok_tensor h = setok_tensor_make(buf, NULL, SETOK_F16, 2, (int64_t[]){2, 3});
    CHECK(setok_add(be, &h, &a, &a, &err) == SETOK_ERR_INPUT && strstr(err.message, "add:"),
          "mixed dtypes: %s", err.message);
    setok_tensor c = setok_tensor_make(buf, NULL, SETOK_F32, 1, (int64_t[]){4});
    CHECK(setok_add(be, &a, &a, &c, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "does not broadcast"), "%s", err.message);
    setok_tensor x4 = setok_tensor_make(buf, NULL, SETOK_F32, 4, (int64_t[]){1, 3, 2, 2});
    CHECK(setok_groupnorm(be, &x4, &x4, NULL, NULL, 2, 1e-5f, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "groups"), "%s", err.message);
    setok_tensor q = setok_tensor_make(buf, NULL, SETOK_F32, 4, (int64_t[]){1, 3, 2, 2});
    setok_tensor k = setok_tensor_make(buf, NULL, SETOK_F32, 4, (int64_t[]){1, 2, 2, 2});
    CHECK(setok_attention(be, &q, &q, &k, &k, NULL, 0.0f, false, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "kv heads"), "%s", err.message);
    int32_t ids[2] = {0, 9};
    setok_tensor table = setok_tensor_make(buf, NULL, SETOK_F32, 2, (int64_t[]){4, 2});
    setok_tensor idt = setok_tensor_make(ids, NULL, SETOK_I32, 1, (int64_t[]){2});
    setok_tensor rows = setok_tensor_make(buf + 16, NULL, SETOK_F32, 2, (int64_t[]){2, 2});
    CHECK(setok_get_rows(be, &rows, &table, &idt, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "outside the table"), "%s", err.message);
    setok_tensor p;
    setok_view_permute(&p, &a, (int[]){1, 0}, &err);
    setok_tensor y32 = setok_tensor_make(buf, NULL, SETOK_F32, 2, (int64_t[]){3, 2});
    CHECK(setok_scale(be, &y32, &p, 2.0f, 0.0f, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "contiguous"), "%s", err.message);
    setok_tensor v;
    CHECK(setok_topk(be, &a, &v, &a, 9, &err) == SETOK_ERR_INPUT, "topk k > C");
    CHECK(setok_op_from_name("attention") == SETOK_OP_ATTENTION &&
              setok_op_from_name("nope") == SETOK_OP_COUNT, "op names");
}

int main(void)
{
    setok_error err = {0};
    setok_backend *be = NULL;
    if (setok_backend_cpu_create(&be, 2, &err) != SETOK_OK) {
        printf("cpu backend: %s\n", err.message);
        return 1;
    }
    test_f16();
    test_bf16();
    test_views();
    test_arena(be);
    test_validation(be);
    setok_backend_free(be);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
