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


def _captioned_grid(
    images: Sequence[np.ndarray], titles: list[str], cols: int, panel: tuple[float, float], **imshow
):
    """The images in rows of `cols`, each with its (multi-line) title; `panel`: (width, height) in inches."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], **imshow)
            ax.set_title(titles[i], fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def plot_examples(
    images: Sequence[np.ndarray], generated: dict[str, list[str]], references: list[list[str]], cols: int = 4
):
    """Test images with each variant's caption and two reference captions underneath."""
    titles = [
        "\n".join(
            [f"{label}: {_wrap(caps[i])}" for label, caps in generated.items()]
            + [f"ref: {_wrap(r)}" for r in references[i][:2]]
        )
        for i in range(len(images))
    ]
    return _captioned_grid(images, titles, cols, panel=(4, 5.2))


def plot_cifar_captions(
    images: np.ndarray, captions: list[str], truth: list[str], top1: list[str] | None = None, cols: int = 4
):
    """CIFAR-100 test images with the generated caption, the true class and a classifier's top-1 if given."""
    titles = [
        "\n".join(
            [_wrap(captions[i], 30), f"true class: {truth[i]}"]
            + ([f"classifier top-1: {top1[i]}"] if top1 is not None else [])
        )
        for i in range(len(images))
    ]
    return _captioned_grid(images, titles, cols, panel=(3.4, 4.0), interpolation="nearest")
