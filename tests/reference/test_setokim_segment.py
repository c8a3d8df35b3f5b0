#!/usr/bin/env python3
"""test_setokim_segment.py — `setok segment --text / --decoder` on a SETOKIM bundle against its
PyTorch model (tools/setokim/segmentation.py Segmenter: transformers' SamPromptEncoder and
SamMaskDecoder on the CLIP tower's patch features, LlamaModel for the <seg> state).

A tiny random bundle with a mask side is written in f32 (fresh seed each run); images are the
vision tower's own size, so pixels and model input coincide. For a referring phrase, for points
(foreground and background), and for both together, the engine's mask must equal the
reference's (bilinearly upsampled low-resolution logits > 0) on >= 99.5 % of the pixels (a
pixel whose logit is within rounding of 0 may flip) and the predicted IoU must agree within
1e-4 of max(|IoU|, 1). Bad input exits 2: a phrase on a bundle without a segment token, a bundle
without a mask decoder, a point outside the image.
Usage: test_setokim_segment.py [SETOK_CLI]
Exit 0 when all pass, 1 on a failure, 77 when torch or transformers is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

try:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from checks import Results
    from setokim import bundle as ref
    from setokim import segmentation as seg_ref
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
R = Results()


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True)


def scene(rng, size):
    img = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
    for _ in range(3):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(6, size // 2, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3)
    return img


def compare(cli, root, folder, segmenter, image, label, text=None, points=()):
    src = os.path.join(root, "src.png")
    Image.fromarray(image).save(src)
    out = os.path.join(root, "mask.png")
    args = ["segment", src, "-o", out, "--model", folder, "--device", "cpu", "--json"]
    if text is not None:
        args += ["--text", text]
    else:
        args += ["--decoder"]
    for x, y, fg in points:
        args += ["--point" if fg else "--background", f"{x},{y}"]
    p = run(cli, *args)
    if not R.check(f"{label}: runs", p.returncode == 0, p.stderr.strip()[-300:]):
        return
    got = np.asarray(Image.open(out)) > 127
    pv = segmenter.model.preprocess(image)
    pts = [(x, y) for x, y, _ in points] or None
    labs = [1 if fg else 0 for _, _, fg in points] or None
    logits, iou = segmenter.segment(pv, text, pts, labs)
    with torch.no_grad():
        want = (seg_ref.upsample_mask(logits[None], image.shape[0])[0] > 0).numpy()
    agree = float((got == want).mean())
    R.check(f"{label}: mask vs the reference", agree >= 0.995,
            f"{agree:.2%} of pixels agree, {int(want.sum())} in the reference mask")
    score = json.loads(p.stdout)["score"]
    # relative to the score's scale, at least 1: a predicted IoU near 0 is compared absolutely
    e = abs(score - iou) / max(abs(iou), 1.0)
    R.check(f"{label}: predicted IoU vs the reference", e <= 1e-4,
            f"{score:.6f} vs {iou:.6f}")


def check_bad_input(cli, root, folder, image):
    src = os.path.join(root, "src.png")
    Image.fromarray(image).save(src)
    out = os.path.join(root, "bad.png")
    no_text = os.path.join(root, "no-text")
    shutil.copytree(folder, no_text)
    m = ref.read_manifest(no_text)
    del m["segment_token"]
    ref.write_manifest(no_text, m)
    p = run(cli, "segment", src, "--text", "the square", "-o", out, "--model", no_text)
    R.check("a phrase on a bundle without segment_token: exit 2", p.returncode == 2,
            f"exit {p.returncode}: {p.stderr.strip()[:160]}")
    no_decoder = os.path.join(root, "no-decoder")
    shutil.copytree(folder, no_decoder)
    m = ref.read_manifest(no_decoder)
    del m["components"]["mask_decoder"]
    ref.write_manifest(no_decoder, m)
    p = run(cli, "segment", src, "--text", "the square", "-o", out, "--model", no_decoder)
    R.check("a bundle without mask_decoder: exit 2 naming setokim.json",
            p.returncode == 2 and "setokim.json" in p.stderr,
            f"exit {p.returncode}: {p.stderr.strip()[:160]}")
    p = run(cli, "segment", src, "--decoder", "--point", "999,3", "-o", out, "--model", folder)
    R.check("a point outside the image: exit 2", p.returncode == 2,
            f"exit {p.returncode}: {p.stderr.strip()[:160]}")


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as root:
        folder = os.path.join(root, "bundle")
        ref.write_random_bundle(folder, seed % 100000, dtype=torch.float32, segmentation=True)
        segmenter = seg_ref.Segmenter.from_bundle(folder)
        size = segmenter.model.image_size
        for i in range(2):
            image = scene(rng, size)
            pts = [(int(rng.integers(size)), int(rng.integers(size)), True),
                   (int(rng.integers(size)), int(rng.integers(size)), False)]
            compare(cli, root, folder, segmenter, image, f"image {i}: phrase",
                    text="the red square")
            compare(cli, root, folder, segmenter, image, f"image {i}: points", points=pts)
            compare(cli, root, folder, segmenter, image, f"image {i}: phrase + point",
                    text="the small blue circle", points=pts[:1])
        check_bad_input(cli, root, folder, image)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
