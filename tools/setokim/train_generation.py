"""train_generation.py — the training stages of SETOKIM's output side (generation.py has the
modules and the token layout), run by train.py after the understanding stages:

    vae      AutoencoderKL on random crops of the training scenes (L1 + a little KL), then the
             latent scaling_factor (1 / std of the latent means, as Stable Diffusion's)
    decoder  stage I, generation half (paper Eq. 3): mapper (Q-Former) + U-Net with the
             epsilon-prediction loss, conditioned on each scene's own SeTok merger tokens, the
             condition dropped to zeros with probability cond_dropout (classifier-free guidance)
    stage3   stages II/III, output half: the LLM (from stage2, vocabulary grown by the visual
             slot tokens and <seg>) + projector_out learn to predict [Img], and to put at the
             slots states that the frozen mapper turns into the target scene's conditioning
             (MSE): generation prompts (target: the scene) and edit instructions (target: the
             world's exact edited scene); referring expressions -> <seg>, whose state through
             projector_seg prompts the mask decoder (from stage "masks", trained on with
             BCE + Dice); mixed with the QA conversations of stage2 so understanding is kept
"""
import os
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as D
from .bundle import SetokimProjector, format_prompt, load_tokenizer, save_tokenizer
from .generation import (Mapper, VisualSlots, add_visual_tokens, encode_latents, new_unet,
                         new_vae, to_unit_range, train_noise_scheduler, visual_token_names)
from .segmentation import (SEGMENT_TOKEN, MaskHead, image_embeddings, mask_loss,
                           segment_request_text)


def _t():
    from . import train  # the shared loop and caches; imported late (train imports this module)
    return train


def ints(text):
    """"16,32,64" -> (16, 32, 64): the channel lists of TrainConfig."""
    return tuple(int(v) for v in text.split(","))


def latent_size(cfg):
    return cfg.image_size // 2 ** (len(ints(cfg.vae_channels)) - 1)


# ---- vae ------------------------------------------------------------------------------------

class VaeNet(nn.Module):
    """AutoencoderKL: L1 reconstruction of a posterior sample, object pixels weighted
    (1 + object_weight; objects are a small part of a scene but all of what matters), plus
    kl_weight x KL per element."""

    def __init__(self, vae, kl_weight, object_weight):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.object_weight = object_weight

    def forward(self, x, objects, gen):
        post = self.vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(x)
        rec = self.vae.decode(z).sample
        w = 1.0 + self.object_weight * objects[:, None].to(x)
        l1 = ((rec - x).abs() * w).sum() / (w.sum() * x.shape[1])
        kl = post.kl().mean() / x[0].numel()
        return l1 + self.kl_weight * kl, {"l1": float(l1.detach())}


@torch.no_grad()
def vae_psnr(vae, images, device, batch=32):
    """PSNR (dB, pooled over the images, pixels in [-1, 1]) of the VAE's reconstruction from
    its latent means."""
    se, n = 0.0, 0
    for s in range(0, len(images), batch):
        x = to_unit_range(images[s:s + batch], device)
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        se += float(((rec - x) ** 2).sum())
        n += x.numel()
    return float(10 * np.log10(4.0 / (se / n)))


