#!/usr/bin/env python3
"""test_eval.py — `setok eval --count 20` on the shipped model (suite `eval`): the run succeeds,
its JSON has every metric in its range, the per-type question counts add up to the total, the
token counts vary with the scenes, and --plots writes the three charts as PNG files. When the
model can generate, the "generation", "edit" and "reconstruction" (each scene decoded from its
own tokens) results are checked too (and generation.png),
and when it segments by phrase, the "referring" results; when it cannot, those checks are
skipped with the reason printed. SETOK_EVAL_GEN_MODEL may name
another bundle with generation (e.g. /tmp/gen/bundle) whose generation and edit results are
checked the same way (--no-qa). Exits 77 when the shipped bundle (data/models/setokim-tiny) is
not in the source tree."""
import json
import os
import subprocess
import sys
import tempfile


def in_unit(v):
    return isinstance(v, (int, float)) and 0.0 <= v <= 1.0


def check_generation(r, count, plots, check):
    """The "generation" and "edit" keys of one `setok eval --json` result."""
    gen, edit = r.get("generation"), r.get("edit")
    check(isinstance(gen, dict) and isinstance(edit, dict), "generation and edit keys present")
    if not isinstance(gen, dict) or not isinstance(edit, dict):
        return
    if not gen.get("available"):
        print(f"skipped: generation and edit checks: {r['model']} cannot generate "
              "(no visual_tokens / unet / vae / mapper / scheduler)")
        check(edit.get("available") is False, "edit is unavailable with generation")
        return
    check(gen["prompts"] == min(count, 50), f"{gen['prompts']} prompts drawn")
    check(gen["named_objects"] >= gen["prompts"], f"{gen['named_objects']} named objects")
    for key in ("attribute_accuracy", "colour_found", "shape_found", "prompts_satisfied"):
        check(in_unit(gen[key]), f"generation {key} {gen[key]} in [0, 1]")
    check(gen["attribute_accuracy"] <= min(gen["colour_found"], gen["shape_found"]),
          "colour and shape together are found no more often than either")
    check(gen["steps"] == 20 and gen["guidance"] == 3, "defaults: 20 steps, guidance 3")
    check(gen["ms_per_image"] > 0, f"{gen['ms_per_image']:.0f} ms per image")
    check(0 < edit["edits"] <= min(count, 50), f"{edit['edits']} edits")
    check(in_unit(edit["success"]), f"edit success {edit['success']} in [0, 1]")
    by = edit["by_kind"]
    check(set(by) <= {"recolour", "remove", "add", "move", "resize"} and
          sum(k["edits"] for k in by.values()) == edit["edits"], "per-kind edit counts add up")
    check(all(in_unit(k["success"]) for k in by.values()), "per-kind success in [0, 1]")
    check("recolour" in by and "remove" in by, "recolour and remove come first")
    check(edit["mean_abs_diff_outside"] == 0.0,
          f"mean |change| outside the region {edit['mean_abs_diff_outside']} is 0")
    if plots:
        with open(os.path.join(plots, "generation.png"), "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "generation.png is a PNG")


def check_reconstruction(r, count, check):
    """The "reconstruction" key: each scene decoded from its own tokens, scored like a
    generation of its prompt."""
    rec, gen = r.get("reconstruction"), r.get("generation") or {}
    check(isinstance(rec, dict), "reconstruction key present")
    if not isinstance(rec, dict):
        return
    check(rec.get("available") == bool(gen.get("available")),
          "reconstruction is available exactly when generation is")
    if not rec.get("available"):
        return
    check(rec["scenes"] == min(count, 50), f"{rec['scenes']} scenes reconstructed")
    check(rec["named_objects"] == gen["named_objects"],
          "the same objects are scored as in generation (the scenes' prompts name them all)")
    for key in ("attribute_accuracy", "colour_found", "shape_found", "scenes_satisfied"):
        check(in_unit(rec[key]), f"reconstruction {key} {rec[key]} in [0, 1]")
    check(rec["attribute_accuracy"] <= min(rec["colour_found"], rec["shape_found"]),
          "colour and shape together are found no more often than either")
    check(5.0 < rec["psnr_db"] < 99.0, f"reconstruction PSNR {rec['psnr_db']:.1f} dB")
    check(rec["ms_per_image"] > 0, f"{rec['ms_per_image']:.0f} ms per image")


def check_referring(r, check):
    """The "referring" key of one `setok eval --json` result."""
    ref = r.get("referring")
    check(isinstance(ref, dict), "referring key present")
    if not isinstance(ref, dict):
        return
    if not ref.get("available"):
        print(f"skipped: referring checks: {r['model']} does not segment by phrase")
        return
    check(ref["expressions"] >= r["scenes"], f"{ref['expressions']} referring expressions")
    for key in ("miou", "hit_rate_iou50"):
        check(in_unit(ref[key]), f"referring {key} {ref[key]:.3f} in [0, 1]")


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
        check_generation(r, 20, tmp, check)
        check_reconstruction(r, 20, check)
        check_referring(r, check)
    other = os.environ.get("SETOK_EVAL_GEN_MODEL")
    if other:
        p = subprocess.run([cli, "eval", "--count", "20", "--no-qa", "--json", "--device", "cpu",
                            "--model", other], capture_output=True, text=True)
        check(p.returncode == 0, f"setok eval --model {other} exits 0 ({p.stderr.strip()[:200]})")
        if p.returncode == 0:
            check_generation(json.loads(p.stdout), 20, None, check)
            check_reconstruction(json.loads(p.stdout), 20, check)
            check_referring(json.loads(p.stdout), check)
    print(f"{'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
