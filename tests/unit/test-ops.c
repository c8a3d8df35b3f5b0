/* test-ops.c — every op on a backend against the double-precision reference.
 *
 *   test-ops --backend cpu  [--op NAME] [--seed N] [--dtype f32]
 *   test-ops --backend cuda [--op NAME] [--dtype f32,f16,bf16]   (exit 77 without a GPU)
 *
 * For each op, a handful of cases with fresh random shapes (odd sizes and
 * non-multiples of any block size included) and random inputs run on the
 * backend under test and on "cpu-reference"; the max error relative to the
 * output's magnitude must stay under the dtype's tolerance. Index outputs
 * must match exactly. Prints one line per case with the error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "setok/ops.h"

#define MAX_CASES 16

/* ---------------------------------------------------------------------------
 * random numbers (xorshift64*), seeded per run and printed */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static int64_t rnd(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}

/* ---------------------------------------------------------------------------
 * cases: host inputs (f32 or i32, contiguous) and output shapes */

typedef struct tcase tcase;
typedef setok_status (*run_fn)(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err);

struct tcase {
    char label[160];
    int n_in, n_out;
    setok_tensor in[4];     /* host tensors; data NULL = absent optional input */
    setok_tensor out[2];    /* shapes and dtypes (F32 means "the test dtype") */
    setok_op_desc p;        /* parameters only */
    int perm[SETOK_MAX_DIMS];
    int axis;
    int64_t start;
    int kv_view;            /* attention: how k and v are viewed (enum kv_view) */
    setok_dtype kv_dtype;   /* attention under f32: k and v stored in this 16-bit dtype, or f32 */
    double tol_scale;       /* widens the tolerance for ill-conditioned cases */
    unsigned keep_f32;      /* bit i: input i stays f32 whatever the test dtype */
    run_fn run;
};

static void add_input(tcase *c, setok_dtype dtype, int ndim, const int64_t *shape, float lo,
                      float hi)
{
    setok_tensor *t = &c->in[c->n_in++];
    *t = setok_tensor_make(NULL, NULL, dtype, ndim, shape);
    int64_t n = setok_tensor_numel(t);
    t->data = malloc((size_t)(n ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == SETOK_I32)
            ((int32_t *)t->data)[i] = (int32_t)rnd((int64_t)lo, (int64_t)hi);
        else
            ((float *)t->data)[i] = rndf(lo, hi);
    }
}

static void add_absent(tcase *c)
{
    memset(&c->in[c->n_in++], 0, sizeof(setok_tensor));
}

static void add_output(tcase *c, setok_dtype dtype, int ndim, const int64_t *shape)
{
    c->out[c->n_out++] = setok_tensor_make(NULL, NULL, dtype, ndim, shape);
}

static const setok_tensor *opt(const setok_tensor *in, int i)
{
    return in[i].data ? &in[i] : NULL;
}

static void free_case(tcase *c)
{
    for (int i = 0; i < c->n_in; i++)
        free(c->in[i].data);
}

/* ---------------------------------------------------------------------------
 * run functions: call the public API */

static setok_status run_matmul(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    return setok_matmul(be, &out[0], &in[0], &in[1], opt(in, 2), c->p.p.matmul.trans_a,
                        c->p.p.matmul.trans_b, c->p.p.matmul.alpha, err);
}

static setok_status run_binary(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    return c->p.op == SETOK_OP_ADD ? setok_add(be, &out[0], &in[0], &in[1], err)
                                   : setok_mul(be, &out[0], &in[0], &in[1], err);
}

static setok_status run_scale(setok_backend *be, const tcase *c, setok_tensor *out,
                              const setok_tensor *in, setok_error *err)
{
    return setok_scale(be, &out[0], &in[0], c->p.p.scale.scale, c->p.p.scale.bias, err);
}

static setok_status run_norm(setok_backend *be, const tcase *c, setok_tensor *out,
                             const setok_tensor *in, setok_error *err)
{
    switch (c->p.op) {
    case SETOK_OP_LAYERNORM:
        return setok_layernorm(be, &out[0], &in[0], opt(in, 1), opt(in, 2), c->p.p.norm.eps, err);
    case SETOK_OP_RMSNORM:
        return setok_rmsnorm(be, &out[0], &in[0], opt(in, 1), c->p.p.norm.eps, err);
    default:
        return setok_groupnorm(be, &out[0], &in[0], opt(in, 1), opt(in, 2),
                               c->p.p.groupnorm.groups, c->p.p.groupnorm.eps, err);
    }
}

static setok_status run_softmax(setok_backend *be, const tcase *c, setok_tensor *out,
                                const setok_tensor *in, setok_error *err)
{
    return setok_softmax(be, &out[0], &in[0], opt(in, 1), c->p.p.softmax.scale,
                         c->p.p.softmax.causal, err);
}

static setok_status run_unary(setok_backend *be, const tcase *c, setok_tensor *out,
                              const setok_tensor *in, setok_error *err)
{
    return setok_unary(be, c->p.op, &out[0], &in[0], err);
}

static setok_status run_glu(setok_backend *be, const tcase *c, setok_tensor *out,
                            const setok_tensor *in, setok_error *err)
{
    return setok_glu(be, c->p.op, &out[0], &in[0], opt(in, 1), err);
}

static setok_status run_rope(setok_backend *be, const tcase *c, setok_tensor *out,
                             const setok_tensor *in, setok_error *err)
{
    return setok_rope(be, &out[0], &in[0], &in[1], opt(in, 2), c->p.p.rope.theta,
                      c->p.p.rope.freq_scale, c->p.p.rope.rot_dims, err);
}

/* How attention reads k and v: as given, or as strided views of the stored inputs. */
enum kv_view {
    KV_CONTIGUOUS,
    KV_CACHE_PREFIX, /* stored [B, Hkv, max_ctx, D]; the first c->start keys */
    KV_TOKEN_MAJOR,  /* stored [B, Tk, Hkv, D], permuted to [B, Hkv, Tk, D] */
};

