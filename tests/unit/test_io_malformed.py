#!/usr/bin/env python3
"""test_io_malformed.py — `setok info` on malformed safetensors files and model folders.

Builds each broken input in a temp dir and runs `$SETOK_CLI info PATH` (or argv[1] as the
CLI). Every malformed case must exit with status exactly 2, print a message on stderr that
names the file, show no sanitizer report, and finish within 10 s. Valid inputs must exit 0
and `--json` must print parseable JSON. Stdlib only.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

TIMEOUT_S = 10


def header_bytes(header):
    """JSON header (dict, str or bytes) padded with spaces to a multiple of 8."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode("utf-8")
    return header + b" " * (-len(header) % 8)


def st_file(header, data=b"", header_len=None):
    """A safetensors file; header_len overrides the length field."""
    h = header_bytes(header)
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


VALID_HEADER = {
    "__metadata__": {"format": "pt"},
    "a.weight": entry("F32", [2, 2], 0, 16),
    "b.bias": entry("F16", [3], 16, 22),
}
VALID_DATA = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0) + struct.pack("<3H", 0x3C00, 0x4000, 0x4200)


def valid_file():
    return st_file(VALID_HEADER, VALID_DATA)


def one(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"t": {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}}


# Each case: (name, kind, content). kind "file": bytes; "dir": {relative path: bytes}.
def malformed_cases():
    v = VALID_DATA
    cases = [
        ("empty.safetensors", "file", b""),
        ("short.safetensors", "file", b"\x10\x00\x00"),
        ("truncated.safetensors", "file", valid_file()[:-7]),
        ("header_past_end.safetensors", "file", st_file(VALID_HEADER, v, header_len=4096)),
        ("header_over_100mb.safetensors", "file",
         st_file(VALID_HEADER, v, header_len=100_000_001)),
        ("header_huge_u64.safetensors", "file", st_file(VALID_HEADER, v, header_len=2**64 - 1)),
        ("not_json.safetensors", "file", st_file("{this is not json}", b"")),
        ("json_array.safetensors", "file", st_file("[1, 2, 3]", b"")),
        ("leading_space.safetensors", "file", st_file(" " + json.dumps(one()), bytes(8))),
        ("trailing_garbage.safetensors", "file", st_file(json.dumps(one()) + " x", bytes(8))),
        ("trailing_number.safetensors", "file", st_file(json.dumps(one()) + " 4", bytes(8))),
        ("non_utf8_name.safetensors", "file",
         st_file(b'{"bad\xff\xfename":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}",
                 bytes(8))),
        ("overlong_utf8.safetensors", "file",
         st_file(b'{"\xc0\xafx":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}",
                 bytes(8))),
        ("nul_escape_name.safetensors", "file",
         st_file('{"a\\u0000b":' + json.dumps(entry("F32", [2], 0, 8)) + "}", bytes(8))),
        ("control_char_name.safetensors", "file",
         st_file(b'{"a\nb":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}", bytes(8))),
        ("nul_between_values.safetensors", "file",
         st_file(b'{"t":\x00' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}", bytes(8))),
        ("control_between_values.safetensors", "file",
         st_file(b'{\x1f"t":' + json.dumps(entry("F32", [2], 0, 8)).encode() + b"}", bytes(8))),
        ("tab_padding.safetensors", "file",
         st_file(json.dumps(one(), separators=(",", ":")).encode() + b"\t", bytes(8))),
        ("nul_padding.safetensors", "file",
         st_file(json.dumps(one(), separators=(",", ":")).encode() + b"\x00", bytes(8))),
        ("empty_name.safetensors", "file", st_file({"": entry("F32", [2], 0, 8)}, bytes(8))),
        ("duplicate_name.safetensors", "file",
         st_file('{"t":' + json.dumps(entry("F32", [2], 0, 8)) + ',"t":'
                 + json.dumps(entry("F32", [2], 8, 16)) + "}", bytes(16))),
        ("duplicate_field.safetensors", "file",
         st_file('{"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}',
                 bytes(8))),
        ("config_control_byte", "dir", {
            "config.json": b'{"architectures":\x01 ["CLIPVisionModel"]}',
            "model.safetensors": valid_file()}),
        ("config_key_twice", "dir", {
            "config.json": b'{"model_type": "clip_vision_model", "model_type": "llama"}',
            "model.safetensors": valid_file()}),
        ("index_nul", "dir", {
            "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
            "model.safetensors.index.json": b'{"weight_map": {"a.weight": "s.safetensors"}}\x00'}),
        ("unknown_dtype.safetensors", "file", st_file(one(dtype="F17"), bytes(8))),
        ("dtype_not_string.safetensors", "file", st_file(one(dtype=4), bytes(8))),
        ("missing_dtype.safetensors", "file",
         st_file({"t": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8))),
        ("negative_shape.safetensors", "file", st_file(one(shape=(-2, 1)), bytes(8))),
        ("float_shape.safetensors", "file", st_file(one(shape=(2.0,)), bytes(8))),
        ("exponent_shape.safetensors", "file", st_file('{"t":{"dtype":"F32","shape":[2e0],'
                                                       '"data_offsets":[0,8]}}', bytes(8))),
        ("string_shape.safetensors", "file", st_file(one(shape=("2",)), bytes(8))),
        ("shape_over_2p53.safetensors", "file",
         st_file(one(shape=(2**53 + 2,), offsets=(0, 8)), bytes(8))),
        ("shape_overflow.safetensors", "file",
         st_file(one(shape=(2**32, 2**32, 16), offsets=(0, 8)), bytes(8))),
        ("bytes_overflow.safetensors", "file",
         st_file(one(dtype="F64", shape=(2**31, 2**31, 2), offsets=(0, 8)), bytes(8))),
        ("too_many_dims.safetensors", "file", st_file(one(shape=(1,) * 9 + (2,)), bytes(8))),
        ("size_mismatch.safetensors", "file",
         st_file(one(shape=(2, 4), offsets=(0, 24)), bytes(24))),
        ("offsets_past_end.safetensors", "file",
         st_file(one(shape=(8,), offsets=(0, 32)), bytes(16))),
        ("offsets_reversed.safetensors", "file",
         st_file(one(shape=(0,), offsets=(8, 0)), bytes(8))),
        ("overlap.safetensors", "file",
         st_file({"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 8, 24)}, bytes(24))),
        ("hole.safetensors", "file",
         st_file({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 16, 24)}, bytes(24))),
        ("hole_at_start.safetensors", "file", st_file(one(offsets=(8, 16)), bytes(16))),
        ("trailing_data.safetensors", "file", st_file(one(), bytes(16))),
        ("offsets_wrong_length.safetensors", "file",
         st_file({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}}, bytes(8))),
        ("offsets_one_entry.safetensors", "file",
         st_file({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8]}}, bytes(8))),
        ("offsets_strings.safetensors", "file",
         st_file({"t": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, bytes(8))),
        ("entry_not_object.safetensors", "file", st_file({"t": [1, 2]}, b"")),
        ("metadata_number.safetensors", "file",
         st_file({"__metadata__": {"format": "pt", "epoch": 3}, **one()}, bytes(8))),
        ("metadata_array.safetensors", "file",
         st_file({"__metadata__": ["pt"], **one()}, bytes(8))),
        ("deep_nesting.safetensors", "file",
         st_file('{"t":' + "[" * 5000 + "]" * 5000 + "}", b"")),
        ("empty_dir", "dir", {}),
        ("index_broken_json", "dir", {
            "model.safetensors.index.json": b'{"weight_map": {"a.weight": ',
            "model-00001-of-00001.safetensors": valid_file()}),
        ("index_no_weight_map", "dir", {
            "model.safetensors.index.json": b'{"metadata": {}}'}),
        ("index_missing_shard", "dir", {
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "model-00001-of-00002.safetensors"}}).encode()}),
        ("index_dotdot_shard", "dir", {
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "../outside.safetensors"}}).encode()}),
        ("index_absolute_shard", "dir", {
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "/etc/passwd"}}).encode()}),
        ("index_tensor_not_in_shard", "dir", {
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "s1.safetensors",
                                "missing.weight": "s1.safetensors"}}).encode(),
            "s1.safetensors": valid_file()}),
        ("index_malformed_shard", "dir", {
            "diffusion_pytorch_model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "s1.safetensors"}}).encode(),
            "s1.safetensors": st_file("[]", b"")}),
        ("index_duplicate_across_shards", "dir", {
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a.weight": "s1.safetensors", "b.bias": "s2.safetensors"}}
            ).encode(),
            "s1.safetensors": valid_file(), "s2.safetensors": valid_file()}),
        ("config_broken_json", "dir", {
            "config.json": b'{"architectures": ["LlamaForCausalLM"], "hidden_size": }',
            "model.safetensors": valid_file()}),
        ("config_is_array", "dir", {
            "config.json": b'["LlamaForCausalLM"]', "model.safetensors": valid_file()}),
        ("component_bad_weights", "dir", {
            "config.json": b'{"model_type": "llama"}',
            "model.safetensors": st_file(one(shape=(-1,)), bytes(8))}),
        ("bundle_bad_manifest", "dir", {
            "setokim.json": b"{components: []}",
            "llm/config.json": b"{}", "llm/model.safetensors": valid_file()}),
        ("bundle_bad_component", "dir", {
            "setokim.json": b"{}",
            "llm/config.json": b"{}", "llm/model.safetensors": valid_file(),
            "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": b"\x00" * 5}),
    ]
    return cases


