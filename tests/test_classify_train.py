"""Training machinery: presets, two phases, resume after a kill, reload, restart on a new config, metrics.

A tiny two-block network with BatchNorm stands in for the backbone where only the machinery is under test
(registered in the real registry for the test); the real backbones train in the notebook tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from classify_support import TINY, make_prepared, tiny_config

from helpers import artifacts
from helpers.classify import BACKBONES, TrainConfig, load_classifier, predict_topk
from helpers.classify.backbones import backbone_layer, batchnorm_layers
from helpers.classify.callbacks import cosine_schedule
from helpers.classify.evaluate import evaluate_classifier, save_metrics
from helpers.classify.train import train_classifier
from helpers.data import Prepared, load_prepared

METRIC_KEYS = {
    "train_top1", "val_top1", "test_top1", "test_top5", "test_loss", "num_classes", "params",
    "epoch_seconds", "images_per_second", "config", "versions", "device",
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Prepared:
    return load_prepared(make_prepared(tmp_path_factory.mktemp("classify-data")))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TINY)


class Interrupt(RuntimeError):
    pass


class StopAt(keras.callbacks.Callback):
    """Raise when absolute epoch `epoch` is about to start, as a killed kernel would leave things."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"stopped before epoch {epoch}")


class Epochs(keras.callbacks.Callback):
    """Records which epochs actually ran."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)


def test_presets_and_validation():
    smoke, full = TrainConfig.for_preset("smoke", "vgg16"), TrainConfig.for_preset("full", "resnet50")
    assert (smoke.weights, smoke.input_size, full.weights, full.input_size) == (None, 32, "imagenet", 224)
    assert smoke.seed == 0 and smoke.model_dir == Path("runs/smoke/models/vgg16").resolve()
    custom = TrainConfig.for_preset("full", "mobilenet_v2", "/tmp/r", weights="none", lr=0.5, input_size=None)
    assert (custom.weights, custom.lr, custom.input_size) == (None, 0.5, 224)
    with pytest.raises(ValueError, match="input_size >= 32"):
        TrainConfig.for_preset("smoke", "vgg16", input_size=16)
    with pytest.raises(ValueError, match="weights must be"):
        TrainConfig.for_preset("smoke", "vgg16", weights="cifar")
    with pytest.raises(ValueError, match="at least one epoch"):
        TrainConfig.for_preset("smoke", "vgg16", head_epochs=0, finetune_epochs=0)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.for_preset("huge", "vgg16")


def test_cosine_schedule_is_a_function_of_the_epoch():
    schedule = cosine_schedule(1e-3, start=2, epochs=4)
    lrs = [schedule(e, 0.0) for e in range(2, 6)]
    assert lrs[0] == 1e-3 and all(a > b > 0 for a, b in zip(lrs, lrs[1:], strict=False))
    assert math.isclose(lrs[2], 1e-3 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert schedule(3, 123.0) == lrs[1]  # a resumed run gets the same rate whatever the optimizer holds


@pytest.mark.parametrize("stop", [1, 2], ids=["in-head-phase", "in-finetune-phase"])
def test_interrupted_run_resumes_where_it_stopped(tiny, data, tmp_path, stop):
    cfg = tiny_config(tmp_path)
    history_path = cfg.model_dir / "history.csv"
    with pytest.raises(Interrupt):
        train_classifier(cfg, data, callbacks=[StopAt(stop)])
    first = pd.read_csv(history_path)
    assert first["epoch"].tolist() == list(range(stop))
    assert (cfg.model_dir / "checkpoints" / "backup" / "head").is_dir()

    ran = Epochs()
    result = train_classifier(cfg, data, callbacks=[ran])
    assert ran.seen == list(range(stop, 3)), "the second run must continue where the first stopped"
    history = pd.read_csv(history_path)
    assert history["epoch"].tolist() == [0, 1, 2]  # every epoch exactly once
    assert history["phase"].tolist() == ["head", "head", "finetune"]
    assert history.loc[0, "loss"] == first.loc[0, "loss"]  # epoch 0 was not re-run
    np.testing.assert_allclose(history["lr"], [3e-3, 1.5e-3, 3e-4], rtol=1e-6)
    assert result.resumed and result.history["epoch"].tolist() == [0, 1, 2]
    assert (cfg.model_dir / "model.keras").is_file()
    assert not (cfg.model_dir / "checkpoints" / "backup").exists()  # resume state dropped once finished


class Snapshots(keras.callbacks.Callback):
    """First conv kernel, first BatchNorm moving mean, classifier kernel: at each fit()'s start and end."""

    def __init__(self):
        super().__init__()
        self.taken: list[tuple[np.ndarray, ...]] = []

    def _take(self):
        backbone = backbone_layer(self.model)
        conv = next(lay for lay in backbone.layers if isinstance(lay, keras.layers.Conv2D))
        bn = batchnorm_layers(backbone)[0]
        dense = self.model.get_layer("predictions")
        self.taken.append(tuple(v.numpy().copy() for v in (conv.kernel, bn.moving_mean, dense.kernel)))

    def on_train_begin(self, logs=None):
        self._take()

    def on_train_end(self, logs=None):
        self._take()