static setok_status kv_views(const tcase *c, const setok_tensor *in, setok_tensor *k,
                             setok_tensor *v, setok_error *err)
{
    setok_status st = SETOK_OK;
    *k = in[1];
    *v = in[2];
    if (c->kv_view == KV_CACHE_PREFIX) {
        st = setok_view_slice(k, &in[1], 2, 0, c->start, err);
        if (st == SETOK_OK)
            st = setok_view_slice(v, &in[2], 2, 0, c->start, err);
    } else if (c->kv_view == KV_TOKEN_MAJOR) {
        st = setok_view_permute(k, &in[1], (int[]){0, 2, 1, 3}, err);
        if (st == SETOK_OK)
            st = setok_view_permute(v, &in[2], (int[]){0, 2, 1, 3}, err);
    }
    return st;
}

static setok_status run_attention(setok_backend *be, const tcase *c, setok_tensor *out,
                                  const setok_tensor *in, setok_error *err)
{
    setok_tensor k, v;
    setok_status st = kv_views(c, in, &k, &v, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &out[0], &in[0], &k, &v, opt(in, 3), c->p.p.attention.scale,
                             c->p.p.attention.causal, err);
    return st;
}

static setok_status run_conv(setok_backend *be, const tcase *c, setok_tensor *out,
                             const setok_tensor *in, setok_error *err)
{
    setok_op_desc d = c->p;
    d.dst = &out[0];
    d.src[0] = &in[0];
    d.src[1] = &in[1];
    d.src[2] = opt(in, 2);
    return setok_backend_compute(be, &d, err);
}

static setok_status run_upsample(setok_backend *be, const tcase *c, setok_tensor *out,
                                 const setok_tensor *in, setok_error *err)
{
    return setok_upsample_nearest(be, &out[0], &in[0], c->p.p.upsample.factor, err);
}

static setok_status run_get_rows(setok_backend *be, const tcase *c, setok_tensor *out,
                                 const setok_tensor *in, setok_error *err)
{
    return setok_get_rows(be, &out[0], &in[0], &in[1], err);
}

static setok_status run_resize(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    return setok_resize_bicubic(be, &out[0], &in[0], c->p.p.resize.align_corners, err);
}

static setok_status run_argmax(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    return setok_argmax(be, &out[0], &in[0], err);
}

static setok_status run_topk(setok_backend *be, const tcase *c, setok_tensor *out,
                             const setok_tensor *in, setok_error *err)
{
    return setok_topk(be, &out[0], &out[1], &in[0], c->p.p.topk.k, err);
}

static setok_status run_copy(setok_backend *be, const tcase *c, setok_tensor *out,
                             const setok_tensor *in, setok_error *err)
{
    return setok_copy(be, &out[0], &in[0], err);
}

static setok_status run_permute(setok_backend *be, const tcase *c, setok_tensor *out,
                                const setok_tensor *in, setok_error *err)
{
    return setok_permute(be, &out[0], &in[0], c->perm, err);
}

static setok_status run_slice(setok_backend *be, const tcase *c, setok_tensor *out,
                              const setok_tensor *in, setok_error *err)
{
    return setok_slice(be, &out[0], &in[0], c->axis, c->start, err);
}

static setok_status run_concat(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    const setok_tensor *parts[4];
    for (int i = 0; i < c->n_in; i++)
        parts[i] = &in[i];
    return setok_concat(be, &out[0], parts, c->n_in, c->axis, err);
}

static setok_status run_linear(setok_backend *be, const tcase *c, setok_tensor *out,
                               const setok_tensor *in, setok_error *err)
{
    return setok_linear(be, &out[0], &in[0], &in[1], opt(in, 2), err);
}

/* ---------------------------------------------------------------------------
 * case generators: one per test name */

typedef int (*gen_fn)(tcase *cases);

/* Whether attention cases may keep k and v in 16 bits under f32 queries (the CPU's cache). */
static bool compact_kv;

static tcase *new_case(tcase *cases, int *n, setok_op op, run_fn run)
{
    if (*n >= MAX_CASES) {
        fprintf(stderr, "test-ops: more than %d cases for %s\n", MAX_CASES, setok_op_name(op));
        abort();
    }
    tcase *c = &cases[(*n)++];
    memset(c, 0, sizeof *c);
    c->p.op = op;
    c->run = run;
    c->tol_scale = 1.0;
    return c;
}

static int gen_matmul(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 6; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_MATMUL, run_matmul);
        int64_t b = i < 2 ? 0 : rnd(1, 3), m = i == 0 ? 1 : rnd(1, 70), k = rnd(1, 130),
                nn = rnd(1, 90);
        bool ta = i >= 3 && rnd(0, 1), tb = i != 4 ? (i % 2 == 0) : true;
        bool shared_b = b && i == 5;
        c->p.p.matmul.trans_a = ta;
        c->p.p.matmul.trans_b = tb;
        c->p.p.matmul.alpha = i == 3 ? 0.5f : 1.0f;
        int64_t as[3] = {b, ta ? k : m, ta ? m : k}, bs[3] = {b, tb ? nn : k, tb ? k : nn};
        int nd = b ? 3 : 2;
        add_input(c, SETOK_F32, nd, b ? as : as + 1, -1, 1);
        add_input(c, SETOK_F32, shared_b ? 2 : nd, shared_b || !b ? bs + 1 : bs, -1, 1);
        if (i % 2)
            add_input(c, SETOK_F32, 1, &nn, -1, 1);
        int64_t ys[3] = {b, m, nn};
        add_output(c, SETOK_F32, nd, b ? ys : ys + 1);
        snprintf(c->label, sizeof c->label, "B=%lld M=%lld K=%lld N=%lld ta=%d tb=%d%s%s",
                 (long long)b, (long long)m, (long long)k, (long long)nn, ta, tb,
                 shared_b ? " shared-b" : "", i % 2 ? " +bias" : "");
    }
    return n;
}

