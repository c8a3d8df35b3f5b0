#!/usr/bin/env python3
"""test_lora.py — PEFT LoRA adapters (engine/models/lora.c) against peft's merge_and_unload.

Builds a tiny random LlamaForCausalLM with transformers, wraps it with peft LoraConfigs (r 4,
alpha 8 on q_proj and v_proj; all linear layers with rslora; a regex target string; and the
".default" adapter-name spelling of the tensors), sets every lora_A and lora_B to random
non-zero values (peft starts B at zero), and saves the adapter. The engine loads the base
folder plus the adapter through setok_llama_logits_f32 (ctypes, $SETOK_LIB) and its logits of
12 random ids are compared with the logits of peft's merge_and_unload() model: a case passes
when max|got - ref| / max|ref| <= 1e-4 (f32). Malformed adapters (a shape mismatch, a module
the base model does not have, bias "all", modules_to_save) must fail with the right status and
a message naming the culprit.
Usage: test_lora.py [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch, transformers or peft is missing.
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile

try:
    import numpy as np
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from setok_ctypes import SetokError, load_library  # noqa: E402
from checks import Results, rel_err  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOLERANCE = 1e-4
TOKENS, VOCAB = 12, 200
STATUS_INPUT, STATUS_UNSUPPORTED = 1, 5

BASE = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-5)

CASES = {
    "q-v": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "all-linear-rslora": dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True),
    "regex": dict(r=2, lora_alpha=5, target_modules=r".*\.(o_proj|down_proj)"),
}

LIB = load_library({
    "setok_llama_logits_f32": [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32),
                               ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                               ctypes.POINTER(SetokError)],
})


R = Results()


def engine_logits(base, adapter, ids):
    """(status, message, logits [T, V]) from the engine."""
    ids_c = (ctypes.c_int32 * len(ids))(*ids)
    out = np.zeros((len(ids), VOCAB), np.float32)
    err = SetokError()
    st = LIB.setok_llama_logits_f32(base.encode(), adapter.encode() if adapter else None, ids_c,
                                    len(ids), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                    out.size, ctypes.byref(err))
    return st, err.message.decode(errors="replace"), out


def make_base(folder, seed):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**BASE)).eval()
    model.save_pretrained(folder)
    return model


def make_adapter(base_dir, folder, kw, seed):
    """Saves a peft adapter with random A and B; returns peft's merged logits function."""
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    pm = get_peft_model(model, LoraConfig(**kw))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    pm.save_pretrained(folder)
    merged = pm.merge_and_unload().eval()

    def logits(ids):
        with torch.no_grad():
            return merged(torch.tensor([ids])).logits[0].float().numpy()
    return logits


def check_case(name, base_dir, adapter_dir, ref, ids):
    st, msg, got = engine_logits(base_dir, adapter_dir, ids)
    if st != 0:
        R.check(name, False, f"status {st}: {msg}")
        return
    e = rel_err(got, ref)
    R.check(name, e <= TOLERANCE, f"max rel err {e:.2e}")


def expect_error(name, base_dir, adapter_dir, status, needle, ids):
    st, msg, _ = engine_logits(base_dir, adapter_dir, ids)
    R.check(name, st == status and needle in msg, f"status {st}: {msg}")


def copy_adapter(src, dst, tensors=None, config=None):
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "adapter_config.json")) as f:
        cfg = json.load(f)
    cfg.update(config or {})
    with open(os.path.join(dst, "adapter_config.json"), "w") as f:
        json.dump(cfg, f)
    t = load_file(os.path.join(src, "adapter_model.safetensors"))
    if tensors:
        t = tensors(t)
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(dst, "adapter_model.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, "
          f"torch {torch.__version__}")
    rng = np.random.default_rng(args.seed)
    ids = [int(i) for i in rng.integers(0, VOCAB, TOKENS)]
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        base_model = make_base(base, args.seed)
        with torch.no_grad():
            base_ref = base_model(torch.tensor([ids])).logits[0].float().numpy()
        check_case("base (no adapter)", base, None, base_ref, ids)

        refs = {}
        for i, (name, kw) in enumerate(CASES.items()):
            folder = os.path.join(tmp, name)
            fn = make_adapter(base, folder, kw, args.seed + 1 + i)
            refs[name] = fn(ids)
            check_case(name, base, folder, refs[name], ids)

        qv = os.path.join(tmp, "q-v")
        # the ".default" adapter-name segment that unsaved peft state dicts carry
        dflt = os.path.join(tmp, "default-name")
        copy_adapter(qv, dflt, tensors=lambda t: {
            k.replace(".weight", ".default.weight"): v for k, v in t.items()})
        check_case("q-v .default names", base, dflt, refs["q-v"], ids)

        def widen(t):
            k = next(k for k in t if k.endswith("q_proj.lora_A.weight"))
            t[k] = torch.randn(t[k].shape[0], t[k].shape[1] + 1)
            return t
        bad = os.path.join(tmp, "bad-shape")
        copy_adapter(qv, bad, tensors=widen)
        expect_error("shape mismatch", base, bad, STATUS_INPUT, "q_proj.lora_A.weight", ids)

        def unknown(t):
            t["base_model.model.model.layers.0.self_attn.foo_proj.lora_A.weight"] = \
                torch.randn(4, 64)
            t["base_model.model.model.layers.0.self_attn.foo_proj.lora_B.weight"] = \
                torch.randn(64, 4)
            return t
        bad = os.path.join(tmp, "unknown-target")
        copy_adapter(qv, bad, tensors=unknown,
                     config={"target_modules": ["q_proj", "v_proj", "foo_proj"]})
        expect_error("unknown target", base, bad, STATUS_INPUT, "foo_proj", ids)
        bad = os.path.join(tmp, "not-in-targets")
        copy_adapter(qv, bad, tensors=unknown)
        expect_error("module not in target_modules", base, bad, STATUS_INPUT, "foo_proj", ids)

        def unpaired(t):
            del t[next(k for k in t if k.endswith("lora_B.weight"))]
            return t
        bad = os.path.join(tmp, "unpaired")
        copy_adapter(qv, bad, tensors=unpaired)
        expect_error("lora_A without lora_B", base, bad, STATUS_INPUT, "no lora_B", ids)

        bad = os.path.join(tmp, "bias-all")
        copy_adapter(qv, bad, config={"bias": "all"})
        expect_error("bias all", base, bad, STATUS_UNSUPPORTED, "bias", ids)
        bad = os.path.join(tmp, "modules-to-save")
        copy_adapter(qv, bad, config={"modules_to_save": ["lm_head"]})
        expect_error("modules_to_save", base, bad, STATUS_UNSUPPORTED, "modules_to_save", ids)
        expect_error("missing adapter", base, os.path.join(tmp, "nowhere"), STATUS_INPUT,
                     "adapter_config.json", ids)

    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
