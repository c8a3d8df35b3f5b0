/* test-sampling.c — setok_sample on fixed logits: greedy and its ties, top-k = 1, the support
 * top-p and min-p leave, a temperature draw against the softmax, HF's repetition penalty, and
 * a seed that repeats itself. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "setok/sampling.h"

#define V 6
static const float LOGITS[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.9f};

static void softmax(double *out, const float *x, int n, double t)
{
    double m = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++)
        m = fmax(m, x[i] / t);
    for (int i = 0; i < n; i++)
        s += out[i] = exp(x[i] / t - m);
    for (int i = 0; i < n; i++)
        out[i] /= s;
}

/* Draws n samples; counts[V]. */
static bool draw(setok_sampler *s, const setok_sampling_params *p, int n, int *counts)
{
    setok_rng rng;
    setok_rng_seed(&rng, p->seed);
    memset(counts, 0, V * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t id = -1;
        if (setok_sample(s, LOGITS, V, p, NULL, 0, &rng, &id, NULL) != SETOK_OK || id < 0 ||
            id >= V)
            return false;
        counts[id]++;
    }
    return true;
}

int main(void)
{
    setok_sampler s;
    setok_error err;
    CHECK(setok_sampler_init(&s, V, &err) == SETOK_OK, "init: %s", err.message);
    setok_sampling_params p;
    setok_sampling_params_default(&p);
    CHECK(setok_sampling_params_check(&p, NULL) == SETOK_OK, "defaults are valid");
    setok_rng rng;
    setok_rng_seed(&rng, 1);
    int32_t id = -1;

    // greedy, and greedy ties go to the lowest id
    CHECK(setok_sample(&s, LOGITS, V, &p, NULL, 0, &rng, &id, NULL) == SETOK_OK && id == 1,
          "greedy picks 1, got %d", id);
    const float tie[V] = {0.0f, 2.0f, 1.0f, 2.0f, 2.0f, -3.0f};
    CHECK(setok_sample(&s, tie, V, &p, NULL, 0, &rng, &id, NULL) == SETOK_OK && id == 1,
          "greedy tie picks 1, got %d", id);

    // top-k = 1 at any temperature equals greedy
    int counts[V];
    p.temperature = 1.5f;
    p.top_k = 1;
    CHECK(draw(&s, &p, 200, counts) && counts[1] == 200, "top-k 1 always 1, got %d", counts[1]);

    // top-k = 3: only the three largest
    p.top_k = 3;
    CHECK(draw(&s, &p, 2000, counts), "top-k 3 draws");
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[4] == 0 && counts[1] && counts[3] &&
              counts[5], "top-k 3 support {1, 3, 5}: %d %d %d %d %d %d", counts[0], counts[1],
          counts[2], counts[3], counts[4], counts[5]);

    // top-p: at T = 1, p(1) + p(5) ~ 0.68 of the mass; top_p 0.6 keeps exactly those two
    double prob[V];
    softmax(prob, LOGITS, V, 1.0);
    p.top_k = 0;
    p.temperature = 1.0f;
    p.top_p = 0.6f;
    CHECK(prob[1] + prob[5] > 0.6 && prob[1] < 0.6, "the fixture keeps two tokens");
    CHECK(draw(&s, &p, 2000, counts), "top-p draws");
    CHECK(counts[1] && counts[5] && counts[1] + counts[5] == 2000, "top-p support {1, 5}");

    // min-p 0.3: tokens with p >= 0.3 * p(1): 1 (1), 5 (0.90), 3 (0.37)
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    CHECK(draw(&s, &p, 2000, counts), "min-p draws");
    CHECK(counts[1] && counts[3] && counts[5] && counts[1] + counts[3] + counts[5] == 2000,
          "min-p support {1, 3, 5}: %d %d %d %d %d %d", counts[0], counts[1], counts[2],
          counts[3], counts[4], counts[5]);

    // temperature 2: frequencies close to softmax(logits / 2) (chi-square, 5 dof, p ~ 1e-4)
    p.min_p = 0.0f;
    p.temperature = 2.0f;
    p.seed = 1234;
    const int n = 20000;
    CHECK(draw(&s, &p, n, counts), "temperature draws");
    softmax(prob, LOGITS, V, 2.0);
    double chi2 = 0.0;
    for (int i = 0; i < V; i++) {
        double expected = prob[i] * n;
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    CHECK(chi2 < 25.0, "chi-square %.2f too large", chi2);

    // the same seed gives the same tokens
    int again[V];
    CHECK(draw(&s, &p, n, again) && !memcmp(counts, again, sizeof counts), "seeded repeat");

    // repetition penalty (HF): 3 / 1.5 = 2 < 2.9 -> 5; a negative seen logit gets smaller
    setok_sampling_params_default(&p);
    p.repetition_penalty = 1.5f;
    const int32_t seen[] = {1, 1, 4};
    CHECK(setok_sample(&s, LOGITS, V, &p, seen, 3, &rng, &id, NULL) == SETOK_OK && id == 5,
          "penalised argmax 5, got %d", id);
    const float neg[V] = {-1.0f, -0.5f, -0.6f, -5.0f, -5.0f, -5.0f};
    const int32_t seen_neg[] = {1};
    CHECK(setok_sample(&s, neg, V, &p, seen_neg, 1, &rng, &id, NULL) == SETOK_OK && id == 2,
          "negative logit * penalty, argmax 2, got %d", id);
    // a penalty applies once per distinct id: 1 seen twice is 3 / 1.5, not 3 / 2.25
    p.repetition_penalty = 1.2f;
    const float close[V] = {2.4f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    CHECK(setok_sample(&s, close, V, &p, seen, 2, &rng, &id, NULL) == SETOK_OK && id == 1,
          "penalty once per id: got %d", id);

    // bad parameters are input errors
    p.top_p = 0.0f;
    CHECK(setok_sampling_params_check(&p, NULL) == SETOK_ERR_INPUT, "top_p 0 rejected");
    p.top_p = 1.0f;
    p.temperature = -1.0f;
    CHECK(setok_sampling_params_check(&p, NULL) == SETOK_ERR_INPUT, "temperature < 0 rejected");

    setok_sampler_free(&s);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
