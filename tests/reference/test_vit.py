#!/usr/bin/env python3
"""test_vit.py — the vision tower (engine/models/vit.c) against transformers.

Builds tiny random CLIPVisionModel / SiglipVisionModel configs with transformers itself, saves
them (safetensors) in the layouts the engine loads — a transformers-5 standalone folder, an old
"vision_model."-prefixed one, LLaVA folders with both vision-tower prefixes, full CLIPModel and
SiglipModel folders — runs `SETOK_CLI forward DIR` on fresh random pixel_values and compares
`hidden_states` (feature_layer -1, -2, 0, last; drop_cls) and `last_hidden_state` with the
model's output_hidden_states=True outputs, also at other resolutions (interpolate_pos_encoding).
A tensor passes when max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 and 4e-2 for bf16,
run on cpu-reference too: the dtype paths the CUDA backend takes). Where libsetok has a usable
CUDA device, a few cases also run with --device cuda (f32, f16, bf16); otherwise they are skipped.
Preprocessing is checked through ctypes on SETOK_LIB against transformers'
CLIPImageProcessorPil / SiglipImageProcessorPil (the PIL backends, which the engine's image math
matches; the default torchvision backends resample differently) within 1e-5.
Usage: test_vit.py [SETOK_CLI] [--seed N]
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
from setok_ctypes import SetokError, SetokImage
from checks import Results, rel_err  # noqa: E402

try:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel,
                              SiglipConfig, SiglipModel, SiglipVisionConfig, SiglipVisionModel)
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

try:
    from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil
except ImportError:  # transformers < 5: the PIL processors had the plain names
    from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    from transformers import SiglipImageProcessor as SiglipImageProcessorPil

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 4e-2}
LAST = "last"


R = Results()


# ---- models and folders ---------------------------------------------------------------------

def tiny_clip(act="quick_gelu", hidden=48, layers=3, patch=8, image=32):
    cfg = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden + 8,
                           num_hidden_layers=layers, num_attention_heads=4, patch_size=patch,
                           image_size=image, hidden_act=act, layer_norm_eps=1e-5)
    return CLIPVisionModel(cfg).eval()


def tiny_siglip(act="gelu_pytorch_tanh", hidden=32, layers=2, patch=4, image=24):
    cfg = SiglipVisionConfig(hidden_size=hidden, intermediate_size=3 * hidden,
                             num_hidden_layers=layers, num_attention_heads=4, patch_size=patch,
                             image_size=image, hidden_act=act, layer_norm_eps=1e-6)
    return SiglipVisionModel(cfg).eval()


def randomize(model, gen):
    """Random weights with some spread (HF init leaves LayerNorms at 1 / 0 and tiny biases)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim == 1 else 0.2))
    return model


