#!/usr/bin/env python3
"""The table run-on-gpu-machine.sh prints last, from the files it wrote to OUT_DIR:
the gpu suite's worst error per op and dtype (gpu-tests.log), the VAE check, and the
benchmarks (bench-*.json) against the targets on an H100.

    python3 tests/gpu/summary.py OUT_DIR
"""
import json
import os
import re
import sys

TOLERANCE = {"f32": 2e-5, "f16": 5e-3, "bf16": 3e-2}  # tests/unit/test-ops.c
DTYPES = tuple(TOLERANCE)


def suite_table(log):
    """Worst error per (op, dtype) of test-ops lines, and test-vae's lines as they are."""
    worst, failed, vae = {}, {}, []
    for line in log.splitlines():
        m = re.match(r"^(ok|FAIL) +(\S+) +(\S+) .* err (\S+)", line)
        if not m:
            continue
        verdict, op, dtype, err = m.groups()
        if op in DTYPES:  # test-vae: "ok   f16   decode pixels  err ..."
            vae.append(line)
            continue
        key = (op, dtype)
        worst[key] = max(worst.get(key, 0.0), float(err))
        failed[key] = failed.get(key, 0) + (verdict == "FAIL")
    print("== gpu suite: worst error per op and dtype (tolerance %s)"
          % ", ".join("%s %g" % kv for kv in TOLERANCE.items()))
    if not worst:
        print("no test-ops results")
    for (op, dtype), err in sorted(worst.items()):
        bad = failed[(op, dtype)]
        print("%-18s %-5s %.2e%s" % (op, dtype, err, "  FAIL x%d" % bad if bad else ""))
    # gpu-tests.log holds meson's output and its testlog: lines may come twice
    fails = [line for line in log.splitlines() if line.startswith("FAIL") or "failed:" in line]
    for line in dict.fromkeys(fails):
        print(line)
    print("== gpu suite: a VAE whose attention is one 512-channel head, vs the CPU")
    print("\n".join(dict.fromkeys(vae)) if vae else "no test-vae results")


def load(out, suite):
    try:
        with open(os.path.join(out, "bench-%s.json" % suite)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def find(d, **kv):
    for r in (d or {}).get("results", []):
        if all(r.get(k) == v for k, v in kv.items()):
            return r
    return None


def target(what, value, unit, goal, at_least):
    verdict = "" if value is None else "ok" if (value >= goal if at_least else value <= goal) \
        else "MISSED"
    print("%-44s %10s %-6s target %s %g %s" % (what, "-" if value is None else "%.2f" % value,
                                              unit, ">=" if at_least else "<=", goal, verdict))


def bench_table(out):
    print("== benchmarks")
    runs = {s: load(out, s) for s in ("llm", "unet", "vision", "ops")}
    for s, d in runs.items():
        print("bench %-6s %s" % (s, "%s, %s" % (d["device"], d["dtype"]) if d else "no result"))
    llm, unet, vision, ops = runs["llm"], runs["unet"], runs["vision"], runs["ops"]
    # the targets hold for the full shapes (LLaMA-7B, CLIP ViT-L/14-336, SD-1.5), which each
    # result names
    model = (find(llm, phase="memory") or {}).get("model", "LLaMA")
    print("models: %s" % model)
    dec, pre = find(llm, phase="decode"), find(llm, phase="prefill", tokens=616)
    target("decode after 616 tokens", dec and dec["tokens_per_s"], "tok/s", 150, True)
    target("prefill of 616 tokens", pre and pre["ms"], "ms", 40, False)
    clip = (vision or {}).get("results", [None])[0]
    target("%s encode" % (clip or {}).get("model", "vision"), clip and clip["ms"], "ms", 5, False)
    step = find(unet, phase="unet step")
    target((step or {}).get("shape", "unet step"), step and step.get("it/s"), "it/s", 40, True)
    vae = find(unet, phase="vae decode")
    target((vae or {}).get("shape", "vae decode"), vae and vae["ms"], "ms", 15, False)
    for r in (ops or {}).get("results", []):
        rate = ("%.1f GFLOP/s" % r["gflops"] if "gflops" in r else
                "%.1f GB/s" % r["gb_per_s"] if "gb_per_s" in r else "")
        direct = " | %s %.1f GFLOP/s" % (r["direct"], r["direct_gflops"]) if "direct" in r else ""
        print("  %-10s %-28s %9.3f ms %s%s" % (r["op"], r["shape"], r["ms"], rate, direct))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    try:
        with open(os.path.join(out, "gpu-tests.log"), errors="replace") as f:
            suite_table(f.read())
    except OSError:
        print("== gpu suite: no gpu-tests.log")
    bench_table(out)


if __name__ == "__main__":
    main()
