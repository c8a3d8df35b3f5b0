/* cpu-attention.c — scaled dot-product ATTENTION on the CPU backend.
 *
 * The work is cut into tasks of (batch, head, block of query rows). Each pool
 * worker takes tasks from a shared counter (causal blocks differ in cost) and
 * owns a scratch block of [rows, Tk] scores, so memory stays at
 * workers * rows * Tk floats whatever the batch and head counts. Per block:
 * S = scale * Q K^T (serial sgemm), + mask, causal cut, stable softmax, O = P V.
 * Keys past the block's last causal key are never computed. k and v are read
 * through their batch, head and row strides (a KV cache prefix in place); q, y
 * and the mask are f32, k and v f32 or, for a compact KV cache, f16 / bf16:
 * a task then widens the keys and values it reads into its scratch first
 * (bound by the bytes read either way). */
#include "setok-config.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"
#include "cpu-sgemm.h"

// Scores per worker are capped near this many floats (4 MiB).
enum { SCRATCH_FLOATS = 1 << 20, MAX_BLOCK_ROWS = 64 };

typedef struct attention_job {
    float *y;
    const float *q, *mask;
    const char *k, *v;  // f32, or 16-bit through widen
    setok_cpu_decode_fn widen;  // NULL when k and v are f32
    setok_cpu_dot_fn dot;       // the 16-bit keys' dots with a few query rows
    size_t kv_size;  // bytes per k / v element
    int64_t heads, kv_heads, tq, tk, d, dv;
    int64_t kstride[3], vstride[3];   // k and v strides over [B, Hkv, Tk]
    int64_t mstride[SETOK_MAX_DIMS];  // the mask's strides over [B, Hq, Tq, Tk], 0 if broadcast
    float scale;
    bool causal;
    int64_t block_rows, blocks, tasks;
    float *scratch;  // [workers][per_worker]: scores [block_rows * tk], then widened k and v
    int64_t per_worker;
    atomic_llong next_task;
} attention_job;

// scores s [n_keys] of query row i -> probabilities in place (0 past the causal cut)
static void softmax_scores(const attention_job *t, float *s, int64_t n_keys, const float *mask,
                           int64_t i)
{
    int64_t keep = n_keys;
    if (t->causal) {
        int64_t last = i + t->tk - t->tq;
        keep = last < 0 ? 0 : (last + 1 < n_keys ? last + 1 : n_keys);
    }
    if (mask != NULL) {
        for (int64_t j = 0; j < keep; j++) s[j] += mask[j * t->mstride[3]];
    }
    setok_cpu_softmax_row(s, keep, n_keys);
}

// A few query rows (decode) over 16-bit keys and values: each key and value row is read
// once, in place, instead of widened into scratch and read again by two GEMMs.
static void attention_few_rows(const attention_job *t, float *scores, const float *q,
                               const char *kb, int64_t ldk, const char *vb, int64_t ldv, float *y,
                               int64_t rows, int64_t n_keys, int64_t b, int64_t h, int64_t i0)
{
    for (int64_t j = 0; j < n_keys; j++) {
        float dots[SETOK_CPU_DOT_ROWS];
        t->dot(dots, kb + j * ldk * t->kv_size, q, t->d, (int)rows, t->d);
        for (int64_t r = 0; r < rows; r++)
            scores[r * n_keys + j] = t->scale * dots[r];
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *mask = NULL;
        if (t->mask != NULL) {
            mask = t->mask + b * t->mstride[0] + h * t->mstride[1] + (i0 + r) * t->mstride[2];
        }
        softmax_scores(t, scores + r * n_keys, n_keys, mask, i0 + r);
    }
    float *vrow = scores + t->block_rows * t->tk; // one widened value row
    memset(y, 0, (size_t)(rows * t->dv) * sizeof(float));
    for (int64_t j = 0; j < n_keys; j++) {
        t->widen(vrow, vb + j * ldv * t->kv_size, t->dv);
        for (int64_t r = 0; r < rows; r++) {
            float p = scores[r * n_keys + j], *yr = y + r * t->dv;
            if (p != 0.0f)
                for (int64_t c = 0; c < t->dv; c++)
                    yr[c] += p * vrow[c];
        }
    }
}

