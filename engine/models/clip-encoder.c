/* clip-encoder.c — the CLIP / SigLIP encoder layer (see clip-encoder.h). Every
 * activation comes from the caller's arena and is released at the end of its
 * sub-layer. */
#include "clip-encoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void clip_layer_free(clip_layer *l)
{
    setok_tensor *all[] = {&l->ln1_w, &l->ln1_b, &l->qkv_w, &l->qkv_b, &l->out_w, &l->out_b,
                           &l->ln2_w, &l->ln2_b, &l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

/* src [rows, ...] into rows dst_row.. of dst (same dtype, contiguous): bytes on the host,
 * whose block formats a copy op cannot take; the copy op on a device. */
static setok_status copy_rows(setok_backend *be, setok_tensor *dst, int64_t dst_row,
                              const setok_tensor *src, setok_error *err)
{
    if (setok_backend_is_host(be)) {
        memcpy((char *)dst->data + setok_dtype_bytes(dst->dtype, dst_row * dst->stride[0]),
               src->data, setok_tensor_nbytes(src));
        return SETOK_OK;
    }
    setok_tensor view;
    setok_status st = setok_view_slice(&view, dst, 0, dst_row, src->shape[0], err);
    if (st == SETOK_OK)
        st = setok_copy(be, &view, src, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(be, err); /* before the source is released */
    return st;
}

/* q_proj, k_proj, v_proj (weight [C, C] and bias [C] each) stacked into qkv_w [3C, C]
 * (a matrix) and qkv_b. */
static setok_status load_qkv(clip_layer *l, const setok_loader *ld, const char *prefix, int64_t c,
                             setok_error *err)
{
    static const char *const proj[3] = {"q_proj", "k_proj", "v_proj"};
    setok_tensor parts[3] = {{0}}, biases[3] = {{0}};
    setok_status st = SETOK_OK;
    for (int j = 0; j < 3 && st == SETOK_OK; j++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "self_attn.%s.weight", proj[j]);
        snprintf(bn, sizeof bn, "self_attn.%s.bias", proj[j]);
        const setok_weight table[] = {{&parts[j], wn, 2, {c, c}, SETOK_WEIGHT_MATRIX},
                                      {&biases[j], bn, 1, {c}, 0}};
        st = setok_loader_load(ld, prefix, table, 2, err);
    }
    setok_backend *be = ld->backend;
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&l->qkv_w, be, parts[0].dtype, 2, (int64_t[]){3 * c, c}, err);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(&l->qkv_b, be, ld->dtype, 1, (int64_t[]){3 * c}, err);
    for (int j = 0; j < 3 && st == SETOK_OK; j++) {
        st = copy_rows(be, &l->qkv_w, j * c, &parts[j], err);
        if (st == SETOK_OK)
            st = copy_rows(be, &l->qkv_b, j * c, &biases[j], err);
    }
    for (int j = 0; j < 3; j++) {
        setok_tensor_free(&parts[j]);
        setok_tensor_free(&biases[j]);
    }
    return st;
}

setok_status clip_layer_load(clip_layer *l, const setok_loader *ld, const char *prefix, int64_t C,
                             int64_t I, setok_error *err)
{
    const setok_weight table[] = {
        {&l->ln1_w, "layer_norm1.weight", 1, {C}, 0},
        {&l->ln1_b, "layer_norm1.bias", 1, {C}, 0},
        {&l->out_w, "self_attn.out_proj.weight", 2, {C, C}, SETOK_WEIGHT_MATRIX},
        {&l->out_b, "self_attn.out_proj.bias", 1, {C}, 0},
        {&l->ln2_w, "layer_norm2.weight", 1, {C}, 0},
        {&l->ln2_b, "layer_norm2.bias", 1, {C}, 0},
        {&l->fc1_w, "mlp.fc1.weight", 2, {I, C}, SETOK_WEIGHT_MATRIX},
        {&l->fc1_b, "mlp.fc1.bias", 1, {I}, 0},
        {&l->fc2_w, "mlp.fc2.weight", 2, {C, I}, SETOK_WEIGHT_MATRIX},
        {&l->fc2_b, "mlp.fc2.bias", 1, {C}, 0},
    };
    setok_status st = load_qkv(l, ld, prefix, C, err);
    if (st == SETOK_OK)
        st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    return st;
}

size_t clip_arena_slot(int64_t numel, size_t elem_size)
{
    size_t bytes = (size_t)numel * elem_size;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

size_t clip_layer_arena_bytes(const clip_dims *d, size_t e)
{
    int64_t btc = d->B * d->T * d->C, bti = d->B * d->T * d->I;
    /* attention: normed x, output, q k v heads, fused qkv; MLP: normed x, output, fc1, act */
    size_t attn = 5 * clip_arena_slot(btc, e) + clip_arena_slot(3 * btc, e);
    size_t mlp = 2 * clip_arena_slot(btc, e) + 2 * clip_arena_slot(bti, e);
    return attn > mlp ? attn : mlp;
}

// x: [B, T, C] -> y: [B, T, C] = out_proj(softmax(q k^T / sqrt(D)) v), [q k v] = x Wqkv^T + b,
// NH heads of D = C / NH
static setok_status attention(setok_backend *be, setok_arena *arena, setok_tensor *y,
                              const setok_tensor *x, const clip_layer *l, const clip_dims *d,
                              bool causal, setok_error *err)
{
    int64_t B = d->B, T = d->T, C = d->C, NH = d->NH, D = C / NH;
    int64_t head_shape[4] = {B, NH, T, D};
    setok_tensor heads[3], qkv, qkv4, att, merged, merged3;
    setok_status st = SETOK_OK;
    for (int j = 0; j < 3 && st == SETOK_OK; j++)
        st = setok_arena_tensor(arena, &heads[j], x->dtype, 4, head_shape, err);
    size_t mark = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &qkv, x->dtype, 3, (int64_t[]){B, T, 3 * C}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &qkv, x, &l->qkv_w, &l->qkv_b, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&qkv4, &qkv, 4, (int64_t[]){B, T, 3 * NH, D}, err);
    for (int j = 0; j < 3 && st == SETOK_OK; j++) {
        setok_tensor part, part_bhtd;
        st = setok_view_slice(&part, &qkv4, 2, j * NH, NH, err);
        if (st == SETOK_OK)
            st = setok_view_permute(&part_bhtd, &part, (int[]){0, 2, 1, 3}, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &heads[j], &part_bhtd, err);
    }
    setok_arena_reset(arena, mark);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &att, x->dtype, 4, head_shape, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &heads[0], &heads[1], &heads[2], NULL,
                             (float)pow((double)D, -0.5), causal, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &merged, x->dtype, 4, (int64_t[]){B, T, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &merged, &att, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&merged3, &merged, 3, (int64_t[]){B, T, C}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &merged3, &l->out_w, &l->out_b, err);
    return st;
}

// x: [B, T, C] -> y: [B, T, C] = fc2(act(fc1(x))), fc1: [I, C], fc2: [C, I]
static setok_status mlp(setok_backend *be, setok_arena *arena, setok_tensor *y,
                        const setok_tensor *x, const clip_layer *l, setok_op act,
                        const clip_dims *d, setok_error *err)
{
    setok_tensor h, a;
    int64_t shape[3] = {d->B, d->T, d->I};
    setok_status st = setok_arena_tensor(arena, &h, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h, x, &l->fc1_w, &l->fc1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, act, &a, &h, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &a, &l->fc2_w, &l->fc2_b, err);
    return st;
}

setok_status clip_layer_forward(setok_backend *be, setok_arena *arena, setok_tensor *x,
                                setok_tensor *tmp, const clip_layer *l, const clip_dims *d,
                                setok_op act, float eps, bool causal, setok_error *err)
{
    int64_t shape[3] = {d->B, d->T, d->C};
    size_t mark = setok_arena_mark(arena);
    setok_tensor xn, o;
    setok_status st = setok_arena_tensor(arena, &xn, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &xn, x, &l->ln1_w, &l->ln1_b, eps, err);
    if (st == SETOK_OK)
        st = attention(be, arena, &o, &xn, l, d, causal, err);
    if (st == SETOK_OK)
        st = setok_add(be, tmp, x, &o, err);
    setok_arena_reset(arena, mark);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &xn, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, x->dtype, 3, shape, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &xn, tmp, &l->ln2_w, &l->ln2_b, eps, err);
    if (st == SETOK_OK)
        st = mlp(be, arena, &o, &xn, l, act, d, err);
    if (st == SETOK_OK)
        st = setok_add(be, x, tmp, &o, err);
    setok_arena_reset(arena, mark);
    return st;
}
