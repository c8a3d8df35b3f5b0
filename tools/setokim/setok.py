"""setok.py — SeTok in PyTorch: clustering, the 2-D position embedding and the cluster merger.

Mirrors engine/models/setok-cluster.c and engine/models/setok-merger.c (rules and tie-breaks:
engine/include/setok/models/setok.h). Transcribed, not copied, from the official code
(ChocoWu/SeTok, src/model/setok/tokenizer.py: SetokTokenizer.cluster_dpc_knn,
group_encoding, forward; module.py: PositionalEncoding2D, Block, Attention, Mlp), with these
deliberate changes:
  * ties are broken by index, not by 1e-6 random noise on the density;
  * the densest patch's delta is its own largest distance (paper Eq. 2);
  * the fallback fires when fewer than min_clusters centres pass the threshold (the official
    code: when none pass); max_clusters caps the count;
  * merger blocks are the paper's pre-LN blocks, each with its own norms and MLP (the official
    Block shares norm1 between its attention sublayers and has a single MLP).

The clustering functions take x [N, d] (any float dtype; the tests use float64 as the exact
reference) and return a dict of tensors; SetokMerger.save_pretrained writes the setok/
component the engine loads (config.json + model.safetensors).
"""
import json
import math
import os
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

MODES = ("dpc", "soft", "fixed")


# ---- position embedding ---------------------------------------------------------------------

def position_embedding_2d(h, w, d, dtype=torch.float32, device=None):
    """The official PositionalEncoding2D(d) of an [1, h, w, d] tensor, as [h * w, d].

    C = 2 * ceil(d / 4) channels per axis: sin / cos pairs of row * f_i, then of col * f_i,
    f_i = 10000^(-2i / C); cut to d. The official code computes in float32 (inv_freq is a
    float buffer); pass dtype=torch.float64 for the exact values.
    """
    channels = int(math.ceil(d / 4) * 2)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, channels, 2, device=device).to(dtype) / channels))
    pos_x = torch.arange(h, device=device, dtype=dtype)
    pos_y = torch.arange(w, device=device, dtype=dtype)

    def sin_cos(inp):  # [n, C/2] -> [n, C], sin and cos interleaved
        return torch.stack((inp.sin(), inp.cos()), dim=-1).flatten(-2, -1)

    emb_x = sin_cos(torch.einsum("i,j->ij", pos_x, inv_freq)).unsqueeze(1)
    emb_y = sin_cos(torch.einsum("i,j->ij", pos_y, inv_freq))
    emb = torch.zeros((h, w, channels * 2), device=device, dtype=dtype)
    emb[:, :, :channels] = emb_x
    emb[:, :, channels:2 * channels] = emb_y
    return emb[:, :, :d].reshape(h * w, d)


# ---- clustering -----------------------------------------------------------------------------

def dpc_scores(x, k):
    """Distances, densities and scores of cluster_dpc_knn.

    x [N, d] -> dict(dist [N, N] = L2 / sqrt(d), density [N], delta [N], score [N]).
    j is denser than i when density_j > density_i, or equal and j < i (index tie-break).
    """
    n, c = x.shape
    dist_matrix = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / (c ** 0.5)
    dist_nearest, _ = torch.topk(dist_matrix, k=k, dim=-1, largest=False)
    density = (-(dist_nearest ** 2).mean(dim=-1)).exp()

    index = torch.arange(n, device=x.device)
    denser = (density[None, :] > density[:, None]) | (
        (density[None, :] == density[:, None]) & (index[None, :] < index[:, None]))
    dist_max = dist_matrix.max(dim=-1).values[:, None]  # each patch's largest distance
    delta = torch.where(denser, dist_matrix, dist_max).min(dim=-1).values
    return dict(dist=dist_matrix, density=density, delta=delta, score=delta * density)


def _top_by_score(score, count):
    """The `count` best patches by score (ties: lower index), sorted by index."""
    order = torch.sort(score, descending=True, stable=True).indices
    return torch.sort(order[:count]).values


