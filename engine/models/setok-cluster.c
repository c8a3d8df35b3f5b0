/* setok-cluster.c — SeTok clustering on the host: density peaks (official
 * SetokTokenizer.cluster_dpc_knn), soft clustering (paper Algorithm 1), fixed-k,
 * the 2-D position embedding (official PositionalEncoding2D), per-token
 * statistics and the average mode. Python transcriptions: tools/setokim/setok.py
 * (cluster_dpc_knn, cluster_soft, cluster_fixed, position_embedding_2d).
 *
 * The rules, tie-breaks included, are in setok.h. Distances are computed directly as
 * sums of squared differences in a fixed order (see pairwise_sq_distances), so they are
 * exact-symmetric, zero on the diagonal and identical for identical features: ties then
 * really are ties, and the index rules decide them. That O(N^2 d) kernel and the O(N^2)
 * density and delta passes run on the cpu backend's threads, with the same bits for any
 * thread count; centre selection and labelling are serial. All memory lives in the
 * setok_clusters block, reused from call to call (no allocation while N and d do not grow). */
#include "setok/models/setok.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu-impl.h"

// ----------------------------------------------------------------------------
// parameters

static const char *const mode_names[] = {
    [SETOK_CLUSTER_DPC] = "dpc",
    [SETOK_CLUSTER_SOFT] = "soft",
    [SETOK_CLUSTER_FIXED] = "fixed",
};
_Static_assert(sizeof mode_names / sizeof mode_names[0] == SETOK_CLUSTER_MODE_COUNT,
               "every cluster mode needs a name");

setok_cluster_params setok_cluster_params_default(void)
{
    setok_cluster_params p = {
        .mode = SETOK_CLUSTER_DPC,
        .k = 64,
        .threshold = 0.55f,
        .min_clusters = 1,
        .max_clusters = 0,
        .fixed_k = 64,
    };
    return p;
}

const char *setok_cluster_mode_name(setok_cluster_mode mode)
{
    return (unsigned)mode < SETOK_CLUSTER_MODE_COUNT ? mode_names[mode] : "?";
}

setok_cluster_mode setok_cluster_mode_from_name(const char *name)
{
    for (int i = 0; i < SETOK_CLUSTER_MODE_COUNT; i++)
        if (name != NULL && !strcmp(mode_names[i], name))
            return (setok_cluster_mode)i;
    return SETOK_CLUSTER_MODE_COUNT;
}

static setok_status check_params(const setok_cluster_params *p, int grid_h, int grid_w, int d,
                                 setok_error *err)
{
    if (p == NULL)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_cluster: params is NULL");
    if (grid_h < 1 || grid_w < 1 || d < 1)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: grid %d x %d with d = %d: every size must be >= 1",
                          grid_h, grid_w, d);
    // N^2 floats must be addressable and N * d must fit in an int64 index
    if ((int64_t)grid_h * grid_w > 46340)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: grid %d x %d has more than 46340 patches", grid_h,
                          grid_w);
    int n = grid_h * grid_w;
    if ((unsigned)p->mode >= SETOK_CLUSTER_MODE_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_cluster: unknown mode %d", (int)p->mode);
    if (p->k < 1 || p->k > n)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: k = %d must be in [1, %d] (%d x %d patches)", p->k, n,
                          grid_h, grid_w);
    if (!isfinite(p->threshold))
        return setok_fail(err, SETOK_ERR_INPUT, "setok_cluster: threshold must be finite");
    if (p->min_clusters < 1 || p->min_clusters > n)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: min_clusters = %d must be in [1, %d]", p->min_clusters,
                          n);
    if (p->max_clusters != 0 && p->max_clusters < p->min_clusters)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: max_clusters = %d is below min_clusters = %d "
                          "(0 means no cap)", p->max_clusters, p->min_clusters);
    if (p->mode == SETOK_CLUSTER_FIXED && (p->fixed_k < 1 || p->fixed_k > n))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: fixed_k = %d must be in [1, %d]", p->fixed_k, n);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// memory: one block holds the result arrays and the scratch