static int gen_linear(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_MATMUL, run_linear);
        int64_t b = rnd(1, 3), t = rnd(1, 33), k = rnd(1, 100), nn = rnd(1, 77);
        add_input(c, SETOK_F32, 3, (int64_t[]){b, t, k}, -1, 1);
        add_input(c, SETOK_F32, 2, (int64_t[]){nn, k}, -1, 1);
        add_input(c, SETOK_F32, 1, &nn, -1, 1);
        add_output(c, SETOK_F32, 3, (int64_t[]){b, t, nn});
        snprintf(c->label, sizeof c->label, "x [%lld, %lld, %lld] w [%lld, %lld]", (long long)b,
                 (long long)t, (long long)k, (long long)nn, (long long)k);
    }
    return n;
}

static void random_shape(int nd, int64_t *shape, int64_t max)
{
    for (int i = 0; i < nd; i++)
        shape[i] = rnd(1, max);
}

static int gen_binary_op(tcase *cases, setok_op op)
{
    int n = 0;
    for (int i = 0; i < 6; i++) {
        tcase *c = new_case(cases, &n, op, run_binary);
        int nd = (int)rnd(1, 4);
        int64_t a[4], b[4];
        random_shape(nd, a, 9);
        int bnd = i == 0 ? nd : (int)rnd(1, nd);
        for (int j = 0; j < bnd; j++) /* right-aligned, some axes broadcast */
            b[j] = (i > 0 && rnd(0, 2) == 0) ? 1 : a[nd - bnd + j];
        add_input(c, SETOK_F32, nd, a, -2, 2);
        add_input(c, SETOK_F32, bnd, b, -2, 2);
        add_output(c, SETOK_F32, nd, a);
        char sa[96], sb[96];
        snprintf(c->label, sizeof c->label, "a %s b %s", setok_tensor_describe(&c->in[0], sa, 96),
                 setok_tensor_describe(&c->in[1], sb, 96));
    }
    return n;
}

static int gen_add(tcase *cases) { return gen_binary_op(cases, SETOK_OP_ADD); }
static int gen_mul(tcase *cases) { return gen_binary_op(cases, SETOK_OP_MUL); }

static int gen_scale(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_SCALE, run_scale);
        int64_t s[3];
        random_shape(3, s, 17);
        c->p.p.scale.scale = rndf(-3, 3);
        c->p.p.scale.bias = i ? rndf(-1, 1) : 0.0f;
        add_input(c, SETOK_F32, 3, s, -4, 4);
        add_output(c, SETOK_F32, 3, s);
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld] * %.3f + %.3f", (long long)s[0],
                 (long long)s[1], (long long)s[2], c->p.p.scale.scale, c->p.p.scale.bias);
    }
    return n;
}

static int gen_norm_op(tcase *cases, setok_op op)
{
    int n = 0;
    for (int i = 0; i < 5; i++) {
        tcase *c = new_case(cases, &n, op, run_norm);
        int64_t rows = rnd(1, 40), ch = i == 0 ? 1 : i == 4 ? rnd(1000, 3000) : rnd(2, 300);
        c->p.p.norm.eps = i == 2 ? 1e-6f : 1e-5f;
        float shift = i == 3 ? 50.0f : 0.0f; /* a large mean tests the variance computation */
        add_input(c, SETOK_F32, 2, (int64_t[]){rows, ch}, shift - 2, shift + 2);
        if (i != 1)
            add_input(c, SETOK_F32, 1, &ch, -1, 1);
        else
            add_absent(c);
        if (op == SETOK_OP_LAYERNORM && i != 1)
            add_input(c, SETOK_F32, 1, &ch, -1, 1);
        add_output(c, SETOK_F32, 2, (int64_t[]){rows, ch});
        snprintf(c->label, sizeof c->label, "[%lld, %lld]%s%s", (long long)rows, (long long)ch,
                 i == 1 ? " no affine" : "", shift ? " mean 50" : "");
    }
    return n;
}

static int gen_layernorm(tcase *cases) { return gen_norm_op(cases, SETOK_OP_LAYERNORM); }
static int gen_rmsnorm(tcase *cases) { return gen_norm_op(cases, SETOK_OP_RMSNORM); }

static int gen_groupnorm(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_GROUPNORM, run_norm);
        int groups = (int)rnd(1, 8);
        int64_t nb = rnd(1, 2), ch = groups * rnd(1, 6), h = rnd(1, 13), w = rnd(1, 11);
        c->p.p.groupnorm.groups = groups;
        c->p.p.groupnorm.eps = 1e-6f;
        int nd = i == 3 ? 3 : 4;
        int64_t s[4] = {nb, ch, h, w};
        add_input(c, SETOK_F32, nd, s, -3, 3);
        if (i != 1) {
            add_input(c, SETOK_F32, 1, &ch, -1, 1);
            add_input(c, SETOK_F32, 1, &ch, -1, 1);
        }
        add_output(c, SETOK_F32, nd, s);
        snprintf(c->label, sizeof c->label, "N=%lld C=%lld %lldx%lld groups=%d%s", (long long)nb,
                 (long long)ch, (long long)h, (long long)(nd == 4 ? w : 1), groups,
                 i == 1 ? " no affine" : "");
    }
    return n;
}

static void fill_mask(setok_tensor *t)
{
    int64_t n = setok_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = rnd(0, 9);
        /* -inf and a huge finite negative (HF's finfo.min style) both occur; a
         * moderate value like -1e4 added to O(1) scores would only measure f32
         * rounding of the sum, which PyTorch shares */
        ((float *)t->data)[i] = r == 0 ? -INFINITY : r == 1 ? -1e30f : rndf(-1, 1);
    }
}

