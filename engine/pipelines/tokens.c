/* tokens.c — the tokens pipeline: image -> ViT features -> SeTok clusters ->
 * tokens, plus per-pixel token labels on the original image and timings. */
#include "setok/tokens.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "setok/bundle.h"

struct setok_tokenizer {
    setok_backend *backend; /* where the ViT (and merger) run */
    setok_backend *cpu;     /* clustering; the same as backend on the CPU */
    setok_vit *vit;
    setok_merger *merger;   /* NULL: cluster averages */
    int feature_layer;      /* the default: the bundle's or the tower folder's own */
    setok_arena arena;
    float *pixels;          /* preprocessed input, host f32 */
    size_t pixels_floats;
    void *staging;          /* model-dtype copy for upload / download */
    size_t staging_bytes;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static bool has_config(const char *dir)
{
    char path[PATH_MAX];
    struct stat sb;
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return false;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The vision and setok component folders of path (setok "" when absent) and
 * the bundle's vision feature layer (*layer untouched for other folders). */
static setok_status find_components(const char *path, char vision[PATH_MAX],
                                    char setok[PATH_MAX], int *layer, setok_error *err)
{
    setok[0] = '\0';
    if (setok_bundle_is_bundle(path)) {
        setok_bundle b;
        const char *v = NULL, *s = NULL;
        setok_status st = setok_bundle_load(&b, path, err);
        if (st == SETOK_OK)
            st = setok_bundle_require(&b, SETOK_BUNDLE_VISION, "the tokens pipeline", &v, err);
        if (st == SETOK_OK)
            s = b.components[SETOK_BUNDLE_SETOK] ? b.components[SETOK_BUNDLE_SETOK] : "";
        if (st == SETOK_OK && (snprintf(vision, PATH_MAX, "%s", v) >= PATH_MAX ||
                               snprintf(setok, PATH_MAX, "%s", s) >= PATH_MAX))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: component path too long", b.manifest);
        *layer = b.vision_feature_layer;
        setok_bundle_free(&b);
        return st;
    }
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/vision", path);
    if (has_config(sub)) {
        snprintf(vision, PATH_MAX, "%s", sub);
        snprintf(sub, sizeof sub, "%s/setok", path);
        if (has_config(sub))
            snprintf(setok, PATH_MAX, "%s", sub);
        return SETOK_OK;
    }
    if (!has_config(path))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a model folder (no setokim.json, "
                          "vision/config.json or config.json)", path);
    snprintf(vision, PATH_MAX, "%s", path);
    return SETOK_OK;
}

setok_status setok_tokenizer_open(setok_tokenizer **out, const char *path, const char *device,
                                  int threads, setok_error *err)
{
    *out = NULL;
    char vision[PATH_MAX], setok[PATH_MAX];
    int layer = SETOK_TOKENS_DEFAULT_LAYER;
    setok_status st = find_components(path, vision, setok, &layer, err);
    if (st != SETOK_OK)
        return st;
    setok_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return setok_fail(err, SETOK_ERR_NOMEM, "tokenizer: out of memory");
    st = setok_backend_create_by_name(&t->backend, device, threads, err);
    if (st == SETOK_OK && !setok_backend_is_host(t->backend))
        st = setok_backend_cpu_create(&t->cpu, threads, err);
    if (st == SETOK_OK && !t->cpu)
        t->cpu = t->backend;
    setok_dtype dtype = t->backend && !setok_backend_is_host(t->backend) ? SETOK_F16 : SETOK_F32;
    if (st == SETOK_OK)
        st = setok_vit_load(&t->vit, vision, t->backend, dtype, err);
    if (st == SETOK_OK)
        t->feature_layer = layer != SETOK_TOKENS_DEFAULT_LAYER
                               ? layer : setok_vit_get_config(t->vit)->feature_layer;
    if (st == SETOK_OK && setok[0])
        st = setok_merger_load(&t->merger, setok, t->backend, dtype, err);
    if (st == SETOK_OK && t->merger &&
        setok_merger_get_config(t->merger)->hidden_size != setok_vit_get_config(t->vit)->hidden_size)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: merger hidden_size %d does not match the "
                        "vision tower's %d", setok, setok_merger_get_config(t->merger)->hidden_size,
                        setok_vit_get_config(t->vit)->hidden_size);
    if (st != SETOK_OK) {
        setok_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SETOK_OK;
}

void setok_tokenizer_free(setok_tokenizer *t)
{
    if (!t)
        return;
    setok_merger_free(t->merger);
    setok_vit_free(t->vit);
    if (t->arena.base)
        setok_arena_destroy(&t->arena);
    if (t->cpu && t->cpu != t->backend)
        setok_backend_free(t->cpu);
    if (t->backend)
        setok_backend_free(t->backend);
    free(t->pixels);
    free(t->staging);
    free(t);
}

const setok_vit *setok_tokenizer_vit(const setok_tokenizer *t) { return t->vit; }
const setok_merger *setok_tokenizer_merger(const setok_tokenizer *t) { return t->merger; }

const char *setok_tokenizer_device(const setok_tokenizer *t)
{
    return setok_backend_description(t->backend);
}

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
}

static setok_status grow(void **buf, size_t *capacity, size_t bytes, setok_error *err)
{
    if (bytes <= *capacity)
        return SETOK_OK;
    void *p = realloc(*buf, bytes);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "tokens: cannot allocate %zu bytes", bytes);
    *buf = p;
    *capacity = bytes;
    return SETOK_OK;
}

