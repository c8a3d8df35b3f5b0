#!/usr/bin/env python3
"""test_default_model.py — the engine on the shipped bundle (data/models/setokim-tiny) against
the PyTorch model tools/setokim/bundle.py builds from the same files, on three held-out scenes of
the synthetic world (tools/setokim/world.py):
  - `setok tokens --json`: the same clusters and merger tokens (relative error <= 1e-3: the
    shipped weights are f16, both sides compute in f32);
  - `setok ask --temperature 0`: the same prompt length and greedy answer ids for one of each
    scene's own questions;
  - the answer text is the one the reference decodes;
  - when the bundle generates: one guided U-Net + DDIM step of `setok generate --latents` on the
    scene's generation prompt vs tools/setokim/generation.py (latents within 1e-3);
  - when it segments by phrase: `setok segment --text` on the scene's first referring
    expression vs tools/setokim/segmentation.py (>= 99.5 % of the mask's pixels agree);
  - chat that never falls silent: on every image of data/samples/ and the held-out scenes,
    `setok ask` gives a non-empty answer to each of the scene's own questions (in the world's
    phrasing and another one) and to free-form questions a new user asks (describe the image,
    greetings, what it can do, counting, questions outside the world).
Checks come from test_setokim.py, test_setokim_generate.py and test_setokim_segment.py, which
run the same comparisons on random bundles.
Exit 0 when all pass, 1 on a failure, 77 when the bundle is not shipped or a package is missing.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", ".."))

try:
    import numpy as np
    import torch
    from PIL import Image
    import test_setokim as ts
    import test_setokim_generate as tg
    import test_setokim_segment as tsg
    from safetensors.torch import load_file, save_file
    from tools.setokim import generation as gen_ref
    from tools.setokim import segmentation as seg_ref
    from tools.setokim import world
    from tools.setokim import bundle as ref
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

SCENES = (1_000_003, 1_000_017, 1_000_042)  # held out: training never uses seeds >= 1e6
# what a new user types (none is the world's own phrasing)
FREE_QUESTIONS = ("Describe the image.", "hello", "What can you do?",
                  "How many objects are there?", "What colour is the circle?",
                  "What is the capital of France?", "What do you see?")


def main():
    cli = os.environ.get("SETOK_CLI")
    root = os.environ.get("SETOK_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
    bundle = os.path.join(root, "data", "models", "setokim-tiny")
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    if not os.path.exists(os.path.join(bundle, "setokim.json")):
        print("skipped: no shipped bundle in data/models/setokim-tiny")
        return 77
    ts.TOKENS_TOL = 1e-3
    model = ref.SetokimModel.from_bundle(bundle, dtype=torch.float32)
    manifest = ref.read_manifest(bundle)
    generator = gen_ref.SetokimGenerator.from_bundle(bundle) \
        if "unet" in manifest["components"] else None
    segmenter = seg_ref.Segmenter.from_bundle(bundle) \
        if "segment_token" in manifest else None
    with tempfile.TemporaryDirectory() as work:
        for seed in SCENES:
            scene = world.scene(seed, width=model.image_size, height=model.image_size)
            path = os.path.join(work, f"scene-{seed}.png")
            Image.fromarray(scene.image).save(path)
            pv = model.preprocess(np.asarray(scene.image))
            label = f"scene {seed}"
            ts.check_tokens(cli, bundle, model, path, pv, label)
            question = scene.annotation["qa"][0]["question"]
            ts.check_ask(cli, bundle, model, path, pv, question, label)
            if generator:
                check_step(cli, work, bundle, generator, scene, seed, label)
            if segmenter:
                tsg.compare(cli, work, bundle, segmenter, np.asarray(scene.image),
                            f"{label}: referring mask",
                            text=scene.annotation["referring"][0]["text"])
        samples = os.path.join(root, "data", "samples")
        images = [os.path.join(samples, n) for n in sorted(os.listdir(samples))
                  if n.endswith(".png")] if os.path.isdir(samples) else []
        for seed in SCENES:
            images.append(os.path.join(work, f"scene-{seed}.png"))
            check_answers(cli, bundle, images[-1], [
                q for item in world.scene(seed).annotation["qa"]
                for q in reworded(item["type"], item["question"])])
        for path in images:
            check_answers(cli, bundle, path, FREE_QUESTIONS)
    results = (ts.R, tg.R, tsg.R)
    passed, failed = sum(r.passed for r in results), sum(r.failed for r in results)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def reworded(kind, question):
    """The world's question and one other phrasing of it (data.phrasings), capitalised."""
    from tools.setokim import data
    other = data.phrasings(kind, question)[1:2]
    return [question] + [q[0].upper() + q[1:] for q in other]


def check_answers(cli, bundle, image, questions):
    """Every question gets a non-empty greedy answer."""
    empty = []
    for q in questions:
        got, msg = ts.ask(cli, image, q, bundle)
        if got is None or not got["answer"].strip():
            empty.append((q, msg if got is None else "empty answer"))
    ts.R.check(f"{os.path.basename(image)}: a non-empty answer to each of {len(questions)} "
               "questions", not empty, f"{empty[:3]}")


def check_step(cli, work, bundle, generator, scene, seed, label):
    """One guided denoising step from fixed latents on the scene's generation prompt."""
    size = generator.unet.config.sample_size
    latents = torch.randn((1, generator.unet.config.in_channels, size, size),
                          generator=torch.Generator().manual_seed(seed))
    lat_in, lat_out = (os.path.join(work, f"lat-{w}.safetensors") for w in ("in", "out"))
    save_file({"latents": latents}, lat_in)
    prompt = scene.annotation["generation_prompt"]
    p = tg.run(cli, "generate", prompt, "-o", os.path.join(work, "gen.png"), "--model", bundle,
               "--steps", "1", "--guidance", "3", "--latents", lat_in, "--latents-out", lat_out,
               "--device", "cpu")
    if not tg.R.check(f"{label}: generate runs", p.returncode == 0, p.stderr.strip()[-200:]):
        return
    with torch.no_grad():
        want = generator.sample(generator.condition(prompt), steps=1, guidance=3.0,
                                latents=latents.clone())
    e = tg.rel_err(load_file(lat_out)["latents"].numpy(), want.numpy())
    tg.R.check(f"{label}: one U-Net step vs the reference", e <= 1e-3, f"rel_err {e:.2e}")


if __name__ == "__main__":
    sys.exit(main())
