/* setok.h — the SeTok tokenizer: density-peak clustering of ViT patch features
 * into a variable number of semantic tokens, and the cluster merger.
 *
 * Paper: "Towards Semantic Equivalence of Tokenization in Multimodal LLM" §2.1
 * (Eq. 1-2), Appendix C (Algorithm 1), Appendix D (merger: 2 blocks, 2 heads).
 * Official code: ChocoWu/SeTok src/model/setok/tokenizer.py (SetokTokenizer,
 * cluster_dpc_knn, group_encoding) and module.py (Block, PositionalEncoding2D).
 * The PyTorch mirror and the reference transcriptions: tools/setokim/setok.py.
 *
 * Pipeline: features [N, d] (N = grid_h * grid_w, raster order)
 *   -> setok_cluster (+ 2-D position embedding) -> setok_clusters
 *   -> setok_merger_forward (merger) or setok_tokens_average (paper Table 9)
 *   -> [n_tokens, *] vision tokens.
 * Clustering runs on the host in f32; the merger runs on any backend.
 *
 * Density-peak clustering (SETOK_CLUSTER_DPC, official cluster_dpc_knn):
 *   D_ij  = |x_i - x_j| / sqrt(d)                      (distances, "normalized")
 *   rho_i = exp(-mean of D_ij^2 over the k nearest j)  (self included, D_ii = 0)
 *   j is "denser" than i when rho_j > rho_i, or rho_j == rho_i and j < i: the
 *     official code breaks ties with 1e-6 random noise; here the lower index wins.
 *   delta_i = min D_ij over denser j; for the densest patch, max_j D_ij (Eq. 2).
 *   score_i = rho_i * delta_i
 *   centres = { i : score_i > threshold }; fewer than min_clusters -> the top
 *     min_clusters by score; more than max_clusters (> 0) -> the top max_clusters.
 *     "Top m by score" breaks ties by the lower patch index.
 *   Tokens are numbered by their centre's patch index (ascending), as the
 *   official code numbers them. Every patch joins its nearest centre (ties: the
 *   lower token number); each centre labels itself.
 * Differences from the official code, on purpose: index tie-breaking instead of
 * noise; delta follows paper Eq. 2 (the official code broadcasts a [1, 1, N] row of
 * per-patch maxima over the masked matrix, which mixes other patches' largest
 * distances into every min and gives the densest patch min_j max_m D_jm); the
 * fallback fires when fewer than min_clusters pass (the official one only when none
 * pass, and then takes min_cluster_num = 64); max_clusters is new. The official
 * forward passes k = min_cluster_num = 64 neighbours and trains with threshold 0.55.
 *
 * Soft clustering (SETOK_CLUSTER_SOFT, paper Algorithm 1), scope c = 1:
 *   repeat: i = argmax(score * c) (ties: lower index); stop when score_i * c_i
 *     <= threshold and at least min_clusters - 1 seeds were taken, when it is 0
 *     (no scope left), or when max_clusters - 1 seeds (N - 1 without a cap) were
 *     taken; alpha_j = exp(-D_ij^2 * k * ln 2) (the paper's kernel, footnote 4,
 *     on the same normalized D, with its k read as the DPC k);
 *     mask = c * alpha; c *= (1 - alpha).
 *   The remaining scope c is the last mask (it may be all but empty), so the
 *   masks sum to 1 at every patch. labels = argmax over masks (ties: lower), so a
 *   seed whose scope was mostly taken may not carry its own token.
 *   Tokens keep seed order (the order matters); the last has centre -1.
 * Fixed-k (SETOK_CLUSTER_FIXED, paper Table 5): the top fixed_k patches by
 *   score are the centres; then as DPC.
 *
 * Position embedding (official PositionalEncoding2D(d) on the [h, w, d] grid):
 *   C = 2 * ceil(d / 4) channels per axis, f_i = 10000^(-2i / C), i < C / 2:
 *   channels [2i, 2i + 1] = sin, cos(row * f_i); channels [C + 2i, C + 2i + 1] =
 *   sin, cos(col * f_i); truncated to d. The official "x" axis is the first
 *   spatial axis (rows, h), "y" the second (columns, w). The official forward
 *   adds it to the features before clustering and feeds the same sum to the
 *   merger, so both add it (setok_cluster's flag; the merger's config key
 *   "position_embedding"); the average mode (LLaVA adaptation) averages the
 *   features the caller passes. */
