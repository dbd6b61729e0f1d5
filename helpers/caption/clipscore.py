"""CLIPScore and RefCLIPScore (Hessel et al., EMNLP 2021), computed here on the run's CLIP.

As the official script (jmhessel/clipscore, clipscore.py) computes them: every caption, candidate or
reference, is embedded as ``"A photo depicts " + caption``; embeddings are L2-normalised;
CLIP-S = 2.5 * max(cos(candidate, image), 0) per image; RefCLIP-S = 2 * s * r / (s + r) with s that
weighted CLIP-S (the 2.5 applies inside the harmonic mean) and r = max(max over references of
cos(candidate, reference), 0), the paper's clipping; 0 where s + r = 0. Corpus values are means.

torchmetrics 1.9.0's `CLIPScore` is not used: it crashes with transformers 5.24 and scores 100 * cos
without the prompt. `full`: openai's ViT-B/32 text tower from the same checkpoint as the encoder.
`smoke`/`sample`: a seeded random text tower and a character-level CLIP tokenizer (CLIP's BPE merges
cannot be fetched offline): the code path only, random weights, the numbers mean nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.caption.clip import CLIP_HUB_ID, ClipEncoder

PROMPT = "A photo depicts "
WEIGHT = 2.5  # the paper's w: rescales CLIP-S towards [0, 1]
#: Random text tower of smoke/sample (CLIPTextConfig kwargs); projection_dim follows the vision tower.
SMALL_CLIP_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 128,  # characters, not BPE tokens: room for prompt + caption
}


def char_clip_tokenizer() -> Any:
    """CLIPTokenizer with CLIP's 512 byte symbols (plain and end-of-word) and no merges: offline."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)} | {s + "</w>": i + 256 for i, s in enumerate(symbols)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    return CLIPTokenizer(vocab=vocab, merges=[])


