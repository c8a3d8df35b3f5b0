/* cpu-impl.h — private pieces of the CPU backend shared by its op files.
 *
 * The CPU backend runs f32 ops with fast paths (BLAS sgemm, threads) and
 * hands any other dtype combination to the reference ops. */
#ifndef SETOK_CPU_IMPL_H
#define SETOK_CPU_IMPL_H

#include <stdint.h>

#include "backend-impl.h"

/* Runs fn over [0, n) split into contiguous chunks on the backend's thread
 * pool (the caller's thread takes part). Chunks are at least min_chunk long,
 * so small problems stay on one thread. fn must not fail. */
typedef void (*setok_range_fn)(void *ctx, int64_t begin, int64_t end);
void setok_cpu_parallel_for(setok_backend *backend, int64_t n, int64_t min_chunk,
                            setok_range_fn fn, void *ctx);
int setok_cpu_threads(const setok_backend *backend);

/* y[M, N] = alpha * op(a) op(b) (+ beta * y), f32, row-major; lda etc. are row
 * strides. Uses cblas_sgemm when compiled with BLAS, else a blocked,
 * threaded loop. */
void setok_cpu_sgemm(setok_backend *backend, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *y, int64_t ldy);

/* The fast f32 op functions (cpu-*.c). Each returns SETOK_OK or falls back
 * to setok_ref_ops when a case is not covered. */
setok_status setok_cpu_matmul(setok_backend *b, const setok_op_desc *d, setok_error *err);
/* MATMUL with a weight matrix in f16, bf16, q8 or q4 (cpu-weights.c). */
setok_status setok_cpu_matmul_weights(setok_backend *b, const setok_op_desc *d, setok_error *err);

/* The vector instructions the kernels may use (cpu-isa.c): the best the CPU
 * has, capped by the environment variable SETOK_CPU_ISA (c, avx2, avx512,
 * avx512vnni, avx512bf16). AVX2 here includes FMA and F16C; AVX-512 includes
 * BW and VL. */
typedef enum setok_cpu_isa {
    SETOK_ISA_C = 0,
    SETOK_ISA_AVX2,
    SETOK_ISA_AVX512,
    SETOK_ISA_AVX512_VNNI,
    SETOK_ISA_AVX512_BF16, /* with VNNI: every CPU that has one has the other */
} setok_cpu_isa;
setok_cpu_isa setok_cpu_isa_level(void);

/* y [n] -> the softmax of y [0, keep) in place, 0 past keep; a row whose maximum is
 * not finite (every key masked) becomes 0 (cpu-softmax-row.c). */
void setok_cpu_softmax_row(float *y, int64_t keep, int64_t n);

/* y [m, n] = alpha * x [m, k] @ W^T (+ bias) for q8 / q4 W [n, k] and m <= 4, with x
 * quantized to int8 blocks and integer dot products (cpu-gemv-int8.c); usable on
 * CPUs with AVX2. */
bool setok_cpu_gemv_int8_usable(setok_dtype wdt, int64_t m);
setok_status setok_cpu_gemv_int8(setok_backend *be, const float *x, int64_t m, int64_t k,
                                 const void *w, setok_dtype wdt, int64_t n, float alpha,
                                 const float *bias, float *y, setok_error *err);

/* One weight row of k values (its dtype's bytes at w) -> out [k] f32. */
typedef void (*setok_cpu_decode_fn)(float *out, const void *w, int64_t k);
/* The fastest such decoder of f16, bf16, q8 or q4 on this CPU (cpu-weights.c). */
setok_cpu_decode_fn setok_cpu_decoder(setok_dtype dtype);
/* out [m] = the dots of one weight row w [k] (f16, bf16, q8 or q4) with x rows [m, ldx],
 * m <= SETOK_CPU_DOT_ROWS, in f32. */
enum { SETOK_CPU_DOT_ROWS = 4 };
typedef void (*setok_cpu_dot_fn)(float *out, const void *w, const float *x, int64_t ldx, int m,
                                 int64_t k);
/* The fastest such dot on this CPU (cpu-weights.c). */
setok_cpu_dot_fn setok_cpu_dotter(setok_dtype dtype);
/* y [m, n] = alpha * x [m, k] @ W^T (+ bias) with AVX512_BF16 dot products; W [n, k] in
 * wdt (bf16 read in place, any other dtype through decode); k must be even
 * (setok_cpu_gemm_bf16_usable). Only on CPUs with AVX512_BF16 (cpu-gemm-bf16.c). */
bool setok_cpu_gemm_bf16_usable(int64_t k);
setok_status setok_cpu_gemm_bf16(setok_backend *be, const float *x, int64_t m, int64_t k,
                                 const void *w, setok_dtype wdt, setok_cpu_decode_fn decode,
                                 int64_t n, float alpha, const float *bias, float *y,
                                 setok_error *err);
setok_status setok_cpu_binary(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_unary(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_glu(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_norm(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_groupnorm(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_softmax(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_rope(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_attention(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_conv2d(setok_backend *b, const setok_op_desc *d, setok_error *err);
setok_status setok_cpu_conv_transpose2d(setok_backend *b, const setok_op_desc *d,
                                        setok_error *err);
setok_status setok_cpu_copy(setok_backend *b, const setok_op_desc *d, setok_error *err);

#endif
