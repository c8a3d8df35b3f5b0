#!/usr/bin/env python3
"""test_default_model.py — the engine on the shipped bundle (data/models/setokim-tiny) against
the PyTorch model tools/setokim/bundle.py builds from the same files, on three held-out scenes of
the synthetic world (tools/setokim/world.py):
  - `setok tokens --json`: the same clusters and merger tokens (relative error <= 1e-3: the
    shipped weights are f16, both sides compute in f32);
  - `setok ask --temperature 0`: the same prompt length and greedy answer ids for one of each
    scene's own questions;
  - the answer text is the one the reference decodes.
Checks come from test_setokim.py, which runs the same comparisons on a random bundle.
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
    from tools.setokim import world
    from tools.setokim import bundle as ref
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

SCENES = (1_000_003, 1_000_017, 1_000_042)  # held out: training never uses seeds >= 1e6


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
    print(f"{ts.R.passed} passed, {ts.R.failed} failed")
    return 1 if ts.R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