typedef struct ranked {
    float key;
    int32_t index;
} ranked;

typedef struct cluster_scratch {
    float *x;        // [N, d] features + position embedding
    float *d2;       // [N, N] squared normalized distances
    float *rows;     // [chunks, 2N] selection buffers, one per thread
    int chunks;
    double *scope;   // [N] soft scope
    ranked *order;   // [N] sort buffer
    int32_t *rank;   // [N] position of each patch in density order
    int32_t *centre; // [N] centre patch of each token
} cluster_scratch;

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

// Carves the block into arrays; with base NULL only measures. Returns the size.
static size_t layout(setok_clusters *c, cluster_scratch *s, unsigned char *base, size_t n,
                     size_t d, size_t chunks, bool soft)
{
    size_t off = 0;
#define CARVE(ptr, count)                                                                      \
    do {                                                                                       \
        if (base != NULL)                                                                      \
            (ptr) = (void *)(base + off);                                                      \
        off += align64((count) * sizeof *(ptr));                                               \
    } while (0)
    CARVE(c->labels, n);
    CARVE(c->tokens, n);
    CARVE(c->density, n);
    CARVE(c->delta, n);
    CARVE(c->score, n);
    if (soft)
        CARVE(c->soft_masks, n * n);
    CARVE(s->x, n * d);
    CARVE(s->d2, n * n);
    CARVE(s->rows, 2 * n * chunks);
    CARVE(s->scope, n);
    CARVE(s->order, n);
    CARVE(s->rank, n);
    CARVE(s->centre, n);
#undef CARVE
    return off;
}

static setok_status reserve(setok_clusters *c, cluster_scratch *s, int n, int d, int chunks,
                            bool soft, setok_error *err)
{
    setok_clusters probe = {0};
    cluster_scratch unused = {0};
    size_t bytes = layout(&probe, &unused, NULL, (size_t)n, (size_t)d, (size_t)chunks, soft);
    if (c->memory == NULL || c->memory_bytes < bytes) {
        free(c->memory);
        c->memory = NULL;
        c->memory_bytes = 0;
        c->memory = aligned_alloc(64, bytes);
        if (c->memory == NULL)
            return setok_fail(err, SETOK_ERR_NOMEM,
                              "setok_cluster: cannot allocate %zu bytes for %d patches", bytes,
                              n);
        c->memory_bytes = bytes;
    }
    c->soft_masks = NULL;
    layout(c, s, c->memory, (size_t)n, (size_t)d, (size_t)chunks, soft);
    s->chunks = chunks;
    return SETOK_OK;
}

void setok_clusters_free(setok_clusters *c)
{
    if (c == NULL)
        return;
    free(c->memory);
    memset(c, 0, sizeof *c);
}

// ----------------------------------------------------------------------------
// position embedding

setok_status setok_position_embedding_2d(float *out, int h, int w, int d, setok_error *err)
{
    // out: [h * w, d]; channels [0, C) encode the row, [C, 2C) the column, cut at d
    if (out == NULL || h < 1 || w < 1 || d < 1)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "position embedding: grid %d x %d with d = %d: sizes must be >= 1",
                          h, w, d);
    int half = 2 * ((d + 3) / 4);
    int row_ch = d < half ? d : half;  // channels taken by the row part
    // emb[r, 0, :C] (row part) and emb[0, col, C:] (column part) first, one pow per pair
    for (int ch = 0; ch < half; ch += 2) {
        double freq = pow(10000.0, -(double)ch / (double)half);
        for (int r = 0; r < h && ch < row_ch; r++) {
            float *o = out + (int64_t)r * w * d + ch;
            o[0] = (float)sin(r * freq);
            if (ch + 1 < row_ch)
                o[1] = (float)cos(r * freq);
        }
        for (int col = 0; col < w && half + ch < d; col++) {
            float *o = out + (int64_t)col * d + half + ch;
            o[0] = (float)sin(col * freq);
            if (half + ch + 1 < d)
                o[1] = (float)cos(col * freq);
        }
    }
    // then copy them across: row parts along each row, column parts down each column
    for (int r = 0; r < h; r++) {
        const float *first = out + (int64_t)r * w * d;
        for (int col = 0; col < w; col++) {
            float *o = out + ((int64_t)r * w + col) * d;
            if (col > 0)
                memcpy(o, first, (size_t)row_ch * sizeof *o);
            if (r > 0 && d > half)
                memcpy(o + half, out + (int64_t)col * d + half, (size_t)(d - half) * sizeof *o);
        }
    }
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// distances and densities

