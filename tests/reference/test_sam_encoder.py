#!/usr/bin/env python3
"""test_sam_encoder.py — SAM's image encoder (engine/models/sam-vision.c), its processor
(sam-preprocess.c) and a SAM folder segmenting by points and boxes, against transformers'
SamModel, SamProcessor and SamImageProcessor (its PIL backend).

Tiny random SamModel folders are written by transformers itself (save_pretrained, the
processor's save_pretrained beside it): windowed blocks whose grid needs padding, global
blocks, decomposed relative positions (also with rel_pos tables of another length, which
transformers interpolates), a window that divides the grid, every block global, no relative
or absolute positions, no qkv bias. Weights are drawn with a fixed torch seed; inputs are
fresh random tensors and images of odd, non-square sizes.
- `setok forward DIR` on pixel_values: image_embeddings vs SamModel.get_image_embeddings,
  max|got - ref| / max|ref| <= 1e-4 in f32 (1e-2 f16 on cpu-reference; CUDA when present);
  pixel_values with prompts: pred_masks and iou_scores vs SamModel(pixel_values, ...).
- setok_sam_preprocess (ctypes) vs SamImageProcessorPil's pixel_values (RGB, gray, RGBA).
- `setok segment IMAGE --model DIR` (points, background points, a box, --multimask,
  --all-masks) vs SamProcessor + SamModel + post_process_masks: the predicted IoU, and every
  pixel of every mask where the reference logit is not within a hair of the threshold.
- setok_sam_vision_forward through ctypes: the arena's peak within its stated size, cancel.
- the segmenter through ctypes: one encoder run per image however many clicks.
- bad folders and bad prompts: exit 2 and a message naming the problem.
Usage: test_sam_encoder.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch, transformers or PIL is missing.
"""
import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile

import setok_ctypes
from checks import Results, rel_err
from setok_ctypes import Arena, ModelOptions, SetokError, SetokImage, Tensor

try:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 4e-2}
R = Results()


# ---- models ---------------------------------------------------------------------------------

def tiny_sam(gen, image=128, patch=16, hidden=32, heads=2, layers=4, window=3, globals_=(1, 3),
             out=32, **vision):
    """A SamModel with random weights of some spread: relative and absolute positions are not
    the zeros transformers starts them at."""
    vc = dict(hidden_size=hidden, output_channels=out, num_hidden_layers=layers,
              num_attention_heads=heads, image_size=image, patch_size=patch,
              num_pos_feats=out // 2, global_attn_indexes=list(globals_), window_size=window,
              mlp_dim=48)
    vc.update(vision)
    cfg = SamConfig(
        vision_config=vc,
        prompt_encoder_config=dict(hidden_size=out, image_size=image, patch_size=patch,
                                   mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=out, mlp_dim=2 * out, num_hidden_layers=2,
                                 num_attention_heads=2, iou_head_hidden_dim=24))
    model = SamModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if p.ndim == 1 else 0.2
            if "positional_embedding" in name or "rel_pos" in name:
                scale = 1.0
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
                continue
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        model.prompt_encoder.shared_embedding.positional_embedding.copy_(
            model.shared_image_embedding.positional_embedding)
        # mask logits of both signs across an image, so that the masks compared have edges
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.bias.zero_()
        model.mask_decoder.upscale_conv2.bias.zero_()
    return model


def processor_for(model):
    s = model.config.vision_config.image_size
    return SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": s}, pad_size={"height": s, "width": s}))


def save(model, path, layout="processor"):
    """The model and its processor as transformers writes them (processor_config.json), or
    with the image processor's settings in preprocessor_config.json (the hub's layout)."""
    model.save_pretrained(path)
    proc = processor_for(model)
    if layout == "processor":
        proc.save_pretrained(path)
    elif layout == "preprocessor":
        proc.image_processor.save_pretrained(path)
    return path