static int gen_softmax(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 5; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_SOFTMAX, run_softmax);
        int64_t b = rnd(1, 3), tq = rnd(1, 20), tk = i == 4 ? rnd(500, 1500) : rnd(1, 40);
        if (i == 2)
            tk = tq + rnd(0, 5);
        c->p.p.softmax.scale = i == 1 ? 0.125f : 1.0f;
        c->p.p.softmax.causal = i == 2 || i == 3;
        add_input(c, SETOK_F32, 3, (int64_t[]){b, tq, tk}, -8, 8);
        if (i == 1 || i == 3) {
            add_input(c, SETOK_F32, 2, (int64_t[]){tq, tk}, 0, 0);
            fill_mask(&c->in[1]);
        }
        add_output(c, SETOK_F32, 3, (int64_t[]){b, tq, tk});
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld]%s%s", (long long)b,
                 (long long)tq, (long long)tk, c->n_in > 1 ? " +mask" : "",
                 c->p.p.softmax.causal ? " causal" : "");
    }
    return n;
}

static int gen_unary_op(tcase *cases, setok_op op)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, op, run_unary);
        int nd = (int)rnd(1, 4);
        int64_t s[4];
        random_shape(nd, s, 11);
        add_input(c, SETOK_F32, nd, s, -6, 6);
        add_output(c, SETOK_F32, nd, s);
        setok_tensor_describe(&c->in[0], c->label, sizeof c->label);
    }
    return n;
}

static int gen_gelu(tcase *cases) { return gen_unary_op(cases, SETOK_OP_GELU); }
static int gen_gelu_tanh(tcase *cases) { return gen_unary_op(cases, SETOK_OP_GELU_TANH); }
static int gen_quick_gelu(tcase *cases) { return gen_unary_op(cases, SETOK_OP_QUICK_GELU); }
static int gen_silu(tcase *cases) { return gen_unary_op(cases, SETOK_OP_SILU); }
static int gen_relu(tcase *cases) { return gen_unary_op(cases, SETOK_OP_RELU); }

static int gen_glu_op(tcase *cases, setok_op op)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, op, run_glu);
        int64_t r = rnd(1, 20), h = rnd(1, 70);
        if (i % 2) {
            add_input(c, SETOK_F32, 2, (int64_t[]){r, 2 * h}, -5, 5);
        } else {
            add_input(c, SETOK_F32, 2, (int64_t[]){r, h}, -5, 5);
            add_input(c, SETOK_F32, 2, (int64_t[]){r, h}, -5, 5);
        }
        add_output(c, SETOK_F32, 2, (int64_t[]){r, h});
        snprintf(c->label, sizeof c->label, "rows=%lld H=%lld %s", (long long)r, (long long)h,
                 i % 2 ? "split" : "gate, value");
    }
    return n;
}

static int gen_swiglu(tcase *cases) { return gen_glu_op(cases, SETOK_OP_SWIGLU); }
static int gen_geglu(tcase *cases) { return gen_glu_op(cases, SETOK_OP_GEGLU); }

static int gen_rope(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 5; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_ROPE, run_rope);
        int64_t b = rnd(1, 2), h = rnd(1, 5), t = rnd(1, 19), d = 2 * rnd(1, 40);
        int rot = i == 2 ? (int)(2 * rnd(1, d / 2)) : 0;
        /* angles are computed in f32 as HF does (positions up to 300) */
        c->tol_scale = 5.0;
        c->p.p.rope.theta = i == 3 ? 500000.0f : 10000.0f;
        c->p.p.rope.freq_scale = i == 1 ? 0.25f : 1.0f;
        c->p.p.rope.rot_dims = rot;
        add_input(c, SETOK_F32, 4, (int64_t[]){b, h, t, d}, -2, 2);
        add_input(c, SETOK_I32, 1, &t, 0, 300);
        if (i == 4) {
            int64_t half = d / 2;
            add_input(c, SETOK_F32, 1, &half, 0.001f, 1.0f);
            c->keep_f32 |= 1u << 2; /* ops.h: inv_freq is always f32 */
        }
        add_output(c, SETOK_F32, 4, (int64_t[]){b, h, t, d});
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld, %lld] rot=%d theta=%g scale=%g%s",
                 (long long)b, (long long)h, (long long)t, (long long)d, rot,
                 c->p.p.rope.theta, c->p.p.rope.freq_scale, i == 4 ? " inv_freq" : "");
    }
    return n;
}

