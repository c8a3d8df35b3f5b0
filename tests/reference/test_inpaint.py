#!/usr/bin/env python3
"""test_inpaint.py — inpainting U-Nets, edit windows and model roles in `setok edit`.

Inpainting: a tiny random StableDiffusionInpaintPipeline (a UNet2DConditionModel with 9 input
channels) saved by diffusers. `setok edit` at strength 1 runs from the same initial latents as
the pipeline (DDIM, Euler, DPM-Solver++; classifier-free guidance with a negative prompt): the
final latents must agree within a max relative error of 1e-3 and the pixels inside the region
within 2/255 of the pipeline's image, with every pixel outside byte-identical to the input; on
an image of another size (--whole-image) the image and the mask go through the pipeline's
Lanczos resize and binarization. `setok generate` on the folder is the pipeline with an
all-white mask. The VAE encodes to its latent distribution's mode on both sides (the pipeline
samples it unless retrieve_latents is told otherwise; the engine is deterministic).

Edit windows: on a 4000x3000 image a small region is edited in a window at the model's native
size (tiny 4- and 9-channel folders, 64 px): the output is full size, the outside byte-identical,
the window (from --json) holds the region and is edited pixel for pixel, its pixels are exactly
those of an edit of the window cut out on its own, and the region has far more fine detail than
with --whole-image. --context widens the window (then scaled to the native size). An image
over the pixel limit is refused (exit 2).

Roles: --edit-model / --segment-model with folders written by diffusers and transformers: a
LLaVA folder cannot edit and a Stable Diffusion folder cannot pick a region (exit 2, with the
reason); a LLaVA folder picks the region for an inpainting folder; --json names each role's
folder; one folder in two roles is opened once (with the shipped bundle, when it is there).
Exit 0 when all pass, 1 on a failure, 77 when torch, diffusers or transformers is missing.
"""
import json
import os
import struct
import sys
import tempfile
import zlib

from checks import Results, rel_err

try:
    import numpy as np
    import torch
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                           StableDiffusionInpaintPipeline)
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint
    from PIL import Image
    from safetensors.torch import load_file, save_file
    import test_llava
    from test_generate import outside_identical, run, tiny_pipeline
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

R = Results()
STEPS = 4
PROMPT, NEGATIVE = "a red circle above a blue square", "green"


def latent_mode(encoder_output, generator=None, sample_mode="sample"):
    return encoder_output.latent_dist.mode()


# the pipeline encodes the image and the masked image through this module-level helper
pipeline_stable_diffusion_inpaint.retrieve_latents = latent_mode


