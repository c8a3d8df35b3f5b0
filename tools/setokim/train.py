"""train.py — trains a SETOKIM bundle's understanding path on the synthetic world.

Stages, run in order, each resumable (a checkpoint every few steps, a done.json when finished)
in a work folder:
    data       render the training scenes (seeds 0..) and the held-out scenes (seeds 1,000,000..)
    tokenizer  BPE tokenizer.json on the world's text (tokenizers)
    stage0     pre-train the ViT (CLIPVisionModel) with dense per-patch supervision: colour,
               shape, size and object-vs-background heads and a patch-pair "same object" affinity
               term shaped for density-peak clustering; then calibrate the clustering defaults
               (cluster_k, cluster_threshold) on training scenes and report the cluster/object
               alignment on held-out scenes
    stage1     train the SeTok merger (understanding part): each token predicts the attributes
               and position of the object its cluster covers
    stage2     SETOKIM stages II and III merged (the tiny LLM is trained from scratch, so there
               is no separate instruction-tuning or LoRA step): projector + LlamaForCausalLM on
               captions and QA conversations, cross-entropy on answer tokens only, vision tokens
               from the frozen vision side
    export     save_bundle in f16 to --out, reload it and compare with the trained model
    eval       held-out QA accuracy (SetokimModel.generate, greedy), per question type;
               cluster alignment and tokens per image; writes eval.json
    card       writes MODEL_CARD.md into the bundle from the results and timings (always runs)

    python -m tools.setokim.train all --work /tmp/setokim-work --out data/models/setokim-tiny
    python -m tools.setokim.train stage2 eval --work ... --device cuda
    torchrun --nproc-per-node 4 -m tools.setokim.train all --work ... --device cuda

Under torchrun (WORLD_SIZE > 1) the training steps run with DistributedDataParallel, each rank
taking its share of every global batch; rendering, caching, export and eval run on rank 0.
"""
import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# On a shared machine, spinning OpenMP workers starve each other (a step several times slower);
# passive waiting costs nothing when the cores are free. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from . import data as D  # noqa: E402
from . import train_generation as G  # noqa: E402
from . import train_segmentation as S  # noqa: E402
from .bundle import (CLIP_MEAN, CLIP_STD, DTYPES, SetokimModel, SetokimProjector,  # noqa: E402
                     build_tokenizer, default_manifest, format_prompt, load_tokenizer,
                     save_tokenizer)
from .setok import SetokMerger, SetokMergerConfig, cluster, position_embedding_2d  # noqa: E402
from .stem import new_stem_vision, save_vision  # noqa: E402
from .stem import load_vision as load_vision_folder  # noqa: E402

STAGES = ("data", "tokenizer", "stage0", "stage1", "stage2", "vae", "decoder", "masks",
          "stage3", "export", "eval", "card")


# ---- configuration --------------------------------------------------------------------------

@dataclass
class TrainConfig:
    seed: int = 0
    image_size: int = 128
    min_objects: int = 1
    max_objects: int = 6
    train_scenes: int = 3000
    eval_scenes: int = 200
    vocab_size: int = 1024
    # stage 0: the ViT
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    vision_intermediate: int = 512
    # the convolutional stem (stem.py): output channels of its stride-2 convolutions, "" for
    # the plain patch-sized convolution of CLIP
    vision_stem: str = "32,64,128"
    stem_kernel: int = 3
    stage0_steps: int = 3000
    stage0_batch: int = 16
    stage0_lr: float = 1e-3
    # 1: a fresh batch of scenes every step (rendered on the fly); 0: the cached training scenes
    stage0_fresh: int = 1
    # object-level heads on each object's pixel-weighted mean patch feature
    stage0_object_weight: float = 1.0
    affinity_margin: float = 3.0
    affinity_weight: float = 1.0
    # the held-out per-object probe: every stage0_probe_every steps (0: only at the end), a
    # linear probe fitted on probe_scenes training scenes, scored on the held-out scenes
    stage0_probe_every: int = 250
    probe_scenes: int = 300
    calib_scenes: int = 64
    max_clusters: int = 16
    # stage I: the merger
    merger_heads: int = 2
    merger_intra: int = 1
    merger_inter: int = 1
    merger_intermediate: int = 256
    merger_output: int = 128
    stage1_steps: int = 400
    stage1_batch: int = 16
    stage1_lr: float = 1e-3
    stage1_probe_every: int = 200
    # stage II/III: projector + LLM
    llm_hidden: int = 256
    llm_layers: int = 4
    llm_heads: int = 4
    llm_kv_heads: int = 2
    llm_intermediate: int = 688
    max_positions: int = 512
    stage2_steps: int = 2500
    stage2_batch: int = 16
    stage2_lr: float = 1e-3
    # held-out QA (greedy, the first qa_probe_scenes held-out scenes) every stage2_probe_every
    stage2_probe_every: int = 500
    qa_probe_scenes: int = 30
    max_turns: int = 8
    caption_prob: float = 0.2
    # conversations (data.conversation): a turn in another phrasing, one greeting / capability
    # / out-of-world turn per conversation, a conversation of such turns without an image
    rephrase_prob: float = 0.4
    chat_prob: float = 0.25
    imageless_prob: float = 0.03
    # output side (train_generation.py): VAE, mapper + U-Net, the LLM's visual slots
    # three levels: 4x downscale, 32 x 32 latents (small shapes keep their outline)
    vae_channels: str = "16,32,64"
    vae_steps: int = 1500
    vae_batch: int = 16
    vae_crop: int = 64
    vae_lr: float = 1e-3
    vae_kl: float = 1e-4
    vae_object_weight: float = 4.0
    vae_latent_channels: int = 4
    vae_norm_groups: int = 4
    vae_probe_every: int = 500
    mapper_hidden: int = 128
    mapper_layers: int = 2
    mapper_heads: int = 4
    mapper_queries: int = 8
    unet_channels: str = "32,64,128"
    cond_dropout: float = 0.1
    decoder_steps: int = 2000
    decoder_batch: int = 32
    decoder_lr: float = 5e-4
    decoder_probe_every: int = 500
    visual_tokens: int = 8
    stage3_steps: int = 1500
    stage3_batch: int = 16
    stage3_lr: float = 5e-4
    stage3_probe_every: int = 500
    stage3_qa: float = 0.35
    stage3_seg: float = 0.2
    # the mask decoder (train_segmentation.py)
    mask_layers: int = 2
    mask_heads: int = 4
    mask_mlp: int = 256
    masks_steps: int = 600
    masks_batch: int = 16
    masks_lr: float = 1e-3
    masks_probe_every: int = 0
    regression_weight: float = 1.0
    # checkpoints
    save_every: int = 50


PRESETS = {
    "default": TrainConfig(),
    # 20 steps of every stage on tiny models: tests/reference/test_train_smoke.py
    "smoke": TrainConfig(image_size=64, train_scenes=24, eval_scenes=4, vocab_size=400,
                         vision_hidden=32, vision_layers=1, vision_heads=2,
                         vision_intermediate=64, vision_stem="8,16,16", stage0_steps=20,
                         stage0_batch=4, stage0_probe_every=0, probe_scenes=8,
                         calib_scenes=4, max_clusters=8, merger_intermediate=64,
                         stage1_probe_every=0,
                         merger_output=32, stage1_steps=20, stage1_batch=4, llm_hidden=64,
                         llm_layers=1, llm_heads=2, llm_kv_heads=1, llm_intermediate=128,
                         max_positions=256, stage2_steps=20, stage2_batch=4, max_turns=3,
                         stage2_probe_every=0, qa_probe_scenes=2,
                         vae_channels="8,16", vae_steps=20, vae_batch=4, vae_crop=32,
                         vae_probe_every=0,
                         mapper_hidden=32, mapper_layers=1, mapper_heads=2, mapper_queries=4,
                         unet_channels="16,32", decoder_steps=20, decoder_batch=4,
                         decoder_probe_every=0,
                         visual_tokens=4, stage3_steps=20, stage3_batch=4, stage3_probe_every=0,
                         mask_layers=1,
                         mask_heads=2, mask_mlp=32, masks_steps=20, masks_batch=4,
                         save_every=10),
}


