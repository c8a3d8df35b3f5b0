/* mask-decoder.c — SAM's prompt encoder and mask decoder, mirroring
 * transformers' SamPromptEncoder, SamPositionalEmbedding and SamMaskDecoder
 * (SamTwoWayTransformer, SamTwoWayAttentionBlock, SamAttention,
 * SamFeedForward) in modeling_sam.py: config, weights and forward.
 *
 * Rules: one function per layer, outputs first; activations come from the
 * caller's arena, reset to a mark after each sub-layer. The prompt encoder
 * works on a handful of points, so it runs on the host in float32 with
 * PyTorch's order of operations (the random-Fourier features are sin / cos of
 * large arguments, where the order matters) and its result is uploaded; the
 * point embeddings it needs are kept as host copies. */
#include "io/loader.h"
#include "setok/models/mask_decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

/* transformers builds the two-way blocks' cross attentions with this rate
 * whatever the config says (SamTwoWayAttentionBlock's default argument). */
#define BLOCK_DOWNSAMPLE_RATE 2
/* nn.LayerNorm's default, used by layer_norm_final_attn. */
#define FINAL_LN_EPS 1e-5f
/* SamLayerNorm's default, used by upscale_layer_norm. */
#define UPSCALE_LN_EPS 1e-6f

typedef struct sam_attn {
    setok_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    int64_t internal; /* hidden_size / downsample_rate */
} sam_attn;

typedef struct sam_block {
    sam_attn self_attn, token_to_image, image_to_token;
    setok_tensor ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, ln4_w, ln4_b;
    setok_tensor lin1_w, lin1_b, lin2_w, lin2_b;
} sam_block;

/* SamFeedForward: proj_in, relu, (layers[i], relu)*, proj_out. */
typedef struct sam_ffn {
    int num_mid;
    int64_t in, hidden, out;
    setok_tensor in_w, in_b, out_w, out_b;
    setok_tensor *mid_w, *mid_b; /* [num_mid] */
} sam_ffn;

struct setok_mask_decoder {
    setok_mask_decoder_config cfg;
    setok_backend *backend;
    setok_dtype dtype;
    /* prompt encoder, host float32 */
    float *gaussian;    /* [2, F] shared_image_embedding.positional_embedding */
    float *point_embed; /* [num_point_embeddings, C] */
    float *not_a_point; /* [C] */
    setok_tensor no_mask; /* [C, 1, 1] on the backend */
    /* SamMaskEmbedding: conv1 [mic/4, 1, 2, 2], conv2 [mic, mic/4, 2, 2], conv3 [C, mic, 1, 1] */
    setok_tensor mconv1_w, mconv1_b, mln1_w, mln1_b, mconv2_w, mconv2_b, mln2_w, mln2_b;
    setok_tensor mconv3_w, mconv3_b;
    /* mask decoder */
    setok_tensor output_tokens; /* [1 + M, C]: iou_token then mask_tokens */
    sam_block *blocks;
    sam_attn final_attn;
    setok_tensor final_ln_w, final_ln_b;
    setok_tensor up1_w, up1_b, up_ln_w, up_ln_b, up2_w, up2_b;
    sam_ffn *hyper; /* [M] output_hypernetworks_mlps */
    sam_ffn iou_head;
    /* the image positional encoding of the last grid: it depends on h x w only, so the clicks
     * on one image compute it once */
    setok_tensor grid_pe; /* [h * w, C] */
    int64_t grid_h, grid_w;
};

static int num_mask_tokens(const setok_mask_decoder_config *c)
{
    return c->num_multimask_outputs + 1;
}

/* ---------------------------------------------------------------------------
 * config */

void setok_mask_decoder_config_defaults(setok_mask_decoder_config *cfg)
{
    *cfg = (setok_mask_decoder_config){
        .hidden_size = 256,
        .mlp_dim = 2048,
        .num_layers = 2,
        .num_heads = 8,
        .attention_downsample_rate = 2,
        .num_multimask_outputs = 3,
        .iou_head_depth = 3,
        .iou_head_hidden_dim = 256,
        .layer_norm_eps = 1e-6f,
        .act = SETOK_OP_RELU,
        .image_size = 1024,
        .image_embedding_size = 64,
        .num_point_embeddings = 4,
        .mask_input_channels = 16,
        .mask_act = SETOK_OP_GELU,
        .mask_layer_norm_eps = 1e-6f,
        .num_pos_feats = 128,
    };
}

static setok_status parse_act(const char *path, const char *key, const char *name, setok_op *op,
                              setok_error *err)
{
    static const struct {
        const char *name;
        setok_op op;
    } acts[] = {
        {"relu", SETOK_OP_RELU},
        {"gelu", SETOK_OP_GELU},
        {"gelu_pytorch_tanh", SETOK_OP_GELU_TANH},
        {"gelu_new", SETOK_OP_GELU_TANH},
        {"quick_gelu", SETOK_OP_QUICK_GELU},
        {"silu", SETOK_OP_SILU},
        {"swish", SETOK_OP_SILU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (!strcmp(name, acts[i].name)) {
            *op = acts[i].op;
            return SETOK_OK;
        }
    }
    return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s '%s' is not one of relu, gelu, "
                      "gelu_pytorch_tanh, gelu_new, quick_gelu, silu", path, key, name);
}

/* The rules every config obeys: the head splits and the upscaling's C / 4 and C / 8. */
static setok_status config_check(const setok_mask_decoder_config *c, const char *where,
                                 setok_error *err)
{
    int C = c->hidden_size;
    if (C < 8 || C % 8)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: hidden_size %d must be a positive multiple "
                          "of 8 (the upscaling has C / 4 and C / 8 channels)", where, C);
    if (2 * c->num_pos_feats != C)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: vision_config.num_pos_feats %d must be half "
                          "of hidden_size %d", where, c->num_pos_feats, C);
    int rates[2] = {BLOCK_DOWNSAMPLE_RATE, c->attention_downsample_rate};
    for (int i = 0; i < 2; i++) {
        int r = rates[i];
        if (c->num_layers == 0 && i == 0)
            continue;
        if (C % r || (C / r) % c->num_heads)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: num_attention_heads %d must divide "
                              "hidden_size %d / downsample rate %d", where, c->num_heads, C, r);
    }
    if (C % c->num_heads)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: num_attention_heads %d must divide "
                          "hidden_size %d", where, c->num_heads, C);
    if (c->num_point_embeddings < 2)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: num_point_embeddings %d: labels 0 and 1 "
                          "need 2", where, c->num_point_embeddings);
    if (c->image_embedding_size < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the image embedding grid (image_size / "
                          "patch_size) is empty", where);
    if (c->mask_input_channels < 4 || c->mask_input_channels % 4)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: mask_input_channels %d must be a positive "
                          "multiple of 4", where, c->mask_input_channels);
    return SETOK_OK;
}

