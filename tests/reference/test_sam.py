#!/usr/bin/env python3
"""test_sam.py — SAM's prompt encoder and mask decoder (engine/models/mask-decoder.c) against
transformers' SamModel.

Builds tiny random SamModel configs (small hidden sizes, an 8 x 8 image-embedding grid) with a
fixed torch seed, saves them with save_pretrained (the image encoder's weights stay in the
folder; the engine skips them), runs `SETOK_CLI forward DIR` on fresh random image_embeddings
with point prompts (labels 1, 0, -1 and -10 padding), boxes and mask inputs, and compares
pred_masks and iou_scores with SamModel(image_embeddings=..., input_points=..., input_labels=...,
input_boxes=..., input_masks=...) for multimask_output True and False. Extra sparse embeddings
(how SETOKIM conditions a mask on a vision token or an LLM hidden state) are compared with
SamMaskDecoder called directly on the prompt encoder's sparse embeddings concatenated with them,
with and without points. A tensor passes when
max|got - ref| / max|ref| <= 1e-4 (f32; 1e-2 for f16 and 4e-2 for bf16 on cpu-reference, the
dtype paths the CUDA backend takes). Where libsetok has a usable CUDA device a few cases also run
with --device cuda; otherwise they are skipped. Bad input must fail with exit 2 and a message.
Through ctypes on SETOK_LIB, setok_mask_decoder_forward is also called directly: its result,
the arena's peak against setok_mask_decoder_arena_bytes, and the cancel flag.
Usage: test_sam.py [SETOK_CLI] [--seed N]
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
from setok_ctypes import Arena, SetokError, Tensor
from checks import Results, rel_err  # noqa: E402

try:
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import SamConfig, SamModel
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 4e-2}
R = Results()


# ---- models ---------------------------------------------------------------------------------

def tiny_sam(gen, hidden=32, heads=2, layers=2, final_rate=4, multimask=3, iou_depth=3,
             image=128, patch=16, act="relu"):
    """A SamModel with a tiny vision encoder (unused here) and random weights with some
    spread; the Fourier matrix gets N(0, 1) entries as SAM's own checkpoints have."""
    cfg = SamConfig(
        vision_config=dict(hidden_size=16, output_channels=hidden, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image, patch_size=patch,
                           num_pos_feats=hidden // 2, global_attn_indexes=[0], window_size=4,
                           mlp_dim=32),
        prompt_encoder_config=dict(hidden_size=hidden, image_size=image, patch_size=patch,
                                   mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=2 * hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, attention_downsample_rate=final_rate,
                                 num_multimask_outputs=multimask, iou_head_depth=iou_depth,
                                 iou_head_hidden_dim=24, hidden_act=act))
    model = SamModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if p.ndim == 1 else 0.2
            if "positional_embedding" in name:
                scale = 1.0
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        # the prompt encoder's copy is tied to shared_image_embedding in SamModel
        model.prompt_encoder.shared_embedding.positional_embedding.copy_(
            model.shared_image_embedding.positional_embedding)
    return model


def grid(model):
    return model.config.prompt_encoder_config.image_embedding_size


