#!/usr/bin/env python3
"""The Python world wrapper (tools/setokim/world.py) against `setok world`: for three seeds the
ctypes scenes have the same pixels as the CLI's PNGs (image, labels, every edit target) and the
same annotation records as annotations.jsonl; both import paths work; bad options and a missing
library give clear errors.

Usage: test_world_py.py   (uses $SETOK_CLI, $SETOK_LIB and $SETOK_SOURCE_ROOT)
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError:
    print("skipped: numpy and Pillow are needed")
    sys.exit(77)

ROOT = os.environ.get("SETOK_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("SETOK_CLI", "setok")
SEEDS = (3, 4, 5)

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from setokim import world  # noqa: E402  (tools/ on sys.path)
from tools.setokim import world as world_from_root  # noqa: E402  (the repository root)

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok  ", what)
    else:
        failed += 1
        print("FAIL", what)


def png(path):
    return np.asarray(Image.open(path))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "world")
        run = subprocess.run([CLI, "world", "--seed", str(SEEDS[0]), "--count", str(len(SEEDS)),
                              "--out", out, "--edits"], capture_output=True, text=True)
        check(run.returncode == 0, f"setok world exits 0 ({run.stderr.strip()})")
        if run.returncode != 0:
            return
        with open(os.path.join(out, "annotations.jsonl")) as f:
            records = [json.loads(line) for line in f]
        check([r["seed"] for r in records] == list(SEEDS), "annotations.jsonl in seed order")

        for seed, record in zip(SEEDS, records):
            s = world.scene(seed)
            check(s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
                  and s.labels.shape == (128, 128) and s.labels.dtype == np.uint8,
                  f"seed {seed}: shapes and dtypes")
            check(np.array_equal(s.image, png(os.path.join(out, f"scene-{seed}.png"))),
                  f"seed {seed}: image equals scene-{seed}.png")
            check(np.array_equal(s.labels, png(os.path.join(out, f"scene-{seed}-labels.png"))),
                  f"seed {seed}: labels equal scene-{seed}-labels.png")
            check(s.annotation == record, f"seed {seed}: annotation equals its JSONL record")
            ids = sorted(o["id"] for o in s.annotation["objects"])
            check(sorted(set(np.unique(s.labels)) - {0}) == ids,
                  f"seed {seed}: label values are the object ids {ids}")
            n_edits = len(s.annotation["edits"])
            same = [np.array_equal(world.edit(s, k).image,
                                   png(os.path.join(out, f"scene-{seed}-edit-{k}.png")))
                    for k in range(n_edits)]
            check(n_edits > 0 and all(same),
                  f"seed {seed}: {sum(same)} of {n_edits} edit targets equal the CLI's PNGs")
            by_seed = world.edit(seed, 0)
            check(np.array_equal(by_seed.image, world.edit(s, 0).image),
                  f"seed {seed}: edit by seed equals edit by scene")

        a, b = world.scene(9), world_from_root.scene(9)
        check(np.array_equal(a.image, b.image) and a.annotation == b.annotation,
              "`from setokim import world` and `from tools.setokim import world` agree")
        chained = world.edit(world.edit(9, 0), 0)
        check(chained.annotation.get("edit_path") == [0, 0], "edits chain (edit_path [0, 0])")
        wide = world.scene(1, width=200, height=96, min_objects=3, max_objects=8)
        check(wide.image.shape == (96, 200, 3) and 3 <= len(wide.annotation["objects"]) <= 8,
              "options: 200 x 96, 3..8 objects")

        for kwargs in (dict(width=0), dict(height=100000), dict(min_objects=5, max_objects=2)):
            try:
                world.scene(1, **kwargs)
                check(False, f"{kwargs} is refused")
            except world.WorldError as e:
                check(e.status == 1 and "world:" in str(e), f"{kwargs} is refused: {e}")

        code = "import sys; sys.path.insert(0, %r); from setokim import world; world.scene(1)" % (
            os.path.join(ROOT, "tools"))
        env = dict(os.environ, SETOK_LIB=os.path.join(tmp, "missing", "libsetok.so"))
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True)
        check(run.returncode != 0 and "libsetok not found" in run.stderr
              and "SETOK_LIB" in run.stderr, "a missing library names the path and SETOK_LIB")


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
