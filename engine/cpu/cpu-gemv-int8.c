/* cpu-gemv-int8.c — y [M, N] = alpha * x [M, K] @ W [N, K]^T (+ bias) for q8 / q4
 * weights and a few rows of x (decode), with integer dot products.
 *
 * x is quantized once per call, like the weights, to int8 per block of 32 values
 * (scale amax / 127, so |x - x'| <= step / 2 per value), and each weight row is
 * then read once for every row of x. Products of unsigned weight bytes by signed
 * x bytes are summed in fours into int32 lanes (vpdpbusd with AVX512-VNNI: 64
 * bytes, two blocks, an instruction; vpmaddubsw + vpmaddwd with AVX2: 32); each
 * lane's sum is scaled by its block's two scales and added in f32. Unsigned
 * weight bytes:
 *   q8: |w|, with x's bytes given w's sign (vpsignb);
 *   q4: the nibbles as they are (0..15); the block's minimum adds
 *       minimum * scale_x * sum(x'), computed once with x.
 * Costs the weight format's reading, not its decoding: the bound on a decode
 * step is the memory, as with bf16. */
#include "setok-config.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"
#include "setok/quant.h"

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))

enum { WEIGHT_ROWS_PER_TASK = 16 };

/* Two blocks of one x row, in the order the weights' bytes take in a zmm:
 *   q8: block 0's 32 values, then block 1's;
 *   q4: block 0 values 0-15, block 1 values 0-15, block 0 16-31, block 1 16-31
 *       (the low and the high nibbles of the two blocks).
 * Lane i of the int32 sums covers bytes 4i .. 4i+3. */
typedef struct xchunk {
    int8_t q[64];
    float d[16];    /* each lane's block scale */
    float msum[16]; /* q4: the lane's block's scale * sum of its values, / 8 */
} xchunk;

static int lane_block(setok_dtype dt, int lane)
{
    return dt == SETOK_Q8 ? lane / 8 : (lane / 4) % 2;
}

/* byte position in the chunk of value j of block b */
static int chunk_pos(setok_dtype dt, int b, int j)
{
    if (dt == SETOK_Q8)
        return 32 * b + j;
    return j < 16 ? 16 * b + j : 32 + 16 * b + (j - 16);
}

/* x row [k] -> chunks [(k / 32 + 1) / 2] */
static void quantize_row(xchunk *out, setok_dtype dt, const float *x, int64_t k)
{
    int64_t blocks = k / SETOK_QBLOCK, chunks = (blocks + 1) / 2;
    for (int64_t c = 0; c < chunks; c++) {
        xchunk *ch = &out[c];
        memset(ch, 0, sizeof *ch);
        float d[2] = {0, 0};
        int32_t sum[2] = {0, 0};
        for (int b = 0; b < 2 && 2 * c + b < blocks; b++) {
            const float *v = x + (2 * c + b) * SETOK_QBLOCK;
            float amax = 0.0f;
            for (int j = 0; j < SETOK_QBLOCK; j++)
                amax = fmaxf(amax, fabsf(v[j]));
            d[b] = amax / 127.0f;
            float id = d[b] > 0.0f ? 1.0f / d[b] : 0.0f;
            for (int j = 0; j < SETOK_QBLOCK; j++) {
                int q = (int)lrintf(v[j] * id);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                ch->q[chunk_pos(dt, b, j)] = (int8_t)q;
                sum[b] += q;
            }
        }
        for (int lane = 0; lane < 16; lane++) {
            int b = lane_block(dt, lane);
            ch->d[lane] = d[b];
            if (dt == SETOK_Q4)
                ch->msum[lane] = d[b] * (float)sum[b] / 8.0f;
        }
    }
}

typedef struct job {
    setok_dtype dt;
    const char *w;
    size_t row_bytes;
    const xchunk *x; /* [m][chunks] */
    int64_t blocks, chunks, n;
    int m;
    float alpha;
    const float *bias;
    float *y;
    void (*dot)(const struct job *g, const void *w, float *out); /* m values of one weight row */
} job;

__attribute__((target("f16c"))) static inline float half(uint16_t h)
{
    return _cvtsh_ss(h);
}

__attribute__((target("avx2"))) static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* One chunk of q4, two blocks: their nibbles as bytes in the chunk's order (lo: values
 * 0-15 of both blocks, hi: 16-31) and [d0 m0 d1 m1], the (d, m) pairs converted from f16
 * together. A missing second block has zero nibbles and scales. Shared by both ISAs. */
