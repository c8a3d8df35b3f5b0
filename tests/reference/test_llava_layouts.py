#!/usr/bin/env python3
"""test_llava_layouts.py — published LLaVA-1.5 layouts read as transformers reads them.

A tiny random LlavaForConditionalGeneration (CLIP tower 56 px / patch 14, LLaMA decoder) with a
LLaMA-style tokenizer.json (merges that never cross a word, as SentencePiece's) and a language
model with more vocabulary rows than the tokenizer has tokens (llava-1.5: 32064 rows, 32002
tokens). Written three ways:
  transformers  model.save_pretrained + LlavaProcessor.save_pretrained by the installed
                transformers: processor_config.json with the image processor inside,
                chat_template.jinja (llava-hf's template), tokenizer_config.json with
                model_max_length 1e30;
  llava-hf      the same in llava-hf's layout: preprocessor_config.json, chat_template.json;
  vicuna-v1     a LLaVA v1 template (system prompt, "</s>" after answers) in
                tokenizer_config.json's chat_template.
The image processor normalizes with mean = std = 0.5, not CLIP's defaults, so that reading it
matters. Checks against transformers' own processor (apply_chat_template + the PIL image
processor) and generate():
  - `setok ask --json`: prompt ids and greedy answer ids on square and non-square images, in
    each layout, and with --system / --no-system;
  - a follow-up question through libsetok's chat (ctypes): the ids after the first answer are
    the template's (" USER: ..." for llava-hf, "</s>USER: ..." for LLaVA v1);
  - the first greedy step picks a vocabulary row without a token: it decodes to nothing;
  - transformers' model_max_length 1e30 reads as no limit; other huge integers are refused;
  - other spellings of llava-hf's template (a trailing newline, its earlier version, several
    lines with whitespace control) give transformers' prompt ids; templates of other forms
    (newlines between turns, ChatML) take the LLaVA v1 form with a note;
  - notes and bad input: a folder without processor settings (note, tower-size defaults), a
    broken image_processor or a malformed chat_template.json (exit 2 naming the file).
Usage: test_llava_layouts.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when numpy, torch, tokenizers or transformers is missing.
"""
import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from checks import Results
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)
try:
    from transformers import CLIPImageProcessorPil
except ImportError:  # before transformers 5 the PIL backend was the only one
    from transformers import CLIPImageProcessor as CLIPImageProcessorPil

from setok_ctypes import ModelOptions, SetokError, SetokImage, load_library  # noqa: E402
import test_llava  # noqa: E402  (the tiny LLaVA: CLIP 56 px / patch 14, a 2-layer LLaMA)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
R = Results()

IMAGE_SIZE, PATCH = test_llava.IMAGE_SIZE, test_llava.PATCH
NEW_TOKENS, HOLES = 24, 6
SPACE = "\u2581"
VICUNA = ("A chat between a curious human and an artificial intelligence assistant. The "
          "assistant gives helpful, detailed, and polite answers to the human's questions.")
QUESTIONS = ["What colour is the square on the left?", "How many shapes are there?"]
FOLLOW_UP = "And the one on the right?"
CORPUS = [VICUNA, "USER: What colour is the square? ASSISTANT: The square on the left is red.",
          "There are three circles and a blue triangle in the picture.",
          "How many shapes are there? Two shapes, one on the left and one on the right.",
          "the cat sat on the mat next to the green square", "You answer in one word."]

# llava-hf/llava-1.5-7b-hf's chat template, as published
HF_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() "
    "+ ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text "
    "next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

# LLaVA's conv_vicuna_v1 as a template: written over several lines, so that it relies on the
# trim_blocks / lstrip_blocks settings transformers renders with
V1_TEMPLATE = """{% if messages[0]['role'] == 'system' %}
    {% set system = messages[0]['content'][0]['text'] %}
    {% set loop_messages = messages[1:] %}
{% else %}
    {% set system = "%s" %}
    {% set loop_messages = messages %}
{% endif %}
{{- system + ' ' -}}
{% for message in loop_messages %}
    {{- message['role'].upper() + ': ' -}}
    {% for content in message['content'] | selectattr('type', 'equalto', 'image') %}
        {{- '<image>\\n' -}}
    {% endfor %}
    {% for content in message['content'] | selectattr('type', 'equalto', 'text') %}
        {% if message['role'] == 'assistant' %}
            {{- content['text'] + eos_token -}}
        {% else %}
            {{- content['text'] + ' ' -}}
        {% endif %}
    {% endfor %}
{% endfor %}
{% if add_generation_prompt %}
    {{- 'ASSISTANT:' -}}
{% endif %}""".replace("%s", VICUNA)

