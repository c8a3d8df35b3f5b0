"""bundle.py — the SETOKIM bundle contract (v1), Python side: what the trainer writes and the C
engine reads (DESIGN §5).

A bundle is a folder:
    setokim.json    manifest: format, version, component paths, image size, feature layer,
                    special tokens, system prompt; optionally the training domain and the
                    model card in brief (domain_manifest, card_manifest, set_card)
    vision/         transformers CLIPVisionModel (+ preprocessor_config.json, CLIPImageProcessor),
                    optionally with a convolutional stem for its patch embedding (stem.py)
    setok/          SetokMerger (tools/setokim/setok.py) with the clustering defaults
    projector_in/   SetokimProjector: LLaVA multi_modal_projector names linear_1 / linear_2
    llm/            transformers LlamaForCausalLM + tokenizer.json (BPE, Metaspace, byte fallback)

SetokimModel assembles the four components and the tokenizer; it is the numerics reference the
engine is tested against: vision features (hidden_states[vision_feature_layer], CLS dropped),
SeTok clustering and merger tokens, the projector, the Vicuna v1 prompt with the image wrapped in
[Img] ... [/Img] and the single <image> id expanded to the projected tokens, greedy decoding.

    python -m tools.setokim.bundle --random OUT --seed S [--dtype f16|f32] [--generation]
        [--segmentation] [--stem]
writes a tiny random bundle (random weights, tokenizer trained on world-like text) for tests;
with --generation it also has the output side (generation.py), with --segmentation the mask
side (segmentation.py).
"""
import argparse
import json
import os
import random

import torch
import torch.nn as nn

from .setok import SetokMerger, SetokMergerConfig, cluster
from .stem import load_vision, save_vision

FORMAT = "setokim"
VERSION = 1
MANIFEST = "setokim.json"
# v1 components; a later version adds the others. A missing entry: the feature is unavailable.
REQUIRED_COMPONENTS = ("vision", "setok", "llm", "projector_in")
OPTIONAL_COMPONENTS = ("projector_out", "mapper", "unet", "vae", "scheduler", "mask_decoder")

