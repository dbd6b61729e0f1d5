"""Does blocking repetition (the decoders' default: no repeated 4-gram, no token twice in a row) cost any
score? Notebook 06 decodes its headline decoding both ways on the test split and writes the comparison."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts
from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.narrative import repeats_itself
from helpers.metrics import CaptionScorer


def compare_blocking(
    model: Any,
    tokenizer: Any,
    features: np.ndarray,
    names: list[str],
    references: dict,
    decoding: DecodeConfig,
    out: Path,
) -> dict[str, Any]:
    """Scores (BLEU, ROUGE-L, CIDEr; no METEOR) with blocking on and off, written to `out` (JSON)."""
    variants = {
        "blocked": dataclasses.replace(decoding, no_repeat_ngram_size=4, block_stutter=True),
        "unblocked": dataclasses.replace(decoding, no_repeat_ngram_size=0, block_stutter=False),
    }
    refs = {n: references[n] for n in names}
    doc: dict[str, Any] = {"decoding": decoding.name, "images": len(names)}
    captions = {}
    with CaptionScorer(meteor=False) as scorer:
        for key, dec in variants.items():
            captions[key] = decode_captions(model, tokenizer, features, dec)
            doc[key] = {
                "config": dataclasses.asdict(dec),
                "scores": scorer.score(refs, dict(zip(names, captions[key], strict=True))),
                "degenerate": int(sum(repeats_itself(c) for c in captions[key])),
            }
    doc["changed_captions"] = int(
        sum(a != b for a, b in zip(captions["blocked"], captions["unblocked"], strict=True))
    )
    artifacts.write_json(out, doc)
    return doc


def blocking_summary(doc: dict[str, Any]) -> str:
    """One line per metric: blocked vs unblocked."""
    on, off = doc["blocked"]["scores"], doc["unblocked"]["scores"]
    rows = [f"{k}: {on[k]:.3f} blocked vs {off[k]:.3f} unblocked" for k in on if on[k] is not None]
    head = (
        f"{doc['decoding']} on {doc['images']} test images: {doc['changed_captions']} captions change; "
        f"degenerate (a word twice in a row, or a repeated 4-gram): {doc['blocked']['degenerate']} "
        f"blocked vs {doc['unblocked']['degenerate']} unblocked"
    )
    return "\n".join([head, *rows])
