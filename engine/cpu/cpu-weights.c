/* cpu-weights.c — linear layers whose weight keeps its stored dtype (f16, bf16)
 * or is block-quantized (q8, q4, quant.h), under f32 activations:
 *
 *   y [M, N] = alpha * x [M, K] @ W [N, K]^T (+ bias [N])
 *
 * The weight is decoded in registers and never widened in memory as a whole.
 *   - Few rows (decode: M <= GEMV_ROWS): each weight row is read once and
 *     dotted with every x row; rows of W are spread over the thread pool. This
 *     is bound by memory bandwidth, so W's bytes are what counts.
 *   - Many rows (prefill, encoders): panels of PANEL weight rows are decoded
 *     into f32 (in parallel) and multiplied by sgemm, or, on CPUs with
 *     AVX512_BF16, decoded into bf16 pairs and multiplied with vdpbf16ps
 *     (twice the f32 rate; x is rounded to bf16 like a bf16 PyTorch run).
 * Each dtype has a portable C row decoder (the reference for the others: the
 * same values as setok_load_f32), and AVX2+F16C and AVX-512 versions, chosen
 * by setok_cpu_isa_level (cpu-isa.c). */
#include "setok-config.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"
#include "setok/quant.h"

enum {
    GEMV_ROWS = SETOK_CPU_DOT_ROWS, /* x rows up to which each weight row is read once */
    GEMV_CHUNK = 16, /* weight rows per pool task in the GEMV */
    PANEL = 128,     /* weight rows decoded per sgemm / bf16 GEMM call */
};

typedef setok_cpu_decode_fn decode_fn;
typedef setok_cpu_dot_fn dot_fn;

typedef struct isa_fns {
    decode_fn decode[SETOK_DTYPE_COUNT];
    dot_fn dot[SETOK_DTYPE_COUNT];
    bool bf16_gemm;
} isa_fns;

// ----------------------------------------------------------------------------
// portable C

static void decode_c(float *out, const void *w, setok_dtype dt, int64_t k)
{
    for (int64_t j = 0; j < k; j++)
        out[j] = setok_load_f32(w, dt, j);
}

static void decode_f16_c(float *out, const void *w, int64_t k) { decode_c(out, w, SETOK_F16, k); }
static void decode_bf16_c(float *out, const void *w, int64_t k) { decode_c(out, w, SETOK_BF16, k); }
static void decode_q8_c(float *out, const void *w, int64_t k) { decode_c(out, w, SETOK_Q8, k); }
static void decode_q4_c(float *out, const void *w, int64_t k) { decode_c(out, w, SETOK_Q4, k); }

/* Dot products through a small decoded buffer: any dtype, any ISA. */
static void dot_by_decode(decode_fn decode, setok_dtype dt, float *out, const void *w,
                          const float *x, int64_t ldx, int m, int64_t k)
{
    float buf[256], acc[GEMV_ROWS] = {0};
    for (int64_t j0 = 0; j0 < k; j0 += 256) {
        int64_t n = k - j0 < 256 ? k - j0 : 256;
        decode(buf, (const char *)w + setok_dtype_bytes(dt, j0), n);
        for (int r = 0; r < m; r++) {
            const float *xr = x + r * ldx + j0;
            float s = 0.0f;
            for (int64_t j = 0; j < n; j++)
                s += buf[j] * xr[j];
            acc[r] += s;
        }
    }
    for (int r = 0; r < m; r++)
        out[r] = acc[r];
}

#define DOT_BY_DECODE(name, decode, dt)                                                        \
    static void name(float *out, const void *w, const float *x, int64_t ldx, int m, int64_t k) \
    {                                                                                          \
        dot_by_decode(decode, dt, out, w, x, ldx, m, k);                                       \
    }