// one task: query rows [i0, i0 + rows) of head h in batch b
static void attention_block(const attention_job *t, float *scores, int64_t task)
{
    int64_t bh = task / t->blocks;
    int64_t block = t->blocks - 1 - task % t->blocks;  // costly causal blocks first
    int64_t b = bh / t->heads, h = bh % t->heads;
    int64_t kh = h / (t->heads / t->kv_heads);
    int64_t i0 = block * t->block_rows;
    int64_t rows = t->tq - i0 < t->block_rows ? t->tq - i0 : t->block_rows;
    const float *q = t->q + ((bh * t->tq) + i0) * t->d;
    const char *kb = t->k + (b * t->kstride[0] + kh * t->kstride[1]) * t->kv_size;
    const char *vb = t->v + (b * t->vstride[0] + kh * t->vstride[1]) * t->kv_size;
    const float *k = (const float *)kb, *v = (const float *)vb;
    int64_t ldk = t->kstride[2], ldv = t->vstride[2];
    float *y = t->y + ((bh * t->tq) + i0) * t->dv;

    int64_t n_keys = t->tk;
    if (t->causal) {
        int64_t last = i0 + rows - 1 + t->tk - t->tq;
        n_keys = last < 0 ? 0 : (last + 1 < t->tk ? last + 1 : t->tk);
    }
    if (n_keys == 0) {
        memset(y, 0, (size_t)(rows * t->dv) * sizeof(float));
        return;
    }
    if (t->widen != NULL && rows <= SETOK_CPU_DOT_ROWS) {
        attention_few_rows(t, scores, q, kb, ldk, vb, ldv, y, rows, n_keys, b, h, i0);
        return;
    }
    if (t->widen != NULL) {
        float *kw = scores + t->block_rows * t->tk, *vw = kw + t->tk * t->d;
        for (int64_t j = 0; j < n_keys; j++) {
            t->widen(kw + j * t->d, kb + j * ldk * t->kv_size, t->d);
            t->widen(vw + j * t->dv, vb + j * ldv * t->kv_size, t->dv);
        }
        k = kw;
        v = vw;
        ldk = t->d;
        ldv = t->dv;
    }
    // scores [rows, n_keys] = scale * q [rows, D] k[:n_keys]^T
    setok_cpu_sgemm_serial(false, true, rows, n_keys, t->d, t->scale, q, t->d, k, ldk, 0.0f,
                           scores, n_keys);
    for (int64_t r = 0; r < rows; r++) {
        const float *mask = NULL;
        if (t->mask != NULL) {
            mask = t->mask + b * t->mstride[0] + h * t->mstride[1] + (i0 + r) * t->mstride[2];
        }
        softmax_scores(t, scores + r * n_keys, n_keys, mask, i0 + r);
    }
    // y [rows, Dv] = p [rows, n_keys] v[:n_keys]
    setok_cpu_sgemm_serial(false, false, rows, t->dv, n_keys, 1.0f, scores, n_keys, v, ldv,
                           0.0f, y, t->dv);
}

static void attention_worker(void *ctx, int64_t begin, int64_t end)
{
    attention_job *t = ctx;
    (void)end;
    // chunks are disjoint, so `begin` names a scratch block no other chunk uses
    float *scores = t->scratch + begin * t->per_worker;
    for (;;) {
        int64_t task = atomic_fetch_add(&t->next_task, 1);
        if (task >= t->tasks) {
            break;
        }
        attention_block(t, scores, task);
    }
}

