/* masks.c — per-patch token labels to per-pixel labels on the original image.
 *
 * Nearest placement reproduces the patch grid (stairs of patch size). The
 * refinement re-decides only pixels within one patch of a label boundary:
 * each may take any label of the 3x3 neighbouring patches, whichever explains
 * its colour best (squared distance to the label's mean colour, scaled by the
 * label's colour variance) plus a penalty for how far the pixel lies from a
 * patch of that label, by a clear margin over its own label. A 3x3 majority
 * pass then removes single-pixel specks. */
#include "setok/masks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* how strongly distance (in patches) from a label's patches counts against it */
#define REFINE_SPATIAL_WEIGHT 6.0
/* colour variance floor, in (0..255)^2, so flat regions are not infinitely strict */
#define REFINE_VARIANCE_FLOOR 36.0
/* a pixel leaves its patch's label only when another fits this much better, so
 * labels whose colours are alike (no visible edge between them) keep their
 * patch boundaries instead of trading pixels by noise */
#define REFINE_SWITCH_MARGIN 1.5

static void model_coords(const setok_grid_map *m, double x, double y, double *u, double *v)
{
    *u = x * m->scale_x - m->crop_x;
    *v = y * m->scale_y - m->crop_y;
}

int setok_grid_patch_at(const setok_grid_map *m, double x, double y)
{
    double u, v;
    model_coords(m, x, y, &u, &v);
    if (u < 0.0 || v < 0.0)
        return -1;
    int j = (int)(u / m->patch), i = (int)(v / m->patch);
    if (i >= m->grid_h || j >= m->grid_w)
        return -1;
    return i * m->grid_w + j;
}

typedef struct label_stats {
    double mean[3];
    double var; /* mean over channels */
} label_stats;

static void colour_of(const setok_image *img, int64_t p, double rgb[3])
{
    const uint8_t *px = img->pixels + p * img->channels;
    if (img->channels >= 3) {
        rgb[0] = px[0];
        rgb[1] = px[1];
        rgb[2] = px[2];
    } else {
        rgb[0] = rgb[1] = rgb[2] = px[0];
    }
}

static setok_status compute_stats(label_stats *stats, const int32_t *lab, int n_labels,
                                  const setok_image *img, setok_error *err)
{
    double *acc = calloc((size_t)n_labels * 7, sizeof *acc); /* n, sum[3], sumsq[3] */
    if (!acc)
        return setok_fail(err, SETOK_ERR_NOMEM, "labels: out of memory");
    int64_t n = (int64_t)img->width * img->height;
    for (int64_t p = 0; p < n; p++) {
        if (lab[p] < 0)
            continue;
        double rgb[3], *a = acc + (size_t)lab[p] * 7;
        colour_of(img, p, rgb);
        a[0] += 1.0;
        for (int c = 0; c < 3; c++) {
            a[1 + c] += rgb[c];
            a[4 + c] += rgb[c] * rgb[c];
        }
    }
    for (int l = 0; l < n_labels; l++) {
        const double *a = acc + (size_t)l * 7;
        double cnt = a[0] > 0 ? a[0] : 1.0, var = 0.0;
        for (int c = 0; c < 3; c++) {
            stats[l].mean[c] = a[1 + c] / cnt;
            var += a[4 + c] / cnt - stats[l].mean[c] * stats[l].mean[c];
        }
        stats[l].var = (var > 0.0 ? var / 3.0 : 0.0) + REFINE_VARIANCE_FLOOR;
    }
    free(acc);
    return SETOK_OK;
}

/* Squared distance, in patches, from (u, v) (model pixels) to patch (i, j). */
static double patch_distance2(const setok_grid_map *m, double u, double v, int i, int j)
{
    double p = m->patch;
    double dx = u < j * p ? j * p - u : u > (j + 1) * p ? u - (j + 1) * p : 0.0;
    double dy = v < i * p ? i * p - v : v > (i + 1) * p ? v - (i + 1) * p : 0.0;
    return (dx * dx + dy * dy) / (p * p);
}