def test_pretrained_two_phases_freeze_then_unfreeze(tiny, data, tmp_path):
    """weights="imagenet" (the stand-in ignores it): head alone first, then the backbone, BatchNorm frozen."""
    cfg = tiny_config(tmp_path, weights="imagenet")
    snaps = Snapshots()
    result = train_classifier(cfg, data, callbacks=[snaps])
    (conv0, bn0, head0), (conv1, _, head1), (conv2, _, _), (conv3, bn3, _) = snaps.taken
    np.testing.assert_array_equal(conv1, conv0)  # phase 1: backbone frozen
    assert not np.allclose(head1, head0)  # ... while the head learns
    assert not np.allclose(conv3, conv2)  # phase 2: backbone trains
    np.testing.assert_array_equal(bn3, bn0)  # BatchNorm statistics never move
    assert result.history["includes_graph_build"].tolist() == [True, False, True]  # recompiled for phase 2
    np.testing.assert_allclose(result.history["lr"], [3e-3, 1.5e-3, 3e-4], rtol=1e-6)


@pytest.mark.parametrize("weights", [None, "imagenet"], ids=["one-compile", "recompiled-for-phase-2"])
def test_each_compile_traces_the_train_step_once(tiny, data, tmp_path, monkeypatch, weights):
    """Loss and metric trackers are built before fit: a first step that created them would be traced
    twice (the Python train step runs once per trace; a trace of a real backbone takes seconds)."""
    traces, step = [], keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda self, batch: traces.append(1) or step(self, batch))
    result = train_classifier(tiny_config(tmp_path, weights=weights), data)
    assert len(traces) == (2 if weights else 1) and len(result.history) == 3


def test_finished_run_is_reloaded_and_a_new_config_starts_over(tiny, data, tmp_path):
    cfg = tiny_config(tmp_path, head_epochs=1)
    train_classifier(cfg, data)
    ran = Epochs()
    again = train_classifier(cfg, data, callbacks=[ran])
    assert ran.seen == [] and again.resumed and len(again.history) == 2
    changed = train_classifier(tiny_config(tmp_path, head_epochs=1, lr=1e-3), data, callbacks=[ran])
    assert ran.seen == [0, 1] and not changed.resumed
    assert artifacts.read_json(cfg.model_dir / "config.json")["lr"] == 1e-3


def test_metrics_file_and_inference_agree(tiny, data, tmp_path):
    cfg = tiny_config(tmp_path)
    result = train_classifier(cfg, data)
    ev = evaluate_classifier(result.model, cfg, data, result)
    save_metrics(ev, cfg)
    metrics = artifacts.read_json(cfg.model_dir / "metrics.json")
    assert set(metrics) >= METRIC_KEYS
    assert metrics["num_classes"] == 4 and metrics["epochs_run"] == 3
    assert metrics["config"]["backbone"] == "tiny" and metrics["config"]["label_names"] == data.label_names
    assert metrics["versions"]["tensorflow"] and metrics["device"]["cpus"] >= 1
    assert 0 <= metrics["test_top1"] <= metrics["test_top5"] <= 1
    assert ev.confusion.sum() == len(data.test.labels) and ev.coarse_confusion.sum() == len(data.test.labels)
    assert np.trace(ev.confusion) / ev.confusion.sum() == pytest.approx(metrics["test_top1"])

    model, config = load_classifier(cfg.model_dir)
    assert {"backbone", "input_size", "num_classes", "label_names", "weights"} <= set(config)
    idx, probs = predict_topk(model, config, data.test.images, k=3)
    assert idx.shape == probs.shape == (len(data.test.labels), 3)
    assert np.all(np.diff(probs, axis=1) <= 0)
    assert np.mean(idx[:, 0] == data.test.labels) == pytest.approx(metrics["test_top1"])
    one, _ = predict_topk(model, config, data.test.images[0], k=10)  # one HWC image; k capped at 4 classes
    assert one.shape == (1, 4) and one[0, 0] == idx[0, 0]
    big = np.repeat(np.repeat(data.test.images[:2], 3, axis=1), 3, axis=2)  # 96x96: resized on the fly
    assert predict_topk(model, config, big)[0].shape == (2, 4)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


BACKUP = {"latest.weights.h5", "training_metadata.json"}  # one copy: no .bkp twin


def test_only_the_latest_backup_and_the_best_weights_are_kept(tiny, data, tmp_path):
    cfg = tiny_config(tmp_path, finetune_epochs=2)  # epochs 0-1 head, 2-3 finetune
    ckpt = cfg.model_dir / "checkpoints"
    with pytest.raises(Interrupt):
        train_classifier(cfg, data, callbacks=[StopAt(1)])
    assert files_under(ckpt) == {"best.keras"} | {f"backup/head/{f}" for f in BACKUP}

    with pytest.raises(Interrupt):  # the finetune phase's first backup replaces the head phase's
        train_classifier(cfg, data, callbacks=[StopAt(3)])
    assert files_under(ckpt) == {"best.keras"} | {f"backup/finetune/{f}" for f in BACKUP}
    assert artifacts.read_json(ckpt / "backup" / "finetune" / "training_metadata.json")["epoch"] == 3

    ran = Epochs()
    result = train_classifier(cfg, data, callbacks=[ran])
    assert ran.seen == [3]  # the head phase is not redone although its backup is gone
    assert result.history["phase"].tolist() == ["head", "head", "finetune", "finetune"]
    np.testing.assert_allclose(result.history["lr"], [3e-3, 1.5e-3, 3e-4, 1.5e-4], rtol=1e-6)
    assert files_under(cfg.model_dir) == {
        "config.json",
        "history.csv",
        "model.keras",
    }  # model.keras: the best
