"""Notebook 08's routes to captions in a language: native, translate-train (each with an image-blind twin)
and translate-test (06's English captioner, then a translator), all on notebook 06's cached features."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers import artifacts
from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.model import PrefixCaptioner, build_captioner, load_captioner, save_captioner
from helpers.caption.tokenizer import gpt2_tokenizer
from helpers.caption.train import make_pairs, train_captioner
from helpers.metrics import CaptionScorer
from helpers.multilingual.config import MultilingualConfig
from helpers.multilingual.decoder import (
    load_tokenizer,
    prefix_config,
    save_tokenizer,
    small_decoder,
    write_char_vocab,
)
from helpers.multilingual.languages import Language

#: Which caption file each trained route learns from.
TRAINED = {"native": "native", "translate-train": "machine"}


@dataclasses.dataclass
class FeatureTable:
    """notebook 06's cached image features (run_dir/captions/features), read without loading its encoder."""

    features: np.ndarray  # (N, D) float16
    rows: dict[str, int]  # image name -> row

    @classmethod
    def read(cls, cache_dir: str | Path) -> FeatureTable:
        cache_dir = Path(cache_dir)
        if not (cache_dir / "config.json").is_file():
            raise FileNotFoundError(f"{cache_dir} holds no complete feature cache: run notebook 06 first")
        names = artifacts.read_json(cache_dir / "index.json")["names"]
        return cls(artifacts.load_npy(cache_dir / "features.npy"), {n: i for i, n in enumerate(names)})

    def of(self, names: list[str], blind: bool = False) -> np.ndarray:
        """float32 rows of `names`; all zeros for an image-blind twin."""
        feats = self.features[[self.rows[n] for n in names]].astype(np.float32)
        return np.zeros_like(feats) if blind else feats


def split_names(
    cfg: MultilingualConfig, splits: dict[str, list[str]], table: FeatureTable, captions: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Per split, the images with features and captions; training images capped at `max_train_images`."""
    names = {s: [n for n in ids if n in table.rows and captions.get(n)] for s, ids in splits.items()}
    cap = cfg.knobs["max_train_images"]
    if cap is not None and len(names["train"]) > cap:
        keep = np.random.default_rng(cfg.seed).choice(len(names["train"]), cap, replace=False)
        names["train"] = sorted(names["train"][i] for i in keep)
    return names


def language_decoder(cfg: MultilingualConfig, language: Language, texts: list[str]) -> tuple[Any, str | dict]:
    """(tokenizer, decoder spec): the registry's pretrained decoder, or the small one with a vocabulary
    built from `texts` (the training captions) under run_dir/multilingual/<code>/vocabulary/."""
    if cfg.knobs["decoder"] is None:
        return load_tokenizer(language, language.decoder), language.decoder
    if cfg.knobs["decoder"] != "small":
        raise ValueError(f"decoder must be 'small' or None (the registry's), got {cfg.knobs['decoder']!r}")
    if language.tokenizer == "bert":
        folder = write_char_vocab(texts, cfg.folder(language) / "vocabulary")
        tokenizer = load_tokenizer(language, folder)
    else:
        tokenizer = load_tokenizer(language)
    return tokenizer, small_decoder(tokenizer)


def train_route(
    cfg: MultilingualConfig,
    table: FeatureTable,
    captions: dict[str, list[str]],
    names: dict[str, list[str]],
    tokenizer: Any,
    decoder: str | dict,
    out_dir: Path,
    blind: bool = False,
    device: str = "cpu",
) -> tuple[PrefixCaptioner, pd.DataFrame]:
    """Train (or resume) one captioner on `captions` into `out_dir`, the same way notebook 06 trains."""
    features = np.zeros_like(table.features) if blind else table.features
    pairs = {
        s: make_pairs(features, table.rows, captions, names[s], tokenizer, cfg.train.max_tokens)
        for s in ("train", "val")
    }
    base = dataclasses.replace(cfg.prefix, feature_dim=int(table.features.shape[1]))
    model = build_captioner(prefix_config(base, decoder, tokenizer), seed=cfg.seed)
    model.set_feature_stats(features[[table.rows[n] for n in names["train"]]])
    model.to(device)
    history = train_captioner(model, pairs["train"], pairs["val"], cfg.train, out_dir, progress=False)
    return model.eval(), history


def save_route(model: PrefixCaptioner, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> Path:
    """Weights, config and tokenizer in `folder`, then ``language.json`` (last: marks it complete)."""
    (folder / "language.json").unlink(missing_ok=True)
    save_captioner(model, folder)
    save_tokenizer(tokenizer, folder)
    artifacts.write_json(folder / "language.json", meta)
    return folder


def english_captions(cfg: MultilingualConfig, features: np.ndarray) -> tuple[list[str], DecodeConfig]:
    """Notebook 06's captioner on `features`, with its saved decoding (translate-test's first half)."""
    folder = cfg.paths.captions / "model"
    if not (folder / "captioner.json").is_file():
        raise FileNotFoundError(f"{folder} is not a captioner folder: run notebook 06 first")
    decoding = DecodeConfig(**artifacts.read_json(folder / "captioner.json")["decoding"])
    return decode_captions(load_captioner(folder), gpt2_tokenizer(), features, decoding), decoding


def score_routes(
    scorer: CaptionScorer, names: list[str], hypotheses: dict[str, list[str]], references: dict[str, dict]
) -> dict[str, dict[str, dict]]:
    """{route: {reference set: metrics}}; each reference set scores only the images it covers."""
    out: dict[str, dict[str, dict]] = {}
    for route, caps in hypotheses.items():
        by_name = dict(zip(names, caps, strict=True))
        out[route] = {
            kind: scorer.score(
                {n: refs[n] for n in names if n in refs}, {n: by_name[n] for n in names if n in refs}
            )
            for kind, refs in references.items()
            if any(n in refs for n in names)
        }
    return out


def training_record(model: PrefixCaptioner, history: pd.DataFrame) -> dict[str, Any]:
    """Epochs, best validation loss and time of one trained captioner."""
    return {
        "epochs": len(history),
        "best_val_loss": float(history["val_loss"].min()),
        "final_train_loss": float(history["train_loss"].iloc[-1]),
        "seconds": float(history["seconds"].sum()),
        "params": int(sum(p.numel() for p in model.parameters())),
    }
