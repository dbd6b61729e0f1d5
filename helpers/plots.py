"""Figures of the classifier notebooks: image grids, training curves, confusion matrices, comparisons.

Every function returns a matplotlib Figure; notebooks save it (`helpers.artifacts.save_figure`) and show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Above this many classes, axis tick labels would overlap: show indices only.
MAX_NAMED_TICKS = 25


def image_grid(
    images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8, cell: float = 1.5
) -> Figure:
    """uint8 HWC images in a grid, each with an optional (multi-line) title; `cell` is inches per image."""
    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * (cell + 0.3)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(images[i], interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, title: str = "") -> Figure:
    """Loss and top-1 accuracy per epoch, train vs validation, with the phase change marked."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = history["epoch"] + 1
    for ax, key, label in ((ax_loss, "loss", "cross-entropy"), (ax_acc, "accuracy", "top-1 accuracy")):
        ax.plot(epochs, history[key], "o-", label="train (augmented, dropout on)")
        ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
    finetune = history.loc[history["phase"] == "finetune", "epoch"]
    if len(finetune) and len(finetune) < len(history):
        for ax in (ax_loss, ax_acc):
            ax.axvline(finetune.min() + 0.5, color="grey", linestyle="--", label="backbone unfrozen")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (each true class sums to 1); names on the axes when few classes."""
    support = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, support, out=np.zeros(cm.shape, float), where=support > 0)
    side = 4.5 if len(names) <= MAX_NAMED_TICKS else 8.5
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    if len(names) <= MAX_NAMED_TICKS:
        ticks = np.arange(len(names))
        ax.set_xticks(ticks, names, rotation=90, fontsize=7)
        ax.set_yticks(ticks, names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def per_class_bars(per_class: pd.DataFrame, title: str, show: int = 15) -> Figure:
    """Test accuracy of the `show` worst and `show` best classes (all of them when there are few)."""
    df = per_class.dropna(subset=["accuracy"]).sort_values("accuracy")
    if len(df) > 2 * show:
        df = pd.concat([df.head(show), df.tail(show)])
    fig, ax = plt.subplots(figsize=(6, 0.22 * len(df) + 1))
    colours = plt.cm.RdYlGn(df["accuracy"].to_numpy())
    ax.barh(np.arange(len(df)), df["accuracy"], color=colours)
    ax.set_yticks(np.arange(len(df)), df["class"], fontsize=7)
    ax.set(xlim=(0, 1), xlabel="test top-1 accuracy", title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def comparison_bars(table: pd.DataFrame, columns: Sequence[str], title: str) -> Figure:
    """Grouped bars: one group per model (the table's index), one bar per metric column."""
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(table)), 3.8))
    width = 0.8 / len(columns)
    x = np.arange(len(table))
    for i, col in enumerate(columns):
        bars = ax.bar(x + (i - (len(columns) - 1) / 2) * width, table[col], width, label=col)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, table.index)
    ax.set(ylim=(0, 1.08), ylabel="accuracy", title=title)
    ax.legend(fontsize=8, ncols=len(columns), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def overlaid_curves(histories: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """Train and validation accuracy per epoch of several models on shared axes."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for name, history in histories.items():
        for ax, key in zip(axes, ("accuracy", "val_accuracy"), strict=True):
            ax.plot(history["epoch"] + 1, history[key], "o-", label=name)
    for ax, label in zip(axes, ("train (augmented)", "validation"), strict=True):
        ax.set(xlabel="epoch", ylabel="top-1 accuracy", title=label, ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
