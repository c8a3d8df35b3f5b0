#!/usr/bin/env python3
"""test_eval.py — `setok eval --count 20` on the shipped model (suite `eval`): the run succeeds,
its JSON has every metric in its range, the per-type question counts add up to the total, the
token counts vary with the scenes, and --plots writes the three charts as PNG files. Exits 77
when the shipped bundle (data/models/setokim-tiny) is not in the source tree."""
import json
import os
import subprocess
import sys
import tempfile


def main():
    cli, root = os.environ.get("SETOK_CLI"), os.environ.get("SETOK_SOURCE_ROOT")
    if not cli or not root:
        print("SETOK_CLI / SETOK_SOURCE_ROOT are not set (meson test sets them)")
        return 1
    if not os.path.exists(os.path.join(root, "data", "models", "setokim-tiny", "setokim.json")):
        print("skipped: no shipped bundle in data/models/setokim-tiny")
        return 77
    failed = 0

    def check(ok, what):
        nonlocal failed
        print(("ok    " if ok else "FAIL  ") + what)
        failed += not ok

    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([cli, "eval", "--count", "20", "--json", "--plots", tmp,
                            "--device", "cpu"], capture_output=True, text=True)
        check(p.returncode == 0, f"setok eval exits 0 ({p.stderr.strip()[:200]})")
        if p.returncode != 0:
            return 1
        r = json.loads(p.stdout)
        qa, tok, ab = r["qa"], r["tokens"], r["ablation_alignment"]
        check(r["scenes"] == 20, "20 scenes")
        check(qa["questions"] > 0 and 0.0 <= qa["accuracy"] <= 1.0,
              f"QA accuracy {qa['accuracy']:.3f} over {qa['questions']} questions")
        check(sum(t["questions"] for t in qa["by_type"].values()) == qa["questions"],
              "per-type question counts add up")
        check(all(0.0 <= t["accuracy"] <= 1.0 for t in qa["by_type"].values()),
              "per-type accuracies in [0, 1]")
        for name in ("dpc", "fixed_k", "soft"):
            check(0.0 <= ab[name] <= 1.0, f"alignment {name} {ab[name]:.3f} in [0, 1]")
        check(tok["alignment"] == ab["dpc"], "the headline alignment is density peaks'")
        check(0.0 <= tok["alignment_refined_masks"] <= 1.0,
              f"alignment with refined masks {tok['alignment_refined_masks']:.3f} in [0, 1]")
        check(-1.0 <= tok["spearman_tokens_objects"] <= 1.0,
              f"Spearman rho {tok['spearman_tokens_objects']:.3f} in [-1, 1]")
        check(tok["mean_tokens"] >= 1.0, f"{tok['mean_tokens']:.2f} tokens per image")
        for name in ("tokens-vs-objects.png", "qa-by-type.png", "ablation.png"):
            path = os.path.join(tmp, name)
            with open(path, "rb") as f:
                check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{name} is a PNG")
    print(f"{'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