__attribute__((target("avx2,f16c"))) static inline __m128 unpack_q4(const setok_block_q4 *b0,
                                                                    bool two, __m256i *lo,
                                                                    __m256i *hi)
{
    const __m256i nibble = _mm256_set1_epi8(15);
    __m128i q0 = _mm_loadu_si128((const __m128i *)b0->q);
    __m128i q1 = two ? _mm_loadu_si128((const __m128i *)b0[1].q) : _mm_setzero_si128();
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    *lo = _mm256_and_si256(both, nibble);
    *hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
    uint32_t dm0, dm1 = 0;
    memcpy(&dm0, &b0->d, 4);
    if (two)
        memcpy(&dm1, &b0[1].d, 4);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((int64_t)((uint64_t)dm1 << 32 | dm0)));
}

/* the chunk in one zmm, and each lane's block scale and minimum (lane i: block (i / 4) % 2) */
typedef struct q4chunk {
    __m512i q;
    __m512 d, m;
} q4chunk;

VNNI static inline q4chunk load_q4(const setok_block_q4 *b0, bool two)
{
    __m256i lo, hi;
    __m512 s = _mm512_castps128_ps512(unpack_q4(b0, two, &lo, &hi));
    const __m512i pd = _mm512_set_epi32(2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i pm = _mm512_set_epi32(3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1);
    return (q4chunk){.q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                     .d = _mm512_permutexvar_ps(pd, s),
                     .m = _mm512_permutexvar_ps(pm, s)};
}

/* m rows of x, m a constant where it is inlined: the accumulators stay in registers */
VNNI static inline __attribute__((always_inline)) void dot_q4_rows(const job *g,
                                                                   const setok_block_q4 *b,
                                                                   float *out, int m)
{
    /* the minimum's term in accumulators of its own: two short dependency chains a chunk
     * instead of one of two fused multiply-adds */
    __m512 acc[4], accm[4];
    for (int r = 0; r < m; r++)
        acc[r] = accm[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < g->chunks; c++) {
        q4chunk w = load_q4(b + 2 * c, 2 * c + 1 < g->blocks);
        for (int r = 0; r < m; r++) {
            const xchunk *x = g->x + r * g->chunks + c;
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.q, _mm512_loadu_si512(x->q));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, _mm512_loadu_ps(x->d)),
                                     acc[r]);
            accm[r] = _mm512_fmadd_ps(w.m, _mm512_loadu_ps(x->msum), accm[r]);
        }
    }
    for (int r = 0; r < m; r++)
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], accm[r]));
}

// ----------------------------------------------------------------------------
// AVX2 (no VNNI): vpmaddubsw multiplies unsigned by signed bytes into pairs of int16,
// vpmaddwd sums the pairs into int32 lanes, each over four bytes as vpdpbusd does; a
// 256-bit half of a chunk holds lanes 0-7 (bytes 0-31) or 8-15 (bytes 32-63).

#define AVX2I __attribute__((target("avx2,fma,f16c")))

AVX2I static inline __m256i sum_bytes(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

AVX2I static inline __attribute__((always_inline)) void dot_q8_avx2_rows(const job *g,
                                                                         const setok_block_q8 *b,
                                                                         float *out, int m)
{
    /* signed weights: |w| times x with w's sign, so no pair of products passes int16 */
    __m256 acc[4][2];
    for (int r = 0; r < m; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < g->chunks; c++) {
        const setok_block_q8 *b0 = b + 2 * c;
        bool two = 2 * c + 1 < g->blocks; /* a missing second block meets x's zeros */
        __m256i w0 = _mm256_loadu_si256((const __m256i *)b0->q);
        __m256i w1 = two ? _mm256_loadu_si256((const __m256i *)b0[1].q) : _mm256_setzero_si256();
        __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
        __m256 d0 = _mm256_set1_ps(half(b0->d)), d1 = _mm256_set1_ps(two ? half(b0[1].d) : 0.0f);
        for (int r = 0; r < m; r++) {
            const xchunk *x = g->x + r * g->chunks + c;
            __m256i x0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x->q), w0);
            __m256i x1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(x->q + 32)), w1);
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_bytes(a0, x0)),
                                        _mm256_mul_ps(d0, _mm256_loadu_ps(x->d)), acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_bytes(a1, x1)),
                                        _mm256_mul_ps(d1, _mm256_loadu_ps(x->d + 8)), acc[r][1]);
        }
    }
    for (int r = 0; r < m; r++)
        out[r] = hsum256(_mm256_add_ps(acc[r][0], acc[r][1]));
}