# other spellings of llava-hf's form: a trailing newline (Jinja drops it), llava-hf's earlier
# template (no assistant branch), and one over several lines with whitespace control and
# double quotes
HF_VARIANTS = [
    HF_TEMPLATE + "\n",
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() "
    "+ ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text "
    "next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'ASSISTANT:' }}{% endif %}",
    """{%- for message in messages -%}
    {%- if message["role"] != "system" -%}
        {{- message["role"].upper() + ": " -}}
    {%- endif -%}
    {%- for content in message["content"] | selectattr("type", "equalto", "image") -%}
        {{- "<image>\\n" -}}
    {%- endfor -%}
    {%- for content in message["content"] | selectattr("type", "equalto", "text") -%}
        {{- content["text"] + " " -}}
    {%- endfor -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- "ASSISTANT:" -}}
{%- endif -%}
"""]
# the same turns with newlines between them: not llava-hf's form
NEWLINE_TEMPLATE = HF_VARIANTS[1].replace("content['text'] + ' '", "content['text'] + '\\n'")

CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
                   "{% for c in message['content'] %}{{ c['text'] if c['type'] == 'text' else "
                   "'<image>' }}{% endfor %}{{'<|im_end|>\n'}}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

PROCESSOR = dict(size={"shortest_edge": IMAGE_SIZE},
                 crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                 image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


# ---------------------------------------------------------------------------
# the model and its folders

def build_tokenizer():
    """LLaMA's layout (Prepend + Replace normalizer, no pre-tokenizer, byte fallback); merges
    trained within words, so that a word boundary is a token boundary, as in SentencePiece's."""
    normalizer = normalizers.Sequence([normalizers.Prepend(SPACE),
                                       normalizers.Replace(" ", SPACE)])
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizer
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=160, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    trainer_tok.train_from_iterator(CORPUS + QUESTIONS + [FOLLOW_UP], trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for i in range(256):
        vocab[f"<0x{i:02X}>"] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizer
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t in ("<unk>", "<s>", "</s>", "<image>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>",
                                   extra_special_tokens={"image_token": "<image>"})


def make_processor(tokenizer, template, **image):
    return LlavaProcessor(image_processor=CLIPImageProcessorPil(**(image or PROCESSOR)),
                          tokenizer=tokenizer, chat_template=template, patch_size=PATCH,
                          vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)


def image_file(folder, name, w, h, seed):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    img[h // 7:h // 2, w // 12:w // 2] = rng.integers(0, 256, 3)
    img[h // 2:h - 4, w // 2:w - 6] = rng.integers(0, 256, 3)
    img = np.clip(img.astype(np.int32) + rng.integers(-12, 13, img.shape), 0, 255)
    path = os.path.join(folder, name)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def conversation(question, system=None, history=()):
    """Processor messages: the image in the first user turn; history [(question, answer)]."""
    msgs = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    for q, a in history:
        msgs.append({"role": "user", "content": [{"type": "text", "text": q}]})
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": a}]})
    msgs.append({"role": "user", "content": [{"type": "text", "text": question}]})
    msgs[1 if system else 0]["content"].insert(0, {"type": "image"})
    return msgs


def reference(proc, model, path, msgs, new_tokens=NEW_TOKENS):
    """transformers: the prompt ids and the greedy answer ids."""
    text = proc.apply_chat_template(msgs, add_generation_prompt=True)
    inputs = proc(images=Image.open(path).convert("RGB"), text=text, return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    if not new_tokens:
        return ids, []
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=2, pad_token_id=0)
    return ids, out[0, len(ids):].tolist()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def copy_folder(src, dst, skip=()):
    os.makedirs(dst)
    for name in os.listdir(src):
        if name not in skip and os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    return dst


def build_folders(root, seed):
    tokenizer = build_tokenizer()
    n_tokens = len(tokenizer)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    model = test_llava.make_model(n_tokens + HOLES, image_token, seed)
    proc = make_processor(tokenizer, HF_TEMPLATE)
    images = [image_file(root, f"image-{w}x{h}.png", w, h, seed + i)
              for i, (w, h) in enumerate(((56, 56), (80, 56), (45, 70)))]

    # the vocabulary row after the tokenizer's last token wins the first greedy step of the
    # first question about the first image, just: it must decode to nothing
    text = proc.apply_chat_template(conversation(QUESTIONS[0]), add_generation_prompt=True)
    inputs = proc(images=Image.open(images[0]).convert("RGB"), text=text, return_tensors="pt")
    seen = []
    hook = model.lm_head.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        h = seen[-1][0, -1]
        model.lm_head.weight[n_tokens] = h * ((float(logits.max()) + 0.5) / float(h @ h))
    hook.remove()

    folders = {}
    t5 = folders["transformers"] = os.path.join(root, "transformers")
    model.save_pretrained(t5)
    proc.save_pretrained(t5)
    pre = os.path.join(t5, "preprocessor_config.json")
    if os.path.exists(pre):  # an older transformers: nest it as transformers 5 does
        pc_path = os.path.join(t5, "processor_config.json")
        pc = json.load(open(pc_path)) if os.path.exists(pc_path) else {}
        pc["image_processor"] = json.load(open(pre))
        write_json(pc_path, pc)
        os.remove(pre)
    layout = sorted(os.listdir(t5))
    R.check("transformers writes processor_config.json with the image processor inside",
            "image_processor" in json.load(open(os.path.join(t5, "processor_config.json")))
            and "preprocessor_config.json" not in layout, str(layout))

    hf = folders["llava-hf"] = copy_folder(t5, os.path.join(root, "llava-hf"),
                                           skip=("processor_config.json", "chat_template.jinja"))
    pc = json.load(open(os.path.join(t5, "processor_config.json")))
    write_json(os.path.join(hf, "preprocessor_config.json"),
               dict(pc.pop("image_processor"), processor_class="LlavaProcessor"))
    write_json(os.path.join(hf, "processor_config.json"), pc)
    write_json(os.path.join(hf, "chat_template.json"), {"chat_template": HF_TEMPLATE})

    v1 = folders["vicuna-v1"] = copy_folder(hf, os.path.join(root, "vicuna-v1"),
                                            skip=("chat_template.json",))
    tc_path = os.path.join(v1, "tokenizer_config.json")
    tc = json.load(open(tc_path))
    tc["chat_template"] = V1_TEMPLATE
    write_json(tc_path, tc)
    procs = {"transformers": proc, "llava-hf": proc,
             "vicuna-v1": make_processor(tokenizer, V1_TEMPLATE)}
    return tokenizer, model, procs, folders, images


# ---------------------------------------------------------------------------
# the engine

FIT_CROP = 1  # SETOK_IMAGE_FIT_CROP


def ask(cli, image, question, folder, *extra, tokens=NEW_TOKENS):
    # --crop: the reference processors are CLIPImageProcessor's resize and centre crop; without
    # it setok pads a non-square image to a square first, as LLaVA-1.5 was trained
    p = subprocess.run([cli, "ask", image, question, "--model", folder, "--json", "--max-tokens",
                        str(tokens), "--temperature", "0", "--device", "cpu", "--crop", *extra],
                       capture_output=True, text=True)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


class Lib:
    """libsetok's chat through ctypes, for conversations of several turns."""

    class Sampling(ctypes.Structure):
        _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int),
                    ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                    ("repetition_penalty", ctypes.c_float), ("seed", ctypes.c_uint64),
                    ("max_new_tokens", ctypes.c_int), ("stop", ctypes.c_char_p * 8)]

    class Cluster(ctypes.Structure):
        _fields_ = [("mode", ctypes.c_int), ("k", ctypes.c_int), ("threshold", ctypes.c_float),
                    ("min_clusters", ctypes.c_int), ("max_clusters", ctypes.c_int),
                    ("fixed_k", ctypes.c_int)]

    class Options(ctypes.Structure):
        pass

    class Result(ctypes.Structure):
        _fields_ = [("text", ctypes.c_char_p), ("ids", ctypes.POINTER(ctypes.c_int32)),
                    ("n_ids", ctypes.c_int), ("prompt_ids", ctypes.POINTER(ctypes.c_int32)),
                    ("n_prompt", ctypes.c_int), ("n_image_tokens", ctypes.c_int),
                    ("stop_reason", ctypes.c_char_p), ("timings", ctypes.c_double * 7)]

    Options._fields_ = [("sampling", Sampling), ("image_mode", ctypes.c_int),
                        ("fit", ctypes.c_int), ("cluster_override", ctypes.c_bool), ("cluster", Cluster),
                        ("cancel", ctypes.c_void_p), ("on_text", ctypes.c_void_p),
                        ("user", ctypes.c_void_p), ("system_prompt", ctypes.c_char_p)]

    def __init__(self):
        vp, err = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(SetokError)
        self.lib = load_library({
            "setok_model_open": [vp, ctypes.c_char_p, ctypes.POINTER(ModelOptions), err],
            "setok_model_free": [ctypes.c_void_p, ("restype", None)],
            "setok_chat_new": [vp, ctypes.c_void_p, ctypes.c_int, err],
            "setok_chat_free": [ctypes.c_void_p, ("restype", None)],
            "setok_chat_options_default": [ctypes.POINTER(Lib.Options), ("restype", None)],
            "setok_chat_start": [ctypes.c_void_p, ctypes.POINTER(SetokImage),
                                 ctypes.POINTER(Lib.Options), err],
            "setok_chat_ask": [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Lib.Options),
                               ctypes.POINTER(Lib.Result), err],
            "setok_chat_result_free": [ctypes.POINTER(Lib.Result), ("restype", None)],
            "setok_image_load": [ctypes.POINTER(SetokImage), ctypes.c_char_p, ctypes.c_size_t,
                                 err],
            "setok_image_free": [ctypes.POINTER(SetokImage), ("restype", None)],
            "setok_config_parse": [vp, ctypes.c_char_p, ctypes.c_char_p, err],
            "setok_config_free": [ctypes.c_void_p, ("restype", None)],
            "setok_config_limit_or": [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64,
                                      ctypes.POINTER(ctypes.c_int64), err],
            "setok_config_int": [ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int64), err],
        })

    def conversation(self, folder, image_path, questions, new_tokens=NEW_TOKENS):
        """[(prompt_ids, answer_ids, stop_reason)] for the questions asked in turn."""
        lib, err = self.lib, SetokError()
        model, chat, img = ctypes.c_void_p(), ctypes.c_void_p(), SetokImage()
        mo = ModelOptions(device=b"cpu")
        turns = []
        try:
            if lib.setok_model_open(ctypes.byref(model), folder.encode(), ctypes.byref(mo),
                                    ctypes.byref(err)) or \
               lib.setok_chat_new(ctypes.byref(chat), model, 0, ctypes.byref(err)) or \
               lib.setok_image_load(ctypes.byref(img), image_path.encode(), 0, ctypes.byref(err)):
                raise RuntimeError(err.message.decode())
            o = Lib.Options()
            lib.setok_chat_options_default(ctypes.byref(o))
            o.sampling.max_new_tokens = new_tokens
            o.fit = FIT_CROP  # as CLIPImageProcessor (see ask)
            if lib.setok_chat_start(chat, ctypes.byref(img), ctypes.byref(o), ctypes.byref(err)):
                raise RuntimeError(err.message.decode())
            for q in questions:
                r = Lib.Result()
                if lib.setok_chat_ask(chat, q.encode(), ctypes.byref(o), ctypes.byref(r),
                                      ctypes.byref(err)):
                    raise RuntimeError(err.message.decode())
                turns.append((r.prompt_ids[:r.n_prompt], r.ids[:r.n_ids],
                              r.stop_reason.decode()))
                lib.setok_chat_result_free(ctypes.byref(r))
        finally:
            lib.setok_image_free(ctypes.byref(img))
            lib.setok_chat_free(chat)
            lib.setok_model_free(model)
        return turns

    def read(self, text, key, limit=True):
        """(status, value, message) of setok_config_limit_or (default 5) or setok_config_int."""
        cfg, err, v = ctypes.c_void_p(), SetokError(), ctypes.c_int64(-7)
        assert self.lib.setok_config_parse(ctypes.byref(cfg), text.encode(),
                                           b"tokenizer_config.json", ctypes.byref(err)) == 0
        if limit:
            st = self.lib.setok_config_limit_or(cfg, key.encode(), 5, ctypes.byref(v),
                                                ctypes.byref(err))
        else:
            st = self.lib.setok_config_int(cfg, key.encode(), ctypes.byref(v), ctypes.byref(err))
        self.lib.setok_config_free(cfg)
        return st, v.value, err.message.decode()