def _assign(dist_matrix, index_down):
    """Every patch joins its nearest centre (argmin: the first, i.e. lower token, on ties);
    centres label themselves."""
    idx_cluster = dist_matrix[index_down, :].argmin(dim=0)
    idx_cluster[index_down] = torch.arange(index_down.numel(), device=index_down.device)
    return idx_cluster


def cluster_dpc_knn(x, k, threshold, min_clusters=1, max_clusters=0):
    """Density-peak clustering (official cluster_dpc_knn). x [N, d] ->
    dict(centres [T] patch indices ascending, labels [N], score, density, delta, dist)."""
    s = dpc_scores(x, k)
    count = int((s["score"] > threshold).sum())
    count = max(count, min_clusters)
    if max_clusters > 0:
        count = min(count, max_clusters)
    index_down = _top_by_score(s["score"], count)
    return dict(s, centres=index_down, labels=_assign(s["dist"], index_down))


def cluster_fixed(x, k, fixed_k):
    """Fixed-k baseline (paper Table 5): the top fixed_k centres by score, then as DPC."""
    s = dpc_scores(x, k)
    index_down = _top_by_score(s["score"], fixed_k)
    return dict(s, centres=index_down, labels=_assign(s["dist"], index_down))


def cluster_soft(x, k, threshold, min_clusters=1, max_clusters=0):
    """Soft clustering (paper Algorithm 1). Seeds by argmax(score * scope) (ties: lower
    index); alpha = exp(-D^2 * k * ln 2); mask = scope * alpha; scope *= 1 - alpha. Stops when
    the best seed's score * scope <= threshold (once min_clusters - 1 seeds exist) or is 0, or
    at max_clusters - 1 seeds (N - 1 without a cap); the remaining scope is the last mask.
    -> dict(centres [T] (-1 for the last mask), masks [T, N], labels [N], score, ...)."""
    s = dpc_scores(x, k)
    n = x.shape[0]
    scope = torch.ones(n, dtype=x.dtype, device=x.device)
    max_seeds = max_clusters - 1 if max_clusters > 0 else n - 1
    masks, seeds = [], []
    while len(seeds) < max_seeds:
        weighted = s["score"] * scope
        seed = int(torch.argmax(weighted))
        best = float(weighted[seed])
        if best <= 0.0 or (best <= threshold and len(seeds) + 1 >= min_clusters):
            break
        alpha = torch.exp(-s["dist"][seed] ** 2 * (k * math.log(2.0)))
        masks.append(scope * alpha)
        scope = scope * (1.0 - alpha)
        seeds.append(seed)
    masks.append(scope)
    masks = torch.stack(masks)
    centres = torch.tensor(seeds + [-1], device=x.device)
    return dict(s, centres=centres, masks=masks, labels=masks.argmax(dim=0))


def cluster(x, grid_h, grid_w, mode="dpc", k=64, threshold=0.55, min_clusters=1,
            max_clusters=0, fixed_k=64, add_position_embedding=True):
    """setok_cluster: features [grid_h * grid_w, d] (+ the 2-D position embedding) -> dict."""
    if add_position_embedding:
        x = x + position_embedding_2d(grid_h, grid_w, x.shape[1], x.dtype, x.device)
    if mode == "dpc":
        return cluster_dpc_knn(x, k, threshold, min_clusters, max_clusters)
    if mode == "soft":
        return cluster_soft(x, k, threshold, min_clusters, max_clusters)
    if mode == "fixed":
        return cluster_fixed(x, k, fixed_k)
    raise ValueError(f"unknown cluster mode {mode!r}; expected one of {MODES}")


def tokens_average(features, labels, n_tokens, masks=None):
    """The paper's average mode (Table 9): [n_tokens, d] mean of each cluster's features
    (mask-weighted with soft masks); zeros for an empty token."""
    if masks is None:
        masks = F.one_hot(labels, n_tokens).T.to(features.dtype)
    weight = masks.sum(dim=1, keepdim=True)
    total = masks @ features
    return torch.where(weight > 0, total / weight.clamp_min(1e-300), torch.zeros_like(total))


