/* cpu-matmul.c — MATMUL on the CPU backend: batched f32 sgemm plus a bias row.
 *
 * A batch of a that multiplies one shared b (a linear layer over [B, T, K])
 * is one sgemm of B*T rows; other batches run one sgemm each from this thread
 * (BLAS threads itself). Batch shapes that are neither 1 nor the output's
 * batch, and non-f32 tensors, go to the reference. */
#include "setok-config.h"

#include "cpu-impl.h"

typedef struct bias_rows {
    float *y;
    const float *bias;
    int64_t n;
} bias_rows;

static void add_bias_rows(void *ctx, int64_t begin, int64_t end)
{
    const bias_rows *t = ctx;
    for (int64_t r = begin; r < end; r++) {
        float *yr = t->y + r * t->n;
        for (int64_t j = 0; j < t->n; j++) {
            yr[j] += t->bias[j];
        }
    }
}

// rows of t past its last two axes, i.e. its batch count
static int64_t batch_count(const setok_tensor *t)
{
    int64_t count = 1;
    for (int d = 0; d < t->ndim - 2; d++) {
        count *= t->shape[d];
    }
    return count;
}

setok_status setok_cpu_matmul(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // a [B?, M, K] ([B?, K, M] if trans_a), b [B|1?, K, N] ([.., N, K] if trans_b), bias [N]?
    // -> y [B?, M, N]
    const setok_tensor *a = d->src[0], *b = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    if (b->dtype != SETOK_F32 && y->dtype == SETOK_F32)
        return setok_cpu_matmul_weights(backend, d, err);
    if (a->dtype != SETOK_F32 || b->dtype != SETOK_F32 || y->dtype != SETOK_F32 ||
        (bias != NULL && bias->dtype != SETOK_F32) || a->ndim < 2 || b->ndim < 2 ||
        y->ndim < 2) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    bool ta = d->p.matmul.trans_a, tb = d->p.matmul.trans_b;
    int64_t m = y->shape[y->ndim - 2], n = y->shape[y->ndim - 1];
    int64_t k = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t batches = batch_count(y), a_batches = batch_count(a), b_batches = batch_count(b);
    if ((a_batches != batches && a_batches != 1) || (b_batches != batches && b_batches != 1)) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    if (batches == 0 || m == 0 || n == 0) {
        return SETOK_OK;
    }
    int64_t a_stride = a_batches == 1 ? 0 : m * k, b_stride = b_batches == 1 ? 0 : k * n;
    const float *ap = a->data, *bp = b->data;
    float *yp = y->data;
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    float alpha = d->p.matmul.alpha;

    if (!ta && b_stride == 0 && a_stride != 0) {
        // [B*M, K] @ b: one GEMM over every batch's rows
        setok_cpu_sgemm(backend, false, tb, batches * m, n, k, alpha, ap, lda, bp, ldb, 0.0f, yp,
                        n);
    } else {
        for (int64_t i = 0; i < batches; i++) {
            setok_cpu_sgemm(backend, ta, tb, m, n, k, alpha, ap + i * a_stride, lda,
                            bp + i * b_stride, ldb, 0.0f, yp + i * m * n, n);
        }
    }
    if (bias != NULL) {
        bias_rows t = {.y = yp, .bias = bias->data, .n = n};
        int64_t min_rows = n >= 16384 ? 1 : 16384 / n;
        setok_cpu_parallel_for(backend, batches * m, min_rows, add_bias_rows, &t);
    }
    return SETOK_OK;
}
