#!/usr/bin/env python3
"""test_setokim.py — the engine on a SETOKIM bundle (engine/io/bundle.c, engine/pipelines/chat.c,
chat-model.c, tokens.c; `setok ask`, `chat`, `tokens`, `info`) against the PyTorch reference
tools/setokim/bundle.py SetokimModel.

A tiny random bundle is written with bundle.py (random_model + save_bundle, weights in f16) and
read back with SetokimModel.from_bundle in f32, as the engine loads it on the CPU. On three random
32 x 32 images (the bundle's image_size, so the processor does not resample):
  - `setok tokens IMAGE --model B --json -`: the same clusters (centres) and merger tokens within
    1e-4 relative error of SetokimModel.vision_tokens;
  - `setok ask IMAGE Q --model B --json --max-tokens 32 --temperature 0`: the same prompt length
    and the same 32 greedy ids as SetokimModel.generate_ids on prompt_embeds;
  - `--tokens patches`: the merger on one cluster per patch, same greedy ids;
  - a copy whose manifest has a system prompt and vision_feature_layer -2: tokens and ids;
  - a second bundle whose vision tower has a convolutional stem: tokens and ids.
Then `setok chat` through a pipe: an image turn and a follow-up (EOS, "USER: q ASSISTANT:"
without BOS, one KV cache), and a conversation without an image, compared as the text the
engine's streaming decoder makes of the reference ids (random models emit invalid UTF-8, which
tokenizers and the engine render differently). `setok info`
shows the manifest. Malformed manifests (bad JSON, a ".." path, a missing component folder, a
wrong format) make ask, tokens, chat and info exit 2 naming setokim.json.
Usage: test_setokim.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch, transformers, tokenizers, safetensors
or Pillow is missing.
"""
import argparse
import ctypes
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
    from checks import Results, rel_err
    from setokim import bundle as ref
    import safetensors  # noqa: F401  (bundle.py saves with it)
    import tokenizers  # noqa: F401
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

from setok_ctypes import SetokError, load_library  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

NEW_TOKENS = 32
N_IMAGES = 3
TOKENS_TOL = 1e-4
QUESTIONS = ["What colour is the square?", "How many circles are there?",
             "Is the red star left of the blue cross?"]
FOLLOW_UP = "And the triangle?"
TEXT_ONLY = "Draw a green circle."

P_ERR = ctypes.POINTER(SetokError)
LIB = load_library({
    "setok_text_tokenizer_load": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, P_ERR],
    "setok_text_tokenizer_free": [ctypes.c_void_p, ("restype", None)],
    "setok_text_stream_new": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_bool,
                              P_ERR],
    "setok_text_stream_free": [ctypes.c_void_p, ("restype", None)],
    "setok_text_stream_push": [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char_p),
                               P_ERR],
    "setok_text_stream_flush": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), P_ERR],
})

R = Results()


class EngineTokenizer:
    """The engine's streaming decode of llm/tokenizer.json: exactly what `setok chat` prints
    for given ids (skipping special tokens, flushed at the end)."""

    def __init__(self, folder):
        self.err = SetokError()
        self.handle = ctypes.c_void_p()
        self.call(LIB.setok_text_tokenizer_load, ctypes.byref(self.handle), folder.encode())

    def call(self, fn, *args):
        if fn(*args, ctypes.byref(self.err)) != 0:
            raise RuntimeError(self.err.message.decode(errors="replace"))

    def stream(self, ids):
        stream = ctypes.c_void_p()
        self.call(LIB.setok_text_stream_new, ctypes.byref(stream), self.handle, True)
        out, piece = b"", ctypes.c_char_p()
        try:
            for i in ids:
                self.call(LIB.setok_text_stream_push, stream, i, ctypes.byref(piece))
                out += piece.value or b""
            self.call(LIB.setok_text_stream_flush, stream, ctypes.byref(piece))
            return out + (piece.value or b"")
        finally:
            LIB.setok_text_stream_free(stream)

    def close(self):
        LIB.setok_text_tokenizer_free(self.handle)