# ---- run context: device, distribution, progress, checkpoints -------------------------------

class Context:
    """What every stage needs: config, folders, device, rank, logging."""

    def __init__(self, cfg, work, out, device, quiet=False):
        self.cfg = cfg
        self.work = work
        self.out = out
        self.quiet = quiet
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world > 1
        if device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("train: --device cuda, but no CUDA device is available")
        if self.distributed:
            import torch.distributed as dist
            if device == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        self.device = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" \
            else torch.device("cpu")
        self.main = self.rank == 0
        os.makedirs(work, exist_ok=True)

    def log(self, *args):
        if self.main and not self.quiet:
            print(*args, flush=True)

    def barrier(self):
        if self.distributed:
            import torch.distributed as dist
            dist.barrier()

    def wrap(self, module):
        """DistributedDataParallel around a training net when distributed."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, items):
        """This rank's share of a global batch."""
        return items[self.rank::self.world]

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def done(self, stage):
        p = self.path(stage, "done.json")
        if os.path.exists(p):
            with open(p) as f:
                return json.load(f)
        return None

    def mark_done(self, stage, result):
        if self.main:
            os.makedirs(self.path(stage), exist_ok=True)
            write_json(self.path(stage, "done.json"), result)
        self.barrier()

    def add_time(self, stage, seconds, file="timings.json"):
        if not self.main:
            return
        p = self.path(file)
        t = read_json(p) if os.path.exists(p) else {}
        t[stage] = t.get(stage, 0.0) + seconds
        write_json(p, t)

    def start_clock(self):
        self.clock = (time.time(), time.process_time())

    def tick(self, stage):
        """Adds the wall time since the last tick (or start_clock) to the stage's total in
        timings.json, and the process's CPU time to cpu-timings.json (on a machine shared with
        other jobs the wall time grows, the CPU time does not): called at every checkpoint and
        at the end of a stage, so the time of an interrupted run counts up to its last
        checkpoint."""
        now = (time.time(), time.process_time())
        last = getattr(self, "clock", now)
        self.clock = now
        self.add_time(stage, now[0] - last[0])
        self.add_time(stage, now[1] - last[1], "cpu-timings.json")


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


class Progress:
    """tqdm when it is installed, else a plain line every tenth of the way."""

    def __init__(self, total, desc, initial=0, enabled=True):
        self.total, self.desc, self.n = total, desc, initial
        self.bar = None
        self.enabled = enabled
        self.next_line = initial
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                                mininterval=1.0)
            except ImportError:
                self.bar = None

    def update(self, n=1, **postfix):
        self.n += n
        if not self.enabled:
            return
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif self.n >= self.next_line or self.n == self.total:
            extra = " ".join(f"{k}={v}" for k, v in postfix.items())
            print(f"{self.desc}: {self.n}/{self.total} {extra}", flush=True)
            self.next_line = self.n + max(1, self.total // 10)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train_steps(ctx, stage, modules, net, steps, lr, step_fn, after_step=None):
    """The optimisation loop shared by the stages: AdamW, 5 % warm-up then cosine decay to a
    tenth, gradient clipping at 1. Checkpoints (modules, optimiser, step) go to
    work/STAGE/checkpoint.pt every cfg.save_every steps; a rerun resumes there. step_fn(step)
    returns (loss, logs) for the global batch of `step`, which depends only on the step number,
    so a resumed run sees the same batches; after_step(steps done), when given, runs after each
    step (and its checkpoint). Returns the loss of every step run now."""
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 20)

    def schedule(s):
        if s < warm:
            return (s + 1) / warm
        t = (s - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    ckpt = ctx.path(stage, "checkpoint.pt")
    start = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt, map_location=ctx.device, weights_only=True)
        for name, m in modules.items():
            m.load_state_dict(state["modules"][name])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
        ctx.log(f"{stage}: resuming at step {start}/{steps}")
    bar = Progress(steps, stage, start, enabled=ctx.main and not ctx.quiet)
    losses = []
    net.train()
    for step in range(start, steps):
        loss, logs = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.update(1, loss=f"{losses[-1]:.3f}", **{k: f"{v:.3f}" for k, v in logs.items()})
        if (step + 1) % ctx.cfg.save_every == 0 or step + 1 == steps:
            if ctx.main:
                os.makedirs(ctx.path(stage), exist_ok=True)
                torch.save({"modules": {n: m.state_dict() for n, m in modules.items()},
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "step": step + 1}, ckpt + ".tmp")
                os.replace(ckpt + ".tmp", ckpt)
                ctx.tick(stage)
            ctx.barrier()
        if after_step is not None:
            after_step(step + 1)
    bar.close()
    net.eval()
    return losses


class LearningCurve:
    """A stage's learning curve on held-out data: measure() (a dict of numbers) every `every`
    steps and after the last one, each point {step, seconds of training so far, ...} kept in
    work/STAGE/curve.json across resumed runs; the measuring time is not training time. Pass
    it as train_steps' after_step; finish() returns the points."""

    def __init__(self, ctx, stage, steps, every, net, measure):
        self.ctx, self.stage, self.steps, self.every = ctx, stage, steps, every
        self.net, self.measure = net, measure
        self.path = ctx.path(stage, "curve.json")
        self.points = read_json(self.path) if os.path.exists(self.path) else []
        self.start = time.time()
        self.offset = self.points[-1]["seconds"] if self.points else 0.0

    def __call__(self, done):
        due = done == self.steps or (self.every and done % self.every == 0)
        if not self.ctx.main or not due or (self.points and self.points[-1]["step"] >= done):
            return
        seconds = self.offset + time.time() - self.start
        t0 = time.time()
        point = {"step": done, "seconds": round(seconds, 1), **self.measure()}
        self.start += time.time() - t0
        self.points.append(point)
        os.makedirs(self.ctx.path(self.stage), exist_ok=True)
        write_json(self.path, self.points)
        self.ctx.log(f"{self.stage} at step {done} ({seconds:.0f} s): " +
                     ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in point.items() if k not in ("step", "seconds")))
        self.net.train()

    def finish(self):
        if self.ctx.main and (not self.points or self.points[-1]["step"] < self.steps):
            self(self.steps)
        return self.points


def batch_indices(ctx, stage_id, step, n_items, batch):
    """The global batch of a step (deterministic in seed, stage and step), this rank's share."""
    rng = np.random.default_rng([ctx.cfg.seed, stage_id, step])
    return ctx.shard(rng.choice(n_items, size=batch, replace=n_items < batch).tolist())


