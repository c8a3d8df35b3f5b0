#!/usr/bin/env python3
"""test_generate.py — `setok generate` and `setok edit` on Stable Diffusion folders against
diffusers.

A tiny random StableDiffusionPipeline (CLIPTextModel, a CLIP tokenizer trained here, a
two-level UNet2DConditionModel, a two-level AutoencoderKL, DDIM / Euler / Euler ancestral /
DPM-Solver++ schedulers) is saved with save_pretrained. The engine runs the same 4-step guided
sampling loop from the same initial latents as diffusers' pipeline; the final latents must agree
within a max relative error of 1e-3 and the decoded images within 2/255. (Euler ancestral draws
its per-step noise from each side's own generator, so only its first step is deterministic: it
is checked for a successful run and a valid image.)
`setok edit` with a mask, with --point (the token under the point, from a tiny random vision
tower), and with an InstructPix2Pix U-Net (8 input channels) must leave every pixel outside the
region byte-identical to the input and change pixels inside it. Bad input — a folder that is not
a Stable Diffusion pipeline, a mask of the wrong size, an empty region — exits with status 2.
Exit 0 when all pass, 1 on a failure, 77 when torch, diffusers or transformers is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

from checks import Results, rel_err

try:
    import numpy as np
    import torch
    import transformers
    from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig,
                              CLIPVisionModel)
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
R = Results()
STEPS = 4
WORDS = ("a red circle on a blue square next to the green triangle small large left right "
         "above below yellow purple star hexagon photo of cat dog house tree").split()


def train_tokenizer(seed):
    """A small CLIP tokenizer (vocab + merges) trained on prompt-like text."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, size=8)) for _ in range(400)]
    tk = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=400, end_of_word_suffix="</w>",
                                  special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(lines, trainer)
    model = json.loads(tk.to_str())["model"]
    return CLIPTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                         model_max_length=16)


def tiny_pipeline(folder, gen, in_channels=4, sample_size=8, pipeline=StableDiffusionPipeline):
    tokenizer = train_tokenizer(int(torch.randint(0, 1 << 30, (1,), generator=gen)))
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id)).eval()
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=8).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, sample_size=16).eval()
    with torch.no_grad():  # weights with some spread: default init leaves outputs tiny
        for module in (text, unet, vae):
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = pipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                    scheduler=scheduler, safety_checker=None, feature_extractor=None,
                    requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder)
    return pipe


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True)


def test_generate(cli, root, gen):
    folder = os.path.join(root, "sd")
    pipe = tiny_pipeline(folder, gen)
    schedulers = {
        "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
        "dpm++2m": DPMSolverMultistepScheduler, "euler_a": EulerAncestralDiscreteScheduler,
    }
    prompt, negative = "a red circle above a blue square", "green"
    for name, cls in schedulers.items():
        # the folder's scheduler_config.json read as this class (what the engine reads; an
        # in-memory from_config would drop the values DDIM took as defaults)
        pipe.scheduler = cls.from_pretrained(folder, subfolder="scheduler")
        latents = torch.randn((1, 4, 8, 8), generator=gen)
        lat_in = os.path.join(root, f"latents-{name}.safetensors")
        lat_out = os.path.join(root, f"final-{name}.safetensors")
        png = os.path.join(root, f"gen-{name}.png")
        save_file({"latents": latents}, lat_in)
        p = run(cli, "generate", prompt, "-o", png, "--model", folder, "--negative", negative,
                "--steps", str(STEPS), "--guidance", "7.5", "--scheduler", name,
                "--latents", lat_in, "--latents-out", lat_out, "--device", "cpu")
        if p.returncode != 0:
            R.check(f"generate {name}", False, p.stderr.strip())
            continue
        got_img = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
        if name == "euler_a":
            R.check("generate euler_a runs", got_img.shape == (16, 16, 3), str(got_img.shape))
            continue
        with torch.no_grad():
            ref_lat = pipe(prompt, negative_prompt=negative, num_inference_steps=STEPS,
                           guidance_scale=7.5, latents=latents.clone(),
                           output_type="latent").images
            ref_img = pipe(prompt, negative_prompt=negative, num_inference_steps=STEPS,
                           guidance_scale=7.5, latents=latents.clone(), output_type="np").images
        got_lat = load_file(lat_out)["latents"]
        e = rel_err(got_lat.numpy(), ref_lat.numpy())
        R.check(f"generate {name}: final latents vs diffusers", e <= 1e-3, f"rel_err {e:.2e}")
        ref8 = np.round(ref_img[0] * 255).astype(np.int16)
        diff = int(np.abs(got_img - ref8).max())
        R.check(f"generate {name}: image vs diffusers", diff <= 2, f"max |diff| {diff}/255")
    # the same seed gives the same image; another seed another
    outs = []
    for seed in (7, 7, 8):
        png = os.path.join(root, f"seed-{len(outs)}.png")
        p = run(cli, "generate", prompt, "-o", png, "--model", folder, "--steps", "2",
                "--seed", str(seed), "--device", "cpu")
        outs.append(np.asarray(Image.open(png)) if p.returncode == 0 else None)
    R.check("generate: seeds are reproducible",
            outs[0] is not None and np.array_equal(outs[0], outs[1]) and
            not np.array_equal(outs[0], outs[2]))
    return folder


