"""The encoder study of notebook 06: which image encoder gives GPT-2 the most to caption from?

Classifier-to-captioner transfer: does fine-tuning on CIFAR-100 (notebooks 02-04) help or hurt captions,
next to CLIP and an ImageNet backbone? For each encoder a fresh mapper is trained in front of one frozen
GPT-2 (cheap: the features are cached, GPT-2 gets no updates), and scored on the test split with greedy
decoding. The frozen GPT-2 is the notebook's image-blind twin's: it knows the caption language but has
never seen a picture, so it favours no encoder, and the blind twin itself (same GPT-2, a constant prefix)
is the baseline every encoder is measured against. (A frozen GPT-2 that never learned the captions cannot
be steered: the smoke preset's from-scratch GPT-2 kept the loss at 10.6 nats, chance is 10.8.)
Results: ``run_dir/captions/encoders.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from helpers import artifacts
from helpers.caption.config import CaptionConfig
from helpers.caption.decode import DecodeConfig, decode_captions
from helpers.caption.features import EncoderConfig, FeatureCache, cached_features
from helpers.caption.model import PrefixCaptioner
from helpers.caption.variants import new_variant, split_features, train_variant, training_summary
from helpers.runtime import device_summary, versions

STUDY_DIR = "encoders"  # under run_dir/captions/: a feature cache and training folder per encoder


def resolve_specs(specs: tuple[str, ...] | list[str], paths) -> list[str]:
    """The encoders to compare: "best" becomes 05-compare's classifier (dropped when 05 has not run)."""
    out = []
    for spec in specs:
        if spec == "best":
            folder = paths.best_classifier()
            if folder is None or not (folder / "model.keras").is_file():
                print("encoder study: no best CIFAR-100 classifier yet (run 02-05), left out")
                continue
            spec = f"classifier:{folder.name}"
        if spec not in out:
            out.append(spec)
    return out


def study_config(cfg: CaptionConfig) -> CaptionConfig:
    """The notebook's configuration with GPT-2 frozen (only the mapper trains, at its own rate) for
    `study_epochs`."""
    prefix = dataclasses.replace(cfg.prefix, freeze_gpt2=True)
    return dataclasses.replace(
        cfg, prefix=prefix, train=dataclasses.replace(cfg.train, epochs=cfg.study_epochs)
    )


def encoder_features(cfg: CaptionConfig, spec: str, flickr, main: FeatureCache) -> FeatureCache:
    """The features of `spec`: the notebook's own cache when it is the chosen encoder, else its own cache."""
    # The notebook's input size and seed for every encoder (a classifier brings its own input size).
    enc = EncoderConfig.from_spec(spec, cfg.paths.models, cfg.pretrained, cfg.encoder.input_size, cfg.seed)
    if enc == cfg.encoder:
        return main
    names = sorted(n for split in flickr.splits.values() for n in split)
    folder = cfg.paths.captions / STUDY_DIR / _slug(spec) / "features"
    return cached_features(folder, enc, names, flickr.image_path, progress=False)


def compare_encoders(
    cfg: CaptionConfig,
    flickr,
    tokenizer,
    scorer,
    main: FeatureCache,
    blind_twin: tuple[PrefixCaptioner, pd.DataFrame],
    device: str = "cpu",
) -> dict[str, Any] | None:
    """Train and score a mapper per encoder of `cfg.compare_encoders` in front of `blind_twin` = (model,
    history)'s frozen GPT-2, against the blind twin itself; write encoders.json (None: no encoders)."""
    specs = resolve_specs(cfg.compare_encoders, cfg.paths)
    if not specs:
        return None
    study, root = study_config(cfg), cfg.paths.captions / STUDY_DIR
    test = flickr.splits["test"]
    refs = {n: flickr.captions[n] for n in test}
    greedy = DecodeConfig.parse("greedy", max_new_tokens=cfg.decoding.max_new_tokens)

    def score(model, cache: FeatureCache, blind: bool, history) -> dict[str, Any]:
        caps = decode_captions(model, tokenizer, split_features(cache, test, blind), greedy)
        scores = scorer.score(refs, dict(zip(test, caps, strict=True)))
        return {"scores": scores, "training": training_summary(model, history)}

    rows = {}
    for spec in specs:
        cache = encoder_features(cfg, spec, flickr, main)
        model = new_variant(study, cache, flickr, blind=False)
        model.gpt.load_state_dict(blind_twin[0].gpt.state_dict())  # frozen: requires_grad stays off
        model, history = train_variant(
            study, cache, flickr, tokenizer, False, device, model, root / _slug(spec)
        )
        enc = cache.encoder.cfg
        rows[spec] = {"label": enc.label, "backbone": enc.backbone, "feature_dim": cache.features.shape[1]}
        rows[spec].update(features_reused=cache.reused, **score(model, cache, False, history))
    blind = score(blind_twin[0], main, True, blind_twin[1])
    for row in rows.values():
        row["above_blind"] = {k: row["scores"][k] - blind["scores"][k] for k in ("Bleu_4", "CIDEr")}
    out = {
        "question": "which frozen image encoder gives a frozen GPT-2 the most to caption from",
        "trained": "mapper only, in front of the blind twin's GPT-2 (frozen)",
        "decoding": greedy.name,
        "test_images": len(test),
        "encoders": rows,
        "blind": blind,
        "config": study.to_dict(),
        "versions": versions(),
        "device": device_summary(),
    }
    artifacts.write_json(cfg.paths.captions / "encoders.json", out)
    return out