static setok_status config_parse(const setok_config *json, void *out, setok_error *err)
{
    setok_mask_decoder_config *cfg = out;
    const char *path = setok_config_path(json), *arch = NULL, *type = NULL;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(setok_config_root(json),
                                                          "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    setok_status st = setok_config_string_or(json, "model_type", "", &type, err);
    if (st != SETOK_OK)
        return st;
    if (!(arch && !strcmp(arch, "SamModel")) && strcmp(type, "sam"))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a SamModel",
                          path, arch ? arch : "no architectures entry", type);
    setok_mask_decoder_config_defaults(cfg);
    int patch = 16;
    const char *act = NULL;
    double eps = cfg->layer_norm_eps;
    struct {
        const char *key;
        int lo, hi;
        int *v;
    } ints[] = {
        {"mask_decoder_config.hidden_size", 8, 1 << 16, &cfg->hidden_size},
        {"mask_decoder_config.mlp_dim", 1, 1 << 20, &cfg->mlp_dim},
        {"mask_decoder_config.num_hidden_layers", 0, 256, &cfg->num_layers},
        {"mask_decoder_config.num_attention_heads", 1, 1 << 12, &cfg->num_heads},
        {"mask_decoder_config.attention_downsample_rate", 1, 1 << 12,
         &cfg->attention_downsample_rate},
        {"mask_decoder_config.num_multimask_outputs", 1, 64, &cfg->num_multimask_outputs},
        {"mask_decoder_config.iou_head_depth", 1, 64, &cfg->iou_head_depth},
        {"mask_decoder_config.iou_head_hidden_dim", 1, 1 << 16, &cfg->iou_head_hidden_dim},
        {"prompt_encoder_config.image_size", 1, 1 << 16, &cfg->image_size},
        {"prompt_encoder_config.patch_size", 1, 1 << 12, &patch},
        {"prompt_encoder_config.num_point_embeddings", 2, 64, &cfg->num_point_embeddings},
        {"prompt_encoder_config.mask_input_channels", 4, 1 << 12, &cfg->mask_input_channels},
        {"vision_config.num_pos_feats", 1, 1 << 15, &cfg->num_pos_feats},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == SETOK_OK; i++)
        st = setok_config_int_in(json, ints[i].key, false, ints[i].lo, ints[i].hi, ints[i].v,
                                 err);
    cfg->image_embedding_size = cfg->image_size / patch;
    int prompt_c = cfg->hidden_size;
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "prompt_encoder_config.image_embedding_size", false, 1,
                                 1 << 16, &cfg->image_embedding_size, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "prompt_encoder_config.hidden_size", false, 1, 1 << 16,
                                 &prompt_c, err);
    if (st == SETOK_OK && prompt_c != cfg->hidden_size)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: prompt_encoder_config.hidden_size %d differs "
                        "from mask_decoder_config.hidden_size %d", path, prompt_c,
                        cfg->hidden_size);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "mask_decoder_config.layer_norm_eps", eps, &eps, err);
    if (st == SETOK_OK && !(eps > 0.0 && eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: mask_decoder_config.layer_norm_eps must be in "
                        "(0, 1), got %g", path, eps);
    cfg->layer_norm_eps = (float)eps;
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "mask_decoder_config.hidden_act", "relu", &act, err);
    if (st == SETOK_OK)
        st = parse_act(path, "mask_decoder_config.hidden_act", act, &cfg->act, err);
    double mask_eps = cfg->mask_layer_norm_eps;
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "prompt_encoder_config.layer_norm_eps", mask_eps,
                                    &mask_eps, err);
    if (st == SETOK_OK && !(mask_eps > 0.0 && mask_eps < 1.0))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: prompt_encoder_config.layer_norm_eps must be "
                        "in (0, 1), got %g", path, mask_eps);
    cfg->mask_layer_norm_eps = (float)mask_eps;
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "prompt_encoder_config.hidden_act", "gelu", &act, err);
    if (st == SETOK_OK)
        st = parse_act(path, "prompt_encoder_config.hidden_act", act, &cfg->mask_act, err);
    if (st == SETOK_OK)
        st = config_check(cfg, path, err);
    return st;
}

setok_status setok_mask_decoder_config_load(setok_mask_decoder_config *cfg, const char *dir,
                                            setok_error *err)
{
    return setok_config_read(dir, config_parse, cfg, err);
}

/* ---------------------------------------------------------------------------
 * weights */