void setok_grid_map_for(setok_grid_map *m, const setok_vit_preprocessor *pp, int width,
                        int height, int grid_w, int grid_h, int patch)
{
    int rw = width, rh = height;
    if (pp->do_resize) {
        if (pp->shortest_edge > 0)
            setok_image_shortest_edge_size(width, height, pp->shortest_edge, &rw, &rh);
        else {
            rw = pp->resize_width;
            rh = pp->resize_height;
        }
    }
    m->grid_w = grid_w;
    m->grid_h = grid_h;
    m->patch = patch;
    m->scale_x = (double)rw / width;
    m->scale_y = (double)rh / height;
    m->crop_x = m->crop_y = 0.0;
    if (pp->do_center_crop) {
        /* HF: top = (h - crop_h) // 2 (floor, negative when padding) */
        int dx = rw - pp->crop_width, dy = rh - pp->crop_height;
        m->crop_x = dx >= 0 ? dx / 2 : -((-dx + 1) / 2);
        m->crop_y = dy >= 0 ? dy / 2 : -((-dy + 1) / 2);
    }
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
    double t0 = now_ms();
    memset(&r->timings, 0, sizeof r->timings);
    const setok_vit_config *cfg = setok_vit_get_config(t->vit);
    const setok_vit_preprocessor *pp = setok_vit_get_preprocessor(t->vit);
    setok_dtype dtype = setok_vit_dtype(t->vit);

    // preprocess: image -> [3, H, W] f32
    int w = 0, h = 0;
    setok_vit_preprocess_size(pp, image->width, image->height, &w, &h);
    int64_t grid_h = 0, grid_w = 0;
    bool drop_cls = setok_vit_has_cls(t->vit);
    if (setok_vit_num_tokens(t->vit, h, w, drop_cls, &grid_h, &grid_w) <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "tokens: a %d x %d model input is smaller than "
                          "one %d-pixel patch", w, h, cfg->patch_size);
    size_t n_pixels = (size_t)3 * (size_t)w * (size_t)h;
    setok_status st = grow((void **)&t->pixels, &t->pixels_floats, n_pixels * sizeof(float), err);
    if (st == SETOK_OK)
        st = setok_vit_preprocess(pp, t->pixels, n_pixels, image, err);
    if (st != SETOK_OK)
        return st;
    double t1 = now_ms();
    r->timings.preprocess_ms = t1 - t0;

    // encode: pixel values on the backend -> features [1, N, d]
    size_t need = setok_vit_arena_bytes(t->vit, 1, h, w) + n_pixels * setok_dtype_size(dtype) + 4096;
    if (t->arena.capacity < need) {
        if (t->arena.base)
            setok_arena_destroy(&t->arena);
        st = setok_arena_init(&t->arena, t->backend, need, err);
        if (st != SETOK_OK)
            return st;
    }
    setok_arena_reset(&t->arena, 0);
    setok_tensor pixels, features;
    st = setok_arena_tensor(&t->arena, &pixels, dtype, 4, (int64_t[]){1, 3, h, w}, err);
    if (st == SETOK_OK)
        st = grow(&t->staging, &t->staging_bytes, n_pixels * setok_dtype_size(dtype), err);
    if (st == SETOK_OK) {
        for (size_t i = 0; i < n_pixels; i++)
            setok_store_f32(t->staging, dtype, (int64_t)i, t->pixels[i]);
        st = setok_tensor_upload(&pixels, t->staging, err);
    }
    int layer = opts->feature_layer == SETOK_TOKENS_DEFAULT_LAYER ? t->feature_layer
                                                                  : opts->feature_layer;
    if (st == SETOK_OK)
        st = cancelled(opts, err);
    if (st == SETOK_OK)
        st = setok_vit_forward(t->vit, &t->arena, &features, NULL, &pixels, layer, drop_cls,
                               opts->cancel, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(t->backend, err);
    int n = (int)(grid_h * grid_w), d = cfg->hidden_size;
    size_t feat_bytes = (size_t)n * (size_t)d * sizeof(float);
    float *host = NULL;
    if (st == SETOK_OK)
        st = grow(&t->staging, &t->staging_bytes, feat_bytes, err);
    if (st == SETOK_OK && !(host = malloc(feat_bytes)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "tokens: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download(t->staging, &features, err);
    if (st == SETOK_OK)
        for (int64_t i = 0; i < (int64_t)n * d; i++)
            host[i] = setok_load_f32(t->staging, features.dtype, i);
    double t2 = now_ms();
    r->timings.encode_ms = t2 - t1;

    // cluster on the host
    if (st == SETOK_OK)
        st = cancelled(opts, err);
    // the position embedding goes in when the merger's does (SetokimModel.cluster)
    bool pe = !t->merger || setok_merger_get_config(t->merger)->position_embedding;
    if (st == SETOK_OK)
        st = setok_cluster(&r->clusters, t->cpu, host, (int)grid_h, (int)grid_w, d,
                           &opts->cluster, pe, err);
    double t3 = now_ms();
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
    free(host);
    double t4 = now_ms();
    r->timings.merge_ms = t4 - t3;

    // labels on the original image
    if (st == SETOK_OK) {
        setok_grid_map_for(&r->map, pp, image->width, image->height, (int)grid_w, (int)grid_h,
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
    double t5 = now_ms();
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
