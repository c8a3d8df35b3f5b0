/* world-analyse.c — reads an RGB image of the world without any model: the
 * background, the object-coloured pixels, their components and each
 * component's colour, shape and size (world.h, setok_world_analyse).
 *
 * `setok eval` scores generated and edited images with it, so it knows only
 * what the world promises: a fixed palette far from every background tone,
 * hard-edged shapes drawn by the rasterizer of world-render.c, and the radii
 * of the three size classes. */
#include <stdlib.h>
#include <string.h>

#include "world-impl.h"

enum {
    BIN_SHIFT = 4, /* background bins: 16 levels a channel */
    N_BINS = 1 << (3 * (8 - BIN_SHIFT)),
    FIT_SLACK = 2, /* pixels a fitted shape's extent may fall short of the component's box */
};

static int dist2(const uint8_t *a, const uint8_t *b)
{
    int d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return d0 * d0 + d1 * d1 + d2 * d2;
}

static int colour_bin(const uint8_t *px)
{
    return (px[0] >> BIN_SHIFT) << (2 * (8 - BIN_SHIFT)) | (px[1] >> BIN_SHIFT) << (8 - BIN_SHIFT)
           | (px[2] >> BIN_SHIFT);
}

/* The pixels of the image's outermost ring, in a fixed order; false past the end. */
static bool border_pixel(int i, int w, int h, int *x, int *y)
{
    if (i < w) {
        *x = i, *y = 0;
    } else if (i < 2 * w) {
        *x = i - w, *y = h - 1;
    } else if (i < 2 * w + (h - 2)) {
        *x = 0, *y = i - 2 * w + 1;
    } else if (i < 2 * w + 2 * (h - 2)) {
        *x = w - 1, *y = i - 2 * w - (h - 2) + 1;
    } else {
        return false;
    }
    return true;
}

/* The mean colour of the most frequent bin of the border (ties: the lower bin). */
static void estimate_background(const uint8_t *rgb, int w, int h, uint8_t out[3])
{
    _Static_assert(N_BINS == 4096, "16 levels a channel");
    int counts[N_BINS] = {0};
    int x, y;
    for (int i = 0; border_pixel(i, w, h, &x, &y); i++)
        counts[colour_bin(rgb + ((size_t)y * w + x) * 3)]++;
    int best = 0;
    for (int b = 1; b < N_BINS; b++)
        if (counts[b] > counts[best])
            best = b;
    long sum[3] = {0, 0, 0};
    for (int i = 0; border_pixel(i, w, h, &x, &y); i++) {
        const uint8_t *px = rgb + ((size_t)y * w + x) * 3;
        if (colour_bin(px) == best)
            for (int c = 0; c < 3; c++)
                sum[c] += px[c];
    }
    for (int c = 0; c < 3; c++)
        out[c] = (uint8_t)((sum[c] + counts[best] / 2) / counts[best]);
}

/* The nearest palette colour other than skip, and its squared distance. */
static int nearest_colour(const uint8_t *px, int skip, int *d2)
{
    int best = -1, best_d = 0;
    for (int c = 0; c < WORLD_N_COLOURS; c++) {
        if (c == skip)
            continue;
        int d = dist2(px, world_colour_rgb[c]);
        if (best < 0 || d < best_d) {
            best = c;
            best_d = d;
        }
    }
    *d2 = best_d;
    return best;
}

/* Half the area of the smallest shape of the small size class: smaller
 * components are specks. */
static int speck_area(int w, int h, uint8_t *scratch)
{
    int r = world_radius(WORLD_SMALL, w, h), side = 2 * r + 1, least = 0;
    for (int k = 0; k < WORLD_N_SHAPES; k++) {
        world_object o = {.shape = k, .cx = r, .cy = r, .radius = r};
        int a = world_raster_mask(scratch, side, side, &o);
        least = k == 0 || a < least ? a : least;
    }
    return (least + 1) / 2;
}

/* ---------------------------------------------------------------------------
 * components */

/* A component as the flood finds it: its temporary label, first pixel (in
 * scan order, the tie-break of the sort) and centroid. */
typedef struct found {
    setok_world_component c;
    int32_t label;
    int first;
    double mx, my;
} found;

/* Largest first; equal areas in scan order of their first pixel. */
static int by_area(const void *pa, const void *pb)
{
    const found *a = pa, *b = pb;
    if (a->c.area != b->c.area)
        return a->c.area > b->c.area ? -1 : 1;
    return (a->first > b->first) - (a->first < b->first);
}

/* Labels the 4-connected component of one colour that holds pixel start with
 * label; fills its colour, area and box, and its pixel sums in *sx, *sy. */
