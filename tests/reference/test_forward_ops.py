#!/usr/bin/env python3
"""test_forward_ops.py — every op of `setok forward` against PyTorch, or numpy, in float64.

Each case writes its inputs to a safetensors file, runs `SETOK_CLI forward --op NAME`, reads
the outputs back and compares them with a float64 reference: the torch.nn.functional
function where torch imports, otherwise a short numpy formula (--numpy forces those).
Shapes and values are drawn afresh each run; the seed is printed and --seed repeats a run.
A float output passes when max|got - ref| / max|ref| <= 1e-5 (f32) or 2e-3 (--dtype f16);
indices must match exactly. Some cases also run on --device cpu-reference and with
--dtype f16, and the CLI's errors are checked (exit codes, messages, no crash).
Usage: test_forward_ops.py [SETOK_CLI] [--seed N] [--numpy]
Exit 0 when all pass, 1 on a failure, 77 when numpy is missing.
"""
import argparse
import collections
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

TOLERANCE = {"f32": 1e-5, "f16": 2e-3}

# The CLI's parameter defaults (cmd-forward.c); scale None means "the op's own default".
DEFAULTS = {
    "alpha": 1.0, "scale": None, "bias": 0.0, "eps": float(np.float32(1e-5)), "theta": 10000.0,
    "freq_scale": 1.0, "trans_a": 0, "trans_b": 0, "groups": 32, "causal": 0, "rot_dims": 0,
    "stride": 1, "pad": 0, "factor": 2, "align_corners": 0, "k": 1, "size": None, "perm": None,
    "dtype": None,
}


def opt(value, default):
    return default if value is None else value


def axes(text):
    """'0,2,1,3' -> (0, 2, 1, 3); also parses size 'HxW'."""
    return tuple(int(v) for v in re.split("[,x]", text))


# ---- safetensors, just enough of it ---------------------------------------------------------

ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
             "I32": np.int32}
ST_NAMES = {np.dtype(t): name for name, t in ST_DTYPES.items()}


def write_safetensors(path, tensors):
    """tensors: name -> array; uint16 arrays are written as BF16 bit patterns."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        kind = "BF16" if arr.dtype == np.uint16 else ST_NAMES[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": kind, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw)
    header, base, out = json.loads(raw[8:8 + n]), 8 + n, {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        dtype = np.dtype(ST_DTYPES[e["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(raw[base + begin:base + end], dtype).reshape(e["shape"])
    return out


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns (truncated: the test only needs exact bf16 values)."""
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def engine_value(arr, dtype):
    """The float64 value the engine computes on: file floats become f32, then the run's dtype."""
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    if arr.dtype.kind == "i":
        return arr.astype(np.int64)
    arr = arr.astype(np.float32)
    return (arr.astype(np.float16) if dtype == "f16" else arr).astype(np.float64)


# ---- references: one method per op, taking inputs d (float64 / int64) and params p ---------

def glu(d, act):
    """Two inputs: act(gate) * value; split form: x [..., 2H] -> x[..., :H] * act(x[..., H:])."""
    if "value" in d:
        return act(d["gate"]) * d["value"]
    h = d["x"].shape[-1] // 2
    return d["x"][..., :h] * act(d["x"][..., h:])


