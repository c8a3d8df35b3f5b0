/* sampling.h — picking the next token from logits (DESIGN §8 "chat").
 *
 * Mirrors the logits processors of transformers' generate(), applied in its
 * order: repetition penalty, temperature, top-k, top-p, min-p; then greedy
 * argmax (temperature 0; ties go to the lowest id) or a draw from the
 * softmax of what is left. The RNG is xoshiro128** seeded by splitmix64, so
 * a seed gives the same tokens on every machine. */
#ifndef SETOK_SAMPLING_H
#define SETOK_SAMPLING_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_SAMPLING_MAX_STOPS 8

typedef struct setok_sampling_params {
    float temperature;        /* 0: greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repetition_penalty; /* 1: off; HF: logit / p when > 0, else logit * p */
    uint64_t seed;
    int max_new_tokens;
    const char *stop[SETOK_SAMPLING_MAX_STOPS]; /* stop strings, NULL-terminated early */
} setok_sampling_params;

/* Greedy, no penalty, 256 new tokens, seed 0, no stop strings. */
SETOK_API void setok_sampling_params_default(setok_sampling_params *p);
/* SETOK_ERR_INPUT naming the first parameter out of range. */
SETOK_API setok_status setok_sampling_params_check(const setok_sampling_params *p, setok_error *err);

typedef struct setok_rng {
    uint32_t s[4];
} setok_rng;

SETOK_API void setok_rng_seed(setok_rng *rng, uint64_t seed);
SETOK_API uint32_t setok_rng_next(setok_rng *rng);
/* Uniform in [0, 1). */
SETOK_API double setok_rng_uniform(setok_rng *rng);
/* Standard normal (Box-Muller on two uniforms; one value per call). */
SETOK_API double setok_rng_normal(setok_rng *rng);
/* out[0..n) = standard normal values. */
SETOK_API void setok_rng_normal_fill(setok_rng *rng, float *out, size_t n);

typedef struct setok_sample_entry {
    float value;
    int32_t id;
} setok_sample_entry;

/* Scratch for setok_sample: vocab entries, allocated once. */
typedef struct setok_sampler {
    int vocab;
    setok_sample_entry *entries;
} setok_sampler;

SETOK_API setok_status setok_sampler_init(setok_sampler *s, int vocab, setok_error *err);
SETOK_API void setok_sampler_free(setok_sampler *s);

/* logits [vocab] host f32 (not modified); history: the ids seen so far
 * (prompt and generated; the repetition penalty applies to each distinct id
 * once). *id gets the chosen token. */
SETOK_API setok_status setok_sample(setok_sampler *s, const float *logits, int vocab,
                          const setok_sampling_params *p, const int32_t *history,
                          size_t n_history, setok_rng *rng, int32_t *id, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
