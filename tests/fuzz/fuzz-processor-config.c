/* fuzz-processor-config.c — the same bytes as a vision tower's preprocessor_config.json
 * (read as CLIP's and as SigLIP's processor; a small image then goes through it when the
 * result is small) and as a diffusers scheduler_config.json (then the noise schedule and a
 * few inference schedules are built, and one step taken). */
#include "fuzz-common.h"

#include <stdlib.h>

#include "setok/image.h"
#include "setok/models/scheduler.h"
#include "setok/models/vit.h"

static void preprocess(const setok_vit_preprocessor *pp)
{
    setok_error err;
    setok_image img = {0};
    if (setok_image_alloc(&img, 7, 5, 4, &err) != SETOK_OK)
        return;
    for (int i = 0; i < 7 * 5 * 4; i++)
        img.pixels[i] = (uint8_t)(i * 37);
    int w = 0, h = 0;
    setok_vit_preprocess_size(pp, img.width, img.height, &w, &h);
    /* the resize in between is as large as the output (or the image) */
    if (w > 0 && h > 0 && w <= 96 && h <= 96 &&
        (pp->shortest_edge <= 0 || pp->shortest_edge <= 96) && pp->resize_width <= 96 &&
        pp->resize_height <= 96) {
        size_t n = 3 * (size_t)w * (size_t)h;
        float *out = malloc(n * sizeof *out);
        if (out)
            setok_vit_preprocess(pp, out, n, &img, &err);
        free(out);
    }
    setok_image_free(&img);
}

static void schedule(const setok_scheduler_config *cfg)
{
    setok_error err;
    setok_scheduler *s = NULL;
    if (setok_scheduler_create(&s, cfg, &err) != SETOK_OK)
        return;
    static const int steps[] = {1, 2, 7, 50};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        if (setok_scheduler_set_timesteps(s, steps[i], &err) != SETOK_OK)
            continue;
        float x[4] = {0.5f, -1, 2, 0}, eps[4] = {0.1f, 0.2f, -0.3f, 0.4f}, noise[4] = {1, -1, 0, 1};
        setok_scheduler_scale_model_input(s, 0, x, x, 4, &err);
        setok_scheduler_step(s, 0, x, NULL, eps, x, noise, 4, &err);
        setok_scheduler_add_noise(s, setok_scheduler_start_index(s, 0.5), x, x, noise, 4, &err);
    }
    setok_scheduler_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("preprocessor_config.json", data, size);
    fuzz_write("scheduler_config.json", data, size);
    const char *dir = fuzz_dir();
    setok_error err;
    static const setok_vit_arch arches[2] = {SETOK_VIT_CLIP, SETOK_VIT_SIGLIP};
    for (int i = 0; i < 2; i++) {
        setok_vit_preprocessor pp;
        if (setok_vit_preprocessor_load(&pp, dir, arches[i], &err) == SETOK_OK)
            preprocess(&pp);
    }
    setok_scheduler_config cfg;
    if (setok_scheduler_config_load(&cfg, dir, SETOK_SCHEDULER_FROM_CONFIG, &err) == SETOK_OK)
        schedule(&cfg);
    if (setok_scheduler_config_load(&cfg, dir, SETOK_SCHEDULER_EULER_ANCESTRAL, &err) == SETOK_OK)
        schedule(&cfg);
    return 0;
}