def state(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def write_folder(path, config, tensors, model=None):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    if model is not None:
        processor_for(model).save_pretrained(path)
    return path


# ---- running the CLI ------------------------------------------------------------------------

def forward(cli, folder, inputs, sets=(), dtype="f32", device="cpu"):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in inputs.items()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--device", device,
               "--dtype", dtype] + [a for s in sets for a in ("--set", s)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def check_close(label, out, name, want, dtype):
    e = rel_err(out[name], want)
    R.check(label, e <= TOLERANCE[dtype], f"{name} {list(out[name].shape)} {e:.2e}")


def check_encoder(cli, label, folder, model, px, dtype="f32", device="cpu"):
    with torch.no_grad():
        want = model.get_image_embeddings(px).numpy()
    rc, msg, out = forward(cli, folder, {"pixel_values": px}, dtype=dtype, device=device)
    label = f"encoder {label} {dtype} {device}"
    if rc != 0:
        R.check(label, False, f"exit {rc}: {msg}")
        return
    check_close(label, out, "image_embeddings", want, dtype)


def expect_error(label, cmd, words, code=2):
    p = subprocess.run(cmd, capture_output=True, text=True)
    ok = p.returncode == code and all(w in p.stderr for w in words)
    R.check(label, ok, f"exit {p.returncode}: {p.stderr.strip()}")


# ---- the encoder ----------------------------------------------------------------------------

def test_encoders(cli, root, gen, cuda):
    """Configurations of the encoder through `setok forward`, and the whole SamModel on
    pixel_values with prompts."""
    variants = [
        ("windows 3 on an 8 grid (padded), global 1 and 3", {}, "processor"),
        ("window 4 dividing the grid, heads of 16, mlp_ratio 2",
         dict(hidden=48, heads=3, window=4, globals_=(0,), mlp_dim=None, mlp_ratio=2.0),
         "preprocessor"),
        ("window 5, 12 grid, 3 blocks, no qkv bias", dict(image=96, patch=8, layers=3, window=5,
                                                         globals_=(2,), qkv_bias=False),
         "processor"),
        ("every block global (window 0)", dict(layers=2, window=0, globals_=()), "processor"),
        ("no relative or absolute positions, window 5 larger than the grid",
         dict(layers=2, window=5, globals_=(), use_rel_pos=False, use_abs_pos=False),
         "processor"),
    ]
    folders = []
    for i, (label, kw, layout) in enumerate(variants):
        model = tiny_sam(gen, **kw)
        d = save(model, os.path.join(root, f"sam-{i}"), layout)
        s = model.config.vision_config.image_size
        check_encoder(cli, label, d, model, torch.randn(2, 3, s, s, generator=gen))
        folders.append((model, d))
    model, d = folders[0]
    px = torch.randn(1, 3, 128, 128, generator=gen)
    check_encoder(cli, "windows 3", d, model, px, "f16", "cpu-reference")
    if cuda:
        for dtype in ("f32", "f16", "bf16"):
            check_encoder(cli, "windows 3", d, model, px, dtype, "cuda")

    # rel_pos tables of other lengths: transformers interpolates them (get_rel_pos)
    model = tiny_sam(gen)
    with torch.no_grad():
        for i, n in ((0, 9), (1, 11), (2, 3)):
            attn = model.vision_encoder.layers[i].attn
            d_head = attn.rel_pos_h.shape[1]
            attn.rel_pos_h = torch.nn.Parameter(torch.randn(n, d_head, generator=gen))
            attn.rel_pos_w = torch.nn.Parameter(torch.randn(n + 2, d_head, generator=gen))
    d = write_folder(os.path.join(root, "sam-interp"), model.config.to_dict(), state(model), model)
    check_encoder(cli, "rel_pos of other lengths (interpolated)", d, model,
                  torch.randn(2, 3, 128, 128, generator=gen))

    # the whole model on pixel_values with points and a box
    model, d = folders[0]
    px = torch.randn(2, 3, 128, 128, generator=gen)
    pts = torch.rand(2, 1, 2, 2, generator=gen) * 128
    labels = torch.tensor([[[1, 0]], [[1, 1]]])
    boxes = torch.tensor([[[10.0, 20.0, 90.0, 100.0]], [[0.0, 5.0, 64.0, 40.0]]])
    for multimask in (True, False):
        with torch.no_grad():
            o = model(pixel_values=px, input_points=pts, input_labels=labels, input_boxes=boxes,
                      multimask_output=multimask)
        rc, msg, out = forward(cli, d, {"pixel_values": px, "input_points": pts,
                                        "input_labels": labels, "input_boxes": boxes},
                               [f"multimask={int(multimask)}"])
        label = f"SamModel(pixel_values, points, box) multimask={int(multimask)}"
        if rc != 0:
            R.check(label, False, f"exit {rc}: {msg}")
            continue
        check_close(label, out, "pred_masks", o.pred_masks[:, 0].numpy(), "f32")
        check_close(label, out, "iou_scores", o.iou_scores[:, 0].numpy(), "f32")
    return folders


# ---- images ---------------------------------------------------------------------------------

def photo(gen, w, h, mode="RGB"):
    """A smooth random picture: a few soft blobs of colour over a gradient."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        img[..., c] = 60 + 80 * (x / w if c == 0 else y / h if c == 1 else 0.5)
    for _ in range(4):
        cx, cy, r = (torch.rand(3, generator=gen).numpy() * [w, h, 0.4 * min(w, h)]).tolist()
        color = torch.rand(3, generator=gen).numpy() * 255
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (r + 3) ** 2))[..., None]
        img = img * (1 - blob) + color * blob
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if mode == "RGBA":
        a = (np.arange(w * h).reshape(h, w) * 37 % 256).astype(np.uint8)
        im = Image.fromarray(np.dstack([np.array(im), a]), "RGBA")
    return im.convert(mode) if mode == "L" else im


# ---- the processor through ctypes -----------------------------------------------------------

def load_library():
    err_p, vp, i = ctypes.POINTER(SetokError), ctypes.c_void_p, ctypes.c_int
    img_p = ctypes.POINTER(SetokImage)
    return setok_ctypes.load_library({
        "setok_backend_cpu_create": [ctypes.POINTER(vp), i, err_p],
        "setok_backend_cuda_create": [ctypes.POINTER(vp), i, err_p],
        "setok_backend_free": [vp, ("restype", None)],
        "setok_sam_vision_load": [ctypes.POINTER(vp), ctypes.c_char_p, vp, i, i, err_p],
        "setok_sam_vision_free": [vp, ("restype", None)],
        "setok_sam_vision_get_preprocessor": [vp, ("restype", vp)],
        "setok_sam_preprocess": [vp, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, img_p,
                                 err_p],
        "setok_image_load": [img_p, ctypes.c_char_p, ctypes.c_size_t, err_p],
        "setok_image_free": [img_p, ("restype", None)],
        "setok_model_options_default": [ctypes.POINTER(ModelOptions), ("restype", None)],
        "setok_model_open": [ctypes.POINTER(vp), ctypes.c_char_p, ctypes.POINTER(ModelOptions),
                             err_p],
        "setok_model_free": [vp, ("restype", None)],
        "setok_model_encode_count": [vp, ("restype", i)],
        "setok_segmenter_new": [ctypes.POINTER(vp), vp, err_p],
        "setok_segmenter_free": [vp, ("restype", None)],
        "setok_segmenter_run": [vp, img_p, ctypes.c_char_p, ctypes.c_void_p, i, ctypes.c_void_p,
                                ctypes.c_void_p, err_p],
        "setok_segment_result_free": [ctypes.c_void_p, ("restype", None)],
        "setok_sam_vision_arena_bytes": [vp, ctypes.c_int64, ("restype", ctypes.c_size_t)],
        "setok_sam_vision_forward": [vp, ctypes.POINTER(Arena), ctypes.POINTER(Tensor),
                                     ctypes.POINTER(Tensor), ctypes.POINTER(ctypes.c_bool),
                                     err_p],
        "setok_arena_init": [ctypes.POINTER(Arena), vp, ctypes.c_size_t, err_p],
        "setok_arena_destroy": [ctypes.POINTER(Arena), ("restype", None)],
        "setok_tensor_alloc": [ctypes.POINTER(Tensor), vp, i, i, ctypes.POINTER(ctypes.c_int64),
                               err_p],
        "setok_tensor_free": [ctypes.POINTER(Tensor), ("restype", None)],
        "setok_tensor_upload": [ctypes.POINTER(Tensor), vp, err_p],
        "setok_tensor_download": [vp, ctypes.POINTER(Tensor), err_p],
    })


def cuda_available(lib):
    be, err = ctypes.c_void_p(), SetokError()
    if lib.setok_backend_cuda_create(ctypes.byref(be), 0, ctypes.byref(err)) != 0:
        print(f"skip  cuda cases: {err.message.decode()}")
        return False
    lib.setok_backend_free(be)
    return True


def test_preprocess(lib, folder, root, gen):
    err, be, enc = SetokError(), ctypes.c_void_p(), ctypes.c_void_p()
    if lib.setok_backend_cpu_create(ctypes.byref(be), 1, ctypes.byref(err)) or \
            lib.setok_sam_vision_load(ctypes.byref(enc), folder.encode(), be, 0, 0,
                                      ctypes.byref(err)):
        R.check("processor: load", False, err.message.decode())
        return
    pp = lib.setok_sam_vision_get_preprocessor(enc)
    proc = SamImageProcessorPil.from_pretrained(folder)
    for w, h, mode in ((97, 53, "RGB"), (40, 171, "L"), (128, 128, "RGBA"), (300, 299, "RGB")):
        path = os.path.join(root, f"pp-{w}x{h}-{mode}.png")
        photo(gen, w, h, mode).save(path)
        want = proc(images=Image.open(path), return_tensors="np")["pixel_values"][0]
        img = SetokImage()
        out = np.zeros(want.size, np.float32)
        st = lib.setok_image_load(ctypes.byref(img), path.encode(), 0, ctypes.byref(err))
        if st == 0:
            st = lib.setok_sam_preprocess(pp, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                          out.size, ctypes.byref(img), ctypes.byref(err))
        lib.setok_image_free(ctypes.byref(img))
        e = float(np.abs(out.reshape(want.shape) - want).max()) if st == 0 else float("inf")
        R.check(f"processor {w}x{h} {mode} vs SamImageProcessor", e <= 1e-5,
                f"max |diff| {e:.2e} {err.message.decode() if st else ''}")
    lib.setok_sam_vision_free(enc)
    lib.setok_backend_free(be)


SETOK_ERR_CANCELLED = 6


def test_api(lib, model, folder, gen):
    """setok_sam_vision_forward called directly: SamModel's embeddings, the arena's peak within
    setok_sam_vision_arena_bytes, and a set cancel flag stopping it with the arena as it was."""
    err, be, enc = SetokError(), ctypes.c_void_p(), ctypes.c_void_p()
    if lib.setok_backend_cpu_create(ctypes.byref(be), 1, ctypes.byref(err)) or \
            lib.setok_sam_vision_load(ctypes.byref(enc), folder.encode(), be, 0, 0,
                                      ctypes.byref(err)):
        R.check("C API: load", False, err.message.decode())
        return
    s = model.config.vision_config.image_size
    px = torch.randn(2, 3, s, s, generator=gen)
    host = px.numpy().copy()
    pixels, emb, arena = Tensor(), Tensor(), Arena()
    need = lib.setok_sam_vision_arena_bytes(enc, 2)
    st = lib.setok_tensor_alloc(ctypes.byref(pixels), be, 0, 4,
                                (ctypes.c_int64 * 4)(*host.shape), ctypes.byref(err))
    st = st or lib.setok_tensor_upload(ctypes.byref(pixels), host.ctypes.data, ctypes.byref(err))
    st = st or lib.setok_arena_init(ctypes.byref(arena), be, need, ctypes.byref(err))
    st = st or lib.setok_sam_vision_forward(enc, ctypes.byref(arena), ctypes.byref(emb),
                                            ctypes.byref(pixels), None, ctypes.byref(err))
    got = np.zeros([emb.shape[i] for i in range(4)], np.float32) if st == 0 else None
    st = st or lib.setok_tensor_download(got.ctypes.data, ctypes.byref(emb), ctypes.byref(err))
    if st != 0:
        R.check("C API: forward", False, err.message.decode())
    else:
        with torch.no_grad():
            e = rel_err(got, model.get_image_embeddings(px).numpy())
        R.check("C API: image embeddings", e <= TOLERANCE["f32"], f"{e:.2e}")
        R.check("C API: arena peak within setok_sam_vision_arena_bytes", arena.peak <= need,
                f"peak {arena.peak} of {need} bytes")
        used, cancel = arena.used, ctypes.c_bool(True)
        st = lib.setok_sam_vision_forward(enc, ctypes.byref(arena), ctypes.byref(emb),
                                          ctypes.byref(pixels), ctypes.byref(cancel),
                                          ctypes.byref(err))
        msg = err.message.decode()
        R.check("C API: cancel", st == SETOK_ERR_CANCELLED and "cancelled" in msg and
                arena.used == used, f"status {st}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(arena))
    lib.setok_tensor_free(ctypes.byref(pixels))
    lib.setok_sam_vision_free(enc)
    lib.setok_backend_free(be)


# ---- end to end -----------------------------------------------------------------------------

def reference_masks(model, image, points, labels, box, multimask):
    """SamProcessor + SamModel + post_process_masks (unthresholded) for one prompt."""
    proc = processor_for(model)
    kw = {}
    if points:
        kw.update(input_points=[[points]], input_labels=[[labels]])
    if box:
        kw.update(input_boxes=[[box]])
    inp = proc(images=image, return_tensors="pt", **kw)
    with torch.no_grad():
        o = model(pixel_values=inp["pixel_values"], input_points=inp.get("input_points"),
                  input_labels=inp.get("input_labels"), input_boxes=inp.get("input_boxes"),
                  multimask_output=multimask)
    logits = proc.post_process_masks(o.pred_masks, inp["original_sizes"],
                                     inp["reshaped_input_sizes"], binarize=False)[0][0]
    return logits.numpy(), o.iou_scores[0, 0].numpy()


def same_mask(label, got, logits):
    """Every pixel agrees except where the reference logit is within 1e-3 of the threshold
    (relative to its largest magnitude): float32 rounding may flip those. A mask that is all
    object or all background would prove little, so it fails too."""
    want = logits > 0
    close = np.abs(logits) <= 1e-3 * max(np.abs(logits).max(), 1e-30)
    bad = (got != want) & ~close
    frac = want.mean()
    R.check(label, got.shape == want.shape and not bad.any() and 0.005 < frac < 0.995,
            f"{int(bad.sum())} pixels differ beyond the threshold band, {int((got != want).sum())}"
            f" in all; object covers {100 * frac:.1f}%")


def segment(cli, folder, image_path, out, points, labels, box, multimask, all_masks):
    cmd = [cli, "segment", image_path, "--model", folder, "-o", out, "--json"]
    for (x, y), lab in zip(points, labels):
        cmd += ["--point" if lab == 1 else "--background", f"{x},{y}"]
    if box:
        cmd += ["--box", ",".join(str(v) for v in box)]
    if multimask:
        cmd += ["--multimask"]
    if all_masks:
        cmd += ["--all-masks"]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_end_to_end(cli, folders, root, gen):
    cases = [
        ("1 point", 97, 53, [(30, 20)], [1], None, False, False),
        ("fg + bg points, tall image", 64, 150, [(20, 100), (40, 30)], [1, 0], None, False,
         False),
        ("box", 200, 131, [], [], [30, 20, 150, 110], False, False),
        ("points + box, multimask", 131, 200, [(60, 90), (10, 10)], [1, 0], [5, 40, 120, 190],
         True, False),
        ("1 point, all three masks", 160, 90, [(100, 45)], [1], None, True, True),
    ]
    for fi, (model, d) in enumerate(folders[:2]):
        for label, w, h, points, labels, box, multimask, all_masks in cases:
            name = f"segment [{fi}] {label} {w}x{h}"
            path = os.path.join(root, f"e2e-{fi}-{w}x{h}.png")
            image = photo(gen, w, h)
            image.save(path)
            out = os.path.join(root, f"mask-{fi}-{w}x{h}.png")
            p = segment(cli, d, path, out, points, labels, box, multimask, all_masks)
            if p.returncode != 0:
                R.check(name, False, f"exit {p.returncode}: {p.stderr.strip()}")
                continue
            report = json.loads(p.stdout)
            logits, iou = reference_masks(model, image, [list(q) for q in points], labels, box,
                                          multimask)
            best = int(np.argmax(iou))
            R.check(f"{name}: predicted IoU", abs(report["score"] - iou[best]) <=
                    1e-4 * max(1.0, abs(iou[best])), f"{report['score']:.6f} vs {iou[best]:.6f}")
            same_mask(f"{name}: mask", np.array(Image.open(out)) > 127, logits[best])
            if all_masks:
                ok = len(report.get("masks", [])) == len(iou)
                for k, entry in enumerate(report.get("masks", [])):
                    ok = ok and abs(entry["score"] - iou[k]) <= 1e-4 * max(1.0, abs(iou[k]))
                    same_mask(f"{name}: mask {k + 1} of {len(iou)}",
                              np.array(Image.open(entry["output"])) > 127, logits[k])
                R.check(f"{name}: every mask's score", ok,
                        json.dumps(report.get("masks", [])))


def test_cache(lib, folder, root, gen):
    """One encoder run per image: clicks on the same image reuse its embedding."""
    err, m, seg = SetokError(), ctypes.c_void_p(), ctypes.c_void_p()
    opts = ModelOptions()
    lib.setok_model_options_default(ctypes.byref(opts))
    opts.device, opts.threads = b"cpu", 1
    st = lib.setok_model_open(ctypes.byref(m), folder.encode(), ctypes.byref(opts),
                              ctypes.byref(err))
    if st == 0:
        st = lib.setok_segmenter_new(ctypes.byref(seg), m, ctypes.byref(err))
    if st != 0:
        R.check("cache: open", False, err.message.decode())
        return

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("foreground", ctypes.c_bool)]

    # a setok_segment_result (far smaller than this), which the engine fills and frees
    result = ctypes.create_string_buffer(1 << 16)
    counts = []
    for i, (name, xy) in enumerate((("a", (5, 5)), ("a", (40, 30)), ("a", (10, 60)),
                                    ("b", (5, 5)))):
        path = os.path.join(root, f"cache-{name}.png")
        if not os.path.exists(path):
            photo(gen, 80, 70).save(path)
        img = SetokImage()
        lib.setok_image_load(ctypes.byref(img), path.encode(), 0, ctypes.byref(err))
        pt = Point(xy[0], xy[1], True)
        st = lib.setok_segmenter_run(seg, ctypes.byref(img), None, ctypes.byref(pt), 1, None,
                                     ctypes.byref(result), ctypes.byref(err))
        lib.setok_segment_result_free(ctypes.byref(result))
        lib.setok_image_free(ctypes.byref(img))
        counts.append(lib.setok_model_encode_count(m) if st == 0 else -1)
    R.check("cache: three clicks on one image, one on another -> two encoder runs",
            counts == [1, 1, 1, 2], f"encoder runs after each click {counts}")
    lib.setok_segmenter_free(seg)
    lib.setok_model_free(m)


# ---- bad input ------------------------------------------------------------------------------

def test_errors(cli, folders, root, gen):
    model, good = folders[0]
    img = os.path.join(root, "err.png")
    photo(gen, 50, 40).save(img)
    out = os.path.join(root, "err-mask.png")
    seg = [cli, "segment", img, "-o", out, "--model"]

    bad = os.path.join(root, "broken-config")
    shutil.copytree(good, bad)
    with open(os.path.join(bad, "config.json"), "w") as f:
        f.write('{"architectures": ["SamModel"], "model_type": "sam", "vision_config": {')
    expect_error("broken config.json", seg + [bad, "--point", "5,5"], ["config.json"])

    cfg = model.config.to_dict()
    cfg["vision_config"]["num_attention_heads"] = 3
    d = write_folder(os.path.join(root, "bad-heads"), cfg, state(model), model)
    expect_error("heads that do not divide hidden_size", seg + [d, "--point", "5,5"],
                 ["num_attention_heads"])

    cfg = model.config.to_dict()
    cfg["vision_config"]["output_channels"] = 16
    d = write_folder(os.path.join(root, "bad-neck"), cfg, state(model), model)
    expect_error("neck of the wrong width", seg + [d, "--point", "5,5"],
                 ["vision_encoder.neck.conv1.weight"])

    other = tiny_sam(gen, output_channels=16, num_pos_feats=16)
    d = save(other, os.path.join(root, "bad-fit"))
    expect_error("an image embedding narrower than the mask decoder", seg + [d, "--point", "5,5"],
                 ["output_channels 16", "hidden_size 32"])

    tensors = state(model)
    tensors["vision_encoder.layers.2.mlp.lin1.weight"] = torch.zeros(40, 32)
    d = write_folder(os.path.join(root, "bad-shape"), model.config.to_dict(), tensors, model)
    expect_error("a weight of the wrong shape", seg + [d, "--point", "5,5"],
                 ["vision_encoder.layers.2.mlp.lin1.weight"])

    tensors = state(model)
    del tensors["vision_encoder.layers.1.attn.rel_pos_w"]
    d = write_folder(os.path.join(root, "missing"), model.config.to_dict(), tensors, model)
    expect_error("a missing weight", seg + [d, "--point", "5,5"],
                 ["vision_encoder.layers.1.attn.rel_pos_w"])

    d = os.path.join(root, "small-pad")
    shutil.copytree(good, d)
    with open(os.path.join(d, "processor_config.json")) as f:
        pc = json.load(f)
    pc["image_processor"]["pad_size"] = {"height": 64, "width": 64}
    pc["image_processor"]["size"] = {"longest_edge": 64}
    with open(os.path.join(d, "processor_config.json"), "w") as f:
        json.dump(pc, f)
    expect_error("a processor that pads to another size", seg + [d, "--point", "5,5"],
                 ["pad"])

    expect_error("a point outside the image", seg + [good, "--point", "50,5"], ["outside"])
    expect_error("a box outside the image", seg + [good, "--box", "0,0,51,30"], ["box"])
    expect_error("a box with x0 >= x1", seg + [good, "--box", "30,0,20,30"], ["--box"])
    expect_error("a phrase on a SAM folder", seg + [good, "--text", "the cat"], ["phrase"])
    bundle = os.path.join(os.environ.get("SETOK_SOURCE_ROOT", "."), "data", "models",
                          "setokim-tiny")
    if os.path.isdir(bundle):
        expect_error("a box on a SETOKIM bundle", seg + [bundle, "--box", "0,0,20,20"],
                     ["SAM folder"])
    px = torch.randn(1, 3, 64, 64)
    rc, msg, _ = forward(cli, good, {"pixel_values": px})
    R.check("pixel_values of the wrong size", rc == 2 and "pixel_values" in msg,
            f"exit {rc}: {msg}")


def test_info(cli, folder):
    p = subprocess.run([cli, "info", folder, "--json", "--load"], capture_output=True, text=True)
    try:
        j = json.loads(p.stdout)["model"]
        caps = {c["name"]: c["available"] for c in j["capabilities"]}
        loaded = {c["component"] for c in j["loaded"] if c["loaded"]}
        ok = (j["kind"] == "sam" and caps["segment by points"] and not caps["chat"]
              and {"image_encoder", "mask_decoder"} <= loaded)
    except (ValueError, KeyError) as e:
        ok, caps, loaded = False, str(e), p.stderr
    R.check("setok info: a SAM folder segments by points, both parts load", ok,
            f"{caps} {loaded}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    print(f"seed {args.seed} (transformers {transformers.__version__}, torch {torch.__version__})")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    lib = load_library()
    cuda = cuda_available(lib)
    with tempfile.TemporaryDirectory() as root:
        folders = test_encoders(args.cli, root, gen, cuda)
        test_preprocess(lib, folders[0][1], root, gen)
        test_api(lib, *folders[2], gen)
        test_end_to_end(args.cli, folders, root, gen)
        test_cache(lib, folders[0][1], root, gen)
        test_errors(args.cli, folders, root, gen)
        test_info(args.cli, folders[1][1])
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
