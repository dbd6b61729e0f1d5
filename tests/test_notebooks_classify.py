"""02-05 through papermill with the smoke preset: every classifier learns the synthetic classes; 05 compares.

The smoke data has 10 synthetic classes (colour x shape x texture), so chance is 10 % top-1; each model
trains from random weights for a few epochs on 2 CPU cores and must reach at least 3x chance on the test set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from notebook_support import markdown_outputs

from helpers import artifacts
from helpers.classify import load_classifier, predict_topk
from helpers.data import load_prepared
from helpers.data.preprocess import SMOKE_CIFAR

pytestmark = pytest.mark.notebook

NUM_CLASSES = SMOKE_CIFAR["num_classes"]
CHANCE = 1 / NUM_CLASSES  # 0.10
NOTEBOOKS = {"vgg16": "02-train-vgg16", "resnet50": "03-train-resnet", "mobilenet_v2": "04-train-mobilenet"}
FIGURES = ["augmented-samples", "curves", "per-class", "confusion-fine", "confusion-coarse", "misclassified"]
METRIC_KEYS = {
    "train_top1", "val_top1", "test_top1", "test_top5", "test_loss", "num_classes", "params",
    "epoch_seconds", "images_per_second", "config", "versions", "device",
}  # fmt: skip


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_training_notebook_learns(classifier_run, name):
    number = NOTEBOOKS[name][:2]
    run_dir = classifier_run.ensure("01", number)
    model_dir = run_dir / "models" / name
    metrics = artifacts.read_json(model_dir / "metrics.json")
    assert set(metrics) >= METRIC_KEYS
    assert metrics["num_classes"] == NUM_CLASSES and metrics["chance_top1"] == pytest.approx(CHANCE)
    assert metrics["test_top1"] >= 3 * CHANCE, f"{name} test top-1 {metrics['test_top1']:.2f} < 3x chance"
    assert metrics["config"]["weights"] is None and metrics["config"]["input_size"] == 32

    config = artifacts.read_json(model_dir / "config.json")
    assert config["backbone"] == name and config["num_classes"] == NUM_CLASSES
    history = pd.read_csv(model_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(config["head_epochs"] + config["finetune_epochs"]))
    assert metrics["epochs_run"] == len(history)
    for fig in FIGURES:
        assert (model_dir / f"{fig}.png").stat().st_size > 5_000, fig

    executed = run_dir / "notebooks" / f"{NOTEBOOKS[name]}.ipynb"
    assert f"**{metrics['test_top1']:.1%}** test top-1" in markdown_outputs(executed)

    # The demo's entry points reproduce the notebook's test accuracy from the saved files.
    model, config = load_classifier(model_dir)
    test = load_prepared(run_dir / "data").test
    indices, _ = predict_topk(model, config, test.images, k=5)
    assert np.mean(indices[:, 0] == test.labels) == pytest.approx(metrics["test_top1"])
    assert model.get_layer("features").output.shape[-1] > 0


def test_compare_notebook(classifier_run):
    run_dir = classifier_run.ensure("01", "02", "03", "04", "05")
    table = pd.read_csv(run_dir / "compare" / "comparison.csv", index_col="model")
    assert sorted(table.index) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        metrics = artifacts.read_json(run_dir / "models" / name / "metrics.json")
        for key in ("train_top1", "val_top1", "test_top1", "test_top5", "images_per_second"):
            assert table.loc[name, key] == pytest.approx(metrics[key])
    best = artifacts.read_json(run_dir / "compare" / "best.json")
    assert (
        table.loc[best["name"], "val_top1"] == table["val_top1"].max() and best["selected_by"] == "val_top1"
    )
    assert best["test_top1"] == pytest.approx(table.loc[best["name"], "test_top1"])
    assert (run_dir / "models" / best["name"] / "model.keras").is_file()
    assert best["model_dir"] == f"models/{best['name']}"  # relative: the run folder may be moved or synced
    for fig in ("accuracy", "curves"):
        assert (run_dir / "compare" / f"{fig}.png").stat().st_size > 5_000
    assert f"**{best['name']}**" in markdown_outputs(run_dir / "notebooks" / "05-compare.ipynb")
