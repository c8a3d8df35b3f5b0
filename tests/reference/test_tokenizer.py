"""Text tokenizers vs the reference libraries: tokenizer.json (BPE, LLaMA style, and CLIP's
byte-level BPE as transformers' CLIPTokenizer builds it, also from vocab.json + merges.txt alone)
vs `tokenizers`, tokenizer.model (BPE and Unigram) vs `sentencepiece`. The tokenizers are trained
here on a generated corpus (no network), then every line of a second corpus must give the same
ids, the same decoded text, and a streaming decode that concatenates to the full decode in
valid UTF-8 chunks. The tokenizer.model cases include SentencePiece's NFKC normalization rules
(nmt_nfkc, nfkc, nmt_nfkc_cf: precompiled charsmaps), checked on strings of compatibility,
full-width, ligature, combining, control and whitespace characters. Malformed files (a
truncated charsmap among them) must be refused with SETOK_ERR_INPUT."""
import ctypes
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from setok_ctypes import SetokError, load_library  # noqa: E402

try:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
except ImportError:
    print("SKIP: the 'tokenizers' package is missing (tools/install-deps installs it)")
    sys.exit(77)
try:
    import sentencepiece as spm
except ImportError:
    spm = None

SPACE = "\u2581"
P_I32 = ctypes.POINTER(ctypes.c_int32)
P_ERR = ctypes.POINTER(SetokError)
LIB = load_library({
    "setok_text_tokenizer_load": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, P_ERR],
    "setok_text_tokenizer_free": [ctypes.c_void_p, ("restype", None)],
    "setok_text_tokenizer_encode": [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.c_bool, ctypes.POINTER(P_I32),
                                    ctypes.POINTER(ctypes.c_size_t), P_ERR],
    "setok_text_tokenizer_decode": [ctypes.c_void_p, P_I32, ctypes.c_size_t, ctypes.c_bool,
                                    ctypes.POINTER(ctypes.c_void_p), P_ERR],
    "setok_text_tokenizer_buffer_free": [ctypes.c_void_p, ("restype", None)],
    "setok_text_tokenizer_token_to_id": [ctypes.c_void_p, ctypes.c_char_p,
                                         ("restype", ctypes.c_int32)],
    "setok_text_tokenizer_vocab_size": [ctypes.c_void_p, ("restype", ctypes.c_int32)],
    "setok_text_tokenizer_bos_id": [ctypes.c_void_p, ("restype", ctypes.c_int32)],
    "setok_text_stream_new": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_bool,
                              P_ERR],
    "setok_text_stream_free": [ctypes.c_void_p, ("restype", None)],
    "setok_text_stream_push": [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_char_p),
                               P_ERR],
    "setok_text_stream_flush": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), P_ERR],
})


class Engine:
    """One loaded setok_text_tokenizer."""

    def __init__(self, path):
        self.err = SetokError()
        self.handle = ctypes.c_void_p()
        st = LIB.setok_text_tokenizer_load(ctypes.byref(self.handle), path.encode(),
                                           ctypes.byref(self.err))
        if st != 0:
            raise RuntimeError(self.err.message.decode())

    def close(self):
        LIB.setok_text_tokenizer_free(self.handle)

    def encode(self, text, special):
        raw = text.encode("utf-8")
        ids, n = P_I32(), ctypes.c_size_t()
        st = LIB.setok_text_tokenizer_encode(self.handle, raw, len(raw), special,
                                             ctypes.byref(ids), ctypes.byref(n),
                                             ctypes.byref(self.err))
        if st != 0:
            raise RuntimeError(self.err.message.decode())
        out = ids[:n.value]
        LIB.setok_text_tokenizer_buffer_free(ids)
        return out

    def decode(self, ids, skip):
        arr = (ctypes.c_int32 * max(1, len(ids)))(*ids)
        text = ctypes.c_void_p()
        st = LIB.setok_text_tokenizer_decode(self.handle, arr, len(ids), skip, ctypes.byref(text),
                                             ctypes.byref(self.err))
        if st != 0:
            raise RuntimeError(self.err.message.decode())
        out = ctypes.string_at(text).decode("utf-8")
        LIB.setok_text_tokenizer_buffer_free(text)
        return out

    def stream(self, ids, skip):
        """The chunks of a streaming decode; raises if one is not valid UTF-8."""
        s = ctypes.c_void_p()
        assert LIB.setok_text_stream_new(ctypes.byref(s), self.handle, skip,
                                         ctypes.byref(self.err)) == 0
        chunks = []
        text = ctypes.c_char_p()
        for i in ids:
            assert LIB.setok_text_stream_push(s, i, ctypes.byref(text), ctypes.byref(self.err)) == 0
            chunks.append(text.value.decode("utf-8"))
        assert LIB.setok_text_stream_flush(s, ctypes.byref(text), ctypes.byref(self.err)) == 0
        chunks.append(text.value.decode("utf-8"))
        LIB.setok_text_stream_free(s)
        return chunks


