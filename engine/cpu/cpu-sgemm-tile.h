/* cpu-sgemm-tile.h — the packed, cache-blocked serial GEMM of cpu-sgemm.c for
 * one vector width. cpu-sgemm.c includes it once per instruction set, with
 *   SGEMM_VL       floats per vector (4: SSE2 / portable, 8: AVX2, 16: AVX-512)
 *   SGEMM_NAME(x)  the instance's name for x
 *   SGEMM_TARGET   the function attribute that enables the instruction set
 *   SGEMM_MADD(c, a, b)  c += a (a float) * b (a vector), fused where the set can
 * The register tile is MR rows by NR = 2 vectors; blocks of op(b) are KC x NC,
 * of op(a) MC x KC, packed into the thread's buffers. Every function is built
 * for the instance's set, so no code of another set runs in between (mixing
 * them costs more than the vectors save). Not a header of its own: no guard. */

#define SGEMM_NR (2 * SGEMM_VL)

typedef float SGEMM_NAME(vec) __attribute__((vector_size(SGEMM_VL * sizeof(float))));

// op(a) block [mc, kc] -> ap: panels of MR rows, each [kc][MR], zero-padded
static SGEMM_TARGET void SGEMM_NAME(pack_a)(float *ap, bool trans_a, const float *a, int64_t lda,
                                            int64_t mc, int64_t kc)
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

// y [mr, nr] (row stride ldy) = alpha * acc + (first ? beta * y : y)
static SGEMM_TARGET void SGEMM_NAME(store_tile)(float *y, int64_t ldy, int64_t mr, int64_t nr,
                                                const float *acc, float alpha, float beta,
                                                bool first)
{
    for (int64_t r = 0; r < mr; r++) {
        float *yr = y + r * ldy;
        const float *ar = acc + r * ACC_COLS;
        if (!first || beta == 1.0f) {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] += alpha * ar[j];
            }
        } else if (beta == 0.0f) {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] = alpha * ar[j];
            }
        } else {
            for (int64_t j = 0; j < nr; j++) {
                yr[j] = beta * yr[j] + alpha * ar[j];
            }
        }
    }
}

// op(b) block [kc, nc] -> bp: panels of SGEMM_NR columns, each [kc][SGEMM_NR], zero-padded
static SGEMM_TARGET void SGEMM_NAME(pack_b)(float *bp, bool trans_b, const float *b, int64_t ldb,
                                            int64_t kc, int64_t nc)
{
    for (int64_t jr = 0; jr < nc; jr += SGEMM_NR) {
        float *dst = bp + jr * kc;
        int64_t nr = nc - jr < SGEMM_NR ? nc - jr : SGEMM_NR;
        if (trans_b) {
            // rows of b are columns of op(b): walk each once, scattering into the panel
            for (int64_t j = 0; j < SGEMM_NR; j++) {
                const float *col = b + (jr + j) * ldb;
                for (int64_t p = 0; p < kc; p++)
                    dst[p * SGEMM_NR + j] = j < nr ? col[p] : 0.0f;
            }
            continue;
        }
        for (int64_t p = 0; p < kc; p++) {
            float *row = dst + p * SGEMM_NR;
            if (nr == SGEMM_NR) {
                memcpy(row, b + p * ldb + jr, SGEMM_NR * sizeof(float));
                continue;
            }
            for (int64_t j = 0; j < SGEMM_NR; j++)
                row[j] = j < nr ? b[p * ldb + jr + j] : 0.0f;
        }
    }
}

