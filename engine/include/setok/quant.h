/* quant.h — the block-quantized weight formats (SETOK_Q8, SETOK_Q4).
 *
 * Both cut each row of a weight matrix into blocks of 32 consecutive values
 * (the row length must be a multiple of 32) and store each block on its own:
 *
 *   q8  setok_block_q8 {f16 d; int8 q[32]}          value j = d * q[j]
 *       d = f16(max |x| / 127), q = round(x / d) in [-127, 127]:
 *       34 bytes a block (8.5 bits a value)
 *   q4  setok_block_q4 {f16 d; f16 m; u8 q[16]}      value j = d * n_j + m
 *       n_j (0..15) is the low nibble of q[j] for j < 16, the high nibble of
 *       q[j - 16] after; m = f16(min x), d = f16((max x - min x) / 15),
 *       n = round((x - m) / d) in [0, 15]: 20 bytes a block (5 bits a value)
 * The steps use the stored (f16) scale, so a value is off by at most half a
 * step plus what rounding the scale and minimum to f16 shifts the ends.
 *
 * Scales are IEEE half floats; blocks are packed with no padding, so a block
 * may sit at any byte address. Rounding is to nearest, half away from zero.
 * The quantizer is the same everywhere (loading a model, `setok quantize`,
 * tests), so a stored copy equals quantizing on load. */
#ifndef SETOK_QUANT_H
#define SETOK_QUANT_H

#include "export.h"

#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_QBLOCK 32

typedef struct setok_block_q8 {
    uint16_t d;
    int8_t q[SETOK_QBLOCK];
} __attribute__((packed)) setok_block_q8;

typedef struct setok_block_q4 {
    uint16_t d, m;
    uint8_t q[SETOK_QBLOCK / 2];
} __attribute__((packed)) setok_block_q4;

_Static_assert(sizeof(setok_block_q8) == 34, "q8 blocks are 34 bytes");
_Static_assert(sizeof(setok_block_q4) == 20, "q4 blocks are 20 bytes");

/* x [n] (n a multiple of 32) -> dst, setok_dtype_bytes(dtype, n) bytes; dtype Q8 or Q4. */
SETOK_API void setok_quantize(void *dst, setok_dtype dtype, const float *x, int64_t n);
/* src [n] of any float or quantized dtype -> dst [n] f32. */
SETOK_API void setok_dequantize(float *dst, const void *src, setok_dtype dtype, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