static int32_t refine_pixel(const setok_grid_map *m, const int32_t *labels,
                            const label_stats *stats, const double rgb[3], double u, double v,
                            int32_t current)
{
    int pi = (int)(v / m->patch), pj = (int)(u / m->patch);
    int32_t cand[9];
    double best_d2[9];
    int nc = 0;
    for (int di = -1; di <= 1; di++)
        for (int dj = -1; dj <= 1; dj++) {
            int i = pi + di, j = pj + dj;
            if (i < 0 || j < 0 || i >= m->grid_h || j >= m->grid_w)
                continue;
            int32_t l = labels[i * m->grid_w + j];
            double d2 = patch_distance2(m, u, v, i, j);
            int k = 0;
            while (k < nc && cand[k] != l)
                k++;
            if (k == nc) {
                cand[nc] = l;
                best_d2[nc++] = d2;
            } else if (d2 < best_d2[k]) {
                best_d2[k] = d2;
            }
        }
    if (nc <= 1)
        return current;
    int32_t best = current;
    double best_cost = INFINITY, current_cost = INFINITY;
    for (int k = 0; k < nc; k++) {
        const label_stats *s = &stats[cand[k]];
        double c2 = 0.0;
        for (int c = 0; c < 3; c++)
            c2 += (rgb[c] - s->mean[c]) * (rgb[c] - s->mean[c]);
        double cost = c2 / s->var + REFINE_SPATIAL_WEIGHT * best_d2[k];
        if (cand[k] == current)
            current_cost = cost;
        if (cost < best_cost || (cost == best_cost && cand[k] < best)) {
            best_cost = cost;
            best = cand[k];
        }
    }
    return best_cost + REFINE_SWITCH_MARGIN < current_cost ? best : current;
}

/* One 3x3 majority pass over pixels that touch another label. */
static void majority_pass(int32_t *dst, const int32_t *src, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int32_t self = src[(int64_t)y * w + x];
            dst[(int64_t)y * w + x] = self;
            if (self < 0)
                continue;
            int32_t vals[9];
            int cnt[9], nv = 0, same = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                        continue;
                    int32_t l = src[(int64_t)yy * w + xx];
                    if (l < 0)
                        continue;
                    same += l == self;
                    int k = 0;
                    while (k < nv && vals[k] != l)
                        k++;
                    if (k == nv) {
                        vals[nv] = l;
                        cnt[nv++] = 0;
                    }
                    cnt[k]++;
                }
            if (same >= 3)
                continue;
            int bk = 0;
            for (int k = 1; k < nv; k++)
                if (cnt[k] > cnt[bk] || (cnt[k] == cnt[bk] && vals[k] < vals[bk]))
                    bk = k;
            if (cnt[bk] >= 5)
                dst[(int64_t)y * w + x] = vals[bk];
        }
}

setok_status setok_labels_upsample(int32_t *out, const int32_t *labels, int n_labels,
                                   const setok_grid_map *map, const setok_image *img, bool refine,
                                   setok_error *err)
{
    if (!map || map->grid_w <= 0 || map->grid_h <= 0 || map->patch <= 0 || !(map->scale_x > 0) ||
        !(map->scale_y > 0))
        return setok_fail(err, SETOK_ERR_INPUT, "labels: invalid grid map");
    if (!img || img->width <= 0 || img->height <= 0 || !img->pixels)
        return setok_fail(err, SETOK_ERR_INPUT, "labels: empty image");
    for (int p = 0; p < map->grid_w * map->grid_h; p++)
        if (labels[p] < 0 || labels[p] >= n_labels)
            return setok_fail(err, SETOK_ERR_INPUT, "labels: patch %d has label %d, outside "
                              "0..%d", p, labels[p], n_labels - 1);
    int w = img->width, h = img->height;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int p = setok_grid_patch_at(map, x + 0.5, y + 0.5);
            out[(int64_t)y * w + x] = p < 0 ? -1 : labels[p];
        }
    if (!refine)
        return SETOK_OK;

    label_stats *stats = malloc((size_t)n_labels * sizeof *stats);
    int32_t *tmp = malloc((size_t)w * (size_t)h * sizeof *tmp);
    setok_status st = stats && tmp ? compute_stats(stats, out, n_labels, img, err)
                                   : setok_fail(err, SETOK_ERR_NOMEM, "labels: out of memory");
    if (st == SETOK_OK) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int64_t p = (int64_t)y * w + x;
                tmp[p] = out[p];
                if (out[p] < 0)
                    continue;
                double u, v, rgb[3];
                model_coords(map, x + 0.5, y + 0.5, &u, &v);
                colour_of(img, p, rgb);
                tmp[p] = refine_pixel(map, labels, stats, rgb, u, v, out[p]);
            }
        majority_pass(out, tmp, w, h);
    }
    free(stats);
    free(tmp);
    return st;
}
