"""Scoring decodings of a trained captioner on a split against all references of each image."""

from __future__ import annotations

import numpy as np

from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.model import PrefixCaptioner
from helpers.metrics import CaptionScorer


def score_decodings(
    model: PrefixCaptioner,
    tokenizer,
    features: np.ndarray,
    names: list[str],
    references: dict[str, list[str]],
    decodings: list[DecodeConfig],
    scorer: CaptionScorer,
) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """{decoding name: metrics} and {decoding name: captions in `names` order}."""
    metrics, captions = {}, {}
    for dec in decodings:
        caps = decode_captions(model, tokenizer, features, dec, progress=True)
        captions[dec.name] = caps
        metrics[dec.name] = scorer.score(
            {n: references[n] for n in names}, dict(zip(names, caps, strict=True))
        )
    return metrics, captions
