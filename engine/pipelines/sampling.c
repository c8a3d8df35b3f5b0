/* sampling.c — logits processors and the seeded draw (see sampling.h).
 * Runs on the host in f32; the scratch is allocated once per vocab size. */
#include "setok/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void setok_sampling_params_default(setok_sampling_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->max_new_tokens = 256;
}

setok_status setok_sampling_params_check(const setok_sampling_params *p, setok_error *err)
{
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: temperature must be >= 0, got %g",
                          (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: top_p must be in (0, 1], got %g",
                          (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: min_p must be in [0, 1], got %g",
                          (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: repetition_penalty must be > 0, "
                          "got %g", (double)p->repetition_penalty);
    if (p->max_new_tokens < 0)
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: max_new_tokens must be >= 0, got %d",
                          p->max_new_tokens);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// xoshiro128** seeded by splitmix64

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

void setok_rng_seed(setok_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    uint64_t a = splitmix64(&x), b = splitmix64(&x);
    rng->s[0] = (uint32_t)a;
    rng->s[1] = (uint32_t)(a >> 32);
    rng->s[2] = (uint32_t)b;
    rng->s[3] = (uint32_t)(b >> 32);
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
        rng->s[0] = 1; // the all-zero state is a fixed point
}

uint32_t setok_rng_next(setok_rng *rng)
{
    uint32_t *s = rng->s;
    uint32_t result = rotl32(s[1] * 5u, 7) * 9u;
    uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl32(s[3], 11);
    return result;
}

double setok_rng_uniform(setok_rng *rng)
{
    uint64_t hi = setok_rng_next(rng) >> 5, lo = setok_rng_next(rng) >> 6; // 53 bits
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

double setok_rng_normal(setok_rng *rng)
{
    double u = 1.0 - setok_rng_uniform(rng); // (0, 1]: log(u) is finite
    double v = setok_rng_uniform(rng);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void setok_rng_normal_fill(setok_rng *rng, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)setok_rng_normal(rng);
}

// ----------------------------------------------------------------------------
// sampler

setok_status setok_sampler_init(setok_sampler *s, int vocab, setok_error *err)
{
    memset(s, 0, sizeof *s);
    if (vocab <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: vocab must be > 0, got %d", vocab);
    s->entries = malloc((size_t)vocab * sizeof *s->entries);
    if (!s->entries)
        return setok_fail(err, SETOK_ERR_NOMEM, "sampling: out of memory");
    s->vocab = vocab;
    return SETOK_OK;
}

void setok_sampler_free(setok_sampler *s)
{
    free(s->entries);
    memset(s, 0, sizeof *s);
}

// Descending value, then ascending id, so the order (and greedy ties) is reproducible.
static int entry_cmp(const void *pa, const void *pb)
{
    const setok_sample_entry *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value > b->value ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

setok_status setok_sample(setok_sampler *s, const float *logits, int vocab,
                          const setok_sampling_params *p, const int32_t *history,
                          size_t n_history, setok_rng *rng, int32_t *id, setok_error *err)
{
    if (vocab <= 0 || vocab > s->vocab)
        return setok_fail(err, SETOK_ERR_INPUT, "sampling: vocab %d does not fit the sampler's "
                          "%d", vocab, s->vocab);
    setok_sample_entry *e = s->entries;
    for (int i = 0; i < vocab; i++) {
        e[i].value = isnan(logits[i]) ? -INFINITY : logits[i];
        e[i].id = i;
    }

    // repetition penalty: each distinct seen id once, as HF's gather / scatter does
    if (p->repetition_penalty != 1.0f) {
        for (size_t h = 0; h < n_history; h++) {
            int32_t t = history[h];
            if (t < 0 || t >= vocab || e[t].id < 0)
                continue;
            float v = e[t].value;
            e[t].value = v < 0.0f ? v * p->repetition_penalty : v / p->repetition_penalty;
            e[t].id = -1 - t; // mark as done
        }
        for (int i = 0; i < vocab; i++)
            e[i].id = i;
    }

    if (p->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < vocab; i++)
            if (e[i].value > e[best].value)
                best = i;
        *id = best;
        return SETOK_OK;
    }

    for (int i = 0; i < vocab; i++)
        e[i].value /= p->temperature;
    qsort(e, (size_t)vocab, sizeof *e, entry_cmp);
    if (!isfinite(e[0].value))
        return setok_fail(err, SETOK_ERR_RUNTIME, "sampling: no finite logit to sample from");

    // top-k: the k largest, ties with the k-th kept (HF removes only values below it)
    int n = vocab;
    if (p->top_k > 0 && p->top_k < n) {
        float kth = e[p->top_k - 1].value;
        n = p->top_k;
        while (n < vocab && e[n].value >= kth)
            n++;
    }
    while (n > 1 && e[n - 1].value == -INFINITY)
        n--;

    // softmax of the survivors, in place (values become probabilities)
    double total = 0.0;
    float top = e[0].value;
    for (int i = 0; i < n; i++)
        total += exp((double)e[i].value - (double)top);
    for (int i = 0; i < n; i++)
        e[i].value = (float)(exp((double)e[i].value - (double)top) / total);

    // top-p: HF drops a token when the mass of it and everything smaller is <= 1 - top_p
    if (p->top_p < 1.0f) {
        double tail = 0.0;
        int keep = n;
        for (int i = n - 1; i >= 1; i--) {
            tail += e[i].value;
            if (tail <= 1.0 - (double)p->top_p)
                keep = i;
            else
                break;
        }
        n = keep;
    }

    // min-p: drop tokens below min_p times the largest probability
    if (p->min_p > 0.0f) {
        float floor_p = p->min_p * e[0].value;
        int keep = 1;
        while (keep < n && e[keep].value >= floor_p)
            keep++;
        n = keep;
    }

    double mass = 0.0;
    for (int i = 0; i < n; i++)
        mass += e[i].value;
    double u = setok_rng_uniform(rng) * mass, acc = 0.0;
    int pick = n - 1;
    for (int i = 0; i < n; i++) {
        acc += e[i].value;
        if (u < acc) {
            pick = i;
            break;
        }
    }
    *id = e[pick].id;
    return SETOK_OK;
}