#ifndef SETOK_MODELS_SETOK_H
#define SETOK_MODELS_SETOK_H

#include "../export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../ops.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// clustering

typedef enum setok_cluster_mode {
    SETOK_CLUSTER_DPC = 0, /* density peaks, dynamic number of tokens (default) */
    SETOK_CLUSTER_SOFT,    /* Algorithm 1: soft masks by a distance kernel */
    SETOK_CLUSTER_FIXED,   /* the top fixed_k centres */
    SETOK_CLUSTER_MODE_COUNT
} setok_cluster_mode;

typedef struct setok_cluster_params {
    setok_cluster_mode mode;
    int k;            /* neighbours for the density, self included; 1..N. Also the
                         soft kernel's factor. Official: min_cluster_num = 64 */
    float threshold;  /* centre when score > threshold. Official training: 0.55 */
    int min_clusters; /* >= 1 */
    int max_clusters; /* 0: no cap; else >= min_clusters */
    int fixed_k;      /* FIXED only: 1..N */
} setok_cluster_params;

/* DPC, k 64, threshold 0.55, min_clusters 1, max_clusters 0, fixed_k 64. */
SETOK_API setok_cluster_params setok_cluster_params_default(void);
/* "dpc", "soft", "fixed". */
SETOK_API const char *setok_cluster_mode_name(setok_cluster_mode mode);
/* SETOK_CLUSTER_MODE_COUNT when the name is unknown. */
SETOK_API setok_cluster_mode setok_cluster_mode_from_name(const char *name);

/* One token. Patch (col, row) covers [col, col + 1) x [row, row + 1) in patch
 * units, so multiply by the patch size for pixels. */
typedef struct setok_token_info {
    int32_t centre;         /* patch index of its centre / seed; -1: soft's last mask */
    int32_t area;           /* patches labelled with this token (soft: may be 0) */
    float score;            /* the centre's score (0 without a centre) */
    float cx, cy;           /* centroid of its patches' centres; -1 when area is 0 */
    int32_t x0, y0, x1, y1; /* bounding box in patches, x1 and y1 exclusive; 0 when empty */
} setok_token_info;

/* The result of setok_cluster. Zero-initialize it before the first call; later
 * calls reuse its memory (no allocation while N and d do not grow). Free it with
 * setok_clusters_free. Arrays are read-only to callers. */
typedef struct setok_clusters {
    setok_cluster_mode mode;
    int grid_h, grid_w;
    int n_patches;             /* grid_h * grid_w */
    int n_tokens;
    int32_t *labels;           /* [n_patches] token of each patch, raster order */
    setok_token_info *tokens;  /* [n_tokens] */
    float *density;            /* [n_patches] rho */
    float *delta;              /* [n_patches] delta */
    float *score;              /* [n_patches] rho * delta */
    float *soft_masks;         /* SOFT: [n_tokens, n_patches], summing to 1 per patch; else NULL */
    /* private: the block the arrays and the scratch live in */
    void *memory;
    size_t memory_bytes;
} setok_clusters;

/* features: [grid_h * grid_w, d] host f32, raster order (row-major patches).
 * cpu: a host backend for the distance GEMM (the "cpu" backend uses its BLAS
 * and threads). With add_position_embedding the 2-D embedding is added to a
 * copy first. Errors (SETOK_ERR_INPUT): sizes < 1, k outside [1, N],
 * min_clusters < 1 or > N, max_clusters < min_clusters, fixed_k outside
 * [1, N], a non-finite feature. */
SETOK_API setok_status setok_cluster(setok_clusters *out, setok_backend *cpu, const float *features,
                           int grid_h, int grid_w, int d, const setok_cluster_params *params,
                           bool add_position_embedding, setok_error *err);
SETOK_API void setok_clusters_free(setok_clusters *c);

/* Per-pixel labels on an image: setok_labels_upsample (masks.h). */

/* out [h * w, d] = the official PositionalEncoding2D (see the top of this file). */
SETOK_API setok_status setok_position_embedding_2d(float *out, int h, int w, int d, setok_error *err);

