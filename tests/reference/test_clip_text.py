#!/usr/bin/env python3
"""test_clip_text.py — the CLIP text encoder (engine/models/clip-text.c) against transformers'
CLIPTextModel.

Tiny random CLIPTextConfig models (quick_gelu and gelu, several widths and depths, the legacy
eos_token_id = 2 pooling rule and the current one) are saved with save_pretrained, in the
transformers-5 layout and with the older "text_model." prefix, and in a full CLIPModel folder.
`SETOK_CLI forward DIR` runs them on fresh random input_ids (with an EOS token placed at a random
position in each row, as a real prompt has) and last_hidden_state and pooler_output must match
within a max relative error of 1e-4 (f32).
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or transformers is missing.
"""
import os
import subprocess
import sys
import tempfile

from checks import Results, rel_err

try:
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()

TOLERANCE = 1e-4
R = Results()


def randomize(model, gen):
    """Random weights with some spread (HF init leaves LayerNorms at 1 / 0)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim == 1 else 0.2))
    return model


def random_ids(gen, batch, tokens, vocab, eos):
    """Random ids below eos (so argmax finds the EOS in legacy mode), one EOS per row."""
    ids = torch.randint(0, min(vocab, eos), (batch, tokens), generator=gen)
    for b in range(batch):
        at = int(torch.randint(1, tokens, (1,), generator=gen))
        ids[b, at] = eos
    return ids


def run_cli(cli, folder, ids):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"input_ids": ids.to(torch.int32).contiguous()}, src)
        p = subprocess.run([cli, "forward", folder, "--inputs", src, "--outputs", dst],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return None, p.stderr.strip()
        return load_file(dst), ""


def compare(cli, name, folder, model, ids):
    with torch.no_grad():
        ref = model(input_ids=ids)
    got, msg = run_cli(cli, folder, ids)
    if got is None:
        R.check(name, False, msg)
        return
    for key in ("last_hidden_state", "pooler_output"):
        e = rel_err(got[key].numpy(), getattr(ref, key).numpy())
        R.check(f"{name} {key}", e <= TOLERANCE, f"rel_err {e:.2e}")


def main():
    cli = os.environ.get("SETOK_CLI") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not cli:
        print("SETOK_CLI is not set")
        return 1
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    cases = [
        # hidden, layers, heads, act, eos (legacy 2 or a real id), vocab
        (32, 2, 4, "quick_gelu", 99, 100),
        (48, 3, 6, "gelu", 2, 64),
        (64, 1, 8, "quick_gelu", 150, 151),
    ]
    with tempfile.TemporaryDirectory() as root:
        for i, (hidden, layers, heads, act, eos, vocab) in enumerate(cases):
            cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden,
                                 intermediate_size=2 * hidden + 8, num_hidden_layers=layers,
                                 num_attention_heads=heads, max_position_embeddings=24,
                                 hidden_act=act, eos_token_id=eos, bos_token_id=0,
                                 pad_token_id=1)
            model = randomize(CLIPTextModel(cfg).eval(), gen)
            folder = os.path.join(root, f"text{i}")
            model.save_pretrained(folder)
            ids = random_ids(gen, 2, 5 + 6 * i, vocab, eos if eos != 2 else vocab - 1)
            if eos == 2:
                ids = torch.where(ids == vocab - 1, vocab - 1, ids)
            compare(cli, f"clip_text case {i} ({act}, eos {eos})", folder, model, ids)
            # the older layout: every weight under "text_model."
            old = os.path.join(root, f"old{i}")
            os.makedirs(old)
            state = load_file(os.path.join(folder, "model.safetensors"))
            save_file({k if k.startswith("text_model.") else "text_model." + k: v
                       for k, v in state.items()}, os.path.join(old, "model.safetensors"))
            with open(os.path.join(folder, "config.json")) as f, \
                    open(os.path.join(old, "config.json"), "w") as g:
                g.write(f.read())
            compare(cli, f"clip_text case {i} text_model. prefix", old, model, ids)
        # a full CLIPModel folder: the text tower under text_config
        full_cfg = CLIPConfig(
            text_config=dict(vocab_size=80, hidden_size=32, intermediate_size=72,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=16, eos_token_id=79),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=4, image_size=16, patch_size=8))
        full = randomize(CLIPModel(full_cfg).eval(), gen)
        folder = os.path.join(root, "full")
        full.save_pretrained(folder)
        ids = random_ids(gen, 3, 9, 80, 79)
        compare(cli, "clip_text in a CLIPModel folder", folder, full.text_model, ids)
        # too many tokens is a clear input error
        got, msg = run_cli(cli, os.path.join(root, "text0"), torch.zeros(1, 40, dtype=torch.int32))
        R.check("clip_text rejects more tokens than max_position_embeddings",
                got is None and "tokens" in msg, msg)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