def cubic_weights(t):
    """PyTorch's bicubic (A = -0.75) weights of the taps at offsets -1, 0, 1, 2 from floor."""
    a = -0.75
    near = lambda s: ((a + 2) * s - (a + 3)) * s * s + 1
    far = lambda s: ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic_matrix(n_in, n_out, align_corners):
    """[n_out, n_in] weights of PyTorch's 1-D bicubic pass, border taps clamped."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = (o + 0.5) * n_in / n_out - 0.5
        i0 = math.floor(src)
        for j, w in enumerate(cubic_weights(src - i0)):
            m[o, min(max(i0 - 1 + j, 0), n_in - 1)] += w
    return m


class NumpyRef:
    name = "numpy"
    erf = np.vectorize(math.erf)

    def run(self, op, d, p):
        return getattr(self, op)(d, p)

    def matmul(self, d, p):
        a, b = d["a"], d["b"]
        a = a.swapaxes(-1, -2) if p["trans_a"] else a
        b = b.swapaxes(-1, -2) if p["trans_b"] else b
        return p["alpha"] * (a @ b) + d.get("bias", 0.0)

    def add(self, d, p):
        return d["a"] + d["b"]

    def mul(self, d, p):
        return d["a"] * d["b"]

    def scale(self, d, p):
        return d["x"] * opt(p["scale"], 1.0) + p["bias"]

    def layernorm(self, d, p):
        x = d["x"]
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + p["eps"]) * d.get("weight", 1.0) + d.get("bias", 0.0)

    def rmsnorm(self, d, p):
        x = d["x"]
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + p["eps"]) * d.get("weight", 1.0)

    def groupnorm(self, d, p):
        x = d["x"]
        c = x.shape[1]
        g = x.reshape(x.shape[0], p["groups"], -1)
        g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + p["eps"])
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        return (g.reshape(x.shape) * d.get("weight", np.ones(c)).reshape(per_channel)
                + d.get("bias", np.zeros(c)).reshape(per_channel))

    @staticmethod
    def masked_softmax(s, causal):
        """Softmax over the last axis; causal keeps key j for query i when j <= i + Tk - Tq;
        a row with no finite score gives 0."""
        tq, tk = (s.shape[-2] if s.ndim > 1 else 1), s.shape[-1]
        if causal:
            s = np.where(np.tril(np.ones((tq, tk), bool), tk - tq), s, -np.inf)
        m = s.max(-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
        total = e.sum(-1, keepdims=True)
        return np.divide(e, total, out=np.zeros_like(e), where=total > 0)

    def softmax(self, d, p):
        return self.masked_softmax(d["x"] * opt(p["scale"], 1.0) + d.get("mask", 0.0),
                                   p["causal"])

    def gelu_of(self, x):
        return 0.5 * x * (1.0 + self.erf(x / math.sqrt(2.0)))

    @staticmethod
    def silu_of(x):
        return x / (1.0 + np.exp(-x))

    def gelu(self, d, p):
        return self.gelu_of(d["x"])

    def gelu_tanh(self, d, p):
        x = d["x"]
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    def quick_gelu(self, d, p):
        return d["x"] / (1.0 + np.exp(-1.702 * d["x"]))

    def silu(self, d, p):
        return self.silu_of(d["x"])

    def relu(self, d, p):
        return np.maximum(d["x"], 0.0)

    def swiglu(self, d, p):
        return glu(d, self.silu_of)

    def geglu(self, d, p):
        return glu(d, self.gelu_of)

    def rope(self, d, p):
        x = d["x"]
        rot = p["rot_dims"] or x.shape[-1]
        inv_freq = d.get("inv_freq")
        if inv_freq is None:
            inv_freq = 1.0 / p["theta"] ** (np.arange(0, rot, 2) / rot)
        freqs = np.outer(d["positions"] * p["freq_scale"], inv_freq)
        emb = np.concatenate([freqs, freqs], -1)
        xr, half = x[..., :rot], rot // 2
        rotated = np.concatenate([-xr[..., half:], xr[..., :half]], -1)
        return np.concatenate([xr * np.cos(emb) + rotated * np.sin(emb), x[..., rot:]], -1)

    def attention(self, d, p):
        q, k, v = d["q"], d["k"], d["v"]
        groups = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, groups, 1), np.repeat(v, groups, 1)
        s = q @ k.swapaxes(-1, -2) * opt(p["scale"], 1.0 / math.sqrt(q.shape[-1]))
        return self.masked_softmax(s + d.get("mask", 0.0), p["causal"]) @ v

    def conv2d(self, d, p):
        x, w, s, pad = d["x"], d["weight"], p["stride"], p["pad"]
        oc, _, kh, kw = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        oh, ow = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
        window = lambda i, j: xp[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
        y = sum(np.einsum("nchw,oc->nohw", window(i, j), w[:, :, i, j])
                for i in range(kh) for j in range(kw))
        return y + d.get("bias", np.zeros(oc)).reshape(1, oc, 1, 1)

    def conv_transpose2d(self, d, p):
        x, w, s = d["x"], d["weight"], p["stride"]
        n, _, h, wd = x.shape
        oc, kh, kw = w.shape[1:]
        y = np.zeros((n, oc, (h - 1) * s + kh, (wd - 1) * s + kw))
        for i in range(kh):
            for j in range(kw):
                y[:, :, i:i + s * (h - 1) + 1:s, j:j + s * (wd - 1) + 1:s] += np.einsum(
                    "nchw,co->nohw", x, w[:, :, i, j])
        return y + d.get("bias", np.zeros(oc)).reshape(1, oc, 1, 1)

    def upsample_nearest(self, d, p):
        return d["x"].repeat(p["factor"], 2).repeat(p["factor"], 3)

    def get_rows(self, d, p):
        return d["weight"][d["ids"]]

    def resize_bicubic(self, d, p):
        x = d["x"]
        (oh, ow), ac = axes(p["size"]), p["align_corners"]
        return np.einsum("oh,nchw,pw->ncop", bicubic_matrix(x.shape[2], oh, ac), x,
                         bicubic_matrix(x.shape[3], ow, ac))

    def argmax(self, d, p):
        return np.argmax(d["x"], -1)

    def topk(self, d, p):
        order = np.argsort(-d["x"], -1, kind="stable")[..., :p["k"]]
        return {"values": np.take_along_axis(d["x"], order, -1), "indices": order}

    def copy(self, d, p):
        y = d["x"].transpose(axes(p["perm"])) if p["perm"] else d["x"]
        return y.astype(np.float16).astype(np.float64) if p["dtype"] == "f16" else y


class TorchRef:
    """The same ops as NumpyRef, as the PyTorch functions a model would call."""

    def __init__(self):
        self.name = f"PyTorch {torch.__version__}"

    def run(self, op, d, p):
        out = getattr(self, op)({k: torch.from_numpy(v) for k, v in d.items()}, p)
        if isinstance(out, dict):
            return {k: v.numpy() for k, v in out.items()}
        return out.numpy()

    def matmul(self, d, p):
        a, b = d["a"], d["b"]
        a = a.transpose(-1, -2) if p["trans_a"] else a
        if p["trans_b"] and b.dim() == 2:
            y = F.linear(a, b)  # the linear layer: x W^T
        else:
            y = torch.matmul(a, b.transpose(-1, -2) if p["trans_b"] else b)
        return p["alpha"] * y + d.get("bias", 0.0)

    def add(self, d, p):
        return torch.add(d["a"], d["b"])

    def mul(self, d, p):
        return torch.mul(d["a"], d["b"])

    def scale(self, d, p):
        return d["x"] * opt(p["scale"], 1.0) + p["bias"]

    def layernorm(self, d, p):
        x = d["x"]
        return F.layer_norm(x, x.shape[-1:], d.get("weight"), d.get("bias"), p["eps"])

    def rmsnorm(self, d, p):
        x, w = d["x"], d.get("weight")
        if hasattr(F, "rms_norm"):
            return F.rms_norm(x, x.shape[-1:], w, p["eps"])
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + p["eps"])  # LlamaRMSNorm
        return y if w is None else y * w

    def groupnorm(self, d, p):
        return F.group_norm(d["x"], p["groups"], d.get("weight"), d.get("bias"), p["eps"])

    @staticmethod
    def causal_mask(tq, tk):
        """Additive [Tq, Tk]: 0 where key j is visible to query i (j <= i + Tk - Tq), else -inf."""
        keep = torch.ones(tq, tk, dtype=torch.float64).tril(diagonal=tk - tq)
        return torch.zeros(tq, tk, dtype=torch.float64).masked_fill(keep == 0, float("-inf"))

    def softmax(self, d, p):
        s = d["x"] * opt(p["scale"], 1.0) + d.get("mask", 0.0)
        if p["causal"]:
            s = s + self.causal_mask(*s.shape[-2:])
        return torch.nan_to_num(torch.softmax(s, -1), nan=0.0)  # rows with no key: 0

    def gelu(self, d, p):
        return F.gelu(d["x"])

    def gelu_tanh(self, d, p):
        return F.gelu(d["x"], approximate="tanh")

    def quick_gelu(self, d, p):
        return d["x"] * torch.sigmoid(1.702 * d["x"])

    def silu(self, d, p):
        return F.silu(d["x"])

    def relu(self, d, p):
        return F.relu(d["x"])

    def swiglu(self, d, p):
        return glu(d, F.silu)

    def geglu(self, d, p):
        return glu(d, F.gelu)

    def rope(self, d, p):
        # transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb, partial rotary as in GPT-NeoX
        x = d["x"]
        rot = p["rot_dims"] or x.shape[-1]
        inv_freq = d.get("inv_freq")
        if inv_freq is None:
            inv_freq = 1.0 / (p["theta"] ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
        freqs = torch.outer(d["positions"].double() * p["freq_scale"], inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        x_rot, x_pass = x[..., :rot], x[..., rot:]
        rotate_half = torch.cat((-x_rot[..., rot // 2:], x_rot[..., :rot // 2]), dim=-1)
        return torch.cat((x_rot * emb.cos() + rotate_half * emb.sin(), x_pass), dim=-1)

    def attention(self, d, p):
        q, k, v = d["q"], d["k"], d["v"]
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        tq, tk = q.shape[2], k.shape[2]
        bias = torch.zeros(tq, tk, dtype=torch.float64) + d.get("mask", 0.0)
        if p["causal"]:
            bias = bias + self.causal_mask(tq, tk)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=p["scale"])

    def conv2d(self, d, p):
        return F.conv2d(d["x"], d["weight"], d.get("bias"), stride=p["stride"], padding=p["pad"])

    def conv_transpose2d(self, d, p):
        return F.conv_transpose2d(d["x"], d["weight"], d.get("bias"), stride=p["stride"])

    def upsample_nearest(self, d, p):
        return F.interpolate(d["x"], scale_factor=p["factor"], mode="nearest")

    def get_rows(self, d, p):
        return F.embedding(d["ids"], d["weight"])

    def resize_bicubic(self, d, p):
        return F.interpolate(d["x"], size=axes(p["size"]), mode="bicubic",
                             align_corners=bool(p["align_corners"]))

    def argmax(self, d, p):
        return torch.argmax(d["x"], dim=-1)

    def topk(self, d, p):
        # a stable sort, because torch.topk leaves the order of ties unspecified
        values, indices = torch.sort(d["x"], dim=-1, descending=True, stable=True)
        return {"values": values[..., :p["k"]], "indices": indices[..., :p["k"]]}

    def copy(self, d, p):
        y = d["x"].permute(*axes(p["perm"])) if p["perm"] else d["x"]
        return y.to(torch.float16).double() if p["dtype"] == "f16" else y


# ---- the cases ------------------------------------------------------------------------------

# paths: extra (device, dtype) runs besides ("cpu", "f32").
Case = collections.namedtuple("Case", "label op inputs params paths")
REF_PATH, F16_PATH = ("cpu-reference", "f32"), ("cpu", "f16")


def build_cases(rng):
    cases = []

    def add(label, op, inputs, paths=(), **params):
        cases.append(Case(label, op, inputs, params, paths))

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def dim(lo, hi):
        return int(rng.integers(lo, hi + 1))

    def odd(lo, hi):
        return dim(lo // 2, (hi - 1) // 2) * 2 + 1

    def f32(lo, hi):
        return float(np.float32(rng.uniform(lo, hi)))

    def additive_mask(*shape):
        """Random additive mask with some -inf, keeping column 0 open so no row is empty."""
        m = randn(*shape)
        m[rng.random(shape) < 0.3] = -np.inf
        m[..., 0] = 0.0
        return m

    # matmul
    m, k, n, b = odd(1, 71), odd(1, 131), dim(1, 90), dim(2, 4)
    add("matmul a @ b + bias", "matmul", {"a": randn(m, k), "b": randn(k, n), "bias": randn(n)},
        paths=(F16_PATH,))
    add("matmul trans_a, alpha", "matmul", {"a": randn(k, m), "b": randn(k, n)},
        trans_a=1, alpha=f32(-2, 2))
    add("matmul trans_b (linear) + bias", "matmul",
        {"a": randn(m, k), "b": randn(n, k), "bias": randn(n)}, trans_b=1)
    add("matmul trans_a trans_b, alpha", "matmul", {"a": randn(k, m), "b": randn(n, k)},
        trans_a=1, trans_b=1, alpha=f32(-2, 2))
    add("matmul batched", "matmul", {"a": randn(b, m, k), "b": randn(b, k, n), "bias": randn(n)})
    add("matmul batched, shared 2-D b, trans_b", "matmul", {"a": randn(b, m, k), "b": randn(n, k)},
        paths=(REF_PATH,), trans_b=1)
    add("matmul batched trans_a trans_b, alpha", "matmul",
        {"a": randn(b, k, m), "b": randn(b, n, k)}, trans_a=1, trans_b=1, alpha=f32(0.1, 2))
    m, k, n = dim(120, 200), dim(200, 320), dim(100, 200)
    add("matmul large", "matmul", {"a": randn(m, k), "b": randn(n, k), "bias": randn(n)},
        trans_b=1)

    # add, mul: b broadcast onto a [N, C, H, W] under NumPy's rule
    shape = (dim(1, 3), dim(1, 5), odd(1, 9), odd(1, 17))
    _, c, h, w = shape
    for op, b_shapes in (("add", [(w,), (c, 1, 1), shape]), ("mul", [(h, 1), (1, c, 1, w), (1,)])):
        for bs in b_shapes:
            add(f"{op} b{list(bs)} onto a", op, {"a": randn(*shape), "b": randn(*bs)})
    add("scale", "scale", {"x": randn(dim(1, 4), odd(1, 99))}, scale=f32(-3, 3), bias=f32(-1, 1))
    add("scale, x as F64 in the file", "scale", {"x": rng.standard_normal(odd(1, 33))},
        scale=f32(-3, 3))

    # norms
    c = odd(3, 99)
    x = randn(dim(1, 3), odd(1, 9), c) + np.float32(3.0)
    add("layernorm weight bias eps", "layernorm", {"x": x, "weight": randn(c), "bias": randn(c)},
        paths=(F16_PATH,), eps=f32(1e-6, 1e-4))
    add("layernorm no weight", "layernorm", {"x": randn(odd(1, 9), c, scale=4.0)})
    add("layernorm, x as BF16 in the file", "layernorm", {"x": bf16_bits(randn(3, c))})
    add("rmsnorm weight eps", "rmsnorm", {"x": randn(dim(1, 3), odd(1, 9), c), "weight": randn(c)},
        eps=f32(1e-6, 1e-4))
    add("rmsnorm no weight", "rmsnorm", {"x": randn(odd(1, 9), c, scale=0.1)})
    groups, cg = dim(1, 6), dim(1, 5)
    c = groups * cg
    add("groupnorm 4-D weight bias", "groupnorm",
        {"x": randn(dim(1, 3), c, odd(1, 9), odd(1, 9)), "weight": randn(c), "bias": randn(c)},
        paths=(REF_PATH,), groups=groups, eps=f32(1e-6, 1e-4))
    add("groupnorm 3-D no weight", "groupnorm", {"x": randn(2, c, odd(3, 35)) + 1}, groups=groups)
    add("groupnorm default 32 groups", "groupnorm", {"x": randn(1, 32 * dim(1, 3), odd(1, 7), 5)})

    # softmax
    bb, hh, tq, tk = dim(1, 2), dim(1, 4), odd(1, 13), odd(1, 301)
    add("softmax 1-D", "softmax", {"x": randn(odd(1, 999), scale=3.0)})
    add("softmax scale", "softmax", {"x": randn(bb, hh, tq, tk, scale=3.0)}, scale=f32(0.1, 2))
    add("softmax mask [Tq, Tk] with -inf", "softmax",
        {"x": randn(bb, hh, tq, tk), "mask": additive_mask(tq, tk)})
    tq, tk = dim(1, 12), dim(13, 40)
    add("softmax causal Tq < Tk, scale", "softmax", {"x": randn(bb, hh, tq, tk, scale=3.0)},
        paths=(REF_PATH, F16_PATH), causal=1, scale=f32(0.1, 2))
    add("softmax causal + mask [B, 1, Tq, Tk]", "softmax",
        {"x": randn(bb, hh, tq, tk), "mask": randn(bb, 1, tq, tk)}, causal=1)
    add("softmax causal Tq > Tk (rows without keys are 0)", "softmax",
        {"x": randn(hh, tk, tq)}, causal=1)

    # activations and gated units
    for op in ("gelu", "gelu_tanh", "quick_gelu", "silu", "relu"):
        add(op, op, {"x": randn(odd(1, 9), odd(1, 257), scale=3.0)},
            paths=(F16_PATH,) if op == "gelu" else ())
        add(f"{op} over [-40, 40]", op, {"x": np.linspace(-40, 40, odd(11, 301), dtype=np.float32)})
    shape = (dim(1, 3), odd(1, 9), odd(1, 129))
    add("swiglu gate value", "swiglu", {"gate": randn(*shape, scale=3.0), "value": randn(*shape)})
    add("swiglu split x", "swiglu", {"x": randn(odd(1, 9), 2 * odd(1, 65), scale=3.0)})
    add("geglu split x", "geglu", {"x": randn(dim(1, 3), odd(1, 9), 2 * odd(1, 129), scale=3.0)},
        paths=(REF_PATH,))
    add("geglu gate value", "geglu", {"gate": randn(*shape, scale=3.0), "value": randn(*shape)})

    # rope; positions stay small so that f32 angles keep 1e-5
    hh, t, hd = dim(1, 4), odd(1, 17), 2 * dim(1, 40)
    positions = (dim(0, 40) + np.arange(t)).astype(np.int64)
    add("rope 4-D, positions I64", "rope",
        {"x": randn(dim(1, 2), hh, t, hd), "positions": positions}, paths=(REF_PATH, F16_PATH))
    rot = 2 * dim(1, hd // 2)
    add(f"rope rot_dims {rot} of {hd}, freq_scale, theta", "rope",
        {"x": randn(dim(1, 2), hh, t, hd), "positions": rng.permutation(64)[:t].astype(np.int64)},
        paths=(REF_PATH,), rot_dims=rot, freq_scale=0.25, theta=500000.0)
    add("rope 3-D, positions I32, inv_freq input", "rope",
        {"x": randn(hh, t, hd), "positions": positions.astype(np.int32),
         "inv_freq": (1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)).astype(np.float32)},
        paths=(F16_PATH,))

    # attention
    bb, hkv, dk, dv = dim(1, 2), dim(1, 3), odd(1, 65), odd(1, 33)
    hq, tq, tk = hkv * dim(1, 4), odd(1, 9), odd(11, 77)

    def qkv(tq, tk, hq, hkv, dk, dv):
        return {"q": randn(bb, hq, tq, dk), "k": randn(bb, hkv, tk, dk),
                "v": randn(bb, hkv, tk, dv)}

    add("attention GQA causal Tq < Tk, Dv != D", "attention", qkv(tq, tk, hq, hkv, dk, dv),
        paths=(REF_PATH, F16_PATH), causal=1)
    add("attention GQA mask [B, 1, Tq, Tk], scale", "attention",
        {**qkv(tq, tk, hq, hkv, dk, dv), "mask": additive_mask(bb, 1, tq, tk)},
        scale=f32(0.05, 0.5))
    add("attention causal + mask [Tq, Tk], Tq = 1", "attention",
        {**qkv(1, tk, hq, hkv, dk, dv), "mask": randn(1, tk)}, causal=1)
    t = odd(1, 65)
    add("attention MHA causal Tq = Tk, D 64", "attention", qkv(t, t, 4, 4, 64, 64), causal=1)

    # convolutions
    c, oc = dim(1, 8), dim(1, 16)
    add("conv2d 3x3 pad 1 stride 2 + bias", "conv2d",
        {"x": randn(dim(1, 2), c, odd(3, 21), odd(3, 21)), "weight": randn(oc, c, 3, 3),
         "bias": randn(oc)}, paths=(REF_PATH, F16_PATH), stride=2, pad=1)
    add("conv2d 3x3 pad 1 stride 1", "conv2d",
        {"x": randn(1, c, odd(1, 15), odd(1, 15)), "weight": randn(oc, c, 3, 3)}, pad=1)
    add("conv2d 1x1 + bias", "conv2d",
        {"x": randn(2, c, odd(1, 9), odd(1, 9)), "weight": randn(oc, c, 1, 1), "bias": randn(oc)})
    add("conv2d 5x3 stride 3 pad 2", "conv2d",
        {"x": randn(1, c, odd(5, 19), odd(5, 19)), "weight": randn(oc, c, 5, 3)}, stride=3, pad=2)
    e = dim(4, 48)
    add("conv2d 14x14 stride 14 patch embedding", "conv2d",
        {"x": randn(1, 3, 14 * dim(1, 4), 14 * dim(1, 4)), "weight": randn(e, 3, 14, 14) * 0.1,
         "bias": randn(e)}, stride=14)
    add("conv_transpose2d 2x2 stride 2 + bias", "conv_transpose2d",
        {"x": randn(dim(1, 2), c, odd(1, 9), odd(1, 11)), "weight": randn(c, oc, 2, 2),
         "bias": randn(oc)}, paths=(REF_PATH,), stride=2)
    add("conv_transpose2d 3x3 stride 2 (overlapping)", "conv_transpose2d",
        {"x": randn(1, c, odd(1, 7), odd(1, 7)), "weight": randn(c, oc, 3, 3)}, stride=2)
    add("conv_transpose2d 3x3 stride 1", "conv_transpose2d",
        {"x": randn(1, c, odd(1, 7), odd(1, 7)), "weight": randn(c, oc, 3, 3), "bias": randn(oc)})

    # resampling and gathers
    x = randn(dim(1, 2), dim(1, 3), odd(1, 9), odd(1, 13))
    add("upsample_nearest factor 2 (default)", "upsample_nearest", {"x": x})
    add("upsample_nearest factor 3", "upsample_nearest", {"x": x}, factor=3)
    v, hd = odd(3, 101), odd(1, 65)
    add("get_rows ids I64 [a, b]", "get_rows",
        {"weight": randn(v, hd), "ids": rng.integers(0, v, (dim(1, 4), odd(1, 9)))})
    add("get_rows ids I32 [n]", "get_rows",
        {"weight": randn(v, hd), "ids": rng.integers(0, v, odd(1, 33)).astype(np.int32)})
    add("get_rows ids I64 [a, b, c]", "get_rows",
        {"weight": randn(v, hd), "ids": rng.integers(0, v, (2, dim(1, 3), odd(1, 5)))})
    x = randn(dim(1, 2), dim(1, 3), odd(2, 13), odd(2, 17))
    up, down = (dim(14, 40), dim(18, 40)), (dim(1, 5), dim(1, 7))
    for ac in (0, 1):
        add(f"resize_bicubic up, align_corners {ac}", "resize_bicubic", {"x": x},
            paths=(REF_PATH, F16_PATH) if ac == 0 else (), size="%dx%d" % up, align_corners=ac)
        add(f"resize_bicubic down, align_corners {ac}", "resize_bicubic", {"x": x},
            size="%dx%d" % down, align_corners=ac)
    add("resize_bicubic to 1 x W, align_corners 1", "resize_bicubic", {"x": x},
        size=f"1x{dim(1, 20)}", align_corners=1)

    # reductions: distinct values, and small integers for ties (lowest index wins)
    add("argmax", "argmax", {"x": randn(dim(1, 3), odd(1, 9), odd(1, 1001))})
    add("argmax with ties", "argmax",
        {"x": rng.integers(0, 4, (odd(1, 15), odd(1, 33))).astype(np.float32)})
    c = odd(1, 301)
    add("topk", "topk", {"x": randn(odd(1, 9), c)}, paths=(REF_PATH,), k=dim(1, min(c, 20)))
    add("topk with ties", "topk", {"x": rng.integers(0, 5, (odd(1, 9), 40)).astype(np.float32)},
        k=dim(1, 40))
    add("topk k = C", "topk", {"x": randn(2, c)}, k=c)

    # copy
    x = randn(dim(1, 3), odd(1, 7), dim(2, 9), odd(1, 15))
    add("copy perm=0,2,1,3", "copy", {"x": x}, paths=(REF_PATH,), perm="0,2,1,3")
    add("copy perm=3,1,0,2", "copy", {"x": x}, perm="3,1,0,2")
    add("copy perm=2,0,1 (3-D)", "copy", {"x": x[0]}, perm="2,0,1")
    add("copy dtype=f16", "copy", {"x": x * 100}, dtype="f16")
    add("copy perm=0,2,1,3 dtype=f16", "copy", {"x": x}, perm="0,2,1,3", dtype="f16")
    return cases


# ---- running and comparing ------------------------------------------------------------------

CLI, TMP, REF = None, None, None
passed, failed = 0, 0
max_err = {}  # (op, device, dtype) -> worst relative max abs error


def report(ok, what, detail=""):
    global passed, failed
    ok = bool(ok)
    passed, failed = passed + ok, failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)


def run_forward(op, inputs, params=None, device=None, dtype=None, out_path=None):
    """Runs `setok forward` on inputs; returns (CompletedProcess, outputs or None)."""
    in_path = os.path.join(TMP, "in.safetensors")
    out_path = out_path or os.path.join(TMP, "out.safetensors")
    write_safetensors(in_path, inputs)
    if os.path.exists(out_path):
        os.remove(out_path)
    cmd = [CLI, "forward", "--op", op, "--inputs", in_path, "--outputs", out_path]
    cmd += ["--device", device] if device else []
    cmd += ["--dtype", dtype] if dtype else []
    for key, value in (params or {}).items():
        cmd += ["--set", f"{key}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return proc, read_safetensors(out_path) if proc.returncode == 0 else None


def relative_error(got, want):
    """max|got - want| / max|want| and where the max difference is."""
    diff = np.abs(got.astype(np.float64) - want)
    where = tuple(int(v) for v in np.unravel_index(np.argmax(diff), diff.shape))
    return float(diff.max()) / max(float(np.abs(want).max()), 1e-30), where


def shapes(inputs):
    return " ".join(f"{k}{list(v.shape)}" + (f":{v.dtype}" if v.dtype.kind == "i" else "")
                    for k, v in inputs.items())


def check_case(c, device="cpu", dtype="f32"):
    label = f"{c.label} [{device} {dtype}] {shapes(c.inputs)}"
    f16 = dtype == "f16"
    files = {k: v.astype(np.float16) if f16 and v.dtype == np.float32 else v
             for k, v in c.inputs.items()}
    try:
        proc, outs = run_forward(c.op, files, c.params, device, dtype)
    except subprocess.TimeoutExpired:
        return report(False, label, "timed out after 60 s")
    if proc.returncode != 0:
        return report(False, label, f"exit {proc.returncode}: {proc.stderr.strip()}")
    want = REF.run(c.op, {k: engine_value(v, dtype) for k, v in files.items()},
                   {**DEFAULTS, **c.params})
    want = want if isinstance(want, dict) else {"y": want}
    worst, problems = None, []  # worst stays None when every output is an index tensor
    for name, w in want.items():
        got = outs.get(name)
        if got is None or got.shape != w.shape:
            problems.append(f"{name} has shape {None if got is None else got.shape}, "
                            f"expected {w.shape}")
        elif w.dtype.kind in "iu":
            bad = np.argwhere(got != w)
            if len(bad):
                i = tuple(int(v) for v in bad[0])
                problems.append(f"{len(bad)} {name} differ, first at {list(i)}: got {got[i]}, "
                                f"expected {w[i]}")
        elif not np.all(np.isfinite(got)):
            problems.append(f"{name} has non-finite values")
        else:
            err, i = relative_error(got, w)
            worst = max(worst or 0.0, err)
            if err > TOLERANCE[dtype]:
                problems.append(f"{name} rel err {err:.2e} > {TOLERANCE[dtype]:g}, worst at "
                                f"{list(i)}: got {got[i]:.7g}, expected {w[i]:.7g}")
    key = (c.op, device, dtype)
    if worst is not None:
        max_err[key] = max(max_err.get(key) or 0.0, worst)
    else:
        max_err.setdefault(key, None)
    report(not problems, label,
           "; ".join(problems) or ("exact" if worst is None else f"max rel err {worst:.2e}"))


def check_error(what, op, inputs, params=None, codes=(2,), pattern=None, out_path=None):
    """The CLI must fail with one of codes, and stderr must match pattern."""
    try:
        proc, _ = run_forward(op, inputs, params, out_path=out_path)
    except subprocess.TimeoutExpired:
        return report(False, what, "timed out after 60 s")
    msg = proc.stderr.strip()
    ok = proc.returncode in codes and bool(msg) and (not pattern or re.search(pattern, msg))
    report(ok, what, f"exit {proc.returncode}, '{msg.splitlines()[0] if msg else ''}'")


def test_errors(rng):
    x = rng.standard_normal((3, 8)).astype(np.float32)
    check_error("error: layernorm without x names 'x'", "layernorm", {"weight": x[0]},
                pattern=r"'x'")
    check_error("error: matmul without b names b", "matmul", {"a": x}, pattern=r"\bb\b")
    check_error("error: conv2d without weight names weight", "conv2d",
                {"x": x.reshape(1, 3, 2, 4)}, pattern=r"\bweight\b")
    check_error("error: get_rows without ids names ids", "get_rows", {"weight": x},
                pattern=r"\bids\b")
    check_error("error: attention without v names v", "attention",
                {"q": x.reshape(1, 1, 3, 8), "k": x.reshape(1, 1, 3, 8)}, pattern=r"\bv\b")
    check_error("error: unknown op", "frobnicate", {"x": x}, pattern="frobnicate")
    check_error("error: add with shapes that do not broadcast names add", "add",
                {"a": x, "b": x[:, :5]}, pattern=r"\badd\b")
    check_error("error: matmul with mismatched inner dims names matmul", "matmul",
                {"a": x, "b": x}, pattern=r"\bmatmul\b")
    check_error("error: conv2d channel mismatch names conv2d", "conv2d",
                {"x": x.reshape(1, 3, 2, 4), "weight": x.reshape(2, 4, 3, 1)},
                pattern=r"\bconv2d\b")
    check_error("error: get_rows id out of range", "get_rows",
                {"weight": x, "ids": np.array([0, 3], np.int64)}, pattern=r"get_rows")
    check_error("error: unknown --set parameter", "scale", {"x": x}, {"frobnicate": 1},
                pattern="frobnicate")
    check_error("error: --outputs in a missing directory", "scale", {"x": x}, codes=(1, 2),
                out_path=os.path.join(TMP, "no-such-dir", "out.safetensors"))


def main():
    global CLI, TMP, REF
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"),
                    help="the setok executable (default: $SETOK_CLI)")
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "little"))
    ap.add_argument("--numpy", action="store_true", help="use the numpy references even "
                    "where torch is installed")
    args = ap.parse_args()
    if not args.cli:
        print("give the setok executable as argv[1] or in SETOK_CLI")
        return 1
    CLI = args.cli
    REF = TorchRef() if torch is not None and not args.numpy else NumpyRef()
    print(f"seed {args.seed} (repeat with --seed {args.seed}); reference: {REF.name}")
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="setok-forward-") as tmp:
        TMP = tmp
        for c in build_cases(rng):
            for device, dtype in (("cpu", "f32"),) + tuple(c.paths):
                check_case(c, device, dtype)
        test_errors(rng)
    print("max relative error per op (max|got - ref| / max|ref|):")
    for (op, device, dtype), err in sorted(max_err.items()):
        print(f"  {op:17s} {device:13s} {dtype}  {'exact' if err is None else f'{err:.2e}'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
