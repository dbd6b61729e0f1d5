"""01-preprocess through papermill: the manifest it wrote describes compact, checksummed splits."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import artifacts
from helpers.data import load_prepared
from helpers.data.preprocess import SMOKE_CIFAR

pytestmark = pytest.mark.notebook


def test_smoke_preprocess(smoke_run):
    run_dir = smoke_run.ensure("01")
    manifest = artifacts.read_json(run_dir / "data" / "manifest.json")
    n, per_class = SMOKE_CIFAR["num_classes"], SMOKE_CIFAR["train_per_class"]
    assert manifest["num_classes"] == n and len(manifest["label_names"]) == n
    counts = manifest["counts"]
    assert counts["train"] + counts["val"] == n * per_class
    assert counts["val"] == round(0.1 * per_class) * n  # stratified: 10 % of every class
    assert counts["test"] == n * SMOKE_CIFAR["test_per_class"]
    assert manifest["image_shape"] == [32, 32, 3]  # never resized
    assert manifest["config"]["preset"] == "smoke" and manifest["seed"] == 0
    prepared = load_prepared(run_dir / "data")  # verifies every checksum
    assert prepared.train.images.dtype == np.uint8
    assert set(np.bincount(prepared.val.labels)) == {round(0.1 * per_class)}
    assert not set(map(bytes, prepared.train.images[:50])) & set(map(bytes, prepared.val.images))
    assert (run_dir / "figures" / "01-sample-grid.png").stat().st_size > 5_000
    assert (run_dir / "notebooks" / "01-preprocess.ipynb").is_file()


def test_sample_preprocess_on_real_miniature(sample_run):
    run_dir = sample_run.ensure("01")
    manifest = artifacts.read_json(run_dir / "data" / "manifest.json")
    assert manifest["num_classes"] == 100
    assert manifest["label_names"][:3] == ["apple", "aquarium_fish", "baby"]
    assert manifest["counts"]["train"] + manifest["counts"]["val"] == 585
    assert manifest["counts"]["test"] == 100
