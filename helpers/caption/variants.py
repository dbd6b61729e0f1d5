"""Training the captioner and its image-blind twin, the same way, from the feature cache.

The blind baseline is the same decoder (same config, same training) fed all-zero image features, so it
can only learn the caption distribution; the gap between the two is what the picture contributes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from helpers.caption.config import CaptionConfig
from helpers.caption.features import FeatureCache
from helpers.caption.model import PrefixCaptioner, build_captioner, count_parameters
from helpers.caption.train import make_pairs, train_captioner


def split_features(cache: FeatureCache, names: list[str], blind: bool = False) -> np.ndarray:
    """Rows of `names` (float32); all zeros for the blind baseline."""
    feats = cache.features[[cache.rows[n] for n in names]].astype(np.float32)
    return np.zeros_like(feats) if blind else feats


def train_variant(
    cfg: CaptionConfig, cache: FeatureCache, flickr, tokenizer, blind: bool, device: str = "cpu"
) -> tuple[PrefixCaptioner, pd.DataFrame]:
    """Train (or resume) the captioner, or its blind twin, under run_dir/captions/training/<name>/."""
    features = np.zeros_like(cache.features) if blind else cache.features
    names = {"train": cfg.train_names(flickr), "val": flickr.splits["val"]}
    pairs = {
        s: make_pairs(features, cache.rows, flickr.normalized, names[s], tokenizer, cfg.train.max_tokens)
        for s in names
    }
    prefix = dataclasses.replace(cfg.prefix, feature_dim=int(cache.features.shape[1]))
    model = build_captioner(prefix, seed=cfg.seed)
    model.set_feature_stats(features[[cache.rows[n] for n in names["train"]]])
    model.to(device)
    out = cfg.paths.captions / "training" / ("blind" if blind else "model")
    history = train_captioner(model, pairs["train"], pairs["val"], cfg.train, out)
    return model.eval(), history


def training_summary(model: PrefixCaptioner, history: pd.DataFrame) -> dict[str, Any]:
    """Epochs, losses and parameter counts of one trained variant."""
    best = int(history["val_loss"].idxmin())
    return {
        "epochs": len(history),
        "best_epoch": int(history.loc[best, "epoch"]),
        "best_val_loss": float(history["val_loss"].min()),
        "final_train_loss": float(history["train_loss"].iloc[-1]),
        "seconds": float(history["seconds"].sum()),
        "params": count_parameters(model),
    }