def vision_state(model):
    """The tower's tensors with bare names (embeddings.*, encoder.*, pre_layrnorm.*, ...)."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
            if not k.endswith("position_ids")}


def write_folder(path, config, tensors):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return path


def llava_folder(path, vision_model, prefix, feature_layer=-2, strategy="default"):
    vc = vision_model.config.to_dict()
    config = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
              "vision_config": vc, "vision_feature_layer": feature_layer,
              "vision_feature_select_strategy": strategy,
              "text_config": {"model_type": "llama", "hidden_size": 16}}
    tensors = {prefix + k: v for k, v in vision_state(vision_model).items()}
    tensors["model.language_model.embed_tokens.weight"] = torch.zeros(8, 16)
    tensors["model.multi_modal_projector.linear_1.weight"] = torch.zeros(16, vc["hidden_size"])
    return write_folder(path, config, tensors)


# ---- running the CLI ------------------------------------------------------------------------

def run_cli(cli, folder, pixel_values, sets=(), dtype="f32", device="cpu"):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"pixel_values": pixel_values.contiguous()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--device", device,
               "--dtype", dtype]
        for s in sets:
            cmd += ["--set", s]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def reference(model, pixel_values, interpolate):
    with torch.no_grad():
        o = model(pixel_values=pixel_values, output_hidden_states=True,
                  interpolate_pos_encoding=interpolate)
    return [h.numpy() for h in o.hidden_states], o.last_hidden_state.numpy()


def compare_run(cli, name, folder, model, pixel_values, layer, drop=None, dtype="f32",
                interpolate=False, folder_layer=-2, expect_drop=False, device="cpu"):
    """Runs the CLI with feature_layer=layer and checks both outputs. layer None runs the
    folder's default, which should be folder_layer (with CLS dropped when expect_drop)."""
    hidden, last = reference(model, pixel_values, interpolate)
    sets = []
    if layer is not None:
        sets.append(f"feature_layer={layer}")
    if drop is not None:
        sets.append(f"drop_cls={int(drop)}")
    rc, msg, out = run_cli(cli, folder, pixel_values, sets, dtype, device)
    label = (f"{name} {'x'.join(map(str, pixel_values.shape))} {' '.join(sets) or 'defaults'} "
             f"{dtype} {device}")
    if rc != 0:
        R.check(label, False, f"exit {rc}: {msg}")
        return
    want = last if layer == LAST else hidden[layer if layer is not None else folder_layer]
    if drop or expect_drop:
        want = want[:, 1:]
    tol = TOLERANCE[dtype]
    e1, e2 = rel_err(out["hidden_states"], want), rel_err(out["last_hidden_state"], last)
    R.check(label, e1 <= tol and e2 <= tol,
            f"hidden_states {e1:.2e} last_hidden_state {e2:.2e} (max|ref| "
            f"{np.abs(want).max():.2f})")


def expect_error(cli, name, folder, pixel_values, sets, code, words):
    rc, msg, _ = run_cli(cli, folder, pixel_values, sets)
    ok = rc == code and all(w in msg for w in words)
    R.check(name, ok, f"exit {rc}: {msg}")


