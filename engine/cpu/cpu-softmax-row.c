/* cpu-softmax-row.c — the stable softmax of one row, the part of SOFTMAX and
 * ATTENTION that runs at exp's speed: max, exp (x - max), sum, scale.
 *
 * The vector versions compute exp as 2^n * p(r), with n = round(x / ln 2) and
 * r = x - n ln 2 (split into two constants, so r is exact), and p the degree-7
 * Taylor polynomial of e^r on |r| <= ln 2 / 2 (truncation below 6e-9 relative):
 * within 2 ulp of expf. The sum is kept per lane in f32 and added in double. */
#include "setok-config.h"

#include <math.h>

#include "cpu-impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

static void softmax_row_c(float *y, int64_t keep, int64_t n)
{
    float mx = -INFINITY;
    for (int64_t j = 0; j < keep; j++)
        mx = y[j] > mx ? y[j] : mx;
    if (!isfinite(mx))
        keep = 0; /* every key masked (or an inf score): the row is 0 */
    double sum = 0.0;
    for (int64_t j = 0; j < keep; j++) {
        y[j] = expf(y[j] - mx);
        sum += y[j];
    }
    float inv = keep > 0 ? (float)(1.0 / sum) : 0.0f;
    for (int64_t j = 0; j < keep; j++)
        y[j] *= inv;
    for (int64_t j = keep; j < n; j++)
        y[j] = 0.0f;
}

#if defined(__x86_64__) || defined(__i386__)

#define LN2_HI 0.693145751953125f /* ln 2 in 16 bits: n * LN2_HI is exact */
#define LN2_LO 1.428606765330187e-06f
#define LOG2E 1.4426950408889634f

/* e^x for x <= 0 (x - max); below about -103 it is 0, as expf's is */
__attribute__((target("avx512f"))) static inline __m512 exp_512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n); /* p * 2^n, down to subnormals and 0 */
}

__attribute__((target("avx512f"))) static void softmax_row_512(float *y, int64_t keep, int64_t n)
{
    int64_t j = 0;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (; j + 16 <= keep; j += 16)
        vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(y + j));
    __mmask16 tail = (__mmask16)((1u << (keep - j)) - 1u);
    vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, tail, y + j));
    float mx = _mm512_reduce_max_ps(vmax);
    if (!isfinite(mx))
        keep = 0;
    __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= keep; j += 16) {
        __m512 e = exp_512(_mm512_sub_ps(_mm512_loadu_ps(y + j), m));
        _mm512_storeu_ps(y + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    tail = (__mmask16)((1u << (keep - j)) - 1u);
    if (tail) {
        __m512 e = exp_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, y + j), m));
        _mm512_mask_storeu_ps(y + j, tail, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(tail, e));
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, sum);
    double total = 0.0;
    for (int i = 0; i < 16; i++)
        total += lanes[i];
    __m512 inv = _mm512_set1_ps(keep > 0 ? (float)(1.0 / total) : 0.0f);
    for (j = 0; j + 16 <= keep; j += 16)
        _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), inv));
    for (; j < keep; j++)
        y[j] *= inv[0];
    for (; j < n; j++)
        y[j] = 0.0f;
}

__attribute__((target("avx2,fma"))) static inline __m256 exp_256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f)); /* 2^n stays a normal float */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                      _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

__attribute__((target("avx2,fma"))) static void softmax_row_avx2(float *y, int64_t keep,
                                                                 int64_t n)
{
    float mx = -INFINITY;
    int64_t j = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= keep; j += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(y + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    for (int i = 0; i < 8; i++)
        mx = lanes[i] > mx ? lanes[i] : mx;
    for (; j < keep; j++)
        mx = y[j] > mx ? y[j] : mx;
    if (!isfinite(mx))
        keep = 0;
    __m256 m = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= keep; j += 8) {
        __m256 e = exp_256(_mm256_sub_ps(_mm256_loadu_ps(y + j), m));
        _mm256_storeu_ps(y + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    _mm256_storeu_ps(lanes, sum);
    double total = 0.0;
    for (int i = 0; i < 8; i++)
        total += lanes[i];
    for (; j < keep; j++) {
        y[j] = expf(y[j] - mx);
        total += y[j];
    }
    float inv = keep > 0 ? (float)(1.0 / total) : 0.0f;
    __m256 vinv = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= keep; j += 8)
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), vinv));
    for (; j < keep; j++)
        y[j] *= inv;
    for (; j < n; j++)
        y[j] = 0.0f;
}
#endif

void setok_cpu_softmax_row(float *y, int64_t keep, int64_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    setok_cpu_isa isa = setok_cpu_isa_level();
    if (isa >= SETOK_ISA_AVX512) {
        softmax_row_512(y, keep, n);
        return;
    }
    if (isa >= SETOK_ISA_AVX2) {
        softmax_row_avx2(y, keep, n);
        return;
    }
#endif
    softmax_row_c(y, keep, n);
}