DOT_BY_DECODE(dot_f16_c, decode_f16_c, SETOK_F16)
DOT_BY_DECODE(dot_bf16_c, decode_bf16_c, SETOK_BF16)
DOT_BY_DECODE(dot_q8_c, decode_q8_c, SETOK_Q8)
DOT_BY_DECODE(dot_q4_c, decode_q4_c, SETOK_Q4)

// ----------------------------------------------------------------------------
// AVX2 + F16C + FMA: 8 lanes

#define AVX2 __attribute__((target("avx2,f16c,fma")))

AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline __m256 load8_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2 static inline __m256 load8_bf16(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* One block of q8 as four vectors of 8. */
AVX2 static inline void load32_q8(__m256 out[4], const setok_block_q8 *b)
{
    __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d));
    for (int i = 0; i < 4; i++) {
        __m128i q = _mm_loadl_epi64((const __m128i *)(b->q + 8 * i));
        out[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
}

AVX2 static inline void load32_q4(__m256 out[4], const setok_block_q4 *b)
{
    __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d)), mn = _mm256_set1_ps(_cvtsh_ss(b->m));
    __m128i q = _mm_loadu_si128((const __m128i *)b->q);
    __m128i lo = _mm_and_si128(q, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(q, 4),
                                                                       _mm_set1_epi8(15));
    __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int i = 0; i < 4; i++)
        out[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i])), mn);
}

AVX2 static void decode_f16_avx2(float *out, const void *w, int64_t k)
{
    const uint16_t *p = w;
    int64_t j = 0;
    for (; j + 8 <= k; j += 8)
        _mm256_storeu_ps(out + j, load8_f16(p + j));
    decode_c(out + j, p + j, SETOK_F16, k - j);
}

AVX2 static void decode_bf16_avx2(float *out, const void *w, int64_t k)
{
    const uint16_t *p = w;
    int64_t j = 0;
    for (; j + 8 <= k; j += 8)
        _mm256_storeu_ps(out + j, load8_bf16(p + j));
    decode_c(out + j, p + j, SETOK_BF16, k - j);
}

AVX2 static void decode_q8_avx2(float *out, const void *w, int64_t k)
{
    const setok_block_q8 *b = w;
    for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {
        __m256 v[4];
        load32_q8(v, b + i);
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(out + i * SETOK_QBLOCK + 8 * j, v[j]);
    }
}

AVX2 static void decode_q4_avx2(float *out, const void *w, int64_t k)
{
    const setok_block_q4 *b = w;
    for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {
        __m256 v[4];
        load32_q4(v, b + i);
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(out + i * SETOK_QBLOCK + 8 * j, v[j]);
    }
}

/* The GEMV dots below are written once as an always-inlined body over m x rows;
 * BY_ROWS makes the function the ISA table points to, which calls the body with m a
 * constant, so each row's accumulators stay in registers. */
#define BY_ROWS(attr, name)                                                                    \
    attr static void name(float *out, const void *w, const float *x, int64_t ldx, int m,       \
                          int64_t k)                                                           \
    {                                                                                          \
        switch (m) {                                                                           \
        case 1: name##_rows(out, w, x, ldx, 1, k); break;                                      \
        case 2: name##_rows(out, w, x, ldx, 2, k); break;                                      \
        case 3: name##_rows(out, w, x, ldx, 3, k); break;                                      \
        default: name##_rows(out, w, x, ldx, GEMV_ROWS, k); break;                             \
        }                                                                                      \
    }
#define INLINE_ROWS static inline __attribute__((always_inline))

/* Dots of 32 decoded weights wv[4] with every x row at column j, in two accumulator
 * chains a row (a single chain would wait on each multiply-add's latency). */
#define AVX2_ACCUMULATE(acc, wv, x, ldx, m, j)                                                 \
    _Pragma("GCC unroll 4") for (int r = 0; r < (m); r++) {                                    \
        const float *xr = (x) + r * (ldx) + (j);                                               \
        acc[r][0] = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(xr), acc[r][0]);                    \
        acc[r][1] = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(xr + 8), acc[r][1]);                \
        acc[r][0] = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(xr + 16), acc[r][0]);               \
        acc[r][1] = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(xr + 24), acc[r][1]);               \
    }