def test_models(cli, root, gen):
    px = lambda b, h, w: torch.randn(b, 3, h, w, generator=gen)

    # CLIP, transformers-5 standalone layout (bare names)
    clip = randomize(tiny_clip("quick_gelu"), gen)
    d = os.path.join(root, "clip")
    clip.save_pretrained(d)
    for layer in (-1, -2, 0, 2, LAST):
        compare_run(cli, "clip", d, clip, px(2, 32, 32), layer)
    compare_run(cli, "clip", d, clip, px(2, 32, 32), -2, drop=True)
    compare_run(cli, "clip", d, clip, px(1, 40, 48), -1, interpolate=True)
    compare_run(cli, "clip", d, clip, px(2, 24, 24), -2, drop=True, interpolate=True)
    compare_run(cli, "clip", d, clip, px(1, 32, 32), -1, dtype="f16")
    compare_run(cli, "clip", d, clip, px(1, 40, 32), -2, drop=True, dtype="bf16",
                interpolate=True, device="cpu-reference")

    # CLIP with erf gelu, old "vision_model."-prefixed standalone layout
    clip2 = randomize(tiny_clip("gelu", hidden=32, layers=2, patch=4, image=28), gen)
    d = write_folder(os.path.join(root, "clip-prefixed"), clip2.config.to_dict(),
                     {"vision_model." + k: v for k, v in vision_state(clip2).items()})
    compare_run(cli, "clip-gelu vision_model.", d, clip2, px(2, 28, 28), -1)
    compare_run(cli, "clip-gelu vision_model.", d, clip2, px(1, 36, 30), -2, drop=True,
                interpolate=True)

    # SigLIP with its head (ignored), gelu_pytorch_tanh
    sig = randomize(tiny_siglip(), gen)
    d = os.path.join(root, "siglip")
    sig.save_pretrained(d)
    for layer in (-1, -2, 0, LAST):
        compare_run(cli, "siglip", d, sig, px(2, 24, 24), layer)
    compare_run(cli, "siglip", d, sig, px(1, 32, 20), LAST, interpolate=True)
    compare_run(cli, "siglip", d, sig, px(2, 16, 16), -2, interpolate=True)
    compare_run(cli, "siglip", d, sig, px(1, 28, 24), LAST, dtype="f16", interpolate=True,
                device="cpu-reference")
    expect_error(cli, "siglip drop_cls is refused", d, px(1, 24, 24), ["drop_cls=1"], 2,
                 ["class token"])

    # SigLIP with quick_gelu, no head
    sig2 = randomize(tiny_siglip("quick_gelu", hidden=48, layers=3, patch=6, image=30), gen)
    sig2.config.vision_use_head = False
    d = write_folder(os.path.join(root, "siglip-nohead"), sig2.config.to_dict(),
                     {k: v for k, v in vision_state(sig2).items() if not k.startswith("head.")})
    compare_run(cli, "siglip-quick_gelu", d, sig2, px(2, 30, 30), -1)

    # LLaVA folders: both prefixes; the default run is hidden_states[-2] without CLS
    llava_tower = randomize(tiny_clip("quick_gelu", hidden=40, layers=3, patch=4, image=24), gen)
    for prefix in ("vision_tower.vision_model.", "model.vision_tower.vision_model.",
                   "vision_tower."):
        d = llava_folder(os.path.join(root, "llava-" + prefix.strip(".")), llava_tower, prefix)
        compare_run(cli, f"llava {prefix}", d, llava_tower, px(2, 24, 24), None,
                    expect_drop=True)
        compare_run(cli, f"llava {prefix}", d, llava_tower, px(1, 24, 24), -1, drop=False)
    d = llava_folder(os.path.join(root, "llava-full"), llava_tower, "vision_tower.vision_model.",
                     feature_layer=-1, strategy="full")
    compare_run(cli, "llava strategy full, layer -1", d, llava_tower, px(1, 24, 24), None,
                folder_layer=-1)

    # full CLIPModel and SiglipModel folders (vision_model.* next to text_model.*)
    cm = CLIPModel(CLIPConfig(
        vision_config=tiny_clip("gelu_pytorch_tanh", hidden=32, layers=2, patch=8,
                                image=32).config.to_dict(),
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 64}, projection_dim=8)).eval()
    randomize(cm, gen)
    d = os.path.join(root, "clipmodel")
    cm.save_pretrained(d)
    compare_run(cli, "CLIPModel", d, cm.vision_model, px(2, 32, 32), -2)
    sm = SiglipModel(SiglipConfig(
        vision_config=tiny_siglip(hidden=32, layers=2, patch=4, image=16).config.to_dict(),
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 64})).eval()
    randomize(sm, gen)
    d = os.path.join(root, "siglipmodel")
    sm.save_pretrained(d)
    compare_run(cli, "SiglipModel", d, sm.vision_model, px(2, 16, 16), LAST)

    # the CUDA backend, when there is one
    if cuda_available():
        for dtype in ("f32", "f16", "bf16"):
            compare_run(cli, "clip", os.path.join(root, "clip"), clip, px(2, 40, 48), -2,
                        drop=True, dtype=dtype, interpolate=True, device="cuda")
            compare_run(cli, "siglip", os.path.join(root, "siglip"), sig, px(2, 24, 24), LAST,
                        dtype=dtype, device="cuda")
        d = os.path.join(root, "llava-vision_tower.vision_model")
        compare_run(cli, "llava", d, llava_tower, px(2, 24, 24), None, expect_drop=True,
                    device="cuda")

    # errors: exit 2 with a message that names the problem
    d = os.path.join(root, "clip")
    expect_error(cli, "feature_layer out of range", d, px(1, 32, 32), ["feature_layer=4"], 2,
                 ["feature_layer 4"])
    expect_error(cli, "wrong channel count", d, px(1, 32, 32)[:, :2], [], 2, ["pixel_values"])
    expect_error(cli, "input smaller than a patch", d, px(1, 4, 32), [], 2, ["patch"])
    bad = os.path.join(root, "bad-heads")
    cfg = clip.config.to_dict()
    cfg["num_attention_heads"] = 5
    write_folder(bad, cfg, vision_state(clip))
    expect_error(cli, "hidden_size % heads", bad, px(1, 32, 32), [], 2, ["num_attention_heads"])
    bad = os.path.join(root, "missing-tensor")
    t = vision_state(clip)
    del t["encoder.layers.1.mlp.fc2.weight"]
    write_folder(bad, clip.config.to_dict(), t)
    expect_error(cli, "missing tensor", bad, px(1, 32, 32), [], 2,
                 ["encoder.layers.1.mlp.fc2.weight"])
    bad = os.path.join(root, "unknown-arch")
    write_folder(bad, {"architectures": ["ViTModel"], "model_type": "vit"}, {"x": torch.zeros(1)})
    expect_error(cli, "unknown architecture", bad, px(1, 32, 32), [], 2, ["ViTModel"])