def pixel_values(images, device):
    """uint8 [B, S, S, 3] (already the model size) -> CLIP-normalised [B, 3, S, S]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255.0)
    mean = torch.tensor(CLIP_MEAN, device=device)
    std = torch.tensor(CLIP_STD, device=device)
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous()


# ---- data and tokenizer stages --------------------------------------------------------------

def load_scenes(ctx, which):
    cfg = ctx.cfg
    seeds = (D.train_seeds(cfg.train_scenes) if which == "train"
             else D.eval_seeds(cfg.eval_scenes))
    return D.SceneSet.cached(ctx.path(f"scenes-{which}"), seeds, cfg.image_size,
                             min_objects=cfg.min_objects, max_objects=cfg.max_objects)


def stage_data(ctx):
    cfg = ctx.cfg
    if ctx.main:
        for which, n in (("train", cfg.train_scenes), ("eval", cfg.eval_scenes)):
            bar = Progress(n, f"data ({which})", enabled=not ctx.quiet)
            seeds = D.train_seeds(n) if which == "train" else D.eval_seeds(n)
            D.SceneSet.cached(ctx.path(f"scenes-{which}"), seeds, cfg.image_size,
                              progress=bar.update, min_objects=cfg.min_objects,
                              max_objects=cfg.max_objects)
            bar.close()
        scenes = load_scenes(ctx, "train")
        write_json(ctx.path("attributes.json"), D.attribute_vocab(scenes.annotations))
    ctx.mark_done("data", {"train_scenes": cfg.train_scenes, "eval_scenes": cfg.eval_scenes})


def stage_tokenizer(ctx):
    if ctx.main:
        scenes = load_scenes(ctx, "train")
        tok = build_tokenizer(list(D.text_lines(scenes.annotations)), ctx.cfg.vocab_size)
        save_tokenizer(tok, ctx.path("tokenizer"), ctx.cfg.max_positions)
        ctx.log(f"tokenizer: {tok.get_vocab_size(with_added_tokens=True)} tokens")
    ctx.mark_done("tokenizer", {})


# ---- stage 0: the ViT -----------------------------------------------------------------------

def new_vision(cfg):
    """The ViT of cfg: CLIPVisionModel, with the convolutional stem when cfg.vision_stem."""
    from transformers import CLIPVisionConfig, CLIPVisionModel
    vcfg = CLIPVisionConfig(image_size=cfg.image_size, patch_size=cfg.patch_size,
                            hidden_size=cfg.vision_hidden,
                            intermediate_size=cfg.vision_intermediate,
                            num_hidden_layers=cfg.vision_layers,
                            num_attention_heads=cfg.vision_heads, hidden_act="quick_gelu",
                            layer_norm_eps=1e-5, attn_implementation="sdpa")
    if cfg.vision_stem:
        return new_stem_vision(vcfg, G.ints(cfg.vision_stem), cfg.stem_kernel, 2)
    return CLIPVisionModel(vcfg)


def vision_features(vision, pixels, layer=-1):
    """[B, 3, S, S] -> [B, N, d]: hidden_states[layer] without CLS (the bundle's features)."""
    out = vision(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[layer][:, 1:, :]


class VisionPretrainNet(nn.Module):
    """Stage 0: per-patch heads on the ViT features plus the pairwise affinity term.

    The affinity term acts on D = ||f_i - f_j|| / sqrt(d), the distance the clustering uses:
    patches of one object (or both background) are pulled together (D^2), patches of different
    objects pushed beyond `margin` (hinge^2). With the margin well above the spread of the 2-D
    position embedding (D <= ~1.4), each object becomes one density peak."""

    def __init__(self, vision, vocab, margin, affinity_weight, object_weight=0.0):
        super().__init__()
        d = vision.config.hidden_size
        self.vision = vision
        self.norm = nn.LayerNorm(d)
        self.colour = nn.Linear(d, len(vocab["colour"]))
        self.shape = nn.Linear(d, len(vocab["shape"]))
        self.size = nn.Linear(d, len(vocab["size"]))
        self.objectness = nn.Linear(d, 2)
        self.margin = margin
        self.affinity_weight = affinity_weight
        self.object_weight = object_weight
        if object_weight > 0:
            self.object_norm = nn.LayerNorm(d)
            self.object_heads = nn.ModuleDict({key: nn.Linear(d, len(vocab[key]))
                                               for key in ("colour", "shape", "size")})

    def object_loss(self, f, weights, targets):
        """Cross-entropy of the object heads on each object's pixel-weighted mean feature:
        weights [B, K, N] (data.object_patch_weights), targets {key: [B, K]} (0: no object)."""
        h = self.object_norm(weights @ f).flatten(0, 1)
        present = weights.sum(-1).flatten() > 0
        ce = {key: F.cross_entropy(head(h[present]), targets[key].flatten()[present])
              for key, head in self.object_heads.items()}
        return ce

    def forward(self, pixels, patch_ids, targets, objects=None):
        """pixels [B, 3, S, S], patch_ids [B, N] (0 background, k object k), targets: the
        colour / shape / size class of each patch's object [B, N]; objects: None, or
        (weights [B, K, N], {key: class [B, K]}) for the object-level loss."""
        f = vision_features(self.vision, pixels)
        h = self.norm(f).flatten(0, 1)
        is_object = (patch_ids > 0).flatten()
        # attribute heads on object patches only (most patches are background, which the
        # objectness head covers): every patch of an object learns the object's attributes
        ce = {}
        for key in ("colour", "shape", "size"):
            target = targets[key].flatten().masked_fill(~is_object, -100)
            ce[key] = F.cross_entropy(getattr(self, key)(h), target) if is_object.any() \
                else h.sum() * 0
        ce_object = F.cross_entropy(self.objectness(h), is_object.long())
        d = f.shape[-1]
        sq = (f * f).sum(-1)
        d2 = ((sq[:, :, None] + sq[:, None, :] - 2 * f @ f.transpose(1, 2)) / d).clamp_min(0)
        same = (patch_ids[:, :, None] == patch_ids[:, None, :]).float()
        pull = (d2 * same).sum() / same.sum()
        diff = 1 - same
        hinge = F.relu(self.margin - (d2 + 1e-6).sqrt()) ** 2
        push = (hinge * diff).sum() / diff.sum().clamp_min(1)
        affinity = pull + push
        loss = sum(ce.values()) + ce_object + self.affinity_weight * affinity
        logs = {k: float(v.detach()) for k, v in ce.items()}
        if objects is not None and self.object_weight > 0:
            obj = self.object_loss(f, *objects)
            loss = loss + self.object_weight * sum(obj.values())
            logs.update({f"object_{k}": float(v.detach()) for k, v in obj.items()})
        return loss, {**logs, "pull": float(pull.detach()), "push": float(push.detach())}


def patch_targets(labels, annotations, vocab, size, patch):
    """Per-patch object ids [B, N] and their objects' attribute classes {colour, shape, size}
    [B, N] (0 background)."""
    ids = D.patch_labels(labels, patch)
    targets = {key: np.zeros_like(ids) for key in ("colour", "shape", "size")}
    for i, ann in enumerate(annotations):
        attrs = D.object_attributes(ann, vocab, size)
        for key in targets:
            targets[key][i] = attrs[key][ids[i]]
    return ids, targets


def alignment(cluster_labels, pixel_labels, grid, patch):
    """Mean over objects of the best IoU with a cluster, and the object count.

    cluster_labels [N] (raster patch grid), pixel_labels [H, W] (0 background, k object)."""
    gh, gw = grid
    c = np.asarray(cluster_labels).reshape(gh, gw)
    c = np.repeat(np.repeat(c, patch, axis=0), patch, axis=1)
    h, w = c.shape
    p = np.asarray(pixel_labels)[:h, :w].astype(np.int64)
    n_c = int(c.max()) + 1
    joint = np.bincount((p * n_c + c).ravel(), minlength=256 * n_c).reshape(256, n_c)
    area_o = joint.sum(1)
    area_c = joint.sum(0)
    ious = []
    for k in np.nonzero(area_o)[0]:
        if k == 0:
            continue
        inter = joint[k]
        ious.append(float((inter / (area_o[k] + area_c - inter)).max()))
    return ious


@torch.no_grad()
def calibrate_clustering(ctx, vision, scenes, indices):
    """Pick cluster_k and cluster_threshold maximising mean best IoU, lightly penalising token
    counts away from objects + 1 (background)."""
    cfg = ctx.cfg
    grid = (cfg.image_size // cfg.patch_size,) * 2
    feats = features_of(ctx, vision, scenes, indices)
    best = None
    for k in (2, 3, 4, 6, 8):
        for thr in (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
            ious, extra = [], []
            for f, i in zip(feats, indices):
                cl = cluster(f.double(), grid[0], grid[1], "dpc", k, thr, 1, cfg.max_clusters)
                ious += alignment(cl["labels"].numpy(), scenes.labels[i], grid, cfg.patch_size)
                extra.append(abs(int(cl["centres"].numel()) -
                                 (len(scenes.annotations[i]["objects"]) + 1)))
            score = float(np.mean(ious)) - 0.05 * float(np.mean(extra))
            if best is None or score > best[0]:
                best = (score, k, thr, float(np.mean(ious)), float(np.mean(extra)))
    return {"cluster_k": best[1], "cluster_threshold": best[2], "calib_alignment": best[3],
            "calib_token_excess": best[4]}


@torch.no_grad()
def features_of(ctx, vision, scenes, indices, batch=32):
    """Vision features (f32, CPU) [N, d] of the scenes at `indices`."""
    out = []
    vision.eval()
    for s in range(0, len(indices), batch):
        idx = indices[s:s + batch]
        f = vision_features(vision, pixel_values(scenes.images[idx], ctx.device))
        out += list(f.float().cpu())
    return out


def object_targets(labels, annotations, vocab, size, patch):
    """The object-level loss's inputs: pixel weights [B, K, N] (data.object_patch_weights) and
    each object's colour / shape / size class {key: [B, K]} (0 where no object)."""
    k = max(1, int(labels.max()))
    weights = D.object_patch_weights(labels, patch, k)
    classes = {key: np.zeros((len(annotations), k), np.int64)
               for key in ("colour", "shape", "size")}
    for i, ann in enumerate(annotations):
        attrs = D.object_attributes(ann, vocab, size)
        for key in classes:
            classes[key][i] = attrs[key][1:k + 1]
    return weights, classes


@torch.no_grad()
def object_features(ctx, vision, scenes, indices, vocab, batch=32):
    """Each visible object's mean patch feature (pixel-weighted) [M, d] and its attribute
    classes {key: [M]}, over the scenes at `indices`."""
    cfg = ctx.cfg
    feats, classes = [], {key: [] for key in ("colour", "shape", "size")}
    vision.eval()
    for s in range(0, len(indices), batch):
        idx = indices[s:s + batch]
        f = vision_features(vision, pixel_values(scenes.images[idx], ctx.device)).float()
        weights, cls = object_targets(scenes.labels[idx], [scenes.annotations[i] for i in idx],
                                      vocab, cfg.image_size, cfg.patch_size)
        w = torch.from_numpy(weights).to(f.device)
        present = (w.sum(-1) > 0).flatten().cpu()
        feats.append((w @ f).flatten(0, 1).cpu()[present])
        for key in classes:
            classes[key].append(torch.from_numpy(cls[key]).flatten()[present])
    return torch.cat(feats), {key: torch.cat(v) for key, v in classes.items()}


def linear_probe(train_x, train_y, test_x, test_y, classes, iters=300):
    """Multinomial logistic regression (standardised features, L-BFGS, small L2) fitted on the
    training pairs; accuracy on the test pairs."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    x, xt = (train_x - mean) / std, (test_x - mean) / std
    with torch.enable_grad():
        lin = nn.Linear(x.shape[1], classes).double()
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=iters,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(lin(x.double()), train_y) + 1e-3 * lin.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
    with torch.no_grad():
        return float((lin(xt.double()).argmax(-1) == test_y).double().mean())


def object_probe(ctx, vision, train_scenes, held, vocab):
    """What the ViT's features know per object: linear probes of colour / shape / size on each
    object's mean patch feature, fitted on probe_scenes training scenes, scored on every object
    of the held-out scenes."""
    n = min(ctx.cfg.probe_scenes, len(train_scenes))
    x, y = object_features(ctx, vision, train_scenes, list(range(n)), vocab)
    xt, yt = object_features(ctx, vision, held, list(range(len(held))), vocab)
    out = {key: linear_probe(x, y[key], xt, yt[key], len(vocab[key]))
           for key in ("colour", "shape", "size")}
    out["objects"] = int(xt.shape[0])
    return out


def stage0(ctx):
    cfg = ctx.cfg
    scenes = load_scenes(ctx, "train")
    held = load_scenes(ctx, "eval")
    vocab = read_json(ctx.path("attributes.json"))
    torch.manual_seed(cfg.seed)
    vision = new_vision(cfg).to(ctx.device)
    # the bundle's features skip the pooled output, so post_layernorm gets no gradient; frozen,
    # it does not stall DistributedDataParallel's gradient reduction
    vision.post_layernorm.requires_grad_(False)
    net = VisionPretrainNet(vision, vocab, cfg.affinity_margin, cfg.affinity_weight,
                            cfg.stage0_object_weight).to(ctx.device)
    model = ctx.wrap(net)

    def batch(s):
        """(images, labels, annotations) of step s: fresh scenes or cached ones."""
        if cfg.stage0_fresh:
            seeds = ctx.shard(D.stream_seeds(0, s, cfg.stage0_batch, cfg.train_scenes))
            fresh = D.SceneSet.generate(seeds, cfg.image_size, min_objects=cfg.min_objects,
                                        max_objects=cfg.max_objects)
            return fresh.images, fresh.labels, fresh.annotations
        idx = batch_indices(ctx, 0, s, len(scenes), cfg.stage0_batch)
        return scenes.images[idx], scenes.labels[idx], [scenes.annotations[i] for i in idx]

    def step(s):
        images, labels, annotations = batch(s)
        ids, targets = patch_targets(labels, annotations, vocab, cfg.image_size, cfg.patch_size)
        targets = {k: torch.from_numpy(v).to(ctx.device) for k, v in targets.items()}
        objects = None
        if cfg.stage0_object_weight > 0:
            weights, classes = object_targets(labels, annotations, vocab, cfg.image_size,
                                              cfg.patch_size)
            objects = (torch.from_numpy(weights).to(ctx.device),
                       {k: torch.from_numpy(v).to(ctx.device) for k, v in classes.items()})
        return model(pixel_values(images, ctx.device), torch.from_numpy(ids).to(ctx.device),
                     targets, objects)

    curve = LearningCurve(ctx, "stage0", cfg.stage0_steps, cfg.stage0_probe_every, net,
                          lambda: object_probe(ctx, vision, scenes, held, vocab))
    losses = train_steps(ctx, "stage0", {"net": net}, net, cfg.stage0_steps, cfg.stage0_lr,
                         step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": losses[-1] if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        save_vision(vision, ctx.path("stage0", "vision"))
        vision = load_vision(ctx)  # the saved tower (BatchNorm folded) from here on
        rng = np.random.default_rng(cfg.seed)
        calib = rng.choice(len(scenes), size=min(cfg.calib_scenes, len(scenes)),
                           replace=False).tolist()
        result.update(calibrate_clustering(ctx, vision, scenes, calib))
        ev = list(range(min(64, len(held))))
        result["heldout_alignment"] = cluster_stats(ctx, vision, held, ev, result)["alignment"]
        ctx.log(f"stage0: cluster_k {result['cluster_k']}, threshold "
                f"{result['cluster_threshold']}; cluster/object alignment (mean best IoU) "
                f"{result['heldout_alignment']:.3f} on {len(ev)} held-out scenes")
    ctx.mark_done("stage0", result)


@torch.no_grad()
def cluster_stats(ctx, vision, scenes, indices, params):
    """Alignment and tokens per image against object counts, with clustering `params`."""
    cfg = ctx.cfg
    grid = (cfg.image_size // cfg.patch_size,) * 2
    ious, per_count = [], {}
    for f, i in zip(features_of(ctx, vision, scenes, indices), indices):
        cl = cluster(f, grid[0], grid[1], "dpc", params["cluster_k"],
                     params["cluster_threshold"], 1, cfg.max_clusters)
        ious += alignment(cl["labels"].numpy(), scenes.labels[i], grid, cfg.patch_size)
        n_obj = len(scenes.annotations[i]["objects"])
        per_count.setdefault(n_obj, []).append(int(cl["centres"].numel()))
    return {"alignment": float(np.mean(ious)) if ious else 0.0,
            "tokens_by_objects": {str(k): float(np.mean(v)) for k, v in sorted(per_count.items())}}


# ---- stage I: the merger --------------------------------------------------------------------

def merge_batched(merger, feats, labels, counts, grid):
    """SetokMerger.forward for a batch, with padding masks instead of a loop over clusters.

    feats [B, N, d], labels [B, N] cluster ids, counts [B] -> tokens [sum(counts), out]
    (image by image, token order). Same result as merger(feats[b], labels[b], ...) per image:
    masked keys get -inf, padded queries are dropped, the mean runs over real members."""
    b, n, d = feats.shape
    x = feats
    if merger.config.position_embedding:
        x = x + position_embedding_2d(grid[0], grid[1], d, x.dtype, x.device)
    # members of every (image, token) group, padded to the largest group
    owners = labels + torch.tensor(np.cumsum([0] + list(counts[:-1])),
                                   device=labels.device)[:, None]
    total = int(sum(counts))
    order = torch.argsort(owners.flatten() * n + torch.arange(n, device=x.device).repeat(b))
    flat_owner = owners.flatten()[order]
    sizes = torch.bincount(flat_owner, minlength=total)
    longest = int(sizes.max())
    start = torch.cumsum(sizes, 0) - sizes
    slot = torch.arange(b * n, device=x.device) - start[flat_owner]
    groups = x.new_zeros(total, longest, d)
    groups[flat_owner, slot] = x.flatten(0, 1)[order]
    valid = torch.zeros(total, longest, dtype=torch.bool, device=x.device)
    valid[flat_owner, slot] = True
    mask = torch.zeros(total, 1, 1, longest, dtype=x.dtype, device=x.device)
    mask.masked_fill_(~valid[:, None, None, :], float("-inf"))
    h = groups
    for block in merger.intra:
        h = block(h, mask)
    w = valid.to(x.dtype).unsqueeze(-1)
    pooled = (h * w).sum(1) / w.sum(1).clamp_min(1)
    # inter blocks over each image's tokens, padded to the most tokens
    most = max(counts)
    u = x.new_zeros(b, most, d)
    tvalid = torch.zeros(b, most, dtype=torch.bool, device=x.device)
    for i, c in enumerate(counts):
        first = int(sum(counts[:i]))
        u[i, :c] = pooled[first:first + c]
        tvalid[i, :c] = True
    tmask = torch.zeros(b, 1, 1, most, dtype=x.dtype, device=x.device)
    tmask.masked_fill_(~tvalid[:, None, None, :], float("-inf"))
    for block in merger.inter:
        u = block(u, tmask)
    return merger.out(u[tvalid])


class MergerPretrainNet(nn.Module):
    """Stage I: heads on the merger tokens predict the covered object's colour, shape, size
    (background: class 0) and centre."""

    def __init__(self, merger, vocab):
        super().__init__()
        o = merger.config.output_size
        self.merger = merger
        self.colour = nn.Linear(o, len(vocab["colour"]))
        self.shape = nn.Linear(o, len(vocab["shape"]))
        self.size = nn.Linear(o, len(vocab["size"]))
        self.centre = nn.Linear(o, 2)

    def forward(self, feats, labels, counts, grid, targets):
        tok = merge_batched(self.merger, feats, labels, counts, grid)
        ce = {k: F.cross_entropy(getattr(self, k)(tok), targets[k])
              for k in ("colour", "shape", "size")}
        centre = F.mse_loss(torch.sigmoid(self.centre(tok)), targets["centre"]) * 10
        loss = sum(ce.values()) + centre
        logs = {k: float(v.detach()) for k, v in ce.items()}
        return loss, {**logs, "centre": float(centre.detach())}


def cluster_batch(feats, grid, params, max_clusters):
    """DPC labels [B, N] and token counts of a feature batch [B, N, d]."""
    labels, counts = [], []
    for f in feats:
        cl = cluster(f, grid[0], grid[1], "dpc", params["cluster_k"],
                     params["cluster_threshold"], 1, max_clusters)
        labels.append(cl["labels"])
        counts.append(int(cl["centres"].numel()))
    return torch.stack(labels), counts


def token_targets(labels, counts, patch_ids, annotations, vocab, size, grid):
    """Per token: the object its cluster mostly covers (patch majority) -> attribute classes
    and centre; a background token's centre is the mean position of its patches."""
    gh, gw = grid
    ys, xs = np.divmod(np.arange(gh * gw), gw)
    pos = np.stack([(xs + 0.5) / gw, (ys + 0.5) / gh], 1).astype(np.float32)
    out = {"colour": [], "shape": [], "size": [], "centre": []}
    for b, ann in enumerate(annotations):
        attrs = D.object_attributes(ann, vocab, size)
        lab = labels[b].cpu().numpy()
        for t in range(counts[b]):
            members = lab == t
            ids = patch_ids[b][members]
            k = int(np.bincount(ids).argmax()) if ids.size else 0
            for key in ("colour", "shape", "size"):
                out[key].append(attrs[key][k])
            out["centre"].append(attrs["centre"][k] if k else
                                 (pos[members].mean(0) if members.any() else pos.mean(0)))
    return {"colour": torch.tensor(out["colour"]), "shape": torch.tensor(out["shape"]),
            "size": torch.tensor(out["size"]),
            "centre": torch.tensor(np.array(out["centre"], np.float32))}


def merger_config(cfg, params):
    return SetokMergerConfig(hidden_size=cfg.vision_hidden, num_heads=cfg.merger_heads,
                             intra_layers=cfg.merger_intra, inter_layers=cfg.merger_inter,
                             intermediate_size=cfg.merger_intermediate,
                             output_size=cfg.merger_output, hidden_act="gelu",
                             cluster_mode="dpc", cluster_k=params["cluster_k"],
                             cluster_threshold=params["cluster_threshold"], min_clusters=1,
                             max_clusters=cfg.max_clusters)


def load_vision(ctx):
    v = load_vision_folder(ctx.path("stage0", "vision"), dtype=torch.float32)
    return v.to(ctx.device).eval().requires_grad_(False)


def stage1(ctx):
    cfg = ctx.cfg
    scenes = load_scenes(ctx, "train")
    vocab = read_json(ctx.path("attributes.json"))
    params = ctx.done("stage0")
    vision = load_vision(ctx)
    grid = (cfg.image_size // cfg.patch_size,) * 2
    torch.manual_seed(cfg.seed + 1)
    merger = SetokMerger(merger_config(cfg, params)).to(ctx.device)
    net = MergerPretrainNet(merger, vocab).to(ctx.device)
    model = ctx.wrap(net)

    def step(s):
        idx = batch_indices(ctx, 1, s, len(scenes), cfg.stage1_batch)
        with torch.no_grad():
            feats = vision_features(vision, pixel_values(scenes.images[idx], ctx.device))
        labels, counts = cluster_batch(feats, grid, params, cfg.max_clusters)
        patch_ids = D.patch_labels(scenes.labels[idx], cfg.patch_size)
        targets = token_targets(labels, counts, patch_ids, [scenes.annotations[i] for i in idx],
                                vocab, cfg.image_size, grid)
        targets = {k: v.to(ctx.device) for k, v in targets.items()}
        return model(feats, labels, counts, grid, targets)

    held = load_scenes(ctx, "eval")
    curve = LearningCurve(ctx, "stage1", cfg.stage1_steps, cfg.stage1_probe_every, net,
                          lambda: token_attribute_accuracy(ctx, held, net))
    losses = train_steps(ctx, "stage1", {"net": net}, net, cfg.stage1_steps, cfg.stage1_lr,
                         step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": losses[-1] if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        merger.save_pretrained(ctx.path("stage1", "setok"))
    ctx.mark_done("stage1", result)


# ---- stage II/III: projector + LLM ----------------------------------------------------------

@torch.no_grad()
def vision_token_cache(ctx, which, batch=64):
    """Merger tokens of every scene of `which` (frozen vision side), cached in the work folder:
    a list of f32 CPU tensors [N_i, output_size]."""
    path = ctx.path(f"tokens-{which}.pt")
    if ctx.main and not os.path.exists(path):
        cfg = ctx.cfg
        scenes = load_scenes(ctx, which)
        vision = load_vision(ctx)
        merger = SetokMerger.from_pretrained(ctx.path("stage1", "setok")).to(ctx.device).eval()
        params = ctx.done("stage0")
        grid = (cfg.image_size // cfg.patch_size,) * 2
        tokens = []
        bar = Progress(len(scenes), f"vision tokens ({which})", enabled=not ctx.quiet)
        for s in range(0, len(scenes), batch):
            idx = list(range(s, min(s + batch, len(scenes))))
            feats = vision_features(vision, pixel_values(scenes.images[idx], ctx.device))
            labels, counts = cluster_batch(feats, grid, params, cfg.max_clusters)
            tok = merge_batched(merger, feats, labels, counts, grid).float().cpu()
            tokens += list(torch.split(tok, counts))
            bar.update(len(idx))
        bar.close()
        torch.save([t.clone() for t in tokens], path + ".tmp")
        os.replace(path + ".tmp", path)
    ctx.barrier()
    return torch.load(path, weights_only=True)


def new_llm(cfg, vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM
    lcfg = LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.llm_hidden,
                       intermediate_size=cfg.llm_intermediate,
                       num_hidden_layers=cfg.llm_layers, num_attention_heads=cfg.llm_heads,
                       num_key_value_heads=cfg.llm_kv_heads,
                       max_position_embeddings=cfg.max_positions, rms_norm_eps=1e-5,
                       bos_token_id=1, eos_token_id=2, pad_token_id=3,
                       tie_word_embeddings=False, attn_implementation="sdpa")
    return LlamaForCausalLM(lcfg)


class Conversations:
    """Token ids and loss labels of chat conversations in the bundle's prompt format."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.eos = tokenizer.token_to_id("</s>")
        self.image = tokenizer.token_to_id("<image>")
        self.cache = {}

    def turn(self, question, answer, first, image=True):
        """(prompt ids, answer ids + EOS). A follow-up's prompt starts after the EOS that
        closed the previous answer (chat.c's layout)."""
        key = (question, answer, first, image)
        if key not in self.cache:
            text = format_prompt(question, image=first and image, first=first)
            prompt = self.tok.encode(text, add_special_tokens=first).ids
            full = self.tok.encode(text + " " + answer, add_special_tokens=first).ids
            if full[:len(prompt)] != prompt:
                raise ValueError(f"tokenizer: prompt ids are not a prefix for {answer!r}")
            self.cache[key] = (prompt, full[len(prompt):] + [self.eos])
        return self.cache[key]

    def sample(self, turns, image=True):
        """turns [(type, question, answer)] -> ids, labels (-100 outside answers); the first
        turn carries the image unless image is False."""
        ids, labels = [], []
        for j, (_, q, a) in enumerate(turns):
            prompt, answer = self.turn(q, a, j == 0, image)
            ids += prompt + answer
            labels += [-100] * len(prompt) + answer
        return ids, labels


class ChatNet(nn.Module):
    """Stage II/III: projector + LLM, next-token cross-entropy on answer tokens."""

    def __init__(self, projector, llm, image_token):
        super().__init__()
        self.projector = projector
        self.llm = llm
        self.image_token = image_token

    def embed(self, ids, labels, tokens, pad_id):
        """Sequences with one <image> each (or none, with tokens None) -> padded embeddings,
        mask and labels."""
        emb_table = self.llm.get_input_embeddings()
        rows, labs = [], []
        for seq, lab, tok in zip(ids, labels, tokens):
            seq_t = torch.tensor(seq, device=emb_table.weight.device)
            e = emb_table(seq_t)
            if tok is None:  # a request without an image
                rows.append(e)
                labs.append(list(lab))
                continue
            i = seq.index(self.image_token)
            rows.append(torch.cat([e[:i], self.projector(tok), e[i + 1:]]))
            labs.append(lab[:i] + [-100] * tok.shape[0] + lab[i + 1:])
        longest = max(r.shape[0] for r in rows)
        h = rows[0].shape[1]
        x = rows[0].new_zeros(len(rows), longest, h)
        mask = torch.zeros(len(rows), longest, dtype=torch.long, device=x.device)
        y = torch.full((len(rows), longest), -100, dtype=torch.long, device=x.device)
        for b, (r, lab) in enumerate(zip(rows, labs)):
            x[b, :r.shape[0]] = r
            mask[b, :r.shape[0]] = 1
            y[b, :r.shape[0]] = torch.tensor(lab, device=x.device)
        return x, mask, y

    def forward(self, ids, labels, tokens, pad_id):
        x, mask, y = self.embed(ids, labels, tokens, pad_id)
        out = self.llm(inputs_embeds=x, attention_mask=mask, labels=y)
        return out.loss, {}


def chat_sample(conv, annotation, tokens, rng, cfg):
    """One training conversation (ids, labels, vision tokens or None): about the scene, or
    with probability imageless_prob a few turns without an image (greetings, what the model
    can do, questions outside the world)."""
    if rng.random() < cfg.imageless_prob:
        turns = []
        for _ in range(rng.randint(1, 2)):
            kind = rng.choice(sorted(D.CHAT_QUESTIONS))
            turns.append((kind, rng.choice(D.CHAT_QUESTIONS[kind]), D.CHAT_ANSWERS[kind]))
        return (*conv.sample(turns, image=False), None)
    turns = D.conversation(annotation, rng, cfg.max_turns, cfg.caption_prob, cfg.rephrase_prob,
                           cfg.chat_prob)
    return (*conv.sample(turns), tokens)


def stage2(ctx):
    cfg = ctx.cfg
    scenes = load_scenes(ctx, "train")
    tokens = vision_token_cache(ctx, "train")
    tokenizer = load_tokenizer(ctx.path("tokenizer"))
    torch.manual_seed(cfg.seed + 2)
    llm = new_llm(cfg, tokenizer.get_vocab_size(with_added_tokens=True)).to(ctx.device)
    projector = SetokimProjector(cfg.merger_output, cfg.llm_hidden).to(ctx.device)
    conv = Conversations(tokenizer)
    net = ChatNet(projector, llm, conv.image).to(ctx.device)
    model = ctx.wrap(net)
    pad = tokenizer.token_to_id("<pad>")

    def step(s):
        idx = batch_indices(ctx, 2, s, len(scenes), cfg.stage2_batch)
        rng = random.Random(f"{cfg.seed}-2-{s}")
        ids, labels, toks = [], [], []
        for i in idx:
            seq, lab, tok = chat_sample(conv, scenes.annotations[i], tokens[i], rng, cfg)
            ids.append(seq)
            labels.append(lab)
            toks.append(tok.to(ctx.device) if tok is not None else None)
        return model(ids, labels, toks, pad)

    held = load_scenes(ctx, "eval")
    probe_scenes = D.SceneSet(held.seeds[:cfg.qa_probe_scenes],
                              held.images[:cfg.qa_probe_scenes],
                              held.labels[:cfg.qa_probe_scenes],
                              held.annotations[:cfg.qa_probe_scenes])

    def measure():
        model = SetokimModel(load_vision(ctx), SetokMerger.from_pretrained(
            ctx.path("stage1", "setok")), projector, llm, tokenizer,
            default_manifest(cfg.image_size)).to(ctx.device).eval()
        ev = evaluate(model, probe_scenes, cfg.patch_size)
        return {"qa": ev["accuracy"], **{f"qa_{k}": v for k, v in
                                         ev["accuracy_by_type"].items()}}

    curve = LearningCurve(ctx, "stage2", cfg.stage2_steps, cfg.stage2_probe_every, net, measure)
    losses = train_steps(ctx, "stage2", {"projector": projector, "llm": llm}, net,
                         cfg.stage2_steps, cfg.stage2_lr, step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": losses[-1] if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        projector.save_pretrained(ctx.path("stage2", "projector_in"))
        llm.save_pretrained(ctx.path("stage2", "llm"))
    ctx.mark_done("stage2", result)


# ---- export and evaluation ------------------------------------------------------------------

def trained_model(ctx):
    """The SetokimModel assembled from the stage outputs in the work folder (f32): the LLM,
    projector and tokenizer of stage3 when it ran (they then know the visual tokens), else
    of stage2."""
    from transformers import LlamaForCausalLM
    vision = load_vision(ctx)
    merger = SetokMerger.from_pretrained(ctx.path("stage1", "setok"))
    last = "stage3" if ctx.done("stage3") is not None else "stage2"
    projector = SetokimProjector.from_pretrained(ctx.path(last, "projector_in"))
    llm = LlamaForCausalLM.from_pretrained(ctx.path(last, "llm"), dtype=torch.float32)
    tokenizer = load_tokenizer(ctx.path("stage3", "tokenizer") if last == "stage3"
                               else ctx.path("tokenizer"))
    manifest = default_manifest(ctx.cfg.image_size)
    return SetokimModel(vision, merger, projector, llm, tokenizer, manifest).to(ctx.device).eval()


def export_generation(ctx, dtype):
    """The output side (stages vae, decoder, masks, stage3) into the bundle, when they all
    ran."""
    if any(ctx.done(s) is None for s in ("vae", "decoder", "masks", "stage3")):
        return False
    from .segmentation import MaskHead, save_segmentation
    save_segmentation(ctx.out, MaskHead.from_pretrained(ctx.path("stage3", "mask_decoder")),
                      SetokimProjector.from_pretrained(ctx.path("stage3", "projector_seg")),
                      dtype=DTYPES[dtype])
    from diffusers import UNet2DConditionModel
    from .generation import Mapper, inference_scheduler, save_generation, visual_token_names
    save_generation(ctx.out, SetokimProjector.from_pretrained(ctx.path("stage3", "projector_out")),
                    Mapper.from_pretrained(ctx.path("decoder", "mapper")),
                    UNet2DConditionModel.from_pretrained(ctx.path("decoder", "unet")),
                    G.load_vae(ctx).cpu(), inference_scheduler(),
                    visual_token_names(ctx.cfg.visual_tokens), DTYPES[dtype])
    return True


def stage_export(ctx, dtype="f16"):
    result = {}
    if ctx.main:
        model = trained_model(ctx)
        model.save_bundle(ctx.out, DTYPES[dtype])
        generation = export_generation(ctx, dtype)
        reloaded = SetokimModel.from_bundle(ctx.out, device=ctx.device)
        # the reloaded bundle against the trained weights on a held-out scene
        held = load_scenes(ctx, "eval")
        q = held.annotations[0]["qa"][0]["question"] if held.annotations[0]["qa"] else "?"
        pv = pixel_values(held.images[:1], ctx.device)
        with torch.no_grad():
            t_ref = model.vision_tokens(pv)[0]
            t_new = reloaded.vision_tokens(pv)[0]
            l_ref = model.llm(inputs_embeds=model.prompt_embeds(q, t_ref)[None]).logits
            l_new = reloaded.llm(inputs_embeds=reloaded.prompt_embeds(q, t_new)[None]).logits
        same_count = t_ref.shape == t_new.shape
        rel = float((l_new - l_ref).abs().max() / l_ref.abs().max()) if same_count else None
        size = sum(os.path.getsize(os.path.join(r, f))
                   for r, _, files in os.walk(ctx.out) for f in files)
        result = {"bundle": ctx.out, "bytes": size, "dtype": dtype, "generation": generation,
                  "tokens_match": bool(same_count), "logits_max_rel_err": rel}
        ctx.log(f"export: {ctx.out} ({size / 2**20:.1f} MiB, {dtype}); reloaded: "
                f"{t_new.shape[0]} tokens (trained model {t_ref.shape[0]}), logits max rel err "
                f"{rel if rel is None else f'{rel:.2e}'}")
    ctx.mark_done("export", result)


def normalise_answer(text):
    return text.strip().lower().rstrip(".").strip()


@torch.no_grad()
def evaluate(model, scenes, patch, max_new_tokens=8, progress=None):
    """Held-out QA accuracy per question type (greedy answers of the bundle model), cluster
    alignment and tokens per image against the object count."""
    by_type, answers, ious, oracle, per_count = {}, {}, [], [], {}
    for i in range(len(scenes)):
        ann = scenes.annotations[i]
        pv = model.preprocess(scenes.images[i])
        tokens, clusters = model.vision_tokens(pv, return_clusters=True)
        tok = tokens[0]
        ious += alignment(clusters[0]["labels"].cpu().numpy(), scenes.labels[i], model.grid,
                          patch)
        # the best a patch-level clustering can do: one cluster per patch label
        ids = D.patch_labels(scenes.labels[i:i + 1], patch)[0]
        oracle += alignment(np.unique(ids, return_inverse=True)[1], scenes.labels[i],
                            model.grid, patch)
        per_count.setdefault(len(ann["objects"]), []).append(int(tok.shape[0]))
        for q in ann.get("qa", []):
            ids = model.generate_ids(model.prompt_embeds(q["question"], tok), max_new_tokens)
            if ids and ids[-1] == model.eos_id:
                ids = ids[:-1]
            got = normalise_answer(model.tokenizer.decode(ids, skip_special_tokens=True))
            ok = got == normalise_answer(q["answer"])
            by_type.setdefault(q["type"], []).append(ok)
            answers.setdefault(q["type"], []).append(normalise_answer(q["answer"]))
        if progress is not None:
            progress(1)
    total = [x for v in by_type.values() for x in v]
    return {
        "scenes": len(scenes), "questions": len(total),
        "accuracy": float(np.mean(total)) if total else 0.0,
        "accuracy_by_type": {k: float(np.mean(v)) for k, v in sorted(by_type.items())},
        "questions_by_type": {k: len(v) for k, v in sorted(by_type.items())},
        # a blind baseline: always the most frequent answer of the type
        "majority_by_type": {k: max(v.count(a) for a in set(v)) / len(v)
                             for k, v in sorted(answers.items())},
        "alignment": float(np.mean(ious)) if ious else 0.0,
        "alignment_patch_bound": float(np.mean(oracle)) if oracle else 0.0,
        "tokens_by_objects": {str(k): float(np.mean(v)) for k, v in sorted(per_count.items())},
        "scenes_by_objects": {str(k): len(v) for k, v in sorted(per_count.items())},
    }


@torch.no_grad()
def token_attribute_accuracy(ctx, scenes, net=None, batch=20):
    """What the merger tokens know: stage I's attribute heads (net, else stage1/checkpoint.pt)
    on the tokens of held-out scenes, scored against the object each token covers (objects
    only). A probe of the vision side, independent of the LLM."""
    cfg = ctx.cfg
    params = ctx.done("stage0")
    vocab = read_json(ctx.path("attributes.json"))
    if net is None:
        net = MergerPretrainNet(SetokMerger(merger_config(cfg, params)), vocab)
        state = torch.load(ctx.path("stage1", "checkpoint.pt"), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state["modules"]["net"])
    net.to(ctx.device).eval()
    vision = load_vision(ctx)
    grid = (cfg.image_size // cfg.patch_size,) * 2
    hits = {key: [] for key in ("colour", "shape", "size")}
    for s in range(0, len(scenes), batch):
        idx = list(range(s, min(s + batch, len(scenes))))
        feats = vision_features(vision, pixel_values(scenes.images[idx], ctx.device))
        labels, counts = cluster_batch(feats, grid, params, cfg.max_clusters)
        targets = token_targets(labels, counts, D.patch_labels(scenes.labels[idx],
                                                                cfg.patch_size),
                                [scenes.annotations[i] for i in idx], vocab, cfg.image_size,
                                grid)
        tok = merge_batched(net.merger, feats, labels, counts, grid)
        for key in hits:
            want = targets[key].to(ctx.device)
            on = want != 0
            hits[key] += (getattr(net, key)(tok).argmax(-1)[on] == want[on]).tolist()
    return {key: float(np.mean(v)) if v else 0.0 for key, v in hits.items()}


def stage_eval(ctx):
    result = {}
    if ctx.main:
        model = SetokimModel.from_bundle(ctx.out, device=ctx.device)
        held = load_scenes(ctx, "eval")
        bar = Progress(len(held), "eval", enabled=not ctx.quiet)
        result = evaluate(model, held, ctx.cfg.patch_size, progress=bar.update)
        bar.close()
        result["token_attribute_accuracy"] = token_attribute_accuracy(ctx, held)
        write_json(ctx.path("eval.json"), result)
        ctx.log(f"eval: QA accuracy {result['accuracy']:.3f} on {result['questions']} questions "
                f"of {result['scenes']} held-out scenes; " +
                ", ".join(f"{k} {v:.3f}" for k, v in result["accuracy_by_type"].items()))
        ctx.log(f"eval: cluster/object alignment {result['alignment']:.3f}; tokens per image by "
                f"object count {result['tokens_by_objects']}")
    ctx.mark_done("eval", result)


def stage_card(ctx):
    """MODEL_CARD.md in the bundle folder, from config, results and timings (card.py)."""
    if ctx.main:
        from .card import write_card
        write_card(ctx)


RUNNERS = {"data": stage_data, "tokenizer": stage_tokenizer, "stage0": stage0,
           "stage1": stage1, "stage2": stage2, "vae": G.stage_vae, "decoder": G.stage_decoder,
           "masks": S.stage_masks, "stage3": G.stage3, "export": stage_export,
           "eval": stage_eval, "card": stage_card}


# ---- command line ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m tools.setokim.train",
                                 description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:]))
    ap.add_argument("stages", nargs="+", metavar="STAGE",
                    help=f"stages to run, in order: {', '.join(STAGES)}, or all")
    ap.add_argument("--work", required=True, help="work folder (data, checkpoints, caches)")
    ap.add_argument("--out", default="data/models/setokim-tiny", help="bundle folder")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TrainConfig field (repeatable), e.g. stage2_steps=2000")
    ap.add_argument("--redo", action="store_true",
                    help="run the named stages again even when they are done (their "
                         "checkpoints are kept: remove work/STAGE to start it from scratch)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.stages == ["all"]:
        args.stages = list(STAGES)
    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        ap.error(f"unknown stage {bad[0]!r}; expected {', '.join(STAGES)} or all")
    return args


def make_config(preset, overrides):
    cfg = PRESETS[preset]
    types = {f.name: f.type for f in fields(TrainConfig)}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"train: --set {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(types)}")
        kind = {"int": int, "float": float}.get(types[key], type(getattr(cfg, key)))
        try:
            cfg = replace(cfg, **{key: kind(value)})
        except ValueError:
            raise SystemExit(f"train: --set {item!r}: {value!r} is not a {kind.__name__}")
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    cfg = make_config(args.preset, args.set)
    ctx = Context(cfg, args.work, args.out, args.device, args.quiet)
    cfg_path = ctx.path("config.json")
    if ctx.main:
        if os.path.exists(cfg_path) and read_json(cfg_path) != asdict(cfg):
            old = read_json(cfg_path)
            changed = [k for k in asdict(cfg) if old.get(k) != getattr(cfg, k)]
            ctx.log(f"train: note: config differs from {cfg_path} in {', '.join(changed)}; "
                    "finished stages are kept")
        write_json(cfg_path, asdict(cfg))
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    for stage in args.stages:
        if stage != "card" and ctx.done(stage) is not None and not args.redo:
            ctx.log(f"{stage}: done (remove {ctx.path(stage)} to run it again)")
            continue
        t0 = time.time()
        ctx.start_clock()
        RUNNERS[stage](ctx)
        ctx.tick(stage)
        ctx.log(f"{stage}: {time.time() - t0:.1f} s")
    if ctx.distributed:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