static void flood(const uint8_t *colours, int32_t *map, int32_t *queue, int w, int h, int start,
                  int32_t label, setok_world_component *c, double *sx, double *sy)
{
    uint8_t colour = colours[start];
    *c = (setok_world_component){.colour = colour, .x0 = w, .y0 = h};
    *sx = *sy = 0;
    int head = 0, tail = 0;
    queue[tail++] = start;
    map[start] = label;
    while (head < tail) {
        int p = queue[head++], x = p % w, y = p / w;
        c->area++;
        *sx += x;
        *sy += y;
        if (x < c->x0) c->x0 = x;
        if (y < c->y0) c->y0 = y;
        if (x + 1 > c->x1) c->x1 = x + 1;
        if (y + 1 > c->y1) c->y1 = y + 1;
        int next[4] = {x > 0 ? p - 1 : -1, x + 1 < w ? p + 1 : -1, y > 0 ? p - w : -1,
                       y + 1 < h ? p + w : -1};
        for (int k = 0; k < 4; k++) {
            int q = next[k];
            if (q >= 0 && map[q] == 0 && colours[q] == colour) {
                map[q] = label;
                queue[tail++] = q;
            }
        }
    }
}

/* ---------------------------------------------------------------------------
 * shapes */

typedef struct fit_ctx {
    const int32_t *map;
    int w, h;
    uint8_t *mask; /* [(2 * r_max + 1)^2] */
} fit_ctx;

/* IoU of mask (side x side, reference point at its centre) placed at (cx, cy)
 * with the pixels of component id. */
static double placed_iou(const fit_ctx *f, int side, int mask_area, int cx, int cy, int32_t id,
                         int comp_area)
{
    int r = side / 2, inter = 0;
    for (int j = 0; j < side; j++) {
        int y = cy - r + j;
        if (y < 0 || y >= f->h)
            continue;
        for (int i = 0; i < side; i++) {
            int x = cx - r + i;
            if (x >= 0 && x < f->w && f->mask[j * side + i] && f->map[(size_t)y * f->w + x] == id)
                inter++;
        }
    }
    return (double)inter / (double)(mask_area + comp_area - inter);
}

/* Fits every shape at every radius in r_lo..r_hi (in steps of r_step) to
 * component id, its mask aligned with the component's box corners or its
 * centroid; keeps the best IoU (ties: the first tried). */
static void fit_shape(const fit_ctx *f, setok_world_component *c, int32_t id, double mx,
                      double my, int r_lo, int r_hi, int r_step)
{
    int bw = c->x1 - c->x0, bh = c->y1 - c->y0;
    c->shape_iou = -1.0f;
    for (int k = 0; k < WORLD_N_SHAPES; k++)
        for (int r = r_lo; r <= r_hi; r += r_step) {
            int side = 2 * r + 1;
            world_object o = {.shape = k, .cx = r, .cy = r, .radius = r};
            int area = world_raster_mask(f->mask, side, side, &o);
            int minx = side, maxx = -1, miny = side, maxy = -1;
            double cdx = 0, cdy = 0;
            for (int j = 0; j < side; j++)
                for (int i = 0; i < side; i++)
                    if (f->mask[j * side + i]) {
                        minx = i < minx ? i : minx;
                        maxx = i > maxx ? i : maxx;
                        miny = j < miny ? j : miny;
                        maxy = j > maxy ? j : maxy;
                        cdx += i - r;
                        cdy += j - r;
                    }
            if (area == 0)
                continue;
            int ew = maxx - minx + 1, eh = maxy - miny + 1;
            /* the shape must be able to cover the component, and be at most
             * twice its box (objects are at least half visible) */
            if (ew + FIT_SLACK < bw || eh + FIT_SLACK < bh || ew > 2 * bw + FIT_SLACK
                || eh > 2 * bh + FIT_SLACK)
                continue;
            minx -= r, maxx -= r, miny -= r, maxy -= r;
            int cand[5][2] = {
                {c->x0 - minx, c->y0 - miny},
                {c->x1 - 1 - maxx, c->y1 - 1 - maxy},
                {c->x0 - minx, c->y1 - 1 - maxy},
                {c->x1 - 1 - maxx, c->y0 - miny},
                {(int)(mx - cdx / area + (mx - cdx / area >= 0 ? 0.5 : -0.5)),
                 (int)(my - cdy / area + (my - cdy / area >= 0 ? 0.5 : -0.5))},
            };
            for (int t = 0; t < 5; t++) {
                bool seen = false;
                for (int u = 0; u < t && !seen; u++)
                    seen = cand[u][0] == cand[t][0] && cand[u][1] == cand[t][1];
                if (seen)
                    continue;
                double iou = placed_iou(f, side, area, cand[t][0], cand[t][1], id, c->area);
                if (iou > c->shape_iou) {
                    c->shape_iou = (float)iou;
                    c->shape = k;
                    c->radius = r;
                    c->cx = cand[t][0];
                    c->cy = cand[t][1];
                }
            }
        }
    if (c->shape_iou < 0) { /* nothing fits its box: the largest circle tried, at its centre */
        c->shape_iou = 0;
        c->shape = WORLD_CIRCLE;
        c->radius = r_hi;
        c->cx = (c->x0 + c->x1) / 2;
        c->cy = (c->y0 + c->y1) / 2;
    }
    int best = 0;
    for (int s = 1; s < WORLD_N_SIZES; s++)
        if (abs(world_radius(s, f->w, f->h) - c->radius)
            < abs(world_radius(best, f->w, f->h) - c->radius))
            best = s;
    c->size = best;
}