# ---------------------------------------------------------------------------
# checks

def check_answers(cli, tokenizer, model, procs, folders, images):
    """Each layout: prompt and greedy ids identical to transformers, every image, the first
    question; the transformers layout also the second question."""
    for name, folder in folders.items():
        cases = [(img, QUESTIONS[0]) for img in images] if name == "transformers" else \
            [(images[1], QUESTIONS[0])]
        if name == "transformers":
            cases.append((images[2], QUESTIONS[1]))
        for img, q in cases:
            tag = f"{name} {os.path.basename(img)} '{q[:20]}...'"
            want_prompt, want = reference(procs[name], model, img, conversation(q))
            p, got = ask(cli, img, q, folder)
            if not got:
                R.check(f"{tag}: ask", False, f"exit {p.returncode}: {p.stderr.strip()}")
                continue
            R.check(f"{tag}: prompt ids", got["prompt_ids"] == want_prompt,
                    f"\n  engine       {got['prompt_ids']}\n  transformers {want_prompt}")
            R.check(f"{tag}: greedy ids", got["token_ids"] == want,
                    f"\n  engine       {got['token_ids']}\n  transformers {want}")
            R.check(f"{tag}: no notes", "note:" not in p.stderr, p.stderr.strip())
            if img == images[0] and q == QUESTIONS[0]:
                hole = len(tokenizer)
                R.check(f"{tag}: the first step picks row {hole}, which has no token",
                        want[:1] == [hole] and got["token_ids"][:1] == [hole], str(want[:3]))
                text = tokenizer.decode(want, skip_special_tokens=True)
                R.check(f"{tag}: it decodes to nothing, as in transformers",
                        "\ufffd" in text or got["answer"] == text,
                        f"{got['answer']!r} vs {text!r}")


