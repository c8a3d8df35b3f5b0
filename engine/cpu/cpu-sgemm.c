/* cpu-sgemm.c — row-major f32 GEMM for the CPU backend.
 *
 * With OpenBLAS: cblas_sgemm, called from the caller's thread only (OpenBLAS
 * runs its own threads, sized here to the backend's thread count). Without
 * BLAS, for sizes BLAS cannot index, and inside pool workers (attention): a
 * packed, cache-blocked kernel with a 6-row register tile two vectors wide
 * (cpu-sgemm-tile.h), built for AVX-512, AVX2+FMA and portable vectors and
 * chosen by setok_cpu_isa_level; tiles of y are spread over the thread pool.
 * The packing buffers are per thread (290 KiB), so the kernel never
 * allocates and may run inside pool workers. */
#include "setok-config.h"

#include <string.h>

#include "cpu-impl.h"
#include "cpu-sgemm.h"

#if SETOK_HAVE_BLAS
#include <cblas.h>
#include <limits.h>
#endif

// Register tiles are MR rows by two vectors; blocks of op(b) are KC x NC (256 KiB, in L2),
// of op(a) MC x KC (36 KiB, in L1); a partial tile's sums go through acc [MR][ACC_COLS] (the
// widest tile). NC is wide because op(a)'s block is packed again for each of op(b)'s.
enum { MR = 6, KC = 128, NC = 512, MC = 72, ACC_COLS = 32 };

// Each thread's packing buffers: the kernel runs inside pool workers and never allocates.
static _Thread_local float pack_b_buffer[KC * NC] __attribute__((aligned(64)));
static _Thread_local float pack_a_buffer[MC * KC] __attribute__((aligned(64)));
// Work per pool task in the threaded loop: a TASK_M x TASK_N tile of y.
enum { TASK_M = 72, TASK_N = 256 };

// ----------------------------------------------------------------------------
// serial kernel

#if !defined(__GNUC__)
#error "the CPU kernels need GCC or clang vector extensions"
#endif

#define SGEMM_VL 4
#define SGEMM_NAME(x) x##_v4
#define SGEMM_TARGET
#define SGEMM_MADD(c, a, b) ((c) += (b) * (a))
#include "cpu-sgemm-tile.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SGEMM_VL 8
#define SGEMM_NAME(x) x##_avx2
#define SGEMM_TARGET __attribute__((target("avx2,fma")))
#define SGEMM_MADD(c, a, b) ((c) = _mm256_fmadd_ps((b), _mm256_set1_ps(a), (c)))
#include "cpu-sgemm-tile.h"

#define SGEMM_VL 16
#define SGEMM_NAME(x) x##_avx512
#define SGEMM_TARGET __attribute__((target("avx512f,fma")))
#define SGEMM_MADD(c, a, b) ((c) = _mm512_fmadd_ps((b), _mm512_set1_ps(a), (c)))
#include "cpu-sgemm-tile.h"
#endif

typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4f_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

// sum x[i] * y[i] over n
static float dot_f32(const float *x, const float *y, int64_t n)
{
    int64_t i = 0;
    float sum = 0.0f;
    const v4f z = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f s0 = z, s1 = z;
    for (; i + 8 <= n; i += 8) {
        s0 += v4f_load(x + i) * v4f_load(y + i);
        s1 += v4f_load(x + i + 4) * v4f_load(y + i + 4);
    }
    s0 += s1;
    sum = (s0[0] + s0[1]) + (s0[2] + s0[3]);
    for (; i < n; i++) {
        sum += x[i] * y[i];
    }
    return sum;
}

// y [m, n] *= beta, with beta == 0 writing zeros (the k == 0 case)
static void scale_y(float *y, int64_t ldy, int64_t m, int64_t n, float beta)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            y[i * ldy + j] = beta == 0.0f ? 0.0f : beta * y[i * ldy + j];
        }
    }
}

// y[i] += s * x[i] over n
static void axpy_f32(float *restrict y, float s, const float *restrict x, int64_t n)
{
    int64_t i = 0;
    const v4f z = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f sv = z + s;
    for (; i + 8 <= n; i += 8) {
        v4f y0 = v4f_load(y + i) + sv * v4f_load(x + i);
        v4f y1 = v4f_load(y + i + 4) + sv * v4f_load(x + i + 4);
        memcpy(y + i, &y0, sizeof(y0));
        memcpy(y + i + 4, &y1, sizeof(y1));
    }
    for (; i < n; i++) {
        y[i] += s * x[i];
    }
}

// y [m, n] = alpha * a op(b) + beta y for a handful of rows of a (not transposed): GEMV-like,
// where packing would cost as much as the arithmetic. Reads b once.
static void sgemm_few_rows(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                           float *y, int64_t ldy)
{
    if (trans_b) {
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++) {
                float v = alpha * dot_f32(a + i * lda, b + j * ldb, k);
                y[i * ldy + j] = beta == 0.0f ? v : v + beta * y[i * ldy + j];
            }
        }
        return;
    }
    scale_y(y, ldy, m, n, beta);
    for (int64_t p = 0; p < k; p++) {
        for (int64_t i = 0; i < m; i++) {
            axpy_f32(y + i * ldy, alpha * a[i * lda + p], b + p * ldb, n);
        }
    }
}

