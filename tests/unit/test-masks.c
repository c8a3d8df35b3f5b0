/* test-masks.c — patch labels placed on the image: the grid transform, and
 * the edge-aware refinement on a synthetic two-region image whose boundary
 * cuts through the middle of patches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setok/masks.h"
#include "setok/tokens.h"

#include "check.h"

static void test_grid_map(void)
{
    /* a 640 x 480 photo, shortest edge to 336 (scale 0.7), center crop 336 x 336 */
    setok_grid_map m = {.grid_w = 24, .grid_h = 24, .patch = 14, .scale_x = 0.7,
                        .scale_y = 0.7, .crop_x = (448 - 336) / 2, .crop_y = 0};
    CHECK(setok_grid_patch_at(&m, 10, 10) == -1, "left of the crop has no patch");
    CHECK(setok_grid_patch_at(&m, 80 + 0.5, 0.5) == 0, "crop origin is patch 0");
    CHECK(setok_grid_patch_at(&m, 639.5, 479.5) == -1, "right of the crop has no patch");
    CHECK(setok_grid_patch_at(&m, 559.5, 479.5) == 24 * 24 - 1, "last pixel of the crop");
    CHECK(setok_grid_patch_at(&m, 80 + 20.5, 0.5) == 1, "20 px in (14 model px) is patch 1");
}

/* The same photo through setok_grid_map_for: padded (the whole image is seen) and cropped. */
static void test_grid_map_fit(void)
{
    setok_vit_preprocessor pp;
    setok_vit_preprocessor_defaults(&pp, SETOK_VIT_CLIP);
    pp.shortest_edge = pp.crop_width = pp.crop_height = 336;
    setok_grid_map m;
    setok_grid_map_for(&m, &pp, SETOK_IMAGE_FIT_CROP, 640, 480, 24, 24, 14);
    CHECK(setok_grid_patch_at(&m, 10, 10) == -1 && setok_grid_patch_at(&m, 80.5, 0.5) == 0,
          "crop: the sides are cut, the crop starts at x = 80");
    /* pad: a 640 x 640 square, the photo 80 px down, then 640 -> 336 (scale 0.525) */
    setok_grid_map_for(&m, &pp, SETOK_IMAGE_FIT_PAD, 640, 480, 24, 24, 14);
    CHECK(setok_grid_patch_at(&m, 0.5, 0.5) == 3 * 24, "pad: the top-left pixel is in row 3");
    CHECK(setok_grid_patch_at(&m, 639.5, 479.5) == 20 * 24 + 23,
          "pad: the bottom-right pixel is in row 20, column 23");
    int outside = 0;
    for (int y = 0; y < 480; y += 7)
        for (int x = 0; x < 640; x += 7)
            outside += setok_grid_patch_at(&m, x + 0.5, y + 0.5) < 0;
    CHECK(outside == 0, "pad: every pixel lies on a patch (%d do not)", outside);
    setok_grid_map_for(&m, &pp, SETOK_IMAGE_FIT_PAD, 300, 500, 24, 24, 14);
    /* a 500-px square, the image 100 px right, scale 0.672 */
    CHECK(setok_grid_patch_at(&m, 0.5, 0.5) == 4 && setok_grid_patch_at(&m, 299.5, 0.5) == 19,
          "pad: a tall image sits in columns 4..19");
}

static void test_refine(void)
{
    /* 8 x 8 patches of 8 px; left region red up to x = 28 (mid-patch 3), blue after */
    enum { G = 8, P = 8, W = G * P };
    setok_image img = {.width = W, .height = W, .channels = 3};
    img.pixels = malloc(W * W * 3);
    int32_t labels[G * G], *out = malloc(W * W * sizeof *out), *near = malloc(W * W * 4);
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = img.pixels + (y * W + x) * 3;
            int red = x < 28;
            px[0] = red ? 200 : 20;
            px[1] = (uint8_t)(40 + (x * 7 + y * 13) % 9); /* a little texture */
            px[2] = red ? 30 : 210;
        }
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++)
            labels[i * G + j] = j <= 3 ? 0 : 1; /* patch 3 (x 24..31) is mostly red */
    setok_grid_map m = {.grid_w = G, .grid_h = G, .patch = P, .scale_x = 1, .scale_y = 1};
    setok_error err = {0};
    CHECK(setok_labels_upsample(near, labels, 2, &m, &img, false, &err) == SETOK_OK, "nearest");
    CHECK(setok_labels_upsample(out, labels, 2, &m, &img, true, &err) == SETOK_OK, "refined");
    int wrong_near = 0, wrong_refined = 0;
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            int truth = x < 28 ? 0 : 1;
            wrong_near += near[y * W + x] != truth;
            wrong_refined += out[y * W + x] != truth;
        }
    CHECK(wrong_near == 4 * W, "nearest puts the 4-px strip on the wrong side (%d)", wrong_near);
    CHECK(wrong_refined < W / 2, "refinement follows the colour edge: %d wrong pixels of %d",
          wrong_refined, W * W);
    int32_t bad[G * G];
    memcpy(bad, labels, sizeof bad);
    bad[5] = 7;
    CHECK(setok_labels_upsample(out, bad, 2, &m, &img, true, &err) == SETOK_ERR_INPUT,
          "a label outside 0..n-1 is refused");
    free(img.pixels);
    free(out);
    free(near);
}

int main(void)
{
    test_grid_map();
    test_grid_map_fit();
    test_refine();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
