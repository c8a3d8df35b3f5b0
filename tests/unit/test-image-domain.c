/* test-image-domain.c — whether a picture looks like a model's training domain
 * (src/common/image-domain.c): scenes of the synthetic world are inside,
 * also resized; photograph-like pictures are outside; kinds this program does
 * not know cannot be checked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image-domain.h"
#include "setok/world.h"

static int scene(setok_image *img, uint64_t seed)
{
    setok_world_options o;
    setok_world_scene *s = NULL;
    setok_error err = {0};
    setok_world_options_default(&o);
    if (setok_world_generate(&s, seed, &o, &err) != SETOK_OK ||
        setok_image_alloc(img, setok_world_width(s), setok_world_height(s), 3, &err) != SETOK_OK) {
        setok_world_free(s);
        return 0;
    }
    memcpy(img->pixels, setok_world_rgb(s), (size_t)img->width * img->height * 3);
    setok_world_free(s);
    return 1;
}

/* Smooth colour and noise, as a photograph has. */
static void photo(setok_image *img, unsigned seed)
{
    setok_error err = {0};
    setok_image_alloc(img, 320, 240, 3, &err);
    srand(seed);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * sin(0.02 * x * (c + 1) + 0.03 * y) + rand() % 40 - 20;
                img->pixels[((size_t)y * img->width + x) * 3 + c] =
                    (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

int main(void)
{
    int inside = 0, inside_resized = 0, n = 20;
    for (int i = 0; i < n; i++) {
        setok_image img = {0}, big = {0};
        setok_error err = {0};
        if (!scene(&img, 1000 + (uint64_t)i))
            continue;
        inside += image_domain_check("synthetic-shapes", &img) == IMAGE_DOMAIN_INSIDE;
        if (setok_image_resize(&big, &img, 300, 260, SETOK_RESAMPLE_BILINEAR, &err) == SETOK_OK)
            inside_resized += image_domain_check("synthetic-shapes", &big) == IMAGE_DOMAIN_INSIDE;
        setok_image_free(&img);
        setok_image_free(&big);
    }
    CHECK(inside == n, "world scenes are inside the domain: %d of %d", inside, n);
    CHECK(inside_resized == n, "resized world scenes are inside too: %d of %d", inside_resized, n);
    int outside = 0;
    for (unsigned s = 0; s < 5; s++) {
        setok_image img = {0};
        photo(&img, s);
        outside += image_domain_check("synthetic-shapes", &img) == IMAGE_DOMAIN_OUTSIDE;
        setok_image_free(&img);
    }
    CHECK(outside == 5, "photograph-like pictures are outside: %d of 5", outside);
    setok_image img = {0};
    photo(&img, 9);
    CHECK(image_domain_check("photographs", &img) == IMAGE_DOMAIN_UNKNOWN &&
          image_domain_check(NULL, &img) == IMAGE_DOMAIN_UNKNOWN,
          "kinds this program does not know cannot be checked");
    setok_image_free(&img);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