def save_png(array, path, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def random_mask(rng, h, w):
    """A rectangle and a few scattered pixels (255 = repaint)."""
    mask = np.zeros((h, w), np.uint8)
    y0, x0 = int(rng.integers(1, h // 3)), int(rng.integers(1, w // 3))
    mask[y0:y0 + h // 2, x0:x0 + w // 2] = 255
    mask[rng.integers(0, h, 6), rng.integers(0, w, 6)] = 255
    return mask


def edit_json(p, what):
    if p.returncode != 0:
        R.check(what, False, f"exit {p.returncode}: {p.stderr.strip()[:300]}")
        return None
    return json.loads(p.stdout)


def test_reference(cli, root, gen, rng):
    folder = os.path.join(root, "inpaint")
    pipe = tiny_pipeline(folder, gen, in_channels=9, pipeline=StableDiffusionInpaintPipeline)
    schedulers = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
                  "dpm++2m": DPMSolverMultistepScheduler}
    # (image size, the model size the engine picks for it, scheduler, --whole-image)
    cases = [((16, 16), (16, 16), name, False) for name in schedulers]
    cases.append(((24, 20), (16, 12), "ddim", True))
    for i, ((w, h), (mw, mh), name, whole) in enumerate(cases):
        what = f"edit {w}x{h} {name}{' --whole-image' if whole else ''}"
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = random_mask(rng, h, w)
        src_path = save_png(src, os.path.join(root, f"src-{i}.png"))
        mask_path = save_png(mask, os.path.join(root, f"mask-{i}.png"), "L")
        latents = torch.randn((1, 4, mh // 2, mw // 2), generator=gen)
        lat_in, lat_out = (os.path.join(root, f"{k}-{i}.safetensors") for k in ("in", "out"))
        save_file({"latents": latents}, lat_in)
        out = os.path.join(root, f"edit-{i}.png")
        p = run(cli, "edit", src_path, "--mask", mask_path, PROMPT, "-o", out, "--model", folder,
                "--negative", NEGATIVE, "--steps", str(STEPS), "--guidance", "7.5",
                "--strength", "1", "--scheduler", name, "--latents", lat_in, "--latents-out",
                lat_out, "--feather", "0", "--json", "--device", "cpu",
                *(["--whole-image"] if whole else []))
        j = edit_json(p, what)
        if j is None:
            continue
        win = j["window"]
        R.check(f"{what}: an inpainting U-Net, edited at {mw}x{mh}",
                j["inpaint_unet"] and (win["model_width"], win["model_height"]) == (mw, mh)
                and (win["width"], win["height"]) == (w, h), json.dumps(win))
        pipe.scheduler = schedulers[name].from_pretrained(folder, subfolder="scheduler")
        args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(src),
                    mask_image=Image.fromarray(mask, "L"), height=mh, width=mw, strength=1.0,
                    num_inference_steps=STEPS, guidance_scale=7.5)
        with torch.no_grad():
            ref_lat = pipe(**args, latents=latents.clone(), output_type="latent").images
            ref_img = pipe(**args, latents=latents.clone(), output_type="np").images[0]
        e = rel_err(load_file(lat_out)["latents"].numpy(), ref_lat.numpy())
        R.check(f"{what}: final latents vs StableDiffusionInpaintPipeline", e <= 1e-3,
                f"rel_err {e:.2e}")
        got = Image.open(out).convert("RGB")
        same, _ = outside_identical(src, got, mask)
        R.check(f"{what}: outside the region byte-identical", same)
        if (w, h) == (mw, mh):
            inside = mask > 127
            ref8 = np.round(ref_img * 255).astype(np.int16)
            diff = int(np.abs(np.asarray(got, np.int16)[inside] - ref8[inside]).max())
            R.check(f"{what}: the region's pixels vs the pipeline", diff <= 2,
                    f"max |diff| {diff}/255")
    # generate: the pipeline with an all-white mask (the image does not matter then)
    latents = torch.randn((1, 4, 8, 8), generator=gen)
    lat_in, lat_out = (os.path.join(root, f"gen-{k}.safetensors") for k in ("in", "out"))
    save_file({"latents": latents}, lat_in)
    png = os.path.join(root, "gen.png")
    p = run(cli, "generate", PROMPT, "-o", png, "--model", folder, "--negative", NEGATIVE,
            "--steps", str(STEPS), "--scheduler", "ddim", "--latents", lat_in, "--latents-out",
            lat_out, "--device", "cpu")
    if p.returncode != 0:
        R.check("generate on an inpainting folder", False, p.stderr.strip())
    else:
        pipe.scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
        args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=16, width=16, strength=1.0,
                    image=Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)),
                    mask_image=Image.new("L", (16, 16), 255), num_inference_steps=STEPS,
                    guidance_scale=7.5)
        with torch.no_grad():
            ref_lat = pipe(**args, latents=latents.clone(), output_type="latent").images
            ref_img = pipe(**args, latents=latents.clone(), output_type="np").images[0]
        e = rel_err(load_file(lat_out)["latents"].numpy(), ref_lat.numpy())
        R.check("generate on an inpainting folder: latents vs the pipeline, all-white mask",
                e <= 1e-3, f"rel_err {e:.2e}")
        diff = int(np.abs(np.asarray(Image.open(png).convert("RGB"), np.int16)
                          - np.round(ref_img * 255).astype(np.int16)).max())
        R.check("generate on an inpainting folder: image vs the pipeline", diff <= 2,
                f"max |diff| {diff}/255")
    # a lower strength starts from the image's latents, noised
    src = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = random_mask(rng, 16, 16)
    src_path = save_png(src, os.path.join(root, "src-s.png"))
    mask_path = save_png(mask, os.path.join(root, "mask-s.png"), "L")
    out = os.path.join(root, "edit-s.png")
    p = run(cli, "edit", src_path, "--mask", mask_path, "x", "-o", out, "--model", folder,
            "--strength", "0.6", "--steps", "3", "--device", "cpu")
    if p.returncode != 0:
        R.check("edit --strength 0.6", False, p.stderr.strip())
    else:
        same, changed = outside_identical(src, Image.open(out).convert("RGB"), mask)
        R.check("edit --strength 0.6: outside byte-identical, inside changed",
                same and changed > 0, f"max change {changed}")
    return folder


def bbox(mask):
    ys, xs = np.nonzero(mask > 127)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def detail(img, mask, margin):
    """Mean |discrete Laplacian| over the region shrunk by margin pixels (past the feather)."""
    inner = mask > 127
    for _ in range(margin):
        inner = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0) & np.roll(inner, 1, 1) \
            & np.roll(inner, -1, 1)
    a = np.asarray(img, np.float64).mean(axis=2)
    lap = np.abs(4 * a - np.roll(a, 1, 0) - np.roll(a, -1, 0) - np.roll(a, 1, 1)
                 - np.roll(a, -1, 1))
    return float(lap[inner].mean())


