#!/usr/bin/env python3
"""A model whose weights cannot fit in this machine's memory is refused with the estimate
(exit 2) before anything is loaded, instead of growing until the kernel kills the process.

The folder is a CLIP vision tower whose model.safetensors holds a 1 TiB tensor in a sparse
file (no disk space is used); `setok info --load` and `setok tokens` must exit 2 naming the
folder and the size.

Usage: test_too_large.py [SETOK_CLI]   (default: $SETOK_CLI)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

CLI = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SETOK_CLI", "setok")
TIB = 1 << 40
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail))


def sparse_safetensors(path, nbytes):
    header = {"huge": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + nbytes)


def png(path, w=16, h=16):
    rows = b"".join(b"\x00" + b"".join(bytes((x * 16 % 256, y * 16 % 256, 90)) for x in range(w))
                    for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def run(*args):
    p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    with tempfile.TemporaryDirectory(prefix="test-too-large-") as tmp:
        tower = os.path.join(tmp, "tower")
        os.makedirs(tower)
        with open(os.path.join(tower, "config.json"), "w") as f:
            json.dump({"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
                       "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                       "num_hidden_layers": 2, "image_size": 64, "patch_size": 8}, f)
        try:
            sparse_safetensors(os.path.join(tower, "model.safetensors"), TIB)
        except OSError as e:
            print(f"skipped: this file system has no 1 TiB sparse files ({e})")
            return 77
        image = os.path.join(tmp, "image.png")
        png(image)
        for args in (["info", "--load", "--device", "cpu", tower],
                     ["tokens", image, "--vision", tower]):
            rc, out, err = run(*args)
            check(rc == 2, f"setok {args[0]}: exit 2 (got {rc})", err.strip()[-300:])
            check("need about 1.0 TiB" in err and tower in err,
                  f"setok {args[0]}: the message names the folder and the estimate",
                  err.strip()[-300:])
            print("    " + (err.strip().splitlines() or ["(no message)"])[-1])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
