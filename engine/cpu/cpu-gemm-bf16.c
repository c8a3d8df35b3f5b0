/* cpu-gemm-bf16.c — y [M, N] = alpha * x [M, K] @ W [N, K]^T (+ bias) with AVX512_BF16
 * dot products (vdpbf16ps), for weights in any dtype a row decoder can turn into f32.
 *
 * vdpbf16ps multiplies 16 lanes of bf16 pairs and adds each pair's two products
 * to one f32 lane. Here a lane is a row of x: x is rounded to bf16 once per block
 * and packed so that, for each pair of K columns, 32 consecutive rows' pairs lie
 * side by side (two zmm loads); a weight row's pair for the same K columns is
 * broadcast to every lane. The micro-kernel keeps 32 rows x RW weight rows of y
 * in 2 x RW zmm accumulators; bf16 weights are read in place, others decoded to
 * bf16 once per K block. Blocks: KC values of K (the packed x block, MC x KC,
 * stays in L2 while every weight panel of the block passes), MC rows of x;
 * weight panels are spread over the thread pool. y is accumulated over the K
 * blocks with gathers and scatters (a tile's 32 x RW values once per K block).
 * Rounding x and W to bf16 costs about three significant digits, as a bf16
 * PyTorch run does; the sums are f32. */
#include "setok-config.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

enum {
    LANES = 32,   /* rows of x per tile: two zmm */
    RW = 12,      /* weight rows per tile: 24 accumulators */
    KC = 1024,    /* K values per block (even) */
    MC = 128,     /* rows of x per block (a multiple of LANES) */
};

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,f16c,fma")))

typedef struct gemm {
    const float *x;
    int64_t m, k, n;
    const char *w;             /* [N] rows of row_bytes */
    size_t row_bytes;
    setok_dtype wdt;
    setok_cpu_decode_fn decode; /* NULL: w is bf16, read in place */
    float alpha;
    const float *bias;
    float *y;                   /* [M, N] */
    /* the current block */
    int64_t k0, kc, m0, mc;
    uint32_t *a;                /* packed x block: [mc / LANES][kc / 2][LANES] */
    uint16_t *wb;               /* decoded weights of the K block: [N][KC] (decode only) */
    bool failed;
} gemm;

// x [m0 .. m0+mc) x [k0 .. k0+kc) -> a, rows past M zero
BF16 static void pack_rows(void *ctx, int64_t begin, int64_t end)
{
    gemm *g = ctx;
    int64_t pairs = g->kc / 2;
    for (int64_t r = begin; r < end; r++) {
        int64_t row = g->m0 + r;
        uint32_t *dst = g->a + (r / LANES) * pairs * LANES + r % LANES;
        if (row >= g->m) {
            for (int64_t p = 0; p < pairs; p++)
                dst[p * LANES] = 0;
            continue;
        }
        const float *src = g->x + row * g->k + g->k0;
        int64_t p = 0;
        for (; p + 16 <= pairs; p += 16) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 2 * p + 16),
                                             _mm512_loadu_ps(src + 2 * p));
            uint32_t words[16];
            _mm512_storeu_si512((void *)words, (__m512i)v);
            for (int q = 0; q < 16; q++)
                dst[(p + q) * LANES] = words[q];
        }
        for (; p < pairs; p++)
            dst[p * LANES] = (uint32_t)setok_f32_to_bf16(src[2 * p]) |
                             (uint32_t)setok_f32_to_bf16(src[2 * p + 1]) << 16;
    }
}

// weight rows [begin, end) of the K block -> g->wb as bf16
BF16 static void decode_rows(void *ctx, int64_t begin, int64_t end)
{
    gemm *g = ctx;
    float *row = malloc((size_t)KC * sizeof *row);
    if (!row) {
        g->failed = true;
        return;
    }
    size_t offset = setok_dtype_bytes(g->wdt, g->k0); /* K blocks start on a 32-value block */
    for (int64_t j = begin; j < end; j++) {
        g->decode(row, g->w + (size_t)j * g->row_bytes + offset, g->kc);
        uint16_t *dst = g->wb + j * KC;
        const float *src = row;
        int64_t i = 0;
        for (; i + 32 <= g->kc; i += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16),
                                             _mm512_loadu_ps(src + i));
            _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
        }
        for (; i < g->kc; i++)
            dst[i] = setok_f32_to_bf16(src[i]);
    }
    free(row);
}

/* y[row0 .. +LANES, col0 .. +cols] += the tile's products over the K block: packed x
 * tile a, weight rows wr[cols] (bf16, the K block's start). */
