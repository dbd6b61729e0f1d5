"""Growing a `Narrative` with a trained `Captioner`: candidates, their specificity, region captions.

*Tell me more* decodes candidates (greedy, beam, the detailed beam, nucleus samples), scores each by how
specific it is to this picture (log p(sentence | image) - 0.5 log p(sentence | the average training
image), nats) and lets `narrative.rank_candidates` pick one that says something new. The "no image" side
is the same captioner fed the training set's average features (standardised features all zero), so a run
folder holds everything it needs. Everything is computed on demand, one image at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from helpers.caption import likelihood
from helpers.caption.captioner import Captioner, detail_decoding
from helpers.caption.decode import generate_ids, ids_to_text
from helpers.caption.narrative import (
    Narrative,
    Ranked,
    Sentence,
    cell_at,
    crop,
    rank_candidates,
    region_sentence,
)


@dataclass(frozen=True)
class StoryConfig:
    """How a narrative grows."""

    samples: int = 8  # nucleus samples per step, besides greedy, beam and the detailed beam
    top_p: float = 0.9  # nucleus mass of the samples
    temperature: float = 0.8  # nucleus softmax temperature: < 1 keeps a small model's samples fluent
    blind_weight: float = 0.5  # specificity = log p(s | image) - blind_weight * log p(s | average image)
    penalty: float = 4.0  # nats a candidate loses for repeating every content word already said
    grid: int = 3  # Look here: a grid x grid of cells over the picture
    margin: float = 0.25  # a cell's crop grows by this fraction of its size on each side (context)

    def __post_init__(self) -> None:
        if self.samples < 0 or self.grid < 1 or not 0 < self.top_p <= 1 or self.margin < 0:
            raise ValueError("need samples >= 0, grid >= 1, 0 < top_p <= 1 and margin >= 0")


class Storyteller:
    """A captioner that tells more about a picture when asked; every method is deterministic."""

    def __init__(self, captioner: Captioner, cfg: StoryConfig | None = None):
        self.captioner, self.cfg = captioner, cfg or StoryConfig()

    def candidates(self, features: np.ndarray, seed: int) -> list[list[str]]:
        """Distinct candidate sentences for each feature row, in a stable order; deterministic given `seed`
        and the rows (the nucleus samples of all rows share one random stream)."""
        base = dataclasses.replace(self.captioner.decoding, no_repeat_ngram_size=4, block_stutter=True)
        configs = [
            dataclasses.replace(base, strategy="greedy"),
            dataclasses.replace(base, strategy="beam", num_beams=max(base.num_beams, 3)),
            detail_decoding(base, "detailed"),
        ]
        texts = [self._decode(features, decoding) for decoding in configs]
        out = [[t[i] for t in texts] for i in range(len(features))]
        if self.cfg.samples:
            nucleus = dataclasses.replace(
                base, strategy="nucleus", top_p=self.cfg.top_p, temperature=self.cfg.temperature, seed=seed
            )
            sampled = self._decode(np.repeat(features, self.cfg.samples, axis=0), nucleus)
            for i in range(len(features)):
                out[i] += sampled[i * self.cfg.samples : (i + 1) * self.cfg.samples]
        return [list(dict.fromkeys(t for t in row if t)) for row in out]  # first occurrence kept

    def _decode(self, features: np.ndarray, decoding) -> list[str]:
        return ids_to_text(self.captioner.tokenizer, generate_ids(self.captioner.model, features, decoding))

    def specificity(self, features: np.ndarray, texts: list[str]) -> np.ndarray:
        """(T,) log p(text | image) - blind_weight * log p(text | average image), nats; one row per text.

        With weight 1 this is the pointwise mutual information of text and picture, which also rewards
        garbled samples (unlikely under both); a weight below 1 keeps some of the fluency term (MMI-style
        reranking).
        """
        model, tok = self.captioner.model, self.captioner.tokenizer
        seen = likelihood.log_likelihoods(model, tok, features, texts)
        blind = likelihood.log_likelihoods(model, tok, likelihood.average_image(model, len(texts)), texts)
        return seen - self.cfg.blind_weight * blind

    def more(self, image: np.ndarray, narrative: Narrative) -> tuple[Narrative, Ranked | None]:
        """The narrative with one more sentence, and the pick; unchanged and None when nothing new is left."""
        [(grown, picked)] = self.more_many(self.captioner.encode([image]), [narrative])
        return grown, picked

    def more_many(
        self, features: np.ndarray, narratives: list[Narrative]
    ) -> list[tuple[Narrative, Ranked | None]]:
        """`more` for many pictures at once (feature row i belongs to narrative i), batched decoding."""
        candidates = self.candidates(features, narratives[0].step_seed())
        owner = np.repeat(np.arange(len(narratives)), [len(c) for c in candidates])
        flat = [t for row in candidates for t in row]
        spec = self.specificity(features[owner], flat)
        out, start = [], 0
        for story, texts in zip(narratives, candidates, strict=True):
            ranked = rank_candidates(texts, spec[start : start + len(texts)], story.texts, self.cfg.penalty)
            start += len(texts)
            out.append((story.add(Sentence(ranked[0].text, "more")), ranked[0]) if ranked else (story, None))
        return out

    def look_here(self, image: np.ndarray, narrative: Narrative, row: int, col: int) -> Narrative:
        """The narrative with the caption of grid cell (row, col), placed ('At the top left, ...')."""
        grid = self.cfg.grid
        cell = cell_at(image.shape[0], image.shape[1], row, col, grid, grid)
        [caption] = self.captioner.caption_images([crop(image, cell, self.cfg.margin)])
        return narrative.add(region_sentence(caption, cell))

    def narrate(
        self, image: np.ndarray, sentences: int, seed: int = 0, caption: str | None = None
    ) -> Narrative:
        """`caption` (None: the saved decoding's) and up to `sentences - 1` more, fewer if nothing is new."""
        captions = None if caption is None else [caption]
        return self.narrate_features(self.captioner.encode([image]), sentences, seed, captions)[0]

    def narrate_features(
        self, features: np.ndarray, sentences: int, seed: int = 0, captions: list[str] | None = None
    ) -> list[Narrative]:
        """`narrate` for each row of image features (as `Captioner.encode` makes them), batched."""
        if sentences < 1:
            raise ValueError(f"sentences must be at least 1, got {sentences}")
        if captions is None:
            captions = self._decode(features, self.captioner.decoding)
        stories = [Narrative.start(c or "(no caption)", seed) for c in captions]
        growing = list(range(len(stories)))
        for _ in range(sentences - 1):
            grown = self.more_many(features[growing], [stories[i] for i in growing])
            for i, (story, _picked) in zip(growing, grown, strict=True):
                stories[i] = story
            growing = [i for i, (_s, picked) in zip(growing, grown, strict=True) if picked is not None]
            if not growing:
                break
        return stories