def study_table(study: dict[str, Any]) -> pd.DataFrame:
    """One row per encoder: BLEU-4 and CIDEr, each above the blind twin, and the best validation loss."""
    rows = {
        row["label"]: {
            "BLEU-4": row["scores"]["Bleu_4"],
            "BLEU-4 above blind": row["above_blind"]["Bleu_4"],
            "CIDEr": row["scores"]["CIDEr"],
            "CIDEr above blind": row["above_blind"]["CIDEr"],
            "best val loss": row["training"]["best_val_loss"],
        }
        for row in study["encoders"].values()
    }
    blind = study["blind"]
    rows["image-blind twin"] = {
        "BLEU-4": blind["scores"]["Bleu_4"],
        "BLEU-4 above blind": 0.0,
        "CIDEr": blind["scores"]["CIDEr"],
        "CIDEr above blind": 0.0,
        "best val loss": blind["training"]["best_val_loss"],
    }
    return pd.DataFrame(rows).T.astype(float)


def plot_study(study: dict[str, Any]):
    """Bars of BLEU-4 and CIDEr above the image-blind twin, one bar per encoder."""
    table = study_table(study).drop(index="image-blind twin")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, metric in zip(axes, ("BLEU-4", "CIDEr"), strict=True):
        values = table[f"{metric} above blind"]
        ax.bar(range(len(values)), values, color=[f"C{i}" for i in range(len(values))])
        ax.set_xticks(range(len(values)), values.index, rotation=15, ha="right", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(ylabel=f"{metric} minus the blind twin's", title=f"{metric} above image-blind")
    fig.suptitle(
        f"Encoders with GPT-2 frozen, mapper only ({study['decoding']}, {study['test_images']} images)"
    )
    fig.tight_layout()
    return fig


def study_conclusion(study: dict[str, Any]) -> str:
    """Markdown: the ranking by CIDEr above blind, and what CIFAR-100 fine-tuning did, from the numbers."""
    rows = sorted(study["encoders"].items(), key=lambda kv: -kv[1]["above_blind"]["CIDEr"])
    gains = [
        f"{row['label']}: BLEU-4 {gain['Bleu_4']:+.3f}, CIDEr {gain['CIDEr']:+.3f}"
        for _, row in rows
        for gain in [row["above_blind"]]
    ]
    best = rows[0][1]
    where = f"above the image-blind twin, {study['decoding']} decoding, {study['test_images']} test images"
    if best["above_blind"]["CIDEr"] > 0:
        head = (
            f"With GPT-2 frozen and only the mapper trained, **{best['label']}** gives the captioner the most"
        )
    else:
        head = (
            "With GPT-2 frozen and only the mapper trained, **no encoder lifts CIDEr above the image-blind "
            "twin**: the frozen decoder hardly uses the picture yet, so the ranking says little"
        )
    lines = [f"{head} ({where}): " + "; ".join(gains) + "."]
    backbones = {spec: row for spec, row in study["encoders"].items() if not spec.startswith("classifier:")}
    for spec, row in study["encoders"].items():
        base = backbones.get(row["backbone"])
        if spec.startswith("classifier:") and base is not None:
            diff = row["above_blind"]["CIDEr"] - base["above_blind"]["CIDEr"]
            verdict = "helped" if diff > 0 else "hurt"
            lines.append(
                f"- CIFAR-100 fine-tuning **{verdict}** the captions: the {row['label']} adds {diff:+.3f} "
                f"CIDEr above blind compared with the {base['label']} backbone it was built on."
            )
    return "\n".join(lines)


def _slug(spec: str) -> str:
    return spec.replace(":", "-")