def make_image(path, seed, size):
    """A noisy background with two flat shapes, so clustering has regions to find."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    a, b = size // 8, size // 2
    img[a:b, a:b] = rng.integers(0, 256, 3)
    img[b:size - a, b - a:size - a] = rng.integers(0, 256, 3)
    img = np.clip(img.astype(np.int32) + rng.integers(-10, 11, img.shape), 0, 255)
    img = img.astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def run(cli, *args, stdin=None):
    return subprocess.run([cli, *args], capture_output=True, input=stdin, timeout=300)


def ask(cli, image, question, bundle, *extra):
    p = run(cli, "ask", image, question, "--model", bundle, "--json", "--max-tokens",
            str(NEW_TOKENS), "--temperature", "0", "--device", "cpu", *extra)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace").strip()
    return json.loads(p.stdout), ""


def check_tokens(cli, bundle, model, image_path, pv, label):
    """`setok tokens --json -` vs SetokimModel.vision_tokens: centres and merger tokens."""
    want, clusters = model.vision_tokens(pv, return_clusters=True)
    want, centres = want[0].double().numpy(), clusters[0]["centres"].tolist()
    p = run(cli, "tokens", image_path, "--model", bundle, "--json", "-",
            "--device", "cpu")
    if p.returncode != 0:
        R.check(f"{label}: tokens", False, p.stderr.decode(errors="replace").strip())
        return
    got = json.loads(p.stdout)
    got_centres = [t["centre_patch"] for t in got["tokens"]]
    R.check(f"{label}: clusters", got_centres == centres,
            f"{len(centres)} tokens, centres {got_centres} vs {centres}")
    feats = np.array([t["features"] for t in got["tokens"]], np.float64)
    err = rel_err(feats, want)
    R.check(f"{label}: merger tokens", err <= TOKENS_TOL,
            f"max rel err {err:.2e} (tol {TOKENS_TOL:g}), shape {feats.shape}")


def reference_ids(model, question, tokens):
    """Greedy ids of the first turn: prompt length and up to NEW_TOKENS ids (EOS included)."""
    emb = model.prompt_embeds(question, tokens)
    return emb, model.generate_ids(emb, NEW_TOKENS)


def first_step_margin(model, emb):
    """Top-1 minus top-2 logit of the first step: how decisive the greedy comparison is."""
    with torch.no_grad():
        logits = model.llm(inputs_embeds=emb.unsqueeze(0)).logits[0, -1]
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def check_ask(cli, bundle, model, image_path, pv, question, label):
    with torch.no_grad():
        tokens = model.vision_tokens(pv)[0]
        emb, want = reference_ids(model, question, tokens)
    got, msg = ask(cli, image_path, question, bundle)
    if got is None:
        R.check(f"{label}: ask", False, msg)
        return
    R.check(f"{label}: image tokens", got["image_tokens"] == tokens.shape[0],
            f"engine {got['image_tokens']}, reference {tokens.shape[0]}")
    R.check(f"{label}: prompt length", got["prompt_tokens"] == emb.shape[0],
            f"engine {got['prompt_tokens']}, reference {emb.shape[0]}")
    R.check(f"{label}: greedy ids", got["token_ids"] == want,
            f"({len(want)} ids, first-step margin {first_step_margin(model, emb):.3f})"
            f"\n  engine    {got['token_ids']}\n  reference {want}")


def check_ask_patches(cli, bundle, model, image_path, pv, question, label):
    """--tokens patches: the merger on one cluster per patch."""
    gh, gw = model.grid
    with torch.no_grad():
        feats = model.vision_features(pv)[0]
        n = gh * gw
        tokens = model.merger(feats, torch.arange(n), gh, gw, n)
        _, want = reference_ids(model, question, tokens)
    got, msg = ask(cli, image_path, question, bundle, "--tokens", "patches")
    if got is None:
        R.check(f"{label}: ask --tokens patches", False, msg)
        return
    R.check(f"{label}: patches greedy ids",
            got["image_tokens"] == n and got["token_ids"] == want,
            f"{got['image_tokens']} image tokens\n  engine    {got['token_ids']}"
            f"\n  reference {want}")


def follow_up_ids(model, first_embeds, answer, question):
    """The follow-up turn: the first turn, its answer (closed by EOS), then
    "USER: q ASSISTANT:" without BOS, all in one context."""
    closed = answer[:-1] if answer and answer[-1] == model.eos_id else answer
    rest = model.embed_ids(closed + model.prompt_ids(question, image=False, first=False))
    return model.generate_ids(torch.cat([first_embeds, rest]), NEW_TOKENS)


def check_chat(cli, bundle, model, engine_tok, image_path, pv):
    """`setok chat` through a pipe: image turn + follow-up, then a text-only conversation."""
    strip_eos = (lambda ids: ids[:-1] if ids and ids[-1] == model.eos_id else ids)
    with torch.no_grad():
        tokens = model.vision_tokens(pv)[0]
        emb1, a1 = reference_ids(model, QUESTIONS[0], tokens)
        a2 = follow_up_ids(model, emb1, a1, FOLLOW_UP)
        _, a3 = reference_ids(model, TEXT_ONLY, None)
    common = ["--model", bundle, "--max-tokens", str(NEW_TOKENS), "--temperature", "0",
              "--device", "cpu"]
    p = run(cli, "chat", image_path, *common, stdin=f"{QUESTIONS[0]}\n{FOLLOW_UP}\n".encode())
    want = engine_tok.stream(strip_eos(a1)) + b"\n" + engine_tok.stream(strip_eos(a2)) + b"\n"
    R.check("chat: image turn and follow-up", p.returncode == 0 and p.stdout == want,
            f"exit {p.returncode} {p.stderr.decode(errors='replace').strip()}"
            f"\n  engine    {p.stdout!r}\n  reference {want!r}")
    p = run(cli, "chat", *common, stdin=f"{TEXT_ONLY}\n".encode())
    want = engine_tok.stream(strip_eos(a3)) + b"\n"
    R.check("chat: no image", p.returncode == 0 and p.stdout == want,
            f"exit {p.returncode} {p.stderr.decode(errors='replace').strip()}"
            f"\n  engine    {p.stdout!r}\n  reference {want!r}")


def check_variant(cli, bundle, image_path, work):
    """The manifest's system prompt and feature layer reach the prompt and the tower."""
    variant = os.path.join(work, "variant")
    shutil.copytree(bundle, variant)
    with open(os.path.join(variant, ref.MANIFEST)) as f:
        manifest = json.load(f)
    manifest.update(system_prompt="Answer in one word.", vision_feature_layer=-2)
    with open(os.path.join(variant, ref.MANIFEST), "w") as f:
        json.dump(manifest, f)
    model = ref.SetokimModel.from_bundle(variant, dtype=torch.float32)
    bundle = variant
    pv = model.preprocess(np.asarray(Image.open(image_path).convert("RGB")))
    check_tokens(cli, variant, model, image_path, pv, "system prompt, layer -2")
    check_ask(cli, variant, model, image_path, pv, QUESTIONS[0], "system prompt, layer -2")


