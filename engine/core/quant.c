/* quant.c — quantizing and dequantizing the block formats (quant.h). The plain
 * loops here are the reference the CPU kernels' in-register decoding is checked
 * against. */
#include "setok/quant.h"

#include <math.h>
#include <string.h>

static void quantize_q8(setok_block_q8 *b, const float *x)
{
    float amax = 0.0f;
    for (int j = 0; j < SETOK_QBLOCK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    /* the steps are the stored (f16) scale's, so rounding the scale costs nothing */
    b->d = setok_f32_to_f16(amax / 127.0f);
    float d = setok_f16_to_f32(b->d), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < SETOK_QBLOCK; j++) {
        float q = roundf(x[j] * id);
        b->q[j] = (int8_t)(q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q);
    }
}

static void quantize_q4(setok_block_q4 *b, const float *x)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < SETOK_QBLOCK; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    b->d = setok_f32_to_f16((hi - lo) / 15.0f);
    b->m = setok_f32_to_f16(lo);
    float d = setok_f16_to_f32(b->d), m = setok_f16_to_f32(b->m), id = d > 0.0f ? 1.0f / d : 0.0f;
    uint8_t n[SETOK_QBLOCK];
    for (int j = 0; j < SETOK_QBLOCK; j++) {
        float q = roundf((x[j] - m) * id);
        n[j] = (uint8_t)(q > 15.0f ? 15.0f : q < 0.0f ? 0.0f : q);
    }
    for (int j = 0; j < SETOK_QBLOCK / 2; j++)
        b->q[j] = (uint8_t)(n[j] | n[j + SETOK_QBLOCK / 2] << 4);
}

void setok_quantize(void *dst, setok_dtype dtype, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / SETOK_QBLOCK; i++) {
        if (dtype == SETOK_Q8)
            quantize_q8((setok_block_q8 *)dst + i, x + i * SETOK_QBLOCK);
        else if (dtype == SETOK_Q4)
            quantize_q4((setok_block_q4 *)dst + i, x + i * SETOK_QBLOCK);
    }
}

void setok_dequantize(float *dst, const void *src, setok_dtype dtype, int64_t n)
{
    if (dtype == SETOK_F32) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = setok_load_f32(src, dtype, i);
}
