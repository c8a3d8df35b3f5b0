/* cpu-sgemm.c — row-major f32 GEMM for the CPU backend.
 *
 * With OpenBLAS: cblas_sgemm, called from the caller's thread only (OpenBLAS
 * runs its own threads, sized here to the backend's thread count). Without
 * BLAS, or for sizes BLAS cannot index: a packed, cache-blocked kernel with a
 * 6x8 register tile (GCC/clang vector types, plain loops elsewhere); tiles of y
 * are spread over the thread pool. The packing buffers live on the stack
 * (68 KiB), so the kernel never allocates and may run inside pool workers. */
#include "setok-config.h"

#include <string.h>

#include "cpu-impl.h"
#include "cpu-sgemm.h"

#if SETOK_HAVE_BLAS
#include <cblas.h>
#include <limits.h>
#endif

// Register tile MR x NR; blocks of op(b) are KC x NC (32 KiB), of op(a) MC x KC (36 KiB).
enum { MR = 6, NR = 8, KC = 128, NC = 64, MC = 72 };
// Work per pool task in the threaded loop: a TASK_M x TASK_N tile of y.
enum { TASK_M = 72, TASK_N = 256 };

// ----------------------------------------------------------------------------
// serial kernel

// op(a) block [mc, kc] -> ap: panels of MR rows, each [kc][MR], zero-padded
static void pack_a(float *ap, bool trans_a, const float *a, int64_t lda, int64_t mc, int64_t kc)
{
    for (int64_t ir = 0; ir < mc; ir += MR) {
        float *dst = ap + ir * kc;
        int64_t mr = mc - ir < MR ? mc - ir : MR;
        for (int64_t p = 0; p < kc; p++) {
            for (int64_t r = 0; r < MR; r++) {
                float v = 0.0f;
                if (r < mr) {
                    v = trans_a ? a[p * lda + ir + r] : a[(ir + r) * lda + p];
                }
                dst[p * MR + r] = v;
            }
        }
    }
}

// op(b) block [kc, nc] -> bp: panels of NR columns, each [kc][NR], zero-padded
static void pack_b(float *bp, bool trans_b, const float *b, int64_t ldb, int64_t kc, int64_t nc)
{
    for (int64_t jr = 0; jr < nc; jr += NR) {
        float *dst = bp + jr * kc;
        int64_t nr = nc - jr < NR ? nc - jr : NR;
        for (int64_t p = 0; p < kc; p++) {
            float *row = dst + p * NR;
            if (!trans_b && nr == NR) {
                memcpy(row, b + p * ldb + jr, NR * sizeof(float));
                continue;
            }
            for (int64_t j = 0; j < NR; j++) {
                float v = 0.0f;
                if (j < nr) {
                    v = trans_b ? b[(jr + j) * ldb + p] : b[p * ldb + jr + j];
                }
                row[j] = v;
            }
        }
    }
}

#if defined(__GNUC__)
// GCC/clang vectors: the compiler lowers them to whatever SIMD the target has (SSE2 at least).
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4f_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