setok_status setok_cpu_attention(setok_backend *backend, const setok_op_desc *d,
                                 setok_error *err)
{
    // q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], mask? -> y [B, Hq, Tq, Dv]
    const setok_tensor *q = d->src[0], *k = d->src[1], *v = d->src[2], *mask = d->src[3];
    setok_tensor *y = d->dst;
    bool kv16 = (k->dtype == SETOK_F16 || k->dtype == SETOK_BF16) && v->dtype == k->dtype;
    if (q->dtype != SETOK_F32 || (!kv16 && (k->dtype != SETOK_F32 || v->dtype != SETOK_F32)) ||
        y->dtype != SETOK_F32 || (mask != NULL && mask->dtype != SETOK_F32) || q->ndim != 4 ||
        k->ndim != 4 || v->ndim != 4 || (mask != NULL && mask->ndim > 4) || k->shape[1] == 0 ||
        q->shape[1] % k->shape[1] != 0) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    attention_job job;
    attention_job *t = &job;
    memset(t, 0, sizeof(*t));
    int64_t batch = q->shape[0];
    t->y = y->data;
    t->q = q->data;
    t->k = k->data;
    t->v = v->data;
    t->kv_size = setok_dtype_size(k->dtype);
    t->widen = kv16 ? setok_cpu_decoder(k->dtype) : NULL;
    t->dot = kv16 ? setok_cpu_dotter(k->dtype) : NULL;
    t->mask = mask != NULL ? mask->data : NULL;
    t->heads = q->shape[1];
    t->kv_heads = k->shape[1];
    t->tq = q->shape[2];
    t->tk = k->shape[2];
    t->d = q->shape[3];
    t->dv = v->shape[3];
    // a single key row may carry any row stride; the GEMMs want one at least as long as a row
    for (int ax = 0; ax < 3; ax++) {
        t->kstride[ax] = k->stride[ax];
        t->vstride[ax] = v->stride[ax];
    }
    if (t->tk <= 1) {
        t->kstride[2] = t->d;
        t->vstride[2] = t->dv;
    }
    t->causal = d->p.attention.causal;
    t->scale = d->p.attention.scale != 0.0f ? d->p.attention.scale
                                            : (float)(1.0 / sqrt((double)(t->d > 0 ? t->d : 1)));
    if (mask != NULL) {
        int pad = SETOK_MAX_DIMS - mask->ndim;
        int64_t stride = 1;
        for (int ax = SETOK_MAX_DIMS - 1; ax >= 0; ax--) {
            int64_t extent = ax < pad ? 1 : mask->shape[ax - pad];
            t->mstride[ax] = extent == 1 ? 0 : stride;
            stride *= extent;
        }
    }
    if (batch * t->heads * t->tq * t->dv == 0) {
        return SETOK_OK;
    }
    int64_t rows = t->tk > 0 ? SCRATCH_FLOATS / t->tk : MAX_BLOCK_ROWS;
    rows = rows < 1 ? 1 : (rows > MAX_BLOCK_ROWS ? MAX_BLOCK_ROWS : rows);
    t->block_rows = rows < t->tq ? rows : t->tq;
    t->blocks = (t->tq + t->block_rows - 1) / t->block_rows;
    t->tasks = batch * t->heads * t->blocks;
    atomic_init(&t->next_task, 0);
    int64_t workers = setok_cpu_threads(backend);
    workers = workers < 1 ? 1 : (workers > t->tasks ? t->tasks : workers);
    // tiny problems are not worth waking the pool
    double flops = 2.0 * (double)t->tasks * (double)t->block_rows * (double)t->tk *
                   (double)(t->d + t->dv);
    if (flops < 2e5) {
        workers = 1;
    }
    int64_t tk = t->tk > 0 ? t->tk : 1;
    t->per_worker = t->block_rows * tk + (kv16 ? tk * (t->d + t->dv) : 0);
    t->scratch = malloc((size_t)(workers * t->per_worker) * sizeof(float));
    if (t->scratch == NULL) {
        return setok_fail(err, SETOK_ERR_NOMEM, "attention: cannot allocate %lld x %lld scores",
                          (long long)(workers * t->block_rows), (long long)t->tk);
    }
    if (workers == 1) {
        attention_worker(t, 0, 1);
    } else {
        setok_cpu_parallel_for(backend, workers, 1, attention_worker, t);
    }
    free(t->scratch);
    return SETOK_OK;
}
