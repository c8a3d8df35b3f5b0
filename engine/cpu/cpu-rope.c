/* cpu-rope.c — ROPE on the CPU backend (GPT-NeoX / HF LLaMA rotate_half layout).
 *
 * The cos/sin table [T, rot_dims/2] is computed once per call (float inv_freq,
 * angles and cos/sin in double) and shared by every batch and head;
 * then rows of x are rotated in parallel. f32 x with I32 positions only. */
#include "setok-config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

typedef struct rope_table_job {
    float *cosv, *sinv;     // [T, half]
    const int32_t *pos;     // [T]
    const float *inv_freq;  // [half] or NULL
    int64_t half;
    float theta, freq_scale;
} rope_table_job;

static void rope_table_rows(void *ctx, int64_t begin, int64_t end)
{
    const rope_table_job *t = ctx;
    int64_t rot = 2 * t->half;
    for (int64_t s = begin; s < end; s++) {
        for (int64_t i = 0; i < t->half; i++) {
            // inv_freq in float, as HF builds it: 1 / theta^(2i / rot)
            float f = t->inv_freq != NULL ? t->inv_freq[i]
                                          : 1.0f / powf(t->theta, (float)(2 * i) / (float)rot);
            double angle = (double)t->pos[s] * (double)t->freq_scale * (double)f;
            t->cosv[s * t->half + i] = (float)cos(angle);
            t->sinv[s * t->half + i] = (float)sin(angle);
        }
    }
}

typedef struct rope_job {
    float *y;
    const float *x, *cosv, *sinv;
    int64_t seq, dim, half;
} rope_job;

static void rope_rows(void *ctx, int64_t begin, int64_t end)
{
    const rope_job *t = ctx;
    int64_t half = t->half, rot = 2 * half;
    for (int64_t r = begin; r < end; r++) {
        const float *x = t->x + r * t->dim;
        float *y = t->y + r * t->dim;
        const float *c = t->cosv + (r % t->seq) * half, *s = t->sinv + (r % t->seq) * half;
        for (int64_t i = 0; i < half; i++) {
            float x1 = x[i], x2 = x[i + half];
            y[i] = x1 * c[i] - x2 * s[i];
            y[i + half] = x2 * c[i] + x1 * s[i];
        }
        if (y != x && rot < t->dim) {
            memcpy(y + rot, x + rot, (size_t)(t->dim - rot) * sizeof(float));
        }
    }
}

setok_status setok_cpu_rope(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // x [B?, H, T, D], positions I32 [T], inv_freq [rot/2]? -> y [B?, H, T, D]
    const setok_tensor *x = d->src[0], *pos = d->src[1], *inv_freq = d->src[2];
    setok_tensor *y = d->dst;
    if (x->dtype != SETOK_F32 || y->dtype != SETOK_F32 || pos->dtype != SETOK_I32 ||
        (inv_freq != NULL && inv_freq->dtype != SETOK_F32) || x->ndim < 2) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    int64_t dim = x->shape[x->ndim - 1], seq = x->shape[x->ndim - 2];
    int64_t rot = d->p.rope.rot_dims == 0 ? dim : d->p.rope.rot_dims;
    if (rot % 2 != 0 || rot > dim || setok_tensor_numel(pos) != seq) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    if (setok_tensor_numel(x) == 0) {
        return SETOK_OK;
    }
    int64_t half = rot / 2;
    float *table = malloc((size_t)(2 * seq * half + 1) * sizeof(float));
    if (table == NULL) {
        return setok_fail(err, SETOK_ERR_NOMEM, "rope: cannot allocate the %lld x %lld cos/sin "
                          "table", (long long)seq, (long long)half);
    }
    rope_table_job tt = {
        .cosv = table, .sinv = table + seq * half, .pos = pos->data,
        .inv_freq = inv_freq != NULL ? inv_freq->data : NULL, .half = half,
        .theta = d->p.rope.theta, .freq_scale = d->p.rope.freq_scale,
    };
    setok_cpu_parallel_for(backend, seq, half >= 256 ? 1 : 256 / (half + 1) + 1,
                           rope_table_rows, &tt);
    rope_job t = {.y = y->data, .x = x->data, .cosv = tt.cosv, .sinv = tt.sinv, .seq = seq,
                  .dim = dim, .half = half};
    int64_t rows = setok_tensor_numel(x) / dim;
    setok_cpu_parallel_for(backend, rows, dim >= 8192 ? 1 : 8192 / dim, rope_rows, &t);
    free(table);
    return SETOK_OK;
}