// 16 float lanes: the shape of every vector loop here (GCC / clang vector extension);
// v8f holds half of them where registers are 8 lanes wide
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

// x [N, d] = features (+ the position embedding), in the 64-byte aligned scratch
static setok_status prepare_features(float *x, const float *features, int grid_h, int grid_w,
                                     int d, bool add_pe, setok_error *err)
{
    int64_t count = (int64_t)grid_h * grid_w * d;
    // 0 * inf and 0 * NaN are NaN: one vector pass tells whether to look for a bad value
    v16f poison = {0};
    int64_t full = count / 16 * 16;
    for (int64_t i = 0; i < full; i += 16) {
        v16f v;
        memcpy(&v, features + i, sizeof v);
        poison += v * 0.0f;
    }
    float any = 0.0f;
    for (int lane = 0; lane < 16; lane++)
        any += poison[lane];
    for (int64_t i = full; i < count; i++)
        any += 0.0f * features[i];
    if (any != 0.0f) {
        for (int64_t i = 0; i < count; i++)
            if (!isfinite(features[i]))
                return setok_fail(err, SETOK_ERR_INPUT,
                                  "setok_cluster: feature [%lld, %lld] is not finite",
                                  (long long)(i / d), (long long)(i % d));
    }
    if (add_pe) {
        setok_position_embedding_2d(x, grid_h, grid_w, d, NULL);
        for (int64_t i = 0; i < count; i++)
            x[i] += features[i];
    } else {
        memcpy(x, features, (size_t)count * sizeof *x);
    }
    return SETOK_OK;
}

/* Squared distances are sums of (x_a - x_b)^2 in 16 interleaved lanes over the channels,
 * the lanes added in a fixed tree, the tail last. Every pair is computed the same way
 * whatever the tiling, thread count or instruction set (the AVX-512, AVX2 and plain builds
 * of the kernel differ only in how many pairs they keep in registers; no FMA, and c11 mode
 * does not contract a * b + c), so D_ab == D_ba, D_aa == 0, identical features give
 * identical rows, and results match bit for bit across machines. */
enum { DIST_BLOCK = 32 };

typedef struct dist_job {
    float *d2;
    const float *x;
    int64_t n, blocks;
    int d;
    float inv_d;
} dist_job;

// lanes: the 16 lane sums of one pair; adds the channels past the last full 16 and stores
static inline __attribute__((always_inline)) void dist_store(const dist_job *t,
                                                             const float *lanes, int64_t a,
                                                             int64_t b)
{
    const float *v = lanes;
    float sum = (((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))) +
                (((v[8] + v[9]) + (v[10] + v[11])) + ((v[12] + v[13]) + (v[14] + v[15])));
    const float *xa = t->x + a * t->d, *xb = t->x + b * t->d;
    for (int c = t->d / 16 * 16; c < t->d; c++) {
        float e = xa[c] - xb[c];
        sum += e * e;
    }
    sum *= t->inv_d;
    t->d2[a * t->n + b] = sum;
    t->d2[b * t->n + a] = sum;
}