def check_info(cli, bundle):
    p = run(cli, "info", "--json", bundle)
    ok = p.returncode == 0
    detail = p.stderr.decode(errors="replace").strip()
    if ok:
        doc = json.loads(p.stdout)
        names = [c["name"] for c in doc["components"]]
        m = doc.get("setokim", {})
        ok = (names == ["vision", "setok", "llm", "projector_in"] and m.get("version") == 1
              and m.get("image_size") == model_image_size(bundle)
              and m.get("special_tokens", {}).get("image_start") == ref.IMAGE_START)
        detail = f"components {names}, manifest {m}"
    R.check("info --json on the bundle", ok, detail)

    # the training domain and the card, as bundle.py writes them and the engine reads them
    card = ref.card_manifest("A test model.", [("qa", "Answers", 0.25, "fraction"),
                                               ("speed", "Time per answer", 12.5, "ms")],
                             ref.WORLD_QUESTIONS[:2])
    ref.set_card(bundle, domain=ref.WORLD_DOMAIN, card=card)
    p = run(cli, "info", "--json", bundle)
    m = json.loads(p.stdout).get("setokim", {}) if p.returncode == 0 else {}
    want = dict(card, metrics=[dict({"unit": ""}, **x) for x in card["metrics"]])
    R.check("domain and card: bundle.py writes what the engine reads",
            m.get("domain") == ref.WORLD_DOMAIN and m.get("card") == want,
            f"domain {m.get('domain')}, card {m.get('card')}")


def model_image_size(bundle):
    with open(os.path.join(bundle, ref.MANIFEST)) as f:
        return json.load(f)["image_size"]


