/* test-token-overlay.c — the overlay drawing shared by `setok tokens
 * --overlay` and the app (src/common/token-overlay.c): a token in two pieces
 * gets a number on each, numbers never overlap however small the scale, and
 * colours follow tokens from one map to the next by overlap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "token-overlay.h"

enum { W = 96, H = 64 };

/* Token 0 everywhere, token 1 in two squares far apart, token 2 a band at the bottom. */
static void make_labels(int32_t *labels)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int32_t l = 0;
            if (x >= 8 && x < 28 && y >= 8 && y < 28)
                l = 1;
            if (x >= 60 && x < 84 && y >= 10 && y < 34)
                l = 1;
            if (y >= 48)
                l = 2;
            labels[y * W + x] = l;
        }
}

static int overlapping(const double *boxes, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const double *a = boxes + 4 * i, *b = boxes + 4 * j;
            if (a[2] > a[0] && b[2] > b[0] && a[0] < b[2] && b[0] < a[2] && a[1] < b[3] &&
                b[1] < a[3])
                bad++;
        }
    return bad;
}

static void test_pieces_and_labels(void)
{
    int32_t *labels = malloc(W * H * sizeof *labels);
    token_overlay_piece *pieces = NULL;
    make_labels(labels);
    int n = token_overlay_find_pieces(labels, W, H, 3, &pieces);
    CHECK(n == 4, "4 pieces (token 1 has two), got %d", n);
    int of_1 = 0, primaries = 0;
    for (int i = 0; i < n; i++) {
        of_1 += pieces[i].token == 1;
        primaries += pieces[i].primary;
        int32_t at = labels[pieces[i].y * W + pieces[i].x];
        CHECK(at == pieces[i].token, "piece %d's number sits on its token (%d, not %d)", i,
              pieces[i].token, at);
    }
    CHECK(of_1 == 2 && primaries == 3, "token 1 in 2 pieces, one primary a token");
    CHECK(n >= 1 && pieces[0].primary && pieces[0].token == 0, "the largest token comes first");

    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 8 * W, 8 * H);
    cairo_t *cr = cairo_create(s);
    double *boxes = calloc((size_t)n * 4, sizeof *boxes);
    int shown = token_overlay_draw_labels(cr, pieces, n, 8.0, 0, 0, 15.0, boxes);
    CHECK(shown == n, "zoomed in, every piece is numbered (%d of %d)", shown, n);
    CHECK(overlapping(boxes, n) == 0, "no numbers overlap zoomed in");
    for (double scale = 1.0; scale >= 0.05; scale /= 2) {
        shown = token_overlay_draw_labels(cr, pieces, n, scale, 0, 0, 15.0, boxes);
        CHECK(overlapping(boxes, n) == 0, "no numbers overlap at scale %.3f (%d shown)", scale,
              shown);
        CHECK(shown >= 1, "the largest token keeps its number at scale %.3f", scale);
    }
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    free(boxes);
    free(pieces);
    free(labels);
}

static void test_colours(void)
{
    int32_t *old = malloc(W * H * sizeof *old), *now = malloc(W * H * sizeof *now);
    make_labels(old);
    /* the new map numbers the same regions differently and splits the band in two */
    for (int p = 0; p < W * H; p++) {
        int x = p % W;
        now[p] = old[p] == 0 ? 2 : old[p] == 1 ? 0 : x < W / 2 ? 1 : 3;
    }
    int old_colours[3] = {5, 9, 2}, colours[4];
    CHECK(token_overlay_match_colours(old, old_colours, 3, now, 4, W * H, colours), "matched");
    CHECK(colours[2] == 5 && colours[0] == 9, "renumbered tokens keep their colours (%d %d)",
          colours[2], colours[0]);
    CHECK((colours[1] == 2) != (colours[3] == 2), "one half of the split band keeps its colour");
    int fresh = colours[1] == 2 ? colours[3] : colours[1];
    CHECK(fresh != 5 && fresh != 9 && fresh != 2, "the other half gets a colour of its own (%d)",
          fresh);
    CHECK(token_overlay_match_colours(NULL, NULL, 0, now, 4, W * H, colours) && colours[3] == 3,
          "without an old map, token t takes colour t");
    free(old);
    free(now);
}

int main(void)
{
    test_pieces_and_labels();
    test_colours();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
