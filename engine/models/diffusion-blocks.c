/* diffusion-blocks.c — the layers diffusers' AutoencoderKL and
 * UNet2DConditionModel share (see diffusion-blocks.h): ResnetBlock2D,
 * Downsample2D, Upsample2D, the VAE mid-block Attention and
 * Transformer2DModel / BasicTransformerBlock.
 *
 * Rules: weights load by their PyTorch names with checked shapes; a forward
 * carves its scratch from the arena and resets to its entry mark, and its
 * *_scratch twin counts exactly those tensors. Transformer projections run
 * on tokens [B, H*W, C]: a 1x1 conv proj_in / proj_out is the same linear. */
#include "diffusion-blocks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t diffusion_slot(int64_t numel, size_t esize)
{
    size_t bytes = (size_t)numel * esize;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

static const setok_tensor *opt(const setok_tensor *t)
{
    return t->data ? t : NULL;
}

/* ---------------------------------------------------------------------------
 * ResnetBlock2D */

setok_status diffusion_resnet_load(diffusion_resnet *r, const setok_loader *ld,
                                   const char *prefix, int64_t in_ch, int64_t out_ch,
                                   int64_t temb_ch, int groups, float eps, float out_scale,
                                   setok_error *err)
{
    *r = (diffusion_resnet){.in_ch = in_ch, .out_ch = out_ch, .temb_ch = temb_ch,
                            .groups = groups, .eps = eps, .out_scale = out_scale};
    if (in_ch % groups || out_ch % groups)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s: channels %lld -> %lld are not "
                          "multiples of norm_num_groups %d", setok_loader_path(ld), prefix,
                          (long long)in_ch, (long long)out_ch, groups);
    unsigned temb = temb_ch ? 0 : SETOK_WEIGHT_SKIP;
    unsigned shortcut = in_ch != out_ch ? 0 : SETOK_WEIGHT_SKIP;
    const setok_weight table[] = {
        {&r->norm1_w, "norm1.weight", 1, {in_ch}, 0},
        {&r->norm1_b, "norm1.bias", 1, {in_ch}, 0},
        {&r->conv1_w, "conv1.weight", 4, {out_ch, in_ch, 3, 3}, 0},
        {&r->conv1_b, "conv1.bias", 1, {out_ch}, 0},
        {&r->norm2_w, "norm2.weight", 1, {out_ch}, 0},
        {&r->norm2_b, "norm2.bias", 1, {out_ch}, 0},
        {&r->conv2_w, "conv2.weight", 4, {out_ch, out_ch, 3, 3}, 0},
        {&r->conv2_b, "conv2.bias", 1, {out_ch}, 0},
        {&r->temb_w, "time_emb_proj.weight", 2, {out_ch, temb_ch}, temb},
        {&r->temb_b, "time_emb_proj.bias", 1, {out_ch}, temb},
        {&r->short_w, "conv_shortcut.weight", 4, {out_ch, in_ch, 1, 1}, shortcut},
        {&r->short_b, "conv_shortcut.bias", 1, {out_ch}, shortcut},
    };
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

void diffusion_resnet_free(diffusion_resnet *r)
{
    setok_tensor *all[] = {&r->norm1_w, &r->norm1_b, &r->conv1_w, &r->conv1_b,
                           &r->temb_w,  &r->temb_b,  &r->norm2_w, &r->norm2_b,
                           &r->conv2_w, &r->conv2_b, &r->short_w, &r->short_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

size_t diffusion_resnet_scratch(const diffusion_resnet *r, int64_t B, int64_t H, int64_t W,
                                size_t esize)
{
    int64_t out = B * r->out_ch * H * W;
    return diffusion_slot(B * r->in_ch * H * W, esize) + 2 * diffusion_slot(out, esize) +
           diffusion_slot(B * r->out_ch, esize) +
           (r->in_ch != r->out_ch ? diffusion_slot(out, esize) : 0);
}

// x: [B, Cin, H, W], temb_act: [B, T]? -> y: [B, Cout, H, W] =
// (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + temb_proj(temb_act))))) / out_scale
setok_status diffusion_resnet_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                      const setok_tensor *x, const setok_tensor *temb_act,
                                      const diffusion_resnet *r, setok_error *err)
{
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], C = r->out_ch;
    int64_t out_shape[4] = {B, C, H, W};
    size_t mark = setok_arena_mark(arena);
    setok_tensor a, h, g, t, t4, s;
    setok_status st = setok_arena_tensor(arena, &a, x->dtype, 4, x->shape, err);
    if (st == SETOK_OK)
        st = setok_groupnorm(be, &a, x, &r->norm1_w, &r->norm1_b, r->groups, r->eps, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_SILU, &a, &a, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h, x->dtype, 4, out_shape, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, &h, &a, &r->conv1_w, &r->conv1_b, 1, 1, err);
    if (st == SETOK_OK && r->temb_ch) {
        /* hidden + time_emb_proj(silu(temb))[:, :, None, None] */
        st = setok_arena_tensor(arena, &t, x->dtype, 2, (int64_t[]){B, C}, err);
        if (st == SETOK_OK)
            st = setok_linear(be, &t, temb_act, &r->temb_w, &r->temb_b, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&t4, &t, 4, (int64_t[]){B, C, 1, 1}, err);
        if (st == SETOK_OK)
            st = setok_add(be, &h, &h, &t4, err);
    }
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &g, x->dtype, 4, out_shape, err);
    if (st == SETOK_OK)
        st = setok_groupnorm(be, &g, &h, &r->norm2_w, &r->norm2_b, r->groups, r->eps, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_SILU, &g, &g, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, &h, &g, &r->conv2_w, &r->conv2_b, 1, 1, err);
    const setok_tensor *skip = x;
    if (st == SETOK_OK && r->in_ch != r->out_ch) {
        st = setok_arena_tensor(arena, &s, x->dtype, 4, out_shape, err);
        if (st == SETOK_OK)
            st = setok_conv2d(be, &s, x, &r->short_w, &r->short_b, 1, 0, err);
        skip = &s;
    }
    if (st == SETOK_OK)
        st = setok_add(be, y, skip, &h, err);
    if (st == SETOK_OK && r->out_scale != 1.0f)
        st = setok_scale(be, y, y, 1.0f / r->out_scale, 0.0f, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * Downsample2D */

setok_status diffusion_downsample_load(diffusion_downsample *d, const setok_loader *ld,
                                       const char *prefix, int64_t ch, int padding,
                                       setok_error *err)
{
    memset(d, 0, sizeof *d);
    d->ch = ch;
    d->padding = padding;
    if (padding != 0 && padding != 1)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s: downsample padding %d is not 0 "
                          "or 1", setok_loader_path(ld), prefix, padding);
    const setok_weight table[] = {
        {&d->conv_w, "conv.weight", 4, {ch, ch, 3, 3}, 0},
        {&d->conv_b, "conv.bias", 1, {ch}, 0},
    };
    setok_status st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    if (st == SETOK_OK && padding == 0) {
        uint32_t zero = 0; /* 0.0 in f32, f16 and bf16 alike */
        st = setok_tensor_alloc(&d->zero, ld->backend, ld->dtype, 1, (int64_t[]){1}, err);
        if (st == SETOK_OK)
            st = setok_tensor_upload(&d->zero, &zero, err);
    }
    return st;
}

void diffusion_downsample_free(diffusion_downsample *d)
{
    setok_tensor *all[] = {&d->conv_w, &d->conv_b, &d->zero};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

int64_t diffusion_downsample_extent(const diffusion_downsample *d, int64_t n)
{
    /* padding 1: (n + 2 - 3) / 2 + 1; padding 0 after one extra row: (n + 1 - 3) / 2 + 1 */
    return d->padding == 1 ? (n - 1) / 2 + 1 : (n - 2) / 2 + 1;
}

size_t diffusion_downsample_scratch(const diffusion_downsample *d, int64_t B, int64_t H,
                                    int64_t W, size_t esize)
{
    return d->padding == 0 ? diffusion_slot(B * d->ch * (H + 1) * (W + 1), esize) : 0;
}

/* A view of shape like's whose every element is the one element of zero. */
static setok_tensor broadcast_zero(const setok_tensor *zero, const setok_tensor *like)
{
    setok_tensor z = *zero;
    z.ndim = like->ndim;
    for (int i = 0; i < SETOK_MAX_DIMS; i++) {
        z.shape[i] = i < like->ndim ? like->shape[i] : 1;
        z.stride[i] = 0;
    }
    return z;
}

// x: [B, C, H, W] -> y: [B, C, H', W'] = conv3x3 stride 2 (padding 1, or zero pad (0, 1, 0, 1))
setok_status diffusion_downsample_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                          const setok_tensor *x, const diffusion_downsample *d,
                                          setok_error *err)
{
    if (d->padding == 1)
        return setok_conv2d(be, y, x, &d->conv_w, &d->conv_b, 2, 1, err);
    /* F.pad(x, (0, 1, 0, 1)): x in the top-left of [B, C, H + 1, W + 1], zeros below and right */
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    size_t mark = setok_arena_mark(arena);
    setok_tensor p, body, row, col, z;
    setok_status st = setok_arena_tensor(arena, &p, x->dtype, 4, (int64_t[]){B, C, H + 1, W + 1},
                                         err);
    if (st == SETOK_OK)
        st = setok_view_slice(&body, &p, 2, 0, H, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&col, &body, 3, W, 1, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&body, &body, 3, 0, W, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &body, x, err);
    if (st == SETOK_OK) {
        z = broadcast_zero(&d->zero, &col);
        st = setok_copy(be, &col, &z, err);
    }
    if (st == SETOK_OK)
        st = setok_view_slice(&row, &p, 2, H, 1, err);
    if (st == SETOK_OK) {
        z = broadcast_zero(&d->zero, &row);
        st = setok_copy(be, &row, &z, err);
    }
    if (st == SETOK_OK)
        st = setok_conv2d(be, y, &p, &d->conv_w, &d->conv_b, 2, 0, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * Upsample2D */

setok_status diffusion_upsample_load(diffusion_upsample *u, const setok_loader *ld,
                                     const char *prefix, int64_t ch, setok_error *err)
{
    memset(u, 0, sizeof *u);
    u->ch = ch;
    const setok_weight table[] = {
        {&u->conv_w, "conv.weight", 4, {ch, ch, 3, 3}, 0},
        {&u->conv_b, "conv.bias", 1, {ch}, 0},
    };
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

void diffusion_upsample_free(diffusion_upsample *u)
{
    setok_tensor *all[] = {&u->conv_w, &u->conv_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

size_t diffusion_upsample_scratch(const diffusion_upsample *u, int64_t B, int64_t H, int64_t W,
                                  size_t esize)
{
    return diffusion_slot(B * u->ch * 4 * H * W, esize);
}

// x: [B, C, H, W] -> y: [B, C, 2H, 2W] = conv3x3(nearest x2 (x))
setok_status diffusion_upsample_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                        const setok_tensor *x, const diffusion_upsample *u,
                                        setok_error *err)
{
    size_t mark = setok_arena_mark(arena);
    setok_tensor up;
    setok_status st = setok_arena_tensor(
        arena, &up, x->dtype, 4, (int64_t[]){x->shape[0], x->shape[1], 2 * x->shape[2],
                                             2 * x->shape[3]}, err);
    if (st == SETOK_OK)
        st = setok_upsample_nearest(be, &up, x, 2, err);
    if (st == SETOK_OK)
        st = setok_conv2d(be, y, &up, &u->conv_w, &u->conv_b, 1, 1, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * multi-head attention */

size_t diffusion_mha_scratch(int64_t B, int64_t Tq, int64_t Tk, int64_t inner, int heads,
                             size_t esize)
{
    if (heads == 1)
        return 0;
    return 2 * diffusion_slot(B * Tq * inner, esize) + 2 * diffusion_slot(B * Tk * inner, esize);
}

// x: [B, T, NH*D] -> out: [B, NH, T, D]
static setok_status split_heads(setok_backend *be, setok_tensor *out, const setok_tensor *x,
                                int heads, setok_error *err)
{
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2] / heads;
    setok_tensor v;
    setok_status st = setok_view_reshape(&v, x, 4, (int64_t[]){B, T, heads, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, out, &v, (int[]){0, 2, 1, 3}, err);
    return st;
}

// q: [B, Tq, NH*D], k, v: [B, Tk, NH*D] -> y: [B, Tq, NH*D]
setok_status diffusion_mha(setok_backend *be, setok_arena *arena, setok_tensor *y,
                           const setok_tensor *q, const setok_tensor *k, const setok_tensor *v,
                           int heads, setok_error *err)
{
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], inner = q->shape[2];
    int64_t D = inner / heads;
    float scale = (float)(1.0 / sqrt((double)D));
    setok_tensor q4, k4, v4, y4;
    setok_status st;
    if (heads == 1) {
        /* [B, T, D] is [B, 1, T, D] already */
        st = setok_view_reshape(&q4, q, 4, (int64_t[]){B, 1, Tq, D}, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&k4, k, 4, (int64_t[]){B, 1, Tk, D}, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&v4, v, 4, (int64_t[]){B, 1, Tk, D}, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&y4, y, 4, (int64_t[]){B, 1, Tq, D}, err);
        if (st == SETOK_OK)
            st = setok_attention(be, &y4, &q4, &k4, &v4, NULL, scale, false, err);
        return st;
    }
    size_t mark = setok_arena_mark(arena);
    setok_tensor att, yv;
    st = setok_arena_tensor(arena, &q4, q->dtype, 4, (int64_t[]){B, heads, Tq, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &k4, q->dtype, 4, (int64_t[]){B, heads, Tk, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &v4, q->dtype, 4, (int64_t[]){B, heads, Tk, D}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &att, q->dtype, 4, (int64_t[]){B, heads, Tq, D}, err);
    if (st == SETOK_OK)
        st = split_heads(be, &q4, q, heads, err);
    if (st == SETOK_OK)
        st = split_heads(be, &k4, k, heads, err);
    if (st == SETOK_OK)
        st = split_heads(be, &v4, v, heads, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &q4, &k4, &v4, NULL, scale, false, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&yv, y, 4, (int64_t[]){B, Tq, heads, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &yv, &att, (int[]){0, 2, 1, 3}, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * the VAE mid-block Attention */

setok_status diffusion_attention_load(diffusion_attention *a, const setok_loader *ld,
                                      const char *prefix, int64_t ch, int heads, int groups,
                                      float eps, float rescale, setok_error *err)
{
    *a = (diffusion_attention){.ch = ch, .heads = heads, .groups = groups, .eps = eps,
                               .rescale = rescale};
    if (heads < 1 || ch % heads || ch % groups)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s: %lld channels do not split into %d "
                          "heads and %d groups", setok_loader_path(ld), prefix,
                          (long long)ch, heads, groups);
    /* diffusers' current names, then the old VAE ones */
    const setok_weight table[] = {
        {&a->norm_w, "group_norm.weight", 1, {ch}, 0},
        {&a->norm_b, "group_norm.bias", 1, {ch}, 0},
        {&a->q_w, "to_q.weight|query.weight", 2, {ch, ch}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&a->q_b, "to_q.bias|query.bias", 1, {ch}, 0},
        {&a->k_w, "to_k.weight|key.weight", 2, {ch, ch}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&a->k_b, "to_k.bias|key.bias", 1, {ch}, 0},
        {&a->v_w, "to_v.weight|value.weight", 2, {ch, ch}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&a->v_b, "to_v.bias|value.bias", 1, {ch}, 0},
        {&a->out_w, "to_out.0.weight|proj_attn.weight", 2, {ch, ch}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&a->out_b, "to_out.0.bias|proj_attn.bias", 1, {ch}, 0},
    };
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

void diffusion_attention_free(diffusion_attention *a)
{
    setok_tensor *all[] = {&a->norm_w, &a->norm_b, &a->q_w, &a->q_b,   &a->k_w,
                           &a->k_b,    &a->v_w,    &a->v_b, &a->out_w, &a->out_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

size_t diffusion_attention_scratch(const diffusion_attention *a, int64_t B, int64_t H, int64_t W,
                                   size_t esize)
{
    int64_t n = B * a->ch * H * W;
    return 7 * diffusion_slot(n, esize) +
           diffusion_mha_scratch(B, H * W, H * W, a->ch, a->heads, esize);
}

// x: [B, C, H, W] -> y: [B, C, H, W] = (x + to_out(attn(group_norm(x)))) / rescale
setok_status diffusion_attention_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                         const setok_tensor *x, const diffusion_attention *a,
                                         setok_error *err)
{
    int64_t B = x->shape[0], C = a->ch, T = x->shape[2] * x->shape[3];
    int64_t tok[3] = {B, T, C};
    size_t mark = setok_arena_mark(arena);
    setok_tensor n, n3, t, q, k, v, att, o, y3;
    setok_status st = setok_arena_tensor(arena, &n, x->dtype, 4, x->shape, err);
    if (st == SETOK_OK)
        st = setok_groupnorm(be, &n, x, &a->norm_w, &a->norm_b, a->groups, a->eps, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&n3, &n, 3, (int64_t[]){B, C, T}, err);
    setok_tensor *outs[] = {&t, &q, &k, &v, &att, &o};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0] && st == SETOK_OK; i++)
        st = setok_arena_tensor(arena, outs[i], x->dtype, 3, tok, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &t, &n3, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &q, &t, &a->q_w, &a->q_b, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &k, &t, &a->k_w, &a->k_b, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &v, &t, &a->v_w, &a->v_b, err);
    if (st == SETOK_OK)
        st = diffusion_mha(be, arena, &att, &q, &k, &v, a->heads, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &o, &att, &a->out_w, &a->out_b, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&y3, y, 3, (int64_t[]){B, C, T}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &y3, &o, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_add(be, y, y, x, err);
    if (st == SETOK_OK && a->rescale != 1.0f)
        st = setok_scale(be, y, y, 1.0f / a->rescale, 0.0f, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * Transformer2DModel / BasicTransformerBlock */

static void tblock_free(diffusion_tblock *b)
{
    setok_tensor *all[] = {
        &b->n1_w, &b->n1_b, &b->q1_w, &b->q1_b, &b->k1_w, &b->k1_b, &b->v1_w,  &b->v1_b,
        &b->o1_w, &b->o1_b, &b->n2_w, &b->n2_b, &b->q2_w, &b->q2_b, &b->k2_w,  &b->k2_b,
        &b->v2_w, &b->v2_b, &b->o2_w, &b->o2_b, &b->n3_w, &b->n3_b, &b->ff1_w, &b->ff1_b,
        &b->ff2_w, &b->ff2_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

/* attn1 / attn2: to_q, to_k, to_v (bias only with attention_bias), to_out.0 */
static setok_status attn_load(const setok_loader *ld, const char *prefix, const char *attn,
                              int64_t inner, int64_t kv_dim, setok_tensor *w[4], setok_tensor *b[4],
                              setok_error *err)
{
    char p[256];
    snprintf(p, sizeof p, "%s.%s", prefix, attn);
    const setok_weight table[] = {
        {w[0], "to_q.weight", 2, {inner, inner}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {b[0], "to_q.bias", 1, {inner}, SETOK_WEIGHT_OPTIONAL},
        {w[1], "to_k.weight", 2, {inner, kv_dim}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {b[1], "to_k.bias", 1, {inner}, SETOK_WEIGHT_OPTIONAL},
        {w[2], "to_v.weight", 2, {inner, kv_dim}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {b[2], "to_v.bias", 1, {inner}, SETOK_WEIGHT_OPTIONAL},
        {w[3], "to_out.0.weight", 2, {inner, inner}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {b[3], "to_out.0.bias", 1, {inner}, 0},
    };
    return setok_loader_load(ld, p, table, sizeof table / sizeof *table, err);
}

static setok_status tblock_load(diffusion_tblock *b, const setok_loader *ld,
                                const char *prefix, int64_t C, int64_t cross, int64_t ff,
                                setok_error *err)
{
    memset(b, 0, sizeof *b);
    setok_tensor *w1[4] = {&b->q1_w, &b->k1_w, &b->v1_w, &b->o1_w};
    setok_tensor *b1[4] = {&b->q1_b, &b->k1_b, &b->v1_b, &b->o1_b};
    setok_tensor *w2[4] = {&b->q2_w, &b->k2_w, &b->v2_w, &b->o2_w};
    setok_tensor *b2[4] = {&b->q2_b, &b->k2_b, &b->v2_b, &b->o2_b};
    setok_status st = attn_load(ld, prefix, "attn1", C, C, w1, b1, err);
    if (st == SETOK_OK)
        st = attn_load(ld, prefix, "attn2", C, cross, w2, b2, err);
    const setok_weight table[] = {
        {&b->n1_w, "norm1.weight", 1, {C}, 0},
        {&b->n1_b, "norm1.bias", 1, {C}, 0},
        {&b->n2_w, "norm2.weight", 1, {C}, 0},
        {&b->n2_b, "norm2.bias", 1, {C}, 0},
        {&b->n3_w, "norm3.weight", 1, {C}, 0},
        {&b->n3_b, "norm3.bias", 1, {C}, 0},
        {&b->ff1_w, "ff.net.0.proj.weight", 2, {2 * ff, C}, SETOK_WEIGHT_MATRIX},
        {&b->ff1_b, "ff.net.0.proj.bias", 1, {2 * ff}, 0},
        {&b->ff2_w, "ff.net.2.weight", 2, {C, ff}, SETOK_WEIGHT_MATRIX},
        {&b->ff2_b, "ff.net.2.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    return st;
}

setok_status diffusion_transformer_load(diffusion_transformer *t, const setok_loader *ld,
                                        const char *prefix, int64_t ch, int heads, int layers,
                                        int64_t cross_dim, int groups, bool linear_projection,
                                        setok_error *err)
{
    /* Transformer2DModel(heads, ch // heads): inner = heads * (ch // heads) */
    int64_t inner = heads > 0 ? (ch / heads) * heads : 0;
    *t = (diffusion_transformer){.ch = ch, .inner = inner, .cross_dim = cross_dim,
                                 .ff_inner = 4 * inner, .heads = heads, .groups = groups,
                                 .layers = layers, .norm_eps = 1e-5f};
    const char *path = setok_loader_path(ld);
    if (heads < 1 || inner < heads || ch % groups)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s: %lld channels do not split into %d "
                          "attention heads and %d groups", path, prefix, (long long)ch, heads,
                          groups);
    if (layers < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s: transformer_layers_per_block must be "
                          "positive, got %d", path, prefix, layers);
    t->blocks = calloc((size_t)layers, sizeof *t->blocks);
    if (!t->blocks)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", prefix);
    /* linear [inner, ch] or 1x1 conv [inner, ch, 1, 1]: which one the config says (a
     * matrix stored quantized, U8 [inner, bytes], is either) */
    char full[256];
    snprintf(full, sizeof full, "%s.proj_in.weight", prefix);
    const setok_st_tensor *pin = ld->w ? setok_weights_find(ld->w, full) : NULL;
    if (pin && pin->dtype != SETOK_ST_U8 && (pin->ndim == 4) == linear_projection)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s is a %s weight but "
                          "use_linear_projection is %s", path, full,
                          pin->ndim == 4 ? "conv" : "linear", linear_projection ? "true" : "false");
    const setok_weight table[] = {
        {&t->norm_w, "norm.weight", 1, {ch}, 0},
        {&t->norm_b, "norm.bias", 1, {ch}, 0},
        {&t->proj_in_w, "proj_in.weight", 2, {inner, ch}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&t->proj_in_b, "proj_in.bias", 1, {inner}, 0},
        {&t->proj_out_w, "proj_out.weight", 2, {ch, inner}, SETOK_WEIGHT_LINEAR | SETOK_WEIGHT_MATRIX},
        {&t->proj_out_b, "proj_out.bias", 1, {ch}, 0},
    };
    setok_status st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    for (int i = 0; i < layers && st == SETOK_OK; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", prefix, i);
        st = tblock_load(&t->blocks[i], ld, p, inner, cross_dim, t->ff_inner, err);
    }
    return st;
}

void diffusion_transformer_free(diffusion_transformer *t)
{
    if (t->blocks)
        for (int i = 0; i < t->layers; i++)
            tblock_free(&t->blocks[i]);
    free(t->blocks);
    t->blocks = NULL;
    setok_tensor *all[] = {&t->norm_w,    &t->norm_b,     &t->proj_in_w,
                           &t->proj_in_b, &t->proj_out_w, &t->proj_out_b};
    setok_tensors_free(all, sizeof all / sizeof all[0]);
}

static size_t attn_scratch(int64_t B, int64_t T, int64_t S, int64_t inner, int heads, size_t e)
{
    return 2 * diffusion_slot(B * T * inner, e) + 2 * diffusion_slot(B * S * inner, e) +
           diffusion_mha_scratch(B, T, S, inner, heads, e);
}

size_t diffusion_transformer_scratch(const diffusion_transformer *t, int64_t B, int64_t H,
                                     int64_t W, int64_t S, size_t esize)
{
    int64_t T = H * W, C = t->ch, I = t->inner;
    size_t self_attn = attn_scratch(B, T, T, I, t->heads, esize);
    size_t cross_attn = attn_scratch(B, T, S, I, t->heads, esize);
    size_t ff = diffusion_slot(B * T * 2 * t->ff_inner, esize) +
                diffusion_slot(B * T * t->ff_inner, esize);
    size_t inner = self_attn > cross_attn ? self_attn : cross_attn;
    inner = inner > ff ? inner : ff;
    return diffusion_slot(B * C * T, esize) + 2 * diffusion_slot(B * T * C, esize) +
           diffusion_slot(B * T * I, esize) + 2 * diffusion_slot(B * T * I, esize) + inner;
}

// x: [B, T, C], context: [B, S, Ck] -> y: [B, T, C] = to_out(mha(to_q x, to_k ctx, to_v ctx))
static setok_status tblock_attention(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                     const setok_tensor *x, const setok_tensor *context,
                                     const setok_tensor *const w[4],
                                     const setok_tensor *const b[4], int heads, setok_error *err)
{
    int64_t B = x->shape[0], T = x->shape[1], S = context->shape[1], C = y->shape[2];
    size_t mark = setok_arena_mark(arena);
    setok_tensor q, k, v, a;
    setok_status st = setok_arena_tensor(arena, &q, x->dtype, 3, (int64_t[]){B, T, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a, x->dtype, 3, (int64_t[]){B, T, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &k, x->dtype, 3, (int64_t[]){B, S, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &v, x->dtype, 3, (int64_t[]){B, S, C}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &q, x, w[0], opt(b[0]), err);
    if (st == SETOK_OK)
        st = setok_linear(be, &k, context, w[1], opt(b[1]), err);
    if (st == SETOK_OK)
        st = setok_linear(be, &v, context, w[2], opt(b[2]), err);
    if (st == SETOK_OK)
        st = diffusion_mha(be, arena, &a, &q, &k, &v, heads, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &a, w[3], b[3], err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [B, T, C] -> y: [B, T, C] = net.2(GEGLU(x)), GEGLU(x) = h * gelu(g), [h, g] = net.0.proj(x)
static setok_status tblock_feed_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                        const setok_tensor *x, const diffusion_tblock *b,
                                        int64_t ff, setok_error *err)
{
    int64_t B = x->shape[0], T = x->shape[1];
    size_t mark = setok_arena_mark(arena);
    setok_tensor h, g;
    setok_status st = setok_arena_tensor(arena, &h, x->dtype, 3, (int64_t[]){B, T, 2 * ff}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &g, x->dtype, 3, (int64_t[]){B, T, ff}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h, x, &b->ff1_w, &b->ff1_b, err);
    if (st == SETOK_OK)
        st = setok_glu(be, SETOK_OP_GEGLU, &g, &h, NULL, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &g, &b->ff2_w, &b->ff2_b, err);
    setok_arena_reset(arena, mark);
    return st;
}

// h: [B, T, C] updated in place: h += attn1(norm1 h); h += attn2(norm2 h, context);
// h += ff(norm3 h)
static setok_status tblock_forward(setok_backend *be, setok_arena *arena, setok_tensor *h,
                                   const setok_tensor *context, const diffusion_tblock *b,
                                   const diffusion_transformer *t, setok_error *err)
{
    size_t mark = setok_arena_mark(arena);
    setok_tensor n, o;
    const setok_tensor *const w1[4] = {&b->q1_w, &b->k1_w, &b->v1_w, &b->o1_w};
    const setok_tensor *const b1[4] = {&b->q1_b, &b->k1_b, &b->v1_b, &b->o1_b};
    const setok_tensor *const w2[4] = {&b->q2_w, &b->k2_w, &b->v2_w, &b->o2_w};
    const setok_tensor *const b2[4] = {&b->q2_b, &b->k2_b, &b->v2_b, &b->o2_b};
    setok_status st = setok_arena_tensor(arena, &n, h->dtype, 3, h->shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, h->dtype, 3, h->shape, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &n, h, &b->n1_w, &b->n1_b, t->norm_eps, err);
    if (st == SETOK_OK)
        st = tblock_attention(be, arena, &o, &n, &n, w1, b1, t->heads, err);
    if (st == SETOK_OK)
        st = setok_add(be, h, h, &o, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &n, h, &b->n2_w, &b->n2_b, t->norm_eps, err);
    if (st == SETOK_OK)
        st = tblock_attention(be, arena, &o, &n, context, w2, b2, t->heads, err);
    if (st == SETOK_OK)
        st = setok_add(be, h, h, &o, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &n, h, &b->n3_w, &b->n3_b, t->norm_eps, err);
    if (st == SETOK_OK)
        st = tblock_feed_forward(be, arena, &o, &n, b, t->ff_inner, err);
    if (st == SETOK_OK)
        st = setok_add(be, h, h, &o, err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [B, C, H, W], context: [B, S, Dc] -> y: [B, C, H, W] =
// x + proj_out(blocks(proj_in(group_norm(x) as [B, H*W, C])))
setok_status diffusion_transformer_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                           const setok_tensor *x, const setok_tensor *context,
                                           const diffusion_transformer *t, setok_error *err)
{
    int64_t B = x->shape[0], C = t->ch, T = x->shape[2] * x->shape[3], I = t->inner;
    size_t mark = setok_arena_mark(arena);
    setok_tensor n, n3, tok, h, o, y3;
    setok_status st = setok_arena_tensor(arena, &n, x->dtype, 4, x->shape, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tok, x->dtype, 3, (int64_t[]){B, T, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &o, x->dtype, 3, (int64_t[]){B, T, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h, x->dtype, 3, (int64_t[]){B, T, I}, err);
    /* GroupNorm (eps 1e-6), then proj_in on the [B, H*W, C] tokens */
    if (st == SETOK_OK)
        st = setok_groupnorm(be, &n, x, &t->norm_w, &t->norm_b, t->groups, 1e-6f, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&n3, &n, 3, (int64_t[]){B, C, T}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &tok, &n3, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h, &tok, &t->proj_in_w, &t->proj_in_b, err);
    for (int i = 0; i < t->layers && st == SETOK_OK; i++)
        st = tblock_forward(be, arena, &h, context, &t->blocks[i], t, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &o, &h, &t->proj_out_w, &t->proj_out_b, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&y3, y, 3, (int64_t[]){B, C, T}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &y3, &o, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_add(be, y, y, x, err);
    setok_arena_reset(arena, mark);
    return st;
}
