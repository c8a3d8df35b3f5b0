#!/usr/bin/env python3
"""test_setokim_generate.py — `setok generate` and `setok edit` on a SETOKIM bundle against its
PyTorch model (tools/setokim/generation.py SetokimGenerator: transformers' LlamaModel and
Blip2QFormerModel, diffusers' UNet2DConditionModel, AutoencoderKL and DDIMScheduler).

A tiny random bundle with an output side is written in f32 (fresh seed each run). Checks:
  - the visual tokens of a generation request and of an edit request (an image in the prompt),
    through libsetok's setok_chat_visual_tokens (ctypes), vs projector_out(LLM slot states):
    max relative error <= 1e-4;
  - `setok generate --latents`: the guided (CFG against zeros) and unguided 4-step DDIM loops
    from the same unit-noise latents as the reference sampler: final latents within 1e-3, the
    decoded image within 2/255;
  - `setok edit --mask` on the bundle: every pixel outside the region byte-identical, some
    inside changed;
  - bad input exits 2: a bundle without visual tokens, a negative prompt.
Usage: test_setokim_generate.py [SETOK_CLI]
Exit 0 when all pass, 1 on a failure, 77 when torch, diffusers or transformers is missing.
"""
import ctypes
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
    import diffusers
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from checks import Results, rel_err
    from setokim import bundle as ref
    from setokim import generation as gen_ref
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

from setok_ctypes import ModelOptions, SetokError, SetokImage, load_library  # noqa: E402

transformers.logging.set_verbosity_error()
diffusers.utils.logging.set_verbosity_error()
R = Results()
STEPS = 4
PROMPTS = ["a large red circle in the centre", "two small blue squares on a plain grey background"]
INSTRUCTION = "paint the red circle green"


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True)


