#!/usr/bin/env python3
"""`setok quantize` end to end on the shipped bundle: the copy stores the
linear-layer matrices as U8 block tensors (and says so), every other file is
copied byte for byte, and a stored q8 / q4 folder answers and draws exactly
as the original quantized on load does (the same blocks either way), with or
without --weights; it decodes to f32 too. Bad arguments fail cleanly.

Usage: test_quantize_cli.py [SETOK_CLI]   (default: $SETOK_CLI)
"""
import filecmp
import json
import os
import struct
import subprocess
import sys
import tempfile

CLI = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SETOK_CLI", "setok")
ROOT = os.environ.get("SETOK_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "data", "models", "setokim-tiny")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok  ", what)
    else:
        failed += 1
        print("FAIL", what)


def run(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600)


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def weight_files(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, _, names in os.walk(folder) for n in names
                  if n.endswith(".safetensors"))


def answers(tmp, name, *placement):
    path = os.path.join(tmp, name + ".jsonl")
    r = run("eval", "--count", "6", "--no-gen", "--json", "--answers", path, *placement)
    if r.returncode != 0:
        print(r.stderr)
        return None
    with open(path) as f:
        return [json.loads(line)["answer"] for line in f]


def main():
    tmp = tempfile.mkdtemp(prefix="setok-quantize-")
    copies = {}
    for q in ("q8", "q4"):
        out = os.path.join(tmp, "setokim-" + q)
        r = run("quantize", MODEL, out, "--weights", q, "--json")
        check(r.returncode == 0, f"quantize {q} exits 0 ({r.stderr.strip()[-200:]})")
        if r.returncode != 0:
            continue
        copies[q] = out
        report = json.loads(r.stdout)
        check(report["output_bytes"] < report["input_bytes"], f"{q}: the copy is smaller")
        check(weight_files(out) == weight_files(MODEL), f"{q}: the same weight files")
        stored = 0
        for rel in weight_files(MODEL):
            h_in, h_out = header(os.path.join(MODEL, rel)), header(os.path.join(out, rel))
            same_names = set(h_in) == set(h_out)
            check(same_names, f"{q}: {rel} keeps every tensor name")
            u8 = [n for n, t in h_out.items() if n != "__metadata__" and t["dtype"] == "U8"]
            stored += len(u8)
            for n in u8:
                rows, k = h_in[n]["shape"][0], h_in[n]["shape"][1]
                block = {"q8": 34, "q4": 20}[q]  # f16 scale (+ f16 minimum) + 32 values
                if h_out[n]["shape"] != [rows, k // 32 * block]:
                    check(False, f"{q}: {rel}:{n} has shape {h_out[n]['shape']}")
                    break
            if u8:
                meta = h_out.get("__metadata__", {})
                check(meta.get("setok_quantized") == q, f"{q}: {rel} says it is {q}")
                with open(os.path.join(out, os.path.dirname(rel), "config.json")) as f:
                    note = json.load(f).get("setok_quantization", {})
                check(note.get("format") == q, f"{q}: {os.path.dirname(rel)}/config.json notes it")
            else:
                check(filecmp.cmp(os.path.join(MODEL, rel), os.path.join(out, rel), False),
                      f"{q}: {rel}, with nothing to quantize, is copied as it is")
        check(stored > 0, f"{q}: {stored} matrices stored quantized")
        for d, _, names in os.walk(MODEL):
            for n in names:
                if n.endswith(".safetensors") or n == "config.json":
                    continue
                rel = os.path.relpath(os.path.join(d, n), MODEL)
                if not filecmp.cmp(os.path.join(d, n), os.path.join(out, rel), False):
                    check(False, f"{q}: {rel} copied unchanged")

    for q, out in copies.items():
        base = answers(tmp, "base-" + q, "--model", MODEL, "--weights", q)
        stored = answers(tmp, "stored-" + q, "--model", out)
        again = answers(tmp, "stored-again-" + q, "--model", out, "--weights", q)
        decoded = answers(tmp, "decoded-" + q, "--model", out, "--dtype", "f32")
        check(base is not None and len(base) > 0, f"{q}: eval answers questions")
        check(stored == base, f"{q}: the stored folder answers as quantize-on-load does")
        check(again == base, f"{q}: ... and with --weights {q}")
        check(decoded is not None and len(decoded) == len(base or []),
              f"{q}: the stored folder decodes to f32 and answers")
        images = []
        for name, args in (("base", ("--model", MODEL, "--weights", q)),
                           ("stored", ("--model", out))):
            png = os.path.join(tmp, f"{name}-{q}.png")
            r = run("generate", "a red circle", "-o", png, "--steps", "3", *args)
            images.append(open(png, "rb").read() if r.returncode == 0 else None)
        check(images[0] is not None and images[0] == images[1],
              f"{q}: the stored folder generates the same image")
    if "q4" in copies:
        r = run("info", "--load", "--weights", "q8", copies["q4"])
        check(r.returncode == 0, "a q4 folder loads re-quantized as q8")

    r = run("quantize", MODEL, os.path.join(tmp, "x"))
    check(r.returncode == 2 and "--weights" in r.stderr, "no --weights: usage error")
    r = run("quantize", MODEL, os.path.join(tmp, "x"), "--weights", "q5")
    check(r.returncode == 2 and "q5" in r.stderr, "--weights q5: usage error naming it")
    r = run("quantize", tmp, os.path.join(tmp, "y"), "--weights", "q8")
    check(r.returncode != 0 and "setok:" in r.stderr, "a folder that is no model: an error")
    if copies:
        r = run("quantize", MODEL, os.path.join(MODEL, "copy"), "--weights", "q8")
        check(r.returncode != 0 and "inside" in r.stderr and
              not os.path.exists(os.path.join(MODEL, "copy")), "OUT inside IN: refused")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