static void free_attn(sam_attn *a)
{
    setok_tensor *all[] = {&a->q_w, &a->q_b, &a->k_w, &a->k_b, &a->v_w, &a->v_b, &a->o_w, &a->o_b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        setok_tensor_free(all[i]);
}

static void free_ffn(sam_ffn *f)
{
    setok_tensor_free(&f->in_w);
    setok_tensor_free(&f->in_b);
    setok_tensor_free(&f->out_w);
    setok_tensor_free(&f->out_b);
    for (int i = 0; i < f->num_mid; i++) {
        if (f->mid_w)
            setok_tensor_free(&f->mid_w[i]);
        if (f->mid_b)
            setok_tensor_free(&f->mid_b[i]);
    }
    free(f->mid_w);
    free(f->mid_b);
}

void setok_mask_decoder_free(setok_mask_decoder *m)
{
    if (!m)
        return;
    if (m->blocks) {
        for (int i = 0; i < m->cfg.num_layers; i++) {
            sam_block *b = &m->blocks[i];
            free_attn(&b->self_attn);
            free_attn(&b->token_to_image);
            free_attn(&b->image_to_token);
            setok_tensor *all[] = {&b->ln1_w, &b->ln1_b, &b->ln2_w,  &b->ln2_b,
                                   &b->ln3_w, &b->ln3_b, &b->ln4_w,  &b->ln4_b,
                                   &b->lin1_w, &b->lin1_b, &b->lin2_w, &b->lin2_b};
            for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
                setok_tensor_free(all[j]);
        }
    }
    if (m->hyper)
        for (int i = 0; i < num_mask_tokens(&m->cfg); i++)
            free_ffn(&m->hyper[i]);
    free_ffn(&m->iou_head);
    free_attn(&m->final_attn);
    setok_tensor_free(&m->grid_pe);
    setok_tensor *all[] = {&m->no_mask,  &m->output_tokens, &m->final_ln_w, &m->final_ln_b,
                           &m->up1_w,    &m->up1_b,         &m->up_ln_w,    &m->up_ln_b,
                           &m->up2_w,    &m->up2_b,         &m->mconv1_w,   &m->mconv1_b,
                           &m->mln1_w,   &m->mln1_b,        &m->mconv2_w,   &m->mconv2_b,
                           &m->mln2_w,   &m->mln2_b,        &m->mconv3_w,   &m->mconv3_b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        setok_tensor_free(all[i]);
    free(m->blocks);
    free(m->hyper);
    free(m->gaussian);
    free(m->point_embed);
    free(m->not_a_point);
    free(m);
}

/* A random weight (ld->random_state) as host float32 into a new array. */
static setok_status random_host(const setok_loader *ld, float **out, const char *name, int ndim,
                                const int64_t *shape, setok_error *err)
{
    setok_tensor t = {0};
    float *v = NULL;
    setok_status st = setok_loader_one(ld, &t, "", name, ndim, shape, 0, err);
    if (st == SETOK_OK && !(v = malloc((size_t)setok_tensor_numel(&t) * sizeof *v)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(v, &t, err);
    setok_tensor_free(&t);
    if (st != SETOK_OK) {
        free(v);
        return st;
    }
    *out = v;
    return SETOK_OK;
}

/* A weight (name, or "name|alias") as host float32 into a new array of numel floats. */
static setok_status load_host(const setok_loader *ld, float **out, const char *name, int ndim,
                              const int64_t *shape, setok_error *err)
{
    if (ld->random_state)
        return random_host(ld, out, name, ndim, shape, err);
    char full[2][160];
    const char *bar = strchr(name, '|');
    snprintf(full[0], sizeof full[0], "%.*s", bar ? (int)(bar - name) : (int)strlen(name), name);
    snprintf(full[1], sizeof full[1], "%s", bar ? bar + 1 : "");
    const char *names[2] = {full[0], full[1]};
    const setok_st_tensor *t = NULL;
    setok_status st = setok_weights_require(ld->w, names, bar ? 2 : 1, ndim, shape, &t, err);
    if (st != SETOK_OK)
        return st;
    if (t->dtype != SETOK_ST_F32 && t->dtype != SETOK_ST_F16 && t->dtype != SETOK_ST_BF16 &&
        t->dtype != SETOK_ST_F64)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is %s, not a float tensor",
                          t->file, t->name, setok_st_dtype_name(t->dtype));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)setok_st_tensor_float_at(t, (uint64_t)i);
    *out = v;
    return SETOK_OK;
}

/* PREFIX.{q,k,v,out}_proj.{weight,bias}: q, k, v [Ci, C], out [C, Ci]. */
static setok_status load_attn(const setok_loader *ld, sam_attn *a, const char *prefix, int64_t C,
                              int rate, setok_error *err)
{
    int64_t Ci = C / rate;
    a->internal = Ci;
    const setok_weight table[] = {
        {&a->q_w, "q_proj.weight", 2, {Ci, C}, 0},   {&a->q_b, "q_proj.bias", 1, {Ci}, 0},
        {&a->k_w, "k_proj.weight", 2, {Ci, C}, 0},   {&a->k_b, "k_proj.bias", 1, {Ci}, 0},
        {&a->v_w, "v_proj.weight", 2, {Ci, C}, 0},   {&a->v_b, "v_proj.bias", 1, {Ci}, 0},
        {&a->o_w, "out_proj.weight", 2, {C, Ci}, 0}, {&a->o_b, "out_proj.bias", 1, {C}, 0},
    };
    return setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
}

/* PREFIX.{proj_in, layers.i, proj_out}.{weight,bias} of a SamFeedForward. */
static setok_status load_ffn(const setok_loader *ld, sam_ffn *f, const char *prefix, int64_t in,
                             int64_t hidden, int64_t out, int num_layers, setok_error *err)
{
    f->in = in;
    f->hidden = hidden;
    f->out = out;
    f->num_mid = num_layers > 2 ? num_layers - 2 : 0;
    f->mid_w = calloc((size_t)f->num_mid + 1, sizeof *f->mid_w);
    f->mid_b = calloc((size_t)f->num_mid + 1, sizeof *f->mid_b);
    if (!f->mid_w || !f->mid_b)
        return setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    const setok_weight table[] = {
        {&f->in_w, "proj_in.weight", 2, {hidden, in}, 0},
        {&f->in_b, "proj_in.bias", 1, {hidden}, 0},
        {&f->out_w, "proj_out.weight", 2, {out, hidden}, 0},
        {&f->out_b, "proj_out.bias", 1, {out}, 0},
    };
    setok_status st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    for (int i = 0; i < f->num_mid && st == SETOK_OK; i++) {
        char wn[48], bn[48];
        snprintf(wn, sizeof wn, "layers.%d.weight", i);
        snprintf(bn, sizeof bn, "layers.%d.bias", i);
        const setok_weight mid[] = {
            {&f->mid_w[i], wn, 2, {hidden, hidden}, 0},
            {&f->mid_b[i], bn, 1, {hidden}, 0},
        };
        st = setok_loader_load(ld, prefix, mid, 2, err);
    }
    return st;
}

static setok_status load_block(const setok_loader *ld, const setok_mask_decoder_config *c,
                               sam_block *b, int index, setok_error *err)
{
    int64_t C = c->hidden_size, I = c->mlp_dim;
    char prefix[96], name[160];
    snprintf(prefix, sizeof prefix, "mask_decoder.transformer.layers.%d", index);
    snprintf(name, sizeof name, "%s.self_attn", prefix);
    setok_status st = load_attn(ld, &b->self_attn, name, C, 1, err);
    snprintf(name, sizeof name, "%s.cross_attn_token_to_image", prefix);
    if (st == SETOK_OK)
        st = load_attn(ld, &b->token_to_image, name, C, BLOCK_DOWNSAMPLE_RATE, err);
    snprintf(name, sizeof name, "%s.cross_attn_image_to_token", prefix);
    if (st == SETOK_OK)
        st = load_attn(ld, &b->image_to_token, name, C, BLOCK_DOWNSAMPLE_RATE, err);
    const setok_weight table[] = {
        {&b->ln1_w, "layer_norm1.weight", 1, {C}, 0}, {&b->ln1_b, "layer_norm1.bias", 1, {C}, 0},
        {&b->ln2_w, "layer_norm2.weight", 1, {C}, 0}, {&b->ln2_b, "layer_norm2.bias", 1, {C}, 0},
        {&b->ln3_w, "layer_norm3.weight", 1, {C}, 0}, {&b->ln3_b, "layer_norm3.bias", 1, {C}, 0},
        {&b->ln4_w, "layer_norm4.weight", 1, {C}, 0}, {&b->ln4_b, "layer_norm4.bias", 1, {C}, 0},
        {&b->lin1_w, "mlp.lin1.weight", 2, {I, C}, 0}, {&b->lin1_b, "mlp.lin1.bias", 1, {I}, 0},
        {&b->lin2_w, "mlp.lin2.weight", 2, {C, I}, 0}, {&b->lin2_b, "mlp.lin2.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, prefix, table, sizeof table / sizeof *table, err);
    return st;
}

/* iou_token [1, C] and mask_tokens [M, C] stacked into output_tokens [1 + M, C]. */
static setok_status load_output_tokens(setok_mask_decoder *m, const setok_loader *ld,
                                       setok_error *err)
{
    int64_t C = m->cfg.hidden_size, M = num_mask_tokens(&m->cfg);
    setok_tensor iou = {0}, masks = {0}, dst;
    const setok_weight table[] = {
        {&iou, "iou_token.weight", 2, {1, C}, 0},
        {&masks, "mask_tokens.weight", 2, {M, C}, 0},
    };
    setok_status st = setok_tensor_alloc(&m->output_tokens, m->backend, m->dtype, 2,
                                         (int64_t[]){1 + M, C}, err);
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "mask_decoder", table, 2, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&dst, &m->output_tokens, 0, 0, 1, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, &dst, &iou, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&dst, &m->output_tokens, 0, 1, M, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, &dst, &masks, err);
    if (st == SETOK_OK)
        st = setok_backend_synchronize(m->backend, err); /* before the sources are released */
    setok_tensor_free(&iou);
    setok_tensor_free(&masks);
    return st;
}

static setok_status load_prompt_encoder(setok_mask_decoder *m, const setok_loader *ld,
                                        setok_error *err)
{
    const setok_mask_decoder_config *c = &m->cfg;
    int64_t C = c->hidden_size, NP = c->num_point_embeddings;
    /* SamModel ties prompt_encoder.shared_embedding to shared_image_embedding */
    setok_status st = load_host(ld, &m->gaussian,
                                "shared_image_embedding.positional_embedding|"
                                "prompt_encoder.shared_embedding.positional_embedding",
                                2, (int64_t[]){2, c->num_pos_feats}, err);
    if (st == SETOK_OK) {
        m->point_embed = malloc((size_t)(NP * C) * sizeof *m->point_embed);
        if (!m->point_embed)
            st = setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    }
    for (int64_t i = 0; i < NP && st == SETOK_OK; i++) {
        char name[96];
        float *row = NULL;
        snprintf(name, sizeof name, "prompt_encoder.point_embed.%lld.weight", (long long)i);
        st = load_host(ld, &row, name, 2, (int64_t[]){1, C}, err);
        if (st == SETOK_OK)
            memcpy(m->point_embed + i * C, row, (size_t)C * sizeof *row);
        free(row);
    }
    if (st == SETOK_OK)
        st = load_host(ld, &m->not_a_point, "prompt_encoder.not_a_point_embed.weight", 2,
                       (int64_t[]){1, C}, err);
    int64_t mic = c->mask_input_channels, q = mic / 4;
    const setok_weight table[] = {
        {&m->no_mask, "no_mask_embed.weight", 2, {1, C}, 0},
        {&m->mconv1_w, "mask_embed.conv1.weight", 4, {q, 1, 2, 2}, 0},
        {&m->mconv1_b, "mask_embed.conv1.bias", 1, {q}, 0},
        {&m->mln1_w, "mask_embed.layer_norm1.weight", 1, {q}, 0},
        {&m->mln1_b, "mask_embed.layer_norm1.bias", 1, {q}, 0},
        {&m->mconv2_w, "mask_embed.conv2.weight", 4, {mic, q, 2, 2}, 0},
        {&m->mconv2_b, "mask_embed.conv2.bias", 1, {mic}, 0},
        {&m->mln2_w, "mask_embed.layer_norm2.weight", 1, {mic}, 0},
        {&m->mln2_b, "mask_embed.layer_norm2.bias", 1, {mic}, 0},
        {&m->mconv3_w, "mask_embed.conv3.weight", 4, {C, mic, 1, 1}, 0},
        {&m->mconv3_b, "mask_embed.conv3.bias", 1, {C}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "prompt_encoder", table, sizeof table / sizeof *table, err);
    if (st == SETOK_OK) /* [1, C] -> [C, 1, 1], broadcast over [B, C, h, w] */
        st = setok_view_reshape(&m->no_mask, &m->no_mask, 3, (int64_t[]){C, 1, 1}, err);
    return st;
}

static setok_status load_weights(setok_mask_decoder *m, const setok_loader *ld, setok_error *err)
{
    const setok_mask_decoder_config *c = &m->cfg;
    int64_t C = c->hidden_size, M = num_mask_tokens(c);
    setok_status st = load_prompt_encoder(m, ld, err);
    if (st == SETOK_OK)
        st = load_output_tokens(m, ld, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++)
        st = load_block(ld, c, &m->blocks[i], i, err);
    if (st == SETOK_OK)
        st = load_attn(ld, &m->final_attn, "mask_decoder.transformer.final_attn_token_to_image", C,
                       c->attention_downsample_rate, err);
    const setok_weight table[] = {
        {&m->final_ln_w, "transformer.layer_norm_final_attn.weight", 1, {C}, 0},
        {&m->final_ln_b, "transformer.layer_norm_final_attn.bias", 1, {C}, 0},
        {&m->up1_w, "upscale_conv1.weight", 4, {C, C / 4, 2, 2}, 0},
        {&m->up1_b, "upscale_conv1.bias", 1, {C / 4}, 0},
        {&m->up_ln_w, "upscale_layer_norm.weight", 1, {C / 4}, 0},
        {&m->up_ln_b, "upscale_layer_norm.bias", 1, {C / 4}, 0},
        {&m->up2_w, "upscale_conv2.weight", 4, {C / 4, C / 8, 2, 2}, 0},
        {&m->up2_b, "upscale_conv2.bias", 1, {C / 8}, 0},
    };
    if (st == SETOK_OK)
        st = setok_loader_load(ld, "mask_decoder", table, sizeof table / sizeof *table, err);
    for (int64_t i = 0; i < M && st == SETOK_OK; i++) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "mask_decoder.output_hypernetworks_mlps.%lld",
                 (long long)i);
        st = load_ffn(ld, &m->hyper[i], prefix, C, C, C / 8, 3, err);
    }
    if (st == SETOK_OK)
        st = load_ffn(ld, &m->iou_head, "mask_decoder.iou_prediction_head", C,
                      c->iou_head_hidden_dim, M, c->iou_head_depth, err);
    return st;
}

static setok_status alloc_decoder(setok_mask_decoder **out, const setok_mask_decoder_config *cfg,
                                  setok_backend *backend, setok_dtype dtype, setok_error *err)
{
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: dtype must be f32, f16 or bf16, "
                          "got %s", setok_dtype_name(dtype));
    setok_mask_decoder *m = calloc(1, sizeof *m);
    if (m) {
        m->blocks = calloc(cfg->num_layers > 0 ? (size_t)cfg->num_layers : 1, sizeof *m->blocks);
        m->hyper = calloc((size_t)num_mask_tokens(cfg), sizeof *m->hyper);
    }
    if (!m || !m->blocks || !m->hyper) {
        if (m) {
            free(m->blocks);
            free(m->hyper);
        }
        free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    }
    m->cfg = *cfg;
    m->backend = backend;
    m->dtype = dtype;
    *out = m;
    return SETOK_OK;
}

setok_status setok_mask_decoder_load(setok_mask_decoder **out, const char *dir,
                                     setok_backend *backend, setok_dtype dtype,
                                     setok_error *err)
{
    *out = NULL;
    setok_mask_decoder_config cfg;
    setok_mask_decoder *m = NULL;
    setok_status st = setok_mask_decoder_config_load(&cfg, dir, err);
    if (st == SETOK_OK)
        st = alloc_decoder(&m, &cfg, backend, dtype, err);
    if (st != SETOK_OK)
        return st;
    setok_weights *w = NULL;
    st = setok_weights_open(&w, dir, err);
    if (st == SETOK_OK) {
        setok_loader ld = {.w = w, .backend = backend, .dtype = dtype};
        st = load_weights(m, &ld, err);
    }
    setok_weights_close(w);
    if (st != SETOK_OK) {
        setok_mask_decoder_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

setok_status setok_mask_decoder_create_random(setok_mask_decoder **out,
                                              const setok_mask_decoder_config *cfg,
                                              setok_backend *backend, setok_dtype dtype,
                                              uint32_t seed, setok_error *err)
{
    *out = NULL;
    setok_mask_decoder *m = NULL;
    setok_status st = config_check(cfg, "mask decoder", err);
    if (st == SETOK_OK)
        st = alloc_decoder(&m, cfg, backend, dtype, err);
    if (st != SETOK_OK)
        return st;
    uint32_t state = seed * 2654435761u + 1u;
    setok_loader ld = {.random_state = &state, .backend = backend, .dtype = dtype};
    st = load_weights(m, &ld, err);
    if (st != SETOK_OK) {
        setok_mask_decoder_free(m);
        return st;
    }
    *out = m;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * accessors and sizes */

const setok_mask_decoder_config *setok_mask_decoder_get_config(const setok_mask_decoder *m)
{
    return &m->cfg;
}

setok_dtype setok_mask_decoder_dtype(const setok_mask_decoder *m)
{
    return m->dtype;
}

int setok_mask_decoder_num_masks(const setok_mask_decoder *m, bool multimask)
{
    return multimask ? m->cfg.num_multimask_outputs : 1;
}

/* Arena bytes of one tensor: its size rounded to the arena's 256-byte
 * alignment, plus the worst-case padding before it. */
static size_t slot(int64_t numel, size_t esize)
{
    size_t bytes = (size_t)numel * esize;
    return ((bytes + 255) & ~(size_t)255) + 256;
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Scratch of sam_attention: q, k, v heads, one projection, the output heads and their merge. */
static size_t attn_bytes(int64_t B, int64_t Tq, int64_t Tk, int64_t Ci, size_t e)
{
    int64_t T = Tq > Tk ? Tq : Tk;
    return 2 * slot(B * Tq * Ci, e) + 2 * slot(B * Tk * Ci, e) + slot(B * T * Ci, e) +
           2 * slot(B * Tq * Ci, e);
}

/* Sparse prompt tokens before the extra ones: the points, their not-a-point
 * padding when there is no box, and the box's two corners. */
static int64_t num_sparse(const setok_sam_prompt *p)
{
    int64_t P = p->num_points > 0 ? p->num_points : 0;
    return P + (P > 0 && !p->boxes ? 1 : 0) + (p->boxes ? 2 : 0);
}

size_t setok_mask_decoder_arena_bytes(const setok_mask_decoder *m, int64_t batch, int64_t height,
                                      int64_t width, const setok_sam_prompt *prompt)
{
    const setok_mask_decoder_config *c = &m->cfg;
    setok_sam_prompt none = {0};
    if (!prompt)
        prompt = &none;
    size_t e = setok_dtype_size(m->dtype);
    int64_t B = batch, C = c->hidden_size, HW = height * width, M = num_mask_tokens(c);
    int64_t E = prompt->extra && prompt->extra->ndim == 3 ? prompt->extra->shape[1] : 0;
    int64_t T = 1 + M + num_sparse(prompt) + E;
    int64_t mic = c->mask_input_channels;
    int64_t Cb = C / BLOCK_DOWNSAMPLE_RATE, Cf = C / c->attention_downsample_rate;
    int64_t up = 16 * HW;
    /* outputs, then queries, their point embeddings, keys and the image positional encoding */
    size_t fixed = slot(B * M * up, e) + slot(B * M, e) + 2 * slot(B * T * C, e) +
                   slot(B * HW * C, e) + slot(HW * C, e);
    /* building the tokens and the keys; the mask embedding's convolutions and layer norms */
    size_t setup = slot(B * T * C, e) + 2 * slot(B * C * HW, e);
    if (prompt->masks)
        setup += 4 * slot(B * mic / 4 * 4 * HW, e) + 4 * slot(B * mic * HW, e);
    /* a block: two [B, T, C] and two [B, HW, C] buffers, plus the largest attention or the MLP */
    size_t block = 2 * slot(B * T * C, e) + 2 * slot(B * HW * C, e) +
                   max_size(max_size(attn_bytes(B, T, T, C, e), attn_bytes(B, T, HW, Cb, e)),
                            max_size(attn_bytes(B, HW, T, Cb, e),
                                     2 * slot(B * T * c->mlp_dim, e)));
    size_t final = 2 * slot(B * T * C, e) + slot(B * HW * C, e) + attn_bytes(B, T, HW, Cf, e);
    /* upscaling: the image, conv1 and its layer norm (three buffers), conv2 and its gelu */
    size_t upscale = slot(B * C * HW, e) + 4 * slot(B * C / 4 * 4 * HW, e) +
                     2 * slot(B * C / 8 * up, e);
    /* heads: hypernetwork input, one token, two hidden buffers, one output */
    int64_t hid = c->iou_head_hidden_dim > C ? c->iou_head_hidden_dim : C;
    size_t heads = slot(B * M * C / 8, e) + slot(B * C, e) + 2 * slot(B * hid, e) +
                   slot(B * (C > M ? C : M), e);
    size_t peak = max_size(max_size(setup, block), max_size(final, upscale + heads));
    return fixed + peak + 4096;
}

/* ---------------------------------------------------------------------------
 * prompt encoder (host) */

/* SamPositionalEmbedding on one point (x, y) in [0, 1]^2 -> out [2F] =
 * [sin(2 pi (2p - 1) G), cos(...)], in float32 as PyTorch computes it. */
static void fourier_features(float *out, const float *gaussian, int64_t F, float x, float y)
{
    const float two_pi = (float)(2.0 * M_PI);
    float cx = 2.0f * x - 1.0f, cy = 2.0f * y - 1.0f;
    for (int64_t f = 0; f < F; f++) {
        float a = cx * gaussian[f] + cy * gaussian[F + f];
        a = two_pi * a;
        out[f] = sinf(a);
        out[F + f] = cosf(a);
    }
}

/* out [C] = the Fourier features of pixel (x, y) of the image_size frame, shifted to the
 * pixel centre, + point_embed[which] */
static void embed_coords(const setok_mask_decoder *m, float *out, float x, float y, int which)
{
    int64_t C = m->cfg.hidden_size;
    float size = (float)m->cfg.image_size;
    fourier_features(out, m->gaussian, m->cfg.num_pos_feats, (x + 0.5f) / size,
                     (y + 0.5f) / size);
    const float *add = m->point_embed + (int64_t)which * C;
    for (int64_t i = 0; i < C; i++)
        out[i] += add[i];
}

/* prompt -> out [B, S, C]: SamPromptEncoder's sparse embeddings, the points
 * (_embed_points, padded with a not-a-point entry when there is no box) then
 * the box corners (_embed_boxes). */
static void embed_sparse(const setok_mask_decoder *m, float *out, const setok_sam_prompt *pr,
                         int64_t B)
{
    int64_t C = m->cfg.hidden_size, P = pr->num_points, S = num_sparse(pr);
    for (int64_t b = 0; b < B; b++) {
        float *rows = out + b * S * C;
        int64_t r = 0;
        for (; r < P + (P > 0 && !pr->boxes ? 1 : 0); r++) {
            float *row = rows + r * C;
            int32_t label = r < P ? pr->labels[b * P + r] : SETOK_SAM_LABEL_NOT_A_POINT;
            if (label == SETOK_SAM_LABEL_NOT_A_POINT)
                memcpy(row, m->not_a_point, (size_t)C * sizeof *row);
            else if (label == SETOK_SAM_LABEL_PAD)
                memset(row, 0, (size_t)C * sizeof *row);
            else /* label 0 or 1 */
                embed_coords(m, row, pr->points[(b * P + r) * 2], pr->points[(b * P + r) * 2 + 1],
                             label);
        }
        for (int k = 0; k < 2 && pr->boxes; k++, r++)
            embed_coords(m, rows + r * C, pr->boxes[b * 4 + 2 * k], pr->boxes[b * 4 + 2 * k + 1],
                         2 + k);
    }
}

/* out [h * w, C]: the positional encoding of every grid cell centre
 * (SamModel.get_image_wide_positional_embeddings, flattened row-major). */
static void image_positional_embedding(const setok_mask_decoder *m, float *out, int64_t h,
                                       int64_t w)
{
    int64_t C = m->cfg.hidden_size, F = m->cfg.num_pos_feats;
    /* cell centres as transformers computes them: cumsum(ones) - 0.5, over the grid size */
    for (int64_t i = 0; i < h; i++) {
        float y = ((float)(i + 1) - 0.5f) / (float)h;
        for (int64_t j = 0; j < w; j++)
            fourier_features(out + (i * w + j) * C, m->gaussian, F,
                             ((float)(j + 1) - 0.5f) / (float)w, y);
    }
}

/* n host floats into a new arena tensor of the model's dtype. */
static setok_status upload_floats(setok_mask_decoder *m, setok_arena *arena, setok_tensor *t,
                                  const float *v, int ndim, const int64_t *shape,
                                  setok_error *err)
{
    setok_status st = setok_arena_tensor(arena, t, m->dtype, ndim, shape, err);
    return st == SETOK_OK ? setok_tensor_upload_f32(t, v, err) : st;
}

/* m->grid_pe for an h x w grid (computed when the grid changes). */
static setok_status grid_positional_embedding(setok_mask_decoder *m, int64_t h, int64_t w,
                                              setok_error *err)
{
    if (m->grid_pe.data && m->grid_h == h && m->grid_w == w)
        return SETOK_OK;
    setok_tensor_free(&m->grid_pe);
    m->grid_h = m->grid_w = 0;
    int64_t C = m->cfg.hidden_size;
    float *host = malloc((size_t)(h * w * C) * sizeof *host);
    setok_status st = host ? setok_tensor_alloc(&m->grid_pe, m->backend, m->dtype, 2,
                                                (int64_t[]){h * w, C}, err)
                           : setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
    if (st == SETOK_OK) {
        image_positional_embedding(m, host, h, w);
        st = setok_tensor_upload_f32(&m->grid_pe, host, err);
    }
    free(host);
    if (st != SETOK_OK) {
        setok_tensor_free(&m->grid_pe);
        return st;
    }
    m->grid_h = h;
    m->grid_w = w;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * layers */

typedef struct dims {
    int64_t B, T, HW, C, NH;
} dims;

// x: [B, T, C], w: [Ci, C] -> heads: [B, NH, T, Ci / NH] (a new arena tensor)
static setok_status project_heads(setok_backend *be, setok_arena *arena, setok_tensor *heads,
                                  const setok_tensor *x, const setok_tensor *w,
                                  const setok_tensor *bias, int64_t NH, setok_error *err)
{
    int64_t B = x->shape[0], T = x->shape[1], Ci = w->shape[0], D = Ci / NH;
    setok_tensor proj, split, perm;
    setok_status st = setok_arena_tensor(arena, heads, x->dtype, 4, (int64_t[]){B, NH, T, D}, err);
    size_t mark = setok_arena_mark(arena);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &proj, x->dtype, 3, (int64_t[]){B, T, Ci}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &proj, x, w, bias, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&split, &proj, 4, (int64_t[]){B, T, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &split, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, heads, &perm, err);
    setok_arena_reset(arena, mark);
    return st;
}

// q: [B, Tq, C], k: [B, Tk, C], v: [B, Tk, C] -> y: [B, Tq, C] = out_proj(softmax(Q K^T /
// sqrt(D)) V), Q K V = q k v projected to Ci = C / downsample_rate, NH heads of D = Ci / NH
static setok_status sam_attention(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                  const setok_tensor *q, const setok_tensor *k,
                                  const setok_tensor *v, const sam_attn *a, int64_t NH,
                                  setok_error *err)
{
    int64_t B = q->shape[0], Tq = q->shape[1], Ci = a->internal, D = Ci / NH;
    size_t mark = setok_arena_mark(arena);
    setok_tensor qh, kh, vh, att, merged, merged3;
    setok_status st = project_heads(be, arena, &qh, q, &a->q_w, &a->q_b, NH, err);
    if (st == SETOK_OK)
        st = project_heads(be, arena, &kh, k, &a->k_w, &a->k_b, NH, err);
    if (st == SETOK_OK)
        st = project_heads(be, arena, &vh, v, &a->v_w, &a->v_b, NH, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &att, q->dtype, 4, (int64_t[]){B, NH, Tq, D}, err);
    if (st == SETOK_OK)
        st = setok_attention(be, &att, &qh, &kh, &vh, NULL, (float)pow((double)D, -0.5), false,
                             err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &merged, q->dtype, 4, (int64_t[]){B, Tq, NH, D}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &merged, &att, (int[]){0, 2, 1, 3}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&merged3, &merged, 3, (int64_t[]){B, Tq, Ci}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, y, &merged3, &a->o_w, &a->o_b, err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [R, in] -> y: [R, out] = proj_out(relu(layers(... relu(proj_in(x)))))
static setok_status sam_ffn_forward(setok_backend *be, setok_arena *arena, setok_tensor *y,
                                    const setok_tensor *x, const sam_ffn *f, setok_error *err)
{
    int64_t R = x->shape[0];
    size_t mark = setok_arena_mark(arena);
    setok_tensor h, a;
    setok_status st = setok_arena_tensor(arena, &h, x->dtype, 2, (int64_t[]){R, f->hidden}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &a, x->dtype, 2, (int64_t[]){R, f->hidden}, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h, x, &f->in_w, &f->in_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_RELU, &a, &h, err);
    for (int i = 0; i < f->num_mid && st == SETOK_OK; i++) {
        st = setok_linear(be, &h, &a, &f->mid_w[i], &f->mid_b[i], err);
        if (st == SETOK_OK)
            st = setok_unary(be, SETOK_OP_RELU, &a, &h, err);
    }
    if (st == SETOK_OK)
        st = setok_linear(be, y, &a, &f->out_w, &f->out_b, err);
    setok_arena_reset(arena, mark);
    return st;
}

// queries: [B, T, C], keys: [B, HW, C], qpe: [B, T, C] (the prompt tokens), kpe: [HW, C]
// -> queries, keys updated in place (SamTwoWayAttentionBlock; first: no positional
// embedding and no residual in the self attention)
static setok_status sam_block_forward(setok_mask_decoder *m, setok_arena *arena,
                                      setok_tensor *queries, setok_tensor *keys,
                                      const setok_tensor *qpe, const setok_tensor *kpe,
                                      const sam_block *b, bool first, const dims *d,
                                      setok_error *err)
{
    setok_backend *be = m->backend;
    float eps = m->cfg.layer_norm_eps;
    int64_t tq[3] = {d->B, d->T, d->C}, tk[3] = {d->B, d->HW, d->C};
    size_t mark = setok_arena_mark(arena);
    setok_tensor a, s, kk, ak, h1, h2;
    setok_status st = setok_arena_tensor(arena, &a, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &s, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &kk, m->dtype, 3, tk, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &ak, m->dtype, 3, tk, err);
    /* self attention */
    if (st == SETOK_OK && first) {
        st = sam_attention(be, arena, &a, queries, queries, queries, &b->self_attn, d->NH, err);
        if (st == SETOK_OK)
            st = setok_layernorm(be, queries, &a, &b->ln1_w, &b->ln1_b, eps, err);
    } else if (st == SETOK_OK) {
        st = setok_add(be, &s, queries, qpe, err);
        if (st == SETOK_OK)
            st = sam_attention(be, arena, &a, &s, &s, queries, &b->self_attn, d->NH, err);
        if (st == SETOK_OK)
            st = setok_add(be, &s, queries, &a, err);
        if (st == SETOK_OK)
            st = setok_layernorm(be, queries, &s, &b->ln1_w, &b->ln1_b, eps, err);
    }
    /* tokens attend to the image */
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, qpe, err);
    if (st == SETOK_OK)
        st = setok_add(be, &kk, keys, kpe, err);
    if (st == SETOK_OK)
        st = sam_attention(be, arena, &a, &s, &kk, keys, &b->token_to_image, d->NH, err);
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, &a, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, queries, &s, &b->ln2_w, &b->ln2_b, eps, err);
    /* MLP */
    size_t mlp_mark = setok_arena_mark(arena);
    int64_t th[3] = {d->B, d->T, m->cfg.mlp_dim};
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h1, m->dtype, 3, th, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h2, m->dtype, 3, th, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &h1, queries, &b->lin1_w, &b->lin1_b, err);
    if (st == SETOK_OK)
        st = setok_unary(be, m->cfg.act, &h2, &h1, err);
    if (st == SETOK_OK)
        st = setok_linear(be, &a, &h2, &b->lin2_w, &b->lin2_b, err);
    setok_arena_reset(arena, mlp_mark);
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, &a, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, queries, &s, &b->ln3_w, &b->ln3_b, eps, err);
    /* the image attends to the tokens; keys have not changed, so kk still holds keys + kpe */
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, qpe, err);
    if (st == SETOK_OK)
        st = sam_attention(be, arena, &ak, &kk, &s, queries, &b->image_to_token, d->NH, err);
    if (st == SETOK_OK)
        st = setok_add(be, &kk, keys, &ak, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, keys, &kk, &b->ln4_w, &b->ln4_b, eps, err);
    setok_arena_reset(arena, mark);
    return st;
}

// queries: [B, T, C], keys: [B, HW, C] -> queries = layer_norm_final_attn(queries +
// final_attn_token_to_image(queries + qpe, keys + kpe, keys))
static setok_status sam_final_attention(setok_mask_decoder *m, setok_arena *arena,
                                        setok_tensor *queries, const setok_tensor *keys,
                                        const setok_tensor *qpe, const setok_tensor *kpe,
                                        const dims *d, setok_error *err)
{
    setok_backend *be = m->backend;
    size_t mark = setok_arena_mark(arena);
    setok_tensor a, s, kk;
    int64_t tq[3] = {d->B, d->T, d->C};
    setok_status st = setok_arena_tensor(arena, &a, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &s, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &kk, m->dtype, 3, (int64_t[]){d->B, d->HW, d->C}, err);
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, qpe, err);
    if (st == SETOK_OK)
        st = setok_add(be, &kk, keys, kpe, err);
    if (st == SETOK_OK)
        st = sam_attention(be, arena, &a, &s, &kk, keys, &m->final_attn, d->NH, err);
    if (st == SETOK_OK)
        st = setok_add(be, &s, queries, &a, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, queries, &s, &m->final_ln_w, &m->final_ln_b, FINAL_LN_EPS, err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [B, C, H, W] -> y: [B, C, H, W], layer norm over C at every pixel (SamLayerNorm
// channels_first)
static setok_status layernorm_channels_first(setok_backend *be, setok_arena *arena,
                                             setok_tensor *y, const setok_tensor *x,
                                             const setok_tensor *w, const setok_tensor *bias,
                                             float eps, setok_error *err)
{
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    size_t mark = setok_arena_mark(arena);
    setok_tensor last, normed, back;
    setok_status st = setok_arena_tensor(arena, &last, x->dtype, 4, (int64_t[]){B, H, W, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &normed, x->dtype, 4, (int64_t[]){B, H, W, C}, err);
    if (st == SETOK_OK)
        st = setok_permute(be, &last, x, (int[]){0, 2, 3, 1}, err);
    if (st == SETOK_OK)
        st = setok_layernorm(be, &normed, &last, w, bias, eps, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&back, &normed, (int[]){0, 3, 1, 2}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, y, &back, err);
    setok_arena_reset(arena, mark);
    return st;
}

/* ---------------------------------------------------------------------------
 * forward */

static setok_status check_inputs(const setok_mask_decoder *m, const setok_arena *arena,
                                 const setok_tensor *img, const setok_sam_prompt *pr,
                                 setok_error *err)
{
    const setok_mask_decoder_config *c = &m->cfg;
    char buf[96];
    if (!img || img->ndim != 4 || img->shape[1] != c->hidden_size || img->dtype != m->dtype ||
        !setok_tensor_is_contiguous(img) || img->shape[0] < 1 || img->shape[2] < 1 ||
        img->shape[3] < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: image_embeddings must be a "
                          "contiguous [B, %d, h, w] %s tensor, got %s", c->hidden_size,
                          setok_dtype_name(m->dtype),
                          img ? setok_tensor_describe(img, buf, sizeof buf) : "none");
    if (img->backend != m->backend || arena->backend != m->backend)
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: image_embeddings and the arena "
                          "must be on the model's backend (%s)", setok_backend_name(m->backend));
    int64_t B = img->shape[0], P = pr->num_points, h = img->shape[2], w = img->shape[3];
    if (P < 0 || (P > 0 && (!pr->points || !pr->labels)))
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: %lld points need coordinates "
                          "and labels", (long long)P);
    for (int64_t i = 0; i < B * P; i++) {
        int32_t l = pr->labels[i];
        if (l != SETOK_SAM_LABEL_FOREGROUND && l != SETOK_SAM_LABEL_BACKGROUND &&
            l != SETOK_SAM_LABEL_NOT_A_POINT && l != SETOK_SAM_LABEL_PAD)
            return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: point %lld of batch %lld has "
                              "label %d, not one of 1, 0, -1, -10", (long long)(i % P),
                              (long long)(i / P), (int)l);
        if (!isfinite(pr->points[2 * i]) || !isfinite(pr->points[2 * i + 1]))
            return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: point %lld of batch %lld is "
                              "not finite", (long long)(i % P), (long long)(i / P));
    }
    if (pr->boxes && c->num_point_embeddings < 4)
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: a box needs point embeddings 2 "
                          "and 3; this model has %d", c->num_point_embeddings);
    for (int64_t i = 0; pr->boxes && i < 4 * B; i++)
        if (!isfinite(pr->boxes[i]))
            return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: the box of batch %lld is not "
                              "finite", (long long)(i / 4));
    const setok_tensor *mk = pr->masks, *ex = pr->extra;
    if (mk && (mk->ndim != 4 || mk->shape[0] != B || mk->shape[1] != 1 ||
               mk->shape[2] != 4 * h || mk->shape[3] != 4 * w || mk->dtype != m->dtype ||
               mk->backend != m->backend || !setok_tensor_is_contiguous(mk)))
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: the input mask must be a "
                          "contiguous [%lld, 1, %lld, %lld] %s tensor on the model's backend "
                          "(4x the image embedding grid), got %s", (long long)B,
                          (long long)(4 * h), (long long)(4 * w), setok_dtype_name(m->dtype),
                          setok_tensor_describe(mk, buf, sizeof buf));
    if (ex && (ex->ndim != 3 || ex->shape[0] != B || ex->shape[2] != c->hidden_size ||
               ex->dtype != m->dtype || ex->backend != m->backend ||
               !setok_tensor_is_contiguous(ex)))
        return setok_fail(err, SETOK_ERR_INPUT, "mask decoder: extra sparse embeddings must be a "
                          "contiguous [%lld, E, %d] %s tensor on the model's backend, got %s",
                          (long long)B, c->hidden_size, setok_dtype_name(m->dtype),
                          setok_tensor_describe(ex, buf, sizeof buf));
    return SETOK_OK;
}