def big_png_header(path, w, h):
    """A PNG whose header says w x h (its pixels are never read)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


def test_windows(cli, root, gen, rng):
    W, H, native = 4000, 3000, 64
    folders = {"4-channel": os.path.join(root, "sd64"), "9-channel": os.path.join(root, "in64")}
    tiny_pipeline(folders["4-channel"], gen, sample_size=native // 2)
    tiny_pipeline(folders["9-channel"], gen, in_channels=9, sample_size=native // 2,
                  pipeline=StableDiffusionInpaintPipeline)
    # a photo-like image: smooth colour fields with fine texture on top
    base = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize(
        (W, H), Image.Resampling.BICUBIC)
    img = np.clip(np.asarray(base, np.int16) + rng.integers(-24, 25, (H, W, 3)), 0, 255)
    img = img.astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    mask = (((xx - 2611) / 18.5) ** 2 + ((yy - 1190) / 13.5) ** 2 <= 1).astype(np.uint8) * 255
    src = save_png(img, os.path.join(root, "big.png"))
    mask_path = save_png(mask, os.path.join(root, "big-mask.png"), "L")
    x0, y0, x1, y1 = bbox(mask)
    common = ["--steps", "3", "--seed", "5", "--json", "--device", "cpu"]
    outs = {}
    for kind, folder in folders.items():
        out = os.path.join(root, f"big-{kind}.png")
        j = edit_json(run(cli, "edit", src, "--mask", mask_path, "make it blue", "-o", out,
                          "--model", folder, "--context", "8", *common), f"{kind} window edit")
        if j is None:
            continue
        got = np.asarray(Image.open(out).convert("RGB"))
        w = j["window"]
        same, changed = outside_identical(img, got, mask)
        R.check(f"{kind} 4000x3000: full size, outside byte-identical, region changed",
                got.shape == (H, W, 3) and same and changed > 0, f"{got.shape} max {changed}")
        R.check(f"{kind} 4000x3000: the window holds the region, at the native size, pixel for "
                f"pixel", w["x"] <= x0 and w["y"] <= y0 and w["x"] + w["width"] >= x1
                and w["y"] + w["height"] >= y1 and w["width"] == w["height"] == native
                and (w["model_width"], w["model_height"]) == (native, native), json.dumps(w))
        # the same window cut out and edited alone gives the same pixels
        x, y, s = w["x"], w["y"], w["width"]
        cut = save_png(np.ascontiguousarray(img[y:y + s, x:x + s]),
                       os.path.join(root, f"cut-{kind}.png"))
        cut_mask = save_png(np.ascontiguousarray(mask[y:y + s, x:x + s]),
                            os.path.join(root, f"cut-mask-{kind}.png"), "L")
        cut_out = os.path.join(root, f"cut-out-{kind}.png")
        if edit_json(run(cli, "edit", cut, "--mask", cut_mask, "make it blue", "-o", cut_out,
                         "--model", folder, "--whole-image", *common), f"{kind} cut edit"):
            alone = np.asarray(Image.open(cut_out).convert("RGB"))
            R.check(f"{kind} 4000x3000: the window's pixels are an edit of the window alone",
                    np.array_equal(got[y:y + s, x:x + s], alone))
        outs[kind] = got
    folder = folders["4-channel"]
    out = os.path.join(root, "big-whole.png")
    j = edit_json(run(cli, "edit", src, "--mask", mask_path, "make it blue", "-o", out, "--model",
                      folder, "--whole-image", *common), "--whole-image edit")
    if j is not None and "4-channel" in outs:
        whole = np.asarray(Image.open(out).convert("RGB"))
        w = j["window"]
        R.check("--whole-image: the whole image at the model's size",
                w["whole_image"] and (w["x"], w["y"], w["width"], w["height"]) == (0, 0, W, H)
                and (w["model_width"], w["model_height"]) == (native, native * 3 // 4),
                json.dumps(w))
        same, _ = outside_identical(img, whole, mask)
        sharp, blurred = detail(outs["4-channel"], mask, 6), detail(whole, mask, 6)
        R.check("window edits are sharp where whole-image edits are scaled up",
                same and sharp > 4 * blurred,
                f"mean |laplacian| in the region {sharp:.2f} vs {blurred:.2f}")
    # a wider context: a larger window, scaled down to the native size
    context = 100
    side = -(-(max(x1 - x0, y1 - y0) + 2 * context) // 4) * 4
    j = edit_json(run(cli, "edit", src, "--mask", mask_path, "x", "-o", out, "--model", folder,
                      "--context", str(context), *common), "--context 100")
    if j is not None:
        w = j["window"]
        R.check(f"--context {context}: a {side} px window at the native size",
                w["width"] == w["height"] == side and w["context"] == context
                and (w["model_width"], w["model_height"]) == (native, native), json.dumps(w))
    # over the pixel limit
    huge = big_png_header(os.path.join(root, "huge.png"), 10000, 9000)
    p = run(cli, "edit", huge, "--mask", mask_path, "x", "-o", out, "--model", folder,
            "--device", "cpu")
    R.check("an image over the pixel limit: exit 2 naming the limit",
            p.returncode == 2 and "pixels" in p.stderr, p.stderr.strip()[:200])


def test_roles(cli, root, gen, rng, inpaint):
    llava = os.path.join(root, "llava")
    # a 112 px tower: 8 x 8 patches, as many as the clustering's default neighbour count
    test_llava.IMAGE_SIZE = 112
    _, _, image, _ = test_llava.build_llava_folder(llava, int(rng.integers(0, 1 << 30)))
    sd = os.path.join(root, "sd")
    tiny_pipeline(sd, gen)
    out = os.path.join(root, "roles.png")
    region = os.path.join(root, "roles-mask.png")
    for what, args, words in (
            ("a LLaVA folder as --edit-model", ["--edit-model", llava, "--point", "20,15"],
             ["--edit-model", "cannot edit", "LLaVA"]),
            ("a LLaVA folder as --model (nothing else edits)", ["--model", llava, "--point",
                                                                "20,15"], ["cannot edit"]),
            ("a Stable Diffusion folder as --segment-model",
             ["--edit-model", inpaint, "--segment-model", sd, "--point", "20,15"],
             ["--segment-model", "cannot segment by points", "Stable Diffusion"])):
        p = run(cli, "edit", image, "x", "-o", out, *args, "--device", "cpu")
        R.check(f"roles: {what} is refused (exit 2, with the reason)",
                p.returncode == 2 and all(w in p.stderr for w in words), p.stderr.strip()[:200])
    j = edit_json(run(cli, "edit", image, "recolour", "-o", out, "--edit-model", inpaint,
                      "--segment-model", llava, "--point", "20,15", "--mask-out", region,
                      "--steps", "2", "--json", "--device", "cpu"), "roles: LLaVA picks, inpaints")
    if j is not None:
        src, got = np.asarray(Image.open(image).convert("RGB")), Image.open(out).convert("RGB")
        same, _ = outside_identical(src, got, np.asarray(Image.open(region)))
        R.check("roles: a LLaVA folder's token, repainted by an inpainting folder",
                j["roles"] == {"edit": inpaint, "segment": llava} and j["models_opened"] == 2
                and same, json.dumps(j["roles"]))
    shipped = os.path.join(os.environ.get("SETOK_SOURCE_ROOT", ""), "data", "models",
                           "setokim-tiny")
    if not os.path.isfile(os.path.join(shipped, "setokim.json")):
        print("skip  roles with the shipped bundle: not found")
        return
    scene = os.path.join(os.environ["SETOK_SOURCE_ROOT"], "data", "samples", "scene-14.png")
    j = edit_json(run(cli, "edit", scene, "make it blue", "-o", out, "--model", shipped,
                      "--segment-model", shipped + os.sep, "--point", "40,40", "--steps", "2",
                      "--json", "--device", "cpu"), "roles: one folder in both roles")
    if j is not None:
        R.check("roles: one folder in both roles is opened once",
                j["models_opened"] == 1 and j["roles"]["edit"] == shipped, json.dumps(j["roles"]))
    p = run(cli, "edit", image, "x", "-o", out, "--model", sd, "--point", "20,15", "--steps", "2",
            "--json", "--device", "cpu")
    j = edit_json(p, "roles: --model that cannot segment")
    if j is not None:
        R.check("roles: a --model that cannot pick the region leaves it to the shipped bundle, "
                "and says so", j["roles"]["edit"] == sd and
                os.path.realpath(j["roles"]["segment"]) == os.path.realpath(shipped)
                and "cannot segment by points" in p.stderr, p.stderr.strip()[:200])


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as root:
        inpaint = test_reference(cli, root, gen, rng)
        test_windows(cli, root, gen, rng)
        test_roles(cli, root, gen, rng, inpaint)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