# ---- preprocessing through ctypes -----------------------------------------------------------

CLIP_ARCH, SIGLIP_ARCH = 0, 1
PAD_FIT, CROP_FIT = 0, 1  # setok_image_fit
LIB = None  # libsetok through ctypes, loaded in main()


def cuda_available():
    """Whether libsetok can create its CUDA backend here (compiled in and a GPU present)."""
    be, err = ctypes.c_void_p(), SetokError()
    if LIB.setok_backend_cuda_create(ctypes.byref(be), 0, ctypes.byref(err)) != 0:
        print(f"skip  cuda cases: {err.message.decode()}")
        return False
    LIB.setok_backend_free(be)
    return True


def load_library():
    err_p, vp, i, pi = (ctypes.POINTER(SetokError), ctypes.c_void_p, ctypes.c_int,
                        ctypes.POINTER(ctypes.c_int))
    return setok_ctypes.load_library({
        "setok_vit_preprocessor_load": [vp, ctypes.c_char_p, i, err_p],
        "setok_vit_preprocess_size": [vp, i, i, pi, pi, ("restype", None)],
        "setok_vit_preprocess": [vp, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                 ctypes.POINTER(SetokImage), err_p],
        "setok_vit_preprocess_fit_size": [vp, i, i, i, pi, pi, ("restype", None)],
        "setok_vit_preprocess_fit": [vp, i, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                     ctypes.POINTER(SetokImage), err_p],
        "setok_backend_cuda_create": [ctypes.POINTER(vp), i, err_p],
        "setok_backend_free": [vp, ("restype", None)],
    })