static inline __attribute__((always_inline)) void dist_store16(const dist_job *t,
                                                               const v16f *acc, int64_t a,
                                                               int64_t b)
{
    float lanes[16];
    memcpy(lanes, acc, sizeof lanes);
    dist_store(t, lanes, a, b);
}

// the same 16 lanes held as two halves (lanes 0-7, 8-15)
static inline __attribute__((always_inline)) void dist_store8x2(const dist_job *t,
                                                                const v8f *lo, const v8f *hi,
                                                                int64_t a, int64_t b)
{
    float lanes[16];
    memcpy(lanes, lo, sizeof *lo);
    memcpy(lanes + 8, hi, sizeof *hi);
    dist_store(t, lanes, a, b);
}

#define DIST_LOAD(dst, row) memcpy(&(dst), t->x + (row) * t->d + c, sizeof(dst))
#define DIST_ACC(acc, u, v)                                                                    \
    do {                                                                                       \
        __typeof__(acc) e_ = (u) - (v);                                                        \
        (acc) += e_ * e_;                                                                      \
    } while (0)

// rows a0 | a0 + 1 against b0 .. b0 + 3: 8 accumulators (for 32 vector registers)
static inline __attribute__((always_inline)) void dist_tile_2x4(const dist_job *t, int64_t a0,
                                                                int64_t a1, const int64_t *b)
{
    v16f s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
    for (int c = 0; c + 16 <= t->d; c += 16) {
        v16f u0, u1, v;
        DIST_LOAD(u0, a0);
        DIST_LOAD(u1, a1);
        DIST_LOAD(v, b[0]);
        DIST_ACC(s00, u0, v);
        DIST_ACC(s10, u1, v);
        DIST_LOAD(v, b[1]);
        DIST_ACC(s01, u0, v);
        DIST_ACC(s11, u1, v);
        DIST_LOAD(v, b[2]);
        DIST_ACC(s02, u0, v);
        DIST_ACC(s12, u1, v);
        DIST_LOAD(v, b[3]);
        DIST_ACC(s03, u0, v);
        DIST_ACC(s13, u1, v);
    }
    dist_store16(t, &s00, a0, b[0]);
    dist_store16(t, &s01, a0, b[1]);
    dist_store16(t, &s02, a0, b[2]);
    dist_store16(t, &s03, a0, b[3]);
    dist_store16(t, &s10, a1, b[0]);
    dist_store16(t, &s11, a1, b[1]);
    dist_store16(t, &s12, a1, b[2]);
    dist_store16(t, &s13, a1, b[3]);
}

// row a0 against b0 .. b0 + 3 in 8-lane halves: 8 accumulators (for 16 registers; GCC
// keeps 16-lane vectors in memory when the target only has 8-lane registers)
static inline __attribute__((always_inline)) void dist_tile_1x4(const dist_job *t, int64_t a0,
                                                                const int64_t *b)
{
    v8f l0 = {0}, h0 = {0}, l1 = {0}, h1 = {0}, l2 = {0}, h2 = {0}, l3 = {0}, h3 = {0};
    for (int c = 0; c + 16 <= t->d; c += 16) {
        v8f ul, uh, vl, vh;
        memcpy(&ul, t->x + a0 * t->d + c, sizeof ul);
        memcpy(&uh, t->x + a0 * t->d + c + 8, sizeof uh);
#define DIST_HALVES(row, lo, hi)                                                               \
    memcpy(&vl, t->x + (row) * t->d + c, sizeof vl);                                           \
    memcpy(&vh, t->x + (row) * t->d + c + 8, sizeof vh);                                       \
    DIST_ACC(lo, ul, vl);                                                                      \
    DIST_ACC(hi, uh, vh);
        DIST_HALVES(b[0], l0, h0)
        DIST_HALVES(b[1], l1, h1)
        DIST_HALVES(b[2], l2, h2)
        DIST_HALVES(b[3], l3, h3)
#undef DIST_HALVES
    }
    dist_store8x2(t, &l0, &h0, a0, b[0]);
    dist_store8x2(t, &l1, &h1, a0, b[1]);
    dist_store8x2(t, &l2, &h2, a0, b[2]);
    dist_store8x2(t, &l3, &h3, a0, b[3]);
}

