"""Growing a `Narrative` with a trained `Captioner`: candidates, their specificity, region captions.

*Tell me more* decodes candidates (greedy, beam, the detailed beam, nucleus samples), scores each by how
specific it is to this picture (log p(sentence | image) - log p(sentence | the average training image),
nats) and lets `narrative.rank_candidates` pick one that says something new. The "no image" side is the
same captioner fed the training set's average features (standardised features all zero), so a run folder
holds everything it needs. Everything is computed on demand, one image at a time.
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

    def candidates(self, features: np.ndarray, seed: int) -> list[str]:
        """Distinct candidate sentences for one feature row, deterministic given `seed`."""
        base = dataclasses.replace(self.captioner.decoding, no_repeat_ngram_size=4)
        configs = [
            dataclasses.replace(base, strategy="greedy"),
            dataclasses.replace(base, strategy="beam", num_beams=max(base.num_beams, 3)),
            detail_decoding(base, "detailed"),
        ]
        out = []
        for decoding in configs:
            out += ids_to_text(
                self.captioner.tokenizer, generate_ids(self.captioner.model, features, decoding)
            )
        if self.cfg.samples:
            nucleus = dataclasses.replace(base, strategy="nucleus", top_p=self.cfg.top_p, seed=seed)
            rows = np.repeat(features, self.cfg.samples, axis=0)
            out += ids_to_text(self.captioner.tokenizer, generate_ids(self.captioner.model, rows, nucleus))
        return list(dict.fromkeys(t for t in out if t))  # first occurrence kept: a stable order

    def specificity(self, features: np.ndarray, texts: list[str]) -> np.ndarray:
        """(T,) log p(text | image) - log p(text | average image), nats."""
        model, tok = self.captioner.model, self.captioner.tokenizer
        seen = likelihood.log_likelihoods(model, tok, np.repeat(features, len(texts), axis=0), texts)
        blind = likelihood.log_likelihoods(model, tok, likelihood.average_image(model, len(texts)), texts)
        return seen - blind

    def more(self, image: np.ndarray, narrative: Narrative) -> tuple[Narrative, Ranked | None]:
        """The narrative with one more sentence, and the pick; unchanged and None when nothing new is left."""
        features = self.captioner.encode([image])
        return self._more(features, narrative)

    def _more(self, features: np.ndarray, narrative: Narrative) -> tuple[Narrative, Ranked | None]:
        texts = self.candidates(features, narrative.step_seed())
        ranked = rank_candidates(texts, self.specificity(features, texts), narrative.texts, self.cfg.penalty)
        if not ranked:
            return narrative, None
        return narrative.add(Sentence(ranked[0].text, "more")), ranked[0]

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
        return self.narrate_features(self.captioner.encode([image]), sentences, seed, caption)

    def narrate_features(
        self, features: np.ndarray, sentences: int, seed: int = 0, caption: str | None = None
    ) -> Narrative:
        """`narrate` from one row of image features (as `Captioner.encode` makes them)."""
        if sentences < 1:
            raise ValueError(f"sentences must be at least 1, got {sentences}")
        if caption is None:
            ids = generate_ids(self.captioner.model, features, self.captioner.decoding)
            [caption] = ids_to_text(self.captioner.tokenizer, ids)
        narrative = Narrative.start(caption or "(no caption)", seed)
        while len(narrative.sentences) < sentences:
            narrative, picked = self._more(features, narrative)
            if picked is None:
                break
        return narrative