def decoder_state(model, skip_vision=False):
    """SamModel's tensors (untied copies), without vision_encoder.* when skip_vision."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
            if not (skip_vision and k.startswith("vision_encoder."))}


def write_folder(path, config, tensors):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return path


# ---- running the CLI ------------------------------------------------------------------------

def run_cli(cli, folder, inputs, sets=(), dtype="f32", device="cpu"):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in inputs.items()}, inp)
        cmd = [cli, "forward", folder, "--inputs", inp, "--outputs", out, "--device", device,
               "--dtype", dtype]
        for s in sets:
            cmd += ["--set", s]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip(), None
        return 0, p.stderr.strip(), {k: v.numpy() for k, v in load_file(out).items()}


def compare(cli, label, folder, inputs, masks, iou, multimask, dtype="f32", device="cpu"):
    """Runs the CLI and checks pred_masks / iou_scores against the reference (point batch 1,
    whose axis the engine's outputs do not have)."""
    rc, msg, out = run_cli(cli, folder, inputs, [f"multimask={int(multimask)}"], dtype, device)
    label = f"{label} multimask={int(multimask)} {dtype} {device}"
    if rc != 0:
        R.check(label, False, f"exit {rc}: {msg}")
        return
    want_m, want_i = masks[:, 0].numpy(), iou[:, 0].numpy()
    e1, e2 = rel_err(out["pred_masks"], want_m), rel_err(out["iou_scores"], want_i)
    tol = TOLERANCE[dtype]
    R.check(label, e1 <= tol and e2 <= tol,
            f"pred_masks {list(out['pred_masks'].shape)} {e1:.2e} iou_scores {e2:.2e} "
            f"(max|ref| {np.abs(want_m).max():.2f})")


def expect_error(cli, name, folder, inputs, code, words):
    rc, msg, _ = run_cli(cli, folder, inputs)
    ok = rc == code and all(w in msg for w in words)
    R.check(name, ok, f"exit {rc}: {msg}")


# ---- references -----------------------------------------------------------------------------

def sam_reference(model, emb, points, labels, multimask, boxes=None, masks=None):
    with torch.no_grad():
        o = model(image_embeddings=emb, input_points=points, input_labels=labels,
                  input_boxes=boxes, input_masks=masks, multimask_output=multimask)
    return o.pred_masks, o.iou_scores


def decoder_reference(model, emb, points, labels, extra, multimask):
    """SamMaskDecoder on the prompt encoder's sparse embeddings (if any points) followed by
    extra [B, 1, E, C], as SETOKIM conditions it."""
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(input_points=points, input_labels=labels,
                                             input_boxes=None, input_masks=None)
        sparse = extra if sparse is None else torch.cat([sparse, extra], dim=2)
        pe = model.get_image_wide_positional_embeddings().repeat(emb.shape[0], 1, 1, 1)
        return model.mask_decoder(image_embeddings=emb, image_positional_embeddings=pe,
                                  sparse_prompt_embeddings=sparse,
                                  dense_prompt_embeddings=dense, multimask_output=multimask)


# ---- cases ----------------------------------------------------------------------------------

def random_points(gen, batch, n, image):
    return torch.rand(batch, 1, n, 2, generator=gen) * image


def test_points(cli, root, gen, cuda):
    model = tiny_sam(gen)
    d = os.path.join(root, "sam")
    model.save_pretrained(d)
    C, g, image = 32, grid(model), 128
    cases = [
        ("1 point", 1, torch.tensor([[[1]]])),
        ("fg + bg points", 2, torch.tensor([[[1, 0]], [[0, 1]]])),
        ("point + -10 padding", 2, torch.tensor([[[1, -10]], [[1, 0]]])),
        ("point + -1 not-a-point", 2, torch.tensor([[[0, -1]]])),
    ]
    for name, n, labels in cases:
        batch = labels.shape[0]
        emb = torch.randn(batch, C, g, g, generator=gen)
        pts = random_points(gen, batch, n, image)
        inputs = {"image_embeddings": emb, "input_points": pts,
                  "input_labels": labels.to(torch.int64)}
        for multimask in (True, False):
            masks, iou = sam_reference(model, emb, pts, labels, multimask)
            compare(cli, f"SamModel {name} B={batch}", d, inputs, masks, iou, multimask)
    # 3-D points, labels absent (all foreground, as SamModel fills them)
    emb = torch.randn(2, C, g, g, generator=gen)
    pts = random_points(gen, 2, 3, image)
    masks, iou = sam_reference(model, emb, pts, None, True)
    compare(cli, "SamModel [B, P, 2] points, no labels", d,
            {"image_embeddings": emb, "input_points": pts[:, 0]}, masks, iou, True)
    # no prompt at all: only the output tokens
    masks, iou = sam_reference(model, emb, None, None, True)
    compare(cli, "SamModel no points", d, {"image_embeddings": emb}, masks, iou, True)

    # a folder without the image encoder whose Fourier matrix is only under the prompt
    # encoder's (tied) name
    tensors = decoder_state(model, skip_vision=True)
    del tensors["shared_image_embedding.positional_embedding"]
    alias = write_folder(os.path.join(root, "sam-no-vision"), model.config.to_dict(), tensors)
    compare(cli, "SamModel no vision_encoder, prompt_encoder.shared_embedding", alias,
            {"image_embeddings": emb, "input_points": pts[:, 0]}, *sam_reference(
                model, emb, pts, None, False), False)

    # reduced precision on the reference backend, and the CUDA backend when there is one
    emb = torch.randn(2, C, g, g, generator=gen)
    pts, labels = random_points(gen, 2, 2, image), torch.tensor([[[1, 0]], [[1, -10]]])
    inputs = {"image_embeddings": emb, "input_points": pts, "input_labels": labels}
    masks, iou = sam_reference(model, emb, pts, labels, True)
    for dtype in ("f16", "bf16"):
        compare(cli, "SamModel fg + bg", d, inputs, masks, iou, True, dtype, "cpu-reference")
    if cuda:
        for dtype in ("f32", "f16", "bf16"):
            compare(cli, "SamModel fg + bg", d, inputs, masks, iou, True, dtype, "cuda")
    return model, d


def test_boxes_masks(cli, model, d, gen, cuda):
    """Box prompts (with and without points: no not-a-point padding then) and mask inputs."""
    C, g, image = 32, grid(model), 128
    batch = 2
    emb = torch.randn(batch, C, g, g, generator=gen)
    corners = torch.rand(batch, 1, 2, 2, generator=gen) * image
    boxes = torch.cat([corners.min(2).values, corners.max(2).values], -1)  # [B, 1, 4]
    pts = random_points(gen, batch, 2, image)
    labels = torch.tensor([[[1, 0]], [[0, -10]]])
    mask_in = torch.randn(batch, 1, 4 * g, 4 * g, generator=gen) * 3
    cases = [
        ("box", {"input_boxes": boxes}, dict(boxes=boxes)),
        ("[B, 4] box + points", {"input_boxes": boxes[:, 0], "input_points": pts,
                                 "input_labels": labels},
         dict(points=pts, labels=labels, boxes=boxes)),
        ("mask", {"input_masks": mask_in}, dict(masks=mask_in)),
        ("points + box + mask", {"input_points": pts, "input_labels": labels,
                                 "input_boxes": boxes, "input_masks": mask_in},
         dict(points=pts, labels=labels, boxes=boxes, masks=mask_in)),
    ]
    for name, extra_inputs, kw in cases:
        inputs = {"image_embeddings": emb, **extra_inputs}
        for multimask in (True, False):
            masks, iou = sam_reference(model, emb, kw.get("points"), kw.get("labels"), multimask,
                                       kw.get("boxes"), kw.get("masks"))
            compare(cli, f"SamModel {name}", d, inputs, masks, iou, multimask)
        if cuda and name == "points + box + mask":
            masks, iou = sam_reference(model, emb, pts, labels, True, boxes, mask_in)
            for dtype in ("f32", "f16"):
                compare(cli, f"SamModel {name}", d, inputs, masks, iou, True, dtype, "cuda")


def test_extra(cli, model, d, gen, cuda):
    """Extra sparse embeddings after the points, and on their own."""
    C, g, image = 32, grid(model), 128
    for n, E in ((2, 1), (1, 3), (0, 2)):
        batch = 2
        emb = torch.randn(batch, C, g, g, generator=gen)
        extra = torch.randn(batch, 1, E, C, generator=gen)
        inputs = {"image_embeddings": emb, "sparse_embeddings": extra}
        pts = labels = None
        if n:
            pts = random_points(gen, batch, n, image)
            labels = torch.ones(batch, 1, n, dtype=torch.int64)
            labels[1, 0, -1] = 0
            inputs.update(input_points=pts, input_labels=labels)
        for multimask in (True, False):
            masks, iou = decoder_reference(model, emb, pts, labels, extra, multimask)
            compare(cli, f"SamMaskDecoder {n} points + {E} extra", d, inputs, masks, iou,
                    multimask)
        if n == 0:  # the [B, E, C] spelling too
            inputs["sparse_embeddings"] = extra[:, 0]
            masks, iou = decoder_reference(model, emb, None, None, extra, True)
            compare(cli, "SamMaskDecoder [B, E, C] extra", d, inputs, masks, iou, True)
            if cuda:
                compare(cli, "SamMaskDecoder extra", d, inputs, masks, iou, True, "f32", "cuda")


def test_rectangular_grid(cli, model, d, gen):
    """An h x w grid other than the config's: SamMaskDecoder with the positional encoding of
    the h x w cell centres (SamModel's own formula, per axis) and no_mask_embed everywhere."""
    C, h, w = 32, 6, 10
    emb = torch.randn(2, C, h, w, generator=gen)
    pts, labels = random_points(gen, 2, 1, 128), torch.tensor([[[1]], [[0]]])
    with torch.no_grad():
        sparse, _ = model.prompt_encoder(input_points=pts, input_labels=labels, input_boxes=None,
                                         input_masks=None)
        ones = torch.ones(h, w)
        cells = torch.stack([(ones.cumsum(1) - 0.5) / w, (ones.cumsum(0) - 0.5) / h], -1)
        pe = model.shared_image_embedding(cells).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
        dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, C, 1, 1).expand(2, C, h, w)
        masks, iou = model.mask_decoder(image_embeddings=emb, image_positional_embeddings=pe,
                                        sparse_prompt_embeddings=sparse,
                                        dense_prompt_embeddings=dense, multimask_output=True)
    compare(cli, f"SamMaskDecoder {h}x{w} grid", d,
            {"image_embeddings": emb, "input_points": pts, "input_labels": labels}, masks, iou,
            True)


