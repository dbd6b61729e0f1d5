"""CLIP image encoder: `CLIPVisionModelWithProjection` (transformers, PyTorch) and its own image processor.

The feature of a picture is CLIP's projected image embedding (512 numbers for ViT-B/32), the vector
ClipCap conditions GPT-2 on. `full` loads ``openai/clip-vit-base-patch32`` with `from_pretrained` (hub
cache, or the hub itself); `smoke` and `sample` build a small seeded random-init vision tower from
`SMALL_CLIP` through the same class, so no download is needed. Pixels go through CLIP's image processor
(resize the short side, centre crop, CLIP's mean and std): the PIL implementation, which is what
`CLIPImageProcessor` falls back to without torchvision, so the same preprocessing runs everywhere.

Saved as ``clip/`` (`save_pretrained` of model and processor) next to ``encoder.json``; loading needs no
hub and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import artifacts
from helpers.caption.features import EncoderConfig, ImageEncoder

#: The pretrained CLIP of the full preset (ClipCap's encoder: ViT-B/32, 512-dimensional embedding).
CLIP_HUB_ID = "openai/clip-vit-base-patch32"

#: Random-init CLIP vision tower of the smoke and sample presets (CLIPVisionConfig kwargs; image_size is
#: the preset's input_size, 64). One patch covers the whole 64x64 picture. Why: at random init the
#: position embeddings (std 0.02) are ~25x smaller than a patch's content projection, so a random ViT is a
#: bag of patches and its CLS token, attending about uniformly, averages away where things are. Linear
#: probe on the projected embedding, smoke world (480 train / 120 test pictures; colour of the first
#: object / of the second / layout: single, side by side, stacked): 16x16 patches 0.62 / 0.47 / 0.56,
#: 32x32 0.47 / 0.42 / 0.72, one 64x64 patch (this config) 0.89 / 0.78 / 0.64 (an MLP probe like the
#: captioner's mapper: 0.89 / 0.82 / 0.74). Random-init ResNet50 at 64: see helpers.caption.features.
SMALL_CLIP = {
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "patch_size": 64,
    "projection_dim": 512,
}


class ClipEncoder(ImageEncoder):
    """uint8 RGB images of any size -> (N, D) float32 projected CLIP image embeddings."""

    def __init__(self, cfg: EncoderConfig, model: Any, processor: Any):
        self.cfg, self.model, self.processor = cfg, model.eval(), processor
        self.device = next(model.parameters()).device

    @classmethod
    def build(cls, cfg: EncoderConfig) -> ClipEncoder:
        """Pretrained (`cfg.weights`, a hub id) or a seeded random init from `cfg.vision` at `input_size`."""
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

        if cfg.weights:
            model = CLIPVisionModelWithProjection.from_pretrained(cfg.weights)
            processor = CLIPImageProcessorPil.from_pretrained(cfg.weights)
        else:
            torch.manual_seed(cfg.seed)
            config = CLIPVisionConfig(**{**cfg.vision, "image_size": cfg.input_size})
            model = CLIPVisionModelWithProjection(config)
            side = cfg.input_size
            processor = CLIPImageProcessorPil(
                size={"shortest_edge": side}, crop_size={"height": side, "width": side}
            )
        return cls(cfg, model.to(_device()), processor)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def encode(
        self, images: Sequence[np.ndarray], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embeddings of each image, in order; images may differ in size."""
        for img in images:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"expected uint8 (H, W, 3) RGB images, got {img.dtype} {img.shape}")
        out = [
            self._batch(images[i : i + batch_size])
            for i in tqdm(
                range(0, len(images), batch_size), desc="features", disable=not progress, leave=False
            )
        ]
        return np.concatenate(out) if out else np.zeros((0, self.feature_dim), np.float32)

    @torch.no_grad()
    def _batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        embeds = self.model(pixel_values=pixels.to(self.device)).image_embeds
        return embeds.float().cpu().numpy()

    def save(self, folder: str | Path) -> Path:
        """``clip/`` (weights, config, processor) and ``encoder.json`` (the EncoderConfig)."""
        folder = Path(folder)
        self.model.save_pretrained(folder / "clip")
        self.processor.save_pretrained(folder / "clip")
        artifacts.write_json(folder / "encoder.json", dataclasses.asdict(self.cfg))
        return folder

    @classmethod
    def load(cls, cfg: EncoderConfig, folder: str | Path) -> ClipEncoder:
        """Inverse of `save` (safetensors weights: no pickle, no hub)."""
        from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

        path = Path(folder) / "clip"
        model = CLIPVisionModelWithProjection.from_pretrained(path)
        return cls(cfg, model.to(_device()), CLIPImageProcessorPil.from_pretrained(path))


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