/* out [n_tokens, d] = mean of each token's features (soft: mask-weighted mean);
 * a token with no patch gets zeros. features: [n_patches, d] host f32. */
SETOK_API setok_status setok_tokens_average(float *out, const float *features, int d,
                                  const setok_clusters *c, setok_error *err);

// ----------------------------------------------------------------------------
// cluster merger

/* The setok/ component: config.json + model.safetensors, as written by
 * tools/setokim/setok.py (SetokMerger.save_pretrained). config.json:
 *   "architectures": ["SetokMerger"]
 *   "hidden_size"        d, the feature width (= the vision tower's)
 *   "num_heads"          attention heads (paper: 2); d % num_heads == 0
 *   "intra_layers"       blocks within each cluster (official inner_encoder)
 *   "inter_layers"       blocks across the pooled tokens (official inter_encoder)
 *   "intermediate_size"  MLP width (official dim_feedforward); or "mlp_ratio" x d
 *   "output_size"        token width after the output linear
 *   "layer_norm_eps"     default 1e-5; "hidden_act" default "gelu" (erf);
 *                        also "gelu_pytorch_tanh", "quick_gelu", "silu"
 *   "qkv_bias"           default true
 *   "position_embedding" add the 2-D embedding to the merger input, default true
 *   optional clustering defaults: "cluster_mode" ("dpc"), "cluster_k" (64),
 *   "cluster_threshold" (0.55), "min_clusters" (1), "max_clusters" (0), "fixed_k"
 * Weights (P = "intra.{i}" or "inter.{i}"), Linear weights [out, in]:
 *   P.norm1.{weight,bias} [d]        P.attn.qkv.{weight [3d, d], bias [3d]}
 *   P.attn.proj.{weight [d, d],bias} P.norm2.{weight,bias} [d]
 *   P.mlp.fc1.{weight [I, d], bias}  P.mlp.fc2.{weight [d, I], bias}
 *   out.{weight [output_size, d], bias [output_size]}
 * A block is pre-LN: x += proj(attn(qkv(norm1(x)))); x += fc2(act(fc1(norm2(x)))).
 * qkv rows are [q; k; v], each head's channels contiguous (timm Attention).
 * Forward: x = features (+ PE); intra blocks within each cluster (attention
 * restricted to the cluster's patches); u_t = mean over the cluster; inter
 * blocks over u [n_tokens, d]; out linear. The official Block shares norm1
 * between its attention sublayers and has one MLP per stack; this one is the
 * paper's (each block has its own norms and MLP). */
typedef struct setok_merger_config {
    int hidden_size, num_heads, intra_layers, inter_layers, intermediate_size, output_size;
    float layer_norm_eps;
    setok_op act;             /* SETOK_OP_GELU, GELU_TANH, QUICK_GELU or SILU */
    bool qkv_bias;
    bool position_embedding;
    setok_cluster_params cluster;
} setok_merger_config;

typedef struct setok_merger setok_merger;

/* dir: the component folder. Weights are converted to dtype (f32, f16, bf16)
 * on backend; activations use the same dtype. */
SETOK_API setok_status setok_merger_load(setok_merger **out, const char *dir, setok_backend *backend,
                               setok_dtype dtype, setok_error *err);
SETOK_API void setok_merger_free(setok_merger *m);
SETOK_API const setok_merger_config *setok_merger_get_config(const setok_merger *m);
/* Arena bytes one forward over n_patches features and n_tokens tokens needs. */
SETOK_API size_t setok_merger_arena_bytes(const setok_merger *m, int n_patches, int n_tokens);

/* out: [n_tokens, output_size] in the merger's dtype, allocated from arena (on
 * the merger's backend). features: [n_patches, hidden_size] on that backend,
 * f32 or the merger's dtype, without the position embedding. Soft clusters use
 * their hard labels. */
SETOK_API setok_status setok_merger_forward(setok_merger *m, setok_arena *arena, setok_tensor *out,
                                  const setok_tensor *features, const setok_clusters *c,
                                  setok_error *err);
/* The same from host f32 to host f32 (out [n_tokens, output_size]), with an
 * arena of its own: for the CLI, tests and ctypes. */
SETOK_API setok_status setok_merger_forward_host(setok_merger *m, float *out, const float *features,
                                       const setok_clusters *c, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