IMAGE_TOKEN = "<image>"
IMAGE_START = "[Img]"
IMAGE_END = "[/Img]"
BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SPACE = "\u2581"  # Metaspace replacement
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DTYPES = {"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}


class BundleError(ValueError):
    """A bundle that does not follow the contract; the message names the file."""


# ---- prompt ---------------------------------------------------------------------------------

def format_prompt(question, system_prompt="", image=True, first=True):
    """The text of one user turn up to and including " ASSISTANT:" (Vicuna v1, as chat.c).

    First turn: system prompt and a space (when there is one), then "USER: ", the image as
    "[Img]<image>[/Img]\\n" when image is set, the question, " ASSISTANT:". Encode a first turn
    with BOS; a follow-up turn is encoded without BOS after an EOS closing the previous answer.
    """
    text = (system_prompt + " ") if (first and system_prompt) else ""
    text += "USER: "
    if image:
        text += IMAGE_START + IMAGE_TOKEN + IMAGE_END + "\n"
    return text + question + " ASSISTANT:"


# ---- manifest -------------------------------------------------------------------------------

def default_manifest(image_size, vision_feature_layer=-1, system_prompt=""):
    return {
        "format": FORMAT,
        "version": VERSION,
        "components": {name: name for name in REQUIRED_COMPONENTS},
        "image_size": int(image_size),
        "vision_feature_layer": int(vision_feature_layer),
        "special_tokens": {"image": IMAGE_TOKEN, "image_start": IMAGE_START,
                           "image_end": IMAGE_END},
        "system_prompt": system_prompt,
    }


# What a model trained on tools/setokim/world.py knows, for apps to warn about other images.
WORLD_DOMAIN = {
    "kind": "synthetic-shapes",
    "description": "Scenes of flat coloured shapes (circle, square, triangle, diamond, star, "
                   "hexagon) in ten colours and three sizes on muted backgrounds, as "
                   "`setok world` renders them.",
    "suggest": "For photographs, load a LLaVA-1.5 folder (llava-hf/llava-1.5-7b-hf).",
}

# One question of each kind the world asks (world-text.c), worded as in training.
WORLD_QUESTIONS = [
    {"kind": "caption", "example": "Describe the scene."},
    {"kind": "count", "example": "how many objects are there?"},
    {"kind": "colour", "example": "what colour is the circle?"},
    {"kind": "shape", "example": "what shape is the red object?"},
    {"kind": "size", "example": "what size is the square?"},
    {"kind": "exist", "example": "is there a blue star?"},
    {"kind": "relation", "example": "is the circle left or right of the square?"},
]

METRIC_UNITS = ("fraction", "ms", "")
MAX_CARD_ITEMS = 32


def domain_manifest(kind, description=None, suggest=None):
    """The manifest's "domain": what the model was trained on and what to use instead."""
    d = {"kind": kind}
    if description:
        d["description"] = description
    if suggest:
        d["suggest"] = suggest
    return d


def card_manifest(summary=None, metrics=(), questions=()):
    """The manifest's "card": a summary paragraph, headline metrics as (name, label, value,
    unit) with unit "fraction" (shown as a percentage), "ms" or "", and the question kinds
    trained on as {"kind", "example"}."""
    card = {}
    if summary:
        card["summary"] = summary
    card["metrics"] = [{"name": n, "label": l, "value": float(v), **({"unit": u} if u else {})}
                       for n, l, v, u in metrics]
    card["questions"] = [dict(q) for q in questions]
    return card


def check_domain_and_card(m, file):
    """BundleError unless the optional "domain" and "card" keys follow the contract."""
    def text(obj, key, where, required):
        v = obj.get(key)
        if v is None and not required:
            return
        if not isinstance(v, str) or not v:
            raise BundleError(f"{file}: {where}.{key} must be a non-empty string")

    if m.get("domain") is not None:
        d = m["domain"]
        if not isinstance(d, dict):
            raise BundleError(f"{file}: \"domain\" must be an object")
        text(d, "kind", "domain", True)
        text(d, "description", "domain", False)
        text(d, "suggest", "domain", False)
    if m.get("card") is None:
        return
    card = m["card"]
    if not isinstance(card, dict):
        raise BundleError(f"{file}: \"card\" must be an object")
    text(card, "summary", "card", False)
    for key, fields in (("metrics", ("name", "label")), ("questions", ("kind", "example"))):
        items = card.get(key) or []
        if not isinstance(items, list) or len(items) > MAX_CARD_ITEMS:
            raise BundleError(f"{file}: card.{key} must be a list of at most {MAX_CARD_ITEMS}")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BundleError(f"{file}: card.{key}[{i}] must be an object")
            for f in fields:
                text(item, f, f"card.{key}[{i}]", True)
            if key == "metrics":
                v = item.get("value")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                    raise BundleError(f"{file}: card.metrics[{i}].value must be a number")
                if item.get("unit", "") not in METRIC_UNITS:
                    raise BundleError(f"{file}: card.metrics[{i}].unit must be \"fraction\" "
                                      f"or \"ms\"")


def set_card(path, domain=None, card=None):
    """Adds (or replaces) "domain" and "card" in the manifest of the bundle folder `path`."""
    m = read_manifest(path)
    if domain is not None:
        m["domain"] = domain
    if card is not None:
        m["card"] = card
    check_domain_and_card(m, os.path.join(path, MANIFEST))
    write_manifest(path, m)


def write_manifest(path, manifest):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def read_manifest(path):
    """setokim.json of the bundle folder `path`, checked; raises BundleError naming the file."""
    file = os.path.join(path, MANIFEST)
    try:
        with open(file, encoding="utf-8") as f:
            m = json.load(f)
    except OSError as e:
        raise BundleError(f"{file}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{file}: not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"{file}: \"format\" must be \"{FORMAT}\"")
    if not isinstance(m.get("version"), int) or not 1 <= m["version"] <= VERSION:
        raise BundleError(f"{file}: version {m.get('version')!r} is not supported "
                          f"(1 to {VERSION})")
    comps = m.get("components")
    if not isinstance(comps, dict):
        raise BundleError(f"{file}: \"components\" must be an object")
    for name, rel in comps.items():
        if not isinstance(rel, str) or not rel:
            raise BundleError(f"{file}: components.{name} must be a non-empty string")
        if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            raise BundleError(f"{file}: components.{name} {rel!r} must stay inside the bundle")
    for name in REQUIRED_COMPONENTS:
        if name not in comps:
            raise BundleError(f"{file}: components.{name} is missing")
    size = m.get("image_size")
    if not isinstance(size, int) or size <= 0:
        raise BundleError(f"{file}: image_size must be a positive integer")
    if not isinstance(m.get("vision_feature_layer", -1), int):
        raise BundleError(f"{file}: vision_feature_layer must be an integer")
    specials = {"image": IMAGE_TOKEN, "image_start": IMAGE_START, "image_end": IMAGE_END}
    specials.update(m.get("special_tokens") or {})
    m["special_tokens"] = specials
    m.setdefault("vision_feature_layer", -1)
    m.setdefault("system_prompt", "")
    if not isinstance(m["system_prompt"], str):
        raise BundleError(f"{file}: system_prompt must be a string")
    check_domain_and_card(m, file)
    return m


def component_path(path, manifest, name):
    """The folder of component `name`; BundleError when the bundle does not have it."""
    rel = manifest["components"].get(name)
    if rel is None:
        raise BundleError(f"{os.path.join(path, MANIFEST)}: this bundle has no {name!r} "
                          "component, so the feature that needs it is unavailable")
    return os.path.join(path, rel)


# ---- component folders ----------------------------------------------------------------------

def write_component(path, config, tensors, dtype=None):
    """A component folder: config.json and model.safetensors (the tensors in `dtype`, or their
    own when None)."""
    from safetensors.torch import save_file
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    state = {k: (v.detach() if dtype is None else v.detach().to(dtype)).contiguous().cpu()
             .clone() for k, v in tensors.items()}
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def read_component(path, config_class):
    """(config_class.from_json_file(path/config.json), the tensors of path/model.safetensors);
    BundleError naming the file when either is unreadable."""
    from safetensors.torch import load_file
    file = os.path.join(path, "config.json")
    try:
        cfg = config_class.from_json_file(file)
    except (OSError, ValueError) as e:
        raise BundleError(f"{file}: {e}") from None
    weights = os.path.join(path, "model.safetensors")
    try:
        return cfg, load_file(weights)
    except (OSError, ValueError) as e:  # safetensors raises its own subclasses of these
        raise BundleError(f"{weights}: {e}") from None


# ---- projector ------------------------------------------------------------------------------

class SetokimProjector(nn.Module):
    """Input projector, LLaVA multi_modal_projector layout: y = linear_2(act(linear_1(x)))
    (num_layers 2) or y = linear_1(x) (num_layers 1)."""

    def __init__(self, in_features, out_features, num_layers=2, projector_hidden_act="gelu"):
        super().__init__()
        if num_layers not in (1, 2):
            raise ValueError(f"num_layers must be 1 or 2, got {num_layers}")
        if projector_hidden_act not in ("gelu", "gelu_pytorch_tanh", "silu", "relu"):
            raise ValueError(f"projector_hidden_act {projector_hidden_act!r} is not one of "
                             "gelu, gelu_pytorch_tanh, silu, relu")
        self.config = {"architectures": ["SetokimProjector"], "in_features": int(in_features),
                       "out_features": int(out_features),
                       "projector_hidden_act": projector_hidden_act,
                       "num_layers": int(num_layers)}
        self.linear_1 = nn.Linear(in_features, out_features)
        self.act = {"gelu": nn.GELU(), "gelu_pytorch_tanh": nn.GELU(approximate="tanh"),
                    "silu": nn.SiLU(), "relu": nn.ReLU()}[projector_hidden_act]
        self.linear_2 = nn.Linear(out_features, out_features) if num_layers == 2 else None

    def forward(self, x):  # x [..., in_features] -> [..., out_features]
        x = self.linear_1(x)
        if self.linear_2 is not None:
            x = self.linear_2(self.act(x))
        return x

    def save_pretrained(self, path):
        write_component(path, self.config, self.state_dict())

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32):
        from safetensors.torch import load_file
        file = os.path.join(path, "config.json")
        try:
            with open(file) as f:
                cfg = json.load(f)
            model = cls(cfg["in_features"], cfg["out_features"], cfg.get("num_layers", 2),
                        cfg.get("projector_hidden_act", "gelu"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{file}: {e}") from None
        model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
        return model.to(dtype)


# ---- tokenizer ------------------------------------------------------------------------------

def build_tokenizer(lines, vocab_size=1024):
    """A LLaMA-style BPE tokenizer trained on `lines`: ids 0..3 <unk> <s> </s> <pad>, the 256
    byte tokens <0x00>.. (byte fallback), the learned pieces; Metaspace pre-tokenization
    (prepend "always", split on spaces, so an answer after " ASSISTANT:" never merges with the
    prompt); BOS added by the post-processor; <image> [Img] [/Img] added special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = [UNK, BOS, EOS, PAD]
    tk = Tokenizer(models.BPE(unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always",
                                                split=True)
    trainer = trainers.BpeTrainer(vocab_size=max(vocab_size - 256, 64), special_tokens=specials,
                                  show_progress=False)
    tk.train_from_iterator(lines, trainer=trainer)
    js = json.loads(tk.to_str())
    vocab = {tok: i for i, tok in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tok, _ in sorted(js["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    js["model"]["vocab"] = vocab

    def added(i, content):
        return {"id": i, "content": content, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}

    n = len(vocab)
    js["added_tokens"] = ([added(i, t) for i, t in enumerate(specials)] +
                          [added(n + i, t) for i, t in
                           enumerate((IMAGE_TOKEN, IMAGE_START, IMAGE_END))])
    js["normalizer"] = None
    js["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": BOS, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {BOS: {"id": BOS, "ids": [1], "tokens": [BOS]}}}
    js["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True}]}
    return Tokenizer.from_str(json.dumps(js))


def save_tokenizer(tokenizer, path, model_max_length=512):
    """tokenizer.json + tokenizer_config.json (transformers' PreTrainedTokenizerFast reads it)."""
    os.makedirs(path, exist_ok=True)
    tokenizer.save(os.path.join(path, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS,
           "unk_token": UNK, "pad_token": PAD, "add_bos_token": True, "add_eos_token": False,
           "model_max_length": model_max_length, "clean_up_tokenization_spaces": False,
           "additional_special_tokens": [IMAGE_TOKEN, IMAGE_START, IMAGE_END]}
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def load_tokenizer(path):
    from tokenizers import Tokenizer
    file = os.path.join(path, "tokenizer.json")
    try:
        return Tokenizer.from_file(file)
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise BundleError(f"{file}: {e}") from None


# ---- the assembled model --------------------------------------------------------------------

class SetokimModel(nn.Module):
    """CLIPVisionModel + SeTok clustering and SetokMerger + SetokimProjector + LlamaForCausalLM
    + tokenizer, as one module. Numerics reference for the engine's SETOKIM pipelines."""

    def __init__(self, vision, merger, projector, llm, tokenizer, manifest):
        super().__init__()
        self.vision = vision
        self.merger = merger
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.image_size = manifest["image_size"]
        self.feature_layer = manifest["vision_feature_layer"]
        self.system_prompt = manifest.get("system_prompt", "")
        specials = manifest["special_tokens"]
        self.image_token_id = self._token_id(specials["image"])
        self.bos_id = self._token_id(BOS)
        self.eos_id = self._token_id(EOS)

    def _token_id(self, token):
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise BundleError(f"tokenizer.json: the token {token!r} is missing")
        return i

    # -- loading and saving

    @classmethod
    def from_bundle(cls, path, dtype=torch.float32, device="cpu"):
        """Load a bundle folder; weights stored as f16 are converted to `dtype`."""
        from transformers import LlamaForCausalLM
        manifest = read_manifest(path)
        vision_dir = component_path(path, manifest, "vision")
        llm_dir = component_path(path, manifest, "llm")
        for d in (vision_dir, llm_dir):
            if not os.path.isfile(os.path.join(d, "config.json")):
                raise BundleError(f"{os.path.join(d, 'config.json')}: missing")
        vision = load_vision(vision_dir, dtype)
        merger = SetokMerger.from_pretrained(component_path(path, manifest, "setok"), dtype)
        projector = SetokimProjector.from_pretrained(
            component_path(path, manifest, "projector_in"), dtype)
        llm = LlamaForCausalLM.from_pretrained(llm_dir, dtype=dtype)
        tokenizer = load_tokenizer(llm_dir)
        model = cls(vision, merger, projector, llm, tokenizer, manifest)
        if vision.config.image_size != manifest["image_size"]:
            raise BundleError(f"{os.path.join(path, MANIFEST)}: image_size "
                              f"{manifest['image_size']} differs from vision/config.json's "
                              f"{vision.config.image_size}")
        return model.to(device).eval()

    def save_bundle(self, path, dtype=torch.float16):
        """Write the bundle folder with every weight in `dtype` (f16 for shipping)."""
        try:  # the PIL processor: same JSON, no torchvision needed
            from transformers import CLIPImageProcessorPil as CLIPImageProcessor
        except ImportError:
            from transformers import CLIPImageProcessor
        m = dict(self.manifest)
        write_manifest(path, m)
        size = self.image_size
        vision_dir = component_path(path, m, "vision")
        save_vision(self.vision, vision_dir, dtype)
        CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                           do_resize=True, do_center_crop=True, do_normalize=True,
                           image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)
                           ).save_pretrained(vision_dir)
        merger = SetokMerger(self.merger.config)
        merger.load_state_dict(self.merger.state_dict())
        merger.to(dtype).save_pretrained(component_path(path, m, "setok"))
        proj = SetokimProjector(**{k: v for k, v in self.projector.config.items()
                                   if k != "architectures"})
        proj.load_state_dict(self.projector.state_dict())
        proj.to(dtype).save_pretrained(component_path(path, m, "projector_in"))
        llm_dir = component_path(path, m, "llm")
        self._save_hf(self.llm, llm_dir, dtype)
        save_tokenizer(self.tokenizer, llm_dir, self.llm.config.max_position_embeddings)

    @staticmethod
    def _save_hf(model, path, dtype):
        """save_pretrained of a dtype-converted copy (the module in memory keeps its dtype)."""
        import copy
        clone = copy.deepcopy(model).to("cpu", dtype)
        clone.save_pretrained(path, safe_serialization=True)

    # -- vision side

    @property
    def device(self):
        return self.llm.get_input_embeddings().weight.device

    @property
    def dtype(self):
        return self.llm.get_input_embeddings().weight.dtype

    def preprocess(self, image):
        """An image (PIL image, uint8 array [H, W, 3]) -> pixel_values [1, 3, S, S] with the
        bundle's CLIPImageProcessor settings (bicubic resize of the short side, centre crop,
        CLIP normalisation). Square S x S uint8 input needs no resampling."""
        import numpy as np
        arr = np.asarray(image)
        s = self.image_size
        if arr.ndim == 3 and arr.shape[:2] == (s, s) and arr.dtype == np.uint8:
            x = torch.from_numpy(arr[..., :3].copy()).float().div(255.0)
        else:
            from PIL import Image
            img = image if isinstance(image, Image.Image) else Image.fromarray(arr)
            img = img.convert("RGB")
            w, h = img.size
            # transformers' get_resize_output_image_size: the long side is truncated
            nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
            img = img.resize((nw, nh), Image.BICUBIC)
            left, top = int((nw - s) / 2), int((nh - s) / 2)
            img = img.crop((left, top, left + s, top + s))
            x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float().div(255.0)
        mean = torch.tensor(CLIP_MEAN).view(1, 1, 3)
        std = torch.tensor(CLIP_STD).view(1, 1, 3)
        x = ((x - mean) / std).permute(2, 0, 1).unsqueeze(0)
        return x.to(self.device, self.dtype)

    def vision_features(self, pixel_values):
        """pixel_values [B, 3, S, S] -> features [B, N, d] (selected layer, CLS dropped)."""
        out = self.vision(pixel_values=pixel_values, output_hidden_states=True)
        return out.hidden_states[self.feature_layer][:, 1:, :]

    @property
    def grid(self):
        n = self.image_size // self.vision.config.patch_size
        return n, n

    def cluster(self, features):
        """features [N, d] of one image -> the clustering dict of setok.cluster with the
        merger config's defaults (labels [N], centres, ...)."""
        c = self.merger.config
        gh, gw = self.grid
        return cluster(features, gh, gw, mode=c.cluster_mode, k=c.cluster_k,
                       threshold=c.cluster_threshold, min_clusters=c.min_clusters,
                       max_clusters=c.max_clusters, fixed_k=c.fixed_k,
                       add_position_embedding=c.position_embedding)

    @torch.no_grad()
    def vision_tokens(self, pixel_values, return_clusters=False):
        """pixel_values [B, 3, S, S] -> a list of B tensors [N_i, output_size], the merger tokens
        of each image (N_i = its cluster count); with return_clusters, also the cluster dicts."""
        feats = self.vision_features(pixel_values)
        gh, gw = self.grid
        tokens, clusters = [], []
        for f in feats:
            cl = self.cluster(f)
            n = int(cl["centres"].numel())
            tokens.append(self.merger(f, cl["labels"], gh, gw, n))
            clusters.append(cl)
        return (tokens, clusters) if return_clusters else tokens

    # -- language side

    def encode(self, text, bos):
        return self.tokenizer.encode(text, add_special_tokens=bos).ids

    def prompt_ids(self, question, image=True, first=True):
        """Token ids of one user turn (BOS on the first turn, EOS before a follow-up)."""
        text = format_prompt(question, self.system_prompt, image=image, first=first)
        ids = self.encode(text, bos=first)
        return ids if first else [self.eos_id] + ids

    def answer_ids(self, question, answer, image=True):
        """The ids the model must produce after the first-turn prompt: the continuation of
        encode(prompt + " " + answer) after the prompt's ids, then EOS."""
        text = format_prompt(question, self.system_prompt, image=image, first=True)
        prompt = self.encode(text, bos=True)
        full = self.encode(text + " " + answer, bos=True)
        if full[:len(prompt)] != prompt:
            raise ValueError(f"the prompt's ids are not a prefix of the prompt + answer ids "
                             f"for {answer!r}")
        return full[len(prompt):] + [self.eos_id]

    def embed_ids(self, ids, tokens=None):
        """ids (a list, at most one <image>) + vision tokens [N, output_size] -> input
        embeddings [L - 1 + N, hidden] with the <image> row replaced by the projected tokens."""
        ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)
        emb = self.llm.get_input_embeddings()(ids_t)
        where = (ids_t == self.image_token_id).nonzero().flatten().tolist()
        if not where:
            return emb
        if len(where) > 1 or tokens is None:
            raise ValueError("a turn must hold exactly one <image> and come with vision tokens")
        i = where[0]
        proj = self.projector(tokens.to(self.device, emb.dtype))
        return torch.cat([emb[:i], proj, emb[i + 1:]], dim=0)

    def prompt_embeds(self, question, tokens, first=True):
        """The first (or a follow-up) turn's input embeddings [L, hidden]; tokens None: a
        turn without an image."""
        ids = self.prompt_ids(question, image=tokens is not None, first=first)
        return self.embed_ids(ids, tokens)

    @torch.no_grad()
    def generate_ids(self, embeds, max_new_tokens=32):
        """Greedy decoding from input embeddings [L, hidden] -> new ids (stops after EOS)."""
        out = self.llm(inputs_embeds=embeds.unsqueeze(0), use_cache=True)
        past, ids = out.past_key_values, []
        for _ in range(max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            ids.append(nxt)
            if nxt == self.eos_id:
                break
            step = self.llm.get_input_embeddings()(
                torch.tensor([[nxt]], device=self.device))
            out = self.llm(inputs_embeds=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
        return ids

    @torch.no_grad()
    def generate(self, image, question, max_new_tokens=32):
        """Greedy answer (text) to a question about an image (PIL / uint8 array / pixel_values
        [1, 3, S, S] tensor; None for a text-only turn)."""
        tokens = None
        if image is not None:
            pv = image if torch.is_tensor(image) else self.preprocess(image)
            tokens = self.vision_tokens(pv.to(self.device, self.dtype))[0]
        ids = self.generate_ids(self.prompt_embeds(question, tokens), max_new_tokens)
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()


# ---- tiny random bundle for engine tests ----------------------------------------------------

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
SIZES = ("small", "medium", "large")


def world_like_lines(rng, n):
    """Text in the style of the synthetic world's annotations (captions, questions, answers,
    referring expressions, prompts), for a tokenizer when the generator is not at hand."""
    lines = []
    for i in range(n):
        c, s, z = rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(SIZES)
        c2, s2 = rng.choice(COLOURS), rng.choice(SHAPES)
        kind = i % 6
        if kind == 0:
            lines.append(f"A {z} {c} {s} and a {c2} {s2} on a dark background.")
        elif kind == 1:
            lines.append(format_prompt(f"What colour is the {s}?") + f" {c}")
        elif kind == 2:
            lines.append(format_prompt(f"How many {s}s are there?") + f" {rng.randint(0, 6)}")
        elif kind == 3:
            lines.append(format_prompt(f"Is the {c} {s} left of the {c2} {s2}?") +
                         f" {rng.choice(('yes', 'no'))}")
        elif kind == 4:
            lines.append(f"the {z} {c} {s} to the right of the {c2} {s2}")
        else:
            lines.append(f"Draw a {c} {s} above a {z} {c2} {s2}. Make the {s} {c2}.")
    return lines


def random_model(seed=0, image_size=32, patch_size=8, stem=False):
    """A tiny randomly initialised SetokimModel (fixed torch seed); with stem, the vision tower
    has a convolutional stem (stem.py) of three stride-2 layers (patch_size must be 8)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(world_like_lines(random.Random(seed), 400), vocab_size=400)
    vcfg = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, hidden_size=32,
                            intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5)
    if stem:
        from .stem import new_stem_vision
        vision = new_stem_vision(vcfg, (8, 12, 16))
    else:
        vision = CLIPVisionModel(vcfg)
    mcfg = SetokMergerConfig(hidden_size=32, num_heads=2, intra_layers=1, inter_layers=1,
                             intermediate_size=64, output_size=48, cluster_mode="dpc",
                             cluster_k=3, cluster_threshold=0.3, min_clusters=1,
                             max_clusters=8)
    merger = SetokMerger(mcfg)
    lcfg = LlamaConfig(vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
                       hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1,
                       eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    llm = LlamaForCausalLM(lcfg)
    projector = SetokimProjector(mcfg.output_size, lcfg.hidden_size)
    return SetokimModel(vision, merger, projector, llm, tokenizer,
                        default_manifest(image_size)).eval()


def write_random_bundle(path, seed=0, image_size=32, dtype=torch.float16, generation=False,
                        segmentation=False, stem=False):
    """A tiny random bundle in `path`, with a random output side (generation.py) and mask side
    (segmentation.py) when asked, a convolutional-stem vision tower with stem; returns the
    SetokimModel."""
    model = random_model(seed, image_size, stem=stem)
    gen_parts = seg_parts = None
    if generation:
        from .generation import random_generation
        gen_parts = random_generation(model, seed)
    if segmentation:
        from .segmentation import random_segmentation
        seg_parts = random_segmentation(model, seed)
    model.save_bundle(path, dtype)
    if gen_parts:
        from .generation import save_generation
        save_generation(path, *gen_parts, dtype=dtype)
    if seg_parts:
        from .segmentation import save_segmentation
        save_segmentation(path, *seg_parts, dtype=dtype)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.setokim.bundle",
                                 description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--random", metavar="OUT", required=True,
                    help="write a tiny random bundle to OUT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--generation", action="store_true",
                    help="add random projector_out, mapper, unet, vae and scheduler components")
    ap.add_argument("--segmentation", action="store_true",
                    help="add a random mask_decoder and projector_seg")
    ap.add_argument("--stem", action="store_true",
                    help="a vision tower with a convolutional stem (stem.py)")
    args = ap.parse_args(argv)
    write_random_bundle(args.random, args.seed, args.image_size, DTYPES[args.dtype],
                        args.generation, args.segmentation, args.stem)
    print(f"wrote a random SETOKIM bundle to {args.random}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
