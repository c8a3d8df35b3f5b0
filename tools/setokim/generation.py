"""generation.py — SETOKIM's output side: the LLM's visual tokens -> projector_out -> Q-Former
-> U-Net -> VAE, as modules, bundle folders and the numerics reference of the engine's
generate and edit pipelines on a bundle.

The layout (bundle.py has the rest of the contract):
    projector_out/  SetokimProjector: LLM hidden states at the visual slots -> merger space
    mapper/         transformers Blip2QFormerModel + "query_tokens" [1, Q, hidden]: cross-attends
                    to visual tokens (the SeTok merger's when training stage I, projector_out's
                    when generating) and gives the U-Net its encoder_hidden_states [Q, hidden]
    unet/           diffusers UNet2DConditionModel (epsilon prediction)
    vae/            diffusers AutoencoderKL
    scheduler/      diffusers DDIMScheduler config (scheduler_config.json)
and setokim.json lists "visual_tokens": the K added tokens ("<vis_0>" ...) whose last hidden
states are the generated image's tokens.

The LLM emits an image as [Img] <vis_0> ... <vis_K-1> [/Img] (GILL-style fixed slots: the slot
tokens are fed, their final hidden states, after the model's norm, are read):
    generate: BOS "USER: {prompt} ASSISTANT:" [Img] slots [/Img] EOS
    edit:     BOS "USER: [Img]<image>[/Img]\\n{instruction} ASSISTANT:" [Img] slots [/Img] EOS
The engine builds exactly these ids: the prompt's text encoded, then the special ids appended.
Classifier-free guidance uses zeros as the unconditional encoder_hidden_states; training drops
the condition to zeros with probability cond_dropout.
"""
import os

import torch
import torch.nn as nn

from .bundle import (BundleError, SetokimProjector, component_path, format_prompt,
                     read_component, write_component)

VISUAL_TOKEN = "<vis_{}>"


def visual_token_names(k):
    return [VISUAL_TOKEN.format(i) for i in range(k)]


# ---- modules --------------------------------------------------------------------------------

def new_vae(image_size, channels=(16, 32, 64, 64), latent_channels=4, groups=None):
    """AutoencoderKL; groups: GroupNorm groups (None: min(16, smallest width)). Few channels
    per group strip each channel's mean, and with it the flat colours of a scene, from every
    normalised branch: a few groups of several channels learn colours much faster."""
    from diffusers import AutoencoderKL
    n = len(channels)
    groups = groups or min(16, min(channels))
    return AutoencoderKL(in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n,
                         block_out_channels=tuple(channels), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=groups,
                         sample_size=image_size)


def new_unet(latent_size, cross_dim, channels=(64, 128), head_dim=8, latent_channels=4,
             max_attention_size=16):
    """UNet2DConditionModel; attention (self and cross) at the levels of at most
    max_attention_size x max_attention_size latents but the lowest (the mid block has its
    own), so larger latents cost convolutions, not attention over every position."""
    from diffusers import UNet2DConditionModel
    n = len(channels)
    groups = min(16, min(channels))
    attend = [latent_size >> i <= max_attention_size and i < n - 1 for i in range(n)]
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
        block_out_channels=tuple(channels),
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attend),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D"
                             for a in reversed(attend)),
        layers_per_block=1, cross_attention_dim=cross_dim, attention_head_dim=head_dim,
        norm_num_groups=groups)


def train_noise_scheduler():
    """Stable Diffusion 1.5's training schedule (scaled_linear betas, epsilon)."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                         beta_start=0.00085, beta_end=0.012, prediction_type="epsilon")


def inference_scheduler():
    from diffusers import DDIMScheduler
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                         beta_start=0.00085, beta_end=0.012, prediction_type="epsilon",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                         timestep_spacing="leading")


class Mapper(nn.Module):
    """Blip2QFormerModel with its learnable query tokens: visual tokens [B, S, E] (+ mask
    [B, S]) -> U-Net conditioning [B, Q, hidden]."""

    def __init__(self, qformer, query_tokens):
        super().__init__()
        self.qformer = qformer
        self.query_tokens = nn.Parameter(query_tokens)

    @classmethod
    def new(cls, encoder_size, hidden=128, layers=2, heads=4, intermediate=256, queries=8):
        from transformers import Blip2QFormerConfig, Blip2QFormerModel
        cfg = Blip2QFormerConfig(hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=intermediate,
                                 encoder_hidden_size=encoder_size, cross_attention_frequency=1,
                                 attn_implementation="eager")
        return cls(Blip2QFormerModel(cfg), torch.randn(1, queries, hidden) * 0.02)

    def forward(self, tokens, mask=None):
        q = self.query_tokens.expand(tokens.shape[0], -1, -1)
        return self.qformer(query_embeds=q, encoder_hidden_states=tokens,
                            encoder_attention_mask=mask).last_hidden_state

    def save_pretrained(self, path, dtype=torch.float16):
        config = dict(self.qformer.config.to_dict(), architectures=["Blip2QFormerModel"])
        write_component(path, config, dict(self.qformer.state_dict(),
                                           query_tokens=self.query_tokens), dtype)

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32):
        from transformers import Blip2QFormerConfig, Blip2QFormerModel
        cfg, state = read_component(path, Blip2QFormerConfig)
        cfg._attn_implementation = "eager"
        if "query_tokens" not in state:
            raise BundleError(f"{os.path.join(path, 'model.safetensors')}: no query_tokens")
        m = cls(Blip2QFormerModel(cfg), state.pop("query_tokens").float())
        m.qformer.load_state_dict(state)
        return m.to(dtype)


def encode_latents(vae, pixels):
    """pixels in [-1, 1] [B, 3, H, W] -> scaled latent mean [B, C, h, w]."""
    return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


def decode_latents(vae, latents):
    """scaled latents -> uint8 images [B, H, W, 3] (diffusers' (x / 2 + 0.5) clamp, round)."""
    x = vae.decode(latents / vae.config.scaling_factor).sample
    x = (x / 2 + 0.5).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_unit_range(images, device):
    """uint8 [B, H, W, 3] -> [B, 3, H, W] in [-1, 1] (diffusers' VaeImageProcessor)."""
    import numpy as np
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).float() / 127.5 - 1.0
    return x.permute(0, 3, 1, 2).contiguous()


