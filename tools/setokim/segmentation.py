"""segmentation.py — SETOKIM's mask side: a SAM prompt encoder + two-way-transformer mask
decoder (transformers SamModel names) on the vision tower's patch features, prompted by points
or, for referring segmentation, by the LLM's hidden state at an emitted <seg> token.

The layout (bundle.py has the rest of the contract):
    mask_decoder/   transformers SamModel config + weights (prompt_encoder.*, mask_decoder.*,
                    shared_image_embedding.*; the SAM image encoder is not used, not saved).
                    Its hidden_size is the vision tower's: the image embeddings are the tower's
                    last hidden state (CLS dropped, before post_layernorm) as [1, C, gh, gw];
                    points are pixels of the image_size x image_size model input.
    projector_seg/  SetokimProjector: the LLM's final hidden state at <seg> -> one extra sparse
                    prompt embedding (SamMaskDecoder sees it after the point embeddings)
and setokim.json names "segment_token": "<seg>". A referring request is
    BOS "USER: [Img]<image>[/Img]\\nsegment {expression} ASSISTANT:" <seg> EOS
and the mask is mask 0 of SamMaskDecoder (multimask_output False), logits > 0 after bilinear
upsampling of the [4 gh, 4 gw] low-resolution logits to the model input.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bundle import (BundleError, SetokimProjector, component_path, format_prompt,
                     read_component, write_component)

SEGMENT_TOKEN = "<seg>"


def segment_request_text(expression):
    return f"segment {expression}"


def new_sam(hidden, image_size, patch, layers=2, heads=4, mlp=256):
    """A SamModel whose prompt encoder and mask decoder work on hidden-wide patch features of a
    (image_size / patch)^2 grid; its vision encoder is a minimal placeholder that is never run
    nor saved."""
    from transformers import SamConfig, SamModel
    cfg = SamConfig(
        vision_config=dict(hidden_size=16, output_channels=hidden, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image_size, patch_size=patch,
                           num_pos_feats=hidden // 2, global_attn_indexes=[0], window_size=2,
                           mlp_dim=32),
        prompt_encoder_config=dict(hidden_size=hidden, image_size=image_size, patch_size=patch,
                                   mask_input_channels=16),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=mlp, num_hidden_layers=layers,
                                 num_attention_heads=heads, num_multimask_outputs=3,
                                 iou_head_depth=3, iou_head_hidden_dim=hidden))
    return SamModel(cfg)


class MaskHead(nn.Module):
    """SamPromptEncoder + SamMaskDecoder as the engine runs them (mask_decoder.h)."""

    def __init__(self, sam):
        super().__init__()
        self.sam = sam

    def forward(self, embeddings, points=None, labels=None, extra=None):
        """embeddings [B, C, h, w]; points [B, P, 2] (pixels of the model input) with labels
        [B, P]; extra [B, E, C] -> mask logits [B, 4h, 4w] and predicted IoU [B]."""
        b = embeddings.shape[0]
        sparse, dense = self.sam.prompt_encoder(
            input_points=None if points is None else points[:, None],
            input_labels=None if labels is None else labels[:, None],
            input_boxes=None, input_masks=None)
        if extra is not None:
            sparse = extra[:, None] if sparse is None else torch.cat([sparse, extra[:, None]], 2)
        dense = dense.expand(b, -1, -1, -1)
        pe = self.sam.get_image_wide_positional_embeddings().repeat(b, 1, 1, 1)
        masks, iou = self.sam.mask_decoder(image_embeddings=embeddings,
                                           image_positional_embeddings=pe,
                                           sparse_prompt_embeddings=sparse,
                                           dense_prompt_embeddings=dense,
                                           multimask_output=False)[:2]
        return masks[:, 0, 0], iou[:, 0, 0]

    def save_pretrained(self, path, dtype=torch.float16):
        """config.json (SamConfig) + model.safetensors without the unused vision encoder."""
        config = dict(self.sam.config.to_dict(), architectures=["SamModel"])
        write_component(path, config, {k: v for k, v in self.sam.state_dict().items()
                                       if not k.startswith("vision_encoder.")}, dtype)

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32):
        from transformers import SamConfig, SamModel
        cfg, state = read_component(path, SamConfig)
        sam = SamModel(cfg)
        missing, _ = sam.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("vision_encoder.")]
        if missing:
            raise BundleError(f"{os.path.join(path, 'model.safetensors')}: missing {missing[0]}")
        return cls(sam).to(dtype)


def image_embeddings(features, grid):
    """Patch features [B, N, C] (CLS dropped) -> [B, C, gh, gw]."""
    b, n, c = features.shape
    return features.transpose(1, 2).reshape(b, c, grid[0], grid[1])


def mask_loss(logits, target):
    """BCE + Dice (paper Eq. 4's mask terms) of low-resolution logits [B, h, w] against
    binary targets [B, H, W] (resized to the logits' size by area averaging)."""
    t = F.adaptive_avg_pool2d(target[:, None].float(), logits.shape[-2:])[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits, t)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * t).sum((1, 2)) + 1) / (p.sum((1, 2)) + t.sum((1, 2)) + 1)
    return bce + dice.mean()


