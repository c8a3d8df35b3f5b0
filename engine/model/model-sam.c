/* model-sam.c — an image through a SAM folder's image encoder, once
 * (model.h setok_model_sam_embed): SamImageProcessor, the encoder's forward in
 * the model's arena, and a small cache of the last embeddings keyed by the
 * image's pixels, so that each click on an image only runs the mask decoder. */
#include "model-impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "setok/clock.h"

/* The cache shares the feature cache's key; this tag keeps the two apart. */
#define SAM_KEY_TAG INT_MIN

void model_sam_free(setok_model *m)
{
    for (int i = 0; i < MODEL_SAM_CACHE; i++) {
        free(m->sam_cache[i].data);
        memset(&m->sam_cache[i], 0, sizeof m->sam_cache[i]);
    }
}

/* The encoder's forward on image into slot (its data allocated here). */
static setok_status encode(setok_model *m, setok_sam_vision *enc, const setok_image *image,
                           const atomic_bool *cancel, model_sam_slot *slot, setok_error *err)
{
    double t0 = setok_clock_ms();
    const setok_sam_vision_config *cfg = setok_sam_vision_get_config(enc);
    const setok_sam_preprocessor *pp = setok_sam_vision_get_preprocessor(enc);
    int rw, rh, iw, ih, S = cfg->image_size, g = setok_sam_vision_grid(enc);
    setok_sam_preprocess_size(pp, image->width, image->height, &rw, &rh, &iw, &ih);
    if (iw != S || ih != S)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the processor makes a %d x %d input of a "
                          "%d x %d image; the image encoder takes %d x %d", m->dir, iw, ih,
                          image->width, image->height, S, S);
    size_t n_px = (size_t)3 * (size_t)S * (size_t)S, el = setok_dtype_size(m->dtype);
    size_t n_emb = (size_t)cfg->output_channels * (size_t)g * (size_t)g;
    setok_status st = setok_grow((void **)&m->pixels, &m->pixels_bytes, n_px * sizeof(float),
                                 "sam encode", err);
    if (st == SETOK_OK)
        st = setok_sam_preprocess(pp, m->pixels, n_px, image, err);
    if (st == SETOK_OK)
        st = model_ensure_arena(m, setok_sam_vision_arena_bytes(enc, 1) + n_px * el + 4096, err);
    setok_tensor px, emb;
    if (st == SETOK_OK) {
        setok_arena_reset(&m->arena, 0);
        st = setok_arena_tensor(&m->arena, &px, m->dtype, 4, (int64_t[]){1, 3, S, S}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&px, m->pixels, err);
    if (st == SETOK_OK)
        st = setok_sam_vision_forward(enc, &m->arena, &emb, &px, cancel, err);
    float *data = NULL;
    if (st == SETOK_OK && !(data = malloc(n_emb * sizeof *data)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "sam encode: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(data, &emb, err);
    setok_arena_reset(&m->arena, 0);
    if (st != SETOK_OK) {
        free(data);
        return st;
    }
    free(slot->data);
    slot->data = data;
    slot->e = (setok_sam_embedding){.data = data, .channels = cfg->output_channels, .grid = g,
                                    .resized_w = rw, .resized_h = rh, .input_w = iw,
                                    .input_h = ih, .encode_ms = setok_clock_ms() - t0};
    m->encodes++;
    return SETOK_OK;
}

setok_status setok_model_sam_embed(setok_model *m, const setok_image *image,
                                   const atomic_bool *cancel, setok_sam_embedding *out,
                                   setok_error *err)
{
    memset(out, 0, sizeof *out);
    if (!image || !image->pixels || image->width < 1 || image->height < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "sam encode: empty image");
    setok_sam_vision *enc = NULL;
    setok_status st = setok_model_sam_vision(m, &enc, err);
    if (st != SETOK_OK)
        return st;
    uint64_t key = model_image_key(image, SAM_KEY_TAG);
    model_sam_slot *slot = &m->sam_cache[0];
    for (int i = 0; i < MODEL_SAM_CACHE; i++) {
        model_sam_slot *e = &m->sam_cache[i];
        if (e->stamp && e->key == key) {
            e->stamp = ++m->clock;
            *out = e->e;
            out->encode_ms = 0.0;
            return SETOK_OK;
        }
        if (e->stamp < slot->stamp)
            slot = e;
    }
    slot->stamp = 0;
    st = encode(m, enc, image, cancel, slot, err);
    if (st != SETOK_OK)
        return st;
    slot->key = key;
    slot->stamp = ++m->clock;
    *out = slot->e;
    return SETOK_OK;
}