// ap [kc][MR], bp [kc][NR] -> acc [MR][NR] = ap^T bp; 12 accumulators stay in registers
static void micro_kernel(float acc[MR][NR], const float *restrict ap, const float *restrict bp,
                         int64_t kc)
{
    const v4f z = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
    v4f c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
    for (int64_t p = 0; p < kc; p++, ap += MR, bp += NR) {
        v4f b0 = v4f_load(bp), b1 = v4f_load(bp + 4), a;
        a = z + ap[0]; c00 += a * b0; c01 += a * b1;
        a = z + ap[1]; c10 += a * b0; c11 += a * b1;
        a = z + ap[2]; c20 += a * b0; c21 += a * b1;
        a = z + ap[3]; c30 += a * b0; c31 += a * b1;
        a = z + ap[4]; c40 += a * b0; c41 += a * b1;
        a = z + ap[5]; c50 += a * b0; c51 += a * b1;
    }
    const v4f *c[MR][2] = {{&c00, &c01}, {&c10, &c11}, {&c20, &c21},
                           {&c30, &c31}, {&c40, &c41}, {&c50, &c51}};
    for (int r = 0; r < MR; r++) {
        memcpy(acc[r], c[r][0], sizeof(v4f));
        memcpy(acc[r] + 4, c[r][1], sizeof(v4f));
    }
}
#else
// ap [kc][MR], bp [kc][NR] -> acc [MR][NR] = ap^T bp
static void micro_kernel(float acc[MR][NR], const float *restrict ap, const float *restrict bp,
                         int64_t kc)
{
    float c[MR][NR] = {{0.0f}};
    for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) {
            for (int j = 0; j < NR; j++) {
                c[r][j] += ap[p * MR + r] * bp[p * NR + j];
            }
        }
    }
    memcpy(acc, c, sizeof(c));
}
#endif

// sum x[i] * y[i] over n
static float dot_f32(const float *x, const float *y, int64_t n)
{
    int64_t i = 0;
    float sum = 0.0f;
#if defined(__GNUC__)
    const v4f z = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f s0 = z, s1 = z;
    for (; i + 8 <= n; i += 8) {
        s0 += v4f_load(x + i) * v4f_load(y + i);
        s1 += v4f_load(x + i + 4) * v4f_load(y + i + 4);
    }
    s0 += s1;
    sum = (s0[0] + s0[1]) + (s0[2] + s0[3]);
#endif
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
#if defined(__GNUC__)
    const v4f z = {0.0f, 0.0f, 0.0f, 0.0f};
    v4f sv = z + s;
    for (; i + 8 <= n; i += 8) {
        v4f y0 = v4f_load(y + i) + sv * v4f_load(x + i);
        v4f y1 = v4f_load(y + i + 4) + sv * v4f_load(x + i + 4);
        memcpy(y + i, &y0, sizeof(y0));
        memcpy(y + i + 4, &y1, sizeof(y1));
    }
#endif
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

// y [mr, nr] (row stride ldy) = alpha * acc + (first ? beta * y : y)
static void store_tile(float *y, int64_t ldy, int64_t mr, int64_t nr, float acc[MR][NR],
                       float alpha, float beta, bool first)
{
    for (int64_t r = 0; r < mr; r++) {
        float *yr = y + r * ldy;
        if (!first || beta == 1.0f) {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] += alpha * acc[r][j];
            }
        } else if (beta == 0.0f) {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] = alpha * acc[r][j];
            }
        } else {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] = beta * yr[j] + alpha * acc[r][j];
            }
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
    float bp[KC * NC];
    float ap[MC * KC];
    float acc[MR][NR];
    for (int64_t jc = 0; jc < n; jc += NC) {
        int64_t nc = n - jc < NC ? n - jc : NC;
        for (int64_t pc = 0; pc < k; pc += KC) {
            int64_t kc = k - pc < KC ? k - pc : KC;
            const float *bblk = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
            pack_b(bp, trans_b, bblk, ldb, kc, nc);
            for (int64_t ic = 0; ic < m; ic += MC) {
                int64_t mc = m - ic < MC ? m - ic : MC;
                const float *ablk = trans_a ? a + pc * lda + ic : a + ic * lda + pc;
                pack_a(ap, trans_a, ablk, lda, mc, kc);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t nr = nc - jr < NR ? nc - jr : NR;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int64_t mr = mc - ir < MR ? mc - ir : MR;
                        micro_kernel(acc, ap + ir * kc, bp + jr * kc, kc);
                        store_tile(y + (ic + ir) * ldy + jc + jr, ldy, mr, nr, acc, alpha, beta,
                                   pc == 0);
                    }
                }
            }
        }
    }
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
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                    (int)lda, b, (int)ldb, beta, y, (int)ldy);
        return;
    }
#endif
    sgemm_threaded(backend, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, y, ldy);
}
