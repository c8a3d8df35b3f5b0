#!/usr/bin/env python3
"""test_llama.py — the language model (engine/models/llama.c) against transformers.

Builds tiny random LlamaForCausalLM configs with transformers itself (GQA with 2 KV heads of 4;
default, linear, llama3 and dynamic rotary scaling; tied embeddings with attention and MLP biases
and a head_dim other than hidden / heads), saves them, and runs `SETOK_CLI forward DIR` with a
prefill of 12 random ids (or inputs_embeds) followed by 16 decode_ids fed one at a time through
the KV cache. `logits` and `decode_logits` are compared with the logits of one full-sequence
transformers forward at the same positions (dynamic scaling: with transformers' own cached
decode, since its frequencies follow how far each call reaches past max_position_embeddings). A LLaVA-style "language_model.model." weight prefix
is also loaded, and a pre-transformers-5 config (rope_scaling, rope_theta). A tensor passes
when max|got - ref| / max|ref| <= 1e-4 (f32).
Usage: test_llama.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch or transformers is missing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from checks import Results, rel_err
    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = 1e-4
PREFILL, DECODE, VOCAB = 12, 16, 200


R = Results()


BASE = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-5)

CONFIGS = {
    "gqa": dict(BASE),
    "linear": dict(BASE, num_hidden_layers=3,
                   rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
    "llama3": dict(BASE, rope_parameters={"rope_type": "llama3", "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 16,
                                          "rope_theta": 500000.0}),
    "tied-bias": dict(BASE, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                      head_dim=24),
    # NTK-aware dynamic scaling: the decode steps run past max_position_embeddings, so
    # theta grows step by step (compared with transformers' own cached decode)
    "dynamic": dict(BASE, max_position_embeddings=16,
                    rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                     "rope_theta": 10000.0}),
}


def cached_logits(model, ids):
    """Prefill then one token at a time through the KV cache, as transformers decodes:
    dynamic rope depends on how far each call reaches, not on the whole sequence."""
    out = model(input_ids=ids[:, :PREFILL], use_cache=True)
    logits, past = [out.logits], out.past_key_values
    for t in range(PREFILL, ids.shape[1]):
        out = model(input_ids=ids[:, t:t + 1], past_key_values=past, use_cache=True)
        logits.append(out.logits)
        past = out.past_key_values
    return torch.cat(logits, dim=1).float()


def make_model(kw, seed):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**kw, attn_implementation="eager")).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.1)
    return model


def run_cli(cli, folder, inputs):
    with tempfile.TemporaryDirectory() as tmp:
        in_path = os.path.join(tmp, "in.safetensors")
        out_path = os.path.join(tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in inputs.items()}, in_path)
        cmd = [cli, "forward", folder, "--inputs", in_path, "--outputs", out_path]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return None, p.stderr.strip()
        return load_file(out_path), ""


def compare(name, out, err, ref):
    if out is None:
        R.check(name, False, err)
        return
    e1 = rel_err(out["logits"].numpy(), ref[:, :PREFILL].numpy())
    e2 = rel_err(out["decode_logits"].numpy(), ref[:, PREFILL:].numpy())
    R.check(f"{name} prefill", e1 <= TOLERANCE, f"rel {e1:.2e}")
    R.check(f"{name} decode", e2 <= TOLERANCE, f"rel {e2:.2e}")


def legacy_config(folder):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    rope["type"] = rope.pop("rope_type")
    cfg["rope_scaling"] = rope
    with open(path, "w") as f:
        json.dump(cfg, f)


def rename_llava(folder):
    """Rewrites model.safetensors with LLaVA's language_model.model. / language_model.lm_head."""
    path = os.path.join(folder, "model.safetensors")
    sd = load_file(path)
    sd = {("language_model." + k): v for k, v in sd.items()}
    save_file(sd, path, metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    g = torch.Generator().manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as root:
        for i, (name, kw) in enumerate(CONFIGS.items()):
            model = make_model(kw, args.seed + i)
            folder = os.path.join(root, name)
            model.save_pretrained(folder)
            ids = torch.randint(0, VOCAB, (1, PREFILL + DECODE), generator=g)
            with torch.no_grad():
                ref = (cached_logits(model, ids) if name == "dynamic"
                       else model(input_ids=ids).logits.float())
            out, err = run_cli(args.cli, folder, {"input_ids": ids[:, :PREFILL],
                                                  "decode_ids": ids[:, PREFILL:]})
            compare(f"{name} input_ids", out, err, ref)
            if name == "linear":
                # the same model with a pre-5 config: rope_scaling {"type"} and rope_theta on top
                legacy_config(folder)
                out, err = run_cli(args.cli, folder, {"input_ids": ids[:, :PREFILL],
                                                      "decode_ids": ids[:, PREFILL:]})
                compare(f"{name} legacy-config", out, err, ref)
            if name != "gqa":
                continue
            # inputs_embeds: random vectors for the prompt (as spliced vision tokens), ids after
            embeds = torch.randn(1, PREFILL, kw["hidden_size"], generator=g)
            with torch.no_grad():
                full = torch.cat([embeds, model.model.embed_tokens(ids[:, PREFILL:])], dim=1)
                ref = model(inputs_embeds=full).logits.float()
            out, err = run_cli(args.cli, folder, {"inputs_embeds": embeds,
                                                  "decode_ids": ids[:, PREFILL:].to(torch.int32)})
            compare(f"{name} inputs_embeds", out, err, ref)
            # the same weights under LLaVA's language_model.model. prefix
            rename_llava(folder)
            with torch.no_grad():
                ref = model(input_ids=ids).logits.float()
            out, err = run_cli(args.cli, folder, {"input_ids": ids[:, :PREFILL],
                                                  "decode_ids": ids[:, PREFILL:]})
            compare(f"{name} llava-prefix", out, err, ref)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