/* ---------------------------------------------------------------------------
 * API */

setok_status setok_world_analyse(setok_world_reading *out, const uint8_t *rgb, int width,
                                 int height, setok_error *err)
{
    if (!out)
        return setok_fail(err, SETOK_ERR_INPUT, "world: analyse: no output given");
    memset(out, 0, sizeof *out);
    if (!rgb || width < SETOK_WORLD_MIN_SIDE || width > SETOK_WORLD_MAX_SIDE
        || height < SETOK_WORLD_MIN_SIDE || height > SETOK_WORLD_MAX_SIDE)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "world: analyse: images must be %d..%d pixels a side, got %d x %d",
                          SETOK_WORLD_MIN_SIDE, SETOK_WORLD_MAX_SIDE, width, height);
    size_t npx = (size_t)width * height;
    int r_small = world_radius(WORLD_SMALL, width, height);
    int r_large = world_radius(WORLD_LARGE, width, height);
    /* radii a little beyond the size classes, for images drawn at another
     * scale; about 20 steps at any scene size */
    int r_lo = r_small * 2 / 3 > 2 ? r_small * 2 / 3 : 2, r_hi = r_large * 4 / 3 + 1;
    int r_step = r_small / 7 > 1 ? r_small / 7 : 1;
    int mask_side = 2 * r_hi + 1;
    out->width = width;
    out->height = height;
    out->colours = malloc(npx);
    out->components_map = calloc(npx, sizeof *out->components_map);
    int32_t *queue = malloc((npx + 1) * sizeof *queue); /* + 1: also the relabel table */
    uint8_t *mask = malloc((size_t)mask_side * mask_side);
    found *list = NULL;
    int n = 0, cap = 0;
    setok_status st = SETOK_OK;
    if (!out->colours || !out->components_map || !queue || !mask) {
        st = setok_fail(err, SETOK_ERR_NOMEM, "world: analyse: out of memory");
        goto done;
    }

    estimate_background(rgb, width, height, out->background);
    int bg_d2;
    out->background_colour = nearest_colour(out->background, -1, &bg_d2);
    if (bg_d2 > SETOK_WORLD_COLOUR_THRESHOLD * SETOK_WORLD_COLOUR_THRESHOLD)
        out->background_colour = -1;
    for (size_t p = 0; p < npx; p++) {
        const uint8_t *px = rgb + p * 3;
        int d2, c = nearest_colour(px, out->background_colour, &d2);
        bool object = d2 <= SETOK_WORLD_COLOUR_THRESHOLD * SETOK_WORLD_COLOUR_THRESHOLD
                      && d2 < dist2(px, out->background);
        out->colours[p] = object ? (uint8_t)c : SETOK_WORLD_NOT_OBJECT;
    }

    for (size_t p = 0; p < npx; p++) {
        if (out->colours[p] == SETOK_WORLD_NOT_OBJECT || out->components_map[p] != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            found *grown = realloc(list, (size_t)cap * sizeof *grown);
            if (!grown) {
                st = setok_fail(err, SETOK_ERR_NOMEM, "world: analyse: out of memory");
                goto done;
            }
            list = grown;
        }
        found *f = &list[n];
        f->label = ++n;
        f->first = (int)p;
        flood(out->colours, out->components_map, queue, width, height, (int)p, f->label, &f->c,
              &f->mx, &f->my);
        f->mx /= f->c.area;
        f->my /= f->c.area;
    }

    out->min_area = speck_area(width, height, mask);
    if (n > 1)
        qsort(list, (size_t)n, sizeof *list, by_area);
    int kept = 0;
    while (kept < n && list[kept].c.area >= out->min_area)
        kept++;
    /* relabel: temporary label -> 1 + rank among the kept, specks 0 (queue as the table) */
    int32_t *relabel = queue;
    for (int i = 0; i < n; i++)
        relabel[list[i].label] = i < kept ? i + 1 : 0;
    relabel[0] = 0;
    for (size_t p = 0; p < npx; p++)
        out->components_map[p] = relabel[out->components_map[p]];
    if (kept > 0) {
        out->components = malloc((size_t)kept * sizeof *out->components);
        if (!out->components) {
            st = setok_fail(err, SETOK_ERR_NOMEM, "world: analyse: out of memory");
            goto done;
        }
    }
    fit_ctx fc = {.map = out->components_map, .w = width, .h = height, .mask = mask};
    for (int i = 0; i < kept; i++) {
        out->components[i] = list[i].c;
        fit_shape(&fc, &out->components[i], i + 1, list[i].mx, list[i].my, r_lo, r_hi, r_step);
    }
    out->n_components = kept;

done:
    free(queue);
    free(mask);
    free(list);
    return st;
}

void setok_world_reading_free(setok_world_reading *r)
{
    if (!r)
        return;
    free(r->colours);
    free(r->components_map);
    free(r->components);
    memset(r, 0, sizeof *r);
}