def stage_vae(ctx):
    T = _t()
    cfg = ctx.cfg
    scenes = T.load_scenes(ctx, "train")
    held = T.load_scenes(ctx, "eval")
    torch.manual_seed(cfg.seed + 10)
    vae = new_vae(cfg.image_size, ints(cfg.vae_channels), cfg.vae_latent_channels,
                  cfg.vae_norm_groups)
    net = VaeNet(vae, cfg.vae_kl, cfg.vae_object_weight).to(ctx.device)
    model = ctx.wrap(net)
    crop = min(cfg.vae_crop, cfg.image_size)

    def step(s):
        idx = T.batch_indices(ctx, 10, s, len(scenes), cfg.vae_batch)
        rng = np.random.default_rng([cfg.seed, 10, s])
        x = to_unit_range(scenes.images[idx], ctx.device)
        objects = torch.from_numpy(scenes.labels[idx] > 0).to(ctx.device)
        if crop < cfg.image_size:
            y0, x0 = (rng.integers(0, (cfg.image_size - crop) // 8 + 1, 2) * 8).tolist()
            x = x[:, :, y0:y0 + crop, x0:x0 + crop]
            objects = objects[:, y0:y0 + crop, x0:x0 + crop]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 10_000 + s)
        return model(x, objects, gen)

    curve = T.LearningCurve(ctx, "vae", cfg.vae_steps, cfg.vae_probe_every, net, lambda: {
        "psnr_heldout": vae_psnr(vae.eval(), held.images[:64], ctx.device)})
    losses = T.train_steps(ctx, "vae", {"vae": vae}, net, cfg.vae_steps, cfg.vae_lr, step,
                           after_step=curve)
    result = {}
    if ctx.main:
        result["probe"] = curve.finish()
        with torch.no_grad():
            n = min(256, len(scenes))
            mean = torch.cat([vae.encode(to_unit_range(scenes.images[s:s + 32], ctx.device))
                              .latent_dist.mean for s in range(0, n, 32)])
            scale = float(1.0 / mean.std())
        vae.register_to_config(scaling_factor=scale)
        vae.save_pretrained(ctx.path("vae", "vae"))
        result.update({"scaling_factor": scale,
                       "psnr_train": vae_psnr(vae, scenes.images[:n], ctx.device),
                       "psnr_heldout": vae_psnr(vae, held.images, ctx.device),
                       "psnr_by_background": {
                           kind: vae_psnr(vae, held.images[[
                               i for i, a in enumerate(held.annotations)
                               if a["background"]["kind"] == kind or
                               a["background"].get("pattern") == kind]], ctx.device)
                           for kind in sorted({a["background"].get("pattern", "plain")
                                               for a in held.annotations})},
                       "first_loss": losses[0] if losses else None,
                       "last_loss": float(np.mean(losses[-50:])) if losses else None})
        ctx.log(f"vae: scaling_factor {scale:.4f}, reconstruction PSNR "
                f"{result['psnr_train']:.1f} dB (training scenes), "
                f"{result['psnr_heldout']:.1f} dB (held out)")
    ctx.mark_done("vae", result)


def load_vae(ctx):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(ctx.path("vae", "vae"), dtype=torch.float32)
    return vae.to(ctx.device).eval().requires_grad_(False)


@torch.no_grad()
def latent_cache(ctx, which="train", batch=64):
    """Scaled latent means of every scene of `which` [N, C, h, w], cached."""
    path = ctx.path(f"latents-{which}.pt")
    if ctx.main and not os.path.exists(path):
        scenes = _t().load_scenes(ctx, which)
        vae = load_vae(ctx)
        out = [encode_latents(vae, to_unit_range(scenes.images[s:s + batch], ctx.device)).cpu()
               for s in range(0, len(scenes), batch)]
        torch.save(torch.cat(out), path + ".tmp")
        os.replace(path + ".tmp", path)
    ctx.barrier()
    return torch.load(path, weights_only=True)


def pad_tokens(tokens, device):
    """A list of [N_i, E] -> padded [B, max N, E] and the mask [B, max N] (1 = a token)."""
    n = max(t.shape[0] for t in tokens)
    x = torch.zeros(len(tokens), n, tokens[0].shape[1], device=device)
    mask = torch.zeros(len(tokens), n, dtype=torch.long, device=device)
    for b, t in enumerate(tokens):
        x[b, :t.shape[0]] = t.to(device)
        mask[b, :t.shape[0]] = 1
    return x, mask


# ---- decoder: stage I, generation half ------------------------------------------------------

class DecoderNet(nn.Module):
    """Mapper + U-Net, epsilon loss (paper Eq. 3) on latents conditioned on merger tokens."""

    def __init__(self, mapper, unet, noise, cond_dropout):
        super().__init__()
        self.mapper = mapper
        self.unet = unet
        self.noise = noise
        self.cond_dropout = cond_dropout

    def forward(self, latents, tokens, mask, gen, dropout=None):
        cond = self.mapper(tokens, mask)
        dropout = self.cond_dropout if dropout is None else dropout
        keep = (torch.rand(cond.shape[0], 1, 1, generator=gen) >= dropout)
        cond = cond * keep.to(cond)
        eps = torch.randn(latents.shape, generator=gen).to(latents)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (latents.shape[0],),
                          generator=gen).to(latents.device)
        noisy = self.noise.add_noise(latents, eps, t)
        pred = self.unet(noisy, t, encoder_hidden_states=cond).sample
        return F.mse_loss(pred, eps), {}