AVX2I static inline __attribute__((always_inline)) void dot_q4_avx2_rows(const job *g,
                                                                         const setok_block_q4 *b,
                                                                         float *out, int m)
{
    __m256 acc[4], accm[4];
    for (int r = 0; r < m; r++)
        acc[r] = accm[r] = _mm256_setzero_ps();
    for (int64_t c = 0; c < g->chunks; c++) {
        __m256i lo, hi;
        /* lanes 0-3 of a half belong to block 0, 4-7 to block 1 */
        __m256 s = _mm256_castps128_ps256(unpack_q4(b + 2 * c, 2 * c + 1 < g->blocks, &lo, &hi));
        __m256 dw = _mm256_permutevar8x32_ps(s, _mm256_set_epi32(2, 2, 2, 2, 0, 0, 0, 0));
        __m256 mw = _mm256_permutevar8x32_ps(s, _mm256_set_epi32(3, 3, 3, 3, 1, 1, 1, 1));
        for (int r = 0; r < m; r++) {
            const xchunk *x = g->x + r * g->chunks + c;
            __m256i s0 = sum_bytes(lo, _mm256_loadu_si256((const __m256i *)x->q));
            __m256i s1 = sum_bytes(hi, _mm256_loadu_si256((const __m256i *)(x->q + 32)));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(dw, _mm256_loadu_ps(x->d)),
                                     acc[r]);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1),
                                     _mm256_mul_ps(dw, _mm256_loadu_ps(x->d + 8)), acc[r]);
            accm[r] = _mm256_fmadd_ps(
                mw, _mm256_add_ps(_mm256_loadu_ps(x->msum), _mm256_loadu_ps(x->msum + 8)), accm[r]);
        }
    }
    for (int r = 0; r < m; r++)
        out[r] = hsum256(_mm256_add_ps(acc[r], accm[r]));
}

#define BY_ROWS(attr, name, block_t)                                                            \
    attr static void name(const job *g, const void *w, float *out)                             \
    {                                                                                          \
        const block_t *b = w;                                                                  \
        switch (g->m) {                                                                        \
        case 1: name##_rows(g, b, out, 1); break;                                              \
        case 2: name##_rows(g, b, out, 2); break;                                              \
        case 3: name##_rows(g, b, out, 3); break;                                              \
        default: name##_rows(g, b, out, 4); break;                                             \
        }                                                                                      \
    }

/* q8 takes the AVX2 kernel even where VNNI is there: on Zen 4 it is the faster one
 * (1x4096x4096 on one core: 0.59 ms against 0.66-0.81) */
BY_ROWS(VNNI, dot_q4, setok_block_q4)
BY_ROWS(AVX2I, dot_q8_avx2, setok_block_q8)
BY_ROWS(AVX2I, dot_q4_avx2, setok_block_q4)

static void rows(void *ctx, int64_t begin, int64_t end)
{
    const job *g = ctx;
    for (int64_t j = begin; j < end; j++) {
        float out[4];
        const void *w = g->w + (size_t)j * g->row_bytes;
        g->dot(g, w, out);
        float b = g->bias ? g->bias[j] : 0.0f;
        for (int r = 0; r < g->m; r++)
            g->y[r * g->n + j] = g->alpha * out[r] + b;
    }
}

bool setok_cpu_gemv_int8_usable(setok_dtype wdt, int64_t m)
{
    return (wdt == SETOK_Q8 || wdt == SETOK_Q4) && m >= 1 && m <= 4 &&
           setok_cpu_isa_level() >= SETOK_ISA_AVX2;
}

setok_status setok_cpu_gemv_int8(setok_backend *be, const float *x, int64_t m, int64_t k,
                                 const void *w, setok_dtype wdt, int64_t n, float alpha,
                                 const float *bias, float *y, setok_error *err)
{
    int64_t blocks = k / SETOK_QBLOCK, chunks = (blocks + 1) / 2;
    xchunk *xq = aligned_alloc(64, (size_t)(m * chunks) * sizeof *xq);
    if (!xq)
        return setok_fail(err, SETOK_ERR_NOMEM, "matmul: out of memory quantizing %lld x %lld",
                          (long long)m, (long long)k);
    for (int64_t r = 0; r < m; r++)
        quantize_row(xq + r * chunks, wdt, x + r * k, k);
    job g = {.dt = wdt, .w = w, .row_bytes = setok_dtype_bytes(wdt, k), .x = xq,
             .blocks = blocks, .chunks = chunks, .n = n, .m = (int)m, .alpha = alpha,
             .bias = bias, .y = y};
    g.dot = wdt == SETOK_Q8                                      ? dot_q8_avx2
            : setok_cpu_isa_level() >= SETOK_ISA_AVX512_VNNI ? dot_q4
                                                             : dot_q4_avx2;
    setok_cpu_parallel_for(be, n, WEIGHT_ROWS_PER_TASK, rows, &g);
    free(xq);
    return SETOK_OK;
}