void setok_cpu_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float *a, int64_t lda, const float *b,
                            int64_t ldb, float beta, float *y, int64_t ldy)
{
    // a [m, k] ([k, m] if trans_a), b [k, n] ([n, k] if trans_b) -> y [m, n]
    if (m <= 0 || n <= 0) {
        return;
    }
    if (k <= 0) {
        scale_y(y, ldy, m, n, beta);
        return;
    }
    if (m < MR && !trans_a) {
        sgemm_few_rows(trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    setok_cpu_isa isa = setok_cpu_isa_level();
    if (isa >= SETOK_ISA_AVX512) {
        sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
        return;
    }
    if (isa >= SETOK_ISA_AVX2) {
        sgemm_avx2(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
        return;
    }
#endif
    sgemm_v4(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
}

// ----------------------------------------------------------------------------
// threaded loop (no BLAS)

typedef struct sgemm_task {
    bool trans_a, trans_b;
    int64_t m, n, k, tiles_n;
    float alpha, beta;
    const float *a, *b;
    float *y;
    int64_t lda, ldb, ldy;
} sgemm_task;

static void sgemm_tiles(void *ctx, int64_t begin, int64_t end)
{
    const sgemm_task *t = ctx;
    for (int64_t tile = begin; tile < end; tile++) {
        int64_t i0 = (tile / t->tiles_n) * TASK_M;
        int64_t j0 = (tile % t->tiles_n) * TASK_N;
        int64_t mt = t->m - i0 < TASK_M ? t->m - i0 : TASK_M;
        int64_t nt = t->n - j0 < TASK_N ? t->n - j0 : TASK_N;
        const float *a = t->trans_a ? t->a + i0 : t->a + i0 * t->lda;
        const float *b = t->trans_b ? t->b + j0 * t->ldb : t->b + j0;
        setok_cpu_sgemm_serial(t->trans_a, t->trans_b, mt, nt, t->k, t->alpha, a, t->lda, b,
                               t->ldb, t->beta, t->y + i0 * t->ldy + j0, t->ldy);
    }
}

static void sgemm_threaded(setok_backend *backend, bool trans_a, bool trans_b, int64_t m,
                           int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    sgemm_task t = {
        .trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
        .tiles_n = (n + TASK_N - 1) / TASK_N, .alpha = alpha, .beta = beta,
        .a = a, .b = b, .y = y, .lda = lda, .ldb = ldb, .ldy = ldy,
    };
    int64_t tiles = ((m + TASK_M - 1) / TASK_M) * t.tiles_n;
    // below ~1 MFLOP the pool costs more than it saves
    if (backend == NULL || tiles == 1 || (double)m * (double)n * (double)k < 5e5) {
        sgemm_tiles(&t, 0, tiles);
        return;
    }
    setok_cpu_parallel_for(backend, tiles, 1, sgemm_tiles, &t);
}

// ----------------------------------------------------------------------------
// entry point

#if SETOK_HAVE_BLAS && defined(OPENBLAS_VERSION)
// OpenBLAS's thread count is process-wide; backends with different counts take turns.
static void blas_use_threads(const setok_backend *backend)
{
    int want = backend != NULL ? setok_cpu_threads(backend) : 1;
    if (want >= 1 && openblas_get_num_threads() != want) {
        openblas_set_num_threads(want);
    }
}
#elif SETOK_HAVE_BLAS
static void blas_use_threads(const setok_backend *backend)
{
    (void)backend;
}
#endif

void setok_cpu_sgemm(setok_backend *backend, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *y, int64_t ldy)
{
    // a [m, k] ([k, m] if trans_a), b [k, n] ([n, k] if trans_b) -> y [m, n]
    if (m <= 0 || n <= 0) {
        return;
    }
    if (k <= 0) {
        scale_y(y, ldy, m, n, beta);
        return;
    }
#if SETOK_HAVE_BLAS
    if (m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
        ldy <= INT_MAX) {
        blas_use_threads(backend);
        if (m == 1 && !trans_a) {
            /* one row (decode): sgemm would pack all of b for it; sgemv reads b once. A zero
             * beta must not let what y held (NaN included) through, as sgemm's does not */
            if (beta == 0.0f)
                memset(y, 0, (size_t)n * sizeof *y);
            if (trans_b)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, alpha, b, (int)ldb, a,
                            1, beta, y, 1);
            else
                cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, alpha, b, (int)ldb, a,
                            1, beta, y, 1);
            return;
        }
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                    (int)lda, b, (int)ldb, beta, y, (int)ldy);
        return;
    }
#endif
    sgemm_threaded(backend, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
}