#define AVX2_DOT_BLOCKS(name, block_t, load)                                                   \
    AVX2 INLINE_ROWS void name##_rows(float *out, const block_t *b, const float *x,           \
                                      int64_t ldx, int m, int64_t k)                           \
    {                                                                                          \
        __m256 acc[GEMV_ROWS][2];                                                              \
        for (int r = 0; r < m; r++)                                                            \
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();                                       \
        for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {                                       \
            __m256 wv[4];                                                                      \
            load(wv, b + i);                                                                   \
            AVX2_ACCUMULATE(acc, wv, x, ldx, m, i * SETOK_QBLOCK)                              \
        }                                                                                      \
        for (int r = 0; r < m; r++)                                                            \
            out[r] = hsum8(_mm256_add_ps(acc[r][0], acc[r][1]));                               \
    }                                                                                          \
    BY_ROWS(AVX2, name)

AVX2_DOT_BLOCKS(dot_q8_avx2, setok_block_q8, load32_q8)
AVX2_DOT_BLOCKS(dot_q4_avx2, setok_block_q4, load32_q4)

/* 16-bit weights: 32 at a time, then the tail through the C decoder. */
#define AVX2_DOT16(name, load, decode, dt)                                                     \
    AVX2 INLINE_ROWS void name##_rows(float *out, const uint16_t *p, const float *x,          \
                                      int64_t ldx, int m, int64_t k)                           \
    {                                                                                          \
        __m256 acc[GEMV_ROWS][2];                                                              \
        for (int r = 0; r < m; r++)                                                            \
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();                                       \
        int64_t j = 0;                                                                         \
        for (; j + 32 <= k; j += 32) {                                                         \
            __m256 wv[4] = {load(p + j), load(p + j + 8), load(p + j + 16), load(p + j + 24)}; \
            AVX2_ACCUMULATE(acc, wv, x, ldx, m, j)                                             \
        }                                                                                      \
        float tail[GEMV_ROWS] = {0};                                                           \
        if (j < k)                                                                             \
            dot_by_decode(decode, dt, tail, p + j, x + j, ldx, m, k - j);                      \
        for (int r = 0; r < m; r++)                                                            \
            out[r] = hsum8(_mm256_add_ps(acc[r][0], acc[r][1])) + tail[r];                     \
    }                                                                                          \
    BY_ROWS(AVX2, name)

AVX2_DOT16(dot_f16_avx2, load8_f16, decode_f16_c, SETOK_F16)
AVX2_DOT16(dot_bf16_avx2, load8_bf16, decode_bf16_c, SETOK_BF16)

// ----------------------------------------------------------------------------
// AVX-512 (F, BW, VL) + F16C: 16 lanes

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c,fma")))

AVX512 static inline __m512 load16_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

AVX512 static inline __m512 load16_bf16(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

AVX512 static inline void load32_q8_512(__m512 out[2], const setok_block_q8 *b)
{
    __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
    for (int i = 0; i < 2; i++) {
        __m128i q = _mm_loadu_si128((const __m128i *)(b->q + 16 * i));
        out[i] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
    }
}

AVX512 static inline void load32_q4_512(__m512 out[2], const setok_block_q4 *b)
{
    __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d)), mn = _mm512_set1_ps(_cvtsh_ss(b->m));
    __m128i q = _mm_loadu_si128((const __m128i *)b->q);
    __m128i lo = _mm_and_si128(q, _mm_set1_epi8(15));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(15));
    out[0] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), mn);
    out[1] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), mn);
}

AVX512 static void decode_f16_512(float *out, const void *w, int64_t k)
{
    const uint16_t *p = w;
    int64_t j = 0;
    for (; j + 16 <= k; j += 16)
        _mm512_storeu_ps(out + j, load16_f16(p + j));
    decode_c(out + j, p + j, SETOK_F16, k - j);
}

