/* vit-stem.c — the convolutional stem of a vision tower (vit-stem.h),
 * mirroring tools/setokim/stem.py's ConvStem as exported (BatchNorm folded
 * into each convolution's weight and bias): config, weights and forward.
 *
 * Rules: the stem's activations come from the caller's arena above its output
 * and are released before it returns; each convolution is the engine's
 * conv2d op, each activation the unary op in place. */
#include "vit-stem.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clip-encoder.h"
#include "setok/ops.h"

/* ---------------------------------------------------------------------------
 * config */

setok_status vit_stem_config_parse(setok_vit_config *cfg, const setok_config *json,
                                   const char *prefix, setok_error *err)
{
    const char *path = setok_config_path(json);
    char key[128];
    snprintf(key, sizeof key, "%sconv_stem", prefix);
    if (!setok_config_has(json, key))
        return SETOK_OK;
    int64_t ch[SETOK_VIT_STEM_MAX_LAYERS + 1];
    size_t n = 0;
    snprintf(key, sizeof key, "%sconv_stem.channels", prefix);
    setok_status st = setok_config_int_array(json, key, ch, SETOK_VIT_STEM_MAX_LAYERS + 1, &n,
                                             err);
    if (st != SETOK_OK)
        return st;
    if (n < 1 || n > SETOK_VIT_STEM_MAX_LAYERS)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must list 1 to %d widths, got %zu", path,
                          key, SETOK_VIT_STEM_MAX_LAYERS, n);
    for (size_t i = 0; i < n; i++) {
        if (ch[i] < 1 || ch[i] > 1 << 16)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: %s[%zu] is %lld, must be in [1, %d]",
                              path, key, i, (long long)ch[i], 1 << 16);
        cfg->stem_channels[i] = (int)ch[i];
    }
    cfg->stem_layers = (int)n;
    cfg->stem_kernel = 3;
    cfg->stem_stride = 2;
    snprintf(key, sizeof key, "%sconv_stem.kernel_size", prefix);
    st = setok_config_int_in(json, key, false, 1, 15, &cfg->stem_kernel, err);
    snprintf(key, sizeof key, "%sconv_stem.stride", prefix);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, key, false, 1, 16, &cfg->stem_stride, err);
    const char *act = NULL;
    snprintf(key, sizeof key, "%sconv_stem.hidden_act", prefix);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, key, "relu", &act, err);
    if (st != SETOK_OK)
        return st;
    if (!strcmp(act, "relu"))
        cfg->stem_act = SETOK_OP_RELU;
    else if (!strcmp(act, "gelu"))
        cfg->stem_act = SETOK_OP_GELU;
    else if (!strcmp(act, "silu"))
        cfg->stem_act = SETOK_OP_SILU;
    else
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s '%s' is not one of relu, gelu, "
                          "silu", path, key, act);
    return SETOK_OK;
}

setok_status vit_stem_config_check(const setok_vit_config *c, const char *where, setok_error *err)
{
    if (c->stem_layers == 0)
        return SETOK_OK;
    if (c->stem_layers < 0 || c->stem_layers > SETOK_VIT_STEM_MAX_LAYERS)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: conv_stem must have 1 to %d layers", where,
                          SETOK_VIT_STEM_MAX_LAYERS);
    if (c->arch != SETOK_VIT_CLIP)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: conv_stem is supported on CLIP "
                          "vision towers only", where);
    if (c->stem_kernel < 1 || c->stem_kernel % 2 == 0 || c->stem_stride < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: conv_stem kernel_size must be odd and "
                          "stride positive, got %d and %d", where, c->stem_kernel,
                          c->stem_stride);
    int64_t total = 1;
    for (int i = 0; i < c->stem_layers; i++) {
        total *= c->stem_stride;
        if (c->stem_channels[i] < 1)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: conv_stem channels must be positive",
                              where);
    }
    if (total != c->patch_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: conv_stem stride %d ^ %d layers is %lld, "
                          "but patch_size is %d", where, c->stem_stride, c->stem_layers,
                          (long long)total, c->patch_size);
    if (c->stem_act != SETOK_OP_RELU && c->stem_act != SETOK_OP_GELU &&
        c->stem_act != SETOK_OP_SILU)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: conv_stem act must be relu, gelu or silu",
                          where);
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * weights */