static int gen_attention(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 14; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_ATTENTION, run_attention);
        /* 12, 13: 8 and 9 over an f16 / bf16 cache under f32 queries */
        c->kv_dtype = !compact_kv ? SETOK_F32
                      : i == 12   ? SETOK_F16
                      : i == 13   ? SETOK_BF16
                                  : SETOK_F32;
        int64_t b = rnd(1, 2), hkv = rnd(1, 3), group = i >= 2 ? rnd(1, 4) : 1;
        int64_t hq = hkv * group, tq = i == 3 ? 1 : rnd(1, 40), tk = rnd(1, 90);
        int64_t d = i == 5 ? 128 : rnd(1, 80), dv = i == 4 || i == 10 ? rnd(1, 80) : d;
        if (i == 6)
            tk = rnd(200, 400); /* more keys than one tile */
        if (i == 7) {           /* heads wider than any fused kernel keeps in registers */
            d = rnd(257, 520);
            dv = rnd(0, 1) ? d : rnd(257, 520);
            tq = rnd(1, 64);
            tk = rnd(1, 64);
        }
        /* 8: a decode step over a KV cache prefix; 9: a prefill chunk after cached keys;
         * 11: a long decode step (keys split across blocks); all grouped-query */
        if (i == 8 || i == 9 || i == 11 || i == 12 || i == 13) {
            bool prefill = i == 9 || i == 13;
            c->kv_view = KV_CACHE_PREFIX;
            group = rnd(2, 4);
            hq = hkv * group;
            b = prefill ? rnd(1, 2) : 1;
            tq = prefill ? rnd(2, 40) : 1;
            tk = i == 11 ? rnd(600, 1500) : tq + rnd(0, 300);
            d = dv = i == 8 ? rnd(1, 80) : (int64_t[]){40, 64, 80, 128}[rnd(0, 3)];
        }
        if (i == 10)
            c->kv_view = KV_TOKEN_MAJOR;
        bool causal = i == 1 || i == 3 || i == 6 || i == 8 || i == 9 || i >= 11;
        if (causal && tk < tq)
            tk = tq;
        c->p.p.attention.causal = causal;
        c->p.p.attention.scale = i == 4 ? 0.3f : 0.0f;
        c->start = tk;
        add_input(c, SETOK_F32, 4, (int64_t[]){b, hq, tq, d}, -1, 1);
        if (c->kv_view == KV_CACHE_PREFIX) {
            int64_t max_ctx = tk + rnd(1, 64);
            add_input(c, SETOK_F32, 4, (int64_t[]){b, hkv, max_ctx, d}, -1, 1);
            add_input(c, SETOK_F32, 4, (int64_t[]){b, hkv, max_ctx, dv}, -1, 1);
        } else if (c->kv_view == KV_TOKEN_MAJOR) {
            add_input(c, SETOK_F32, 4, (int64_t[]){b, tk, hkv, d}, -1, 1);
            add_input(c, SETOK_F32, 4, (int64_t[]){b, tk, hkv, dv}, -1, 1);
        } else {
            add_input(c, SETOK_F32, 4, (int64_t[]){b, hkv, tk, d}, -1, 1);
            add_input(c, SETOK_F32, 4, (int64_t[]){b, hkv, tk, dv}, -1, 1);
        }
        if (i == 2 || i == 4 || i == 7 || i == 10) {
            add_input(c, SETOK_F32, 2, (int64_t[]){tq, tk}, 0, 0);
            fill_mask(&c->in[3]);
        }
        add_output(c, SETOK_F32, 4, (int64_t[]){b, hq, tq, dv});
        static const char *const views[] = {"", " cache-prefix", " token-major"};
        snprintf(c->label, sizeof c->label, "B=%lld Hq=%lld Hkv=%lld Tq=%lld Tk=%lld D=%lld "
                 "Dv=%lld%s%s%s%s%s", (long long)b, (long long)hq, (long long)hkv, (long long)tq,
                 (long long)tk, (long long)d, (long long)dv, causal ? " causal" : "",
                 c->n_in > 3 ? " +mask" : "", views[c->kv_view],
                 c->kv_dtype != SETOK_F32 ? " k,v " : "",
                 c->kv_dtype != SETOK_F32 ? setok_dtype_name(c->kv_dtype) : "");
    }
    return n;
}

static int gen_conv_op(tcase *cases, setok_op op)
{
    int n = 0;
    bool tr = op == SETOK_OP_CONV_TRANSPOSE2D;
    for (int i = 0; i < 6; i++) {
        tcase *c = new_case(cases, &n, op, run_conv);
        int64_t k = tr ? 2 : (i < 2 ? 1 : i < 5 ? 3 : rnd(2, 5));
        int64_t nb = rnd(1, 2), ch = rnd(1, 9), oc = rnd(1, 9), h = rnd(k, 15), w = rnd(k, 13);
        int stride = tr ? (i == 5 ? 1 : 2) : (i % 2 ? 2 : 1), pad = tr ? 0 : (k == 3 ? 1 : 0);
        if (!tr && i == 5)
            stride = (int)k; /* patch embedding */
        c->p.p.conv.stride_h = c->p.p.conv.stride_w = stride;
        c->p.p.conv.pad_h = c->p.p.conv.pad_w = pad;
        int64_t oh = tr ? (h - 1) * stride + k : (h + 2 * pad - k) / stride + 1;
        int64_t ow = tr ? (w - 1) * stride + k : (w + 2 * pad - k) / stride + 1;
        add_input(c, SETOK_F32, 4, (int64_t[]){nb, ch, h, w}, -1, 1);
        if (tr)
            add_input(c, SETOK_F32, 4, (int64_t[]){ch, oc, k, k}, -1, 1);
        else
            add_input(c, SETOK_F32, 4, (int64_t[]){oc, ch, k, k}, -1, 1);
        if (i != 2)
            add_input(c, SETOK_F32, 1, &oc, -1, 1);
        add_output(c, SETOK_F32, 4, (int64_t[]){nb, oc, oh, ow});
        snprintf(c->label, sizeof c->label, "N=%lld C=%lld OC=%lld %lldx%lld k=%lld s=%d p=%d",
                 (long long)nb, (long long)ch, (long long)oc, (long long)h, (long long)w,
                 (long long)k, stride, pad);
    }
    return n;
}

static int gen_conv2d(tcase *cases) { return gen_conv_op(cases, SETOK_OP_CONV2D); }
static int gen_conv_transpose2d(tcase *cases)
{
    return gen_conv_op(cases, SETOK_OP_CONV_TRANSPOSE2D);
}

static int gen_upsample(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_UPSAMPLE_NEAREST, run_upsample);
        int f = i == 2 ? 3 : 2;
        int64_t s[4];
        random_shape(4, s, 9);
        c->p.p.upsample.factor = f;
        add_input(c, SETOK_F32, 4, s, -1, 1);
        add_output(c, SETOK_F32, 4, (int64_t[]){s[0], s[1], s[2] * f, s[3] * f});
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld, %lld] x%d", (long long)s[0],
                 (long long)s[1], (long long)s[2], (long long)s[3], f);
    }
    return n;
}

static int gen_get_rows(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_GET_ROWS, run_get_rows);
        int64_t v = rnd(1, 300), d = rnd(1, 70), b = rnd(1, 3), t = rnd(1, 20);
        add_input(c, SETOK_F32, 2, (int64_t[]){v, d}, -1, 1);
        add_input(c, SETOK_I32, 2, (int64_t[]){b, t}, 0, (float)(v - 1));
        add_output(c, SETOK_F32, 3, (int64_t[]){b, t, d});
        snprintf(c->label, sizeof c->label, "table [%lld, %lld] ids [%lld, %lld]", (long long)v,
                 (long long)d, (long long)b, (long long)t);
    }
    return n;
}

