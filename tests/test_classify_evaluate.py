"""Evaluation arithmetic and the 05-compare table, on small hand-checked inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from helpers import artifacts
from helpers.classify import compare
from helpers.classify.evaluate import (
    confusion_matrix,
    cross_entropy,
    epoch_seconds,
    fine_to_coarse,
    most_confused,
    per_class_table,
    topk_accuracy,
)
from helpers.config import RunPaths
from helpers.data import Prepared, Split

PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # label 0: top-1 right
        [0.5, 0.3, 0.2],  # label 1: top-1 wrong, top-2 right
        [0.1, 0.3, 0.6],  # label 2: right
        [0.6, 0.3, 0.1],  # label 2: wrong even at top-2
    ]
)
LABELS = np.array([0, 1, 2, 2])


def test_topk_and_loss():
    assert topk_accuracy(PROBS, LABELS, 1) == 0.5
    assert topk_accuracy(PROBS, LABELS, 2) == 0.75
    assert topk_accuracy(PROBS, LABELS, 5) == 1.0  # k above the class count means all
    expected = -np.mean(np.log([0.7, 0.3, 0.6, 0.1]))
    assert cross_entropy(PROBS, LABELS) == pytest.approx(expected)


def test_confusion_views():
    cm = confusion_matrix(LABELS, PROBS.argmax(axis=1), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 0, 0], [1, 0, 1]])
    per_class = per_class_table(cm, ["a", "b", "c"])
    assert per_class["class"].tolist() == ["b", "c", "a"]  # worst first
    assert per_class["accuracy"].tolist() == [0.0, 0.5, 1.0] and per_class["support"].tolist() == [1, 2, 1]
    pairs = most_confused(cm, ["a", "b", "c"])
    assert pairs[["true", "predicted", "count"]].values.tolist() == [["b", "a", 1], ["c", "a", 1]]
    assert pairs["share_of_true"].tolist() == [1.0, 0.5]


def test_fine_to_coarse_and_epoch_seconds():
    def split(fine, coarse):
        return Split(np.zeros((len(fine), 32, 32, 3), np.uint8), np.array(fine), np.array(coarse))

    data = Prepared(split([0, 2], [1, 0]), split([1], [1]), split([3], [0]), list("abcde"), ["x", "y"])
    assert fine_to_coarse(data).tolist() == [1, 1, 0, 0, -1]  # class e never occurs
    history = pd.DataFrame({"seconds": [30.0, 2.0, 4.0], "includes_graph_build": [True, False, False]})
    assert epoch_seconds(history).tolist() == [2.0, 4.0]
    assert epoch_seconds(history.iloc[:1]).tolist() == [30.0]  # only build epochs: use them


def _metrics(name: str, train: float, val: float, test: float) -> dict:
    """A metrics.json as 02-04 write it, with just the fields 05 reads."""
    return {
        "train_top1": train, "val_top1": val, "test_top1": test, "test_top5": min(1.0, test + 0.2),
        "test_loss": 1.0 - test, "params": 1_000_000, "epochs_run": 3, "epoch_seconds": 2.0,
        "images_per_second": 100.0, "config": {"backbone": name, "input_size": 32, "weights": None},
    }  # fmt: skip


def test_compare_table_best_and_missing(tmp_path):
    paths = RunPaths(tmp_path / "run")
    artifacts.write_json(paths.model("vgg16") / "metrics.json", _metrics("vgg16", 0.99, 0.60, 0.62))
    artifacts.write_json(paths.model("resnet50") / "metrics.json", _metrics("resnet50", 0.80, 0.75, 0.70))
    artifacts.write_text(paths.model("resnet50") / "history.csv", "epoch,accuracy,val_accuracy\n0,0.5,0.6\n")
    table, histories, missing = compare.collect(paths)
    assert list(table.index) == ["vgg16", "resnet50"] and missing == ["mobilenet_v2"]
    assert table.loc["vgg16", "overfit_gap"] == pytest.approx(0.39)
    assert histories["vgg16"].empty and len(histories["resnet50"]) == 1
    best = compare.pick_best(table, paths)
    assert best["name"] == "resnet50"
    compare.write_outputs(paths, table, best)
    written = artifacts.read_json(paths.compare / "best.json")
    # relative to the run folder, never absolute: a run folder synced through S3 or moved stays valid
    assert written["model_dir"] == "models/resnet50" and written["test_top1"] == 0.70
    assert pd.read_csv(paths.compare / "comparison.csv", index_col="model").loc["vgg16", "val_top1"] == 0.60
    text = compare.conclusion(table, missing, best)
    assert "**resnet50** has the best test top-1, **70.0%**, 8.0 points ahead of vgg16" in text
    assert "vgg16 overfits the most" in text and "mobilenet_v2" in text
    with pytest.raises(ValueError, match="run 02, 03 or 04 first"):
        compare.pick_best(compare.collect(RunPaths(tmp_path / "empty"))[0], paths)
    assert paths.best_classifier() == paths.model("resnet50")
    moved = RunPaths(tmp_path / "moved")
    shutil.move(paths.root, moved.root)
    assert moved.best_classifier() == moved.model("resnet50") and moved.best_classifier().is_dir()