def stage_decoder(ctx):
    T = _t()
    cfg = ctx.cfg
    tokens = T.vision_token_cache(ctx, "train")
    latents = latent_cache(ctx)
    torch.manual_seed(cfg.seed + 11)
    mapper = Mapper.new(cfg.merger_output, cfg.mapper_hidden, cfg.mapper_layers,
                        cfg.mapper_heads, 2 * cfg.mapper_hidden, cfg.mapper_queries)
    unet = new_unet(latent_size(cfg), cfg.mapper_hidden, ints(cfg.unet_channels),
                    latent_channels=cfg.vae_latent_channels)
    net = DecoderNet(mapper, unet, train_noise_scheduler(), cfg.cond_dropout).to(ctx.device)
    model = ctx.wrap(net)

    def step(s):
        idx = T.batch_indices(ctx, 11, s, len(tokens), cfg.decoder_batch)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 11_000 + s)
        x, mask = pad_tokens([tokens[i] for i in idx], ctx.device)
        return model(latents[idx].to(ctx.device), x, mask, gen)

    held_tokens = T.vision_token_cache(ctx, "eval")[:64]
    held_latents = latent_cache(ctx, "eval")[:64]

    @torch.no_grad()
    def measure():
        """Epsilon MSE on held-out scenes at fixed noise and timesteps, conditioned and not:
        the gap is what the tokens tell the U-Net."""
        net.eval()
        out = {}
        for name, drop in (("eps_mse_heldout", 0.0), ("eps_mse_unconditioned", 1.0)):
            gen = torch.Generator().manual_seed(12345)
            x, mask = pad_tokens(held_tokens, ctx.device)
            out[name] = float(net(held_latents.to(ctx.device), x, mask, gen, drop)[0])
        return out

    curve = T.LearningCurve(ctx, "decoder", cfg.decoder_steps, cfg.decoder_probe_every, net,
                            measure)
    losses = T.train_steps(ctx, "decoder", {"mapper": mapper, "unet": unet}, net,
                           cfg.decoder_steps, cfg.decoder_lr, step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": float(np.mean(losses[-50:])) if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        mapper.save_pretrained(ctx.path("decoder", "mapper"), torch.float32)
        unet.save_pretrained(ctx.path("decoder", "unet"))
    ctx.mark_done("decoder", result)


def load_mapper(ctx):
    return Mapper.from_pretrained(ctx.path("decoder", "mapper")).to(ctx.device).eval() \
        .requires_grad_(False)


# ---- edit targets ---------------------------------------------------------------------------

@torch.no_grad()
def edit_target_cache(ctx, batch=64):
    """For each training scene, one of its edits (seeded choice) and the merger tokens of that
    edit's exact target scene: {"edit": [j], "tokens": [[N_i, E]]}, cached."""
    path = ctx.path("edits-train.pt")
    if ctx.main and not os.path.exists(path):
        T = _t()
        cfg = ctx.cfg
        scenes = T.load_scenes(ctx, "train")
        world = D.world_module()
        from .setok import SetokMerger
        vision = T.load_vision(ctx)
        merger = SetokMerger.from_pretrained(ctx.path("stage1", "setok")).to(ctx.device).eval()
        params = ctx.done("stage0")
        grid = (cfg.image_size // cfg.patch_size,) * 2
        rng = random.Random(f"{cfg.seed}-edits")
        chosen, tokens = [], []
        bar = T.Progress(len(scenes), "edit targets", enabled=not ctx.quiet)
        for s in range(0, len(scenes), batch):
            images = []
            for i in range(s, min(s + batch, len(scenes))):
                j = rng.randrange(len(scenes.annotations[i]["edits"]))
                src = world.scene(scenes.seeds[i], width=cfg.image_size, height=cfg.image_size,
                                  min_objects=cfg.min_objects, max_objects=cfg.max_objects)
                images.append(world.edit(src, j).image)
                chosen.append(j)
            feats = T.vision_features(vision, T.pixel_values(np.stack(images), ctx.device))
            labels, counts = T.cluster_batch(feats, grid, params, cfg.max_clusters)
            tok = T.merge_batched(merger, feats, labels, counts, grid).float().cpu()
            tokens += [t.clone() for t in torch.split(tok, counts)]
            bar.update(len(images))
        bar.close()
        torch.save({"edit": chosen, "tokens": tokens}, path + ".tmp")
        os.replace(path + ".tmp", path)
    ctx.barrier()
    return torch.load(path, weights_only=True)


# ---- stage3: the LLM's visual output --------------------------------------------------------

class OutputNet(nn.Module):
    """ChatNet (projector_in + LLM) + projector_out + projector_seg + mask head: cross-entropy
    on the labelled ids, the mapper's output from the slot states regressed onto the target's
    (MSE), and the mask the <seg> state prompts against the object's (BCE + Dice)."""

    def __init__(self, chat, projector_out, mapper, k, projector_seg, head):
        super().__init__()
        self.chat = chat
        self.projector_out = projector_out
        self.mapper = mapper  # frozen
        self.k = k
        self.projector_seg = projector_seg
        self.head = head

    def forward(self, ids, labels, tokens, pad_id, slots, targets, segs, weight):
        """slots[b]: index of the first slot in ids[b] (None: not an image request);
        targets[b]: the mapper output to reach [Q, hidden]; segs[b]: None, or (index of <seg>
        in ids[b], image embeddings [C, h, w], object mask [H, W])."""
        chat = self.chat
        x, mask, y = chat.embed(ids, labels, tokens, pad_id)
        h = chat.llm.model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        logits = chat.llm.lm_head(h)
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                             y[:, 1:].reshape(-1), ignore_index=-100)
        loss, logs = ce, {"ce": float(ce.detach())}

        def shift(b):
            return tokens[b].shape[0] - 1 if tokens[b] is not None else 0

        rows, want = [], []
        for b, first in enumerate(slots):
            if first is not None:
                rows.append(h[b, first + shift(b):first + shift(b) + self.k])
                want.append(targets[b])
        if rows:
            pred = self.mapper(self.projector_out(torch.stack(rows)))
            mse = F.mse_loss(pred, torch.stack(want))
            loss, logs["mse"] = loss + weight * mse, float(mse.detach())
        at = [b for b, sg in enumerate(segs) if sg is not None]
        if at:
            extra = self.projector_seg(torch.stack([h[b, segs[b][0] + shift(b)] for b in at]))
            emb = torch.stack([segs[b][1] for b in at])
            logits, _ = self.head(emb, None, None, extra[:, None])
            seg = mask_loss(logits, torch.stack([segs[b][2] for b in at]))
            loss, logs["mask"] = loss + seg, float(seg.detach())
        return loss, logs


def stage3(ctx):
    from transformers import LlamaForCausalLM
    T = _t()
    cfg = ctx.cfg
    scenes = T.load_scenes(ctx, "train")
    tokens = T.vision_token_cache(ctx, "train")
    edits = edit_target_cache(ctx)
    mapper = load_mapper(ctx)
    names = visual_token_names(cfg.visual_tokens)
    tokenizer = add_visual_tokens(load_tokenizer(ctx.path("tokenizer")), names + [SEGMENT_TOKEN])
    seg_id = tokenizer.token_to_id(SEGMENT_TOKEN)
    vision = T.load_vision(ctx)
    grid = (cfg.image_size // cfg.patch_size,) * 2
    head = MaskHead.from_pretrained(ctx.path("masks", "mask_decoder")).to(ctx.device)
    llm = LlamaForCausalLM.from_pretrained(ctx.path("stage2", "llm"), dtype=torch.float32)
    old = llm.get_input_embeddings().weight.shape[0]
    llm.resize_token_embeddings(tokenizer.get_vocab_size(with_added_tokens=True),
                                mean_resizing=True)
    if ctx.main:
        ctx.log(f"stage3: vocabulary {old} -> {llm.get_input_embeddings().weight.shape[0]}")
    llm.to(ctx.device)
    projector = SetokimProjector.from_pretrained(ctx.path("stage2", "projector_in")).to(ctx.device)
    torch.manual_seed(cfg.seed + 12)
    projector_out = SetokimProjector(cfg.llm_hidden, cfg.merger_output).to(ctx.device)
    projector_seg = SetokimProjector(cfg.llm_hidden, cfg.vision_hidden).to(ctx.device)
    conv = T.Conversations(tokenizer)
    slots = VisualSlots(tokenizer, names)
    chat = T.ChatNet(projector, llm, conv.image).to(ctx.device)
    net = OutputNet(chat, projector_out, mapper, cfg.visual_tokens, projector_seg,
                    head).to(ctx.device)
    model = ctx.wrap(net)
    pad = tokenizer.token_to_id("<pad>")
    with torch.no_grad():  # the conditioning every target image gives the U-Net
        def targets_of(token_list):
            out = []
            for s in range(0, len(token_list), 256):
                x, mask = pad_tokens(token_list[s:s + 256], ctx.device)
                out.append(mapper(x, mask))
            return torch.cat(out)
        scene_cond = targets_of(tokens)
        edit_cond = targets_of(edits["tokens"])

    def batch(scenes, tokens, scene_cond, idx, kinds, rng):
        """The forward arguments of OutputNet for scenes[idx], one request of each kind."""
        ids, labels, toks, firsts, targets, segs = [], [], [], [], [], []
        with torch.no_grad():
            at = [i for i, kind in zip(idx, kinds) if kind == "seg"]
            emb = image_embeddings(T.vision_features(vision, T.pixel_values(
                scenes.images[at], ctx.device)), grid) if at else None
        for i, kind in zip(idx, kinds):
            ann = scenes.annotations[i]
            seg = None
            if kind == "qa":
                seq, lab, tok = T.chat_sample(conv, ann, tokens[i], rng, cfg)
                first, target = None, None
            elif kind == "seg":
                ref = ann["referring"][rng.randrange(len(ann["referring"]))]
                text = format_prompt(segment_request_text(ref["text"]), image=True)
                seq = tokenizer.encode(text, add_special_tokens=True).ids + [seg_id, slots.eos]
                lab = [-100] * (len(seq) - 2) + [seg_id, slots.eos]
                mask = torch.from_numpy(scenes.labels[i] == ref["object"]).to(ctx.device)
                seg = (len(seq) - 2, emb[at.index(i)], mask)
                first, target, tok = None, None, tokens[i]
            elif kind == "gen":
                seq, first = slots.request(ann["generation_prompt"], image=False)
                lab, target, tok = slots.labels(seq, first), scene_cond[i], None
            else:
                instruction = ann["edits"][edits["edit"][i]]["instruction"]
                seq, first = slots.request(instruction, image=True)
                lab, target, tok = slots.labels(seq, first), edit_cond[i], tokens[i]
            ids.append(seq)
            labels.append(lab)
            toks.append(tok.to(ctx.device) if tok is not None else None)
            firsts.append(first)
            targets.append(target)
            segs.append(seg)
        return ids, labels, toks, pad, firsts, targets, segs, cfg.regression_weight

    def step(s):
        idx = T.batch_indices(ctx, 12, s, len(scenes), cfg.stage3_batch)
        rng = random.Random(f"{cfg.seed}-12-{s}")
        kinds = []
        for _ in idx:
            r = rng.random()
            kinds.append("qa" if r < cfg.stage3_qa else
                         "seg" if r < cfg.stage3_qa + cfg.stage3_seg else
                         "gen" if r < cfg.stage3_qa + cfg.stage3_seg +
                         (1 - cfg.stage3_qa - cfg.stage3_seg) / 2 else "edit")
        return model(*batch(scenes, tokens, scene_cond, idx, kinds, rng))

    held = T.load_scenes(ctx, "eval")
    held_tokens = T.vision_token_cache(ctx, "eval")
    with torch.no_grad():
        held_cond = targets_of(held_tokens[:64])

    @torch.no_grad()
    def measure():
        """On 64 held-out scenes: the MSE of the conditioning predicted for their generation
        prompts, the mask loss (BCE + Dice) of one referring expression each, and the
        answer cross-entropy of a conversation each."""
        net.eval()
        out = {}
        for kind, key in (("gen", "mse"), ("seg", "mask"), ("qa", "ce")):
            idx = list(range(min(64, len(held))))
            rng = random.Random(f"{cfg.seed}-12-heldout")
            out[f"{kind}_{key}_heldout"] = float(
                net(*batch(held, held_tokens, held_cond, idx, [kind] * len(idx), rng))[1][key])
        return out

    curve = T.LearningCurve(ctx, "stage3", cfg.stage3_steps, cfg.stage3_probe_every, net,
                            measure)
    losses = T.train_steps(ctx, "stage3", {"projector": projector, "llm": llm,
                                           "projector_out": projector_out,
                                           "projector_seg": projector_seg, "head": head}, net,
                           cfg.stage3_steps, cfg.stage3_lr, step, after_step=curve)
    result = {"first_loss": losses[0] if losses else None,
              "last_loss": float(np.mean(losses[-50:])) if losses else None}
    if ctx.main:
        result["probe"] = curve.finish()
        projector.save_pretrained(ctx.path("stage3", "projector_in"))
        projector_out.save_pretrained(ctx.path("stage3", "projector_out"))
        projector_seg.save_pretrained(ctx.path("stage3", "projector_seg"))
        head.save_pretrained(ctx.path("stage3", "mask_decoder"), torch.float32)
        llm.save_pretrained(ctx.path("stage3", "llm"))
        save_tokenizer(tokenizer, ctx.path("stage3", "tokenizer"), cfg.max_positions)
    ctx.mark_done("stage3", result)
