/* tokens.c — the tokens pipeline: image -> ViT features (the model's, computed
 * once per image) -> SeTok clusters -> tokens, plus per-pixel token labels on
 * the original image and timings. */
#include "setok/tokens.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "setok/clock.h"

struct setok_tokenizer {
    setok_model *model;
    setok_vit *vit;
    setok_merger *merger;   /* NULL: cluster averages */
    int feature_layer;      /* the default: the bundle's or the tower folder's own */
};

setok_status setok_tokenizer_new(setok_tokenizer **out, setok_model *model, setok_error *err)
{
    *out = NULL;
    setok_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return setok_fail(err, SETOK_ERR_NOMEM, "tokens: out of memory");
    t->model = model;
    setok_status st = setok_model_require(model, SETOK_CAP_TOKENS, err);
    if (st == SETOK_OK)
        st = setok_model_vit(model, &t->vit, err);
    if (st == SETOK_OK)
        st = setok_model_merger(model, &t->merger, err);
    if (st == SETOK_OK)
        st = setok_model_feature_layer(model, &t->feature_layer, err);
    if (st != SETOK_OK) {
        free(t);
        return st;
    }
    *out = t;
    return SETOK_OK;
}

void setok_tokenizer_free(setok_tokenizer *t)
{
    free(t);
}

const setok_vit *setok_tokenizer_vit(const setok_tokenizer *t) { return t->vit; }
const setok_merger *setok_tokenizer_merger(const setok_tokenizer *t) { return t->merger; }

setok_cluster_params setok_tokenizer_default_params(const setok_tokenizer *t)
{
    return t->merger ? setok_merger_get_config(t->merger)->cluster : setok_cluster_params_default();
}

void setok_tokens_options_default(setok_tokens_options *o, const setok_tokenizer *t)
{
    memset(o, 0, sizeof *o);
    o->cluster = setok_tokenizer_default_params(t);
    o->refine_masks = false;
    o->feature_layer = SETOK_TOKENS_DEFAULT_LAYER;
    o->fit = SETOK_IMAGE_FIT_PAD;
}

void setok_grid_map_for(setok_grid_map *m, const setok_vit_preprocessor *pp,
                        setok_image_fit fit, int width, int height, int grid_w, int grid_h,
                        int patch)
{
    /* padding first: the image sits at (off_x, off_y) of a side x side square */
    int side = width, off_x = 0, off_y = 0;
    if (fit == SETOK_IMAGE_FIT_PAD)
        setok_image_fit_square(width, height, &side, &off_x, &off_y);
    int pw = fit == SETOK_IMAGE_FIT_PAD ? side : width, ph = fit == SETOK_IMAGE_FIT_PAD ? side
                                                                                      : height;
    int rw = pw, rh = ph;
    if (pp->do_resize) {
        if (pp->shortest_edge > 0)
            setok_image_shortest_edge_size(pw, ph, pp->shortest_edge, &rw, &rh);
        else {
            rw = pp->resize_width;
            rh = pp->resize_height;
        }
    }
    m->grid_w = grid_w;
    m->grid_h = grid_h;
    m->patch = patch;
    m->scale_x = (double)rw / pw;
    m->scale_y = (double)rh / ph;
    m->crop_x = m->crop_y = 0.0;
    if (pp->do_center_crop) {
        /* HF: top = (h - crop_h) // 2 (floor, negative when padding) */
        int dx = rw - pp->crop_width, dy = rh - pp->crop_height;
        m->crop_x = dx >= 0 ? dx / 2 : -((-dx + 1) / 2);
        m->crop_y = dy >= 0 ? dy / 2 : -((-dy + 1) / 2);
    }
    /* model u = (x + off_x) * scale - crop */
    m->crop_x -= off_x * m->scale_x;
    m->crop_y -= off_y * m->scale_y;
}

static void compute_regions(setok_tokens_result *r)
{
    int n = r->clusters.n_tokens;
    double *sx = calloc((size_t)(n ? n : 1) * 2, sizeof *sx);
    for (int t = 0; t < n; t++)
        r->regions[t] = (setok_token_region){0, -1.0, -1.0, INT_MAX, INT_MAX, -1, -1};
    for (int y = 0; y < r->height; y++)
        for (int x = 0; x < r->width; x++) {
            int32_t l = r->pixel_labels[(int64_t)y * r->width + x];
            if (l < 0 || l >= n)
                continue;
            setok_token_region *g = &r->regions[l];
            g->area++;
            if (sx) {
                sx[2 * l] += x + 0.5;
                sx[2 * l + 1] += y + 0.5;
            }
            g->x0 = x < g->x0 ? x : g->x0;
            g->y0 = y < g->y0 ? y : g->y0;
            g->x1 = x + 1 > g->x1 ? x + 1 : g->x1;
            g->y1 = y + 1 > g->y1 ? y + 1 : g->y1;
        }
    for (int t = 0; t < n; t++) {
        setok_token_region *g = &r->regions[t];
        if (!g->area) {
            g->x0 = g->y0 = g->x1 = g->y1 = 0;
            continue;
        }
        if (sx) {
            g->cx = sx[2 * t] / (double)g->area;
            g->cy = sx[2 * t + 1] / (double)g->area;
        }
    }
    free(sx);
}