static int gen_resize(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_RESIZE_BICUBIC, run_resize);
        int64_t nb = 1, ch = rnd(1, 8), h = rnd(1, 24), w = rnd(1, 24);
        int64_t oh = i == 0 ? 2 * h : rnd(1, 40), ow = i == 0 ? 2 * w : rnd(1, 40);
        c->p.p.resize.align_corners = i == 3;
        add_input(c, SETOK_F32, 4, (int64_t[]){nb, ch, h, w}, -1, 1);
        add_output(c, SETOK_F32, 4, (int64_t[]){nb, ch, oh, ow});
        snprintf(c->label, sizeof c->label, "C=%lld %lldx%lld -> %lldx%lld%s", (long long)ch,
                 (long long)h, (long long)w, (long long)oh, (long long)ow,
                 i == 3 ? " align_corners" : "");
    }
    return n;
}

/* Inputs on a coarse grid so that ties happen and must break by index. */
static void quantize(setok_tensor *t)
{
    int64_t n = setok_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        ((float *)t->data)[i] = roundf(((float *)t->data)[i] * 4.0f) / 4.0f;
}

static int gen_argmax(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_ARGMAX, run_argmax);
        int64_t r = rnd(1, 30), cols = i == 3 ? rnd(30000, 40000) : rnd(1, 500);
        add_input(c, SETOK_F32, 2, (int64_t[]){r, cols}, -3, 3);
        if (i == 1)
            quantize(&c->in[0]);
        add_output(c, SETOK_I32, 1, &r);
        snprintf(c->label, sizeof c->label, "[%lld, %lld]%s", (long long)r, (long long)cols,
                 i == 1 ? " with ties" : "");
    }
    return n;
}

static int gen_topk(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_TOPK, run_topk);
        int64_t r = rnd(1, 12), cols = i == 3 ? rnd(30000, 40000) : rnd(1, 300);
        int64_t k = i == 2 ? cols : rnd(1, cols < 50 ? cols : 50);
        c->p.p.topk.k = (int)k;
        add_input(c, SETOK_F32, 2, (int64_t[]){r, cols}, -3, 3);
        if (i == 1)
            quantize(&c->in[0]);
        add_output(c, SETOK_F32, 2, (int64_t[]){r, k});
        add_output(c, SETOK_I32, 2, (int64_t[]){r, k});
        snprintf(c->label, sizeof c->label, "[%lld, %lld] k=%lld%s", (long long)r,
                 (long long)cols, (long long)k, i == 1 ? " with ties" : "");
    }
    return n;
}

static int gen_copy(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 2; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_COPY, run_copy);
        int nd = (int)rnd(1, 4);
        int64_t s[4];
        random_shape(nd, s, 12);
        add_input(c, i ? SETOK_I32 : SETOK_F32, nd, s, -1000, 1000);
        add_output(c, i ? SETOK_I32 : SETOK_F32, nd, s);
        setok_tensor_describe(&c->in[0], c->label, sizeof c->label);
    }
    return n;
}

static int gen_permute(tcase *cases)
{
    int n = 0;
    static const int perms[][4] = {{1, 0, 2, 3}, {0, 2, 1, 3}, {3, 2, 1, 0}, {0, 1, 3, 2},
                                   {2, 0, 3, 1}};
    for (int i = 0; i < 5; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_COPY, run_permute);
        int64_t s[4], o[4];
        random_shape(4, s, 9);
        memcpy(c->perm, perms[i], sizeof c->perm);
        for (int j = 0; j < 4; j++)
            o[j] = s[c->perm[j]];
        add_input(c, SETOK_F32, 4, s, -1, 1);
        add_output(c, SETOK_F32, 4, o);
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld, %lld] perm %d%d%d%d",
                 (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], c->perm[0],
                 c->perm[1], c->perm[2], c->perm[3]);
    }
    return n;
}

static int gen_slice(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_COPY, run_slice);
        int64_t s[3], o[3];
        random_shape(3, s, 12);
        c->axis = i % 3;
        int64_t len = rnd(1, s[c->axis]);
        c->start = rnd(0, s[c->axis] - len);
        memcpy(o, s, sizeof o);
        o[c->axis] = len;
        add_input(c, SETOK_F32, 3, s, -1, 1);
        add_output(c, SETOK_F32, 3, o);
        snprintf(c->label, sizeof c->label, "[%lld, %lld, %lld] axis %d [%lld, %lld)",
                 (long long)s[0], (long long)s[1], (long long)s[2], c->axis,
                 (long long)c->start, (long long)(c->start + len));
    }
    return n;
}

static int gen_concat(tcase *cases)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        tcase *c = new_case(cases, &n, SETOK_OP_COPY, run_concat);
        int64_t s[3];
        random_shape(3, s, 10);
        c->axis = i;
        int parts = (int)rnd(2, 4);
        int64_t total = 0;
        for (int j = 0; j < parts; j++) {
            int64_t p[3] = {s[0], s[1], s[2]};
            p[c->axis] = rnd(1, 6);
            total += p[c->axis];
            add_input(c, SETOK_F32, 3, p, -1, 1);
        }
        s[c->axis] = total;
        add_output(c, SETOK_F32, 3, s);
        snprintf(c->label, sizeof c->label, "%d parts along axis %d -> [%lld, %lld, %lld]", parts,
                 c->axis, (long long)s[0], (long long)s[1], (long long)s[2]);
    }
    return n;
}

static const struct {
    const char *name;
    gen_fn gen;
} tests[] = {
    {"matmul", gen_matmul}, {"linear", gen_linear}, {"add", gen_add}, {"mul", gen_mul},
    {"scale", gen_scale}, {"layernorm", gen_layernorm}, {"rmsnorm", gen_rmsnorm},
    {"groupnorm", gen_groupnorm}, {"softmax", gen_softmax}, {"gelu", gen_gelu},
    {"gelu_tanh", gen_gelu_tanh}, {"quick_gelu", gen_quick_gelu}, {"silu", gen_silu},
    {"relu", gen_relu},
    {"swiglu", gen_swiglu}, {"geglu", gen_geglu}, {"rope", gen_rope},
    {"attention", gen_attention}, {"conv2d", gen_conv2d},
    {"conv_transpose2d", gen_conv_transpose2d}, {"upsample_nearest", gen_upsample},
    {"get_rows", gen_get_rows}, {"resize_bicubic", gen_resize}, {"argmax", gen_argmax},
    {"topk", gen_topk}, {"copy", gen_copy}, {"permute", gen_permute}, {"slice", gen_slice},
    {"concat", gen_concat},
};