# ---- the LLM's visual slots -----------------------------------------------------------------

class VisualSlots:
    """Token ids of generation and edit requests (the layout in this module's docstring)."""

    def __init__(self, tokenizer, names, system_prompt=""):
        self.tok = tokenizer
        self.system_prompt = system_prompt
        self.ids = []
        for name in names:
            i = tokenizer.token_to_id(name)
            if i is None:
                raise BundleError(f"tokenizer.json: the visual token {name!r} is missing")
            self.ids.append(i)
        self.start = tokenizer.token_to_id("[Img]")
        self.end = tokenizer.token_to_id("[/Img]")
        self.eos = tokenizer.token_to_id("</s>")

    def request(self, text, image):
        """(ids, index of the first slot): the prompt then [Img] slots [/Img] EOS."""
        prompt = format_prompt(text, self.system_prompt, image=image, first=True)
        ids = self.tok.encode(prompt, add_special_tokens=True).ids
        first = len(ids) + 1
        return ids + [self.start] + self.ids + [self.end, self.eos], first

    def labels(self, ids, first):
        """Loss labels: the [Img] that opens the image and what follows the slots."""
        lab = [-100] * len(ids)
        lab[first - 1] = self.start
        k = len(self.ids)
        lab[first + k] = self.end
        lab[first + k + 1] = self.eos
        return lab


def add_visual_tokens(tokenizer, names):
    """A copy of tokenizer (tokenizers.Tokenizer) with names appended as special tokens."""
    from tokenizers import AddedToken, Tokenizer
    tk = Tokenizer.from_str(tokenizer.to_str())
    tk.add_special_tokens([AddedToken(n, single_word=False, lstrip=False, rstrip=False,
                                      normalized=False, special=True) for n in names])
    return tk


# ---- the assembled output side (engine reference) -------------------------------------------

class SetokimGenerator:
    """SetokimModel (understanding side) + projector_out + mapper + unet + vae + scheduler."""

    def __init__(self, model, projector_out, mapper, unet, vae, scheduler, visual_tokens):
        self.model = model
        self.projector_out = projector_out
        self.mapper = mapper
        self.unet = unet
        self.vae = vae
        self.scheduler = scheduler
        self.slots = VisualSlots(model.tokenizer, visual_tokens, model.system_prompt)

    @classmethod
    def from_bundle(cls, path, dtype=torch.float32, device="cpu"):
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from .bundle import SetokimModel, read_manifest
        manifest = read_manifest(path)
        names = manifest.get("visual_tokens")
        if not isinstance(names, list) or not names:
            raise BundleError(f"{os.path.join(path, 'setokim.json')}: no visual_tokens, so this "
                              "bundle cannot generate")
        model = SetokimModel.from_bundle(path, dtype, device)
        proj = SetokimProjector.from_pretrained(component_path(path, manifest, "projector_out"),
                                                dtype).to(device).eval()
        mapper = Mapper.from_pretrained(component_path(path, manifest, "mapper"),
                                        dtype).to(device).eval()
        unet = UNet2DConditionModel.from_pretrained(component_path(path, manifest, "unet"),
                                                    dtype=dtype).to(device).eval()
        vae = AutoencoderKL.from_pretrained(component_path(path, manifest, "vae"),
                                            dtype=dtype).to(device).eval()
        sched = DDIMScheduler.from_pretrained(component_path(path, manifest, "scheduler"))
        return cls(model, proj, mapper, unet, vae, sched, names)

    @torch.no_grad()
    def slot_states(self, text, image_tokens=None):
        """Final hidden states [K, hidden] of the slots for a generation request (image_tokens
        None) or an edit request on an image with those merger tokens."""
        m = self.model
        ids, first = self.slots.request(text, image_tokens is not None)
        ids = ids[:first + len(self.slots.ids)]  # the rest is never read
        embeds = m.embed_ids(ids, image_tokens)
        shift = 0 if image_tokens is None else image_tokens.shape[0] - 1
        h = m.llm.model(inputs_embeds=embeds[None]).last_hidden_state[0]
        return h[first + shift:first + shift + len(self.slots.ids)]

    @torch.no_grad()
    def condition(self, text, image_tokens=None):
        """U-Net encoder_hidden_states [1, Q, hidden] for a request."""
        h = self.slot_states(text, image_tokens)
        return self.mapper(self.projector_out(h)[None])

    @torch.no_grad()
    def sample(self, cond, steps=20, guidance=3.0, latents=None, generator=None):
        """The guided DDIM loop (diffusers' StableDiffusionPipeline's) from unit-noise latents
        [1, C, h, w]; returns the final latents."""
        unet, sched = self.unet, self.scheduler
        if latents is None:
            size = unet.config.sample_size
            latents = torch.randn(1, unet.config.in_channels, size, size, generator=generator)
        latents = latents.to(cond.device, cond.dtype) * sched.init_noise_sigma
        sched.set_timesteps(steps)
        uncond = torch.zeros_like(cond)
        for t in sched.timesteps:
            x = torch.cat([latents] * 2) if guidance > 1 else latents
            x = sched.scale_model_input(x, t)
            c = torch.cat([uncond, cond]) if guidance > 1 else cond
            eps = unet(x, t, encoder_hidden_states=c).sample
            if guidance > 1:
                u, e = eps.chunk(2)
                eps = u + guidance * (e - u)
            latents = sched.step(eps, t, latents).prev_sample
        return latents



