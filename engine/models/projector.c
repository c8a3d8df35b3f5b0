/* projector.c — the multimodal projectors: transformers' LlavaMultiModalProjector
 * and tools/setokim/bundle.py SetokimProjector (projector.h). Two linears with an
 * activation between them, or one linear; weights by their PyTorch names. */
#include "io/loader.h"
#include "setok/models/projector.h"

#include <stdio.h>
#include <string.h>

#include "setok/config.h"

setok_status setok_projector_act_from_name(const char *name, setok_op *op, const char *path,
                                           setok_error *err)
{
    if (!strcmp(name, "gelu"))
        *op = SETOK_OP_GELU;
    else if (!strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_new") ||
             !strcmp(name, "gelu_fast"))
        *op = SETOK_OP_GELU_TANH;
    else if (!strcmp(name, "quick_gelu"))
        *op = SETOK_OP_QUICK_GELU;
    else if (!strcmp(name, "silu"))
        *op = SETOK_OP_SILU;
    else if (!strcmp(name, "relu"))
        *op = SETOK_OP_RELU;
    else
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: projector_hidden_act '%s' is not "
                          "supported (gelu, gelu_pytorch_tanh, quick_gelu, silu, relu)", path,
                          name);
    return SETOK_OK;
}

void setok_projector_free(setok_projector *p)
{
    setok_tensor *all[] = {&p->w1, &p->b1, &p->w2, &p->b2};
    setok_tensors_free(all, sizeof all / sizeof *all);
    memset(p, 0, sizeof *p);
}

/* linear_1 [out, in] (+ bias), and linear_2 [out, out] (+ bias) for two layers, after
 * prefix ("" or the LLaVA spelling found). */
static setok_status load_linears(setok_projector *p, const setok_weights *w, const char *prefix,
                                 setok_error *err)
{
    int64_t o = p->out_features, i = p->in_features;
    unsigned two = p->num_layers == 2 ? 0 : SETOK_WEIGHT_SKIP;
    const setok_weight table[] = {
        {&p->w1, "linear_1.weight", 2, {o, i}, 0},
        {&p->b1, "linear_1.bias", 1, {o}, SETOK_WEIGHT_OPTIONAL},
        {&p->w2, "linear_2.weight", 2, {o, o}, two},
        {&p->b2, "linear_2.bias", 1, {o}, SETOK_WEIGHT_OPTIONAL | two},
    };
    setok_loader ld = {.w = w, .backend = p->backend, .dtype = p->dtype, .prefix = prefix};
    setok_status st = setok_loader_load(&ld, "", table, sizeof table / sizeof *table, err);
    if (st != SETOK_OK)
        setok_projector_free(p);
    return st;
}

setok_status setok_projector_load_llava(setok_projector *p, const setok_weights *w,
                                        int in_features, int out_features, setok_op act,
                                        setok_backend *backend, setok_dtype dtype,
                                        setok_error *err)
{
    static const char *const prefixes[] = {"multi_modal_projector.",
                                           "model.multi_modal_projector."};
    memset(p, 0, sizeof *p);
    p->in_features = in_features;
    p->out_features = out_features;
    p->act = act;
    p->backend = backend;
    p->dtype = dtype;
    char prefix[48], w2[80];
    setok_loader probe = {.w = w};
    setok_status st = setok_loader_find_prefix(&probe, prefixes, 2, "linear_1.weight", 2,
                                               (int64_t[]){out_features, in_features}, prefix,
                                               sizeof prefix, err);
    if (st != SETOK_OK)
        return st;
    snprintf(w2, sizeof w2, "%slinear_2.weight", prefix);
    p->num_layers = setok_weights_find(w, w2) ? 2 : 1;
    return load_linears(p, w, prefix, err);
}

/* A SetokimProjector's config.json. */
static setok_status config_parse(const setok_config *cfg, void *out, setok_error *err)
{
    setok_projector *p = out;
    const char *act = NULL;
    p->num_layers = 2;
    setok_status st = setok_config_int_in(cfg, "in_features", true, 1, 1 << 24, &p->in_features,
                                          err);
    if (st == SETOK_OK)
        st = setok_config_int_in(cfg, "out_features", true, 1, 1 << 24, &p->out_features, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(cfg, "num_layers", false, 1, 2, &p->num_layers, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "projector_hidden_act", "gelu", &act, err);
    if (st == SETOK_OK)
        st = setok_projector_act_from_name(act, &p->act, setok_config_path(cfg), err);
    return st;
}

setok_status setok_projector_load(setok_projector *p, const char *dir, setok_backend *backend,
                                  setok_dtype dtype, setok_error *err)
{
    memset(p, 0, sizeof *p);
    setok_weights *w = NULL;
    setok_status st = setok_config_read(dir, config_parse, p, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, dir, err);
    if (st != SETOK_OK)
        return st;
    p->backend = backend;
    p->dtype = dtype;
    st = load_linears(p, w, "", err);
    setok_weights_close(w);
    return st;
}

size_t setok_projector_arena_bytes(const setok_projector *p, int64_t n)
{
    size_t row = (size_t)p->out_features * setok_dtype_size(p->dtype);
    return 3 * ((size_t)n * row + 256);
}

setok_status setok_projector_forward(const setok_projector *p, setok_arena *arena,
                                     setok_tensor *y, const setok_tensor *x, setok_error *err)
{
    // x: [N, in], w1: [out, in], w2: [out, out] -> y: [N, out]
    if (x->ndim != 2 || x->shape[1] != p->in_features) {
        char buf[64];
        return setok_fail(err, SETOK_ERR_INPUT, "projector: input is %s, expected [N, %d]",
                          setok_tensor_describe(x, buf, sizeof buf), p->in_features);
    }
    const int64_t shape[2] = {x->shape[0], p->out_features};
    setok_status st = setok_arena_tensor(arena, y, p->dtype, 2, shape, err);
    const setok_tensor *b1 = p->b1.data ? &p->b1 : NULL, *b2 = p->b2.data ? &p->b2 : NULL;
    if (st != SETOK_OK)
        return st;
    if (p->num_layers == 1)
        return setok_linear(p->backend, y, x, &p->w1, b1, err);
    size_t mark = setok_arena_mark(arena);
    setok_tensor h, g;
    st = setok_arena_tensor(arena, &h, p->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &g, p->dtype, 2, shape, err);
    if (st == SETOK_OK)
        st = setok_linear(p->backend, &h, x, &p->w1, b1, err);
    if (st == SETOK_OK)
        st = setok_unary(p->backend, p->act, &g, &h, err);
    if (st == SETOK_OK)
        st = setok_linear(p->backend, y, &g, &p->w2, b2, err);
    setok_arena_reset(arena, mark);
    return st;
}
