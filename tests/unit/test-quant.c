/* test-quant.c — the weight formats and the CPU kernels that use them in place:
 *   - q8 / q4 quantization stays within its bound (half a step per value) and
 *     setok_load_f32 decodes what setok_dequantize does;
 *   - MATMUL with an f16, bf16, q8 or q4 weight on the CPU backend equals the
 *     double-precision reference on the same weight (few rows: the GEMV; many:
 *     the panels), for random shapes including rows that are not a multiple
 *     of the SIMD width; where the CPU multiplies many rows with AVX512_BF16
 *     (SETOK_CPU_ISA unset or avx512bf16), within bf16's rounding of x and W:
 *     |dy| <= 2^-8 sum |x w|;
 *   - the error a quantized weight causes in y stays under the bound that the
 *     format guarantees: |dy_i| <= sum_j |x_ij| * step_j / 2 (+ the f16
 *     rounding of the block's scale and minimum);
 *   - where the CPU multiplies a few rows by q8 / q4 weights with integer dot
 *     products (AVX2 or AVX512-VNNI; SETOK_CPU_ISA anything but c), x
 *     is quantized to int8 blocks too: |dy| grows by at most
 *     sum_j |w_j| * step(x)_j / 2.
 * Usage: test-quant [--seed N] */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "setok/backend.h"
#include "setok/ops.h"
#include "setok/quant.h"

static uint64_t rng = 1;