def valid_cases():
    shard_a = st_file({"a.weight": entry("F32", [2, 2], 0, 16)}, VALID_DATA[:16])
    shard_b = st_file({"b.bias": entry("F16", [3], 0, 6)}, VALID_DATA[16:])
    return [
        ("valid.safetensors", "file", valid_file(), 2, 7),
        ("sharded", "dir", {
            "config.json": b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}',
            "model.safetensors.index.json": json.dumps(
                {"metadata": {"total_size": 22},
                 "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                "b.bias": "model-00002-of-00002.safetensors"}}).encode(),
            "model-00001-of-00002.safetensors": shard_a,
            "model-00002-of-00002.safetensors": shard_b}, 2, 7),
        ("bundle", "dir", {
            "setokim.json": json.dumps({"format": "setokim", "version": 1, "components": {
                "llm": "llm", "vae": "vae", "scheduler": "scheduler"}}).encode(),
            "llm/config.json": b'{"architectures": ["LlamaForCausalLM"]}',
            "llm/model.safetensors": valid_file(),
            "vae/config.json": b'{"_class_name": "AutoencoderKL"}',
            "vae/diffusion_pytorch_model.safetensors": valid_file(),
            "scheduler/scheduler_config.json": b"{}"}, 4, 14),
    ]


def materialize(root, name, kind, content):
    path = os.path.join(root, name)
    if kind == "file":
        with open(path, "wb") as f:
            f.write(content)
        return path
    os.makedirs(path)
    for rel, data in content.items():
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    return path


def run(cli, args):
    try:
        p = subprocess.run([cli, "info"] + args, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sanitizer_report(stderr):
    return "AddressSanitizer" in stderr or "runtime error" in stderr or "LeakSanitizer" in stderr


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SETOK_CLI")
    if not cli:
        print("usage: test_io_malformed.py SETOK_CLI (or set $SETOK_CLI)", file=sys.stderr)
        return 2
    passed = failed = 0

    def report(ok, what, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
        print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else ": " + detail))
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="test-io-malformed-") as root:
        for name, kind, content in malformed_cases():
            path = materialize(root, name, kind, content)
            r = run(cli, [path])
            if r is None:
                report(False, name, "timed out after %d s" % TIMEOUT_S)
                continue
            rc, out, err = r
            problems = []
            if rc != 2:
                problems.append("exit %d, expected 2" % rc)
            if not err.strip():
                problems.append("empty stderr")
            elif name not in err:
                problems.append("stderr does not name %s" % name)
            if sanitizer_report(err):
                problems.append("sanitizer report")
            detail = "; ".join(problems) + " | stderr: " + err.strip()[-600:]
            report(not problems, "%s -> %s" % (name, err.strip().splitlines()[-1][:150]
                                              if err.strip() else "(no message)"), detail)

        # a path that does not exist
        missing = os.path.join(root, "does_not_exist.safetensors")
        r = run(cli, [missing])
        report(r is not None and r[0] == 2 and "does_not_exist" in r[2], "missing path",
               repr(r))

        for name, kind, content, tensors, params in valid_cases():
            path = materialize(root, name, kind, content)
            r = run(cli, [path])
            ok = r is not None and r[0] == 0 and r[1].strip() and not r[2].strip()
            report(ok, "valid %s: exit 0" % name, repr(r))
            r = run(cli, ["--json", path])
            try:
                doc = json.loads(r[1]) if r and r[0] == 0 else None
            except ValueError as e:
                doc = None
                r = (r[0], r[1], str(e))
            ok = (doc is not None and doc.get("tensors") == tensors
                  and doc.get("parameters") == params and not sanitizer_report(r[2]))
            report(ok, "valid %s: --json parses (%s tensors, %s parameters)"
                   % (name, tensors, params), repr(r)[-600:])

        r = run(cli, ["--help"])
        report(r is not None and r[0] == 0 and "Usage" in r[1], "--help exits 0", repr(r))
        r = run(cli, ["--no-such-option", "x"])
        report(r is not None and r[0] == 2 and r[2].strip(), "unknown option exits 2", repr(r))
        r = run(cli, [])
        report(r is not None and r[0] == 2, "missing PATH exits 2", repr(r))

    n_malformed = len(malformed_cases())
    print("%d passed, %d failed (%d malformed inputs)" % (passed, failed, n_malformed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
