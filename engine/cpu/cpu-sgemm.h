/* cpu-sgemm.h — the single-threaded f32 GEMM kernel of the CPU backend.
 *
 * setok_cpu_sgemm (cpu-impl.h) is the entry point for whole problems: it calls
 * BLAS or splits the work over the thread pool. Op files that already run
 * inside setok_cpu_parallel_for workers (attention, per-block work) call this
 * serial kernel instead: it never touches BLAS or the pool, and never allocates. */
#ifndef SETOK_CPU_SGEMM_H
#define SETOK_CPU_SGEMM_H

#include <stdbool.h>
#include <stdint.h>

/* y[M, N] = alpha * op(a) op(b) + beta * y, row-major, lda/ldb/ldy row strides.
 * beta == 0 overwrites y without reading it (as BLAS does). */
void setok_cpu_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float *a, int64_t lda, const float *b,
                            int64_t ldb, float beta, float *y, int64_t ldy);

#endif