# ---- cluster merger -------------------------------------------------------------------------

@dataclass
class SetokMergerConfig:
    """config.json of the setok/ component (documented in setok.h)."""
    hidden_size: int = 1024
    num_heads: int = 2
    intra_layers: int = 2
    inter_layers: int = 2
    intermediate_size: int = 4096
    output_size: int = 1024
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    qkv_bias: bool = True
    position_embedding: bool = True
    cluster_mode: str = "dpc"
    cluster_k: int = 64
    cluster_threshold: float = 0.55
    min_clusters: int = 1
    max_clusters: int = 0
    fixed_k: int = 64

    def to_dict(self):
        return {"architectures": ["SetokMerger"], "model_type": "setok_merger", **asdict(self)}

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        cfg = cls(**{key: value for key, value in d.items() if key in names})
        if "intermediate_size" not in d and "mlp_ratio" in d:
            cfg.intermediate_size = round(d["mlp_ratio"] * cfg.hidden_size)
        return cfg


def _activation(name):
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"hidden_act {name!r} is not one of gelu, gelu_pytorch_tanh, gelu_new, "
                     "quick_gelu, silu")


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """timm-style multi-head self-attention: qkv rows are [q; k; v], heads contiguous."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, attn_mask=None):  # x [B, T, C] -> [B, T, C]
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if attn_mask is not None:
            attn = attn + attn_mask
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = _activation(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: x += attn(norm1(x)); x += mlp(norm2(x))."""

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = Attention(cfg.hidden_size, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


class SetokMerger(nn.Module):
    """The cluster merger (official SetokTokenizer.group_encoding + inter_encoder + out).

    forward(features [N, d] without position embedding, labels [N] raster order, grid_h,
    grid_w, n_tokens) -> tokens [n_tokens, output_size]: intra blocks over each cluster's
    patches (raster order), mean-pool, inter blocks over the pooled tokens, output linear.
    """

    def __init__(self, cfg: SetokMergerConfig):
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(f"hidden_size {cfg.hidden_size} is not a multiple of num_heads "
                             f"{cfg.num_heads}")
        self.config = cfg
        self.intra = nn.ModuleList(Block(cfg) for _ in range(cfg.intra_layers))
        self.inter = nn.ModuleList(Block(cfg) for _ in range(cfg.inter_layers))
        self.out = nn.Linear(cfg.hidden_size, cfg.output_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):  # as the official initialize_weights
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, features, labels, grid_h, grid_w, n_tokens=None):
        x = features
        if self.config.position_embedding:
            x = x + position_embedding_2d(grid_h, grid_w, x.shape[1], x.dtype, x.device)
        n_tokens = int(labels.max()) + 1 if n_tokens is None else n_tokens
        groups = []
        for t in range(n_tokens):
            members = x[labels == t]
            if members.shape[0] == 0:  # a soft token may own no patch
                groups.append(torch.zeros_like(x[0]))
                continue
            h = members.unsqueeze(0)
            for block in self.intra:
                h = block(h)
            groups.append(h.squeeze(0).mean(dim=0))
        u = torch.stack(groups).unsqueeze(0)
        for block in self.inter:
            u = block(u)
        return self.out(u.squeeze(0))

    def save_pretrained(self, path):
        """config.json + model.safetensors, the layout setok_merger_load reads."""
        from safetensors.torch import save_file
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.config.to_dict(), f, indent=2)
            f.write("\n")
        state = {name: t.detach().contiguous().cpu() for name, t in self.state_dict().items()}
        save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32):
        from safetensors.torch import load_file
        with open(os.path.join(path, "config.json")) as f:
            cfg = SetokMergerConfig.from_dict(json.load(f))
        model = cls(cfg)
        model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
        return model.to(dtype)