def check_malformed(cli, bundle, image_path, work):
    """Each broken copy of the bundle: ask, tokens, chat and info exit 2 naming setokim.json."""
    with open(os.path.join(bundle, ref.MANIFEST)) as f:
        good = json.load(f)
    escape = json.loads(json.dumps(good))
    escape["components"]["llm"] = "../outside"
    missing = json.loads(json.dumps(good))
    missing["components"]["setok"] = "no_such_folder"
    wrong = dict(good, format="llava")
    cases = [("bad JSON", '{"format": "setokim", "version": 1,'),
             ("'..' in a component path", json.dumps(escape)),
             ("a missing component folder", json.dumps(missing)),
             ("another format", json.dumps(wrong))]
    os.makedirs(os.path.join(work, "outside"), exist_ok=True)
    for i, (what, text) in enumerate(cases):
        broken = os.path.join(work, f"broken{i}")
        shutil.copytree(bundle, broken)
        with open(os.path.join(broken, ref.MANIFEST), "w") as f:
            f.write(text)
        manifest = os.path.join(broken, ref.MANIFEST)
        runs = {"ask": ("ask", image_path, "q", "--model", broken, "--device", "cpu"),
                "tokens": ("tokens", image_path, "--model", broken, "--device", "cpu"),
                "chat": ("chat", "--model", broken, "--device", "cpu"),
                "info": ("info", broken)}
        for cmd, args in runs.items():
            p = run(cli, *args, stdin=b"")
            err = p.stderr.decode(errors="replace").strip()
            R.check(f"{what}: {cmd} exits 2 naming the file",
                    p.returncode == 2 and manifest in err, f"exit {p.returncode}: {err}")


def check_default_model(cli, image_path):
    """No --model: the shipped bundle when there is one, else a clear error."""
    root = os.environ.get("SETOK_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
    shipped = os.path.isdir(os.path.join(root, "data", "models", "setokim-tiny"))
    p = run(cli, "ask", image_path, "q", "--max-tokens", "2", "--device", "cpu")
    err = p.stderr.decode(errors="replace").strip()
    if shipped:
        R.check("default model: ask runs on data/models/setokim-tiny", p.returncode == 0, err)
    else:
        R.check("default model missing: exit 2 naming setokim-tiny",
                p.returncode in (0, 2) and (p.returncode == 0 or "setokim-tiny" in err), err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1

    with tempfile.TemporaryDirectory() as work:
        bundle = os.path.join(work, "bundle")
        ref.random_model(args.seed).save_bundle(bundle, torch.float16)
        model = ref.SetokimModel.from_bundle(bundle, dtype=torch.float32)
        bundle = bundle
        size = model.image_size
        engine_tok = EngineTokenizer(os.path.join(bundle, "llm"))

        images = []
        for i in range(N_IMAGES):
            path = os.path.join(work, f"image{i}.png")
            pv = model.preprocess(make_image(path, args.seed * 100 + i, size))
            images.append((path, pv))
            label = f"image {i}"
            check_tokens(args.cli, bundle, model, path, pv, label)
            check_ask(args.cli, bundle, model, path, pv, QUESTIONS[i % len(QUESTIONS)], label)
        check_ask_patches(args.cli, bundle, model, images[0][0], images[0][1], QUESTIONS[0],
                          "image 0")
        check_chat(args.cli, bundle, model, engine_tok, images[1][0], images[1][1])
        check_variant(args.cli, bundle, images[2][0], work)
        engine_tok.close()
        check_info(args.cli, bundle)
        check_malformed(args.cli, bundle, images[0][0], work)
        check_default_model(args.cli, images[0][0])

        # a bundle whose vision tower has a convolutional stem (tools/setokim/stem.py)
        stem_bundle = os.path.join(work, "bundle-stem")
        ref.random_model(args.seed + 1, stem=True).save_bundle(stem_bundle, torch.float16)
        stem_model = ref.SetokimModel.from_bundle(stem_bundle, dtype=torch.float32)
        for i, (path, _) in enumerate(images[:2]):
            pv = stem_model.preprocess(np.asarray(Image.open(path).convert("RGB")))
            check_tokens(args.cli, stem_bundle, stem_model, path, pv, f"conv stem, image {i}")
            check_ask(args.cli, stem_bundle, stem_model, path, pv, QUESTIONS[i % len(QUESTIONS)],
                      f"conv stem, image {i}")

    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