def check_system(cli, model, procs, folders, images):
    """--system / --no-system on the first turn's prompt, and each layout's default."""
    img, q = images[0], QUESTIONS[1]
    for name, system, flag in (("transformers", "You answer in one word.", True),
                               ("vicuna-v1", "You answer in one word.", True),
                               ("vicuna-v1", None, False)):
        extra = ["--system", system] if flag else ["--no-system"]
        p, got = ask(cli, img, q, folders[name], *extra, tokens=1)
        if flag:
            want, _ = reference(procs[name], model, img, conversation(q, system), 0)
        else:  # the template cannot drop its system prompt: the v1 form without one
            n = (IMAGE_SIZE // PATCH) ** 2
            want = procs[name].tokenizer(f"USER: {'<image>' * n}\n{q} ASSISTANT:")["input_ids"]
        R.check(f"{name} {' '.join(extra)[:30]}: prompt ids",
                got is not None and got["prompt_ids"] == want,
                p.stderr.strip() if not got else f"\n  engine {got['prompt_ids']}\n  want   {want}")
    # the default system prompt of each layout: none for llava-hf, the template's for v1
    for name, want in (("transformers", ""), ("vicuna-v1", VICUNA)):
        p = subprocess.run([cli, "info", folders[name], "--json"], capture_output=True,
                           text=True)
        pf = json.loads(p.stdout)["model"].get("prompt", {}) if p.returncode == 0 else {}
        R.check(f"{name}: setok info prompt format", pf.get("system") == want and
                pf.get("format") == ("llava-hf" if not want else "llava-v1"), str(pf))


def check_follow_up(lib, tokenizer, model, procs, folders, images):
    """The conversation after the first answer: ids as transformers' template writes them."""
    for name in ("transformers", "vicuna-v1"):
        folder, proc, img = folders[name], procs[name], images[1]
        try:
            (p1, a1, why1), (p2, a2, _) = lib.conversation(folder, img, [QUESTIONS[0], FOLLOW_UP])
        except RuntimeError as e:
            R.check(f"{name}: follow-up", False, str(e))
            continue
        want_p1, want_a1 = reference(proc, model, img, conversation(QUESTIONS[0]))
        R.check(f"{name}: first turn of the conversation", p1 == want_p1 and a1 == want_a1,
                f"{a1} vs {want_a1}")
        answer = tokenizer.decode([i for i in a1 if i != 2], skip_special_tokens=True)
        msgs = conversation(FOLLOW_UP, history=[(QUESTIONS[0], answer)])
        want_all, _ = reference(proc, model, img, msgs, 0)
        # the second prompt starts with the first answer's last id when it was cut, not ended
        tail = p2[1:] if why1 != "eos" else p2
        R.check(f"{name}: the follow-up's ids end the conversation as the template does",
                want_all[:len(p1)] == p1 and want_all[-len(tail):] == tail,
                f"\n  engine       ...{tail}\n  transformers ...{want_all[-len(tail):]}")
        sep = [2] if name == "vicuna-v1" else []
        R.check(f"{name}: separator after the answer", tail[:len(sep)] == sep and
                tokenizer.decode(tail[len(sep):]).startswith("USER:"), tokenizer.decode(tail[:4]))


def check_template_variants(cli, model, procs, folders, images, root):
    """Other spellings of llava-hf's template are recognised; other turns are not."""
    img, q = images[0], QUESTIONS[1]
    tokenizer = procs["transformers"].tokenizer
    for i, template in enumerate(HF_VARIANTS + [NEWLINE_TEMPLATE]):
        folder = copy_folder(folders["transformers"], os.path.join(root, f"variant-{i}"))
        with open(os.path.join(folder, "chat_template.jinja"), "w") as f:
            f.write(template)
        p, got = ask(cli, img, q, folder, tokens=1)
        if template is NEWLINE_TEMPLATE:
            n = (IMAGE_SIZE // PATCH) ** 2
            want = tokenizer(f"{VICUNA} USER: {'<image>' * n}\n{q} ASSISTANT:")["input_ids"]
            R.check("a template with other separators: the LLaVA v1 form and a note",
                    got is not None and got["prompt_ids"] == want and "writes '\\n'" in p.stderr,
                    p.stderr.strip())
            continue
        want, _ = reference(make_processor(tokenizer, template), model, img, conversation(q), 0)
        R.check(f"llava-hf template variant {i}: prompt ids as transformers renders them",
                got is not None and got["prompt_ids"] == want and "note:" not in p.stderr,
                p.stderr.strip() if not got else f"\n  engine {got['prompt_ids']}\n  want   {want}")


def check_limits(lib):
    st, v, msg = lib.read('{"model_max_length": 1000000000000000019884624838656}',
                          "model_max_length")
    R.check("model_max_length 1e30 reads as no limit", st == 0 and v == 2 ** 63 - 1, msg)
    st, v, msg = lib.read('{"model_max_length": 2048}', "model_max_length")
    R.check("model_max_length 2048", st == 0 and v == 2048, msg)
    st, v, msg = lib.read('{}', "model_max_length")
    R.check("no model_max_length: the default", st == 0 and v == 5, msg)
    st, v, msg = lib.read('{"model_max_length": -3}', "model_max_length")
    R.check("a negative limit is refused", st != 0 and "model_max_length" in msg, msg)
    st, v, msg = lib.read('{"hidden_size": 1e30}', "hidden_size", limit=False)
    R.check("any other huge integer is refused, file and key named",
            st != 0 and "tokenizer_config.json" in msg and "hidden_size" in msg, msg)


def check_notes_and_bad_input(cli, model, procs, folders, images, root):
    img, q = images[2], QUESTIONS[0]
    n = (IMAGE_SIZE // PATCH) ** 2
    # no processor settings at all: the class defaults at the tower's 56 px, said in a note
    bare = copy_folder(folders["transformers"], os.path.join(root, "no-processor"),
                       skip=("processor_config.json",))
    p, got = ask(cli, img, q, bare)
    ref_proc = make_processor(procs["transformers"].tokenizer, HF_TEMPLATE,
                              size={"shortest_edge": IMAGE_SIZE},
                              crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    want_prompt, want = reference(ref_proc, model, img, conversation(q))
    R.check("no processor settings: a note names what is missing and the default",
            "no processor_config.json" in p.stderr and f"tower's {IMAGE_SIZE} px" in p.stderr,
            p.stderr.strip())
    R.check("no processor settings: CLIP defaults at the tower's size, as transformers'",
            got is not None and got["token_ids"] == want and got["image_tokens"] == n,
            p.stderr.strip() if not got else f"{got['token_ids']} vs {want}")

    # a template the engine does not recognise: the LLaVA v1 form, said in a note
    other = copy_folder(folders["transformers"], os.path.join(root, "chatml"))
    with open(os.path.join(other, "chat_template.jinja"), "w") as f:
        f.write(CHATML_TEMPLATE)
    p, got = ask(cli, img, q, other, tokens=1)
    want = procs["transformers"].tokenizer(
        f"{VICUNA} USER: {'<image>' * n}\n{q} ASSISTANT:")["input_ids"]
    R.check("an unrecognised template: a note naming the file",
            "chat_template.jinja" in p.stderr and "not one this engine recognises" in p.stderr,
            p.stderr.strip())
    R.check("an unrecognised template: the LLaVA v1 prompt",
            got is not None and got["prompt_ids"] == want, p.stderr.strip())

    # broken files: exit 2 naming the file
    cases = [("processor_config.json", {"image_processor": "CLIPImageProcessor"},
              ["processor_config.json", "image_processor"]),
             ("processor_config.json", {"image_processor": dict(PROCESSOR, size={
                 "shortest_edge": "big"})}, ["processor_config.json (image_processor)", "size"]),
             ("chat_template.json", "{not json", ["chat_template.json"]),
             ("chat_template.json", {"chat_template": 7}, ["chat_template.json", "chat_template"])]
    for i, (name, content, words) in enumerate(cases):
        bad = copy_folder(folders["llava-hf"], os.path.join(root, f"bad-{i}"))
        with open(os.path.join(bad, name), "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        p, _ = ask(cli, img, q, bad, tokens=1)
        R.check(f"broken {name} ({str(content)[:40]}): exit 2 naming it",
                p.returncode == 2 and all(w in p.stderr for w in words),
                f"exit {p.returncode}: {p.stderr.strip()}")
    # a broken chat template leaves the folder's tokens working
    p = subprocess.run([cli, "tokens", img, "--model", bad, "--json", "-", "--neighbours", "4",
                        "--device", "cpu"], capture_output=True, text=True)
    R.check("a broken chat template keeps `setok tokens` working", p.returncode == 0,
            p.stderr.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(2), "little")
    print(f"seed {seed}")
    lib = Lib()
    with tempfile.TemporaryDirectory() as root:
        tokenizer, model, procs, folders, images = build_folders(root, seed)
        check_answers(args.cli, tokenizer, model, procs, folders, images)
        check_system(args.cli, model, procs, folders, images)
        check_follow_up(lib, tokenizer, model, procs, folders, images)
        check_template_variants(args.cli, model, procs, folders, images, root)
        check_limits(lib)
        check_notes_and_bad_input(args.cli, model, procs, folders, images, root)
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