/* ---------------------------------------------------------------------------
 * execution and comparison */

/* Runs c on be with float tensors in dtype; outputs come back as doubles. */
static setok_status execute(setok_backend *be, setok_dtype dtype, const tcase *c,
                            double *results[2], setok_error *err)
{
    setok_tensor in[4], out[2];
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    setok_status st = SETOK_OK;
    for (int i = 0; i < c->n_in && st == SETOK_OK; i++) {
        const setok_tensor *h = &c->in[i];
        if (!h->data)
            continue;
        setok_dtype dt = h->dtype == SETOK_I32 ? SETOK_I32
                       : (c->keep_f32 >> i) & 1u ? SETOK_F32 : dtype;
        if ((i == 1 || i == 2) && c->p.op == SETOK_OP_ATTENTION && dtype == SETOK_F32)
            dt = c->kv_dtype; /* a compact KV cache under f32 queries */
        st = setok_tensor_alloc(&in[i], be, dt, h->ndim, h->shape, err);
        int64_t n = setok_tensor_numel(h);
        void *tmp = malloc((size_t)(n ? n : 1) * 4);
        for (int64_t j = 0; j < n && st == SETOK_OK; j++) {
            if (dt == SETOK_I32)
                ((int32_t *)tmp)[j] = ((int32_t *)h->data)[j];
            else
                setok_store_f32(tmp, dt, j, ((float *)h->data)[j]);
        }
        if (st == SETOK_OK)
            st = setok_tensor_upload(&in[i], tmp, err);
        free(tmp);
    }
    for (int i = 0; i < c->n_out && st == SETOK_OK; i++) {
        setok_dtype dt = c->out[i].dtype == SETOK_I32 ? SETOK_I32 : dtype;
        st = setok_tensor_alloc(&out[i], be, dt, c->out[i].ndim, c->out[i].shape, err);
    }
    if (st == SETOK_OK)
        st = c->run(be, c, out, in, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(be, err);
    for (int i = 0; i < c->n_out && st == SETOK_OK; i++) {
        int64_t n = setok_tensor_numel(&out[i]);
        void *tmp = malloc((size_t)(n ? n : 1) * 4);
        results[i] = malloc((size_t)(n ? n : 1) * sizeof(double));
        st = setok_tensor_download(tmp, &out[i], err);
        for (int64_t j = 0; j < n && st == SETOK_OK; j++)
            results[i][j] = out[i].dtype == SETOK_I32 ? (double)((int32_t *)tmp)[j]
                                                      : setok_load_f32(tmp, out[i].dtype, j);
        free(tmp);
    }
    for (int i = 0; i < 4; i++)
        if (in[i].data)
            setok_tensor_free(&in[i]);
    for (int i = 0; i < 2; i++)
        if (out[i].data)
            setok_tensor_free(&out[i]);
    return st;
}

static double tolerance(setok_dtype dtype)
{
    switch (dtype) {
    case SETOK_F16: return 5e-3;
    case SETOK_BF16: return 3e-2;
    default: return 2e-5;
    }
}

/* Max |got - want| over the output, relative to max(|want|) but at least 1
 * (inputs are O(1), so this is an absolute tolerance for small outputs: the
 * f32 formulas PyTorch uses too, e.g. gelu's 1 + erf(x) for very negative x,
 * cancel there); non-finite values must agree exactly. */
static double compare(const double *got, const double *want, int64_t n, bool exact,
                      int64_t *worst)
{
    double max_ref = 1.0, max_diff = 0.0;
    *worst = -1;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs(want[i]) > max_ref)
            max_ref = fabs(want[i]);
    for (int64_t i = 0; i < n; i++) {
        double dd;
        if (!isfinite(want[i]) || !isfinite(got[i]))
            dd = (isnan(want[i]) && isnan(got[i])) || want[i] == got[i] ? 0.0 : INFINITY;
        else
            dd = fabs(got[i] - want[i]);
        if (exact && dd != 0.0)
            dd = INFINITY;
        if (dd > max_diff || (isinf(dd) && *worst < 0)) {
            max_diff = dd;
            *worst = i;
        }
    }
    return max_diff / max_ref;
}

