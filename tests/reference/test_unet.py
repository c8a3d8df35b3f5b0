#!/usr/bin/env python3
"""test_unet.py — the U-Net (engine/models/unet.c) against diffusers' UNet2DConditionModel.

Builds tiny random UNet2DConditionModel configs with diffusers itself — the SD-1.5 block set
(CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D) at
two and three levels; conv and linear proj_in / proj_out; 4 and 8 input channels
(InstructPix2Pix); flip_sin_to_cos true and false; freq_shift 0 and 1; per-block head counts,
two transformer layers per block, padding-0 downsampling, no mid block — saves them with
save_pretrained and runs `SETOK_CLI forward DIR` on fresh random `sample`,
`encoder_hidden_states` and two timesteps per case (one per batch item, or one scalar for
the batch). The `sample` output is compared with the model's. A tensor passes when
max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 and 4e-2 for bf16, run on cpu-reference:
the dtype paths the CUDA backend takes). Where libsetok has a usable CUDA device, every config
also runs with --device cuda; otherwise those cases are skipped. Through ctypes: the arena
bound, an out-of-memory arena that leaves the model usable, and cancellation.
Usage: test_unet.py [SETOK_CLI] [--seed N]
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
    from diffusers import UNet2DConditionModel
    from checks import Results, rel_err
    from diffusion_checks import (SETOK_ERR_CANCELLED, SETOK_ERR_NOMEM, TOLERANCE, Api, Arena,
                                  Tensor, cuda_available, randomize, run_forward)
    from setok_ctypes import SetokError
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

diffusers.utils.logging.set_verbosity_error()

R = Results()

SD = dict(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
          up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
          block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16,
          cross_attention_dim=24, attention_head_dim=4)

CONFIGS = {
    "conv proj, 4 channels": dict(SD),
    "linear proj, 8 channels, no flip, shift 1": dict(
        SD, in_channels=8, use_linear_projection=True, flip_sin_to_cos=False, freq_shift=1,
        layers_per_block=2, norm_num_groups=8),
    "3 levels, heads per block, 2 transformer layers": dict(
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=16, attention_head_dim=(2, 4, 8), transformer_layers_per_block=2),
    # attention only at the lower resolutions (tools/setokim/generation.py for large latents)
    "3 levels, attention in the middle level only": dict(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=16, attention_head_dim=4),
    "padding 0, no mid block, linear proj": dict(
        SD, downsample_padding=0, mid_block_type=None, use_linear_projection=True,
        freq_shift=1),
}


def make_unet(kw, gen):
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=gen)))
    return randomize(UNet2DConditionModel(sample_size=8, **kw), gen)


def compare(cli, name, folder, unet, gen, batch, h, w, tokens, scalar_timestep=False,
            dtype="f32", device="cpu"):
    cfg = unet.config
    sample = torch.randn(batch, cfg.in_channels, h, w, generator=gen)
    context = torch.randn(batch, tokens, cfg.cross_attention_dim, generator=gen)
    if scalar_timestep:
        timestep = torch.tensor(float(torch.randint(0, 1000, (1,), generator=gen)))
    else:
        # one high and one low timestep, with a fraction (schedulers can produce those)
        timestep = torch.tensor([999.0, 261.5][:batch] + [17.0] * max(0, batch - 2))
    with torch.no_grad():
        ref = unet(sample, timestep, encoder_hidden_states=context).sample.numpy()
    label = f"{name} {batch}x{h}x{w}, {tokens} tokens, t={timestep.tolist()} {dtype} {device}"
    rc, msg, out = run_forward(cli, folder, {"sample": sample, "timestep": timestep,
                                             "encoder_hidden_states": context}, (), dtype, device)
    if rc != 0:
        R.check(label, False, f"exit {rc}: {msg}")
        return
    e = rel_err(out["sample"], ref)
    R.check(label, e <= TOLERANCE[dtype], f"rel err {e:.2e} (max|ref| {np.abs(ref).max():.2f})")


def expect_error(cli, name, folder, inputs, words, code=2):
    """Exit 2 for bad input, 1 for what the engine does not support, naming the problem."""
    rc, msg, _ = run_forward(cli, folder, inputs)
    R.check(name, rc == code and all(w in msg for w in words), f"exit {rc}: {msg}")


def edited_folder(unet, path, **changes):
    unet.save_pretrained(path)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def test_errors(cli, root, unet):
    good = os.path.join(root, "conv-proj-4-channels")
    ok_inputs = lambda h, w, d: {"sample": torch.zeros(1, 4, h, w), "timestep": torch.zeros(1),
                                 "encoder_hidden_states": torch.zeros(1, 3, d)}
    expect_error(cli, "odd sample size", good, ok_inputs(9, 8, 24), ["multiples of 2"])
    expect_error(cli, "context width", good, ok_inputs(8, 8, 20), ["encoder_hidden_states"])
    d = edited_folder(unet, os.path.join(root, "bad-class-embed"), class_embed_type="timestep")
    expect_error(cli, "class embeddings refused", d, ok_inputs(8, 8, 24), ["class_embed_type"],
                 code=1)
    d = edited_folder(unet, os.path.join(root, "bad-mid"), mid_block_type="UNetMidBlock2D")
    expect_error(cli, "mid block type refused", d, ok_inputs(8, 8, 24), ["mid_block_type"],
                 code=1)
    d = edited_folder(unet, os.path.join(root, "bad-proj"), use_linear_projection=True)
    expect_error(cli, "projection kind must match the weights", d, ok_inputs(8, 8, 24),
                 ["use_linear_projection"])


def test_api(root, unet, gen):
    """setok_unet_forward called directly: the arena's peak within setok_unet_arena_bytes, an
    arena too small (an out-of-memory error that leaves the model usable), a set cancel flag."""
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    tp, ap, fp = ctypes.POINTER(Tensor), ctypes.POINTER(Arena), ctypes.POINTER(ctypes.c_float)
    api = Api({
        "setok_unet_load": [ctypes.POINTER(vp), ctypes.c_char_p, vp, ctypes.c_int, ctypes.c_int,
                            ctypes.POINTER(SetokError)],
        "setok_unet_free": [vp, ("restype", None)],
        "setok_unet_arena_bytes": [vp, i64, i64, i64, i64, ("restype", ctypes.c_size_t)],
        "setok_unet_forward": [vp, ap, tp, tp, fp, tp, ctypes.POINTER(ctypes.c_bool),
                               ctypes.POINTER(SetokError)],
    })
    lib, folder = api.lib, os.path.join(root, "api")
    unet.save_pretrained(folder)
    m = vp()
    api.ok(lib.setok_unet_load(ctypes.byref(m), folder.encode(), api.be, 0, 0, api.eref()), "load")
    sample = torch.randn(2, unet.config.in_channels, 8, 16, generator=gen)
    context = torch.randn(2, 6, unet.config.cross_attention_dim, generator=gen)
    t = np.array([700.0, 3.0], np.float32)
    x, ctx, out = api.upload(sample.numpy()), api.upload(context.numpy()), Tensor()
    need = lib.setok_unet_arena_bytes(m, 2, 8, 16, 6)

    def forward(arena, cancel=None):
        return lib.setok_unet_forward(m, ctypes.byref(arena), ctypes.byref(out), ctypes.byref(x),
                                      t.ctypes.data_as(fp), ctypes.byref(ctx), cancel,
                                      api.eref())

    small = api.arena(need // 3)
    status = forward(small)
    msg = api.err.message.decode()
    R.check("C API arena too small: out-of-memory error", status == SETOK_ERR_NOMEM
            and small.used == 0, f"status {status}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(small))
    arena = api.arena(need)
    api.ok(forward(arena), "forward")
    with torch.no_grad():
        want = unet(sample, torch.from_numpy(t), encoder_hidden_states=context).sample.numpy()
    e = rel_err(api.download(out), want)
    R.check("C API forward after the failure", e <= TOLERANCE["f32"], f"rel err {e:.2e}")
    R.check("C API arena peak within setok_unet_arena_bytes", arena.peak <= need,
            f"peak {arena.peak} of {need} bytes")
    outputs = arena.used
    cancel = ctypes.c_bool(True)
    status = forward(arena, ctypes.byref(cancel))
    msg = api.err.message.decode()
    R.check("C API cancel", status == SETOK_ERR_CANCELLED and "cancelled" in msg
            and arena.used == outputs, f"status {status}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(arena))
    for tensor in (x, ctx):
        lib.setok_tensor_free(ctypes.byref(tensor))
    lib.setok_unet_free(m)
    lib.setok_backend_free(api.be)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    print(f"seed {args.seed} (diffusers {diffusers.__version__}, torch {torch.__version__})")
    gen = torch.Generator().manual_seed(args.seed)
    cuda = cuda_available()
    with tempfile.TemporaryDirectory() as root:
        first = None
        for name, kw in CONFIGS.items():
            unet = make_unet(kw, gen)
            folder = os.path.join(root, name.replace(" ", "-").replace(",", ""))
            unet.save_pretrained(folder)
            compare(args.cli, name, folder, unet, gen, 2, 16, 16, 7)
            compare(args.cli, name, folder, unet, gen, 2, 8, 24, 5, scalar_timestep=True)
            if first is None:
                first = unet
                # the half-precision paths the CUDA backend takes, on the reference backend
                for dtype in ("f16", "bf16"):
                    compare(args.cli, name, folder, unet, gen, 1, 8, 8, 4, dtype=dtype,
                            device="cpu-reference")
            for dtype in ("f32", "f16", "bf16") if cuda else ():
                compare(args.cli, name, folder, unet, gen, 2, 16, 16, 7, dtype=dtype,
                        device="cuda")
        test_errors(args.cli, root, first)
        test_api(root, first, gen)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
