"""train_segmentation.py — stage I, mask half (paper Eq. 4, BCE + Dice): the SAM-style mask
decoder of segmentation.py learns, on the frozen vision tower's patch features, to cut out the
object that point prompts land on (one to three foreground points, sometimes a background
point). Referring segmentation (the LLM's <seg> state as the prompt) is trained with the other
output tasks in stage3 (train_generation.py).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .segmentation import MaskHead, image_embeddings, mask_loss, new_sam

PAD_LABEL = -10  # transformers' SamPromptEncoder: a padding point, embedded as zeros


def _t():
    from . import train  # the shared loop and caches; imported late (train imports this module)
    return train


def object_masks(labels, rng, annotations=None):
    """For each label map [H, W] a random visible object: (object id, bool mask [H, W])."""
    out = []
    for lab in labels:
        ids = [int(i) for i in np.unique(lab) if i != 0]
        k = ids[rng.integers(len(ids))] if ids else 0
        out.append((k, lab == k))
    return out


def point_prompts(masks, rng, max_fg=3, bg_prob=0.3):
    """Points [B, P, 2] (x, y pixel centres of the model input) and labels [B, P] (1 inside the
    object, 0 outside, PAD_LABEL padding)."""
    rows = []
    for m in masks:
        ys, xs = np.nonzero(m)
        pts, labs = [], []
        for j in rng.choice(len(xs), size=min(len(xs), rng.integers(1, max_fg + 1)),
                            replace=False):
            pts.append((xs[j], ys[j]))
            labs.append(1)
        if rng.random() < bg_prob:
            by, bx = np.nonzero(~m)
            if len(bx):
                j = rng.integers(len(bx))
                pts.append((bx[j], by[j]))
                labs.append(0)
        rows.append((pts, labs))
    p = max(len(r[0]) for r in rows)
    points = np.zeros((len(rows), p, 2), np.float32)
    labels = np.full((len(rows), p), PAD_LABEL, np.int64)
    for b, (pts, labs) in enumerate(rows):
        points[b, :len(pts)] = pts
        labels[b, :len(labs)] = labs
    return torch.from_numpy(points), torch.from_numpy(labels)


class MaskNet(nn.Module):
    """Mask head on point prompts: BCE + Dice, plus the IoU head regressed onto the IoU of
    its own thresholded mask (as SAM trains it)."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, emb, points, labels, target):
        logits, iou = self.head(emb, points, labels)
        loss = mask_loss(logits, target)
        with torch.no_grad():
            t = F.adaptive_avg_pool2d(target[:, None].float(), logits.shape[-2:])[:, 0] > 0.5
            p = logits > 0
            real = (p & t).sum((1, 2)).float() / (p | t).sum((1, 2)).clamp(min=1).float()
        return loss + F.mse_loss(iou, real), {"iou": float(real.mean())}


@torch.no_grad()
def heldout_iou(ctx, head, vision, held, count=64, seed=7):
    """Mean IoU (at the image's resolution) of the masks point prompts give on `count`
    held-out scenes, one random visible object each."""
    T = _t()
    cfg = ctx.cfg
    grid = (cfg.image_size // cfg.patch_size,) * 2
    rng = np.random.default_rng(seed)
    head.eval()
    ious = []
    for s in range(0, min(count, len(held)), 16):
        idx = list(range(s, min(s + 16, count, len(held))))
        feats = T.vision_features(vision, T.pixel_values(held.images[idx], ctx.device))
        masks = [m for _, m in object_masks(held.labels[idx], rng)]
        points, labels = point_prompts(masks, rng)
        logits, _ = head(image_embeddings(feats, grid), points.to(ctx.device),
                         labels.to(ctx.device))
        pred = F.interpolate(logits[:, None], size=masks[0].shape, mode="bilinear",
                             align_corners=False)[:, 0] > 0
        target = torch.from_numpy(np.stack(masks)).to(ctx.device)
        ious += ((pred & target).sum((1, 2)).float() /
                 (pred | target).sum((1, 2)).clamp(min=1).float()).tolist()
    return {"point_miou": float(np.mean(ious))}


def stage_masks(ctx):
    T = _t()
    cfg = ctx.cfg
    scenes = T.load_scenes(ctx, "train")
    vision = T.load_vision(ctx)
    grid = (cfg.image_size // cfg.patch_size,) * 2
    torch.manual_seed(cfg.seed + 13)
    head = MaskHead(new_sam(cfg.vision_hidden, cfg.image_size, cfg.patch_size, cfg.mask_layers,
                            cfg.mask_heads, cfg.mask_mlp))
    net = MaskNet(head).to(ctx.device)
    model = ctx.wrap(net)

    def step(s):
        idx = T.batch_indices(ctx, 13, s, len(scenes), cfg.masks_batch)
        rng = np.random.default_rng([cfg.seed, 13, s])
        with torch.no_grad():
            feats = T.vision_features(vision, T.pixel_values(scenes.images[idx], ctx.device))
        masks = [m for _, m in object_masks(scenes.labels[idx], rng)]
        points, labels = point_prompts(masks, rng)
        target = torch.from_numpy(np.stack(masks)).to(ctx.device)
        return model(image_embeddings(feats, grid), points.to(ctx.device),
                     labels.to(ctx.device), target)

    held = T.load_scenes(ctx, "eval")
    curve = T.LearningCurve(ctx, "masks", cfg.masks_steps, cfg.masks_probe_every, net,
                            lambda: heldout_iou(ctx, head, vision, held))
    losses = T.train_steps(ctx, "masks", {"head": head}, net, cfg.masks_steps, cfg.masks_lr,
                           step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": float(np.mean(losses[-50:])) if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        head.save_pretrained(ctx.path("masks", "mask_decoder"), torch.float32)
    ctx.mark_done("masks", result)