def scene(rng, size):
    """A random picture of flat rectangles (uint8 [size, size, 3])."""
    img = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
    for _ in range(3):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(6, size // 2, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3)
    return img


def check_visual_tokens(lib, folder, model, image):
    err = SetokError()
    engine_model, chat = ctypes.c_void_p(), ctypes.c_void_p()
    opts = ModelOptions(b"cpu", 1, None, None, None)
    st = lib.setok_model_open(ctypes.byref(engine_model), folder.encode(), ctypes.byref(opts),
                              ctypes.byref(err))
    if st == 0:
        st = lib.setok_chat_new(ctypes.byref(chat), engine_model, 0, ctypes.byref(err))
    if not R.check("a chat over the bundle's model", st == 0, err.message.decode()):
        lib.setok_model_free(engine_model)
        return
    k = lib.setok_chat_visual_token_count(chat)
    dim = lib.setok_chat_visual_token_dim(chat)
    want = (len(model.slots.ids), model.projector_out.config["out_features"])
    R.check("visual token count and width", (k, dim) == want, f"{k} x {dim}")
    opts = ctypes.create_string_buffer(4096)  # setok_chat_options, filled by its defaults
    lib.setok_chat_options_default(opts)
    out = (ctypes.c_float * (k * dim))()
    pix = np.ascontiguousarray(image)
    img = SetokImage(pix.shape[1], pix.shape[0], 3,
                     pix.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    for label, text, c_image, tokens in (
            ("generation request", PROMPTS[0], None, None),
            ("edit request", INSTRUCTION, ctypes.byref(img),
             model.model.vision_tokens(model.model.preprocess(image))[0])):
        st = lib.setok_chat_visual_tokens(chat, c_image, text.encode(), opts, out,
                                          ctypes.byref(err))
        if not R.check(f"visual tokens, {label}: runs", st == 0, err.message.decode()):
            continue
        got = np.frombuffer(out, np.float32).reshape(k, dim)
        with torch.no_grad():
            want = model.projector_out(model.slot_states(text, tokens)).numpy()
        e = rel_err(got, want)
        R.check(f"visual tokens, {label}: vs projector_out(LLM slot states)", e <= 1e-4,
                f"rel_err {e:.2e}")
    lib.setok_chat_free(chat)
    lib.setok_model_free(engine_model)


def check_generate(cli, root, folder, model, seed):
    size = model.unet.config.sample_size
    g = torch.Generator().manual_seed(seed)
    for i, (prompt, guidance) in enumerate(((PROMPTS[0], 3.0), (PROMPTS[1], 1.0))):
        latents = torch.randn((1, model.unet.config.in_channels, size, size), generator=g)
        lat_in, lat_out = (os.path.join(root, f"lat{i}-{w}.safetensors") for w in ("in", "out"))
        png = os.path.join(root, f"gen{i}.png")
        save_file({"latents": latents}, lat_in)
        p = run(cli, "generate", prompt, "-o", png, "--model", folder, "--steps", str(STEPS),
                "--guidance", str(guidance), "--latents", lat_in, "--latents-out", lat_out,
                "--device", "cpu")
        label = f"generate (guidance {guidance})"
        if not R.check(f"{label}: runs", p.returncode == 0, p.stderr.strip()[-300:]):
            continue
        with torch.no_grad():
            cond = model.condition(prompt)
            want = model.sample(cond, steps=STEPS, guidance=guidance, latents=latents.clone())
            image = gen_ref.decode_latents(model.vae, want)[0]
        e = rel_err(load_file(lat_out)["latents"].numpy(), want.numpy())
        R.check(f"{label}: final latents vs the reference sampler", e <= 1e-3, f"rel_err {e:.2e}")
        got = np.asarray(Image.open(png).convert("RGB"), np.int16)
        d = int(np.abs(got - image.astype(np.int16)).max())
        R.check(f"{label}: image vs the reference VAE decode", d <= 2, f"max diff {d}/255")


def check_edit(cli, root, folder, image):
    src = os.path.join(root, "src.png")
    Image.fromarray(image).save(src)
    size = image.shape[0]
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4:size // 2 + 4, size // 4:size // 2 + 4] = 255
    mask_path = os.path.join(root, "mask.png")
    Image.fromarray(mask).save(mask_path)
    out = os.path.join(root, "edit.png")
    p = run(cli, "edit", src, "--mask", mask_path, INSTRUCTION, "-o", out, "--model", folder,
            "--steps", str(STEPS), "--device", "cpu")
    if not R.check("edit on the bundle: runs", p.returncode == 0, p.stderr.strip()[-300:]):
        return
    a = image.astype(np.int16)
    b = np.asarray(Image.open(out).convert("RGB"), np.int16)
    outside = mask <= 127
    R.check("edit: every pixel outside the region is the input's",
            np.array_equal(a[outside], b[outside]))
    R.check("edit: pixels inside the region change", bool((a[~outside] != b[~outside]).any()))


def check_bad_input(cli, root, folder):
    plain = os.path.join(root, "plain")
    shutil.copytree(folder, plain)
    manifest = os.path.join(plain, "setokim.json")
    m = ref.read_manifest(plain)
    del m["visual_tokens"]
    ref.write_manifest(plain, m)
    png = os.path.join(root, "bad.png")
    p = run(cli, "generate", "x", "-o", png, "--model", plain, "--steps", "1")
    R.check("a bundle without visual_tokens: exit 2 naming setokim.json",
            p.returncode == 2 and manifest in p.stderr, f"exit {p.returncode}: {p.stderr[:160]}")
    p = run(cli, "generate", "x", "-o", png, "--model", folder, "--steps", "1", "--negative", "y")
    R.check("a negative prompt on a bundle: exit 2", p.returncode == 2,
            f"exit {p.returncode}: {p.stderr[:160]}")


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    lib = load_library({
        "setok_model_open": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                             ctypes.POINTER(ModelOptions), ctypes.POINTER(SetokError)],
        "setok_model_free": [ctypes.c_void_p, ("restype", None)],
        "setok_chat_new": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_int,
                           ctypes.POINTER(SetokError)],
        "setok_chat_free": [ctypes.c_void_p, ("restype", None)],
        "setok_chat_options_default": [ctypes.c_void_p, ("restype", None)],
        "setok_chat_visual_token_count": [ctypes.c_void_p],
        "setok_chat_visual_token_dim": [ctypes.c_void_p],
        "setok_chat_visual_tokens": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                     ctypes.POINTER(SetokError)],
    })
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    with tempfile.TemporaryDirectory() as root:
        folder = os.path.join(root, "bundle")
        ref.write_random_bundle(folder, seed % 100000, dtype=torch.float32, generation=True)
        generator = gen_ref.SetokimGenerator.from_bundle(folder)
        image = scene(np.random.default_rng(seed), generator.model.image_size)
        check_visual_tokens(lib, folder, generator, image)
        check_generate(cli, root, folder, generator, seed)
        check_edit(cli, root, folder, image)
        check_bad_input(cli, root, folder)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
