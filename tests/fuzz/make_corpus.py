#!/usr/bin/env python3
"""make_corpus.py — writes the fuzz harnesses' seed corpora into tests/fuzz/corpus/.

The seeds are the inputs the tests already use, kept small: the shipped model's configs,
manifest and tokenizer.json; the tiny tokenizer.json of tests/unit/test-tokenizer.c; small
safetensors files of every dtype the format names; a sharded index over the harness's two
shards; a small SentencePiece model (trained here, as tests/reference/test_tokenizer.py
does) and CLIP vocab/merges files; and PNG and JPEG files in each layout the decoders
handle. Needs numpy and Pillow (and sentencepiece for the tokenizer.model seed).
Usage: make_corpus.py [OUT_DIR]
"""
import io
import json
import os
import struct
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "data", "models", "setokim-tiny")


def write(out, harness, name, data):
    folder = os.path.join(out, harness)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def read(*parts):
    with open(os.path.join(*parts), "rb") as f:
        return f.read()


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] -> the file's bytes (space padded)."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors_seeds(out):
    import numpy as np
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    write(out, "safetensors", "f32-with-metadata.safetensors", safetensors(
        [("weight", "F32", [2, 3], f32.tobytes()), ("bias", "F32", [3], f32[0].tobytes())],
        {"format": "pt"}))
    write(out, "safetensors", "half-types.safetensors", safetensors(
        [("h", "F16", [4], np.linspace(-1, 1, 4).astype(np.float16).tobytes()),
         ("b", "BF16", [2], b"\x80\x3f\x00\x40"),
         ("scalar", "F64", [], struct.pack("<d", 0.5))]))
    write(out, "safetensors", "int-types.safetensors", safetensors(
        [("ids", "I64", [3], np.array([1, -2, 3], np.int64).tobytes()),
         ("mask", "BOOL", [2], b"\x01\x00"), ("u", "U8", [1], b"\x07"),
         ("i32", "I32", [2], np.array([5, -6], np.int32).tobytes()),
         ("empty", "F32", [0, 4], b"")]))
    write(out, "safetensors", "no-tensors.safetensors", safetensors([]))


def config_seeds(out):
    for comp in ("vision", "setok", "llm", "projector_in", "mapper", "unet", "vae",
                 "mask_decoder"):
        write(out, "config", f"{comp}-config.json", read(MODEL, comp, "config.json"))
    # a CLIPTextModel's (what a Stable Diffusion text_encoder/ holds), tiny
    write(out, "config", "clip-text-config.json", json.dumps({
        "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
        "num_hidden_layers": 2, "max_position_embeddings": 77, "vocab_size": 99,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 32,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}, indent=2))


