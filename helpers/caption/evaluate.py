"""Notebook 06's stages as functions: caption statistics, training the model and its image-blind twin,
scoring decodings on the test split, and the metrics file.

The blind baseline is the same decoder (same config, same training) fed all-zero image features, so it
can only learn the caption distribution; the gap between the two is what the picture contributes.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from helpers import artifacts
from helpers.caption.config import CaptionConfig
from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.features import FeatureCache
from helpers.caption.model import PrefixCaptioner, build_captioner, count_parameters
from helpers.caption.train import make_pairs, train_captioner
from helpers.metrics import CaptionScorer
from helpers.runtime import device_summary, versions


def caption_stats(flickr) -> tuple[pd.DataFrame, collections.Counter]:
    """Per split: images, captions, words per caption (mean, min, max), vocabulary; and word counts."""
    rows, words = [], collections.Counter()
    for split, names in flickr.splits.items():
        caps = [c for n in names for c in flickr.normalized[n]]
        lengths = np.array([len(c.split()) for c in caps]) if caps else np.zeros(1)
        vocab = collections.Counter(w for c in caps for w in c.split())
        words.update(vocab if split == "train" else {})
        rows.append(
            {
                "split": split,
                "images": len(names),
                "captions": len(caps),
                "mean_words": lengths.mean(),
                "min_words": int(lengths.min()),
                "max_words": int(lengths.max()),
                "vocabulary": len(vocab),
            }
        )
    return pd.DataFrame(rows).set_index("split"), words


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


def write_test_captions(
    cfg: CaptionConfig, references: dict[str, list[str]], model_caps: list[str], blind_caps: list[str]
) -> dict[str, dict]:
    """run_dir/captions/test_captions.json: per test image, both variants' captions and the references."""
    per_image = {
        n: {"model": m, "blind": b, "references": references[n]}
        for n, m, b in zip(references, model_caps, blind_caps, strict=True)
    }
    artifacts.write_json(cfg.paths.captions / "test_captions.json", per_image)
    return per_image


def run_record(cache: FeatureCache, scoring: dict, trained: dict[str, tuple]) -> dict[str, Any]:
    """What the metrics file records beside the scores: test size, scoring, features, both trainings."""
    return {
        "scoring": scoring,
        "features": cache.config,
        "training": {name: training_summary(model, history) for name, (model, history) in trained.items()},
    }


def write_metrics(
    cfg: CaptionConfig, model_metrics: dict[str, dict], blind_metrics: dict[str, dict], extra: dict[str, Any]
) -> dict[str, Any]:
    """run_dir/captions/metrics.json: headline `model` and `blind` scores, the sweep, config, versions."""
    head = cfg.decoding.name
    out = {
        "model": model_metrics[head],
        "blind": blind_metrics[head],
        "decoding": head,
        "sweep": model_metrics,
        "blind_sweep": blind_metrics,
        "gain_over_blind": {
            k: _diff(model_metrics[head][k], blind_metrics[head][k]) for k in model_metrics[head]
        },
        **extra,
        "config": cfg.to_dict(),
        "versions": versions(),
        "device": device_summary(),
    }
    artifacts.write_json(cfg.paths.captions / "metrics.json", out)
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Rows: each decoding of the model, then the blind baseline; columns: the metrics."""
    rows = {f"model {k}": v for k, v in metrics["sweep"].items()}
    rows[f"blind {metrics['decoding']}"] = metrics["blind"]
    return pd.DataFrame(rows).T.astype(float)


def conclusion(metrics: dict[str, Any], names: int) -> str:
    """Markdown summary generated from the numbers."""
    m, b, dec = metrics["model"], metrics["blind"], metrics["decoding"]
    best = max(metrics["sweep"], key=lambda k: metrics["sweep"][k]["CIDEr"])
    meteor = "not computed (no Java)" if m["METEOR"] is None else f"{m['METEOR']:.3f}"
    lines = [
        f"On **{names}** test images with {dec} decoding the captioner scores "
        f"**BLEU-4 {m['Bleu_4']:.3f}** and "
        f"**CIDEr {m['CIDEr']:.3f}**; the image-blind baseline scores BLEU-4 {b['Bleu_4']:.3f} and CIDEr "
        f"{b['CIDEr']:.3f}, so the picture adds {m['Bleu_4'] - b['Bleu_4']:+.3f} BLEU-4 and "
        f"{m['CIDEr'] - b['CIDEr']:+.3f} CIDEr.",
        f"- METEOR: {meteor}; ROUGE-L {m['ROUGE_L']:.3f}.",
        f"- Best decoding by CIDEr: **{best}** ({metrics['sweep'][best]['CIDEr']:.3f}).",
    ]
    return "\n".join(lines)


def find_classifier(paths) -> str | None:
    """The best trained classifier's folder: compare/best.json's pick, else the highest val top-1."""
    folder = paths.best_classifier()
    if folder is not None and (folder / "model.keras").is_file():
        return str(folder)
    found = sorted(p.parent for p in paths.models.glob("*/model.keras"))
    if not found:
        return None

    def val_top1(folder) -> float:
        metrics = folder / "metrics.json"
        return float(artifacts.read_json(metrics).get("val_top1", 0.0)) if metrics.is_file() else 0.0

    return str(max(found, key=val_top1))


def caption_cifar(captioner, paths, count: int = 12, seed: int = 0) -> dict[str, Any] | None:
    """Caption `count` CIFAR-100 test images from run_dir/data (None when 01 has not run), with the best
    classifier's top-1 beside each when a trained classifier exists."""
    from helpers.data import load_prepared

    if not (paths.data / "manifest.json").is_file():
        return None
    prepared = load_prepared(paths.data)
    pick = np.sort(
        np.random.default_rng(seed).choice(
            len(prepared.test.labels), size=min(count, len(prepared.test.labels)), replace=False
        )
    )
    images = prepared.test.images[pick]
    out = {
        "images": images,
        "captions": captioner.caption_images(list(images)),
        "truth": [prepared.label_names[i] for i in prepared.test.labels[pick]],
        "top1": None,
        "classifier": None,
    }
    folder = find_classifier(paths)
    if folder is not None:
        from helpers.classify import load_classifier, predict_topk

        model, config = load_classifier(folder)
        idx, _ = predict_topk(model, config, images, k=1)
        names = config.get("label_names", prepared.label_names)
        out.update(top1=[names[i] for i in idx[:, 0]], classifier=str(folder))
    return out