# ---------------------------------------------------------------------------
# corpora

WORDS = ("the of and to in is was for that with as by on are from at this which be an or it "
         "model image token cluster tokenizer language vision semantic set merge encode decode "
         "quick brown fox jumps over lazy dog hello world pixel region mask segment").split()
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
JA = "こんにちは世界トークナイザーです画像の意味"
EMOJI = ["\U0001F600", "\U0001F680", "\U0001F44D\U0001F3FD", "\u2764\ufe0f", "\U0001F1EF\U0001F1F5",
         "\U0001F9D1\u200d\U0001F4BB"]
CODE = ["def f(x):\n    return x * 2", "for (int i = 0; i < n; i++) { s += a[i]; }",
        "#include <stdio.h>", "x = {'a': [1, 2, 3]}  # comment", "if a != b && c <= d: pass"]
RARE = "ÆØÅ ßẞ ĦĳŒ Ωπλψ ЖЯщъ עברית العربية हिन्दी ไทย ꙮ 𝔘𝔫𝔦 ☃☂ ⅧⅫ ₿ ￥ ﬁ"
SPECIALS = ["<s>", "</s>", "<image>", "<|sep|>"]


def line(rng, i, specials=True):
    kind = i % 10
    if kind == 0:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))).capitalize() + "."
    if kind == 1:
        return "".join(rng.choice(CJK) for _ in range(rng.randint(1, 20)))
    if kind == 2:
        return rng.choice(WORDS) + " " + "".join(rng.sample(JA, 5)) + " " + rng.choice(EMOJI) * 2
    if kind == 3:
        return rng.choice(CODE)
    if kind == 4:
        ws = ["  ", "   ", "\t", " \t ", "\n", "\r\n", "    "]
        return rng.choice(ws).join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) + \
            rng.choice(["", " ", "  "])
    if kind == 5:
        return "".join(chr(rng.choice([1, 2, 7, 8, 11, 12, 27, 127, 0x85, 0x200b]))
                       for _ in range(3)) + rng.choice(WORDS)
    if kind == 6:
        return " ".join(rng.choice(RARE.split()) for _ in range(rng.randint(1, 5)))
    if kind == 7:
        return "".join(chr(rng.randint(0x100, 0x2FFF)) for _ in range(rng.randint(1, 6))) + \
            " " + "".join(chr(rng.randint(0x1F300, 0x1FAFF)) for _ in range(2))
    if kind == 8 and specials:
        parts = [rng.choice(WORDS) for _ in range(4)]
        for _ in range(2):
            parts.insert(rng.randint(0, len(parts)), rng.choice(SPECIALS))
        return rng.choice(["", " "]).join(parts)
    return " " + " ".join(rng.choice(WORDS) + rng.choice(["", ",", "!", "?"])
                          for _ in range(rng.randint(1, 8)))


def corpus(seed, n, specials=True):
    rng = random.Random(seed)
    lines = [line(rng, i, specials) for i in range(n)]
    return lines + ["", " ", "  x  ", "a", SPACE + "x", "<0x41>", "<unk>", "▁▁ ▁"]


# ---------------------------------------------------------------------------
# checks

class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            if self.failed <= 25:
                print("FAIL:", what)