# ---- bundle folders -------------------------------------------------------------------------

GENERATION_COMPONENTS = ("projector_out", "mapper", "unet", "vae", "scheduler")


def save_generation(path, projector_out, mapper, unet, vae, scheduler, visual_tokens,
                    dtype=torch.float16):
    """Adds the output side to the bundle folder `path` (written by SetokimModel.save_bundle,
    whose tokenizer already holds visual_tokens) and lists it in setokim.json."""
    import copy
    from .bundle import read_manifest, write_manifest
    m = read_manifest(path)
    m["components"] = dict(m["components"], **{n: n for n in GENERATION_COMPONENTS})
    m["visual_tokens"] = list(visual_tokens)
    write_manifest(path, m)
    proj = SetokimProjector(**{k: v for k, v in projector_out.config.items()
                               if k != "architectures"})
    proj.load_state_dict(projector_out.state_dict())
    proj.to(dtype).save_pretrained(os.path.join(path, "projector_out"))
    mapper.save_pretrained(os.path.join(path, "mapper"), dtype)
    for name, module in (("unet", unet), ("vae", vae)):
        copy.deepcopy(module).to("cpu", dtype).save_pretrained(os.path.join(path, name),
                                                              safe_serialization=True)
    scheduler.save_pretrained(os.path.join(path, "scheduler"))


def spread_weights(module, gen):
    """Random weights with some spread (initialisers leave norms at 1 / 0 and some layers at
    zero, which would hide mistakes in a comparison)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name.lower():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if "weight" in name
                                                                      else 0.0))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(torch.randn(p.shape, generator=gen) *
                        (0.1 if p.ndim == 1 else 1.0 / fan_in ** 0.5))


def grow_vocabulary(model, names, gen):
    """Adds the special tokens `names` to the SetokimModel's tokenizer and LLM (random rows)."""
    model.tokenizer = add_visual_tokens(model.tokenizer, names)
    model.llm.resize_token_embeddings(model.tokenizer.get_vocab_size(with_added_tokens=True),
                                      mean_resizing=False)
    with torch.no_grad():
        emb = model.llm.get_input_embeddings().weight
        emb[-len(names):] = torch.randn(len(names), emb.shape[1], generator=gen) * emb.std()


def random_generation(model, seed=0, k=4):
    """An output side with random weights for the tiny random SetokimModel `model`
    (bundle.random_model), its visual tokens added: the arguments of save_generation after
    the path."""
    gen = torch.Generator().manual_seed(seed + 7)
    names = visual_token_names(k)
    grow_vocabulary(model, names, gen)
    merger_out = model.projector.linear_1.in_features
    hidden = model.llm.config.hidden_size
    proj = SetokimProjector(hidden, merger_out)
    mapper = Mapper.new(merger_out, hidden=32, layers=2, heads=4, intermediate=48, queries=6)
    vae = new_vae(model.image_size, channels=(8, 16))
    unet = new_unet(model.image_size // 2, 32, channels=(16, 32), head_dim=8)
    for m in (proj, mapper, unet, vae):
        spread_weights(m, gen)
    vae.register_to_config(scaling_factor=0.5)
    return proj, mapper, unet, vae, inference_scheduler(), names
