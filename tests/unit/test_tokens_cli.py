#!/usr/bin/env python3
"""`setok tokens` end to end on a tiny CLIP vision folder written here with
numpy (random weights) and a synthetic image: token counts follow the
options, every patch and every covered pixel belongs to exactly one token,
the JSON, masks and overlay agree with each other, and bad input exits 2.

Usage: test_tokens_cli.py [SETOK_CLI]   (default: $SETOK_CLI)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError:
    print("skipped: numpy and Pillow are needed")
    sys.exit(77)

CLI = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SETOK_CLI", "setok")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok  ", what)
    else:
        failed += 1
        print("FAIL", what)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def tiny_clip(folder, hidden=32, layers=2, heads=4, patch=8, image=64, inter=64):
    rng = np.random.default_rng(0)
    w = lambda *shape: rng.normal(0, 0.2, shape)
    t = {
        "embeddings.class_embedding": w(hidden),
        "embeddings.patch_embedding.weight": w(hidden, 3, patch, patch),
        "embeddings.position_embedding.weight": w((image // patch) ** 2 + 1, hidden),
        "pre_layrnorm.weight": np.ones(hidden), "pre_layrnorm.bias": np.zeros(hidden),
        "post_layernorm.weight": np.ones(hidden), "post_layernorm.bias": np.zeros(hidden),
    }
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for n in ("layer_norm1", "layer_norm2"):
            t[p + n + ".weight"], t[p + n + ".bias"] = np.ones(hidden), np.zeros(hidden)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + "self_attn." + n + ".weight"], t[p + "self_attn." + n + ".bias"] = \
                w(hidden, hidden), w(hidden)
        t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = w(inter, hidden), w(inter)
        t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = w(hidden, inter), w(hidden)
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "model.safetensors"), t)
    config = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
              "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
              "num_attention_heads": heads, "patch_size": patch, "image_size": image,
              "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    pre = {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": image},
           "crop_size": {"height": image, "width": image}}
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f)


def scene(path, width=150, height=100):
    """Coloured shapes on a gradient: a landscape image, so the crop is central."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1)
    img[(x - 50) ** 2 + (y - 50) ** 2 < 400] = (230, 30, 30)
    img[(abs(x - 100) < 18) & (abs(y - 40) < 25)] = (20, 40, 220)
    Image.fromarray(img.astype(np.uint8)).save(path)


def run(*args):
    r = subprocess.run([CLI, "tokens", *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model, image = os.path.join(tmp, "clip"), os.path.join(tmp, "scene.png")
        tiny_clip(model)
        scene(image)
        out_json, overlay, masks = (os.path.join(tmp, n) for n in ("t.json", "o.png", "masks"))

        rc, out, err = run(image, "--vision", model, "--json", out_json, "--overlay", overlay,
                           "--masks", masks, "--device", "cpu")
        check(rc == 0 and "tokens from 8 x 8 patches" in out, f"runs: rc {rc} {out}{err}")
        if rc != 0:
            return
        d = json.load(open(out_json))
        toks = d["tokens"]
        check(d["n_tokens"] == len(toks) >= 1, f"{d['n_tokens']} tokens listed")
        check(sum(t["area_patches"] for t in toks) == 64, "every patch is in one token")
        # the whole image, padded to 150 x 150: every pixel belongs to a token
        covered = 150 * 100
        check(d["fit"] == "pad" and sum(t["area_pixels"] for t in toks) == covered,
              f"padded: covered pixels {sum(t['area_pixels'] for t in toks)} == {covered}")
        for t in toks:
            x0, y0, x1, y1 = t["bbox"]
            cx, cy = t["centroid"]
            if t["area_pixels"] and not (x0 <= cx <= x1 and y0 <= cy <= y1):
                check(False, f"token {t['index']} centroid inside its box")
                break
        else:
            check(True, "centroids lie inside their boxes")
        check(all(len(t["features"]) == 32 for t in toks), "features have the tower's width")
        files = sorted(os.listdir(masks))
        check(len(files) == len(toks), f"{len(files)} mask files")
        stack = np.stack([np.array(Image.open(os.path.join(masks, f))) for f in files]) > 0
        check(stack.shape[1:] == (100, 150), "masks have the image's size")
        check((stack.sum(0) <= 1).all(), "masks are disjoint")
        check([int(m.sum()) for m in stack] == [t["area_pixels"] for t in toks],
              "mask areas match the JSON")
        check(Image.open(overlay).size == (150, 100), "overlay has the image's size")

        # --crop: shortest edge 100 -> 64: scale 0.64, the 150-px width becomes 96, crop 16 px
        # each side -> pixels x in [25, 125) of the original are covered (centres mapped
        # through the crop)
        rc, _, err = run(image, "--vision", model, "--crop", "--json", out_json, "--device", "cpu")
        cropped = sum(1 for x in range(150) if 16 <= (x + 0.5) * 0.64 < 80) * 100
        d = json.load(open(out_json)) if rc == 0 else {"tokens": [], "fit": None}
        check(rc == 0 and d["fit"] == "crop"
              and sum(t["area_pixels"] for t in d["tokens"]) == cropped,
              f"cropped: covered pixels {sum(t['area_pixels'] for t in d['tokens'])} == {cropped}")
        rc, _, err = run(image, "--vision", model, "--mode", "fixed", "--clusters", "5",
                         "--json", out_json, "--device", "cpu")
        check(rc == 0 and json.load(open(out_json))["n_tokens"] == 5, "fixed mode gives 5 tokens")
        rc, _, err = run(image, "--vision", model, "--min-clusters", "7", "--threshold", "1e9",
                         "--json", out_json, "--device", "cpu")
        check(rc == 0 and json.load(open(out_json))["n_tokens"] == 7,
              "min-clusters fallback gives 7 tokens")
        rc, _, _ = run(image, "--vision", model, "--mode", "soft", "--json", out_json,
                       "--device", "cpu")
        check(rc == 0 and json.load(open(out_json))["n_tokens"] >= 1, "soft mode runs")
        rc, _, _ = run(image, "--vision", model, "--refine", "--json", out_json, "--device", "cpu")
        d = json.load(open(out_json)) if rc == 0 else {"tokens": []}
        check(rc == 0 and sum(t["area_pixels"] for t in d["tokens"]) == covered,
              "refined masks cover the same pixels")

        corrupt = os.path.join(tmp, "corrupt.png")
        with open(image, "rb") as f:
            data = f.read()
        with open(corrupt, "wb") as f:
            f.write(data[: len(data) // 2])
        for args, what in [((corrupt, "--vision", model), "a truncated PNG"),
                           ((model + "/config.json", "--vision", model), "a JSON file as image"),
                           ((image, "--vision", tmp), "a folder without a model"),
                           ((image, "--vision", model, "--mode", "kmeans"), "an unknown mode"),
                           ((image, "--model", model, "--vision", model),
                            "both --model and --vision")]:
            rc, _, err = run(*args)
            check(rc == 2 and err.strip(), f"{what}: exit {rc}, {err.strip()[:90]}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