static double uniform(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static int rand_int(int lo, int hi)
{
    return lo + (int)(uniform() * (hi - lo + 1));
}

static void fill(float *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((uniform() * 2.0 - 1.0) * scale);
}

/* The largest error quantizing one block may leave in a value: half a step of
 * the stored (f16) scale, plus how far rounding the scale and the minimum to
 * f16 moves the ends of the range (values past them are clipped). */
static double block_bound(setok_dtype dt, const float *x)
{
    float lo = x[0], hi = x[0], amax = 0;
    for (int j = 0; j < SETOK_QBLOCK; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
        amax = fmaxf(amax, fabsf(x[j]));
    }
    double slack = 1e-6 * (amax + 1e-30);
    if (dt == SETOK_Q8) {
        double d = amax / 127.0f, dh = setok_f16_to_f32(setok_f32_to_f16(amax / 127.0f));
        return 0.5 * dh + 127.0 * fabs(dh - d) + slack;
    }
    double d = (hi - lo) / 15.0f, dh = setok_f16_to_f32(setok_f32_to_f16((hi - lo) / 15.0f));
    double mh = setok_f16_to_f32(setok_f32_to_f16(lo));
    return 0.5 * dh + fabs(mh - lo) + 15.0 * fabs(dh - d) + slack;
}

static void test_quantize(void)
{
    for (int trial = 0; trial < 200; trial++) {
        setok_dtype dt = trial % 2 ? SETOK_Q4 : SETOK_Q8;
        int64_t n = SETOK_QBLOCK * rand_int(1, 8);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        void *q = malloc(setok_dtype_bytes(dt, n));
        fill(x, n, trial % 3 == 0 ? 1e-3 : trial % 3 == 1 ? 1.0 : 300.0);
        if (trial % 17 == 0)
            memset(x, 0, SETOK_QBLOCK * sizeof *x); /* an all-zero block */
        setok_quantize(q, dt, x, n);
        setok_dequantize(y, q, dt, n);
        double worst = 0;
        bool same = true;
        for (int64_t b = 0; b < n / SETOK_QBLOCK; b++) {
            double bound = block_bound(dt, x + b * SETOK_QBLOCK);
            for (int j = 0; j < SETOK_QBLOCK; j++) {
                int64_t i = b * SETOK_QBLOCK + j;
                worst = fmax(worst, fabs(y[i] - x[i]) / bound);
                same &= setok_load_f32(q, dt, i) == y[i];
            }
        }
        CHECK(worst <= 1.0, "%s: error %.3f of the bound", setok_dtype_name(dt), worst);
        CHECK(same, "%s: setok_load_f32 and setok_dequantize differ", setok_dtype_name(dt));
        free(x);
        free(y);
        free(q);
    }
}

/* w [n, k] f32 -> a new tensor of dtype on be. */
static setok_tensor weight_tensor(setok_backend *be, setok_dtype dt, const float *w, int64_t n,
                                  int64_t k)
{
    setok_tensor t;
    setok_error err = {0};
    setok_tensor_alloc(&t, be, dt, 2, (int64_t[]){n, k}, &err);
    if (setok_dtype_is_quantized(dt)) {
        for (int64_t r = 0; r < n; r++)
            setok_quantize((char *)t.data + setok_dtype_bytes(dt, r * k), dt, w + r * k, k);
    } else {
        for (int64_t i = 0; i < n * k; i++)
            setok_store_f32(t.data, dt, i, w[i]);
    }
    return t;
}

static void run_linear(setok_backend *be, setok_tensor *y, const float *x, const setok_tensor *w,
                       const float *bias, int64_t m, setok_error *err)
{
    int64_t n = w->shape[0], k = w->shape[1];
    setok_tensor xt = setok_tensor_make((void *)x, be, SETOK_F32, 2, (int64_t[]){m, k});
    setok_tensor bt = setok_tensor_make((void *)bias, be, SETOK_F32, 1, &n);
    setok_status st = setok_tensor_alloc(y, be, SETOK_F32, 2, (int64_t[]){m, n}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &xt, w, bias ? &bt : NULL, err);
    CHECK(st == SETOK_OK, "linear: %s", err->message);
}

/* half the int8 step of x's block holding value p: what quantizing x may move it by */
static double x_half_step(const float *xrow, int64_t p)
{
    const float *b = xrow + p / SETOK_QBLOCK * SETOK_QBLOCK;
    float amax = 0;
    for (int j = 0; j < SETOK_QBLOCK; j++)
        amax = fmaxf(amax, fabsf(b[j]));
    return 0.5 * amax / 127.0 * (1.0 + 1e-6);
}

static void test_matmul(setok_backend *cpu, setok_backend *ref, bool bf16_gemm, bool int8_gemv)
{
    static const setok_dtype dtypes[] = {SETOK_F16, SETOK_BF16, SETOK_Q8, SETOK_Q4};
    static const int rows[] = {1, 2, 3, 4, 5, 17, 150};
    for (int trial = 0; trial < 60; trial++) {
        setok_dtype dt = dtypes[trial % 4];
        int64_t m = rows[(trial / 4) % 7];
        int64_t k = setok_dtype_is_quantized(dt) ? SETOK_QBLOCK * rand_int(1, 12)
                                                  : rand_int(1, 400);
        int64_t n = rand_int(1, 300);
        if (trial >= 56) { /* past one K block (1024) and one block of rows (128) */
            m = 150;
            k = 2048 + 64;
            n = 40;
        }
        bool with_bias = trial % 3 != 0;
        float *x = malloc(m * k * sizeof *x), *w = malloc(n * k * sizeof *w);
        float *bias = malloc(n * sizeof *bias), *wq = malloc(n * k * sizeof *wq);
        fill(x, m * k, 1.0);
        fill(w, n * k, 0.2);
        fill(bias, n, 0.5);
        setok_tensor wt = weight_tensor(cpu, dt, w, n, k), wr = wt, y = {0}, yr = {0};
        wr.backend = ref;
        setok_error err = {0};
        run_linear(cpu, &y, x, &wt, with_bias ? bias : NULL, m, &err);
        run_linear(ref, &yr, x, &wr, with_bias ? bias : NULL, m, &err);
        /* the same weight: only the order of the sums differs, or bf16 rounding */
        bool bf16 = bf16_gemm && m > 4 && k % 2 == 0;
        bool int8 = int8_gemv && m <= 4 && setok_dtype_is_quantized(dt);
        double worst = 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double abssum = with_bias ? fabs(bias[j]) : 0, xq = 0;
                for (int64_t p = 0; p < k; p++) {
                    double wv = setok_load_f32(wt.data, dt, j * k + p);
                    abssum += fabs(x[i * k + p] * wv);
                    if (int8)
                        xq += fabs(wv) * x_half_step(x + i * k, p);
                }
                double tol = (bf16 ? 0x1p-8 : 1e-6) * abssum + xq + 1e-6;
                double e = fabs(((float *)y.data)[i * n + j] - ((float *)yr.data)[i * n + j]);
                worst = fmax(worst, e / tol);
            }
        CHECK(worst <= 1.0, "%s %lldx%lldx%lld%s: error %.3f of the tolerance",
              setok_dtype_name(dt), (long long)m, (long long)k, (long long)n,
              bf16 ? " (bf16 products)" : "", worst);
        /* against the unquantized weight: within the format's bound */
        if (setok_dtype_is_quantized(dt)) {
            double over = 0;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double exact = with_bias ? bias[j] : 0, bound = 1e-4;
                    for (int64_t p = 0; p < k; p++) {
                        double wb = block_bound(dt, w + j * k + p / SETOK_QBLOCK * SETOK_QBLOCK);
                        exact += (double)x[i * k + p] * w[j * k + p];
                        bound += fabs(x[i * k + p]) * wb;
                        if (int8)
                            bound += (fabs(w[j * k + p]) + wb) * x_half_step(x + i * k, p);
                    }
                    over = fmax(over, fabs(((float *)y.data)[i * n + j] - exact) / bound);
                }
            CHECK(bf16 || over <= 1.0, "%s: error %.3f of the quantization bound",
                  setok_dtype_name(dt), over);
        }
        setok_tensor_free(&wt);
        setok_tensor_free(&y);
        setok_tensor_free(&yr);
        free(x);
        free(w);
        free(bias);
        free(wq);
    }
}

int main(int argc, char **argv)
{
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 0);
    printf("seed %llu\n", (unsigned long long)seed);
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    setok_backend *cpu = NULL, *ref = NULL;
    setok_error err = {0};
    if (setok_backend_cpu_create(&cpu, 0, &err) != SETOK_OK ||
        setok_backend_cpu_reference_create(&ref, &err) != SETOK_OK) {
        printf("no backend: %s\n", err.message);
        return 1;
    }
    const char *isa = getenv("SETOK_CPU_ISA");
    __builtin_cpu_init();
    bool bf16 = (!isa || !strcmp(isa, "avx512bf16")) && __builtin_cpu_supports("avx512bf16");
    bool int8 = (!isa || strcmp(isa, "c")) && __builtin_cpu_supports("avx2");
    printf("products: %s%s\n", bf16 ? "bf16 for many rows" : "f32",
           int8 ? ", int8 for a few rows of q8 / q4" : "");
    test_quantize();
    test_matmul(cpu, ref, bf16, int8);
    setok_backend_free(cpu);
    setok_backend_free(ref);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
