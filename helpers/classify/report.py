"""What the training notebooks print: the plan, the preprocessing check, summary lines, the conclusion."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd

from helpers.classify.backbones import backbone_layer, get_backbone
from helpers.classify.config import TrainConfig
from helpers.classify.pipeline import preprocess_batch


def phase_plan(cfg: TrainConfig) -> pd.DataFrame:
    """One row per training phase: epochs, starting learning rate and what is trained."""
    pretrained = cfg.weights is not None
    unfrozen = (
        "all backbone layers" if cfg.unfreeze_top is None else f"top {cfg.unfreeze_top} backbone layers"
    )
    rows = [
        ("1 head", cfg.head_epochs, cfg.lr, "head only (backbone frozen)" if pretrained else "whole network"),
        (
            "2 fine-tune",
            cfg.finetune_epochs,
            cfg.lr * cfg.finetune_lr_scale,
            f"head + {unfrozen}" if pretrained else "whole network",
        ),
    ]
    return pd.DataFrame(rows, columns=["phase", "epochs", "start lr", "trains"]).set_index("phase")


def preprocessing_check(images: np.ndarray, cfg: TrainConfig) -> pd.DataFrame:
    """Per-channel min/mean/max of a batch after the pipeline's preprocessing (what the backbone sees)."""
    x = preprocess_batch(images[:256], get_backbone(cfg.backbone), cfg.input_size).numpy()
    flat = x.reshape(-1, 3)
    return pd.DataFrame(
        {"min": flat.min(0), "mean": flat.mean(0), "max": flat.max(0)},
        index=["channel 0", "channel 1", "channel 2"],
    ).round(2)


def model_line(model: keras.Model) -> str:
    """'name: N parameters (M in the backbone), input -> output' in one line."""
    backbone = backbone_layer(model)
    return (
        f"{model.name}: {model.count_params():,} parameters "
        f"({backbone.count_params():,} in {backbone.name}), "
        f"input {tuple(model.input_shape[1:])} -> {model.output_shape[-1]} classes, "
        f"features layer {model.get_layer('features').output.shape[-1]}-d"
    )


def misclassified_titles(
    indices: np.ndarray, probs: np.ndarray, labels: np.ndarray, names: list[str]
) -> list[str]:
    """'true: x / pred: y (p)' for each misclassified test image."""
    pred = probs[indices].argmax(axis=1)
    return [
        f"true: {names[labels[i]]}\npred: {names[p]} ({probs[i, p]:.2f})"
        for i, p in zip(indices, pred, strict=True)
    ]


def _versus_chance(metrics: dict[str, Any], chance: float) -> str:
    """A warning when the model is not clearly better than guessing."""
    if metrics["test_top1"] >= 2 * chance:
        return ""
    return (
        ", **no better than guessing**: too little data or too few epochs to learn "
        f"({metrics['counts']['train']} training images for {metrics['num_classes']} classes)"
    )


def _overfit_words(gap: float) -> str:
    """How to describe a train-minus-validation gap in accuracy points."""
    if gap < 3:
        return "no sign of overfitting"
    return "moderate overfitting" if gap < 10 else "strong overfitting"


def conclusion(metrics: dict[str, Any], per_class: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """Markdown summary of one run, generated from its numbers."""
    cfg = metrics["config"]
    chance = metrics["chance_top1"]
    gap = 100 * (metrics["train_top1"] - metrics["val_top1"])
    init = "ImageNet weights" if cfg["weights"] else "random initialisation"
    scored = per_class.dropna(subset=["accuracy"])
    best, worst = scored.iloc[-1], scored.iloc[0]
    lines = [
        f"**{cfg['backbone']}** ({init}, {cfg['input_size']}x{cfg['input_size']} input, "
        f"{metrics['epochs_run']} epochs) reaches **{metrics['test_top1']:.1%}** test top-1 and "
        f"**{metrics['test_top5']:.1%}** top-5 on {metrics['num_classes']} classes: "
        f"{metrics['test_top1'] / chance:.1f}x chance ({chance:.1%}){_versus_chance(metrics, chance)}.",
        f"- Train {metrics['train_top1']:.1%} vs validation {metrics['val_top1']:.1%} (both without "
        f"augmentation): a gap of {gap:.1f} points, {_overfit_words(gap)}.",
        f"- Best class `{best['class']}` ({best['accuracy']:.0%}), worst `{worst['class']}` "
        f"({worst['accuracy']:.0%}); coarse-label accuracy {metrics['test_top1_coarse']:.1%}.",
    ]
    if len(pairs):
        top = pairs.iloc[0]
        lines.append(
            f"- Most confused: `{top['true']}` taken for `{top['predicted']}` {top['count']} times "
            f"({top['share_of_true']:.0%} of that class)."
        )
    lines.append(
        f"- {metrics['params'] / 1e6:.1f} M parameters, {metrics['epoch_seconds']:.1f} s per epoch, "
        f"{metrics['images_per_second']:.0f} images/s inference on {_device(metrics['device'])}."
    )
    return "\n".join(lines)


def _device(device: dict[str, Any]) -> str:
    """'1 GPU (Tesla T4)' or '2 CPU cores'."""
    gpus = device.get("gpus") or []
    return f"{len(gpus)} GPU ({', '.join(gpus)})" if gpus else f"{device.get('cpus')} CPU cores"