#undef DIST_LOAD
#undef DIST_ACC

// tasks [begin, end) of the upper triangle of DIST_BLOCK x DIST_BLOCK blocks; a tile past
// the block's edge repeats its last row (the same value is stored twice)
static inline __attribute__((always_inline)) void dist_tasks_body(void *ctx, int64_t begin,
                                                                  int64_t end, bool two_rows)
{
    const dist_job *t = ctx;
    int64_t task = 0;
    for (int64_t bi = 0; bi < t->blocks; bi++) {
        for (int64_t bj = bi; bj < t->blocks; bj++, task++) {
            if (task < begin || task >= end)
                continue;
            int64_t a0 = bi * DIST_BLOCK, b0 = bj * DIST_BLOCK;
            int64_t a_end = t->n - a0 < DIST_BLOCK ? t->n : a0 + DIST_BLOCK;
            int64_t b_end = t->n - b0 < DIST_BLOCK ? t->n : b0 + DIST_BLOCK;
            for (int64_t a = a0; a < a_end; a += two_rows ? 2 : 1) {
                for (int64_t b = b0; b < b_end; b += 4) {
                    int64_t bs[4];
                    for (int q = 0; q < 4; q++)
                        bs[q] = b + q < b_end ? b + q : b_end - 1;
                    if (two_rows)
                        dist_tile_2x4(t, a, a + 1 < a_end ? a + 1 : a, bs);
                    else
                        dist_tile_1x4(t, a, bs);
                }
            }
        }
    }
}

