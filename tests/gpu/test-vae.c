/* test-vae.c — a VAE whose mid-block attention is one head of 512 channels (as SD-1.5's),
 * encoded and decoded on a backend in f32 and f16, against the CPU in f32.
 *
 *   test-vae [--backend cuda] [--dtype f32,f16] [--seed N]   (exit 77 without the backend)
 *
 * Random weights from one seed on both backends, random latents and pixels; the max error
 * relative to the output's magnitude must stay under the dtype's tolerance (a whole network,
 * so wider than a single op's). Prints one line per output with the error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#include "setok/arena.h"
#include "setok/models/vae.h"
#include "setok/ops.h"

enum { H = 32, W = 32 }; /* pixels; latents are H / 4 x W / 4 with three levels */

static uint32_t rng;

static float uniform(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

/* A small VAE of SD-1.5's kind whose deepest level, and so its mid-block attention, has 512
 * channels. */
static void small_config(setok_vae_config *c)
{
    setok_vae_config_sd15(c);
    c->num_levels = 3;
    c->block_out_channels[0] = 64;
    c->block_out_channels[1] = 128;
    c->block_out_channels[2] = 512;
    c->layers_per_block = 1;
}

typedef struct run {
    setok_vae *vae;
    setok_arena arena;
} run;

/* latents [1, 4, H/4, W/4] -> pixels, and pixels [1, 3, H, W] -> mean, logvar, on be in dtype;
 * the three outputs come back as f32 in out[0..2] (numels n[0..2]). */
static setok_status encode_decode(setok_backend *be, setok_dtype dtype, uint32_t seed,
                                  const float *latents, const float *pixels, float *out[3],
                                  int64_t n[3], setok_error *err)
{
    setok_vae_config cfg;
    small_config(&cfg);
    run r = {0};
    setok_tensor lat = {0}, pix = {0}, res[3];
    int s = 1 << (cfg.num_levels - 1);
    int64_t lshape[4] = {1, cfg.latent_channels, H / s, W / s}, pshape[4] = {1, 3, H, W};
    setok_status st = setok_vae_create_random(&r.vae, &cfg, be, dtype, seed, err);
    size_t bytes = 0;
    if (st == SETOK_OK) {
        size_t dec = setok_vae_decode_arena_bytes(r.vae, 1, H / s, W / s, 0);
        size_t enc = setok_vae_encode_arena_bytes(r.vae, 1, H, W);
        bytes = dec > enc ? dec : enc;
        st = setok_arena_init(&r.arena, be, bytes, err);
    }
    /* inputs are uploaded in the model's dtype through an f32 staging copy */
    const float *host[2] = {latents, pixels};
    setok_tensor *dev[2] = {&lat, &pix};
    const int64_t *shapes[2] = {lshape, pshape};
    for (int i = 0; i < 2 && st == SETOK_OK; i++) {
        setok_tensor f32;
        st = setok_tensor_alloc(&f32, be, SETOK_F32, 4, shapes[i], err);
        if (st == SETOK_OK)
            st = setok_tensor_upload(&f32, host[i], err);
        if (st == SETOK_OK)
            st = setok_tensor_alloc(dev[i], be, dtype, 4, shapes[i], err);
        if (st == SETOK_OK)
            st = setok_copy(be, dev[i], &f32, err);
        if (f32.data)
            setok_tensor_free(&f32);
    }
    if (st == SETOK_OK)
        st = setok_vae_decode(r.vae, &r.arena, &res[0], &lat, 0, NULL, NULL, NULL, err);
    for (int i = 0; i < 3; i++)
        out[i] = NULL;
    /* each output is converted to f32 and read back before the arena is reused */
    for (int i = 0; i < 3 && st == SETOK_OK; i++) {
        if (i == 1) {
            setok_arena_reset(&r.arena, 0);
            st = setok_vae_encode(r.vae, &r.arena, &res[1], &res[2], &pix, NULL, err);
            if (st != SETOK_OK)
                break;
        }
        setok_tensor f32;
        n[i] = setok_tensor_numel(&res[i]);
        out[i] = malloc((size_t)n[i] * sizeof(float));
        st = setok_tensor_alloc(&f32, be, SETOK_F32, res[i].ndim, res[i].shape, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &f32, &res[i], err);
        if (st == SETOK_OK)
            st = setok_tensor_download(out[i], &f32, err);
        if (f32.data)
            setok_tensor_free(&f32);
    }
    if (lat.data)
        setok_tensor_free(&lat);
    if (pix.data)
        setok_tensor_free(&pix);
    setok_arena_destroy(&r.arena);
    setok_vae_free(r.vae);
    return st;
}

/* max |got - want| / max(|want|, 1); infinite when a value is not finite */
static double rel_error(const float *got, const float *want, int64_t n)
{
    double ref = 1.0, diff = 0.0;
    for (int64_t i = 0; i < n; i++)
        ref = fabs(want[i]) > ref ? fabs(want[i]) : ref;
    for (int64_t i = 0; i < n; i++) {
        double d = isfinite(got[i]) ? fabs((double)got[i] - want[i]) : INFINITY;
        diff = d > diff ? d : diff;
    }
    return diff / ref;
}

int main(int argc, char **argv)
{
    const char *backend = "cuda", *dtypes = "f32,f16";
    uint32_t seed = (uint32_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--backend"))
            backend = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--dtype"))
            dtypes = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--seed"))
            seed = (uint32_t)strtoul(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: test-vae [--backend cuda|cpu] [--dtype f32,f16,bf16] "
                            "[--seed N]\n");
            return 2;
        }
    }
    setok_error err = {0};
    setok_backend *be = NULL, *cpu = NULL;
    setok_status st = setok_backend_create_by_name(&be, backend, 0, &err);
    if (st == SETOK_ERR_UNSUPPORTED) {
        printf("skipped: %s\n", err.message);
        return 77;
    }
    if (st != SETOK_OK || setok_backend_create_by_name(&cpu, "cpu", 0, &err) != SETOK_OK) {
        fprintf(stderr, "test-vae: %s\n", err.message);
        return 1;
    }
    setok_vae_config cfg;
    small_config(&cfg);
    printf("backend %s (%s), seed %u; mid-block attention: 1 head of %d channels\n",
           setok_backend_name(be), setok_backend_description(be), seed,
           cfg.block_out_channels[cfg.num_levels - 1]);

    int s = 1 << (cfg.num_levels - 1);
    int64_t nl = (int64_t)cfg.latent_channels * (H / s) * (W / s), np = 3 * H * W;
    float *latents = malloc((size_t)nl * sizeof(float));
    float *pixels = malloc((size_t)np * sizeof(float));
    rng = seed;
    for (int64_t i = 0; i < nl; i++)
        latents[i] = 2.0f * uniform();
    for (int64_t i = 0; i < np; i++)
        pixels[i] = uniform();

    float *want[3];
    int64_t n[3];
    st = encode_decode(cpu, SETOK_F32, seed, latents, pixels, want, n, &err);
    CHECK(st == SETOK_OK, "cpu f32: %s", err.message);
    static const char *const names[3] = {"decode pixels", "encode mean", "encode logvar"};
    char list[64];
    snprintf(list, sizeof list, "%s", dtypes);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && st == SETOK_OK;
         t = strtok_r(NULL, ",", &save)) {
        setok_dtype dt = !strcmp(t, "f16") ? SETOK_F16 : !strcmp(t, "bf16") ? SETOK_BF16
                                                                              : SETOK_F32;
        /* f32 differs from the CPU by summation order only; f16 / bf16 store every
         * activation of ~30 layers rounded */
        double tol = dt == SETOK_F32 ? 1e-3 : dt == SETOK_F16 ? 3e-2 : 1.5e-1;
        float *got[3];
        setok_status rs = encode_decode(be, dt, seed, latents, pixels, got, n, &err);
        CHECK(rs == SETOK_OK, "%s %s: %s", backend, t, err.message);
        for (int i = 0; i < 3 && rs == SETOK_OK; i++) {
            double e = rel_error(got[i], want[i], n[i]);
            printf("%-4s %-5s %-14s err %.2e (tolerance %.0e)\n", e <= tol ? "ok" : "FAIL", t,
                   names[i], e, tol);
            CHECK(e <= tol, "%s %s: error %.3g", t, names[i], e);
        }
        for (int i = 0; i < 3; i++)
            free(got[i]);
    }
    for (int i = 0; i < 3; i++)
        free(want[i]);
    free(latents);
    free(pixels);
    setok_backend_free(be);
    setok_backend_free(cpu);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
