"""stem.py — the convolutional-stem vision tower: a CLIPVisionModel whose patch embedding is a
small stack of strided convolutions instead of one patch-sized convolution.

A patch-sized convolution sees each 8 x 8 patch on its own, through one linear map, and a tiny
ViT trained for minutes does not learn to tell shapes apart from that. A stem of k x k,
stride-2 convolutions (each followed by BatchNorm and an activation while training) and a 1 x 1
projection to the hidden size ("Early Convolutions Help Transformers See Better", Xiao et al.,
2021) gives every patch token a receptive field across its neighbours and learns shape within
the budget. Everything after the stem (class token, position embedding, pre_layrnorm, encoder)
is transformers' CLIPVisionModel unchanged.

Folder layout (what the engine's vit.c / vit-stem.c read): config.json is a CLIPVisionConfig
(architectures ["CLIPVisionModel"], model_type clip_vision_model) plus

    "conv_stem": {"channels": [32, 64, 128], "kernel_size": 3, "stride": 2, "hidden_act": "relu"}

with patch_size == stride ** len(channels); convolution i has padding kernel_size // 2. The
weights replace embeddings.patch_embedding.weight by

    embeddings.conv_stem.convs.{i}.weight  [channels[i], channels[i-1] (num_channels), k, k]
    embeddings.conv_stem.convs.{i}.bias    [channels[i]]
    embeddings.conv_stem.proj.weight       [hidden_size, channels[-1], 1, 1]
    embeddings.conv_stem.proj.bias         [hidden_size]

with the BatchNorm statistics folded into the convolutions (a bundle has no BatchNorm).
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = ("relu", "gelu", "silu")
STORED_PREFIX = "embeddings.conv_stem."
MODULE_PREFIX = "embeddings.patch_embedding."


class ConvStem(nn.Module):
    """[B, num_channels, H, W] -> [B, hidden, H / stride^n, W / stride^n]: n k x k convolutions
    of stride `stride` (BatchNorm when batch_norm, then the activation), a 1 x 1 projection."""

    def __init__(self, num_channels, channels, hidden_size, kernel_size=3, stride=2,
                 hidden_act="relu", batch_norm=True):
        super().__init__()
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"conv_stem hidden_act {hidden_act!r} is not one of "
                             f"{', '.join(ACTIVATIONS)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"conv_stem kernel_size must be odd, got {kernel_size}")
        self.channels = [int(c) for c in channels]
        self.kernel_size, self.stride, self.hidden_act = kernel_size, stride, hidden_act
        self.batch_norm = batch_norm
        ins = [num_channels] + self.channels[:-1]
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, kernel_size, stride, kernel_size // 2, bias=not batch_norm)
            for i, o in zip(ins, self.channels))
        self.norms = nn.ModuleList(nn.BatchNorm2d(o) if batch_norm else nn.Identity()
                                   for o in self.channels)
        self.proj = nn.Conv2d(self.channels[-1], hidden_size, 1)

    @property
    def weight(self):
        """The first convolution's weight: CLIPVisionEmbeddings reads the input dtype here."""
        return self.convs[0].weight

    def config(self):
        return {"channels": list(self.channels), "kernel_size": self.kernel_size,
                "stride": self.stride, "hidden_act": self.hidden_act}

    def forward(self, x):
        act = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}[self.hidden_act]
        for conv, norm in zip(self.convs, self.norms):
            x = act(norm(conv(x)))
        return self.proj(x)

    @torch.no_grad()
    def folded(self):
        """The same function (BatchNorm in eval mode) as a stem without BatchNorm:
        w' = w * g / sqrt(var + eps), b' = beta + (b - mean) * g / sqrt(var + eps)."""
        out = ConvStem(self.convs[0].in_channels, self.channels, self.proj.out_channels,
                       self.kernel_size, self.stride, self.hidden_act, batch_norm=False)
        out.to(self.proj.weight.dtype)
        for src, norm, dst in zip(self.convs, self.norms, out.convs):
            w = src.weight.double()
            b = src.bias.double() if src.bias is not None else torch.zeros(w.shape[0],
                                                                           dtype=torch.float64)
            if isinstance(norm, nn.BatchNorm2d):
                g = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
                w = w * g[:, None, None, None]
                b = norm.bias.double() + (b - norm.running_mean.double()) * g
            dst.weight.copy_(w)
            dst.bias.copy_(b)
        out.proj.load_state_dict(self.proj.state_dict())
        return out


def has_stem(vision):
    return isinstance(vision.embeddings.patch_embedding, ConvStem)


def new_stem_vision(vision_config, channels, kernel_size=3, stride=2, hidden_act="relu",
                    batch_norm=True):
    """A CLIPVisionModel of vision_config with a ConvStem as its patch embedding; patch_size
    must be stride ** len(channels)."""
    from transformers import CLIPVisionModel
    if stride ** len(channels) != vision_config.patch_size:
        raise ValueError(f"conv_stem: stride {stride} ** {len(channels)} layers != patch_size "
                         f"{vision_config.patch_size}")
    vision = CLIPVisionModel(vision_config)
    stem = ConvStem(vision_config.num_channels, channels, vision_config.hidden_size,
                    kernel_size, stride, hidden_act, batch_norm)
    vision.embeddings.patch_embedding = stem
    vision.config.conv_stem = stem.config()
    return vision


def save_vision(vision, path, dtype=None):
    """Write a vision folder (config.json + model.safetensors): save_pretrained for a plain
    CLIPVisionModel; for a stem tower, the stem's BatchNorm folded and its weights under
    embeddings.conv_stem. (the module in memory is unchanged)."""
    import copy
    if not has_stem(vision):
        clone = copy.deepcopy(vision).to("cpu", dtype or vision.dtype)
        clone.save_pretrained(path, safe_serialization=True)
        return
    from safetensors.torch import save_file
    stem = vision.embeddings.patch_embedding
    clone = copy.deepcopy(vision).cpu()
    clone.embeddings.patch_embedding = stem.folded().cpu()
    clone.to(dtype or torch.float32)
    state = {}
    for k, v in clone.state_dict().items():
        if k.startswith(MODULE_PREFIX):
            k = STORED_PREFIX + k[len(MODULE_PREFIX):]
        state[k] = v.detach().contiguous().clone()
    os.makedirs(path, exist_ok=True)
    cfg = clone.config.to_dict()
    cfg["architectures"] = ["CLIPVisionModel"]
    cfg["conv_stem"] = stem.config()
    cfg["dtype"] = str(dtype or torch.float32).replace("torch.", "")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def load_vision(path, dtype=torch.float32):
    """A vision folder -> CLIPVisionModel (with a ConvStem when config.json has conv_stem)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel
    with open(os.path.join(path, "config.json")) as f:
        raw = json.load(f)
    stem = raw.get("conv_stem")
    if stem is None:
        return CLIPVisionModel.from_pretrained(path, dtype=dtype)
    from safetensors.torch import load_file
    cfg = CLIPVisionConfig.from_pretrained(path)
    vision = new_stem_vision(cfg, stem["channels"], stem.get("kernel_size", 3),
                             stem.get("stride", 2), stem.get("hidden_act", "relu"),
                             batch_norm=False)
    state = {}
    for k, v in load_file(os.path.join(path, "model.safetensors")).items():
        if k.startswith(STORED_PREFIX):
            k = MODULE_PREFIX + k[len(STORED_PREFIX):]
        state[k] = v.float()
    vision.load_state_dict(state)
    return vision.to(dtype).eval()
