"""data.py — training data from the synthetic world (tools/setokim/world.py, the C generator in
libsetok through ctypes).

Scenes are a pure function of their seed. Training uses seeds from TRAIN_SEED_BASE upwards,
held-out evaluation seeds from EVAL_SEED_BASE (1,000,000) upwards; the two ranges never meet.
A SceneSet holds rendered scenes as arrays (images [N, H, W, 3] uint8, labels [N, H, W] uint8:
0 background, k object id k) plus their annotation records, and caches itself in a work folder
so a resumed run does not render again.
"""
import json
import os
import random

import numpy as np

TRAIN_SEED_BASE = 0
EVAL_SEED_BASE = 1_000_000
CAPTION_QUESTION = "Describe the scene."
BACKGROUND = "background"  # attribute class of a background patch or token


def world_module():
    """The world generator's Python wrapper (needs libsetok: $SETOK_LIB or a build-*/)."""
    from . import world
    return world


def train_seeds(count, start=0):
    """Seeds of training scenes start .. start + count - 1, all below EVAL_SEED_BASE."""
    if start < 0 or TRAIN_SEED_BASE + start + count > EVAL_SEED_BASE:
        raise ValueError(f"training seeds {start}..{start + count - 1} would reach the held-out "
                         f"range (>= {EVAL_SEED_BASE})")
    return list(range(TRAIN_SEED_BASE + start, TRAIN_SEED_BASE + start + count))


def stream_seeds(stage_offset, step, batch, first):
    """Training seeds of scenes a stage renders on the fly (a fresh batch every step): the
    `batch` seeds of `step`, counted from `first` (above the cached training scenes) plus
    stage_offset; a pure function of its arguments, so a resumed run sees the same scenes."""
    return train_seeds(batch, first + stage_offset + step * batch)


def eval_seeds(count, start=0):
    """Seeds of held-out scenes: EVAL_SEED_BASE + start ...; never used for training."""
    return list(range(EVAL_SEED_BASE + start, EVAL_SEED_BASE + start + count))


# ---- scenes ---------------------------------------------------------------------------------

class SceneSet:
    """Rendered scenes: images [N, H, W, 3] uint8, labels [N, H, W] uint8, annotations."""

    def __init__(self, seeds, images, labels, annotations):
        self.seeds = list(seeds)
        self.images = images
        self.labels = labels
        self.annotations = annotations

    def __len__(self):
        return len(self.seeds)

    @classmethod
    def generate(cls, seeds, size=128, min_objects=1, max_objects=6, progress=None):
        world = world_module()
        seeds = list(seeds)
        images = np.zeros((len(seeds), size, size, 3), np.uint8)
        labels = np.zeros((len(seeds), size, size), np.uint8)
        annotations = []
        for i, seed in enumerate(seeds):
            s = world.scene(seed, width=size, height=size, min_objects=min_objects,
                            max_objects=max_objects)
            images[i] = s.image
            labels[i] = s.labels
            annotations.append(s.annotation)
            if progress is not None:
                progress(1)
        return cls(seeds, images, labels, annotations)

    def save(self, path):
        """path.npz (arrays) + path.json (seeds and annotations), written atomically."""
        np.savez(path + ".tmp.npz", images=self.images, labels=self.labels)
        with open(path + ".tmp.json", "w") as f:
            json.dump({"seeds": self.seeds, "annotations": self.annotations}, f)
        os.replace(path + ".tmp.npz", path + ".npz")
        os.replace(path + ".tmp.json", path + ".json")

    @classmethod
    def load(cls, path):
        with open(path + ".json") as f:
            meta = json.load(f)
        arrays = np.load(path + ".npz")
        return cls(meta["seeds"], arrays["images"], arrays["labels"], meta["annotations"])

    @classmethod
    def cached(cls, path, seeds, size=128, progress=None, **options):
        """Load path.{npz,json} when it holds exactly `seeds`, else render and save."""
        if os.path.exists(path + ".json") and os.path.exists(path + ".npz"):
            s = cls.load(path)
            if s.seeds == list(seeds) and s.images.shape[1] == size:
                return s
        s = cls.generate(seeds, size, progress=progress, **options)
        s.save(path)
        return s


# ---- text -----------------------------------------------------------------------------------

