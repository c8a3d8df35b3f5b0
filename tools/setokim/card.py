"""card.py — the model card (BUNDLE/MODEL_CARD.md) of a trained bundle, written by train.py's
`card` stage from the configuration, each stage's done.json (results and learning curves),
timings.json and the C engine's own measurement (work/engine-eval.json, `setok eval --json`,
saved by tools/train-default-model). Every number in the card is read from those files.
"""
import math
import os

import torch

from . import data as D

# what `setok eval` should reach (name in the engine's JSON -> (target, higher is better))
TARGETS = {
    "qa": (0.85, True), "qa_type": (0.70, True), "alignment_refined": (0.80, True),
    "referring": (0.60, True), "generation": (0.60, True), "edit": (0.60, True),
    "edit_kind": (0.40, True), "outside": (2.0, False), "probe_shape": (0.95, True),
    "probe_colour": (0.99, True), "probe_size": (0.95, True), "vae_psnr": (30.0, True),
}


def _t():
    from . import train  # train imports this module
    return train


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def component_params(folder):
    """Values stored in a component folder's safetensors files."""
    from safetensors import safe_open
    n = 0
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), "pt") as f:
                for k in f.keys():
                    n += math.prod(f.get_slice(k).get_shape())
    return n


def met(value, key):
    """" (missed)" when value misses TARGETS[key], else ""."""
    want, above = TARGETS[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return " (not measured)"
    return "" if (value >= want if above else value <= want) else " (missed)"


def target_text(key):
    want, above = TARGETS[key]
    return f"{'>=' if above else '<='} {want:g}"


def fmt(v, spec=".3f"):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


class Card:
    """Reads a work folder's results once; lines() assembles the card."""

    def __init__(self, ctx):
        T = _t()
        self.ctx, self.cfg = ctx, ctx.cfg
        self.done = {s: ctx.done(s) or {} for s in T.STAGES}
        path = ctx.path("timings.json")
        self.timings = T.read_json(path) if os.path.exists(path) else {}
        path = ctx.path("cpu-timings.json")
        self.cpu = T.read_json(path) if os.path.exists(path) else {}
        path = ctx.path("engine-eval.json")
        self.engine = T.read_json(path) if os.path.exists(path) else None

    def get(self, *keys):
        """A value of the engine's JSON (None when absent)."""
        node = self.engine
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        return node

    # -- sections

    def header(self):
        T, cfg, ctx = _t(), self.cfg, self.ctx
        from .bundle import SetokimModel
        model = SetokimModel.from_bundle(ctx.out)
        manifest = model.manifest
        self.output_side = "unet" in manifest["components"]
        sizes = {name: count_params(getattr(model, name))
                 for name in ("vision", "merger", "projector", "llm")}
        s0, export = self.done["stage0"], self.done["export"]
        grid = cfg.image_size // cfg.patch_size
        stem = (f"convolutional stem ({len(cfg.vision_stem.split(','))} x {cfg.stem_kernel}x"
                f"{cfg.stem_kernel} stride-2 convolutions, channels {cfg.vision_stem}, BatchNorm "
                "folded in) instead of the patch convolution, " if cfg.vision_stem else "")
        lines = [
            f"# {os.path.basename(os.path.abspath(ctx.out))} — SETOKIM model",
            "",
            "A tiny SETOKIM bundle (format v1) trained from scratch on SeTok Studio's synthetic "
            "world",
            "of coloured shapes: image -> CLIP-style ViT -> SeTok density-peak clustering + "
            "cluster",
            "merger -> projector -> LLaMA decoder that answers questions about the scene" +
            (";\nthe LLM also emits an image's visual tokens ([Img] <vis_0..> [/Img]) -> "
             "projector_out ->\nQ-Former mapper -> U-Net -> VAE (generation, editing), and a "
             "<seg> token whose state\nprompts a SAM-style mask decoder (referring "
             "segmentation)." if self.output_side else "."),
            f"All weights are {export.get('dtype', 'f16')} safetensors "
            f"({export.get('bytes', 0) / 2**20:.1f} MiB).",
            "",
            "| component | class | size | parameters |",
            "|---|---|---|---|",
            f"| vision | CLIPVisionModel{' + conv stem' if cfg.vision_stem else ''} | "
            f"{cfg.image_size} px, {stem}{cfg.patch_size} px per token ({grid * grid} tokens), "
            f"hidden {cfg.vision_hidden}, {cfg.vision_layers} layers, {cfg.vision_heads} heads | "
            f"{sizes['vision']:,} |",
            f"| setok | SetokMerger | DPC k={s0.get('cluster_k')}, threshold "
            f"{s0.get('cluster_threshold')}, max {cfg.max_clusters} clusters; {cfg.merger_intra} "
            f"intra + {cfg.merger_inter} inter blocks, {cfg.merger_heads} heads, output "
            f"{cfg.merger_output} | {sizes['merger']:,} |",
            f"| projector_in | SetokimProjector (mlp2x_gelu) | {cfg.merger_output} -> "
            f"{cfg.llm_hidden} | {sizes['projector']:,} |",
            f"| llm | LlamaForCausalLM | hidden {cfg.llm_hidden}, {cfg.llm_layers} layers, "
            f"{cfg.llm_heads} heads ({cfg.llm_kv_heads} KV heads, GQA), vocab "
            f"{model.tokenizer.get_vocab_size(with_added_tokens=True)} | {sizes['llm']:,} |",
            *self.output_side_rows(manifest),
        ]
        return lines

    def output_side_rows(self, manifest):
        T, cfg = _t(), self.cfg
        comps = manifest["components"]
        sizes = {name: component_params(os.path.join(self.ctx.out, rel))
                 for name, rel in comps.items()}
        latent = cfg.image_size // 2 ** (len(T.G.ints(cfg.vae_channels)) - 1)
        rows = {
            "projector_out": ("SetokimProjector (mlp2x_gelu)", f"{cfg.llm_hidden} -> "
                              f"{cfg.merger_output}, {cfg.visual_tokens} visual tokens"),
            "mapper": ("Blip2QFormerModel + query_tokens", f"{cfg.mapper_queries} queries, "
                       f"hidden {cfg.mapper_hidden}, {cfg.mapper_layers} layers, "
                       "cross-attention every layer"),
            "unet": ("UNet2DConditionModel", f"{latent} x {latent} x {cfg.vae_latent_channels} "
                     f"latents, channels {cfg.unet_channels}, cross-attention "
                     f"{cfg.mapper_hidden}"),
            "vae": ("AutoencoderKL", f"channels {cfg.vae_channels}, {cfg.vae_latent_channels} "
                    f"latent channels, {cfg.image_size // latent}x downscale"),
            "scheduler": ("DDIMScheduler", "scaled_linear betas, epsilon, leading spacing"),
            "mask_decoder": ("SamModel (prompt encoder + mask decoder)",
                             f"hidden {cfg.vision_hidden} on the ViT's "
                             f"{cfg.image_size // cfg.patch_size} x "
                             f"{cfg.image_size // cfg.patch_size} features, {cfg.mask_layers} "
                             "two-way layers"),
            "projector_seg": ("SetokimProjector (mlp2x_gelu)", f"{cfg.llm_hidden} -> "
                              f"{cfg.vision_hidden}, the <seg> state"),
        }
        return [f"| {name} | {cls} | {size} | {sizes[name]:,} |"
                for name, (cls, size) in rows.items() if name in comps]

    def data(self):
        cfg = self.cfg
        first = D.TRAIN_SEED_BASE + cfg.train_scenes
        fresh = (f"- Stage 0 renders a fresh batch every step instead: seeds {first} up "
                 f"({cfg.stage0_steps * cfg.stage0_batch} scenes in all), still below the "
                 "held-out range." if cfg.stage0_fresh else "")
        return [
            "## Data",
            "",
            f"- {cfg.train_scenes} training scenes of the world generator "
            f"(tools/setokim/world.py): seeds {D.TRAIN_SEED_BASE}.."
            f"{D.TRAIN_SEED_BASE + cfg.train_scenes - 1}, {cfg.image_size} x {cfg.image_size}, "
            f"{cfg.min_objects}-{cfg.max_objects} objects, with exact per-object labels and "
            "annotations.",
            *([fresh] if fresh else []),
            f"- Held out: {cfg.eval_scenes} scenes, seeds {D.EVAL_SEED_BASE}.."
            f"{D.EVAL_SEED_BASE + cfg.eval_scenes - 1} (never trained on).",
            "- Tokenizer: BPE (Metaspace, byte fallback) trained on all the world's text "
            "(captions, questions and answers in every phrasing below, referring expressions, "
            "generation prompts, edit instructions) and the chat turns.",
            f"- Chat data: each training scene's QA (colour, shape, size, count, exist, "
            f"relation) as shuffled conversations of up to {cfg.max_turns} turns; "
            f"{cfg.rephrase_prob:.0%} of the questions in another phrasing (\"what color is "
            "...\", \"how big is ...\", \"count the ...\", \"do you see ...\", ...), capitalised "
            f"half of the time; the caption as the answer to \"{D.CAPTION_QUESTION}\" or one "
            f"of {len(D.DESCRIBE_QUESTIONS) - 1} other phrasings (\"Describe the image.\", "
            f"\"What do you see?\", ...) in {cfg.caption_prob:.0%} of the conversations; in "
            f"{cfg.chat_prob:.0%} a greeting, a what-can-you-do question or a question outside "
            f"the world (answered \"{D.CHAT_ANSWERS['unknown']}\"); {cfg.imageless_prob:.0%} "
            "are such turns without an image.",
        ]

    def stage_rows(self):
        """(stage, what, steps x batch, metric after the stage) of the training table."""
        cfg, d = self.cfg, self.done

        def last(stage, *keys):
            probe = d[stage].get("probe") or []
            return probe[-1] if probe and all(k in probe[-1] for k in keys) else None

        p0, p1, p2 = last("stage0", "shape"), last("stage1", "shape"), last("stage2", "qa")
        pv, pm = last("vae", "psnr_heldout"), last("masks", "point_miou")
        ev = d["eval"]
        return [
            ("data", "render scenes", "-", ""),
            ("tokenizer", "BPE tokenizer", "-", ""),
            ("stage0", "ViT (conv stem) from scratch on fresh scenes: per-patch and per-object "
             "colour / shape / size heads, object-vs-background head, same-object affinity; "
             "clustering calibration", f"{cfg.stage0_steps} x {cfg.stage0_batch}",
             f"held-out object probe colour / shape / size {fmt(p0['colour'], '.3f')} / "
             f"{fmt(p0['shape'], '.3f')} / {fmt(p0['size'], '.3f')}; cluster alignment "
             f"{fmt(d['stage0'].get('heldout_alignment'))}" if p0 else ""),
            ("stage1", "merger: per-token attribute and position heads (understanding part of "
             "Stage I)", f"{cfg.stage1_steps} x {cfg.stage1_batch}",
             f"held-out token heads colour / shape / size {fmt(p1['colour'])} / "
             f"{fmt(p1['shape'])} / {fmt(p1['size'])}" if p1 else ""),
            ("stage2", "Stages II + III merged: projector + LLM on conversations, loss on "
             "answer tokens, vision side frozen", f"{cfg.stage2_steps} x {cfg.stage2_batch} "
             "conversations", f"held-out QA {fmt(p2['qa'])} ({cfg.qa_probe_scenes} scenes)"
             if p2 else ""),
            ("vae", f"AutoencoderKL on {cfg.vae_crop} px crops: L1 (object pixels weighted "
             f"{1 + cfg.vae_object_weight:g}x) + KL", f"{cfg.vae_steps} x {cfg.vae_batch}",
             f"held-out PSNR {fmt(d['vae'].get('psnr_heldout'), '.1f')} dB"
             if d["vae"].get("psnr_heldout") is not None else
             (f"held-out PSNR {fmt(pv['psnr_heldout'], '.1f')} dB" if pv else "")),
            ("decoder", "Stage I, generation half: Q-Former mapper + U-Net, epsilon loss, "
             f"conditioned on the scene's merger tokens (dropped {cfg.cond_dropout:.0%} for "
             "guidance)", f"{cfg.decoder_steps} x {cfg.decoder_batch}",
             f"engine: scenes decoded from their own tokens, objects found "
             f"{fmt(self.get('reconstruction', 'attribute_accuracy'))}"
             if self.get("reconstruction", "available") else ""),
            ("masks", "Stage I, mask half: mask decoder on point prompts, BCE + Dice",
             f"{cfg.masks_steps} x {cfg.masks_batch}",
             f"held-out point-prompt mIoU {fmt(pm['point_miou'])}" if pm else ""),
            ("stage3", "Stages II/III, output half: LLM + projectors on QA, generation prompts "
             "and edit instructions (MSE of the mapper's output from the visual tokens vs the "
             "target scene's), referring expressions (<seg> -> mask, BCE + Dice)",
             f"{cfg.stage3_steps} x {cfg.stage3_batch}",
             "engine: generation {} / edit {} / referring mIoU {}".format(
                 fmt(self.get("generation", "attribute_accuracy")),
                 fmt(self.get("edit", "success")), fmt(self.get("referring", "miou")))
             if self.engine else ""),
            ("export", "f16 bundle, reload check", "-", ""),
            ("eval", "held-out QA with SetokimModel.generate", "-",
             f"QA {fmt(ev.get('accuracy'))} ({ev.get('questions', 0)} questions)"
             if ev else ""),
        ]

    def training(self):
        T = _t()
        rows = self.stage_rows()
        lines = [
            "## Training",
            "",
            "Reproduce with one command (resumable; rerun it after an interruption):",
            "",
            "    tools/train-default-model",
            "",
            "which runs `python -m tools.setokim.train all --work /tmp/setokim-tiny-work "
            "--out data/models/setokim-tiny --threads 2 --device cpu` (tools/setokim/README.md)"
            ", then `setok eval --count 200` for the engine's measurement below.",
            "",
            "| stage | what | steps x batch | wall time (s) | CPU time (s) | measured after the "
            "stage |",
            "|---|---|---|---|---|---|",
        ]
        names = [r[0] for r in rows]
        for stage, what, steps, metric in rows:
            cpu = f"{self.cpu[stage]:.0f}" if stage in self.cpu else "n/a"
            lines.append(f"| {stage} | {what} | {steps} | {self.timings.get(stage, 0.0):.0f} | "
                         f"{cpu} | {metric} |")
        total = sum(v for k, v in self.timings.items() if k in names)
        cpu = sum(v for k, v in self.cpu.items() if k in names)
        lines += [
            f"| total | | | {total:.0f} ({total / 3600:.2f} h) | "
            f"{cpu:.0f} ({cpu / 3600:.2f} h) | |",
            "",
            f"Measured on the training machine: {os.cpu_count()} CPU cores shared with other "
            f"jobs, --threads {torch.get_num_threads()}, device {self.ctx.device.type}. Wall "
            "time grows with the other jobs' load; CPU time (all threads of the training "
            "process) does not, and divided by the thread count it is about the wall time "
            "the stage takes on an otherwise idle machine. Both include the learning-curve "
            "measurements below.",
            "",
            "The LLM is trained from scratch with every weight updated, so there is no LoRA "
            "adapter",
            "(LoRA only pays off when adapting a large pre-trained LLM); for the same reason "
            "Stages",
            "II (pre-training) and III (instruction tuning) are one stage here.",
        ]
        del T
        return lines

    def curves(self):
        """Learning curves of the stages that kept one (done.json's probe)."""
        spec = [
            ("stage0", "Stage 0, the ViT: a linear probe on each held-out object's mean patch "
             "feature (colour / shape / size; targets: colour >= 0.99, shape and size >= 0.95)",
             ("colour", "shape", "size")),
            ("stage1", "Stage 1, the merger: its attribute heads on the held-out tokens "
             "(objects only)", ("colour", "shape", "size")),
            ("stage2", f"Stage 2: greedy QA on the first {self.cfg.qa_probe_scenes} held-out "
             "scenes, overall and by type", None),
            ("vae", "VAE: PSNR (dB) of the reconstruction of 64 held-out scenes",
             ("psnr_heldout",)),
            ("decoder", "Decoder (Stage I): epsilon MSE on 64 held-out scenes at fixed noise, "
             "conditioned on their own tokens and unconditioned (the gap is what the tokens "
             "tell the U-Net)", ("eps_mse_heldout", "eps_mse_unconditioned")),
            ("masks", "Mask decoder: mean IoU of point-prompted masks on 64 held-out scenes",
             ("point_miou",)),
            ("stage3", "Stage 3 on 64 held-out scenes: MSE of the conditioning predicted for "
             "their generation prompts, mask loss (BCE + Dice) of a referring expression, "
             "answer cross-entropy of a conversation", None),
        ]
        lines = ["## Learning curves", ""]
        for stage, title, keys in spec:
            probe = self.done[stage].get("probe") or []
            if not probe:
                continue
            keys = keys or [k for k in probe[-1] if k not in ("step", "seconds")]
            lines += [f"{title}:", "", "| step | training seconds | " + " | ".join(keys) + " |",
                      "|---|---|" + "---|" * len(keys)]
            for p in probe:
                lines.append(f"| {p['step']} | {p['seconds']:.0f} | " +
                             " | ".join(fmt(p.get(k), ".1f" if k.startswith("psnr") else ".3f")
                                        for k in keys) + " |")
            lines.append("")
        return lines

    def python_results(self):
        ev = self.done["eval"]
        if not ev:
            return []
        lines = ["## Results of the PyTorch model (held-out scenes)", "",
                 f"QA accuracy (greedy answer == the one-word answer): "
                 f"**{ev.get('accuracy', 0):.1%}** on {ev.get('questions', 0)} questions of "
                 f"{ev.get('scenes', 0)} scenes.", "",
                 "| question type | questions | accuracy | most frequent answer (blind "
                 "baseline) |", "|---|---|---|---|"]
        for k, acc in ev.get("accuracy_by_type", {}).items():
            base = ev.get("majority_by_type", {}).get(k, 0.0)
            lines.append(f"| {k} | {ev['questions_by_type'][k]} | {acc:.1%} | {base:.1%} |")
        lines += [
            "",
            f"Cluster/object alignment (mean over objects of the best IoU with a cluster): "
            f"{ev.get('alignment', 0):.3f}; a perfect split into {self.cfg.patch_size}-pixel "
            f"patches scores {ev.get('alignment_patch_bound', 0):.3f} (small shapes cover few "
            "patches partially).",
            "",
            "Vision tokens per image (one token per cluster; a perfect split is objects + 1 "
            "for the background):",
            "",
            "| objects | scenes | mean tokens |",
            "|---|---|---|",
        ]
        for k, v in ev.get("tokens_by_objects", {}).items():
            lines.append(f"| {k} | {ev['scenes_by_objects'][k]} | {v:.2f} |")
        return lines

    def engine_results(self):
        if self.engine is None:
            return ["## Measured by the engine", "",
                    "Run `setok eval` for the engine's measurement (generation, editing and "
                    "referring segmentation included)."]
        get = self.get

        def row(name, value, key=None, spec=".3f"):
            target = f"{target_text(key)}{met(value, key)}" if key else ""
            return f"| {name} | {fmt(value, spec)} | {target} |"

        lines = ["## Measured by the engine", "",
                 f"`setok eval --count {self.engine.get('scenes')}` (the C engine, CPU) on "
                 "held-out seeds from 1000000:", "",
                 "| metric | value | target |", "|---|---|---|",
                 row(f"QA accuracy ({get('qa', 'questions')} questions)", get("qa", "accuracy"),
                     "qa")]
        for kind, v in (get("qa", "by_type") or {}).items():
            lines.append(row(f"QA: {kind} ({v['questions']})", v["accuracy"], "qa_type"))
        lines += [
            row("token alignment, patch-shaped masks", get("tokens", "alignment")),
            row("token alignment, edge-refined masks", get("tokens", "alignment_refined_masks"),
                "alignment_refined"),
            row("Spearman rho, tokens vs objects per image",
                get("tokens", "spearman_tokens_objects")),
            "| ablation (patch masks): density peaks / fixed k / soft | " +
            " / ".join(fmt(get("ablation_alignment", k)) for k in ("dpc", "fixed_k", "soft")) +
            " | |"]
        if get("referring", "available"):
            lines += [row(f"referring segmentation mIoU ({get('referring', 'expressions')} "
                          "expressions)", get("referring", "miou"), "referring"),
                      row("referring: share with IoU >= 0.5", get("referring", "hit_rate_iou50"))]
        if get("generation", "available"):
            lines += [
                row(f"generation attribute accuracy ({get('generation', 'named_objects')} "
                    f"named objects, {get('generation', 'steps')} steps, guidance "
                    f"{get('generation', 'guidance'):g})", get("generation", "attribute_accuracy"),
                    "generation"),
                f"| generation: colour found / shape found | "
                f"{fmt(get('generation', 'colour_found'))} / "
                f"{fmt(get('generation', 'shape_found'))} | |",
                row("generation: prompts fully satisfied", get("generation", "prompts_satisfied"))]
        if get("reconstruction", "available"):
            lines += [
                row("reconstruction: objects found in each scene decoded from its own tokens "
                    "(decoder alone, no LLM)", get("reconstruction", "attribute_accuracy")),
                f"| reconstruction: colour found / shape found | "
                f"{fmt(get('reconstruction', 'colour_found'))} / "
                f"{fmt(get('reconstruction', 'shape_found'))} | |",
                row("reconstruction: PSNR (dB) against the scene", get("reconstruction", "psnr_db"),
                    spec=".1f")]
        if get("edit", "available"):
            lines.append(row(f"edit success ({get('edit', 'edits')} edits)",
                             get("edit", "success"), "edit"))
            for kind, v in (get("edit", "by_kind") or {}).items():
                lines.append(row(f"edit success: {kind} ({v['edits']})", v["success"],
                                 "edit_kind"))
            lines.append(row("mean absolute change outside the edit region (0..255)",
                             get("edit", "mean_abs_diff_outside"), "outside"))
        for key, what in (("generation", "ms_per_image"), ("edit", "ms_per_edit"),
                          ("referring", "ms_per_expression")):
            if get(key, what) is not None:
                lines.append(row(f"{key}: {what.replace('_', ' ')}", get(key, what), spec=".0f"))
        charts = os.path.join(self.ctx.out, "eval")
        names = {"tokens-vs-objects.png": "tokens per image vs objects",
                 "qa-by-type.png": "QA accuracy by question type",
                 "ablation.png": "clustering ablation", "generation.png": "generation and editing"}
        lines.append("")
        lines += [f"![{what}](eval/{name})" for name, what in names.items()
                  if os.path.exists(os.path.join(charts, name))]
        return lines

    def limits(self):
        """What falls short, read from the numbers: each missed target with the learning curve
        or the measurement that says where more training or capacity would go."""
        get, d = self.get, self.done
        out = ["## Limits", "",
               "It knows only the synthetic world: flat shapes (circle, square, triangle, "
               "diamond, star, hexagon), ten colours, three sizes, on muted plain or textured "
               "backgrounds. Its answers to questions about a scene are one word, its "
               "descriptions the world's caption style; real photographs are out of "
               "distribution.", ""]

        def rise(stage, key):
            probe = [p for p in d[stage].get("probe") or [] if key in p]
            if len(probe) < 2:
                return None
            return probe[-2][key], probe[-1][key], probe[-1]["step"] - probe[-2]["step"]

        p0 = (d["stage0"].get("probe") or [{}])[-1]
        missed = [k for k in ("colour", "shape", "size") if k in p0 and
                  met(p0[k], f"probe_{k}")]
        if missed:
            r = rise("stage0", missed[0])
            out.append(f"- The ViT's held-out object probe misses its target on "
                       f"{', '.join(missed)}" + (f"; {missed[0]} rose from {r[0]:.3f} to "
                                                 f"{r[1]:.3f} over the last {r[2]} steps, so "
                                                 "more stage0_steps still buy accuracy."
                                                 if r else "."))
        if self.engine is None:
            return out + [""]
        qa = get("qa", "accuracy")
        weak = [k for k, v in (get("qa", "by_type") or {}).items()
                if met(v["accuracy"], "qa_type")]
        if met(qa, "qa") or weak:
            r = rise("stage2", "qa")
            out.append(f"- QA is {fmt(qa)} overall" +
                       (f"; below {TARGETS['qa_type'][0]:g}: {', '.join(weak)}" if weak else "") +
                       (f". The stage-2 curve rose from {r[0]:.3f} to {r[1]:.3f} over its last "
                        f"{r[2]} steps: more stage2_steps (and a larger LLM) are the next lever."
                        if r else "."))
        gen, rec = get("generation", "attribute_accuracy"), get("reconstruction",
                                                                "attribute_accuracy")
        if gen is not None and met(gen, "generation"):
            if rec is not None and rec - gen > 0.15:
                out.append(f"- Generation finds {fmt(gen)} of the named objects, while the "
                           f"decoder on each scene's own tokens finds {fmt(rec)}: the gap is "
                           "the LLM's visual-token prediction (stage3_steps, visual_tokens).")
            else:
                out.append(f"- Generation finds {fmt(gen)} of the named objects and the decoder "
                           f"on each scene's own tokens {fmt(rec)}: the decoder (U-Net and "
                           "mapper: decoder_steps, unet_channels; the VAE at "
                           f"{fmt(d['vae'].get('psnr_heldout'), '.1f')} dB) is what limits "
                           "both.")
        ed = get("edit", "success")
        if ed is not None and (met(ed, "edit") or any(
                met(v["success"], "edit_kind") for v in (get("edit", "by_kind") or {}).values())):
            kinds = ", ".join(f"{k} {v['success']:.2f}" for k, v in
                              (get("edit", "by_kind") or {}).items())
            out.append(f"- Edits succeed {fmt(ed)} of the time ({kinds}); an edit regenerates "
                       "the region from the visual tokens the LLM predicts for the edited "
                       "scene, so it is bounded by generation above.")
        ref = get("referring", "miou")
        point = ((d["masks"].get("probe") or [{}])[-1]).get("point_miou")
        if ref is not None and met(ref, "referring"):
            out.append(f"- Referring segmentation reaches mIoU {fmt(ref)}; the mask decoder on "
                       f"point prompts reaches {fmt(point)}, so " +
                       ("the gap is the LLM's <seg> state (stage3_seg, stage3_steps)."
                        if point is not None and point - ref > 0.15 else
                        "the mask decoder itself (masks_steps, mask_layers) limits it."))
        psnr = d["vae"].get("psnr_heldout")
        if psnr is not None and met(psnr, "vae_psnr"):
            r = rise("vae", "psnr_heldout")
            kinds = d["vae"].get("psnr_by_background") or {}
            out.append(f"- The VAE reconstructs held-out scenes at {psnr:.1f} dB" +
                       (f" (+{r[1] - r[0]:.1f} dB over its last {r[2]} steps)" if r else "") +
                       ("; by background: " + ", ".join(f"{k} {v:.1f} dB" for k, v in
                                                        sorted(kinds.items())) if kinds else "")
                       + ".")
        return out + [""]

    def lines(self):
        out = self.header() + [""] + self.data() + [""] + self.training() + [""]
        out += self.curves() + self.python_results() + [""] + self.engine_results() + [""]
        return out + self.limits()


def write_card(ctx):
    """MODEL_CARD.md in the bundle folder."""
    text = "\n".join(Card(ctx).lines())
    with open(os.path.join(ctx.out, "MODEL_CARD.md"), "w") as f:
        f.write(text)
    ctx.log(f"card: {os.path.join(ctx.out, 'MODEL_CARD.md')}")
