#!/usr/bin/env python3
"""run_studio_test.py — runs tests/gui/test-studio.c under Xvfb.

Finds the model (data/models/setokim-tiny when it exists, else a tiny random LLaVA folder built
here as tests/reference/test_llava.py builds it), a sample image (data/samples/*.png, else a
synthetic scene drawn here), writes a corrupt PNG, and runs
`xvfb-run -a TEST_STUDIO --model DIR --image FILE --corrupt FILE --out LOGDIR`, with the user's
data folder (XDG_DATA_HOME, where conversations are kept) in a temporary folder.
Snapshots of the canvas land in LOGDIR (the build's meson-logs/gui by default);
--screenshots DIR also writes the 360 and 1200 px window screenshots there (data/screenshots,
for the README and the metainfo), with whole answers.
With --no-model the model folder is missing on purpose (the app must still open images), and the
app runs in German (LANGUAGE=de) from the translations built in the build tree.
--model DIR runs on that model folder instead (e.g. a bundle that can generate images).
With --roles a tiny random SAM folder and a Stable Diffusion folder, written by transformers and
diffusers (make_role_folders.py, run by this Python), fill the segmentation and editing roles.
Usage: run_studio_test.py TEST_STUDIO [--out DIR] [--screenshots DIR] [--no-model] [--model DIR]
                          [--roles]
Exit: the test program's status; 77 when xvfb-run, or the Python packages needed to build a
model, are missing.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

SOURCE_ROOT = os.environ.get("SETOK_SOURCE_ROOT",
                             os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEFAULT_MODEL = os.path.join(SOURCE_ROOT, "data", "models", "setokim-tiny")


def shipped_model():
    """The default bundle, when a trained one is in the tree."""
    if os.path.isfile(os.path.join(DEFAULT_MODEL, "setokim.json")):
        return DEFAULT_MODEL
    return None


def build_random_llava(folder):
    """A tiny random LLaVA folder (CLIP 56 px tower + LLaMA); None without torch/transformers."""
    sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "reference"))
    try:
        import test_llava
    except SystemExit:  # test_llava exits 77 when a package is missing
        return None
    except ImportError:
        return None
    test_llava.build_llava_folder(folder, 0)
    return folder


def sample_image(folder):
    """A sample from data/samples/, else a scene of coloured shapes drawn with Pillow."""
    samples = sorted(glob.glob(os.path.join(SOURCE_ROOT, "data", "samples", "*.png")))
    if samples:
        return samples[0]
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return None
    img = Image.new("RGB", (224, 168), (222, 226, 214))
    draw = ImageDraw.Draw(img)
    draw.rectangle([16, 20, 92, 96], fill=(200, 40, 40))
    draw.ellipse([120, 24, 204, 108], fill=(40, 90, 210))
    draw.polygon([(40, 160), (100, 110), (160, 160)], fill=(40, 170, 70))
    path = os.path.join(folder, "scene.png")
    img.save(path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test_studio")
    ap.add_argument("--out", default=None)
    ap.add_argument("--screenshots", default=None,
                    help="a folder for the 360 and 1200 px window screenshots")
    ap.add_argument("--model", default=None, help="the model folder to run on")
    ap.add_argument("--no-model", action="store_true",
                    help="start on a missing model folder: the app must still open images")
    ap.add_argument("--roles", action="store_true",
                    help="SAM and Stable Diffusion folders in the segmentation and editing roles")
    args = ap.parse_args()

    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        print("skipped: xvfb-run is missing")
        return 77
    build_root = os.environ.get("MESON_BUILD_ROOT", os.getcwd())
    out = args.out or os.path.join(build_root, "meson-logs", "gui")
    os.makedirs(out, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.no_model:
            model = os.path.join(tmp, "no-such-model")
        elif args.model:
            model = os.path.abspath(args.model)
        else:
            model = shipped_model() or build_random_llava(os.path.join(tmp, "llava"))
        if model is None:
            print("skipped: no data/models/setokim-tiny and no torch/transformers to build a model")
            return 77
        image = sample_image(tmp)
        if image is None:
            print("skipped: no data/samples/*.png and no Pillow to draw one")
            return 77
        corrupt = os.path.join(tmp, "corrupt.png")
        with open(corrupt, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDRthis is not a png")
        print(f"model {model}\nimage {image}\nsnapshots in {out}", flush=True)
        cmd = [xvfb, "-a", "-s", "-screen 0 1280x1024x24", args.test_studio, "--model", model,
               "--image", image, "--corrupt", corrupt, "--out", out]
        if args.screenshots:
            cmd += ["--screenshots", os.path.abspath(args.screenshots)]
        if args.roles:
            roles = os.path.join(tmp, "roles")
            made = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                                "make_role_folders.py"), roles])
            if made.returncode != 0:
                return made.returncode
            cmd += ["--sam", os.path.join(roles, "sam"), "--edit-model", os.path.join(roles, "sd")]
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "data"))
        if args.no_model:
            # and in German: the translations built here must load
            cmd += ["--no-model", "--german"]
            env["LANGUAGE"] = "de"
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
