"""Training the captioner and its image-blind twin, the same way, from the feature cache.

The blind baseline is the same decoder (same config, same training) fed all-zero image features, so it
can only learn the caption distribution; the gap between the two is what the picture contributes. It is
trained first, so that after the captioner's first epoch the two validation losses can be compared
(`first_epoch_check`): a captioner not below its blind twin then means the picture is not getting
through (wrong preprocessing, a broken feature path), minutes in rather than after the whole training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
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


def new_variant(cfg: CaptionConfig, cache: FeatureCache, flickr, blind: bool) -> PrefixCaptioner:
    """An untrained captioner for these features, standardised with the training images' statistics."""
    features = np.zeros_like(cache.features) if blind else cache.features
    prefix = dataclasses.replace(cfg.prefix, feature_dim=int(cache.features.shape[1]))
    model = build_captioner(prefix, seed=cfg.seed)
    model.set_feature_stats(features[[cache.rows[n] for n in cfg.train_names(flickr)]])
    return model


def train_variant(
    cfg: CaptionConfig,
    cache: FeatureCache,
    flickr,
    tokenizer,
    blind: bool,
    device: str = "cpu",
    model: PrefixCaptioner | None = None,
    out: Path | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> tuple[PrefixCaptioner, pd.DataFrame]:
    """Train (or resume) the captioner, or its blind twin, under `out` (run_dir/captions/training/<name>/).

    `model`: the untrained captioner from `new_variant` (built here when None).
    """
    features = np.zeros_like(cache.features) if blind else cache.features
    names = {"train": cfg.train_names(flickr), "val": flickr.splits["val"]}
    pairs = {
        s: make_pairs(features, cache.rows, flickr.normalized, names[s], tokenizer, cfg.train.max_tokens)
        for s in names
    }
    model = (model or new_variant(cfg, cache, flickr, blind)).to(device)
    out = out or cfg.paths.captions / "training" / ("blind" if blind else "model")
    history = train_captioner(model, pairs["train"], pairs["val"], cfg.train, out, on_epoch_end)
    return model.eval(), history


def first_epoch_verdict(model_loss: float, blind_loss: float) -> str:
    """Markdown: the captioner's and its blind twin's validation loss after epoch 1, bold when not below."""
    line = f"After epoch 1, validation loss: captioner {model_loss:.4f}, image-blind twin {blind_loss:.4f}"
    if model_loss < blind_loss:
        return f"{line}: the picture already helps ({blind_loss - model_loss:.4f} nats per token)."
    return (
        f"**{line}. WARNING: the captioner is not below its image-blind twin, so the image features are "
        "not getting through: check the encoder's preprocessing and the feature cache before training "
        "on.**"
    )


def first_epoch_check(
    blind_history: pd.DataFrame, show: Callable[[str], None] | None = None
) -> Callable[[dict], None]:
    """An `on_epoch_end` callback that shows `first_epoch_verdict` (`show`; default: as notebook Markdown)
    once the captioner's epoch 1 ends."""
    show = show or _show_markdown
    blind_loss = float(blind_history.loc[blind_history["epoch"] == 1, "val_loss"].iloc[0])

    def check(row: dict) -> None:
        if row["epoch"] == 1:
            show(first_epoch_verdict(float(row["val_loss"]), blind_loss))

    return check


def _show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def parameter_table(encoder: Any, model: PrefixCaptioner) -> pd.DataFrame:
    """Parameters of the frozen image encoder, the mapper and GPT-2, and how many of them train."""
    mapper, whole = count_parameters(model.mapper), count_parameters(model)
    rows = {
        "image encoder (frozen)": {"parameters": encoder.num_parameters, "trained": 0},
        "mapper": {"parameters": mapper["total"], "trained": mapper["trainable"]},
        "GPT-2": {
            "parameters": whole["total"] - mapper["total"],
            "trained": whole["trainable"] - mapper["trainable"],
        },
    }
    return pd.DataFrame(rows).T


def example_pair(cfg: CaptionConfig, cache: FeatureCache, flickr, tokenizer) -> pd.DataFrame:
    """The first training pair as the model sees it: one row per caption token (id and text)."""
    name = cfg.train_names(flickr)[0]
    pairs = make_pairs(cache.features, cache.rows, flickr.normalized, [name], tokenizer, cfg.train.max_tokens)
    ids = pairs.tokens[0]
    return pd.DataFrame(
        {"token id": ids, "token": tokenizer.convert_ids_to_tokens(ids)},
        index=pd.Index(range(len(ids)), name=f"{name} (feature row {cache.rows[name]})"),
    )


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