BF16 static void kernel(const gemm *g, const uint32_t *a, const uint16_t *const *wr, int64_t row0,
                        int cols, bool first)
{
    /* the loops over c are unrolled so that the 24 accumulators stay in registers */
    __m512 acc[RW][2];
#pragma GCC unroll 12
    for (int c = 0; c < RW; c++)
        acc[c][0] = acc[c][1] = _mm512_setzero_ps();
    int64_t pairs = g->kc / 2;
    const uint32_t *w32[RW];
    for (int c = 0; c < RW; c++)
        w32[c] = (const uint32_t *)(const void *)wr[c < cols ? c : 0];
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh a0 = (__m512bh)_mm512_loadu_si512((const void *)(a + p * LANES));
        __m512bh a1 = (__m512bh)_mm512_loadu_si512((const void *)(a + p * LANES + 16));
#pragma GCC unroll 12
        for (int c = 0; c < RW; c++) {
            uint32_t word;
            memcpy(&word, w32[c] + p, sizeof word);
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)word);
            acc[c][0] = _mm512_dpbf16_ps(acc[c][0], a0, b);
            acc[c][1] = _mm512_dpbf16_ps(acc[c][1], a1, b);
        }
    }
    /* lane i of acc[c][h] is y[row0 + 16h + i][col c] */
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                       13, 14, 15),
                                     _mm512_set1_epi32((int)g->n));
    bool last = g->k0 + g->kc >= g->k;
    __m512 alpha = _mm512_set1_ps(g->alpha);
    for (int h = 0; h < 2; h++) {
        int64_t rows = g->m - (row0 + 16 * h);
        if (rows <= 0)
            break;
        __mmask16 mask = rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
        for (int c = 0; c < cols; c++) {
            float *base = g->y + (row0 + 16 * h) * g->n + c;
            __m512 v = acc[c][h];
            if (!first)
                v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx,
                                                              base, 4));
            if (last) {
                v = _mm512_mul_ps(v, alpha);
                if (g->bias)
                    v = _mm512_add_ps(v, _mm512_set1_ps(g->bias[c]));
            }
            _mm512_mask_i32scatter_ps(base, mask, idx, v, 4);
        }
    }
}

// weight panels [begin, end) (RW rows each) against every tile of the x block
static void panels(void *ctx, int64_t begin, int64_t end)
{
    gemm *g = ctx;
    bool first = g->k0 == 0;
    int64_t pairs = g->kc / 2, tiles = (g->mc + LANES - 1) / LANES;
    for (int64_t panel = begin; panel < end; panel++) {
        int64_t j0 = panel * RW;
        int cols = (int)(g->n - j0 < RW ? g->n - j0 : RW);
        const uint16_t *wr[RW];
        for (int c = 0; c < cols; c++)
            wr[c] = g->decode ? g->wb + (j0 + c) * KC
                              : (const uint16_t *)(const void *)(g->w +
                                                                 (size_t)(j0 + c) * g->row_bytes) +
                                    g->k0;
        for (int64_t t = 0; t < tiles; t++) {
            int64_t row0 = g->m0 + t * LANES;
            if (row0 >= g->m)
                break;
            const uint32_t *a = g->a + t * pairs * LANES;
            /* y's tile, offset to the panel's columns */
            gemm view = *g;
            view.y = g->y + j0;
            view.bias = g->bias ? g->bias + j0 : NULL;
            kernel(&view, a, wr, row0, cols, first);
        }
    }
}

bool setok_cpu_gemm_bf16_usable(int64_t k)
{
    return k % 2 == 0;
}

setok_status setok_cpu_gemm_bf16(setok_backend *be, const float *x, int64_t m, int64_t k,
                                 const void *w, setok_dtype wdt, setok_cpu_decode_fn decode,
                                 int64_t n, float alpha, const float *bias, float *y,
                                 setok_error *err)
{
    gemm g = {.x = x, .m = m, .k = k, .n = n, .w = w, .row_bytes = setok_dtype_bytes(wdt, k),
              .wdt = wdt, .decode = wdt == SETOK_BF16 ? NULL : decode, .alpha = alpha,
              .bias = bias, .y = y};
    decode = g.decode;
    size_t a_bytes = (size_t)MC * KC / 2 * sizeof *g.a;
    g.a = aligned_alloc(64, a_bytes);
    g.wb = decode ? aligned_alloc(64, ((size_t)n * KC * sizeof *g.wb + 63) & ~(size_t)63) : NULL;
    setok_status st = g.a && (g.wb || !decode)
                          ? SETOK_OK
                          : setok_fail(err, SETOK_ERR_NOMEM, "matmul: out of memory for bf16 "
                                       "blocks of a %lld x %lld x %lld product",
                                       (long long)m, (long long)k, (long long)n);
    for (int64_t k0 = 0; st == SETOK_OK && k0 < k; k0 += KC) {
        g.k0 = k0;
        g.kc = k - k0 < KC ? k - k0 : KC;
        if (decode)
            setok_cpu_parallel_for(be, n, 4, decode_rows, &g);
        for (int64_t m0 = 0; m0 < m && !g.failed; m0 += MC) {
            g.m0 = m0;
            g.mc = m - m0 < MC ? m - m0 : MC;
            setok_cpu_parallel_for(be, (g.mc + LANES - 1) / LANES * LANES, LANES, pack_rows, &g);
            setok_cpu_parallel_for(be, (n + RW - 1) / RW, 1, panels, &g);
        }
        if (g.failed)
            st = setok_fail(err, SETOK_ERR_NOMEM, "matmul: out of memory decoding weights");
    }
    free(g.a);
    free(g.wb);
    return st;
}