def _strings(node):
    """Every string leaf of an annotation record."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def text_lines(annotations):
    """Tokenizer training text: every string of the annotations (captions, questions, answers,
    referring expressions, prompts, instructions) and the chat turns as the model sees them,
    in every phrasing conversation() uses."""
    from .bundle import format_prompt
    for ann in annotations:
        yield from _strings(ann)
        for q in ann.get("qa", []):
            for text in phrasings(q["type"], q["question"]):
                yield format_prompt(text) + " " + q["answer"]
                yield format_prompt(text[0].upper() + text[1:]) + " " + q["answer"]
        for text in DESCRIBE_QUESTIONS:
            yield format_prompt(text) + " " + ann.get("caption", "")
    for kind, questions in CHAT_QUESTIONS.items():
        for text in questions:
            yield format_prompt(text) + " " + CHAT_ANSWERS[kind]
            yield format_prompt(text.lower()) + " " + CHAT_ANSWERS[kind]


# ---- conversations --------------------------------------------------------------------------

# "Describe the scene." and its other phrasings: the answer is the scene's caption
DESCRIBE_QUESTIONS = (CAPTION_QUESTION, "Describe the image.", "Describe the picture.",
                      "What do you see?", "What is in the image?", "What is in this picture?",
                      "Can you describe this image?", "Tell me about the image.",
                      "What does the image show?")

# turns that are not about the scene's contents, and their one answer each
CHAT_ANSWERS = {
    "greeting": "Hello! Ask me about the shapes in the image.",
    "capability": "I can describe the image and answer questions about the colour, shape, "
                  "size, number and position of its shapes. I can also find a shape you name, "
                  "draw a scene you describe and edit a shape you point at.",
    "unknown": "I can't tell.",
}
CHAT_QUESTIONS = {
    "greeting": ("Hello", "Hello!", "Hi", "Hi!", "Hi there", "Hey", "Good morning",
                 "Good evening", "Hello, how are you?"),
    "capability": ("What can you do?", "Help", "What can I ask you?", "Who are you?",
                   "What are you?", "How can you help me?", "What do you know?"),
    # outside the world: it knows coloured shapes, nothing else
    "unknown": ("What is the capital of France?", "How old is the man?", "What breed is the dog?",
                "What time is it?", "What is the weather like?", "Who painted this?",
                "What is the name of the cat?", "What is written on the sign?",
                "How fast is the car going?", "What is the person holding?",
                "Where was this photo taken?", "What year is it?", "What colour is the car?",
                "How many people are there?", "Is it raining?", "What is 17 times 23?",
                "What language is the text in?", "Who is the president?",
                "What is the man's name?", "What brand is the phone?"),
}

# other phrasings of the world's questions, by type: (regular expression on the world's
# question, replacements); the world's own phrasing stays the most frequent
_PHRASINGS = {
    "colour": (r"^what colour is (.+)\?$",
               ("what color is {0}?", "which colour is {0}?", "what is the colour of {0}?",
                "tell me the colour of {0}.", "what colour does {0} have?")),
    "shape": (r"^what shape is (.+)\?$",
              ("which shape is {0}?", "what is the shape of {0}?", "what kind of shape is {0}?",
               "tell me the shape of {0}.")),
    "size": (r"^what size is (.+)\?$",
             ("how big is {0}?", "what is the size of {0}?", "how large is {0}?",
              "tell me the size of {0}.")),
    "count": (r"^how many (.+) are there\?$",
              ("how many {0} do you see?", "how many {0} are in the image?",
               "count the {0}.", "what is the number of {0}?", "how many {0} can you see?")),
    "exist": (r"^is there (an? .+)\?$",
              ("do you see {0}?", "can you see {0}?", "is there {0} in the image?",
               "does the image contain {0}?", "is {0} in the picture?")),
    "relation": (r"^is (.+) to the (left|right) of (.+)\?$",
                 ("is {0} {1} of {2}?", "is {0} on the {1} of {2}?",
                  "is {0} on the {1} side of {2}?")),
}
_RELATION_VERTICAL = (r"^is (.+) (above|below) (.+)\?$",
                      ("is {0} {1} {2} in the image?", "is {0} located {1} {2}?",
                       "is {0} placed {1} {2}?"))


def phrasings(kind, question):
    """The world's question and its other phrasings (the same answer)."""
    import re
    out = [question]
    rules = [_PHRASINGS[kind]] if kind in _PHRASINGS else []
    if kind == "relation":
        rules.append(_RELATION_VERTICAL)
    for pattern, templates in rules:
        m = re.match(pattern, question)
        if m and " or " not in question:
            out += [t.format(*m.groups()) for t in templates]
    return out


def qa_turns(annotation, with_caption=True):
    """(type, question, answer) of a scene: its QA, and the caption as a "caption" turn."""
    turns = [(q["type"], q["question"], q["answer"]) for q in annotation.get("qa", [])]
    if with_caption and annotation.get("caption"):
        turns.append(("caption", CAPTION_QUESTION, annotation["caption"]))
    return turns


