#!/usr/bin/env python3
"""make_role_folders.py — tiny random model folders for Studio's roles, written by
transformers and diffusers themselves: a SamModel with its processor (sam/, as
tests/reference/test_sam_encoder.py writes it) and a Stable Diffusion pipeline (sd/, as
tests/reference/test_generate.py writes it, 64 px).
Usage: make_role_folders.py DIR    Exit 0, or 77 when torch/transformers/diffusers is missing.
"""
import os
import sys

SOURCE_ROOT = os.environ.get("SETOK_SOURCE_ROOT",
                             os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "reference"))


def main():
    out = sys.argv[1]
    try:
        import torch
        import test_generate
        import test_sam_encoder
    except (ImportError, SystemExit) as e:
        print(f"skipped: {e}")
        return 77
    gen = torch.Generator().manual_seed(7)
    test_sam_encoder.save(test_sam_encoder.tiny_sam(gen), os.path.join(out, "sam"))
    test_generate.tiny_pipeline(os.path.join(out, "sd"), gen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