static void dist_tasks(void *ctx, int64_t begin, int64_t end)
{
    dist_tasks_body(ctx, begin, end, false);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SETOK_DIST_X86 1
__attribute__((target("avx2"))) static void dist_tasks_avx2(void *ctx, int64_t begin,
                                                             int64_t end)
{
    dist_tasks_body(ctx, begin, end, false);
}

__attribute__((target("avx512f"))) static void dist_tasks_avx512(void *ctx, int64_t begin,
                                                                  int64_t end)
{
    dist_tasks_body(ctx, begin, end, true);
}
#else
#define SETOK_DIST_X86 0
#endif

// only the "cpu" backend has a thread pool; other host backends run on the caller's thread
static void run_rows(setok_backend *cpu, int64_t n, setok_range_fn fn, void *ctx)
{
    if (cpu != NULL && strcmp(setok_backend_name(cpu), "cpu") == 0)
        setok_cpu_parallel_for(cpu, n, 1, fn, ctx);
    else
        fn(ctx, 0, n);
}

static int pool_threads(setok_backend *cpu)
{
    return cpu != NULL && strcmp(setok_backend_name(cpu), "cpu") == 0 ? setok_cpu_threads(cpu)
                                                                        : 1;
}

// d2 [N, N] = |x_i - x_j|^2 / d from x [N, d]
static void pairwise_sq_distances(float *d2, setok_backend *cpu, const float *x, int n, int d)
{
    dist_job job = {.d2 = d2, .x = x, .n = n, .d = d, .inv_d = 1.0f / (float)d};
    job.blocks = (n + DIST_BLOCK - 1) / DIST_BLOCK;
    setok_range_fn fn = dist_tasks;
#if SETOK_DIST_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        fn = dist_tasks_avx512;
    else if (__builtin_cpu_supports("avx2"))
        fn = dist_tasks_avx2;
#endif
    run_rows(cpu, job.blocks * (job.blocks + 1) / 2, fn, &job);
}

// The sum of the k smallest of v[0, n): quickselect with branch-free three-way partitions.
// buf [2n]: the part below the pivot goes to buf[0, n), the part above to buf[n, 2n); a
// partition may overwrite the part it reads, only where it has already read. Pivots are
// medians of three, so every pass drops at least the pivot's copies.
static double sum_smallest(float *buf, const float *v, int n, int k)
{
    const float *src = v;
    float *less = buf, *more = buf + n;
    double sum = 0.0;
    int m = n;
    for (;;) {
        float a = src[0], b = src[m / 2], c = src[m - 1];
        float p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int nl = 0, ng = 0;
        for (int i = 0; i < m; i++) {
            float x = src[i];
            less[nl] = x;
            nl += x < p;
            more[ng] = x;
            ng += x > p;
        }
        int ne = m - nl - ng;
        if (k <= nl) {
            src = less;
            m = nl;
            continue;
        }
        for (int i = 0; i < nl; i++)
            sum += less[i];
        if (k <= nl + ne)
            return sum + (double)(k - nl) * p;
        sum += (double)ne * p;
        k -= nl + ne;
        src = more;
        m = ng;
    }
}

typedef struct row_job {
    float *out;         // [N] rho or delta
    float *rows;        // [chunks, 2N] selection buffers
    const float *d2;    // [N, N]
    const int32_t *rank;
    int n, k, chunks;
} row_job;

// chunk c of the rows: rho = exp(-mean of the k smallest d2), self included
static void density_chunk(void *ctx, int64_t begin, int64_t end)
{
    const row_job *t = ctx;
    for (int64_t chunk = begin; chunk < end; chunk++) {
        float *row = t->rows + chunk * 2 * t->n;
        for (int64_t i = chunk * t->n / t->chunks; i < (chunk + 1) * t->n / t->chunks; i++) {
            double sum = sum_smallest(row, t->d2 + i * t->n, t->n, t->k);
            t->out[i] = (float)exp(-sum / (double)t->k);
        }
    }
}

// rows [begin, end): delta = distance to the nearest denser patch; the densest: the largest
static void delta_rows(void *ctx, int64_t begin, int64_t end)
{
    const row_job *t = ctx;
    for (int64_t i = begin; i < end; i++) {
        const float *di = t->d2 + i * t->n;
        int32_t ri = t->rank[i];
        float best;
        if (ri == 0) {
            best = 0.0f;
            for (int j = 0; j < t->n; j++)
                best = di[j] > best ? di[j] : best;
        } else {
            best = INFINITY;
            for (int j = 0; j < t->n; j++) {  // branch-free, so it vectorizes
                float v = t->rank[j] < ri ? di[j] : INFINITY;
                best = v < best ? v : best;
            }
        }
        t->out[i] = sqrtf(best);
    }
}

static int by_key_desc(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

// order [N] = patches by (key descending, index ascending)
static void sort_by_key(ranked *order, const float *key, int n)
{
    for (int i = 0; i < n; i++) {
        order[i].key = key[i];
        order[i].index = i;
    }
    qsort(order, (size_t)n, sizeof *order, by_key_desc);
}

// rho [N], delta [N] from d2 [N, N]
static void density_peaks(float *rho, float *delta, cluster_scratch *s, setok_backend *cpu,
                          int n, int k)
{
    row_job job = {.out = rho, .rows = s->rows, .d2 = s->d2, .rank = s->rank, .n = n, .k = k};
    job.chunks = s->chunks;
    run_rows(cpu, job.chunks, density_chunk, &job);
    sort_by_key(s->order, rho, n);
    for (int p = 0; p < n; p++)
        s->rank[s->order[p].index] = p;
    job.out = delta;
    run_rows(cpu, n, delta_rows, &job);
}

// ----------------------------------------------------------------------------
// centres and labels

static int by_index(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

// centre [T] = the first `count` patches of the score order, then by patch index
static void take_centres(int32_t *centre, const ranked *by_score, int count)
{
    for (int t = 0; t < count; t++)
        centre[t] = by_score[t].index;
    qsort(centre, (size_t)count, sizeof *centre, by_index);
}

// labels [N] = the nearest centre (ties: the lower token); centres label themselves
static void assign_nearest(int32_t *labels, const float *d2, const int32_t *centre, int count,
                           int n)
{
    for (int j = 0; j < n; j++) {
        const float *dj = d2 + (int64_t)j * n;
        float best = dj[centre[0]];
        int32_t best_t = 0;
        for (int t = 1; t < count; t++) {
            if (dj[centre[t]] < best) {
                best = dj[centre[t]];
                best_t = t;
            }
        }
        labels[j] = best_t;
    }
    for (int t = 0; t < count; t++)
        labels[centre[t]] = t;
}

// Algorithm 1: masks [T, N], centre [T]; returns T (seeds + the final scope)
static int soft_cluster(float *masks, int32_t *labels, int32_t *centre, double *scope,
                        const float *d2, const float *score, const setok_cluster_params *p,
                        int n)
{
    int max_seeds = p->max_clusters > 0 ? p->max_clusters - 1 : n - 1;
    double gain = (double)p->k * log(2.0);
    for (int j = 0; j < n; j++)
        scope[j] = 1.0;
    int seeds = 0;
    while (seeds < max_seeds) {
        double best = -1.0;
        int seed = 0;
        for (int j = 0; j < n; j++) {
            double v = (double)score[j] * scope[j];
            if (v > best) {
                best = v;
                seed = j;
            }
        }
        if (best <= 0.0 || (best <= (double)p->threshold && seeds + 1 >= p->min_clusters))
            break;
        const float *ds = d2 + (int64_t)seed * n;
        float *m = masks + (int64_t)seeds * n;
        for (int j = 0; j < n; j++) {
            double alpha = exp(-(double)ds[j] * gain);
            m[j] = (float)(scope[j] * alpha);
            scope[j] *= 1.0 - alpha;
        }
        centre[seeds++] = seed;
    }
    float *last = masks + (int64_t)seeds * n;
    for (int j = 0; j < n; j++)
        last[j] = (float)scope[j];
    centre[seeds] = -1;
    int count = seeds + 1;
    for (int j = 0; j < n; j++) {
        int32_t best_t = 0;
        for (int t = 1; t < count; t++)
            if (masks[(int64_t)t * n + j] > masks[(int64_t)best_t * n + j])
                best_t = t;
        labels[j] = best_t;
    }
    return count;
}

// tokens [T]: area, centroid and box of each token's patches
static void token_stats(setok_token_info *tokens, const int32_t *labels, const int32_t *centre,
                        const float *score, int count, int grid_h, int grid_w)
{
    for (int t = 0; t < count; t++) {
        setok_token_info *tk = &tokens[t];
        memset(tk, 0, sizeof *tk);
        tk->centre = centre[t];
        tk->score = centre[t] >= 0 ? score[centre[t]] : 0.0f;
        tk->x0 = grid_w;
        tk->y0 = grid_h;
    }
    for (int r = 0; r < grid_h; r++) {
        for (int col = 0; col < grid_w; col++) {
            setok_token_info *tk = &tokens[labels[r * grid_w + col]];
            tk->area++;
            tk->cx += (float)col + 0.5f;
            tk->cy += (float)r + 0.5f;
            tk->x0 = col < tk->x0 ? col : tk->x0;
            tk->y0 = r < tk->y0 ? r : tk->y0;
            tk->x1 = col + 1 > tk->x1 ? col + 1 : tk->x1;
            tk->y1 = r + 1 > tk->y1 ? r + 1 : tk->y1;
        }
    }
    for (int t = 0; t < count; t++) {
        setok_token_info *tk = &tokens[t];
        if (tk->area == 0) {
            tk->cx = tk->cy = -1.0f;
            tk->x0 = tk->y0 = tk->x1 = tk->y1 = 0;
        } else {
            tk->cx /= (float)tk->area;
            tk->cy /= (float)tk->area;
        }
    }
}

// ----------------------------------------------------------------------------
// entry points

setok_status setok_cluster(setok_clusters *out, setok_backend *cpu, const float *features,
                           int grid_h, int grid_w, int d, const setok_cluster_params *params,
                           bool add_position_embedding, setok_error *err)
{
    // features: [grid_h * grid_w, d] -> out: labels [N], tokens [T], rho/delta/score [N]
    if (out == NULL || features == NULL)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_cluster: out and features are required");
    setok_status st = check_params(params, grid_h, grid_w, d, err);
    if (st != SETOK_OK)
        return st;
    if (cpu != NULL && !setok_backend_is_host(cpu))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_cluster: backend '%s' is not a host backend",
                          setok_backend_name(cpu));
    int n = grid_h * grid_w;
    bool soft = params->mode == SETOK_CLUSTER_SOFT;
    cluster_scratch s = {0};
    int threads = pool_threads(cpu), chunks = threads < n ? threads : n;
    st = reserve(out, &s, n, d, chunks, soft, err);
    if (st != SETOK_OK)
        return st;
    out->mode = params->mode;
    out->grid_h = grid_h;
    out->grid_w = grid_w;
    out->n_patches = n;
    out->n_tokens = 0;

    st = prepare_features(s.x, features, grid_h, grid_w, d, add_position_embedding, err);
    if (st != SETOK_OK)
        return st;
    pairwise_sq_distances(s.d2, cpu, s.x, n, d);
    density_peaks(out->density, out->delta, &s, cpu, n, params->k);
    for (int i = 0; i < n; i++)
        out->score[i] = out->density[i] * out->delta[i];

    int count;
    if (soft) {
        count = soft_cluster(out->soft_masks, out->labels, s.centre, s.scope, s.d2, out->score,
                             params, n);
    } else {
        sort_by_key(s.order, out->score, n);
        if (params->mode == SETOK_CLUSTER_FIXED) {
            count = params->fixed_k;
        } else {
            count = 0;
            while (count < n && s.order[count].key > params->threshold)
                count++;
            if (count < params->min_clusters)
                count = params->min_clusters;
            if (params->max_clusters > 0 && count > params->max_clusters)
                count = params->max_clusters;
        }
        take_centres(s.centre, s.order, count);
        assign_nearest(out->labels, s.d2, s.centre, count, n);
    }
    token_stats(out->tokens, out->labels, s.centre, out->score, count, grid_h, grid_w);
    out->n_tokens = count;
    return SETOK_OK;
}

setok_status setok_tokens_average(float *out, const float *features, int d,
                                  const setok_clusters *c, setok_error *err)
{
    // features: [N, d] -> out: [T, d], the (mask-weighted) mean per token
    if (out == NULL || features == NULL || c == NULL || c->labels == NULL || c->n_tokens < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_tokens_average: no clusters");
    if (d < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_tokens_average: d = %d must be >= 1", d);
    double *acc = malloc((size_t)d * sizeof *acc);
    if (acc == NULL)
        return setok_fail(err, SETOK_ERR_NOMEM, "setok_tokens_average: out of memory");
    int n = c->n_patches;
    for (int t = 0; t < c->n_tokens; t++) {
        const float *m = c->soft_masks != NULL ? c->soft_masks + (int64_t)t * n : NULL;
        double weight = 0.0;
        memset(acc, 0, (size_t)d * sizeof *acc);
        for (int j = 0; j < n; j++) {
            double wj = m != NULL ? m[j] : (c->labels[j] == t ? 1.0 : 0.0);
            if (wj == 0.0)
                continue;
            const float *x = features + (int64_t)j * d;
            for (int ch = 0; ch < d; ch++)
                acc[ch] += wj * x[ch];
            weight += wj;
        }
        float *o = out + (int64_t)t * d;
        for (int ch = 0; ch < d; ch++)
            o[ch] = weight > 0.0 ? (float)(acc[ch] / weight) : 0.0f;
    }
    free(acc);
    return SETOK_OK;
}