class Preprocessor:
    """setok_vit_preprocessor in an opaque buffer (its fields are not mirrored here)."""

    def __init__(self, lib, folder, arch):
        self.lib, self.buf = lib, ctypes.create_string_buffer(4096)
        err = SetokError()
        if lib.setok_vit_preprocessor_load(self.buf, folder.encode(), arch, ctypes.byref(err)):
            raise RuntimeError(err.message.decode())

    def __call__(self, arr, fit=None):
        """setok_vit_preprocess, or with fit (PAD_FIT, CROP_FIT) setok_vit_preprocess_fit."""
        arr = np.ascontiguousarray(arr, np.uint8)
        h, w = arr.shape[:2]
        ch = 1 if arr.ndim == 2 else arr.shape[2]
        img = SetokImage(w, h, ch, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        ow, oh = ctypes.c_int(), ctypes.c_int()
        if fit is None:
            self.lib.setok_vit_preprocess_size(self.buf, w, h, ctypes.byref(ow), ctypes.byref(oh))
        else:
            self.lib.setok_vit_preprocess_fit_size(self.buf, fit, w, h, ctypes.byref(ow),
                                                   ctypes.byref(oh))
        out = np.zeros((3, oh.value, ow.value), np.float32)
        err = SetokError()
        out_p = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if fit is None:
            st = self.lib.setok_vit_preprocess(self.buf, out_p, out.size, ctypes.byref(img),
                                               ctypes.byref(err))
        else:
            st = self.lib.setok_vit_preprocess_fit(self.buf, fit, out_p, out.size,
                                                   ctypes.byref(img), ctypes.byref(err))
        if st:
            raise RuntimeError(err.message.decode())
        return out


def natural_image(rng, h, w, channels):
    """Smooth gradients plus noise: exercises the resampling filters like a photo would."""
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for _ in range(channels):
        fx, fy, ph = rng.uniform(0.01, 0.3), rng.uniform(0.01, 0.3), rng.uniform(0, 6.3)
        v = 127 + 100 * np.sin(fx * x + fy * y + ph) + rng.normal(0, 20, (h, w))
        planes.append(v)
    img = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def pad_to_square(img, background):
    """LLaVA-1.5's image_aspect_ratio "pad" (llava/mm_utils.py expand2square): the image
    pasted onto a square of the background colour, centred along its short side."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    square = Image.new(img.mode, (side, side), background)
    square.paste(img, ((side - w) // 2, (side - h) // 2))
    return square


def test_pad_to_square(lib, root, rng):
    """setok_vit_preprocess_fit(PAD) on non-square images vs LLaVA's padding followed by the
    HF processor; CROP is the processor alone."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}
    cases = [
        ("clip defaults", None, CLIP_ARCH, CLIPImageProcessorPil()),
        ("clip 40/36", "clip-40", CLIP_ARCH, None),
        ("siglip 30x26", "siglip-30", SIGLIP_ARCH, None),
    ]
    for name, sub, arch, proc in cases:
        folder = os.path.join(root, sub or "no-preprocessor")
        if proc is None:
            proc = (CLIPImageProcessorPil if arch == CLIP_ARCH
                    else SiglipImageProcessorPil).from_pretrained(folder)
        engine = Preprocessor(lib, folder, arch)
        background = tuple(int(m * 255) for m in proc.image_mean)
        worst, worst_crop = 0.0, 0.0
        for i, (h, w, channels) in enumerate([(60, 170, 3), (233, 91, 3), (47, 120, 1),
                                              (150, 77, 4), (64, 64, 3)]):
            arr = natural_image(rng, h, w, channels)
            pil = Image.fromarray(arr, mode[channels])
            if channels == 4:
                arr[..., 3] = rng.integers(0, 256, (h, w))
                pil = Image.fromarray(arr, "RGBA")
                white = Image.new("RGBA", pil.size, (255, 255, 255, 255))
                pil = Image.alpha_composite(white, pil)
            rgb = pil.convert("RGB")
            ref = proc(pad_to_square(rgb, background),
                       return_tensors="np")["pixel_values"][0].astype(np.float64)
            got = engine(arr, PAD_FIT)
            if got.shape != ref.shape:
                R.check(f"pad {name} {h}x{w}x{channels}", False, f"shape {got.shape} vs {ref.shape}")
                worst = float("inf")
                continue
            worst = max(worst, float(np.abs(got - ref).max()))
            crop = proc(rgb, return_tensors="np")["pixel_values"][0].astype(np.float64)
            worst_crop = max(worst_crop, float(np.abs(engine(arr, CROP_FIT) - crop).max()))
        R.check(f"pad to square {name}", worst <= 1e-5, f"max abs error {worst:.2e}")
        R.check(f"crop fit {name}", worst_crop <= 1e-5, f"max abs error {worst_crop:.2e}")


def test_preprocessing(lib, root, rng):
    mode = {1: "L", 3: "RGB", 4: "RGBA"}
    cases = [
        ("clip defaults (no file)", None, CLIP_ARCH, CLIPImageProcessorPil()),
        ("siglip defaults (no file)", None, SIGLIP_ARCH, SiglipImageProcessorPil()),
        ("clip 40/36", "clip-40", CLIP_ARCH,
         CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 36, "width": 30})),
        ("siglip 30x26", "siglip-30", SIGLIP_ARCH,
         SiglipImageProcessorPil(size={"height": 30, "width": 26})),
        ("clip bilinear, no normalize", "clip-bilinear", SIGLIP_ARCH,
         CLIPImageProcessorPil(size={"shortest_edge": 20}, crop_size={"height": 20, "width": 20},
                               resample=2, do_normalize=False)),
        ("legacy ints (feature extractor)", "legacy", SIGLIP_ARCH, None),
    ]
    for name, sub, arch, proc in cases:
        folder = os.path.join(root, sub or "no-preprocessor")
        os.makedirs(folder, exist_ok=True)
        if sub == "legacy":
            with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
                json.dump({"feature_extractor_type": "CLIPFeatureExtractor", "size": 48,
                           "crop_size": 40, "resample": 3, "do_center_crop": True,
                           "image_mean": [0.48145466, 0.4578275, 0.40821073],
                           "image_std": [0.26862954, 0.26130258, 0.27577711]}, f)
            proc = CLIPImageProcessorPil(size=48, crop_size=40)
        elif sub:
            proc.save_pretrained(folder)
        engine = Preprocessor(lib, folder, arch)
        worst = 0.0
        for i in range(6):
            h, w = int(rng.integers(8, 300)), int(rng.integers(8, 300))
            channels = (3, 3, 4, 1, 3, 4)[i]
            arr = natural_image(rng, h, w, channels)
            if channels == 4:
                arr[..., 3] = rng.integers(0, 256, (h, w))
            ref = proc(Image.fromarray(arr, mode[channels]),
                       return_tensors="np")["pixel_values"][0].astype(np.float64)
            got = engine(arr)
            if got.shape != ref.shape:
                R.check(f"preprocess {name} {h}x{w}x{channels}", False,
                        f"shape {got.shape} vs {ref.shape}")
                worst = float("inf")
                continue
            worst = max(worst, float(np.abs(got - ref).max()))
        R.check(f"preprocess {name}", worst <= 1e-5, f"max abs error {worst:.2e}")

    test_pad_to_square(lib, root, rng)

    # every (value, alpha) pair through convert_to_rgb alone: compositing onto white exactly
    folder = os.path.join(root, "convert-only")
    proc = CLIPImageProcessorPil(do_resize=False, do_center_crop=False, do_rescale=False,
                                 do_normalize=False)
    proc.save_pretrained(folder)
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    arr = np.stack([c, 255 - c, c, a], -1).astype(np.uint8)
    ref = np.asarray(proc(Image.fromarray(arr, "RGBA"), return_tensors="np")["pixel_values"][0],
                     np.float64)
    got = Preprocessor(lib, folder, CLIP_ARCH)(arr)
    R.check("preprocess RGBA onto white, all 65536 (value, alpha)", np.array_equal(got, ref),
            f"mismatches {int((got != ref).sum())}")

    # for information: the default (torchvision) backend resamples differently from PIL
    try:
        from transformers import CLIPImageProcessor
        tv = CLIPImageProcessor()
        if tv.__class__ is not CLIPImageProcessorPil:
            arr = natural_image(rng, 180, 240, 3)
            ref = tv(Image.fromarray(arr), return_tensors="np")["pixel_values"][0]
            got = Preprocessor(lib, os.path.join(root, "no-preprocessor"), CLIP_ARCH)(arr)
            print(f"info  torchvision CLIPImageProcessor vs engine: max abs "
                  f"{np.abs(got - ref).max():.3f} (not checked)")
    except Exception as e:  # pragma: no cover - informational only
        print(f"info  torchvision backend not compared: {e}")


def main():
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
    rng = np.random.default_rng(seed)
    global LIB
    LIB = load_library()
    with tempfile.TemporaryDirectory() as root:
        test_models(args.cli, root, gen)
        test_preprocessing(LIB, os.path.join(root, "pre"), rng)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
