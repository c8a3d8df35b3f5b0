/* model-features.c — an image through the model's vision tower, once
 * (model.h setok_model_encode_image): preprocessing, the tower's forward in
 * the model's arena, and a small cache of the last results keyed by the
 * image's pixels, the layer and how the image was fitted, so that the
 * pipelines sharing the model do not encode the same picture twice. */
#include "model-impl.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "setok/clock.h"

/* FNV-1a over the pixels, 8 bytes at a time, then the size and the tag. */
uint64_t model_image_key(const setok_image *image, int tag)
{
    const uint64_t prime = 0x100000001b3ull;
    uint64_t h = 0xcbf29ce484222325ull;
    size_t n = (size_t)image->width * (size_t)image->height * (size_t)image->channels, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, image->pixels + i, 8);
        h = (h ^ w) * prime;
    }
    for (; i < n; i++)
        h = (h ^ image->pixels[i]) * prime;
    uint64_t dims[4] = {(uint64_t)image->width, (uint64_t)image->height,
                        (uint64_t)image->channels, (uint64_t)(uint32_t)tag};
    for (int k = 0; k < 4; k++)
        h = (h ^ dims[k]) * prime;
    return h;
}

void model_features_free(setok_model *m)
{
    for (int i = 0; i < MODEL_FEATURE_CACHE; i++) {
        free(m->cache[i].rows);
        memset(&m->cache[i], 0, sizeof m->cache[i]);
    }
    if (m->arena.base)
        setok_arena_destroy(&m->arena);
    free(m->staging);
    free(m->pixels);
    m->staging = m->pixels = NULL;
    m->staging_bytes = m->pixels_bytes = 0;
}

setok_status model_ensure_arena(setok_model *m, size_t need, setok_error *err)
{
    if (m->arena.base && m->arena.capacity >= need)
        return SETOK_OK;
    if (m->arena.base)
        setok_arena_destroy(&m->arena);
    memset(&m->arena, 0, sizeof m->arena);
    return setok_arena_init(&m->arena, m->backend, need, err);
}

/* The tower's forward on image into e (rows allocated here). */
static setok_status encode(setok_model *m, setok_vit *vit, const setok_image *image, int layer,
                           setok_image_fit fit, const atomic_bool *cancel, model_features *e,
                           setok_error *err)
{
    double t0 = setok_clock_ms();
    const setok_vit_config *cfg = setok_vit_get_config(vit);
    const setok_vit_preprocessor *pp = setok_vit_get_preprocessor(vit);
    int w = 0, h = 0;
    setok_vit_preprocess_fit_size(pp, fit, image->width, image->height, &w, &h);
    int64_t gh = 0, gw = 0;
    bool cls = setok_vit_has_cls(vit);
    int64_t n = setok_vit_num_tokens(vit, h, w, false, &gh, &gw);
    if (n <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "a %d x %d model input is smaller than one "
                          "%d-pixel patch", w, h, cfg->patch_size);
    size_t n_px = (size_t)3 * (size_t)w * (size_t)h, el = setok_dtype_size(m->dtype);
    int64_t dim = cfg->hidden_size;
    setok_status st = setok_grow((void **)&m->pixels, &m->pixels_bytes, n_px * sizeof(float),
                                 "encode", err);
    if (st == SETOK_OK)
        st = setok_vit_preprocess_fit(pp, fit, m->pixels, n_px, image, err);
    if (st == SETOK_OK)
        st = model_ensure_arena(m, setok_vit_arena_bytes(vit, 1, h, w) + n_px * el + 4096, err);
    setok_tensor px, feat;
    if (st == SETOK_OK) {
        setok_arena_reset(&m->arena, 0);
        st = setok_arena_tensor(&m->arena, &px, m->dtype, 4, (int64_t[]){1, 3, h, w}, err);
    }
    size_t feat_bytes = (size_t)n * (size_t)dim * el;
    if (st == SETOK_OK)
        st = setok_grow(&m->staging, &m->staging_bytes, n_px * el > feat_bytes ? n_px * el
                                                                                : feat_bytes,
                        "encode", err);
    if (st == SETOK_OK) {
        for (size_t i = 0; i < n_px; i++)
            setok_store_f32(m->staging, m->dtype, (int64_t)i, m->pixels[i]);
        st = setok_tensor_upload(&px, m->staging, err);
    }
    if (st == SETOK_OK)
        st = setok_vit_forward(vit, &m->arena, &feat, NULL, &px, layer, false, cancel, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(m->backend, err);
    float *rows = NULL;
    if (st == SETOK_OK && !(rows = malloc((size_t)n * (size_t)dim * sizeof *rows)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "encode: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download(m->staging, &feat, err);
    for (int64_t i = 0; st == SETOK_OK && i < n * dim; i++)
        rows[i] = setok_load_f32(m->staging, feat.dtype, i);
    if (st != SETOK_OK) {
        free(rows);
        return st;
    }
    free(e->rows);
    e->rows = rows;
    e->f = (setok_image_features){.rows = rows, .n_rows = (int)n, .grid_h = (int)gh,
                                  .grid_w = (int)gw, .dim = (int)dim, .has_cls = cls,
                                  .width = w, .height = h,
                                  .encode_ms = setok_clock_ms() - t0};
    m->encodes++;
    return SETOK_OK;
}

setok_status setok_model_encode_image(setok_model *m, const setok_image *image, int layer,
                                      setok_image_fit fit, const atomic_bool *cancel,
                                      setok_image_features *out, setok_error *err)
{
    memset(out, 0, sizeof *out);
    setok_vit *vit = NULL;
    setok_status st = setok_model_vit(m, &vit, err);
    if (st != SETOK_OK)
        return st;
    if ((unsigned)fit >= SETOK_IMAGE_FIT_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "encode: image fit %d is not pad or crop",
                          (int)fit);
    uint64_t key = model_image_key(image, layer * (int)SETOK_IMAGE_FIT_COUNT + (int)fit);
    model_features *slot = &m->cache[0];
    for (int i = 0; i < MODEL_FEATURE_CACHE; i++) {
        model_features *e = &m->cache[i];
        if (e->stamp && e->key == key && e->layer == layer && e->fit == fit) {
            e->stamp = ++m->clock;
            *out = e->f;
            out->encode_ms = 0.0;
            return SETOK_OK;
        }
        if (e->stamp < slot->stamp)
            slot = e;
    }
    slot->stamp = 0;
    st = encode(m, vit, image, layer, fit, cancel, slot, err);
    if (st != SETOK_OK)
        return st;
    slot->key = key;
    slot->layer = layer;
    slot->fit = fit;
    slot->stamp = ++m->clock;
    *out = slot->f;
    return SETOK_OK;
}
