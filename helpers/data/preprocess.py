"""01-preprocess: pick the CIFAR-100 source for a preset, subset and split it, write compact uint8 arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.config import RunPaths, preset_knobs, require_data_source
from helpers.data.prepared import Prepared, Split, split_indices

#: Synthetic CIFAR-format data for the smoke preset: 10 shape x colour x texture classes.
SMOKE_CIFAR = {"num_classes": 10, "train_per_class": 100, "test_per_class": 20, "seed": 0}

#: Knob -> preset -> default (the sample preset's data_source must be given).
DEFAULTS: dict[str, dict[str, Any]] = {
    "data_source": {"smoke": "synthetic", "sample": None, "full": "keras"},
    "samples_per_class": {"smoke": None, "sample": None, "full": 500},
    "val_fraction": {"smoke": 0.1, "sample": 0.2, "full": 0.1},
    "test_per_class": {"smoke": None, "sample": None, "full": None},
}


@dataclass(frozen=True)
class PreprocessConfig:
    """Knobs of 01-preprocess; None in the notebook means the preset's default."""

    preset: str
    run_dir: str
    data_source: str  # "keras", or a cifar-100-python folder / .tar.gz
    samples_per_class: int | None  # training images kept per class (None: all); the seed used 500
    val_fraction: float  # share of each class's kept images held out for validation
    test_per_class: int | None  # official test images kept per class (None: all); caps a rehearsal
    seed: int

    @classmethod
    def for_preset(
        cls,
        preset: str,
        run_dir: str | None = None,
        data_source: str | None = None,
        samples_per_class: int | None = None,
        val_fraction: float | None = None,
        seed: int = 0,
        test_per_class: int | None = None,
    ) -> PreprocessConfig:
        paths = RunPaths.for_run(preset, run_dir)
        require_data_source(preset, data_source, "a cifar-100-python folder or .tar.gz")
        knobs = preset_knobs(
            preset,
            DEFAULTS,
            data_source=data_source,
            samples_per_class=samples_per_class,
            val_fraction=val_fraction,
            test_per_class=test_per_class,
        )
        return cls(preset=preset, run_dir=str(paths.root), seed=seed, **knobs)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(Path(self.run_dir))


def resolve_source(cfg: PreprocessConfig) -> str:
    """The source `load_cifar100` reads: synthetic data is written (once) in the canonical format first."""
    if cfg.data_source != "synthetic":
        return cfg.data_source
    from helpers.data.synthetic import ensure_synthetic_cifar

    return str(ensure_synthetic_cifar(cfg.paths.sources, **SMOKE_CIFAR))


def make_splits(data: Any, cfg: PreprocessConfig) -> Prepared:
    """Stratified subsets: official train -> train/val; official test (all, or `test_per_class`) -> test."""
    train_idx, val_idx = split_indices(data.y_train, cfg.samples_per_class, cfg.val_fraction, cfg.seed)
    test_idx = None
    if cfg.test_per_class is not None:
        test_idx, _ = split_indices(data.y_test, cfg.test_per_class, 0.0, cfg.seed)

    def take(x: np.ndarray, y: np.ndarray, yc: np.ndarray, idx: np.ndarray | None = None) -> Split:
        return Split(x, y, yc) if idx is None else Split(x[idx], y[idx], yc[idx])

    return Prepared(
        train=take(data.x_train, data.y_train, data.y_train_coarse, train_idx),
        val=take(data.x_train, data.y_train, data.y_train_coarse, val_idx),
        test=take(data.x_test, data.y_test, data.y_test_coarse, test_idx),
        label_names=list(data.label_names),
        coarse_label_names=list(data.coarse_label_names),
    )


def class_counts(prepared: Prepared) -> dict[str, np.ndarray]:
    """Images per fine class in each split."""
    n = prepared.num_classes
    return {s: np.bincount(getattr(prepared, s).labels, minlength=n) for s in ("train", "val", "test")}


def manifest_for(cfg: PreprocessConfig, source: str) -> dict[str, Any]:
    """The provenance part of manifest.json (counts and checksums are added when saving)."""
    from helpers.runtime import versions

    return {"source": source, "seed": cfg.seed, "config": asdict(cfg), "versions": versions()}


def plot_class_balance(prepared: Prepared, ax=None):
    """Stacked bar chart of images per class in each split."""
    import matplotlib.pyplot as plt

    counts = class_counts(prepared)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, prepared.num_classes * 0.12), 3))
    bottom = np.zeros(prepared.num_classes)
    for split, c in counts.items():
        ax.bar(np.arange(prepared.num_classes), c, bottom=bottom, label=split, width=0.9)
        bottom += c
    ax.set(xlabel="fine class index", ylabel="images", title="Images per class")
    ax.legend()
    return ax.figure


def plot_sample_grid(images: np.ndarray, labels: np.ndarray, names: list[str], per_class: int = 1, **kw):
    """A labelled grid: the first `per_class` images of up to 20 classes."""
    import matplotlib.pyplot as plt

    picks = [i for c in np.unique(labels)[:20] for i in np.flatnonzero(labels == c)[:per_class]]
    cols = min(10, len(picks))
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6), squeeze=False, **kw)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks, strict=False):
        ax.imshow(images[i])
        ax.set_title(names[labels[i]], fontsize=7)
    fig.tight_layout()
    return fig