AVX512 static void decode_bf16_512(float *out, const void *w, int64_t k)
{
    const uint16_t *p = w;
    int64_t j = 0;
    for (; j + 16 <= k; j += 16)
        _mm512_storeu_ps(out + j, load16_bf16(p + j));
    decode_c(out + j, p + j, SETOK_BF16, k - j);
}

AVX512 static void decode_q8_512(float *out, const void *w, int64_t k)
{
    const setok_block_q8 *b = w;
    for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {
        __m512 v[2];
        load32_q8_512(v, b + i);
        _mm512_storeu_ps(out + i * SETOK_QBLOCK, v[0]);
        _mm512_storeu_ps(out + i * SETOK_QBLOCK + 16, v[1]);
    }
}

AVX512 static void decode_q4_512(float *out, const void *w, int64_t k)
{
    const setok_block_q4 *b = w;
    for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {
        __m512 v[2];
        load32_q4_512(v, b + i);
        _mm512_storeu_ps(out + i * SETOK_QBLOCK, v[0]);
        _mm512_storeu_ps(out + i * SETOK_QBLOCK + 16, v[1]);
    }
}

/* as AVX2_ACCUMULATE, for wv[2] of 16 lanes */
#define AVX512_ACCUMULATE(acc, wv, x, ldx, m, j)                                               \
    _Pragma("GCC unroll 4") for (int r = 0; r < (m); r++) {                                    \
        const float *xr = (x) + r * (ldx) + (j);                                               \
        acc[r][0] = _mm512_fmadd_ps(wv[0], _mm512_loadu_ps(xr), acc[r][0]);                    \
        acc[r][1] = _mm512_fmadd_ps(wv[1], _mm512_loadu_ps(xr + 16), acc[r][1]);               \
    }

#define AVX512_DOT_BLOCKS(name, block_t, load)                                                 \
    AVX512 INLINE_ROWS void name##_rows(float *out, const block_t *b, const float *x,         \
                                        int64_t ldx, int m, int64_t k)                         \
    {                                                                                          \
        __m512 acc[GEMV_ROWS][2];                                                              \
        for (int r = 0; r < m; r++)                                                            \
            acc[r][0] = acc[r][1] = _mm512_setzero_ps();                                       \
        for (int64_t i = 0; i < k / SETOK_QBLOCK; i++) {                                       \
            __m512 wv[2];                                                                      \
            load(wv, b + i);                                                                   \
            AVX512_ACCUMULATE(acc, wv, x, ldx, m, i * SETOK_QBLOCK)                            \
        }                                                                                      \
        for (int r = 0; r < m; r++)                                                            \
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));               \
    }                                                                                          \
    BY_ROWS(AVX512, name)

AVX512_DOT_BLOCKS(dot_q8_512, setok_block_q8, load32_q8_512)
AVX512_DOT_BLOCKS(dot_q4_512, setok_block_q4, load32_q4_512)

#define AVX512_DOT16(name, load, decode, dt)                                                   \
    AVX512 INLINE_ROWS void name##_rows(float *out, const uint16_t *p, const float *x,        \
                                        int64_t ldx, int m, int64_t k)                         \
    {                                                                                          \
        __m512 acc[GEMV_ROWS][2];                                                              \
        for (int r = 0; r < m; r++)                                                            \
            acc[r][0] = acc[r][1] = _mm512_setzero_ps();                                       \
        int64_t j = 0;                                                                         \
        for (; j + 32 <= k; j += 32) {                                                         \
            __m512 wv[2] = {load(p + j), load(p + j + 16)};                                    \
            AVX512_ACCUMULATE(acc, wv, x, ldx, m, j)                                           \
        }                                                                                      \
        float tail[GEMV_ROWS] = {0};                                                           \
        if (j < k)                                                                             \
            dot_by_decode(decode, dt, tail, p + j, x + j, ldx, m, k - j);                      \
        for (int r = 0; r < m; r++)                                                            \
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) + tail[r];     \
    }                                                                                          \
    BY_ROWS(AVX512, name)

