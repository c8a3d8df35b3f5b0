#!/usr/bin/env python3
"""test_segment.py — `setok segment`: the mask of the object under a point is the token that
covers it, exactly the mask `setok tokens --masks` writes for that token (with the same edge
refinement, and without it); a second point adds its token, a background point removes one;
--json reports the mask's area; bad points exit 2. The vision tower is a tiny random CLIP made
with transformers, the images fresh random blocks of colour.
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch, transformers or PIL is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

from checks import Results

try:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from transformers import CLIPVisionConfig, CLIPVisionModel
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
R = Results()


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True)


def blocks_image(rng, w, h):
    """Four rectangles of random colours on a random background."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        img[y0:y0 + rng.integers(6, h // 2), x0:x0 + rng.integers(6, w // 2)] = \
            rng.integers(0, 256, 3)
    return img


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as root:
        vision = os.path.join(root, "vision")
        CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         image_size=32, patch_size=4)).eval().save_pretrained(
            vision)
        for i, (w, h) in enumerate(((48, 40), (33, 57))):
            img_path = os.path.join(root, f"img{i}.png")
            Image.fromarray(blocks_image(rng, w, h)).save(img_path)
            for refine in (True, False):
                tag = f"image {i} {'refined' if refine else 'patch'} masks"
                masks = os.path.join(root, f"masks{i}{refine}")
                args = ["tokens", img_path, "--vision", vision, "--masks", masks,
                        "--json", "-", "--clusters", "6", "--device", "cpu"]
                p = run(cli, *(args + (["--refine"] if refine else [])))
                if p.returncode != 0:
                    R.check(f"{tag}: setok tokens", False, p.stderr.strip())
                    continue
                n = len(json.loads(p.stdout)["tokens"])
                token_masks = [np.asarray(Image.open(os.path.join(masks, f"token-{k:03d}.png")))
                               for k in range(n)]
                # a random pixel some token covers (the center crop may leave borders bare)
                ys, xs = np.nonzero(np.any([m > 127 for m in token_masks], axis=0))
                pick = int(rng.integers(0, len(xs)))
                x, y = int(xs[pick]), int(ys[pick])
                k = next(k for k in range(n) if token_masks[k][y, x] > 127)
                out = os.path.join(root, "seg.png")
                seg_args = ["segment", img_path, "--vision", vision, "--point", f"{x},{y}",
                            "-o", out, "--clusters", "6", "--json", "--device", "cpu"]
                p = run(cli, *(seg_args + ([] if refine else ["--patch-masks"])))
                if p.returncode != 0:
                    R.check(f"{tag}: setok segment", False, p.stderr.strip())
                    continue
                got = np.asarray(Image.open(out))
                R.check(f"{tag}: the mask is the token under the point",
                        np.array_equal(got > 127, token_masks[k] > 127))
                R.check(f"{tag}: --json area", json.loads(p.stdout)["area"] ==
                        int((got > 127).sum()))
                # a second token added, then removed again by a background point
                other = next((j for j in range(n) if j != k and token_masks[j].any()), None)
                if other is None:
                    continue
                ys, xs = np.nonzero(token_masks[other] > 127)
                x2, y2 = int(xs[0]), int(ys[0])
                p = run(cli, *(seg_args[:-2] + ["--point", f"{x2},{y2}"] +
                               ([] if refine else ["--patch-masks"])))
                both = np.asarray(Image.open(out)) > 127 if p.returncode == 0 else None
                R.check(f"{tag}: two points give two tokens", both is not None and
                        np.array_equal(both, (token_masks[k] > 127) | (token_masks[other] > 127)))
                p = run(cli, *(seg_args[:-2] + ["--point", f"{x2},{y2}", "--background",
                                                f"{x2},{y2}"] + ([] if refine else
                                                                 ["--patch-masks"])))
                less = np.asarray(Image.open(out)) > 127 if p.returncode == 0 else None
                R.check(f"{tag}: a background point removes its token", less is not None and
                        np.array_equal(less, token_masks[k] > 127))
        img_path = os.path.join(root, "img0.png")
        for what, extra in {"a point outside the image": ["--point", "500,5"],
                            "no point": [], "a malformed point": ["--point", "3;4"]}.items():
            p = run(cli, "segment", img_path, "--vision", vision, "-o",
                    os.path.join(root, "x.png"), "--device", "cpu", *extra)
            R.check(f"{what} exits 2", p.returncode == 2, p.stderr.strip()[:100])
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