def compare(t, name, eng, lines, ref_encode, ref_decode):
    mism = dec_mism = stream_mism = 0
    for i, text in enumerate(lines):
        special = i % 2 == 0
        want = ref_encode(text, special)
        got = eng.encode(text, special)
        if got != want:
            mism += 1
            t.check(False, f"{name}: ids for {text!r}: got {got[:20]} want {want[:20]}")
            continue
        for skip in (True, False):
            ref = ref_decode(want, skip)
            ours = eng.decode(want, skip)
            if ours != ref:
                dec_mism += 1
                t.check(False, f"{name}: decode(skip={skip}) of {text!r}: {ours!r} != {ref!r}")
            try:
                chunks = eng.stream(want, skip)
                ok = "".join(chunks) == ref
            except (UnicodeDecodeError, AssertionError):
                ok = False
            if not ok:
                stream_mism += 1
                t.check(False, f"{name}: stream(skip={skip}) of {text!r}")
    t.check(mism == 0 and dec_mism == 0 and stream_mism == 0,
            f"{name}: {mism} id mismatches, {dec_mism} decode, {stream_mism} stream")
    print(f"{name}: {len(lines)} lines, {mism} id mismatches, {dec_mism} decode mismatches, "
          f"{stream_mism} stream mismatches")


def train_hf(tmp, train_lines):
    """A LLaMA-style tokenizer.json: byte tokens in the model vocab, BPE merges, specials."""
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE),
                                          normalizers.Replace(" ", SPACE)])
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    tk.train_from_iterator(train_lines, trainer=trainer)
    js = json.loads(tk.to_str())
    trained = js["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tok, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    js["model"]["vocab"] = vocab
    n = len(vocab)
    js["added_tokens"] = [
        {"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 1, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": 2, "content": "</s>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": n, "content": "<image>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": n + 1, "content": "<|sep|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False},
    ]
    js["pre_tokenizer"] = None
    js["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    js["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    variants = {}
    legacy = json.loads(json.dumps(js))
    variants["hf-legacy"] = legacy
    strings = json.loads(json.dumps(js))
    strings["model"]["merges"] = [m if isinstance(m, str) else " ".join(m)
                                  for m in strings["model"]["merges"]]
    variants["hf-legacy-string-merges"] = strings
    first = json.loads(json.dumps(js))
    first["normalizer"] = None
    first["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE,
                              "prepend_scheme": "first", "split": False}
    variants["hf-metaspace-first"] = first
    always = json.loads(json.dumps(js))
    always["normalizer"] = None
    always["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE,
                               "prepend_scheme": "always", "split": True}
    always["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True}]}
    variants["hf-metaspace-always-split"] = always
    flags = json.loads(json.dumps(js))
    flags["added_tokens"][3].update(lstrip=True, rstrip=True)
    flags["added_tokens"][4].update(normalized=True)
    variants["hf-legacy-added-flags"] = flags
    unk = json.loads(json.dumps(js))
    unk["model"]["byte_fallback"] = False
    variants["hf-legacy-fuse-unk"] = unk
    paths = {}
    for name, v in variants.items():
        d = os.path.join(tmp, name)
        os.makedirs(d)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(v, f, ensure_ascii=False)
        paths[name] = d
    return paths


def test_hf(t, tmp, train_lines, test_lines):
    for name, path in train_hf(tmp, train_lines).items():
        ref = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        eng = Engine(path)
        t.check(LIB.setok_text_tokenizer_vocab_size(eng.handle) == ref.get_vocab_size(True),
                f"{name}: vocab size")
        t.check(LIB.setok_text_tokenizer_bos_id(eng.handle) == 1, f"{name}: bos id")
        t.check(LIB.setok_text_tokenizer_token_to_id(eng.handle, b"<image>") ==
                ref.token_to_id("<image>"), f"{name}: token_to_id")
        compare(t, name, eng, test_lines,
                lambda s, sp: ref.encode(s, add_special_tokens=sp).ids,
                lambda ids, skip: ref.decode(ids, skip_special_tokens=skip))
        # random id sequences, byte-fallback pieces mixed in: what a sampler may produce,
        # including byte runs that are not valid UTF-8
        rng = random.Random(7)
        vocab_n = ref.get_vocab_size(True)
        # (not <0x00>: the C API's text is NUL-terminated, so a NUL byte would end it)
        byte_ids = [i for i in range(vocab_n)
                    if (ref.id_to_token(i) or "").startswith("<0x") and ref.id_to_token(i) != "<0x00>"]
        nul = ref.token_to_id("<0x00>")
        bad = 0
        for _ in range(300):
            ids = [rng.choice(byte_ids) if rng.random() < 0.6 else rng.randrange(vocab_n)
                   for _ in range(rng.randrange(1, 12))]
            ids = [byte_ids[0] if i == nul else i for i in ids]
            for skip in (True, False):
                want = ref.decode(ids, skip_special_tokens=skip)
                try:
                    got = "".join(eng.stream(ids, skip))
                except (UnicodeDecodeError, AssertionError):
                    got = None
                if got != want or eng.decode(ids, skip) != want:
                    bad += 1
                    if bad <= 3:
                        print(f"{name}: random ids {ids}: stream {got!r}, decode "
                              f"{eng.decode(ids, skip)!r}, tokenizers {want!r}")
        t.check(bad == 0, f"{name}: {bad} of 600 random id sequences decode differently")
        if name == "hf-legacy":
            long_text = " ".join(test_lines)[:100000]
            start = time.perf_counter()
            got = eng.encode(long_text, True)
            took = time.perf_counter() - start
            t.check(got == ref.encode(long_text).ids, f"{name}: ids of a 100k-character text")
            t.check(took < 5.0, f"{name}: 100k characters took {took:.2f} s")
            print(f"{name}: 100k characters -> {len(got)} ids in {took * 1000:.0f} ms")
        eng.close()


def spm_malformed_charsmap(t, path):
    """A normalizer_spec appended with a truncated precompiled_charsmap (protobuf merges it
    over the first) must be refused, naming the file."""
    def field(number, payload):
        n, out = len(payload), bytes([number << 3 | 2])
        while n >= 0x80:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n]) + payload
    for blob in (b"\x10\x00\x00\x00abc\x00", b"\x04\x00\x00\x00\x00\x00\x00\x00xyz",
                 b"\x03\x00"):
        bad = path + ".bad.model"
        with open(path, "rb") as f, open(bad, "wb") as g:
            g.write(f.read() + field(3, field(2, blob)))
        err, h = SetokError(), ctypes.c_void_p()
        st = LIB.setok_text_tokenizer_load(ctypes.byref(h), bad.encode(), ctypes.byref(err))
        msg = err.message.decode()
        t.check(st == 1 and bad in msg and "charsmap" in msg,
                f"malformed charsmap {blob!r}: status {st}, {msg!r}")
        if st == 0:
            LIB.setok_text_tokenizer_free(h)
    # a well-sized charsmap of random units: every lookup stays inside it
    rng = random.Random(5)
    bad = path + ".random.model"
    blob = b"\x00\x10\x00\x00" + bytes(rng.randrange(256) for _ in range(4096)) + b"ab\x00"
    with open(path, "rb") as f, open(bad, "wb") as g:
        g.write(f.read() + field(3, field(2, blob)))
    eng = Engine(bad)
    ids = [eng.encode(s, False) for s in UNICODE_FORMS + corpus(6, 200)]
    t.check(all(isinstance(i, list) for i in ids), "a random charsmap encodes without faults")
    eng.close()


def train_clip(tmp, train_lines):
    """A CLIP tokenizer.json as transformers' CLIPTokenizer builds it (NFC, whitespace runs,
    lowercase; CLIP's Split pattern + ByteLevel; BPE with "</w>"; RobertaProcessing), on a vocab
    and merges trained here."""
    from transformers import CLIPTokenizer
    tk = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tk.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                   use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=1500, end_of_word_suffix="</w>",
                                  special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(train_lines, trainer)
    model = json.loads(tk.to_str())["model"]
    clip = CLIPTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]])
    d = os.path.join(tmp, "clip")
    os.makedirs(d)
    clip.backend_tokenizer.save(os.path.join(d, "tokenizer.json"))
    # the same tokenizer as Stable Diffusion folders ship it: vocab.json + merges.txt only
    files = os.path.join(tmp, "clip-files")
    os.makedirs(files)
    with open(os.path.join(files, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(model["vocab"], f, ensure_ascii=False)
    with open(os.path.join(files, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(" ".join(m) + "\n" for m in model["merges"])
    with open(os.path.join(files, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer"}, f)
    return d, files


def test_clip(t, tmp, train_lines, test_lines):
    try:
        path, files = train_clip(tmp, train_lines)
    except ImportError as e:
        print(f"clip: skipped ({e})")
        return
    # tokenizers itself is the reference (transformers' CLIPTokenizer also rewrites "</w>" to
    # spaces after decoding, which is not part of tokenizer.json)
    ref = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    for name, folder in (("clip", path), ("clip-vocab-merges", files)):
        eng = Engine(folder)
        t.check(LIB.setok_text_tokenizer_bos_id(eng.handle) ==
                ref.token_to_id("<|startoftext|>"), f"{name}: bos id")
        compare(t, name, eng, test_lines,
                lambda s, sp: ref.encode(s, add_special_tokens=sp).ids,
                lambda ids, skip: ref.decode(ids, skip_special_tokens=skip))
        eng.close()


# What SentencePiece's NFKC rules (precompiled charsmaps) rewrite: compatibility forms,
# full-width and half-width forms, ligatures, combining marks, control and format characters,
# odd whitespace and runs of it, case (nmt_nfkc_cf).
UNICODE_FORMS = (
    ["\ufb01le \ufb02ow \ufb00 \u2460\u2461 \u338f \u2122 \u00bd \u00b2 \u2075 \u2167",
     "\uff28\uff45\uff4c\uff4c\uff4f\u3000\uff37\uff4f\uff52\uff4c\uff44\uff01 \uff11\uff12\uff13",
     "\uff8a\uff9d\uff76\uff78 \uff76\uff9e\uff77\uff9e \u30ac\u30ae",
     "e\u0301 \u00e9 A\u030a \u212b \u00c5 n\u0303o\u0308 \u1100\u1161\u11a8 \uac01",
     "tab\there  two   spaces\u00a0nbsp\u2003em\u2002en\u200bzw\u200dzwj\ufeffbom",
     "\x01\x02ctl\x7f\x85nel\x0b\x0cff", "  lead and trail  ", "\u3000\u3000ideographic\u3000",
     "\ufefb \ufe8e\ufe91 \u01c5 \u01c4 \u1e9e \u00df STRASSE \u0130stanbul \u03a3\u0391\u03a3",
     "\U0001d400\U0001d401 \u2102 \u210c \u2460 \u24b6 \u3251 \u32c0 \u337f",
     "\u2026 \u2025 \u301c \uff5e \u2212 \u00b7 \uff61\uff62\uff63 \u2018\u2019\u201c\u201d",
     "Caf\u00e9 CAF\u00c9 \uff23\uff41\uff46\u00e9 \uff53\uff45\uff50 x\uff53\uff45\uff50y",
     "\u0041\u0308\u0304 \u1e9b\u0323 \u0958"])


def unicode_lines(seed, n):
    """Random strings of the characters the charsmaps rewrite, with words between them."""
    rng = random.Random(seed)
    pool = sorted(set("".join(UNICODE_FORMS)))
    lines = list(UNICODE_FORMS)
    for _ in range(n):
        parts = [rng.choice(WORDS) if rng.random() < 0.4 else
                 "".join(rng.choice(pool) for _ in range(rng.randint(1, 5)))
                 for _ in range(rng.randint(1, 6))]
        lines.append(rng.choice([" ", "", "  ", "\u3000"]).join(parts))
    return lines


def test_spm(t, tmp, train_lines, test_lines):
    if spm is None:
        print("sentencepiece is missing: tokenizer.model checks skipped")
        return
    text_path = os.path.join(tmp, "spm-corpus.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        for s in train_lines + unicode_lines(3, 300):
            f.write(s.replace("\n", " ").replace("\r", " ") + "\n")
    nfkc_lines = test_lines + unicode_lines(4, 600)
    for model_type, extra in (("bpe", {"remove_extra_whitespaces": False}),
                              ("unigram", {}), ("bpe", {"user_defined_symbols": ["<|sep|>"]}),
                              ("unigram", {"byte_fallback": False}),
                              ("unigram", {"normalization_rule_name": "nmt_nfkc"}),
                              ("bpe", {"normalization_rule_name": "nfkc",
                                       "user_defined_symbols": ["<|sep|>", "\uff53\uff45\uff50"]}),
                              ("unigram", {"normalization_rule_name": "nmt_nfkc_cf",
                                           "remove_extra_whitespaces": False}),
                              ("bpe", {"normalization_rule_name": "nmt_nfkc",
                                       "add_dummy_prefix": False, "byte_fallback": False})):
        prefix = os.path.join(tmp, f"spm-{model_type}-{len(extra)}-{len(str(extra))}")
        spm.SentencePieceTrainer.train(
            input=text_path, model_prefix=prefix, vocab_size=3000, model_type=model_type,
            character_coverage=0.995, hard_vocab_limit=False, minloglevel=2,
            **({"byte_fallback": True, "normalization_rule_name": "identity"} | extra))
        ref = spm.SentencePieceProcessor(model_file=prefix + ".model")
        eng = Engine(prefix + ".model")
        name = f"spm-{model_type}" + "".join(f"-{v if k.startswith('norm') else k}"
                                             for k, v in extra.items())
        bos = ref.bos_id()
        lines = nfkc_lines if "normalization_rule_name" in extra else test_lines
        compare(t, name, eng, lines,
                lambda s, sp: ([bos] if sp else []) + ref.encode(s),
                lambda ids, skip: ref.decode(ids))
        long_text = " ".join(lines)[:100000]
        start = time.perf_counter()
        got = eng.encode(long_text, False)
        took = time.perf_counter() - start
        t.check(got == ref.encode(long_text), f"{name}: ids of a 100k-character text")
        t.check(took < 5.0, f"{name}: 100k characters took {took:.2f} s")
        print(f"{name}: 100k characters -> {len(got)} ids in {took * 1000:.0f} ms")
        eng.close()
        if extra.get("normalization_rule_name") == "nmt_nfkc":
            spm_malformed_charsmap(t, prefix + ".model")


def test_malformed(t, tmp):
    cases = {
        "truncated.json": '{"model": {"type": "BPE", "vocab": {"a": 0',
        "vocab-list.json": '{"model": {"type": "BPE", "vocab": ["a"], "merges": []}}',
        "bad-merge.json": '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, '
                          '"merges": ["a b"]}}',
        "dup-id.json": '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}',
        "neg-id.json": '{"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}}',
        "bad-added.json": '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '
                          '"added_tokens": [{"id": "x", "content": "<s>"}]}',
    }
    models_bad = {"random.model": bytes(random.Random(1).randrange(256) for _ in range(300)),
                  "empty.model": b"",
                  "truncated.model": b"\x0a\x10\x0a\x05hello\x15"}
    for name, text in list(cases.items()) + list(models_bad.items()):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        err = SetokError()
        h = ctypes.c_void_p()
        st = LIB.setok_text_tokenizer_load(ctypes.byref(h), path.encode(), ctypes.byref(err))
        msg = err.message.decode()
        t.check(st == 1 and name in msg, f"malformed {name}: status {st}, message {msg!r}")
        if st == 0:
            LIB.setok_text_tokenizer_free(h)


def main():
    t = Tally()
    train_lines = corpus(1, 3000, specials=False)
    test_lines = corpus(2, 2200)
    with tempfile.TemporaryDirectory() as tmp:
        test_hf(t, tmp, train_lines, test_lines)
        test_clip(t, tmp, train_lines, test_lines)
        test_spm(t, tmp, train_lines, test_lines)
        test_malformed(t, tmp)
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
