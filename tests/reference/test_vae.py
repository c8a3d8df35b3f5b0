#!/usr/bin/env python3
"""test_vae.py — the autoencoder (engine/models/vae.c) against diffusers' AutoencoderKL.

Builds tiny random AutoencoderKL configs with diffusers itself (two and three levels, one and
two layers per block, 8 or 16 groups, with and without the mid-block attention and quant
convs), saves them with save_pretrained, and runs `SETOK_CLI forward DIR` on fresh random
inputs: `sample` [B, 3, H, W] gives latent_mean and latent_logvar (vs encode().latent_dist) and
the decoded mean (vs decode(mean)); `latent_sample` gives the decoded image (vs decode()).
One folder is rewritten to the old attention names (query, key, value, proj_attn), and tiled
decoding (--set tile=N) is compared with enable_tiling() at that tile size (sample_size N).
Through ctypes: progress per tile, the arena bound, an out-of-memory arena that leaves the
model usable, and cancellation.
A tensor passes when max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 and 4e-2 for bf16,
run on cpu-reference: the dtype paths the CUDA backend takes). Where libsetok has a usable CUDA
device, a few cases also run with --device cuda; otherwise they are skipped.
Usage: test_vae.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or diffusers is missing.
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
    import diffusers
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file, save_file
    from checks import Results, rel_err
    from diffusion_checks import (SETOK_ERR_CANCELLED, SETOK_ERR_NOMEM, TOLERANCE, Api, Arena,
                                  Tensor, cuda_available, randomize, run_forward)
    from setok_ctypes import SetokError
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

diffusers.utils.logging.set_verbosity_error()

R = Results()

CONFIGS = {
    "2 levels": dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16),
    "3 levels": dict(block_out_channels=(16, 32, 32), layers_per_block=2, norm_num_groups=8),
    "no attention, no quant convs": dict(block_out_channels=(16, 32), layers_per_block=1,
                                         norm_num_groups=8, mid_block_add_attention=False,
                                         use_quant_conv=False, use_post_quant_conv=False),
}

# diffusers' attention names -> the ones older checkpoints use
OLD_NAMES = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}


def make_vae(kw, gen, sample_size=32):
    n = len(kw["block_out_channels"])
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=gen)))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * n,
                        up_block_types=("UpDecoderBlock2D",) * n, sample_size=sample_size, **kw)
    return randomize(vae, gen)


def check(name, out, key, ref, dtype="f32"):
    if out is None or key not in out:
        R.check(f"{name} {key}", False, "missing output")
        return
    e = rel_err(out[key], ref)
    R.check(f"{name} {key}", e <= TOLERANCE[dtype],
            f"rel err {e:.2e} (max|ref| {np.abs(ref).max():.2f})")


def compare(cli, name, folder, vae, gen, batch, h, w, dtype="f32", device="cpu"):
    """Round trip from sample, and a decode of random latents."""
    s = 2 ** (len(vae.config.block_out_channels) - 1)
    sample = torch.rand(batch, 3, h, w, generator=gen) * 2 - 1
    latents = torch.randn(batch, 4, h // s, w // s, generator=gen)
    with torch.no_grad():
        dist = vae.encode(sample).latent_dist
        round_trip = vae.decode(dist.mean).sample
        decoded = vae.decode(latents).sample
    label = f"{name} {batch}x{h}x{w} {dtype} {device}"
    rc, msg, out = run_forward(cli, folder, {"sample": sample}, (), dtype, device)
    if rc != 0:
        R.check(f"{label} encode", False, f"exit {rc}: {msg}")
    else:
        check(label, out, "latent_mean", dist.mean.numpy(), dtype)
        check(label, out, "latent_logvar", dist.logvar.numpy(), dtype)
        check(label + " round trip", out, "sample", round_trip.numpy(), dtype)
    rc, msg, out = run_forward(cli, folder, {"latent_sample": latents}, (), dtype, device)
    if rc != 0:
        R.check(f"{label} decode", False, f"exit {rc}: {msg}")
    else:
        check(label + " decode", out, "sample", decoded.numpy(), dtype)


def old_names_folder(src, dst):
    """src's checkpoint with the mid-block attention under its old names."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        config = f.read()
    with open(os.path.join(dst, "config.json"), "w") as f:
        f.write(config)
    tensors = load_file(os.path.join(src, "diffusion_pytorch_model.safetensors"))
    renamed = {}
    for k, v in tensors.items():
        if ".attentions." in k:
            for new, old in OLD_NAMES.items():
                k = k.replace(new, old)
        renamed[k] = v
    assert any(".query." in k for k in renamed), "no attention weights were renamed"
    save_file(renamed, os.path.join(dst, "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})
    return dst


def test_tiled(cli, root, gen, cuda):
    """Latents larger than one tile, decoded tile by tile and blended as diffusers does."""
    runs = [(32, (40, 24), "f32", "cpu"), (16, (13, 21), "f32", "cpu"),
            (16, (20, 12), "f16", "cpu-reference")]
    runs += [(16, (20, 12), dtype, "cuda") for dtype in ("f32", "f16", "bf16") if cuda]
    for tile, (h, w), dtype, device in runs:
        vae = make_vae(dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
                       gen, sample_size=tile)
        folder = os.path.join(root, f"tiled-{tile}")
        vae.save_pretrained(folder)
        latents = torch.randn(2, 4, h, w, generator=gen)
        vae.enable_tiling()
        with torch.no_grad():
            ref = vae.decode(latents).sample.numpy()
        rc, msg, out = run_forward(cli, folder, {"latent_sample": latents}, [f"tile={tile}"],
                                   dtype, device)
        label = f"tiled decode, tile {tile}, latents {h}x{w} {dtype} {device}"
        if rc != 0:
            R.check(label, False, f"exit {rc}: {msg}")
        else:
            check(label, out, "sample", ref, dtype)
        if dtype != "f32":
            continue
        # without --set tile the same folder decodes in one piece
        vae.disable_tiling()
        with torch.no_grad():
            whole = vae.decode(latents).sample.numpy()
        rc, msg, out = run_forward(cli, folder, {"latent_sample": latents})
        if rc != 0:
            R.check(label + " (untiled)", False, f"exit {rc}: {msg}")
        else:
            check(label + " (untiled)", out, "sample", whole)


def expect_error(cli, name, folder, inputs, words, code=2):
    """Exit 2 for bad input, 1 for what the engine does not support, naming the problem."""
    rc, msg, _ = run_forward(cli, folder, inputs)
    R.check(name, rc == code and all(w in msg for w in words), f"exit {rc}: {msg}")


def test_errors(cli, root, gen):
    vae = make_vae(CONFIGS["2 levels"], gen)
    good = os.path.join(root, "errors-good")
    vae.save_pretrained(good)
    expect_error(cli, "sample not a multiple of the downscale", good,
                 {"sample": torch.zeros(1, 3, 31, 32)}, ["multiples of 2"])
    expect_error(cli, "no input", good, {"x": torch.zeros(1)}, ["latent_sample"])
    bad = os.path.join(root, "errors-block-type")
    vae.save_pretrained(bad)
    with open(os.path.join(bad, "config.json")) as f:
        cfg = json.load(f)
    cfg["down_block_types"][1] = "AttnDownEncoderBlock2D"
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    expect_error(cli, "unsupported block type", bad, {"latent_sample": torch.zeros(1, 4, 8, 8)},
                 ["down_block_types[1]", "AttnDownEncoderBlock2D"], code=1)
    missing = os.path.join(root, "errors-missing")
    vae.save_pretrained(missing)
    path = os.path.join(missing, "diffusion_pytorch_model.safetensors")
    tensors = load_file(path)
    del tensors["decoder.up_blocks.1.resnets.1.conv2.weight"]
    save_file(tensors, path)
    expect_error(cli, "missing tensor", missing, {"latent_sample": torch.zeros(1, 4, 8, 8)},
                 ["decoder.up_blocks.1.resnets.1.conv2.weight"])


def test_api(root, gen):
    """setok_vae_decode called directly: a tiled decode with progress reports, the arena's peak
    within setok_vae_decode_arena_bytes, an arena too small (an out-of-memory error that
    leaves the model usable), a set cancel flag, scaling_factor read from config.json."""
    vp, i, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    progress_fn = ctypes.CFUNCTYPE(None, vp, i, i)
    tp, ap = ctypes.POINTER(Tensor), ctypes.POINTER(Arena)
    api = Api({
        "setok_vae_load": [ctypes.POINTER(vp), ctypes.c_char_p, vp, i,
                           ctypes.POINTER(SetokError)],
        "setok_vae_free": [vp, ("restype", None)],
        "setok_vae_scaling_factor": [vp, ("restype", ctypes.c_float)],
        "setok_vae_decode_arena_bytes": [vp, i64, i64, i64, i, ("restype", ctypes.c_size_t)],
        "setok_vae_decode": [vp, ap, tp, tp, i, progress_fn, vp, ctypes.POINTER(ctypes.c_bool),
                             ctypes.POINTER(SetokError)],
    })
    lib, tile, h, w = api.lib, 16, 14, 10
    vae = make_vae(dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                        scaling_factor=0.13025), gen, sample_size=tile)
    folder = os.path.join(root, "api")
    vae.save_pretrained(folder)
    m = vp()
    api.ok(lib.setok_vae_load(ctypes.byref(m), folder.encode(), api.be, 0, api.eref()), "load")
    scaling = lib.setok_vae_scaling_factor(m)
    R.check("C API scaling_factor from config.json", abs(scaling - 0.13025) < 1e-7,
            f"{scaling:.6f}")
    latents = torch.randn(1, 4, h, w, generator=gen)
    z, out = api.upload(latents.numpy()), Tensor()
    need = lib.setok_vae_decode_arena_bytes(m, 1, h, w, tile)
    calls = []
    report = progress_fn(lambda user, done, total: calls.append((done, total)))

    small = api.arena(need // 4)
    status = lib.setok_vae_decode(m, ctypes.byref(small), ctypes.byref(out), ctypes.byref(z),
                                  tile, report, None, None, api.eref())
    msg = api.err.message.decode()
    R.check("C API arena too small: out-of-memory error", status == SETOK_ERR_NOMEM
            and small.used == 0, f"status {status}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(small))

    arena = api.arena(need)
    api.ok(lib.setok_vae_decode(m, ctypes.byref(arena), ctypes.byref(out), ctypes.byref(z), tile,
                                report, None, None, api.eref()), "decode")
    got = api.download(out)
    vae.enable_tiling()
    with torch.no_grad():
        want = vae.decode(latents).sample.numpy()
    e = rel_err(got, want)
    R.check("C API tiled decode after the failure", e <= TOLERANCE["f32"], f"rel err {e:.2e}")
    R.check("C API arena peak within setok_vae_decode_arena_bytes", arena.peak <= need,
            f"peak {arena.peak} of {need} bytes")
    R.check("C API progress once per tile", calls == [(k, 6) for k in range(1, 7)],
            f"{calls}")
    outputs = arena.used
    cancel = ctypes.c_bool(True)
    status = lib.setok_vae_decode(m, ctypes.byref(arena), ctypes.byref(out), ctypes.byref(z),
                                  tile, report, None, ctypes.byref(cancel), api.eref())
    msg = api.err.message.decode()
    R.check("C API cancel", status == SETOK_ERR_CANCELLED and "cancelled" in msg
            and arena.used == outputs, f"status {status}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(arena))
    lib.setok_tensor_free(ctypes.byref(z))
    lib.setok_vae_free(m)
    lib.setok_backend_free(api.be)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    print(f"seed {args.seed} (diffusers {diffusers.__version__}, torch {torch.__version__})")
    gen = torch.Generator().manual_seed(args.seed)
    cuda = cuda_available()
    with tempfile.TemporaryDirectory() as root:
        for name, kw in CONFIGS.items():
            vae = make_vae(kw, gen)
            folder = os.path.join(root, name.replace(" ", "-").replace(",", ""))
            vae.save_pretrained(folder)
            compare(args.cli, name, folder, vae, gen, 2, 32, 32)
            if name != "2 levels":
                continue
            compare(args.cli, name, folder, vae, gen, 1, 24, 40)
            old = old_names_folder(folder, folder + "-old-names")
            compare(args.cli, name + ", old attention names", old, vae, gen, 1, 32, 24)
            # the half-precision paths the CUDA backend takes, on the reference backend
            for dtype in ("f16", "bf16"):
                compare(args.cli, name, folder, vae, gen, 1, 16, 16, dtype, "cpu-reference")
            for dtype in ("f32", "f16", "bf16") if cuda else ():
                compare(args.cli, name, folder, vae, gen, 2, 32, 48, dtype, "cuda")
        test_tiled(args.cli, root, gen, cuda)
        test_errors(args.cli, root, gen)
        test_api(root, gen)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
