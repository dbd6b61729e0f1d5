"""Evaluating a trained classifier: top-k, per-class accuracy, confusion matrices, speed, metrics.json."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd

from helpers import artifacts, runtime
from helpers.classify.config import TrainConfig
from helpers.classify.inference import predict_probs
from helpers.classify.train import TrainResult, run_record
from helpers.data.prepared import Prepared


@dataclass
class Evaluation:
    metrics: dict[str, Any]  # what metrics.json holds
    test_probs: np.ndarray  # (N, num_classes)
    confusion: np.ndarray  # (num_classes, num_classes): rows true, columns predicted
    coarse_confusion: np.ndarray  # (num_coarse, num_coarse)
    per_class: pd.DataFrame  # class, accuracy, support; worst first
    confused_pairs: pd.DataFrame  # most frequent (true, predicted) mistakes
    misclassified: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # test indices, surest first


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the k highest probabilities."""
    k = min(k, probs.shape[1])
    topk = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(topk == np.asarray(labels)[:, None], axis=1)))


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped like Keras at 1e-7)."""
    p = probs[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return float(-np.mean(np.log(np.clip(p, 1e-7, 1.0))))


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Counts (n, n): rows are true classes, columns predicted."""
    return np.bincount(np.asarray(true, int) * n + np.asarray(pred, int), minlength=n * n).reshape(n, n)


def fine_to_coarse(data: Prepared) -> np.ndarray:
    """For each fine class its coarse class, read off the labelled splits (-1 where a class never occurs)."""
    mapping = np.full(data.num_classes, -1, dtype=int)
    for split in (data.train, data.val, data.test):
        mapping[np.asarray(split.labels, int)] = np.asarray(split.coarse, int)
    return mapping


def per_class_table(cm: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Accuracy and test support per class, worst first."""
    support = cm.sum(axis=1)
    acc = np.divide(np.diag(cm), support, out=np.full(len(names), np.nan), where=support > 0)
    df = pd.DataFrame({"class": names, "accuracy": acc, "support": support})
    return df.sort_values(["accuracy", "class"]).reset_index(drop=True)


def most_confused(cm: np.ndarray, names: list[str], top: int = 10) -> pd.DataFrame:
    """The `top` most frequent off-diagonal (true, predicted) pairs with their share of the true class."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = [np.unravel_index(i, off.shape) for i in order if off.flat[i] > 0]
    return pd.DataFrame(
        [
            {
                "true": names[t],
                "predicted": names[p],
                "count": int(off[t, p]),
                "share_of_true": float(off[t, p] / max(cm[t].sum(), 1)),
            }
            for t, p in rows
        ],
        columns=["true", "predicted", "count", "share_of_true"],
    )


def _timed_probs(model: keras.Model, images: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, float]:
    """Probabilities and wall seconds of the whole prediction (input pipeline included)."""
    start = time.perf_counter()
    probs = predict_probs(model, images, cfg.backbone, cfg.input_size, cfg.batch_size)
    return probs, time.perf_counter() - start


def evaluate_classifier(
    model: keras.Model, cfg: TrainConfig, data: Prepared, result: TrainResult
) -> Evaluation:
    """Score train/val/test (no augmentation), build the confusion views and the metrics dict."""
    scores: dict[str, Any] = {}
    probs: dict[str, np.ndarray] = {}
    # val first: it builds the predict graph, so the timed test pass measures steady-state throughput.
    for name in ("val", "test", "train"):
        split = getattr(data, name)
        probs[name], seconds = _timed_probs(model, split.images, cfg)
        scores[f"{name}_top1"] = topk_accuracy(probs[name], split.labels, 1)
        scores[f"{name}_top5"] = topk_accuracy(probs[name], split.labels, 5)
        scores[f"{name}_loss"] = cross_entropy(probs[name], split.labels)
        if name == "test":
            scores["images_per_second"] = len(split.labels) / seconds
    test_pred = probs["test"].argmax(axis=1)
    cm = confusion_matrix(data.test.labels, test_pred, data.num_classes)
    to_coarse = fine_to_coarse(data)
    coarse_cm = confusion_matrix(data.test.coarse, to_coarse[test_pred], len(data.coarse_label_names))
    wrong = np.flatnonzero(test_pred != data.test.labels)
    wrong = wrong[np.argsort(-probs["test"][wrong].max(axis=1), kind="stable")]
    metrics = _metrics(cfg, data, result, scores)
    metrics["test_top1_coarse"] = float(np.trace(coarse_cm) / max(coarse_cm.sum(), 1))
    return Evaluation(
        metrics=metrics,
        test_probs=probs["test"],
        confusion=cm,
        coarse_confusion=coarse_cm,
        per_class=per_class_table(cm, data.label_names),
        confused_pairs=most_confused(cm, data.label_names),
        misclassified=wrong,
    )


def epoch_seconds(history: pd.DataFrame) -> pd.Series:
    """Wall seconds of the epochs that did not build a graph (all epochs if every one did)."""
    if "seconds" not in history or history.empty:
        return pd.Series(dtype=float)
    steady = history.loc[~history["includes_graph_build"].astype(bool), "seconds"]
    return steady if len(steady) else history["seconds"]


def _metrics(cfg: TrainConfig, data: Prepared, result: TrainResult, scores: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json record: scores, size, speed, and everything needed to reproduce them."""
    seconds = epoch_seconds(result.history)
    return {
        "name": cfg.backbone,
        **scores,
        "num_classes": data.num_classes,
        "chance_top1": 1.0 / data.num_classes,
        "params": int(result.model.count_params()),
        "epochs_run": int(len(result.history)),
        "epoch_seconds": float(seconds.median()) if len(seconds) else float("nan"),
        # Training throughput including each epoch's validation pass.
        "train_images_per_second": float(len(data.train.labels) / seconds.median())
        if len(seconds)
        else float("nan"),
        "dtype_policy": result.policy,
        "replicas": result.replicas,
        "counts": {s: int(len(getattr(data, s).labels)) for s in ("train", "val", "test")},
        "config": run_record(cfg, data),
        "versions": runtime.versions(),
        "device": runtime.device_summary(),
    }


def save_metrics(evaluation: Evaluation, cfg: TrainConfig) -> None:
    """metrics.json, per_class.csv and confused_pairs.csv into the model folder."""
    artifacts.write_json(cfg.model_dir / "metrics.json", evaluation.metrics)
    artifacts.write_text(cfg.model_dir / "per_class.csv", evaluation.per_class.to_csv(index=False))
    artifacts.write_text(cfg.model_dir / "confused_pairs.csv", evaluation.confused_pairs.to_csv(index=False))
