#!/usr/bin/env python3
"""test_qformer.py — the mapper (engine/models/qformer.c) against transformers' Blip2QFormerModel.

Builds tiny random Blip2QFormerModel configs with transformers itself — cross_attention_frequency
1 and 2, encoder_hidden_size other than and equal to hidden_size, several hidden_act values —
saves them (safetensors), with and without learnable "query_tokens" [1, Q, hidden] next to the
weights (the SETOKIM mapper convention) and bare or under a "qformer." prefix, and runs
`SETOK_CLI forward DIR` on fresh random encoder_hidden_states (and query_embeds, and an
encoder_attention_mask). last_hidden_state is compared with the model's; with query_tokens and
no query_embeds the reference runs on query_tokens broadcast over the batch. A tensor passes when
max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 and 4e-2 for bf16 on cpu-reference, the
dtype paths the CUDA backend takes). Where libsetok has a usable CUDA device, a few cases also
run with --device cuda; otherwise they are skipped. Bad inputs must fail with exit 2 (1 for a
hidden_act the engine does not run) and a message naming the problem.
Usage: test_qformer.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or transformers is missing.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import setok_ctypes
from setok_ctypes import SetokError
from checks import Results, rel_err

try:
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import Blip2QFormerConfig, Blip2QFormerModel
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 4e-2}

R = Results()


# ---- models and folders ---------------------------------------------------------------------

def tiny_qformer(gen, hidden=32, layers=2, heads=4, inter=48, encoder=24, freq=2, act="gelu"):
    cfg = Blip2QFormerConfig(hidden_size=hidden, num_hidden_layers=layers,
                             num_attention_heads=heads, intermediate_size=inter,
                             encoder_hidden_size=encoder, cross_attention_frequency=freq,
                             hidden_act=act, layer_norm_eps=1e-12, attn_implementation="eager")
    model = Blip2QFormerModel(cfg).eval()
    with torch.no_grad():  # weights with some spread (HF init leaves LayerNorms at 1 / 0)
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if "weight" in name
                                                                       else 0.0))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim == 1 else 0.2))
    return model


def write_folder(path, model, query_tokens=None, prefix="", by_model_type=False):
    """The model's config.json and model.safetensors (names under prefix), plus query_tokens."""
    os.makedirs(path, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = None if by_model_type else ["Blip2QFormerModel"]
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tensors = {prefix + k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if query_tokens is not None:
        tensors["query_tokens"] = query_tokens.contiguous()
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return path


# ---- running the CLI ------------------------------------------------------------------------

def run_cli(cli, folder, inputs, dtype="f32", device="cpu"):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in inputs.items()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--device", device,
               "--dtype", dtype]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def compare(cli, label, folder, model, enc, query=None, learned=None, mask=None, dtype="f32",
            device="cpu"):
    """Runs the CLI on enc (+ query_embeds, + mask) and checks last_hidden_state; learned is the
    folder's query_tokens, which the reference uses when query is None."""
    ref_query = query if query is not None else learned.expand(enc.shape[0], -1, -1)
    with torch.no_grad():
        want = model(query_embeds=ref_query, encoder_hidden_states=enc,
                     encoder_attention_mask=mask).last_hidden_state.numpy()
    inputs = {"encoder_hidden_states": enc}
    if query is not None:
        inputs["query_embeds"] = query
    if mask is not None:
        inputs["encoder_attention_mask"] = mask.float()
    rc, msg, out = run_cli(cli, folder, inputs, dtype, device)
    name = f"{label} enc {'x'.join(map(str, enc.shape))} {dtype} {device}"
    if rc != 0:
        R.check(name, False, f"exit {rc}: {msg}")
        return
    e = rel_err(out["last_hidden_state"], want)
    R.check(name, e <= TOLERANCE[dtype], f"last_hidden_state {e:.2e} (max|ref| "
            f"{np.abs(want).max():.2f})")


def expect_error(cli, name, folder, inputs, code, words):
    rc, msg, _ = run_cli(cli, folder, inputs)
    R.check(name, rc == code and all(w in msg for w in words), f"exit {rc}: {msg}")


def test_models(cli, root, gen):
    rand = lambda *shape: torch.randn(*shape, generator=gen)

    # cross-attention in every layer, encoder width 24 != hidden 32, learned queries (8)
    m1 = tiny_qformer(gen, freq=1, layers=3)
    q1 = rand(1, 8, 32)
    d1 = write_folder(os.path.join(root, "freq1-queries"), m1, q1)
    compare(cli, "freq 1, E 24, query_tokens", d1, m1, rand(2, 10, 24), learned=q1)
    compare(cli, "freq 1, E 24, query_tokens", d1, m1, rand(1, 3, 24), learned=q1)
    compare(cli, "freq 1, E 24, query_embeds over query_tokens", d1, m1, rand(2, 7, 24),
            query=rand(2, 5, 32))
    compare(cli, "freq 1, E 24, query_tokens", d1, m1, rand(2, 9, 24), learned=q1, dtype="f16",
            device="cpu-reference")

    # cross-attention every 2nd layer (layers 0 and 2 of 4), no query_tokens
    m2 = tiny_qformer(gen, hidden=48, layers=4, heads=6, inter=64, encoder=40, freq=2)
    d2 = write_folder(os.path.join(root, "freq2"), m2)
    compare(cli, "freq 2, E 40, query_embeds", d2, m2, rand(2, 12, 40), query=rand(2, 6, 48))
    compare(cli, "freq 2, E 40, query_embeds", d2, m2, rand(3, 1, 40), query=rand(3, 4, 48))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 7:] = 0
    mask[1, :3] = 0
    compare(cli, "freq 2, E 40, encoder_attention_mask", d2, m2, rand(2, 12, 40),
            query=rand(2, 6, 48), mask=mask)
    compare(cli, "freq 2, E 40, query_embeds", d2, m2, rand(2, 12, 40), query=rand(2, 6, 48),
            dtype="bf16", device="cpu-reference")

    # encoder width == hidden, freq 3 (layer 0 only of 3), gelu_new, found by model_type, with
    # a Blip2Model-style "qformer." prefix and query_tokens
    m3 = tiny_qformer(gen, hidden=32, layers=3, heads=2, inter=40, encoder=32, freq=3,
                      act="gelu_new")
    q3 = rand(1, 4, 32)
    d3 = write_folder(os.path.join(root, "prefixed"), m3, q3, prefix="qformer.",
                      by_model_type=True)
    compare(cli, "freq 3, E = H, gelu_new, qformer. prefix, query_tokens", d3, m3,
            rand(2, 6, 32), learned=q3)

    # other activations
    for act in ("quick_gelu", "silu", "relu"):
        m = tiny_qformer(gen, layers=2, freq=1, act=act)
        d = write_folder(os.path.join(root, "act-" + act), m)
        compare(cli, f"freq 1, {act}", d, m, rand(2, 5, 24), query=rand(2, 3, 32))

    # the CUDA backend, when there is one
    if cuda_available():
        for dtype in ("f32", "f16", "bf16"):
            compare(cli, "freq 1, E 24, query_tokens", d1, m1, rand(2, 10, 24), learned=q1,
                    dtype=dtype, device="cuda")
            compare(cli, "freq 2, E 40, encoder_attention_mask", d2, m2, rand(2, 12, 40),
                    query=rand(2, 6, 48), mask=mask, dtype=dtype, device="cuda")

    # errors: exit 2 with a message that names the problem
    expect_error(cli, "no query_embeds and no query_tokens", d2, {"encoder_hidden_states":
                                                                  rand(1, 4, 40)}, 2,
                 ["query_tokens"])
    expect_error(cli, "wrong encoder width", d2, {"encoder_hidden_states": rand(1, 4, 41),
                                                  "query_embeds": rand(1, 2, 48)}, 2,
                 ["encoder_hidden_states", "40"])
    expect_error(cli, "query_embeds batch mismatch", d1, {"encoder_hidden_states": rand(2, 4, 24),
                                                          "query_embeds": rand(1, 2, 32)}, 2,
                 ["query_embeds"])
    expect_error(cli, "no encoder_hidden_states", d1, {"query_embeds": rand(1, 2, 32)}, 2,
                 ["encoder_hidden_states"])
    bad = os.path.join(root, "missing-tensor")
    write_folder(bad, m2)
    t = load_file(os.path.join(bad, "model.safetensors"))
    del t["encoder.layer.2.crossattention.attention.key.weight"]
    save_file(t, os.path.join(bad, "model.safetensors"))
    expect_error(cli, "missing cross-attention tensor", bad,
                 {"encoder_hidden_states": rand(1, 4, 40), "query_embeds": rand(1, 2, 48)}, 2,
                 ["encoder.layer.2.crossattention.attention.key.weight"])
    bad = os.path.join(root, "bad-frequency")
    write_folder(bad, m2)
    with open(os.path.join(bad, "config.json")) as f:
        cfg = json.load(f)
    cfg["cross_attention_frequency"] = 0
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    expect_error(cli, "cross_attention_frequency 0", bad,
                 {"encoder_hidden_states": rand(1, 4, 40), "query_embeds": rand(1, 2, 48)}, 2,
                 ["cross_attention_frequency"])
    bad = os.path.join(root, "bad-act")
    write_folder(bad, m2)
    cfg["cross_attention_frequency"], cfg["hidden_act"] = 2, "mish"
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    # a valid config this engine does not run: SETOK_ERR_UNSUPPORTED, exit 1
    expect_error(cli, "unsupported hidden_act", bad,
                 {"encoder_hidden_states": rand(1, 4, 40), "query_embeds": rand(1, 2, 48)}, 1,
                 ["hidden_act", "mish"])


LIB = None  # libsetok through ctypes, for the CUDA probe


def cuda_available():
    """Whether libsetok can create its CUDA backend here (compiled in and a GPU present)."""
    be, err = ctypes.c_void_p(), SetokError()
    if LIB.setok_backend_cuda_create(ctypes.byref(be), 0, ctypes.byref(err)) != 0:
        print(f"skip  cuda cases: {err.message.decode()}")
        return False
    LIB.setok_backend_free(be)
    return True


def main():
    global LIB
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed} (transformers {transformers.__version__}, torch {torch.__version__})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vp, err_p = ctypes.c_void_p, ctypes.POINTER(SetokError)
    LIB = setok_ctypes.load_library({
        "setok_backend_cuda_create": [ctypes.POINTER(vp), ctypes.c_int, err_p],
        "setok_backend_free": [vp, ("restype", None)],
    })
    with tempfile.TemporaryDirectory() as root:
        test_models(args.cli, root, gen)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
