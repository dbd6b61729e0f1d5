"""Figures of notebook 06: caption statistics, loss curves, captioned test images, captioned CIFAR images."""

from __future__ import annotations

import collections
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_caption_stats(flickr, words: collections.Counter, top: int = 20):
    """Words per caption by split, and the most frequent training words."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
    for split, names in flickr.splits.items():
        lengths = [len(c.split()) for n in names for c in flickr.normalized[n]]
        if lengths:
            ax1.hist(lengths, bins=range(1, max(lengths) + 2), alpha=0.5, density=True, label=split)
    ax1.set(xlabel="words per caption", ylabel="share of captions", title="Caption length")
    ax1.legend()
    common = words.most_common(top)
    ax2.bar([w for w, _ in common], [c for _, c in common])
    ax2.set(title=f"{top} most frequent training words ({len(words):,} distinct)", ylabel="count")
    ax2.tick_params(axis="x", rotation=70)
    fig.tight_layout()
    return fig


def plot_histories(histories: dict[str, pd.DataFrame]):
    """Train and validation loss per epoch of each variant (model, blind)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for (name, hist), colour in zip(histories.items(), ("C0", "C1", "C2"), strict=False):
        ax.plot(hist["epoch"], hist["train_loss"], "--", color=colour, label=f"{name} train")
        ax.plot(hist["epoch"], hist["val_loss"], "-o", color=colour, label=f"{name} val")
    # Log scale: the first epoch's mean starts near ln(50257) = 10.8 and would flatten everything after it.
    ax.set(
        xlabel="epoch",
        ylabel="cross-entropy per caption token (nats)",
        title="Captioner training",
        yscale="log",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "(empty)"


def plot_examples(
    images: Sequence[np.ndarray], generated: dict[str, list[str]], references: list[list[str]], cols: int = 4
):
    """Test images with each variant's caption and two reference captions underneath."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 5.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i])
        lines = [f"{label}: {_wrap(caps[i])}" for label, caps in generated.items()]
        lines += [f"ref: {_wrap(r)}" for r in references[i][:2]]
        ax.set_title("\n".join(lines), fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def plot_cifar_captions(
    images: np.ndarray, captions: list[str], truth: list[str], top1: list[str] | None = None, cols: int = 4
):
    """CIFAR-100 test images with the generated caption, the true class and a classifier's top-1 if given."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 4.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i], interpolation="nearest")
        lines = [_wrap(captions[i], 30), f"true class: {truth[i]}"]
        if top1 is not None:
            lines.append(f"classifier top-1: {top1[i]}")
        ax.set_title("\n".join(lines), fontsize=8, loc="left")
    fig.tight_layout()
    return fig
