#!/usr/bin/env python3
"""test_vit_stem.py — the convolutional-stem vision tower (engine/models/vit-stem.c through
vit.c) against its PyTorch module (tools/setokim/stem.py).

Builds tiny random stem towers (CLIPVisionModel with a ConvStem as patch embedding: BatchNorm
with random statistics, relu / gelu / silu, 2 or 3 stride-2 layers), writes them with
stem.save_vision (BatchNorm folded into the convolutions), runs `SETOK_CLI forward DIR` on random
pixel_values and compares hidden_states (feature_layer -1, 0, last) and last_hidden_state with
the unfolded module in eval mode, also at other resolutions (interpolate_pos_encoding). A tensor
passes when max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 on cpu-reference). Also: the
folder reloads through stem.load_vision to the same function, and malformed stems are refused
with exit 2 and a message naming the problem.
Usage: test_vit_stem.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or transformers is missing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

from checks import Results, rel_err  # noqa: E402

try:
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import CLIPVisionConfig
    from setokim import stem as S
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
TOLERANCE = {"f32": 1e-4, "f16": 1e-2}
LAST = "last"
R = Results()


def tiny_stem(gen, channels, act="relu", hidden=32, image=32, kernel=3):
    cfg = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden + 8,
                           num_hidden_layers=2, num_attention_heads=4,
                           patch_size=2 ** len(channels), image_size=image,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5)
    model = S.new_stem_vision(cfg, channels, kernel, 2, act)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim == 1 else 0.2))
        for m in model.modules():  # BatchNorm statistics far from (0, 1): folding matters
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 2 + 0.2)
    return model.eval()


def run_cli(cli, folder, pixel_values, sets=(), dtype="f32", device="cpu"):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"pixel_values": pixel_values.contiguous()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--device", device,
               "--dtype", dtype] + [x for s in sets for x in ("--set", s)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def compare(cli, name, folder, model, pixel_values, layer, dtype="f32", device="cpu"):
    interpolate = pixel_values.shape[2:] != (model.config.image_size,) * 2
    with torch.no_grad():
        o = model(pixel_values=pixel_values, output_hidden_states=True,
                  interpolate_pos_encoding=interpolate)
    rc, msg, out = run_cli(cli, folder, pixel_values, [f"feature_layer={layer}"], dtype, device)
    label = f"{name} {'x'.join(map(str, pixel_values.shape))} layer {layer} {dtype} {device}"
    if rc != 0:
        return R.check(label, False, f"exit {rc}: {msg}")
    want = o.last_hidden_state if layer == LAST else o.hidden_states[layer]
    e1 = rel_err(out["hidden_states"], want.numpy())
    e2 = rel_err(out["last_hidden_state"], o.last_hidden_state.numpy())
    tol = TOLERANCE[dtype]
    return R.check(label, e1 <= tol and e2 <= tol,
                   f"hidden_states {e1:.2e} last_hidden_state {e2:.2e}")


def expect_error(cli, name, folder, pixel_values, code, words):
    rc, msg, _ = run_cli(cli, folder, pixel_values)
    R.check(name, rc == code and all(w in msg for w in words), f"exit {rc}: {msg}")


def rewrite(src, dst, config_edit=None, drop=None):
    """A copy of the folder src with its config edited and/or one tensor dropped."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    if config_edit:
        config_edit(cfg)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f)
    t = load_file(os.path.join(src, "model.safetensors"))
    if drop:
        del t[drop]
    save_file(t, os.path.join(dst, "model.safetensors"))
    return dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI", "setok"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
    px = lambda b, h, w: torch.randn(b, 3, h, w, generator=gen)  # noqa: E731
    with tempfile.TemporaryDirectory() as root:
        cases = (("relu 3 layers", (8, 12, 16), "relu", 32),
                 ("gelu 2 layers", (6, 10), "gelu", 24),
                 ("silu 3 layers, kernel 5", (4, 8, 8), "silu", 32))
        models = {}
        for name, channels, act, image in cases:
            kernel = 5 if "kernel 5" in name else 3
            model = tiny_stem(gen, channels, act, image=image, kernel=kernel)
            d = os.path.join(root, name.replace(" ", "-").replace(",", ""))
            S.save_vision(model, d)
            models[name] = (model, d)
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            stored = load_file(os.path.join(d, "model.safetensors"))
            R.check(f"{name}: config has conv_stem, no BatchNorm stored",
                    cfg.get("conv_stem", {}).get("channels") == list(channels) and
                    not any("norms" in k or "running" in k for k in stored) and
                    "embeddings.conv_stem.proj.weight" in stored and
                    "embeddings.patch_embedding.weight" not in stored, str(cfg.get("conv_stem")))
            reloaded = S.load_vision(d)
            x = px(2, image, image)
            with torch.no_grad():
                a = model(pixel_values=x).last_hidden_state
                b = reloaded(pixel_values=x).last_hidden_state
            e = rel_err(b.numpy(), a.numpy())
            R.check(f"{name}: stem.load_vision reloads the same function", e <= 1e-5,
                    f"rel err {e:.2e}")
            for layer in (-1, 0, LAST):
                compare(args.cli, name, d, model, px(2, image, image), layer)
        model, d = models["relu 3 layers"]
        compare(args.cli, "relu 3 layers", d, model, px(1, 48, 40), -1)
        compare(args.cli, "relu 3 layers", d, model, px(1, 32, 32), -1, "f16", "cpu-reference")
        model, d = models["gelu 2 layers"]
        compare(args.cli, "gelu 2 layers", d, model, px(1, 16, 28), -2)

        # errors
        expect_error(args.cli, "input not a multiple of the patch size", d, px(1, 26, 24), 2,
                     ["multiples of patch_size"])
        bad = rewrite(d, os.path.join(root, "bad-stride"),
                      lambda c: c["conv_stem"].update(stride=3))
        expect_error(args.cli, "stride ^ layers != patch_size", bad, px(1, 24, 24), 2,
                     ["conv_stem", "patch_size"])
        bad = rewrite(d, os.path.join(root, "bad-act"),
                      lambda c: c["conv_stem"].update(hidden_act="tanh"))
        expect_error(args.cli, "unknown stem activation (unsupported: exit 1)", bad,
                     px(1, 24, 24), 1, ["tanh"])
        bad = rewrite(d, os.path.join(root, "missing"), drop="embeddings.conv_stem.convs.1.bias")
        expect_error(args.cli, "missing stem tensor", bad, px(1, 24, 24), 2,
                     ["embeddings.conv_stem.convs.1.bias"])
        bad = rewrite(d, os.path.join(root, "siglip"),
                      lambda c: c.update(architectures=["SiglipVisionModel"],
                                         model_type="siglip_vision_model"))
        expect_error(args.cli, "a SigLIP tower with a stem is refused (unsupported: exit 1)", bad,
                     px(1, 24, 24), 1, ["CLIP"])
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