/* A host tensor's elements (any strides, up to 4 dims) copied into a new contiguous one. */
static setok_tensor host_contiguous(const setok_tensor *view)
{
    setok_tensor t = setok_tensor_make(NULL, NULL, view->dtype, view->ndim, view->shape);
    int64_t n = setok_tensor_numel(&t), idx[4];
    t.data = malloc((size_t)(n ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = i, off = 0;
        for (int ax = view->ndim - 1; ax >= 0; ax--) {
            idx[ax] = rest % view->shape[ax];
            rest /= view->shape[ax];
            off += idx[ax] * view->stride[ax];
        }
        ((float *)t.data)[i] = ((const float *)view->data)[off];
    }
    return t;
}

/* Attention over k / v views must equal, bit for bit, the reference over contiguous copies of
 * the same views: this checks the reference's own stride handling. */
static bool views_match_contiguous(setok_backend *ref, setok_dtype dtype, const tcase *c,
                                   const double *want, char *detail, size_t size)
{
    tcase twin = *c;
    setok_error err = {0};
    if (kv_views(c, c->in, &twin.in[1], &twin.in[2], &err) != SETOK_OK) {
        snprintf(detail, size, "views: %s", err.message);
        return false;
    }
    twin.in[1] = host_contiguous(&twin.in[1]);
    twin.in[2] = host_contiguous(&twin.in[2]);
    twin.kv_view = KV_CONTIGUOUS;
    double *flat[2] = {NULL, NULL};
    bool ok = execute(ref, dtype, &twin, flat, &err) == SETOK_OK;
    if (!ok)
        snprintf(detail, size, "reference on contiguous k, v failed: %s", err.message);
    int64_t worst = -1, total = setok_tensor_numel(&c->out[0]);
    if (ok && compare(flat[0], want, total, true, &worst) != 0.0) {
        snprintf(detail, size, "reference over views differs from contiguous at %lld: %.8g vs "
                 "%.8g", (long long)worst, want[worst], flat[0][worst]);
        ok = false;
    }
    free(flat[0]);
    free(twin.in[1].data);
    free(twin.in[2].data);
    return ok;
}

typedef struct options {
    const char *backend, *only;
    setok_dtype dtypes[3];
    int n_dtypes;
    uint64_t seed;
} options;

static int run_test(setok_backend *be, setok_backend *ref, int index, const options *o,
                    int *failures)
{
    int cases_run = 0;
    for (int di = 0; di < o->n_dtypes; di++) {
        setok_dtype dtype = o->dtypes[di];
        tcase cases[MAX_CASES];
        int n = tests[index].gen(cases);
        for (int ci = 0; ci < n; ci++) {
            tcase *c = &cases[ci];
            double *got[2] = {NULL, NULL}, *want[2] = {NULL, NULL};
            setok_error err = {0};
            bool ok = true;
            char detail[SETOK_ERROR_MAX + 128] = "";
            double worst_err = 0.0;
            if (execute(ref, dtype, c, want, &err) != SETOK_OK) {
                snprintf(detail, sizeof detail, "reference failed: %s", err.message);
                ok = false;
            } else if (c->kv_view != KV_CONTIGUOUS &&
                       !views_match_contiguous(ref, dtype, c, want[0], detail, sizeof detail)) {
                ok = false;
            } else if (execute(be, dtype, c, got, &err) != SETOK_OK) {
                snprintf(detail, sizeof detail, "%s failed: %s", o->backend, err.message);
                ok = false;
            } else {
                for (int k = 0; k < c->n_out; k++) {
                    int64_t worst, total = setok_tensor_numel(&c->out[k]);
                    bool exact = c->out[k].dtype == SETOK_I32 || c->p.op == SETOK_OP_COPY ||
                                 c->p.op == SETOK_OP_UPSAMPLE_NEAREST ||
                                 c->p.op == SETOK_OP_GET_ROWS ||
                                 (c->p.op == SETOK_OP_TOPK && k == 0);
                    double e = compare(got[k], want[k], total, exact, &worst);
                    if (e > worst_err)
                        worst_err = e;
                    if (e > tolerance(dtype) * c->tol_scale) {
                        ok = false;
                        snprintf(detail, sizeof detail, "output %d element %lld: got %.8g, "
                                 "want %.8g", k, (long long)worst, got[k][worst], want[k][worst]);
                    }
                }
            }
            printf("%-4s %-17s %-5s %-60s err %.2e %s\n", ok ? "ok" : "FAIL", tests[index].name,
                   setok_dtype_name(dtype), c->label, worst_err, detail);
            if (!ok)
                (*failures)++;
            cases_run++;
            for (int k = 0; k < 2; k++) {
                free(got[k]);
                free(want[k]);
            }
            free_case(c);
        }
    }
    return cases_run;
}

static int parse_args(int argc, char **argv, options *o)
{
    o->backend = "cpu";
    o->only = NULL;
    o->n_dtypes = 0;
    o->seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    const char *dtypes = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--backend"))
            o->backend = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--op"))
            o->only = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--seed"))
            o->seed = strtoull(argv[++i], NULL, 0);
        else if (i + 1 < argc && !strcmp(argv[i], "--dtype"))
            dtypes = argv[++i];
        else {
            fprintf(stderr, "usage: test-ops [--backend cpu|cuda] [--op NAME] [--seed N] "
                            "[--dtype f32,f16,bf16]\n");
            return 2;
        }
    }
    if (!dtypes)
        dtypes = strcmp(o->backend, "cuda") ? "f32" : "f32,f16,bf16";
    compact_kv = !strcmp(o->backend, "cpu"); /* GPUs keep the cache in the model's dtype */
    char list[64];
    snprintf(list, sizeof list, "%s", dtypes);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && o->n_dtypes < 3;
         t = strtok_r(NULL, ",", &save)) {
        setok_dtype d = !strcmp(t, "f32") ? SETOK_F32 : !strcmp(t, "f16") ? SETOK_F16
                      : !strcmp(t, "bf16") ? SETOK_BF16 : SETOK_DTYPE_COUNT;
        if (d == SETOK_DTYPE_COUNT) {
            fprintf(stderr, "test-ops: unknown dtype '%s'\n", t);
            return 2;
        }
        o->dtypes[o->n_dtypes++] = d;
    }
    return o->n_dtypes ? 0 : 2;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return 2;
    setok_error err = {0};
    setok_backend *be = NULL, *ref = NULL;
    setok_status st = setok_backend_create_by_name(&be, o.backend, 0, &err);
    if (st == SETOK_ERR_UNSUPPORTED) {
        printf("skipped: %s\n", err.message);
        return 77;
    }
    if (st != SETOK_OK || setok_backend_cpu_reference_create(&ref, &err) != SETOK_OK) {
        fprintf(stderr, "test-ops: %s\n", err.message);
        return 1;
    }
    printf("backend %s (%s), seed %llu\n", setok_backend_name(be), setok_backend_description(be),
           (unsigned long long)o.seed);
    int failures = 0, cases = 0, matched = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (o.only && strcmp(o.only, tests[i].name))
            continue;
        matched++;
        rng_state = o.seed * 0x9E3779B97F4A7C15ull + i + 1;
        cases += run_test(be, ref, (int)i, &o, &failures);
    }
    setok_backend_free(be);
    setok_backend_free(ref);
    if (!matched) {
        fprintf(stderr, "test-ops: no test named '%s'\n", o.only);
        return 2;
    }
    printf("%d passed, %d failed\n", cases - failures, failures);
    return failures ? 1 : 0;
}