def upsample_mask(logits, size):
    """Low-resolution logits [B, h, w] -> [B, size, size] bilinear (align_corners False)."""
    return F.interpolate(logits[:, None], size=(size, size), mode="bilinear",
                         align_corners=False)[:, 0]


class Segmenter:
    """The bundle's referring and point segmentation (engine reference)."""

    def __init__(self, model, head, projector_seg, segment_token):
        self.model = model
        self.head = head
        self.projector_seg = projector_seg
        self.seg_id = model.tokenizer.token_to_id(segment_token)
        if self.seg_id is None:
            raise BundleError(f"tokenizer.json: the segment token {segment_token!r} is missing")

    @classmethod
    def from_bundle(cls, path, dtype=torch.float32, device="cpu"):
        from .bundle import SetokimModel, read_manifest
        manifest = read_manifest(path)
        model = SetokimModel.from_bundle(path, dtype, device)
        head = MaskHead.from_pretrained(component_path(path, manifest, "mask_decoder"),
                                        dtype).to(device).eval()
        proj = SetokimProjector.from_pretrained(component_path(path, manifest, "projector_seg"),
                                                dtype).to(device).eval()
        return cls(model, head, proj, manifest.get("segment_token", SEGMENT_TOKEN))

    def request_ids(self, expression, image=True):
        m = self.model
        text = format_prompt(segment_request_text(expression), m.system_prompt, image=image)
        return m.tokenizer.encode(text, add_special_tokens=True).ids + [self.seg_id]

    @torch.no_grad()
    def embeddings(self, pixel_values):
        m = self.model
        return image_embeddings(m.vision_features(pixel_values), m.grid)

    @torch.no_grad()
    def seg_embedding(self, expression, tokens):
        """projector_seg(LLM final hidden state at <seg>) [1, C] for the image's merger tokens."""
        m = self.model
        embeds = m.embed_ids(self.request_ids(expression), tokens)
        h = m.llm.model(inputs_embeds=embeds[None]).last_hidden_state[0, -1]
        return self.projector_seg(h)[None]

    @torch.no_grad()
    def segment(self, pixel_values, expression=None, points=None, labels=None):
        """Low-resolution mask logits [4gh, 4gw] and IoU score for a referring expression
        and/or points [P, 2] with labels [P]."""
        emb = self.embeddings(pixel_values)
        extra = None
        if expression is not None:
            tokens = self.model.vision_tokens(pixel_values)[0]
            extra = self.seg_embedding(expression, tokens)[None]
        pts = None if points is None else torch.as_tensor(points, dtype=emb.dtype)[None]
        lab = None if labels is None else torch.as_tensor(labels, dtype=torch.long)[None]
        logits, iou = self.head(emb, pts, lab, extra)
        return logits[0], float(iou[0])


def save_segmentation(path, head, projector_seg, segment_token=SEGMENT_TOKEN,
                      dtype=torch.float16):
    """Adds mask_decoder/ and projector_seg/ to the bundle folder `path` (whose tokenizer
    already holds segment_token) and lists them in setokim.json."""
    from .bundle import read_manifest, write_manifest
    m = read_manifest(path)
    m["components"] = dict(m["components"], mask_decoder="mask_decoder",
                           projector_seg="projector_seg")
    m["segment_token"] = segment_token
    write_manifest(path, m)
    head.save_pretrained(os.path.join(path, "mask_decoder"), dtype)
    proj = SetokimProjector(**{k: v for k, v in projector_seg.config.items()
                               if k != "architectures"})
    proj.load_state_dict(projector_seg.state_dict())
    proj.to(dtype).save_pretrained(os.path.join(path, "projector_seg"))


def random_segmentation(model, seed=0):
    """A mask decoder and projector_seg with random weights for the tiny random SetokimModel
    `model`, its segment token added: the arguments of save_segmentation after the path."""
    from .generation import grow_vocabulary, spread_weights
    gen = torch.Generator().manual_seed(seed + 11)
    grow_vocabulary(model, [SEGMENT_TOKEN], gen)
    vc = model.vision.config
    head = MaskHead(new_sam(vc.hidden_size, vc.image_size, vc.patch_size, layers=2, heads=2,
                            mlp=48))
    proj = SetokimProjector(model.llm.config.hidden_size, vc.hidden_size)
    spread_weights(head, gen)
    spread_weights(proj, gen)
    with torch.no_grad():  # SAM's checkpoints have N(0, 1) Fourier features, tied in SamModel
        pe = torch.randn(head.sam.shared_image_embedding.positional_embedding.shape,
                         generator=gen)
        head.sam.shared_image_embedding.positional_embedding.copy_(pe)
        head.sam.prompt_encoder.shared_embedding.positional_embedding.copy_(pe)
    return head, proj, SEGMENT_TOKEN