AVX512_DOT16(dot_f16_512, load16_f16, decode_f16_c, SETOK_F16)
AVX512_DOT16(dot_bf16_512, load16_bf16, decode_bf16_c, SETOK_BF16)

// ----------------------------------------------------------------------------
// choosing the ISA once

static isa_fns isa;

static void choose_isa(void)
{
    static const decode_fn c_decode[] = {[SETOK_F16] = decode_f16_c, [SETOK_BF16] = decode_bf16_c,
                                         [SETOK_Q8] = decode_q8_c, [SETOK_Q4] = decode_q4_c};
    static const dot_fn c_dot[] = {[SETOK_F16] = dot_f16_c, [SETOK_BF16] = dot_bf16_c,
                                   [SETOK_Q8] = dot_q8_c, [SETOK_Q4] = dot_q4_c};
    setok_cpu_isa level = setok_cpu_isa_level();
    bool avx512 = level >= SETOK_ISA_AVX512, avx2 = level >= SETOK_ISA_AVX2;
    for (int d = 0; d < SETOK_DTYPE_COUNT; d++) {
        isa.decode[d] = d < (int)(sizeof c_decode / sizeof *c_decode) ? c_decode[d] : NULL;
        isa.dot[d] = d < (int)(sizeof c_dot / sizeof *c_dot) ? c_dot[d] : NULL;
    }
    if (avx512) {
        isa.decode[SETOK_F16] = decode_f16_512;
        isa.decode[SETOK_BF16] = decode_bf16_512;
        isa.decode[SETOK_Q8] = decode_q8_512;
        isa.decode[SETOK_Q4] = decode_q4_512;
        isa.dot[SETOK_F16] = dot_f16_512;
        isa.dot[SETOK_BF16] = dot_bf16_512;
        isa.dot[SETOK_Q8] = dot_q8_512;
        isa.dot[SETOK_Q4] = dot_q4_512;
    } else if (avx2) {
        isa.decode[SETOK_F16] = decode_f16_avx2;
        isa.decode[SETOK_BF16] = decode_bf16_avx2;
        isa.decode[SETOK_Q8] = decode_q8_avx2;
        isa.decode[SETOK_Q4] = decode_q4_avx2;
        isa.dot[SETOK_F16] = dot_f16_avx2;
        isa.dot[SETOK_BF16] = dot_bf16_avx2;
        isa.dot[SETOK_Q8] = dot_q8_avx2;
        isa.dot[SETOK_Q4] = dot_q4_avx2;
    }
    isa.bf16_gemm = level >= SETOK_ISA_AVX512_BF16;
}

static const isa_fns *fns(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_isa);
    return &isa;
}

setok_cpu_decode_fn setok_cpu_decoder(setok_dtype dtype)
{
    return (unsigned)dtype < SETOK_DTYPE_COUNT ? fns()->decode[dtype] : NULL;
}

setok_cpu_dot_fn setok_cpu_dotter(setok_dtype dtype)
{
    return (unsigned)dtype < SETOK_DTYPE_COUNT ? fns()->dot[dtype] : NULL;
}

// ----------------------------------------------------------------------------
// GEMV: few x rows, each weight row read once

typedef struct gemv_job {
    const isa_fns *f;
    setok_dtype dt;
    const char *w;          /* [N, K] */
    size_t row_bytes;
    const float *x;         /* [M, K] */
    const float *bias;      /* [N] or NULL */
    float *y;               /* [M, N] */
    int64_t k, n;
    int m;
    float alpha;
} gemv_job;

