/* test-setok.c — SeTok clustering and the cluster merger: properties and refusals.
 *
 * Clustering: every patch has a token, centres label themselves, the min_clusters fallback,
 * the max_clusters cap, fixed-k, soft masks, identical features with and without the
 * position embedding, determinism (repeat runs, thread counts, reused memory), token
 * statistics, the average mode, upsampling, and SETOK_ERR_INPUT with a message for bad
 * parameters. Merger: a random checkpoint written here loads, runs in f32 and f16, does not
 * depend on the order of patches inside a cluster, and refuses wrong shapes and configs.
 * Numerics against PyTorch are in tests/reference/test_setok.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "setok/models/setok.h"
#include "setok/safetensors.h"

#include "check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *random_features(int n, int d)
{
    float *x = malloc((size_t)n * d * sizeof *x);
    for (int i = 0; i < n * d; i++)
        x[i] = uniform();
    return x;
}

// Every patch has a token, each centre labels itself, areas add up.
static bool well_formed(const setok_clusters *c)
{
    int total = 0;
    for (int j = 0; j < c->n_patches; j++)
        if (c->labels[j] < 0 || c->labels[j] >= c->n_tokens)
            return false;
    for (int t = 0; t < c->n_tokens; t++) {
        const setok_token_info *tk = &c->tokens[t];
        if (tk->centre >= 0 && c->labels[tk->centre] != t)
            return false;
        total += tk->area;
    }
    return total == c->n_patches;
}

static setok_status run(setok_clusters *c, setok_backend *cpu, const float *x, int h, int w,
                        int d, setok_cluster_params p, bool pe, setok_error *err)
{
    return setok_cluster(c, cpu, x, h, w, d, &p, pe, err);
}

static void test_basic(setok_backend *cpu)
{
    setok_error err;
    setok_clusters c = {0};
    int h = 12, w = 10, d = 48, n = h * w;
    float *x = random_features(n, d);
    setok_cluster_params p = setok_cluster_params_default();
    p.k = 5;
    p.threshold = 0.3f;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(well_formed(&c), "labels / centres / areas");
    CHECK(c.n_patches == n && c.grid_h == h && c.grid_w == w, "grid recorded");
    for (int t = 1; t < c.n_tokens; t++)
        CHECK(c.tokens[t].centre > c.tokens[t - 1].centre, "tokens ordered by centre index");
    int above = 0;
    for (int j = 0; j < n; j++) {
        above += c.score[j] > p.threshold;
        CHECK(c.score[j] == c.density[j] * c.delta[j], "score = density * delta");
    }
    CHECK(c.n_tokens == (above > 1 ? above : 1), "%d tokens, %d scores above", c.n_tokens, above);

    // fallback: a threshold nothing passes gives the top min_clusters by score
    p.threshold = 1e30f;
    p.min_clusters = 7;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens == 7 && well_formed(&c), "fallback to min_clusters: %d", c.n_tokens);
    float lowest = INFINITY;
    for (int t = 0; t < c.n_tokens; t++)
        lowest = fminf(lowest, c.tokens[t].score);
    int better = 0;
    for (int j = 0; j < n; j++)
        better += c.score[j] > lowest;
    CHECK(better <= 6, "the fallback centres are the best scores (%d above the lowest)", better);

    // cap: everything passes, max_clusters keeps the best
    p.threshold = -1.0f;
    p.min_clusters = 2;
    p.max_clusters = 9;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens == 9 && well_formed(&c), "max_clusters cap: %d", c.n_tokens);

    // fixed-k
    p.mode = SETOK_CLUSTER_FIXED;
    p.fixed_k = 13;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens == 13 && well_formed(&c), "fixed-k: %d", c.n_tokens);
    CHECK(c.soft_masks == NULL, "no soft masks outside soft mode");

    // soft: masks sum to 1, labels are their argmax, the last mask has no centre
    p.mode = SETOK_CLUSTER_SOFT;
    p.k = 2;
    p.threshold = 0.05f;
    p.min_clusters = 1;
    p.max_clusters = 0;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.soft_masks != NULL && c.n_tokens >= 1, "soft masks");
    CHECK(c.tokens[c.n_tokens - 1].centre == -1, "the last soft mask is the remaining scope");
    double worst = 0.0;
    int bad_argmax = 0;
    for (int j = 0; j < n; j++) {
        double sum = 0.0;
        for (int t = 0; t < c.n_tokens; t++) {
            float m = c.soft_masks[(size_t)t * n + j];
            sum += m;
            if (m > c.soft_masks[(size_t)c.labels[j] * n + j])
                bad_argmax++;
        }
        worst = fmax(worst, fabs(sum - 1.0));
    }
    CHECK(worst < 1e-5, "soft masks sum to 1 (off by %g)", worst);
    CHECK(bad_argmax == 0, "soft labels are the argmax of the masks");
    p.max_clusters = 3;
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens <= 3, "soft max_clusters: %d", c.n_tokens);

    // token statistics by hand
    p = setok_cluster_params_default();
    p.k = 4;
    p.threshold = 0.2f;
    CHECK(run(&c, cpu, x, h, w, d, p, false, &err) == SETOK_OK, "%s", err.message);
    int stats_bad = 0;
    for (int t = 0; t < c.n_tokens; t++) {
        int area = 0, x0 = w, y0 = h, x1 = 0, y1 = 0;
        double sx = 0, sy = 0;
        for (int r = 0; r < h; r++) {
            for (int col = 0; col < w; col++) {
                if (c.labels[r * w + col] != t)
                    continue;
                area++;
                sx += col + 0.5;
                sy += r + 0.5;
                x0 = col < x0 ? col : x0;
                y0 = r < y0 ? r : y0;
                x1 = col + 1 > x1 ? col + 1 : x1;
                y1 = r + 1 > y1 ? r + 1 : y1;
            }
        }
        const setok_token_info *tk = &c.tokens[t];
        stats_bad += tk->area != area || fabs(tk->cx - sx / area) > 1e-4 ||
                     fabs(tk->cy - sy / area) > 1e-4 || tk->x0 != x0 || tk->y0 != y0 ||
                     tk->x1 != x1 || tk->y1 != y1 || tk->score != c.score[tk->centre];
    }
    CHECK(stats_bad == 0, "%d tokens with wrong statistics", stats_bad);
    setok_clusters_free(&c);
    free(x);
}

// Two groups far apart on a line: two tokens, split where expected.
static void test_two_groups(setok_backend *cpu)
{
    setok_error err;
    setok_clusters c = {0};
    float x[8] = {0.0f, 0.1f, 0.2f, 0.1f, 10.0f, 10.1f, 10.2f, 10.1f};  // 2 x 4 grid, d = 1
    setok_cluster_params p = setok_cluster_params_default();
    p.k = 3;
    p.threshold = 1.0f;
    CHECK(run(&c, cpu, x, 2, 4, 1, p, false, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens == 2, "two groups -> %d tokens", c.n_tokens);
    bool split = true;
    for (int j = 0; j < 8; j++)
        split = split && c.labels[j] == (j < 4 ? 0 : 1);
    CHECK(split, "the groups are the tokens");
    // the densest patch's delta is its largest distance (paper Eq. 2)
    int top = 0;
    for (int j = 1; j < 8; j++)
        if (c.density[j] > c.density[top])
            top = j;
    float far = 0.0f;
    for (int j = 0; j < 8; j++)
        far = fmaxf(far, fabsf(x[j] - x[top]));
    CHECK(fabsf(c.delta[top] - far) < 1e-5f, "delta of the densest %g, largest distance %g",
          c.delta[top], far);
    setok_clusters_free(&c);
}

// Identical features: without the embedding every patch ties (index rules decide); with it
// the position separates them, exactly as adding setok_position_embedding_2d by hand.
static void test_identical(setok_backend *cpu)
{
    setok_error err;
    setok_clusters c = {0}, c2 = {0};
    int h = 8, w = 8, d = 32, n = h * w;
    float *x = calloc((size_t)n * d, sizeof *x);
    for (int j = 0; j < n; j++)
        for (int ch = 0; ch < d; ch++)
            x[j * d + ch] = 0.25f * (float)(ch % 5);
    setok_cluster_params p = setok_cluster_params_default();
    p.k = 5;
    p.threshold = 0.5f;
    p.min_clusters = 3;
    CHECK(run(&c, cpu, x, h, w, d, p, false, &err) == SETOK_OK, "%s", err.message);
    bool ties = true;
    for (int j = 0; j < n; j++)
        ties = ties && c.density[j] == 1.0f && c.delta[j] == 0.0f && c.score[j] == 0.0f;
    CHECK(ties, "identical features: density 1, delta 0, score 0 everywhere");
    CHECK(c.n_tokens == 3 && c.tokens[0].centre == 0 && c.tokens[1].centre == 1 &&
              c.tokens[2].centre == 2, "ties: the lowest indices are the centres");
    bool lowest = true;
    for (int j = 3; j < n; j++)
        lowest = lowest && c.labels[j] == 0;
    CHECK(lowest && c.labels[1] == 1 && c.labels[2] == 2,
          "ties: patches join the lowest token, centres themselves");

    p.min_clusters = 1;
    p.threshold = 0.05f;
    CHECK(run(&c, cpu, x, h, w, d, p, false, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens == 1 && c.tokens[0].area == n, "no embedding: one token of %d", n);
    CHECK(run(&c, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(c.n_tokens > 1 && well_formed(&c), "with the embedding: %d tokens", c.n_tokens);

    float *pe = malloc((size_t)n * d * sizeof *pe);
    CHECK(setok_position_embedding_2d(pe, h, w, d, &err) == SETOK_OK, "%s", err.message);
    for (int i = 0; i < n * d; i++)
        pe[i] += x[i];
    CHECK(run(&c2, cpu, pe, h, w, d, p, false, &err) == SETOK_OK, "%s", err.message);
    CHECK(c2.n_tokens == c.n_tokens && !memcmp(c2.labels, c.labels, (size_t)n * 4) &&
              !memcmp(c2.score, c.score, (size_t)n * 4),
          "the flag equals adding the embedding by hand");
    setok_clusters_free(&c);
    setok_clusters_free(&c2);
    free(pe);
    free(x);
}

static void test_position_embedding(void)
{
    setok_error err;
    float pe[2 * 3 * 6];
    // d = 6: C = 4 channels per axis, so the row takes 4 and the column the last 2
    CHECK(setok_position_embedding_2d(pe, 2, 3, 6, &err) == SETOK_OK, "%s", err.message);
    int bad = 0;
    for (int r = 0; r < 2; r++) {
        for (int col = 0; col < 3; col++) {
            const float *o = pe + (r * 3 + col) * 6;
            double want[6] = {sin(r), cos(r), sin(r * 0.01), cos(r * 0.01), sin(col), cos(col)};
            for (int ch = 0; ch < 6; ch++)
                bad += fabs(o[ch] - want[ch]) > 1e-7;
        }
    }
    CHECK(bad == 0, "PositionalEncoding2D(6) on 2 x 3: %d wrong values", bad);
    float one[1];
    CHECK(setok_position_embedding_2d(one, 1, 1, 1, &err) == SETOK_OK && one[0] == 0.0f,
          "d = 1 keeps sin(0)");
    CHECK(setok_position_embedding_2d(pe, 0, 3, 6, &err) == SETOK_ERR_INPUT, "h = 0 refused");
}

static void test_determinism(setok_backend *cpu, setok_backend *cpu1)
{
    setok_error err;
    setok_clusters a = {0}, b = {0}, c = {0};
    int h = 24, w = 24, d = 200, n = h * w;
    float *x = random_features(n, d);
    setok_cluster_params p = setok_cluster_params_default();
    p.k = 16;
    p.threshold = 0.02f;
    CHECK(run(&a, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(run(&b, cpu, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(run(&c, cpu1, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    bool same = a.n_tokens == b.n_tokens && !memcmp(a.labels, b.labels, (size_t)n * 4) &&
                !memcmp(a.score, b.score, (size_t)n * 4);
    CHECK(same, "two runs give the same clusters, bit for bit");
    same = a.n_tokens == c.n_tokens && !memcmp(a.labels, c.labels, (size_t)n * 4) &&
           !memcmp(a.density, c.density, (size_t)n * 4) && !memcmp(a.delta, c.delta, n * 4u);
    CHECK(same, "one thread or many: the same bits");
    CHECK(run(&c, NULL, x, h, w, d, p, true, &err) == SETOK_OK, "%s", err.message);
    CHECK(!memcmp(a.score, c.score, (size_t)n * 4), "no backend: the same bits");
    // memory is reused for a smaller problem, and a larger one after it
    void *block = b.memory;
    CHECK(run(&b, cpu, x, 5, 5, d, p, true, &err) == SETOK_OK && b.memory == block,
          "a smaller grid reuses the block");
    CHECK(run(&b, cpu, x, h, w, d, p, true, &err) == SETOK_OK &&
              !memcmp(a.labels, b.labels, (size_t)n * 4), "and the full grid again");
    setok_clusters_free(&a);
    setok_clusters_free(&b);
    setok_clusters_free(&c);
    free(x);
}

static void test_refusals(setok_backend *cpu)
{
    setok_error err;
    setok_clusters c = {0};
    float *x = random_features(16, 4);
    setok_cluster_params p = setok_cluster_params_default();
    struct { const char *what, *needle; setok_cluster_params p; int h, d; } cases[] = {
        {"k = 0", "k = 0", p, 4, 4},
        {"k > N", "k = 64 must be in [1, 16]", p, 4, 4},
        {"min_clusters 0", "min_clusters = 0", p, 4, 4},
        {"max < min", "max_clusters = 2 is below min_clusters = 3", p, 4, 4},
        {"fixed_k > N", "fixed_k = 17", p, 4, 4},
        {"d = 0", "d = 0", p, 4, 0},
        {"no rows", "grid 0 x 4", p, 0, 4},
    };
    cases[0].p.k = 0;
    for (int i = 2; i < 5; i++)
        cases[i].p.k = 3;
    cases[2].p.min_clusters = 0;
    cases[3].p.min_clusters = 3;
    cases[3].p.max_clusters = 2;
    cases[4].p.mode = SETOK_CLUSTER_FIXED;
    cases[4].p.fixed_k = 17;
    cases[5].p.k = cases[6].p.k = 3;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err.message[0] = '\0';
        setok_status st = run(&c, cpu, x, cases[i].h, 4, cases[i].d, cases[i].p, true, &err);
        CHECK(st == SETOK_ERR_INPUT && strstr(err.message, cases[i].needle) != NULL,
              "%s: status %d, message '%s'", cases[i].what, st, err.message);
    }
    p.k = 3;
    x[21] = NAN;
    CHECK(run(&c, cpu, x, 4, 4, 4, p, false, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "feature [5, 1] is not finite"), "NaN: '%s'", err.message);
    x[21] = INFINITY;
    CHECK(run(&c, cpu, x, 4, 4, 4, p, false, &err) == SETOK_ERR_INPUT, "inf refused");
    CHECK(setok_cluster_mode_from_name("soft") == SETOK_CLUSTER_SOFT &&
              setok_cluster_mode_from_name("kmeans") == SETOK_CLUSTER_MODE_COUNT &&
              !strcmp(setok_cluster_mode_name(SETOK_CLUSTER_FIXED), "fixed"), "mode names");
    setok_clusters_free(&c);
    free(x);
}

static void test_average_and_upsample(setok_backend *cpu)
{
    setok_error err;
    setok_clusters c = {0};
    float x[8] = {0.0f, 0.1f, 0.2f, 0.1f, 10.0f, 10.1f, 10.2f, 10.1f};
    setok_cluster_params p = setok_cluster_params_default();
    p.k = 3;
    p.threshold = 1.0f;
    CHECK(run(&c, cpu, x, 2, 4, 1, p, false, &err) == SETOK_OK && c.n_tokens == 2, "clusters");
    float avg[2];
    CHECK(setok_tokens_average(avg, x, 1, &c, &err) == SETOK_OK, "%s", err.message);
    CHECK(fabsf(avg[0] - 0.1f) < 1e-6f && fabsf(avg[1] - 10.1f) < 1e-5f, "averages %g %g",
          avg[0], avg[1]);
    setok_clusters_free(&c);
}

// ---- merger ---------------------------------------------------------------------------------

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

// A random merger checkpoint in dir: C = 16, 2 heads, intra 2, inter 1, I = 24, out 12.
static bool write_merger(const char *dir, const char *config, const char *skip)
{
    enum { C = 16, I = 24, O = 12 };
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!write_text(path, config))
        return false;
    static float data[64][C * 3 * C];
    static int64_t shapes[64][2];
    setok_st_entry entries[64];
    static char names[64][64];
    int count = 0;
    const char *blocks[] = {"intra.0", "intra.1", "inter.0"};
    struct { const char *part; int64_t rows, cols; } parts[] = {
        {"norm1.weight", C, 0}, {"norm1.bias", C, 0}, {"attn.qkv.weight", 3 * C, C},
        {"attn.qkv.bias", 3 * C, 0}, {"attn.proj.weight", C, C}, {"attn.proj.bias", C, 0},
        {"norm2.weight", C, 0}, {"norm2.bias", C, 0}, {"mlp.fc1.weight", I, C},
        {"mlp.fc1.bias", I, 0}, {"mlp.fc2.weight", C, I}, {"mlp.fc2.bias", C, 0},
    };
    for (int b = 0; b <= 3; b++) {
        for (int q = 0; q < (b < 3 ? 12 : 2); q++) {
            if (b < 3)
                snprintf(names[count], sizeof names[count], "%s.%s", blocks[b], parts[q].part);
            else
                snprintf(names[count], sizeof names[count], "out.%s", q == 0 ? "weight" : "bias");
            int64_t rows = b < 3 ? parts[q].rows : O, cols = b < 3 ? parts[q].cols : (q ? 0 : C);
            if (skip != NULL && !strcmp(names[count], skip))
                continue;
            shapes[count][0] = rows;
            shapes[count][1] = cols;
            bool norm_weight = strstr(names[count], "norm") && strstr(names[count], "weight");
            for (int64_t i = 0; i < rows * (cols ? cols : 1); i++)
                data[count][i] = uniform() * (cols ? 0.3f : 0.5f) + (norm_weight ? 1.0f : 0.0f);
            entries[count] = (setok_st_entry){names[count], SETOK_ST_F32, cols ? 2 : 1,
                                              shapes[count], data[count]};
            count++;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt", NULL};
    return setok_safetensors_write(path, entries, (size_t)count, meta, NULL) == SETOK_OK;
}

static const char *merger_config =
    "{\"architectures\": [\"SetokMerger\"], \"hidden_size\": 16, \"num_heads\": 2,"
    " \"intra_layers\": 2, \"inter_layers\": 1, \"intermediate_size\": 24,"
    " \"output_size\": 12, \"position_embedding\": false}";

static void test_merger(setok_backend *cpu, const char *dir)
{
    setok_error err;
    CHECK(write_merger(dir, merger_config, NULL), "write the checkpoint");
    setok_merger *m = NULL;
    CHECK(setok_merger_load(&m, dir, cpu, SETOK_F32, &err) == SETOK_OK, "%s", err.message);
    if (m == NULL)
        return;
    const setok_merger_config *cfg = setok_merger_get_config(m);
    CHECK(cfg->hidden_size == 16 && cfg->num_heads == 2 && cfg->intra_layers == 2 &&
              cfg->inter_layers == 1 && cfg->output_size == 12 && cfg->act == SETOK_OP_GELU &&
              cfg->layer_norm_eps == 1e-5f && cfg->qkv_bias && !cfg->position_embedding &&
              cfg->cluster.k == 64, "config read with defaults");

    // hand-made clusters: 3 tokens over a 3 x 4 grid
    int32_t labels[12] = {0, 0, 1, 1, 0, 2, 1, 1, 2, 2, 2, 1};
    setok_clusters c = {.grid_h = 3, .grid_w = 4, .n_patches = 12, .n_tokens = 3,
                        .labels = labels};
    float *x = random_features(12, 16);
    float out[3 * 12], out2[3 * 12];
    CHECK(setok_merger_forward_host(m, out, x, &c, &err) == SETOK_OK, "%s", err.message);
    bool finite = true;
    for (int i = 0; i < 36; i++)
        finite = finite && isfinite(out[i]);
    CHECK(finite, "finite output");

    // reversing the patches (labels with them) changes nothing without position embedding
    float xr[12 * 16];
    int32_t lr[12];
    for (int j = 0; j < 12; j++) {
        memcpy(xr + j * 16, x + (11 - j) * 16, 16 * sizeof *xr);
        lr[j] = labels[11 - j];
    }
    setok_clusters cr = c;
    cr.labels = lr;
    CHECK(setok_merger_forward_host(m, out2, xr, &cr, &err) == SETOK_OK, "%s", err.message);
    double worst = 0.0;
    for (int i = 0; i < 36; i++)
        worst = fmax(worst, fabs(out[i] - out2[i]));
    CHECK(worst < 1e-5, "patch order inside clusters does not matter (%g)", worst);

    // d mismatch and a wrong patch count, through the tensor entry point
    setok_arena arena;
    CHECK(setok_arena_init(&arena, cpu, setok_merger_arena_bytes(m, 12, 3), &err) == SETOK_OK,
          "%s", err.message);
    setok_tensor feats, y;
    int64_t bad_shape[2] = {12, 17};
    CHECK(setok_arena_tensor(&arena, &feats, SETOK_F32, 2, bad_shape, &err) == SETOK_OK, "arena");
    CHECK(setok_merger_forward(m, &arena, &y, &feats, &c, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "expected [12, 16]"), "d mismatch: '%s'", err.message);
    int32_t bad_labels[12] = {0};
    bad_labels[4] = 3;
    setok_clusters cb = c;
    cb.labels = bad_labels;
    CHECK(setok_merger_forward_host(m, out, x, &cb, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "patch 4 has label 3"), "label out of range: '%s'",
          err.message);
    setok_arena_destroy(&arena);
    setok_merger_free(m);

    // f16 weights and activations stay close to f32
    CHECK(setok_merger_load(&m, dir, cpu, SETOK_F16, &err) == SETOK_OK, "%s", err.message);
    if (m != NULL) {
        CHECK(setok_merger_forward_host(m, out2, x, &c, &err) == SETOK_OK, "%s", err.message);
        double scale = 0.0;
        worst = 0.0;
        for (int i = 0; i < 36; i++) {
            worst = fmax(worst, fabs(out[i] - out2[i]));
            scale = fmax(scale, fabs(out[i]));
        }
        CHECK(worst <= 2e-2 * scale, "f16 vs f32: %g of %g", worst, scale);
        setok_merger_free(m);
    }
    free(x);

    // refusals name the file and the key or tensor
    char msg_dir[600];
    snprintf(msg_dir, sizeof msg_dir, "%s/config.json", dir);
    struct { const char *config, *skip, *needle; } bad[] = {
        {"{\"hidden_size\": 15, \"num_heads\": 2}", NULL, "not a multiple of num_heads"},
        {"{\"hidden_size\": 16, \"hidden_act\": \"relu6\"}", NULL, "hidden_act 'relu6'"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16}", NULL,
         "architectures"},
        {"{\"num_heads\": 2}", NULL, "hidden_size"},
        {merger_config, "inter.0.mlp.fc2.weight", "inter.0.mlp.fc2.weight"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(write_merger(dir, bad[i].config, bad[i].skip), "write");
        m = NULL;
        setok_status st = setok_merger_load(&m, dir, cpu, SETOK_F32, &err);
        CHECK(st == SETOK_ERR_INPUT && m == NULL && strstr(err.message, bad[i].needle),
              "bad config %zu: status %d, '%s'", i, st, err.message);
        CHECK(i == 4 || strstr(err.message, msg_dir), "message names %s: '%s'", msg_dir,
              err.message);
        setok_merger_free(m);
    }
}

int main(void)
{
    setok_error err;
    setok_backend *cpu = NULL, *cpu1 = NULL;
    if (setok_backend_cpu_create(&cpu, 2, &err) != SETOK_OK ||
        setok_backend_cpu_create(&cpu1, 1, &err) != SETOK_OK) {
        printf("cpu backend: %s\n", err.message);
        return 1;
    }
    test_basic(cpu);
    test_two_groups(cpu);
    test_identical(cpu);
    test_position_embedding();
    test_determinism(cpu, cpu1);
    test_refusals(cpu);
    test_average_and_upsample(cpu);

    char dir[] = "/tmp/test-setok-XXXXXX";
    if (mkdtemp(dir) != NULL) {
        test_merger(cpu, dir);
        char path[600];
        snprintf(path, sizeof path, "%s/config.json", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        unlink(path);
        rmdir(dir);
    } else {
        CHECK(false, "mkdtemp failed");
    }
    setok_backend_free(cpu);
    setok_backend_free(cpu1);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