/* Input width of convolution i. */
static int64_t in_channels(const setok_vit_config *c, int i)
{
    return i == 0 ? c->num_channels : c->stem_channels[i - 1];
}

const char *vit_stem_anchor(const setok_vit_config *c, int64_t shape[4])
{
    shape[0] = c->stem_channels[0];
    shape[1] = c->num_channels;
    shape[2] = shape[3] = c->stem_kernel;
    return "embeddings.conv_stem.convs.0.weight";
}

void vit_stem_free(vit_stem *s, int layers)
{
    for (int i = 0; i < layers && i < SETOK_VIT_STEM_MAX_LAYERS; i++) {
        setok_tensor_free(&s->conv_w[i]);
        setok_tensor_free(&s->conv_b[i]);
    }
    setok_tensor_free(&s->proj_w);
    setok_tensor_free(&s->proj_b);
}

setok_status vit_stem_load(vit_stem *s, const setok_vit_config *c, const setok_loader *ld,
                           setok_error *err)
{
    int64_t k = c->stem_kernel, last = c->stem_channels[c->stem_layers - 1];
    int64_t C = c->hidden_size;
    setok_status st = SETOK_OK;
    for (int i = 0; i < c->stem_layers && st == SETOK_OK; i++) {
        int64_t out = c->stem_channels[i];
        char w[32], b[32];
        snprintf(w, sizeof w, "convs.%d.weight", i);
        snprintf(b, sizeof b, "convs.%d.bias", i);
        const setok_weight conv[] = {
            {&s->conv_w[i], w, 4, {out, in_channels(c, i), k, k}, 0},
            {&s->conv_b[i], b, 1, {out}, 0},
        };
        st = setok_loader_load(ld, "embeddings.conv_stem", conv, 2, err);
    }
    const setok_weight proj[] = {
        {&s->proj_w, "proj.weight", 4, {C, last, 1, 1}, 0},
        {&s->proj_b, "proj.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "embeddings.conv_stem", proj, 2, err);
    return st;
}

/* ---------------------------------------------------------------------------
 * forward */

size_t vit_stem_arena_bytes(const setok_vit_config *c, int64_t B, int64_t H, int64_t W,
                            size_t elem_size)
{
    size_t bytes = 0;
    for (int i = 0; i < c->stem_layers; i++) {
        H = (H + c->stem_stride - 1) / c->stem_stride;
        W = (W + c->stem_stride - 1) / c->stem_stride;
        bytes += clip_arena_slot(B * c->stem_channels[i] * H * W, elem_size);
    }
    return bytes;
}

setok_status vit_stem_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                              const setok_tensor *x, const vit_stem *s, const setok_vit_config *c,
                              setok_error *err)
{
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    if (H % c->patch_size || W % c->patch_size)
        return setok_fail(err, SETOK_ERR_INPUT, "vit: a convolutional stem needs a height and "
                          "width that are multiples of patch_size %d, got %lld x %lld",
                          c->patch_size, (long long)H, (long long)W);
    size_t mark = setok_arena_mark(arena);
    setok_status st = SETOK_OK;
    setok_tensor h = *x;
    for (int i = 0; i < c->stem_layers && st == SETOK_OK; i++) {
        setok_tensor next;
        H /= c->stem_stride;
        W /= c->stem_stride;
        st = setok_arena_tensor(arena, &next, x->dtype, 4,
                                (int64_t[]){B, c->stem_channels[i], H, W}, err);
        if (st == SETOK_OK)
            st = setok_conv2d(be, &next, &h, &s->conv_w[i], &s->conv_b[i], c->stem_stride,
                              c->stem_kernel / 2, err);
        if (st == SETOK_OK)
            st = setok_unary(be, c->stem_act, &next, &next, err);
        h = next;
    }
    if (st == SETOK_OK)
        st = setok_conv2d(be, y, &h, &s->proj_w, &s->proj_b, 1, 0, err);
    setok_arena_reset(arena, mark);
    return st;
}