static void gemv_rows(void *ctx, int64_t begin, int64_t end)
{
    const gemv_job *g = ctx;
    dot_fn dot = g->f->dot[g->dt];
    for (int64_t j = begin; j < end; j++) {
        float out[GEMV_ROWS];
        dot(out, g->w + (size_t)j * g->row_bytes, g->x, g->k, g->m, g->k);
        float b = g->bias ? g->bias[j] : 0.0f;
        for (int r = 0; r < g->m; r++)
            g->y[r * g->n + j] = g->alpha * out[r] + b;
    }
}

// ----------------------------------------------------------------------------
// panels: decode PANEL weight rows, then sgemm

typedef struct decode_job {
    const isa_fns *f;
    setok_dtype dt;
    const char *w;
    size_t row_bytes;
    float *panel;           /* [rows, K] */
    int64_t k;
} decode_job;

static void decode_rows(void *ctx, int64_t begin, int64_t end)
{
    const decode_job *j = ctx;
    for (int64_t r = begin; r < end; r++)
        j->f->decode[j->dt](j->panel + r * j->k, j->w + (size_t)r * j->row_bytes, j->k);
}

static setok_status gemm_panels(setok_backend *be, const isa_fns *f, setok_dtype dt,
                                const char *w, const float *x, const float *bias, float *y,
                                int64_t m, int64_t n, int64_t k, float alpha, setok_error *err)
{
    float *panel = malloc((size_t)PANEL * (size_t)k * sizeof *panel);
    if (!panel)
        return setok_fail(err, SETOK_ERR_NOMEM, "matmul: out of memory for a %d x %lld panel",
                          PANEL, (long long)k);
    size_t row_bytes = setok_dtype_bytes(dt, k);
    for (int64_t n0 = 0; n0 < n; n0 += PANEL) {
        int64_t rows = n - n0 < PANEL ? n - n0 : PANEL;
        decode_job dj = {f, dt, w + (size_t)n0 * row_bytes, row_bytes, panel, k};
        setok_cpu_parallel_for(be, rows, 8, decode_rows, &dj);
        setok_cpu_sgemm(be, false, true, m, rows, k, alpha, x, k, panel, k, 0.0f, y + n0, n);
    }
    free(panel);
    if (bias)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                y[i * n + j] += bias[j];
    return SETOK_OK;
}

setok_status setok_cpu_matmul_weights(setok_backend *be, const setok_op_desc *d, setok_error *err)
{
    // x [B?, M, K] f32, w [N, K] (f16, bf16, q8, q4), bias [N] f32? -> y [B?, M, N] f32
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    const isa_fns *f = fns();
    int64_t n = w->shape[0], k = w->shape[1], m = setok_tensor_numel(x) / k;
    if (!f->dot[w->dtype] || x->dtype != SETOK_F32 || (bias && bias->dtype != SETOK_F32))
        return setok_ref_ops[d->op](be, d, err);
    if (m == 0 || n == 0)
        return SETOK_OK;
    float alpha = d->p.matmul.alpha;
    const float *b = bias ? bias->data : NULL;
    if (setok_cpu_gemv_int8_usable(w->dtype, m))
        return setok_cpu_gemv_int8(be, x->data, m, k, w->data, w->dtype, n, alpha, b,
                                   d->dst->data, err);
    if (m <= GEMV_ROWS) {
        gemv_job g = {f, w->dtype, w->data, setok_dtype_bytes(w->dtype, k), x->data, b,
                      d->dst->data, k, n, (int)m, alpha};
        setok_cpu_parallel_for(be, n, GEMV_CHUNK, gemv_rows, &g);
        return SETOK_OK;
    }
    /* f16 weights keep their 11-bit significands: bf16 products would drop three bits,
     * so they go through f32 panels */
    if (f->bf16_gemm && w->dtype != SETOK_F16 && setok_cpu_gemm_bf16_usable(k))
        return setok_cpu_gemm_bf16(be, x->data, m, k, w->data, w->dtype, f->decode[w->dtype], n,
                                   alpha, b, d->dst->data, err);
    return gemm_panels(be, f, w->dtype, w->data, x->data, b, d->dst->data, m, n, k, alpha, err);
}