def processor_seeds(out):
    write(out, "processor-config", "clip-preprocessor_config.json",
          read(MODEL, "vision", "preprocessor_config.json"))
    write(out, "processor-config", "ddim-scheduler_config.json",
          read(MODEL, "scheduler", "scheduler_config.json"))
    write(out, "processor-config", "siglip-preprocessor_config.json", json.dumps({
        "image_processor_type": "SiglipImageProcessor", "do_resize": True,
        "size": {"height": 16, "width": 16}, "resample": 2, "do_rescale": True,
        "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}, indent=2))
    # diffusers writes an infinite lambda_min_clipped as -Infinity
    write(out, "processor-config", "dpm-scheduler_config.json",
          '{"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000,\n'
          ' "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,\n'
          ' "solver_order": 2, "algorithm_type": "dpmsolver++", "solver_type": "midpoint",\n'
          ' "lower_order_final": true, "lambda_min_clipped": -Infinity,\n'
          ' "timestep_spacing": "linspace", "prediction_type": "v_prediction"}\n')
    write(out, "processor-config", "euler-scheduler_config.json", json.dumps({
        "_class_name": "EulerAncestralDiscreteScheduler", "num_train_timesteps": 1000,
        "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
        "timestep_spacing": "trailing", "steps_offset": 1}))


def index_seeds(out):
    write(out, "index", "model.safetensors.index.json", json.dumps({
        "metadata": {"total_size": 24},
        "weight_map": {"a": "model-00001-of-00002.safetensors",
                       "b": "model-00001-of-00002.safetensors",
                       "c": "model-00002-of-00002.safetensors"}}, indent=2))


def tokenizer_seeds(out):
    write(out, "bundle", "setokim.json", read(MODEL, "setokim.json"))
    write(out, "tokenizer-json", "setokim-tiny-tokenizer.json",
          read(MODEL, "llm", "tokenizer.json"))
    # tests/unit/test-tokenizer.c's tiny LLaMA-style tokenizer.json
    source = read(ROOT, "tests", "unit", "test-tokenizer.c").decode()
    start = source.index("static const char *tiny_json =") + len("static const char *tiny_json =")
    literal = source[start:source.index(";", start)]
    parts = [p for p in __import__("re").findall(r'"((?:[^"\\]|\\.)*)"', literal)]
    text = "".join(parts).encode("latin-1").decode("unicode_escape").encode("latin-1")
    write(out, "tokenizer-json", "tiny-llama-tokenizer.json", text)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for i, piece in enumerate(["a", "b", "c", "a</w>", "b</w>", "ab", "ab</w>", "ca</w>"]):
        vocab[piece] = i + 2
    merges = "#version: 0.2\na b\na b</w>\nc a</w>\n"
    write(out, "clip-files", "vocab-merges", json.dumps(vocab).encode() + b"\0" + merges.encode())


def spm_seeds(out):
    try:
        import sentencepiece as spm
    except ImportError:
        print("sentencepiece is missing: no tokenizer.model seed")
        return
    lines = ["the red circle is left of the blue square", "a small green triangle",
             "how many shapes are there", "what colour is the star", "the yellow ring"] * 20
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write("\n".join(lines))
        for kind in ("bpe", "unigram"):
            prefix = os.path.join(tmp, kind)
            spm.SentencePieceTrainer.train(
                input=text, model_prefix=prefix, vocab_size=300 if kind == "bpe" else 40,
                model_type=kind,
                normalization_rule_name="identity", byte_fallback=kind == "bpe",
                hard_vocab_limit=False, minloglevel=2)
            write(out, "spm", f"{kind}.model", read(prefix + ".model"))


def image_seeds(out):
    from PIL import Image
    for name in sorted(os.listdir(os.path.join(ROOT, "data", "samples")))[:2]:
        write(out, "png", name, read(ROOT, "data", "samples", name))
    rgb = Image.new("RGB", (9, 7))
    for y in range(7):
        for x in range(9):
            rgb.putpixel((x, y), (x * 28, y * 36, (x + y) * 16))
    variants = {"gray.png": rgb.convert("L"), "gray-alpha.png": rgb.convert("LA"),
                "palette.png": rgb.convert("P"), "rgba.png": rgb.convert("RGBA")}
    for name, img in variants.items():
        buf = io.BytesIO()
        img.save(buf, "PNG")
        write(out, "png", name, buf.getvalue())
    buf = io.BytesIO()
    rgb.save(buf, "PNG", interlace=1)
    write(out, "png", "interlaced.png", buf.getvalue())
    buf = io.BytesIO()
    rgb.convert("I;16").save(buf, "PNG")
    write(out, "png", "gray16.png", buf.getvalue())
    for name, img, opts in (("rgb.jpg", rgb, {}), ("gray.jpg", rgb.convert("L"), {}),
                            ("progressive.jpg", rgb, {"progressive": True}),
                            ("cmyk.jpg", rgb.convert("CMYK"), {}),
                            ("subsampled.jpg", rgb, {"subsampling": 2, "quality": 50})):
        buf = io.BytesIO()
        img.save(buf, "JPEG", **opts)
        write(out, "jpeg", name, buf.getvalue())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus")
    safetensors_seeds(out)
    config_seeds(out)
    processor_seeds(out)
    index_seeds(out)
    tokenizer_seeds(out)
    spm_seeds(out)
    image_seeds(out)
    print(f"seeds written to {out}")


if __name__ == "__main__":
    main()