def test_variants(cli, root, gen):
    """Other shapes of the config: more heads, one layer, 2 multimask outputs, a deeper IoU
    head, gelu in the transformer MLPs, a 16 x 16 grid in a 256 frame."""
    model = tiny_sam(gen, hidden=48, heads=4, layers=1, final_rate=2, multimask=2, iou_depth=4,
                     image=256, act="gelu")
    d = os.path.join(root, "sam-variant")
    model.save_pretrained(d)
    g = grid(model)
    emb = torch.randn(1, 48, g, g, generator=gen)
    pts, labels = random_points(gen, 1, 2, 256), torch.tensor([[[0, 1]]])
    inputs = {"image_embeddings": emb, "input_points": pts, "input_labels": labels}
    for multimask in (True, False):
        masks, iou = sam_reference(model, emb, pts, labels, multimask)
        compare(cli, f"SamModel variant grid {g}", d, inputs, masks, iou, multimask)


def test_errors(cli, model, d, root, gen):
    C, g = 32, grid(model)
    emb = torch.randn(1, C, g, g, generator=gen)
    pts = random_points(gen, 1, 1, 128)
    expect_error(cli, "label 5 is refused", d, {"image_embeddings": emb, "input_points": pts,
                                                 "input_labels": torch.tensor([[[5]]])},
                 2, ["label 5"])
    expect_error(cli, "wrong channel count", d, {"image_embeddings": emb[:, :16]}, 2,
                 ["image_embeddings"])
    expect_error(cli, "image_embeddings missing", d, {"input_points": pts}, 2,
                 ["image_embeddings"])
    expect_error(cli, "points of another batch", d,
                 {"image_embeddings": emb, "input_points": torch.cat([pts, pts])}, 2,
                 ["input_points"])
    expect_error(cli, "point batch 2", d,
                 {"image_embeddings": emb, "input_points": torch.cat([pts, pts], dim=1)}, 2,
                 ["point batch"])
    expect_error(cli, "mask of the wrong size", d,
                 {"image_embeddings": emb, "input_masks": torch.zeros(1, 1, 16, 16)}, 2,
                 ["input mask"])
    expect_error(cli, "two boxes", d,
                 {"image_embeddings": emb, "input_boxes": torch.zeros(1, 2, 4)}, 2,
                 ["input_boxes"])
    expect_error(cli, "extra of the wrong width", d,
                 {"image_embeddings": emb, "sparse_embeddings": torch.zeros(1, 2, 8)}, 2,
                 ["sparse embeddings"])
    bad = write_folder(os.path.join(root, "missing-tensor"), model.config.to_dict(),
                       decoder_state(model))
    tensors = decoder_state(model)
    del tensors["mask_decoder.transformer.layers.1.mlp.lin2.weight"]
    save_file(tensors, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
    expect_error(cli, "missing tensor", bad, {"image_embeddings": emb}, 2,
                 ["mask_decoder.transformer.layers.1.mlp.lin2.weight"])
    cfg = model.config.to_dict()
    cfg["mask_decoder_config"]["num_attention_heads"] = 3
    bad = write_folder(os.path.join(root, "bad-heads"), cfg, {"x": torch.zeros(1)})
    expect_error(cli, "heads do not divide", bad, {"image_embeddings": emb}, 2,
                 ["num_attention_heads"])


# ---- the C API through ctypes ---------------------------------------------------------------

class Prompt(ctypes.Structure):
    """setok_sam_prompt (engine/include/setok/models/mask_decoder.h)."""
    _fields_ = [("points", ctypes.POINTER(ctypes.c_float)),
                ("labels", ctypes.POINTER(ctypes.c_int32)), ("num_points", ctypes.c_int64),
                ("boxes", ctypes.POINTER(ctypes.c_float)), ("masks", ctypes.POINTER(Tensor)),
                ("extra", ctypes.POINTER(Tensor))]


SETOK_ERR_CANCELLED = 6


def load_library():
    err_p, vp, i, sz = ctypes.POINTER(SetokError), ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    tp, i64 = ctypes.POINTER(Tensor), ctypes.c_int64
    return setok_ctypes.load_library({
        "setok_backend_cuda_create": [ctypes.POINTER(vp), i, err_p],
        "setok_backend_cpu_create": [ctypes.POINTER(vp), i, err_p],
        "setok_backend_free": [vp, ("restype", None)],
        "setok_mask_decoder_load": [ctypes.POINTER(vp), ctypes.c_char_p, vp, i, err_p],
        "setok_mask_decoder_free": [vp, ("restype", None)],
        "setok_mask_decoder_arena_bytes": [vp, i64, i64, i64, ctypes.POINTER(Prompt),
                                           ("restype", sz)],
        "setok_mask_decoder_forward": [vp, ctypes.POINTER(Arena), tp, tp, tp,
                                       ctypes.POINTER(Prompt), ctypes.c_bool,
                                       ctypes.POINTER(ctypes.c_bool), err_p],
        "setok_arena_init": [ctypes.POINTER(Arena), vp, sz, err_p],
        "setok_arena_destroy": [ctypes.POINTER(Arena), ("restype", None)],
        "setok_tensor_alloc": [tp, vp, i, i, ctypes.POINTER(i64), err_p],
        "setok_tensor_free": [tp, ("restype", None)],
        "setok_tensor_upload": [tp, vp, err_p],
        "setok_tensor_download": [vp, tp, err_p],
    })


def cuda_available(lib):
    """Whether libsetok can create its CUDA backend here (compiled in and a GPU present)."""
    be, err = ctypes.c_void_p(), SetokError()
    if lib.setok_backend_cuda_create(ctypes.byref(be), 0, ctypes.byref(err)) != 0:
        print(f"skip  cuda cases: {err.message.decode()}")
        return False
    lib.setok_backend_free(be)
    return True


def test_api(lib, model, d, gen):
    """setok_mask_decoder_forward called directly: the same masks as SamModel, the arena's peak
    within setok_mask_decoder_arena_bytes, and a set cancel flag stopping it cleanly."""
    err, be, m = SetokError(), ctypes.c_void_p(), ctypes.c_void_p()

    def ok(status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {err.message.decode()}")

    ok(lib.setok_backend_cpu_create(ctypes.byref(be), 1, ctypes.byref(err)), "backend")
    ok(lib.setok_mask_decoder_load(ctypes.byref(m), d.encode(), be, 0, ctypes.byref(err)), "load")
    g, batch = grid(model), 2
    emb = torch.randn(batch, 32, g, g, generator=gen)
    pts = random_points(gen, batch, 2, 128)
    labels = torch.tensor([[[1, 0]], [[1, 1]]])
    boxes = torch.tensor([[[10.0, 20.0, 90.0, 100.0]], [[0.0, 0.0, 64.0, 40.0]]])
    extra = torch.randn(batch, 1, 2, 32, generator=gen)
    host = {"emb": emb.numpy().copy(), "pts": pts[:, 0].numpy().copy(),
            "labels": labels[:, 0].numpy().astype(np.int32), "boxes": boxes[:, 0].numpy().copy(),
            "extra": extra[:, 0].numpy().copy()}
    img, ext, masks, iou = Tensor(), Tensor(), Tensor(), Tensor()
    for t, a in ((img, host["emb"]), (ext, host["extra"])):
        shape = (ctypes.c_int64 * a.ndim)(*a.shape)
        ok(lib.setok_tensor_alloc(ctypes.byref(t), be, 0, a.ndim, shape, ctypes.byref(err)),
           "alloc")
        ok(lib.setok_tensor_upload(ctypes.byref(t), a.ctypes.data, ctypes.byref(err)), "upload")
    fp, ip = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
    prompt = Prompt(host["pts"].ctypes.data_as(fp), host["labels"].ctypes.data_as(ip), 2,
                    host["boxes"].ctypes.data_as(fp), None, ctypes.pointer(ext))
    arena = Arena()
    need = lib.setok_mask_decoder_arena_bytes(m, batch, g, g, ctypes.byref(prompt))
    ok(lib.setok_arena_init(ctypes.byref(arena), be, need, ctypes.byref(err)), "arena")
    ok(lib.setok_mask_decoder_forward(m, ctypes.byref(arena), ctypes.byref(masks),
                                      ctypes.byref(iou), ctypes.byref(img),
                                      ctypes.byref(prompt), True, None, ctypes.byref(err)),
       "forward")
    got = np.zeros((batch, 3, 4 * g, 4 * g), np.float32)
    ok(lib.setok_tensor_download(got.ctypes.data, ctypes.byref(masks), ctypes.byref(err)),
       "download")
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(input_points=pts, input_labels=labels,
                                             input_boxes=boxes, input_masks=None)
        pe = model.get_image_wide_positional_embeddings().repeat(batch, 1, 1, 1)
        want, _ = model.mask_decoder(image_embeddings=emb, image_positional_embeddings=pe,
                                     sparse_prompt_embeddings=torch.cat([sparse, extra], 2),
                                     dense_prompt_embeddings=dense, multimask_output=True)
    e = rel_err(got, want[:, 0].numpy())
    R.check("C API points + box + extra", e <= TOLERANCE["f32"], f"pred_masks {e:.2e}")
    R.check("C API arena peak within setok_mask_decoder_arena_bytes", arena.peak <= need,
            f"peak {arena.peak} of {need} bytes")
    outputs = arena.used
    cancel = ctypes.c_bool(True)
    status = lib.setok_mask_decoder_forward(m, ctypes.byref(arena), ctypes.byref(masks),
                                            ctypes.byref(iou), ctypes.byref(img),
                                            ctypes.byref(prompt), False, ctypes.byref(cancel),
                                            ctypes.byref(err))
    msg = err.message.decode()
    R.check("C API cancel", status == SETOK_ERR_CANCELLED and "cancelled" in msg
            and arena.used == outputs, f"status {status}: {msg}")
    lib.setok_arena_destroy(ctypes.byref(arena))
    lib.setok_tensor_free(ctypes.byref(img))
    lib.setok_tensor_free(ctypes.byref(ext))
    lib.setok_mask_decoder_free(m)
    lib.setok_backend_free(be)


# ---- main -----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=1234)
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
        model, d = test_points(args.cli, root, gen, cuda)
        test_boxes_masks(args.cli, model, d, gen, cuda)
        test_extra(args.cli, model, d, gen, cuda)
        test_rectangular_grid(args.cli, model, d, gen)
        test_variants(args.cli, root, gen)
        test_errors(args.cli, model, d, root, gen)
        test_api(lib, model, d, gen)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