// -> qpe: [B, T, C] = [iou_token, mask_tokens, points (+ not-a-point), box corners, extra]
static setok_status build_tokens(setok_mask_decoder *m, setok_arena *arena, setok_tensor *qpe,
                                 const setok_sam_prompt *pr, const dims *d, setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t B = d->B, C = d->C, NT = m->output_tokens.shape[0], S = num_sparse(pr);
    int64_t E = pr->extra ? pr->extra->shape[1] : 0;
    setok_status st = SETOK_OK;
    for (int64_t b = 0; b < B && st == SETOK_OK; b++) {
        setok_tensor dst, src;
        st = setok_view_slice(&dst, qpe, 0, b, 1, err);
        if (st == SETOK_OK)
            st = setok_view_slice(&dst, &dst, 1, 0, NT, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&src, &m->output_tokens, 3, (int64_t[]){1, NT, C}, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &dst, &src, err);
    }
    size_t mark = setok_arena_mark(arena);
    if (st == SETOK_OK && S > 0) {
        float *host = malloc((size_t)(B * S * C) * sizeof *host);
        setok_tensor sparse, dst;
        if (!host)
            st = setok_fail(err, SETOK_ERR_NOMEM, "mask decoder: out of memory");
        if (st == SETOK_OK) {
            embed_sparse(m, host, pr, B);
            st = upload_floats(m, arena, &sparse, host, 3, (int64_t[]){B, S, C}, err);
        }
        free(host);
        if (st == SETOK_OK)
            st = setok_view_slice(&dst, qpe, 1, NT, S, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &dst, &sparse, err);
    }
    if (st == SETOK_OK && E > 0) {
        setok_tensor dst;
        st = setok_view_slice(&dst, qpe, 1, NT + S, E, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &dst, pr->extra, err);
    }
    if (st == SETOK_OK)
        st = setok_backend_synchronize(be, err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [B, Cin, H, W] -> y: [B, Cout, H / 2, W / 2] = act(layer_norm(conv(x))), a stride-2 2x2
// convolution of SamMaskEmbedding
static setok_status mask_embed_stage(setok_mask_decoder *m, setok_arena *arena, setok_tensor *y,
                                     const setok_tensor *x, const setok_tensor *w,
                                     const setok_tensor *b, const setok_tensor *ln_w,
                                     const setok_tensor *ln_b, setok_error *err)
{
    size_t mark = setok_arena_mark(arena);
    setok_tensor conv, normed;
    const int64_t *ys = y->shape;
    setok_status st = setok_arena_tensor(arena, &conv, m->dtype, 4, ys, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &normed, m->dtype, 4, ys, err);
    if (st == SETOK_OK)
        st = setok_conv2d(m->backend, &conv, x, w, b, 2, 0, err);
    if (st == SETOK_OK)
        st = layernorm_channels_first(m->backend, arena, &normed, &conv, ln_w, ln_b,
                                      m->cfg.mask_layer_norm_eps, err);
    if (st == SETOK_OK)
        st = setok_unary(m->backend, m->cfg.mask_act, y, &normed, err);
    setok_arena_reset(arena, mark);
    return st;
}

// masks: [B, 1, 4h, 4w] -> dense: [B, C, h, w] (SamMaskEmbedding)
static setok_status mask_embed(setok_mask_decoder *m, setok_arena *arena, setok_tensor *dense,
                               const setok_tensor *masks, setok_error *err)
{
    int64_t B = masks->shape[0], H = masks->shape[2], W = masks->shape[3];
    int64_t mic = m->cfg.mask_input_channels;
    size_t mark = setok_arena_mark(arena);
    setok_tensor h1, h2;
    setok_status st = setok_arena_tensor(arena, &h1, m->dtype, 4,
                                         (int64_t[]){B, mic / 4, H / 2, W / 2}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &h2, m->dtype, 4, (int64_t[]){B, mic, H / 4, W / 4}, err);
    if (st == SETOK_OK)
        st = mask_embed_stage(m, arena, &h1, masks, &m->mconv1_w, &m->mconv1_b, &m->mln1_w,
                              &m->mln1_b, err);
    if (st == SETOK_OK)
        st = mask_embed_stage(m, arena, &h2, &h1, &m->mconv2_w, &m->mconv2_b, &m->mln2_w,
                              &m->mln2_b, err);
    if (st == SETOK_OK)
        st = setok_conv2d(m->backend, dense, &h2, &m->mconv3_w, &m->mconv3_b, 1, 0, err);
    setok_arena_reset(arena, mark);
    return st;
}

// image: [B, C, h, w], masks: [B, 1, 4h, 4w]? -> keys: [B, h * w, C] = image + the dense
// prompt embedding (mask_embed(masks), else no_mask_embed at every position), flattened
static setok_status build_keys(setok_mask_decoder *m, setok_arena *arena, setok_tensor *keys,
                               const setok_tensor *image, const setok_tensor *masks,
                               const dims *d, setok_error *err)
{
    size_t mark = setok_arena_mark(arena);
    setok_tensor sum, dense, flat, perm;
    int64_t shape[4] = {d->B, d->C, image->shape[2], image->shape[3]};
    setok_status st = setok_arena_tensor(arena, &sum, m->dtype, 4, shape, err);
    if (st == SETOK_OK && masks) {
        st = setok_arena_tensor(arena, &dense, m->dtype, 4, shape, err);
        if (st == SETOK_OK)
            st = mask_embed(m, arena, &dense, masks, err);
        if (st == SETOK_OK)
            st = setok_add(m->backend, &sum, image, &dense, err);
    } else if (st == SETOK_OK) {
        st = setok_add(m->backend, &sum, image, &m->no_mask, err);
    }
    if (st == SETOK_OK)
        st = setok_view_reshape(&flat, &sum, 3, (int64_t[]){d->B, d->C, d->HW}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &flat, (int[]){0, 2, 1}, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, keys, &perm, err);
    setok_arena_reset(arena, mark);
    return st;
}

// keys: [B, h * w, C] -> up: [B, C / 8, 4h, 4w] = gelu(conv2(gelu(ln(conv1(keys as an image)))))
static setok_status upscale(setok_mask_decoder *m, setok_arena *arena, setok_tensor *up,
                            const setok_tensor *keys, int64_t h, int64_t w, const dims *d,
                            setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t B = d->B, C = d->C;
    size_t mark = setok_arena_mark(arena);
    setok_tensor img, grid, perm, u1, u1n, u2;
    setok_status st = setok_arena_tensor(arena, &img, m->dtype, 4, (int64_t[]){B, C, h, w}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&grid, keys, 4, (int64_t[]){B, h, w, C}, err);
    if (st == SETOK_OK)
        st = setok_view_permute(&perm, &grid, (int[]){0, 3, 1, 2}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &img, &perm, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &u1, m->dtype, 4, (int64_t[]){B, C / 4, 2 * h, 2 * w},
                                err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &u1n, m->dtype, 4, (int64_t[]){B, C / 4, 2 * h, 2 * w},
                                err);
    if (st == SETOK_OK)
        st = setok_conv_transpose2d(be, &u1, &img, &m->up1_w, &m->up1_b, 2, err);
    if (st == SETOK_OK)
        st = layernorm_channels_first(be, arena, &u1n, &u1, &m->up_ln_w, &m->up_ln_b,
                                      UPSCALE_LN_EPS, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_GELU, &u1, &u1n, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &u2, m->dtype, 4, (int64_t[]){B, C / 8, 4 * h, 4 * w},
                                err);
    if (st == SETOK_OK)
        st = setok_conv_transpose2d(be, &u2, &u1, &m->up2_w, &m->up2_b, 2, err);
    if (st == SETOK_OK)
        st = setok_unary(be, SETOK_OP_GELU, up, &u2, err);
    setok_arena_reset(arena, mark);
    return st;
}

// x: [B, T, C] -> out: [B, C] = x[:, t, :] (contiguous)
static setok_status take_token(setok_backend *be, setok_tensor *out, const setok_tensor *x,
                               int64_t t, setok_error *err)
{
    setok_tensor row, dst;
    setok_status st = setok_view_slice(&row, x, 1, t, 1, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&dst, out, 3, (int64_t[]){x->shape[0], 1, x->shape[2]}, err);
    if (st == SETOK_OK)
        st = setok_copy(be, &dst, &row, err);
    return st;
}

// queries: [B, T, C], up: [B, C / 8, 4h, 4w] -> masks: [B, Mo, 4h, 4w] = hyper_in @ up,
// hyper_in[:, j] = output_hypernetworks_mlps[i](mask token i), i = j + first
static setok_status predict_masks(setok_mask_decoder *m, setok_arena *arena, setok_tensor *masks,
                                  const setok_tensor *queries, const setok_tensor *up, int first,
                                  const dims *d, setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t B = d->B, C = d->C, Mo = masks->shape[1], N = up->shape[2] * up->shape[3];
    size_t mark = setok_arena_mark(arena);
    setok_tensor hyper, tok, row, dst, src, up3, masks3;
    setok_status st = setok_arena_tensor(arena, &hyper, m->dtype, 3, (int64_t[]){B, Mo, C / 8},
                                         err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &tok, m->dtype, 2, (int64_t[]){B, C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &row, m->dtype, 2, (int64_t[]){B, C / 8}, err);
    for (int64_t j = 0; j < Mo && st == SETOK_OK; j++) {
        int64_t i = j + first;
        st = take_token(be, &tok, queries, 1 + i, err);
        if (st == SETOK_OK)
            st = sam_ffn_forward(be, arena, &row, &tok, &m->hyper[i], err);
        if (st == SETOK_OK)
            st = setok_view_slice(&dst, &hyper, 1, j, 1, err);
        if (st == SETOK_OK)
            st = setok_view_reshape(&src, &row, 3, (int64_t[]){B, 1, C / 8}, err);
        if (st == SETOK_OK)
            st = setok_copy(be, &dst, &src, err);
    }
    if (st == SETOK_OK)
        st = setok_view_reshape(&up3, up, 3, (int64_t[]){B, C / 8, N}, err);
    if (st == SETOK_OK)
        st = setok_view_reshape(&masks3, masks, 3, (int64_t[]){B, Mo, N}, err);
    if (st == SETOK_OK)
        st = setok_matmul(be, &masks3, &hyper, &up3, NULL, false, false, 1.0f, err);
    setok_arena_reset(arena, mark);
    return st;
}

// queries: [B, T, C] -> iou: [B, Mo] = iou_prediction_head(queries[:, 0])[:, first : first + Mo]
static setok_status predict_iou(setok_mask_decoder *m, setok_arena *arena, setok_tensor *iou,
                                const setok_tensor *queries, int first, const dims *d,
                                setok_error *err)
{
    setok_backend *be = m->backend;
    int64_t M = num_mask_tokens(&m->cfg);
    size_t mark = setok_arena_mark(arena);
    setok_tensor tok, all, sel;
    setok_status st = setok_arena_tensor(arena, &tok, m->dtype, 2, (int64_t[]){d->B, d->C}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &all, m->dtype, 2, (int64_t[]){d->B, M}, err);
    if (st == SETOK_OK)
        st = take_token(be, &tok, queries, 0, err);
    if (st == SETOK_OK)
        st = sam_ffn_forward(be, arena, &all, &tok, &m->iou_head, err);
    if (st == SETOK_OK)
        st = setok_view_slice(&sel, &all, 1, first, iou->shape[1], err);
    if (st == SETOK_OK)
        st = setok_copy(be, iou, &sel, err);
    setok_arena_reset(arena, mark);
    return st;
}

static setok_status cancelled(const atomic_bool *cancel, const char *where, setok_error *err)
{
    if (cancel && atomic_load(cancel))
        return setok_fail(err, SETOK_ERR_CANCELLED, "mask decoder: cancelled %s", where);
    return SETOK_OK;
}

setok_status setok_mask_decoder_forward(setok_mask_decoder *m, setok_arena *arena,
                                        setok_tensor *masks, setok_tensor *iou_scores,
                                        const setok_tensor *image_embeddings,
                                        const setok_sam_prompt *prompt, bool multimask,
                                        const atomic_bool *cancel, setok_error *err)
{
    const setok_mask_decoder_config *c = &m->cfg;
    setok_sam_prompt none = {0};
    const setok_sam_prompt *pr = prompt ? prompt : &none;
    setok_status st = check_inputs(m, arena, image_embeddings, pr, err);
    if (st != SETOK_OK)
        return st;
    int64_t h = image_embeddings->shape[2], w = image_embeddings->shape[3];
    int64_t E = pr->extra ? pr->extra->shape[1] : 0;
    dims d = {.B = image_embeddings->shape[0], .HW = h * w, .C = c->hidden_size,
              .NH = c->num_heads};
    d.T = num_mask_tokens(c) + 1 + num_sparse(pr) + E;
    int Mo = setok_mask_decoder_num_masks(m, multimask), first = multimask ? 1 : 0;
    size_t start = setok_arena_mark(arena);
    st = setok_arena_tensor(arena, masks, m->dtype, 4, (int64_t[]){d.B, Mo, 4 * h, 4 * w}, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, iou_scores, m->dtype, 2, (int64_t[]){d.B, Mo}, err);
    size_t outputs = setok_arena_mark(arena);
    setok_tensor qpe, queries, keys, kpe, up;
    int64_t tq[3] = {d.B, d.T, d.C};
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &qpe, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &queries, m->dtype, 3, tq, err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &keys, m->dtype, 3, (int64_t[]){d.B, d.HW, d.C}, err);
    if (st == SETOK_OK)
        st = grid_positional_embedding(m, h, w, err);
    kpe = m->grid_pe;
    if (st == SETOK_OK)
        st = build_tokens(m, arena, &qpe, pr, &d, err);
    if (st == SETOK_OK)
        st = build_keys(m, arena, &keys, image_embeddings, pr->masks, &d, err);
    if (st == SETOK_OK)
        st = setok_copy(m->backend, &queries, &qpe, err);
    for (int i = 0; i < c->num_layers && st == SETOK_OK; i++) {
        char where[64];
        snprintf(where, sizeof where, "before layer %d of %d", i, c->num_layers);
        st = cancelled(cancel, where, err);
        if (st == SETOK_OK)
            st = sam_block_forward(m, arena, &queries, &keys, &qpe, &kpe, &m->blocks[i], i == 0,
                                   &d, err);
    }
    if (st == SETOK_OK)
        st = sam_final_attention(m, arena, &queries, &keys, &qpe, &kpe, &d, err);
    if (st == SETOK_OK)
        st = cancelled(cancel, "before the upscaling", err);
    if (st == SETOK_OK)
        st = setok_arena_tensor(arena, &up, m->dtype, 4, (int64_t[]){d.B, d.C / 8, 4 * h, 4 * w},
                                err);
    if (st == SETOK_OK)
        st = upscale(m, arena, &up, &keys, h, w, &d, err);
    if (st == SETOK_OK)
        st = predict_masks(m, arena, masks, &queries, &up, first, &d, err);
    if (st == SETOK_OK)
        st = predict_iou(m, arena, iou_scores, &queries, first, &d, err);
    setok_arena_reset(arena, st == SETOK_OK ? outputs : start);
    if (st != SETOK_OK && err && st != SETOK_ERR_CANCELLED)
        setok_error_prefix(err, "mask decoder forward");
    return st;
}