def outside_identical(src, out, mask):
    a, b = np.asarray(src, np.int16), np.asarray(out, np.int16)
    outside = np.asarray(mask)[..., 0] <= 127 if np.asarray(mask).ndim == 3 else \
        np.asarray(mask) <= 127
    return (bool(np.array_equal(a[outside], b[outside])),
            int(np.abs(a[~outside] - b[~outside]).max()) if (~outside).any() else 0)


def test_edit(cli, root, folder, gen):
    rng = np.random.default_rng(int(torch.randint(0, 1 << 30, (1,), generator=gen)))
    src = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)  # not a multiple of the model size
    src_path = os.path.join(root, "src.png")
    Image.fromarray(src).save(src_path)
    mask = np.zeros((37, 45), np.uint8)
    mask[8:25, 10:30] = 255
    mask_path = os.path.join(root, "mask.png")
    Image.fromarray(mask).save(mask_path)
    # a 4-channel U-Net with a mask
    out = os.path.join(root, "edit.png")
    p = run(cli, "edit", src_path, "--mask", mask_path, "make it blue", "-o", out, "--model",
            folder, "--steps", "4", "--device", "cpu")
    if p.returncode != 0:
        R.check("edit --mask", False, p.stderr.strip())
    else:
        same, changed = outside_identical(src, Image.open(out).convert("RGB"), mask)
        R.check("edit --mask: outside the region byte-identical", same)
        R.check("edit --mask: inside the region changed", changed > 0, f"max change {changed}")
    # --point: the token under the point, from a tiny random CLIP vision tower
    vision = os.path.join(root, "vision")
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, image_size=32, patch_size=8)
                    ).eval().save_pretrained(vision)
    out, region = os.path.join(root, "edit-point.png"), os.path.join(root, "region.png")
    p = run(cli, "edit", src_path, "--point", "20,15", "recolour", "-o", out, "--model", folder,
            "--vision", vision, "--mask-out", region, "--steps", "3", "--device", "cpu")
    if p.returncode != 0:
        R.check("edit --point", False, p.stderr.strip())
    else:
        region_img = np.asarray(Image.open(region))
        same, _ = outside_identical(src, Image.open(out).convert("RGB"), region_img)
        R.check("edit --point: the region contains the point", region_img[15, 20] > 127)
        R.check("edit --point: outside the region byte-identical", same)
    # InstructPix2Pix: an 8-channel U-Net
    ip2p = os.path.join(root, "ip2p")
    tiny_pipeline(ip2p, gen, in_channels=8)
    out = os.path.join(root, "edit-ip2p.png")
    p = run(cli, "edit", src_path, "--mask", mask_path, "turn it green", "-o", out, "--model",
            ip2p, "--steps", "3", "--device", "cpu", "--json")
    if p.returncode != 0:
        R.check("edit InstructPix2Pix", False, p.stderr.strip())
    else:
        same, changed = outside_identical(src, Image.open(out).convert("RGB"), mask)
        R.check("edit InstructPix2Pix: outside byte-identical, inside changed",
                same and changed > 0 and json.loads(p.stdout)["instruct_unet"])
    # bad input
    wrong = os.path.join(root, "wrong-mask.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(wrong)
    empty = os.path.join(root, "empty-mask.png")
    Image.fromarray(np.zeros((37, 45), np.uint8)).save(empty)
    for what, args in {
        "a mask of the wrong size": ["edit", src_path, "--mask", wrong, "x", "-o", out,
                                     "--model", folder],
        "an empty region": ["edit", src_path, "--mask", empty, "x", "-o", out, "--model", folder],
        "a folder that is no pipeline": ["generate", "x", "-o", out, "--model", vision],
        "a point outside the image": ["edit", src_path, "--point", "99,99", "x", "-o", out,
                                      "--model", folder, "--vision", vision],
    }.items():
        p = run(cli, *args, "--device", "cpu")
        R.check(f"bad input: {what} exits 2", p.returncode == 2,
                f"exit {p.returncode}: {p.stderr.strip()[:120]}")


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    with tempfile.TemporaryDirectory() as root:
        folder = test_generate(cli, root, gen)
        test_edit(cli, root, folder, gen)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