// ap [kc][MR], bp [kc][SGEMM_NR] -> the tile y [mr, nr] (row stride ldy): alpha * ap^T bp,
// plus beta * y on the first block of k (first) and plus y after it. 12 vector accumulators;
// a whole tile is stored from the registers, a partial one through acc.
static SGEMM_TARGET void SGEMM_NAME(micro_kernel)(float *y, int64_t ldy, int64_t mr, int64_t nr,
                                                  const float *restrict ap,
                                                  const float *restrict bp, int64_t kc,
                                                  float alpha, float beta, bool first)
{
    typedef SGEMM_NAME(vec) vec;
    const vec z = {0};
    vec c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
    vec c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
    for (int64_t p = 0; p < kc; p++, ap += MR, bp += SGEMM_NR) {
        vec b0, b1;
        memcpy(&b0, bp, sizeof b0);
        memcpy(&b1, bp + SGEMM_VL, sizeof b1);
        SGEMM_MADD(c00, ap[0], b0); SGEMM_MADD(c01, ap[0], b1);
        SGEMM_MADD(c10, ap[1], b0); SGEMM_MADD(c11, ap[1], b1);
        SGEMM_MADD(c20, ap[2], b0); SGEMM_MADD(c21, ap[2], b1);
        SGEMM_MADD(c30, ap[3], b0); SGEMM_MADD(c31, ap[3], b1);
        SGEMM_MADD(c40, ap[4], b0); SGEMM_MADD(c41, ap[4], b1);
        SGEMM_MADD(c50, ap[5], b0); SGEMM_MADD(c51, ap[5], b1);
    }
    vec *c[MR][2] = {{&c00, &c01}, {&c10, &c11}, {&c20, &c21},
                     {&c30, &c31}, {&c40, &c41}, {&c50, &c51}};
    if (mr == MR && nr == SGEMM_NR) {
        float keep = first ? beta : 1.0f;
        for (int r = 0; r < MR; r++) {
            for (int h = 0; h < 2; h++) {
                float *yp = y + r * ldy + h * SGEMM_VL;
                vec out = *c[r][h] * alpha, old;
                if (keep != 0.0f) {
                    memcpy(&old, yp, sizeof old);
                    out += old * keep;
                }
                memcpy(yp, &out, sizeof out);
            }
        }
        return;
    }
    float acc[MR * ACC_COLS];
    for (int r = 0; r < MR; r++) {
        memcpy(acc + r * ACC_COLS, c[r][0], sizeof(vec));
        memcpy(acc + r * ACC_COLS + SGEMM_VL, c[r][1], sizeof(vec));
    }
    SGEMM_NAME(store_tile)(y, ldy, mr, nr, acc, alpha, beta, first);
}

// y [m, n] = alpha * op(a) op(b) + beta * y (m, n, k > 0)
static SGEMM_TARGET void SGEMM_NAME(sgemm)(bool trans_a, bool trans_b, int64_t m, int64_t n,
                                           int64_t k, float alpha, const float *a, int64_t lda,
                                           const float *b, int64_t ldb, float beta, float *y,
                                           int64_t ldy)
{
    float *bp = pack_b_buffer, *ap = pack_a_buffer;
    for (int64_t jc = 0; jc < n; jc += NC) {
        int64_t nc = n - jc < NC ? n - jc : NC;
        for (int64_t pc = 0; pc < k; pc += KC) {
            int64_t kc = k - pc < KC ? k - pc : KC;
            const float *bblk = trans_b ? b + jc * ldb + pc : b + pc * ldb + jc;
            SGEMM_NAME(pack_b)(bp, trans_b, bblk, ldb, kc, nc);
            for (int64_t ic = 0; ic < m; ic += MC) {
                int64_t mc = m - ic < MC ? m - ic : MC;
                const float *ablk = trans_a ? a + pc * lda + ic : a + ic * lda + pc;
                SGEMM_NAME(pack_a)(ap, trans_a, ablk, lda, mc, kc);
                for (int64_t jr = 0; jr < nc; jr += SGEMM_NR) {
                    int64_t nr = nc - jr < SGEMM_NR ? nc - jr : SGEMM_NR;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int64_t mr = mc - ir < MR ? mc - ir : MR;
                        SGEMM_NAME(micro_kernel)(y + (ic + ir) * ldy + jc + jr, ldy, mr, nr,
                                                 ap + ir * kc, bp + jr * kc, kc, alpha, beta,
                                                 pc == 0);
                    }
                }
            }
        }
    }
}

#undef SGEMM_NR
#undef SGEMM_VL
#undef SGEMM_NAME
#undef SGEMM_TARGET
#undef SGEMM_MADD