class ClipScorer:
    """CLIP's text tower and tokenizer beside a `ClipEncoder` (its image tower)."""

    def __init__(self, images: ClipEncoder, text_model: Any, tokenizer: Any, pretrained: bool):
        self.images, self.text_model, self.tokenizer = images, text_model.eval(), tokenizer
        self.pretrained = pretrained
        self.max_length = int(text_model.config.max_position_embeddings)

    @classmethod
    def for_encoder(cls, images: ClipEncoder) -> ClipScorer:
        """The text tower matching `images`: its checkpoint's (pretrained) or a seeded random one."""
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

        if images.cfg.weights:
            text = _load_text_tower(CLIPTextModelWithProjection, images.cfg.weights)
            return cls(
                images, text.to(images.device), CLIPTokenizer.from_pretrained(images.cfg.weights), True
            )
        tokenizer = char_clip_tokenizer()
        torch.manual_seed(images.cfg.seed)
        config = CLIPTextConfig(
            **SMALL_CLIP_TEXT,
            vocab_size=len(tokenizer),
            projection_dim=images.feature_dim,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return cls(images, CLIPTextModelWithProjection(config).to(images.device), tokenizer, False)

    @classmethod
    def for_run(cls, encoder: Any, pretrained: bool, input_size: int, seed: int = 0) -> ClipScorer:
        """The run's encoder when it is a CLIP, else a CLIP of its own (openai's, or random like smoke's)."""
        if isinstance(encoder, ClipEncoder):
            return cls.for_encoder(encoder)
        from helpers.caption.features import EncoderConfig

        return cls.for_encoder(
            ClipEncoder.build(EncoderConfig.from_spec("clip", None, pretrained, input_size, seed))
        )

    def describe(self) -> str:
        """What the scores are, for the metrics file and the notebook's output."""
        if self.pretrained:
            return f"CLIP-S/RefCLIP-S (Hessel et al. 2021) with {self.images.cfg.weights}"
        return "CLIP-S/RefCLIP-S code path only: random-init CLIP, character tokenizer; numbers mean nothing"

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """(N, D) L2-normalised embeddings of PROMPT + each text (truncated to CLIP's context)."""
        out = []
        for i in tqdm(range(0, len(texts), batch_size), desc="CLIP text", disable=not progress, leave=False):
            batch = [PROMPT + t for t in texts[i : i + batch_size]]
            enc = self.tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            out.append(self.text_model(**enc.to(self.images.device)).text_embeds.float().cpu().numpy())
        return normalise(np.concatenate(out) if out else np.zeros((0, self.images.feature_dim), np.float32))

    def embed_images(self, images: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        """(N, D) L2-normalised CLIP image embeddings of uint8 RGB pictures."""
        return normalise(self.images.encode(images, progress=progress))


def image_embeddings(scorer: ClipScorer, cache: Any, names: list[str], image_path: Any) -> np.ndarray:
    """Rows of `names`: the feature cache's (float16) when its encoder is the scorer's, else encoded."""
    if cache is not None and cache.encoder is scorer.images:
        return cache.features[[cache.rows[n] for n in names]].astype(np.float32)
    from helpers.data import decode_image

    return scorer.embed_images([decode_image(image_path(n)) for n in names], progress=True)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row is refused: it has no direction."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding is all zeros (blind features?): use the real image embeddings")
    return x / norms


def clip_scores(
    scorer: ClipScorer,
    image_embeddings: np.ndarray,
    candidates: dict[str, str],
    references: dict[str, list[str]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """CLIP-S (and RefCLIP-S with references) of one caption per image; rows of `image_embeddings` follow
    `candidates`' order. Returns corpus means "CLIP-S", "RefCLIP-S" (None without references) and
    "per_image": {name: {"CLIP-S", "RefCLIP-S"}}; "scorer" says what computed them."""
    names = list(candidates)
    if len(image_embeddings) != len(names):
        raise ValueError(f"{len(image_embeddings)} image embeddings for {len(names)} candidates")
    cand = scorer.embed_texts([candidates[n] for n in names], progress=progress)
    refs = None
    if references is not None:
        missing = [n for n in names if not references.get(n)]
        if missing:
            raise ValueError(f"no reference captions for {missing[:5]}")
        flat = [r for n in names for r in references[n]]
        owner = np.repeat(np.arange(len(names)), [len(references[n]) for n in names])
        refs = (scorer.embed_texts(flat, progress=progress), owner)
    return score_embeddings(normalise(image_embeddings), cand, refs, names) | {"scorer": scorer.describe()}


def score_embeddings(
    images: np.ndarray, cand: np.ndarray, refs: tuple[np.ndarray, np.ndarray] | None, names: list[str]
) -> dict[str, Any]:
    """The formulas on unit-length embeddings; `refs` = (reference embeddings, candidate row of each)."""
    clip_s = WEIGHT * np.clip(np.sum(images * cand, axis=1), 0, None)
    per = {n: {"CLIP-S": float(s), "RefCLIP-S": None} for n, s in zip(names, clip_s, strict=True)}
    out = {"CLIP-S": float(clip_s.mean()), "RefCLIP-S": None, "per_image": per}
    if refs is None:
        return out
    ref_emb, owner = refs
    sims = np.sum(cand[owner] * ref_emb, axis=1)
    best = np.full(len(names), -np.inf, np.float32)
    np.maximum.at(best, owner, sims)
    best = np.clip(best, 0, None)
    total = clip_s + best
    ref_s = np.divide(2 * clip_s * best, total, out=np.zeros_like(total), where=total > 0)
    for n, r in zip(names, ref_s, strict=True):
        per[n]["RefCLIP-S"] = float(r)
    out["RefCLIP-S"] = float(ref_s.mean())
    return out


def _load_text_tower(cls: Any, weights: str) -> Any:
    """Text tower + projection from a full CLIP checkpoint; the vision half is expected to be unused."""
    log = logging.getLogger("transformers.modeling_utils")
    level = log.level
    log.setLevel(logging.ERROR)  # its load report lists every vision weight as "unexpected"
    try:
        model, info = cls.from_pretrained(weights, output_loading_info=True)
    finally:
        log.setLevel(level)
    strange = [k for k in info["unexpected_keys"] if not k.startswith(("vision_model.", "visual_", "logit"))]
    if info["missing_keys"] or strange or info["mismatched_keys"]:
        raise RuntimeError(f"{weights}: text tower did not load cleanly: {info}")
    return model


__all__ = [
    "CLIP_HUB_ID",
    "ClipScorer",
    "char_clip_tokenizer",
    "clip_scores",
    "image_embeddings",
    "score_embeddings",
]
