"""The prepared CIFAR-100 splits that 01-preprocess writes and every later notebook reads.

Layout under ``run_dir/data/``: ``{split}_images.npy`` (N, 32, 32, 3) uint8 at native size,
``{split}_labels.npy`` (N,) int16 fine labels, ``{split}_coarse.npy`` (N,) int16 coarse labels for
split in train/val/test, and ``manifest.json`` (counts, label names, seed, source, checksums, config).
Resizing to a backbone's input size happens on the fly in the input pipeline, never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts

SPLITS = ("train", "val", "test")
PARTS = ("images", "labels", "coarse")  # the arrays of one split, in Split field order


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) fine labels
    coarse: np.ndarray  # (N,) coarse labels


@dataclass
class Prepared:
    train: Split
    val: Split
    test: Split
    label_names: list[str]
    coarse_label_names: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def split_indices(
    labels: np.ndarray, samples_per_class: int | None, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified per-class subset of at most `samples_per_class`, split into (train_idx, val_idx).

    Every class keeps at least one training example; a class with two or more also gets at least one
    validation example when `val_fraction` > 0.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if samples_per_class is not None:
            idx = idx[:samples_per_class]
        n_val = int(round(len(idx) * val_fraction))
        if val_fraction > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def save_prepared(data_dir: str | Path, prepared: Prepared, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the three splits atomically and a manifest with counts and SHA-256 checksums."""
    data_dir = Path(data_dir)
    checksums = {}
    for name in SPLITS:
        split: Split = getattr(prepared, name)
        for suffix, arr, dtype in (
            ("images", split.images, np.uint8),
            ("labels", split.labels, np.int16),
            ("coarse", split.coarse, np.int16),
        ):
            path = artifacts.save_npy(
                data_dir / f"{name}_{suffix}.npy", np.ascontiguousarray(arr, dtype=dtype)
            )
            checksums[path.name] = artifacts.sha256_file(path)
    manifest = {
        **manifest,
        "counts": {name: int(len(getattr(prepared, name).labels)) for name in SPLITS},
        "num_classes": prepared.num_classes,
        "label_names": prepared.label_names,
        "coarse_label_names": prepared.coarse_label_names,
        "image_shape": list(prepared.train.images.shape[1:]),
        "checksums": checksums,
    }
    artifacts.write_json(data_dir / "manifest.json", manifest)
    return manifest


def load_prepared(data_dir: str | Path, verify: bool = True) -> Prepared:
    """Read what 01-preprocess wrote; a missing file or checksum mismatch is a clear error."""
    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} not found: run notebooks/01-preprocess.ipynb for this run_dir first"
        )
    manifest = artifacts.read_json(manifest_path)
    if verify:
        for fname, digest in manifest["checksums"].items():
            if artifacts.sha256_file(data_dir / fname) != digest:
                raise ValueError(f"checksum mismatch for {data_dir / fname}: re-run 01-preprocess")
    splits = {
        name: Split(
            *(artifacts.load_npy(data_dir / f"{name}_{s}.npy") for s in ("images", "labels", "coarse"))
        )
        for name in SPLITS
    }
    return Prepared(
        **splits,
        label_names=list(manifest["label_names"]),
        coarse_label_names=list(manifest["coarse_label_names"]),
        manifest=manifest,
    )