def conversation(annotation, rng: random.Random, max_turns=6, caption_prob=0.3,
                 rephrase_prob=0.0, chat_prob=0.0):
    """A shuffled multi-turn conversation about one scene: up to max_turns QA turns (each, with
    probability rephrase_prob, in another phrasing, and capitalised half the time), the caption
    turn with probability caption_prob (asked in one of DESCRIBE_QUESTIONS when rephrasing),
    and with probability chat_prob one greeting, capability or out-of-world question. The
    first turn carries the image."""
    turns = qa_turns(annotation, with_caption=False)
    rng.shuffle(turns)
    turns = turns[:max_turns]
    if rephrase_prob > 0:
        out = []
        for kind, q, a in turns:
            if rng.random() < rephrase_prob:
                q = rng.choice(phrasings(kind, q)[1:] or [q])
                if rng.random() < 0.5:
                    q = q[0].upper() + q[1:]
            out.append((kind, q, a))
        turns = out
    if annotation.get("caption") and rng.random() < caption_prob:
        q = rng.choice(DESCRIBE_QUESTIONS) if rephrase_prob > 0 else CAPTION_QUESTION
        turns.insert(rng.randint(0, len(turns)), ("caption", q, annotation["caption"]))
    if rng.random() < chat_prob:
        kind = rng.choice(sorted(CHAT_QUESTIONS))
        q = rng.choice(CHAT_QUESTIONS[kind])
        if rng.random() < 0.3:
            q = q.lower()
        turns.insert(rng.randint(0, len(turns)), (kind, q, CHAT_ANSWERS[kind]))
    return turns


# ---- per-patch and per-object targets -------------------------------------------------------

def attribute_vocab(annotations):
    """Sorted attribute values seen in the annotations; index 0 of each list is BACKGROUND."""
    vocab = {"colour": set(), "shape": set(), "size": set()}
    for ann in annotations:
        for o in ann["objects"]:
            for key in vocab:
                vocab[key].add(o[key])
    return {key: [BACKGROUND] + sorted(values) for key, values in vocab.items()}


def patch_labels(labels, patch, object_weight=2.0):
    """labels [B, H, W] -> [B, (H/patch) * (W/patch)] int64: the label of each patch, where an
    object pixel counts object_weight times a background pixel (so a patch a third covered by
    an object belongs to it; thin parts of small shapes keep a patch)."""
    b, h, w = labels.shape
    gh, gw = h // patch, w // patch
    blocks = labels[:, :gh * patch, :gw * patch].reshape(b, gh, patch, gw, patch)
    blocks = blocks.transpose(0, 1, 3, 2, 4).reshape(b, gh * gw, patch * patch).astype(np.int64)
    # one bincount over (image, patch, label) triples
    idx = blocks + 256 * np.arange(b * gh * gw).reshape(b, gh * gw, 1)
    counts = np.bincount(idx.ravel(), minlength=256 * b * gh * gw).astype(np.float32)
    counts = counts.reshape(b, gh * gw, 256)
    counts[:, :, 1:] *= object_weight
    return counts.argmax(axis=2)


def object_patch_weights(labels, patch, max_id=None):
    """labels [B, H, W] -> [B, K, N] float32: for object id k + 1, the share of its visible
    pixels that falls in each patch (rows sum to 1; 0 for an id with no visible pixel). The
    object's mean patch feature is weights @ features: small shapes that never win a patch by
    majority still get one."""
    b, h, w = labels.shape
    gh, gw = h // patch, w // patch
    k = int(labels.max()) if max_id is None else max_id
    blocks = labels[:, :gh * patch, :gw * patch].reshape(b, gh, patch, gw, patch)
    blocks = blocks.transpose(0, 1, 3, 2, 4).reshape(b, gh * gw, patch * patch).astype(np.int64)
    idx = blocks + 256 * np.arange(b * gh * gw).reshape(b, gh * gw, 1)
    counts = np.bincount(idx.ravel(), minlength=256 * b * gh * gw).astype(np.float32)
    counts = counts.reshape(b, gh * gw, 256)[:, :, 1:k + 1].transpose(0, 2, 1)
    total = counts.sum(2, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def object_attributes(annotation, vocab, size):
    """Per label value 0..255: attribute class ids (colour, shape, size; 0 background) and the
    centre (x, y) / size in [0, 1] (background: the image centre) -> dict of arrays [256]."""
    out = {key: np.zeros(256, np.int64) for key in ("colour", "shape", "size")}
    centre = np.full((256, 2), 0.5, np.float32)
    for o in annotation["objects"]:
        k = o["id"]
        for key in ("colour", "shape", "size"):
            values = vocab[key]
            out[key][k] = values.index(o[key]) if o[key] in values else 0
        centre[k] = (o["center"][0] / size, o["center"][1] / size)
    out["centre"] = centre
    return out