static setok_status cancelled(const setok_tokens_options *o, setok_error *err)
{
    if (o->cancel && atomic_load(o->cancel))
        return setok_fail(err, SETOK_ERR_CANCELLED, "tokens: cancelled");
    return SETOK_OK;
}

setok_status setok_tokens_run(setok_tokenizer *t, const setok_image *image,
                              const setok_tokens_options *opts, setok_tokens_result *r,
                              setok_error *err)
{
    double t0 = setok_clock_ms();
    memset(&r->timings, 0, sizeof r->timings);
    const setok_vit_config *cfg = setok_vit_get_config(t->vit);
    const setok_vit_preprocessor *pp = setok_vit_get_preprocessor(t->vit);

    // encode: the model's features of the image, without the class token
    int layer = opts->feature_layer == SETOK_TOKENS_DEFAULT_LAYER ? t->feature_layer
                                                                  : opts->feature_layer;
    setok_image_features f;
    setok_status st = cancelled(opts, err);
    if (st == SETOK_OK)
        st = setok_model_encode_image(t->model, image, layer, opts->fit, opts->cancel, &f, err);
    if (st != SETOK_OK)
        return st;
    int grid_h = f.grid_h, grid_w = f.grid_w, d = f.dim;
    const float *host = f.rows + (f.has_cls ? d : 0);
    double t2 = setok_clock_ms();
    r->timings.encode_ms = f.encode_ms;

    // cluster on the host
    if (st == SETOK_OK)
        st = cancelled(opts, err);
    // the position embedding goes in when the merger's does (SetokimModel.cluster)
    bool pe = !t->merger || setok_merger_get_config(t->merger)->position_embedding;
    setok_cluster_params cp = opts->cluster;
    int n = grid_h * grid_w;
    cp.k = cp.k > n ? n : cp.k;
    cp.fixed_k = cp.fixed_k > n ? n : cp.fixed_k;
    if (st == SETOK_OK)
        st = setok_cluster(&r->clusters, setok_model_host_backend(t->model), host, grid_h, grid_w,
                           d, &cp, pe, err);
    double t3 = setok_clock_ms();
    r->timings.cluster_ms = t3 - t2;

    // token features: merger, or cluster means
    int k = st == SETOK_OK ? r->clusters.n_tokens : 0;
    bool merge = t->merger && !opts->average;
    int dim = merge ? setok_merger_get_config(t->merger)->output_size : d;
    float *tok = NULL;
    if (st == SETOK_OK && !(tok = realloc(r->features, (size_t)(k ? k : 1) * dim * sizeof *tok)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "tokens: out of memory");
    if (tok) {
        r->features = tok;
        r->dim = dim;
    }
    if (st == SETOK_OK)
        st = merge ? setok_merger_forward_host(t->merger, r->features, host, &r->clusters, err)
                   : setok_tokens_average(r->features, host, d, &r->clusters, err);
    double t4 = setok_clock_ms();
    r->timings.merge_ms = t4 - t3;

    // labels on the original image
    if (st == SETOK_OK) {
        setok_grid_map_for(&r->map, pp, opts->fit, image->width, image->height, grid_w, grid_h,
                           cfg->patch_size);
        size_t npx = (size_t)image->width * (size_t)image->height;
        int32_t *labels = realloc(r->pixel_labels, npx * sizeof *labels);
        setok_token_region *regions = realloc(r->regions, (size_t)(k ? k : 1) * sizeof *regions);
        if (labels)
            r->pixel_labels = labels;
        if (regions)
            r->regions = regions;
        if (!labels || !regions)
            st = setok_fail(err, SETOK_ERR_NOMEM, "tokens: out of memory for %zu pixel labels",
                            npx);
        r->width = image->width;
        r->height = image->height;
    }
    if (st == SETOK_OK)
        st = setok_labels_upsample(r->pixel_labels, r->clusters.labels, k, &r->map, image,
                                   opts->refine_masks, err);
    if (st == SETOK_OK)
        compute_regions(r);
    double t5 = setok_clock_ms();
    r->timings.masks_ms = t5 - t4;
    r->timings.total_ms = t5 - t0;
    return st;
}

void setok_tokens_result_free(setok_tokens_result *r)
{
    setok_clusters_free(&r->clusters);
    free(r->pixel_labels);
    free(r->regions);
    free(r->features);
    memset(r, 0, sizeof *r);
}
