"""Two-phase fine-tuning with resumable state: head on a frozen backbone, then the backbone unfrozen.

Layout under ``run_dir/models/<backbone>/``: ``config.json`` (written first), ``history.csv`` (one row per
epoch), ``checkpoints/backup/{head,finetune}/`` (the latest state of the phase in progress: weights,
optimizer and epoch; one phase at a time), ``checkpoints/best.keras`` (best val_accuracy so far), and
``model.keras`` (the best weights) once training finished, when ``checkpoints/`` is deleted.
Run again with the same config and data, a killed run resumes at the epoch it was in; a finished one is
loaded instead of retrained. A different config or dataset starts over.

With ``weights=None`` the backbone is random, so freezing it would train a head on noise: phase 1 then
trains the whole network and phase 2 continues it, same optimizer, as a second cosine cycle at the lower
rate (no recompile, which also saves a graph build).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd
import tensorflow as tf

from helpers import artifacts
from helpers.classify.backbones import backbone_layer, build_classifier, freeze_batchnorm, get_backbone
from helpers.classify.callbacks import HistoryLog, PhaseBackup, cosine_schedule, read_history
from helpers.classify.config import TrainConfig
from helpers.classify.pipeline import make_dataset
from helpers.classify.preprocessing import for_training
from helpers.data.prepared import Prepared


@dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame  # every epoch of the run so far, including ones from before a resume
    policy: str  # Keras dtype policy the model was trained under
    replicas: int  # devices the strategy trained on
    resumed: bool  # True when this call continued or reloaded earlier work
    config: TrainConfig  # what it trained with: on several devices the scaled global batch and lr


def choose_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """MirroredStrategy over `devices`, or over all GPUs when there are several; else the default."""
    if devices is None and len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    if devices is not None:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def resolve_policy(mixed_precision: bool | None) -> str:
    """Keras dtype policy: mixed_float16 when asked, or (None) when a GPU is present."""
    if mixed_precision is None:
        mixed_precision = bool(tf.config.list_physical_devices("GPU"))
    return "mixed_float16" if mixed_precision else "float32"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Set Keras' global dtype policy for the block, restoring the previous one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_record(cfg: TrainConfig, data: Prepared) -> dict[str, Any]:
    """config.json: the training knobs plus what the model needs to be used (labels, input size)."""
    return {
        **cfg.to_dict(),
        "num_classes": data.num_classes,
        "label_names": data.label_names,
        "coarse_label_names": data.coarse_label_names,
        "data_checksums": data.manifest.get("checksums", {}),
    }


def prepare_model_dir(cfg: TrainConfig, data: Prepared) -> bool:
    """Write config.json; keep earlier state only if it came from the same config and data (returns that)."""
    model_dir, record = cfg.model_dir, run_record(cfg, data)
    path = model_dir / "config.json"
    same = path.is_file() and _comparable(artifacts.read_json(path)) == _comparable(record)
    if path.is_file() and not same:
        print(f"{model_dir}: config or data changed since the last run, starting over")
    if not same:
        for name in ("checkpoints", "model.keras", "history.csv", "metrics.json"):
            target = model_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    artifacts.write_json(path, record)
    return same


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A config without fields that do not change the result (where the run folder lives)."""
    return {k: v for k, v in record.items() if k != "run_dir"}


def train_classifier(
    cfg: TrainConfig,
    data: Prepared,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainResult:
    """Train (or resume, or reload) the classifier `cfg` describes; returns the best-val_accuracy model."""
    strategy = strategy or choose_strategy()
    cfg = cfg.on_replicas(strategy.num_replicas_in_sync)  # config.json records the scaled recipe
    policy = resolve_policy(cfg.mixed_precision)
    resumed = prepare_model_dir(cfg, data)
    final = cfg.model_dir / "model.keras"
    with dtype_policy(policy), strategy.scope():
        if resumed and final.is_file():
            print(f"{final} exists for this config: loading it instead of training again")
            model = keras.models.load_model(final, compile=False)
        else:
            keras.utils.set_random_seed(cfg.seed)
            model = _fit_phases(cfg, data, callbacks or [])
            _save_atomic(model, final)
            shutil.rmtree(cfg.model_dir / "checkpoints", ignore_errors=True)  # model.keras is the best
    history = read_history(cfg.model_dir / "history.csv")
    return TrainResult(model, history, policy, strategy.num_replicas_in_sync, resumed, cfg)


def _fit_phases(cfg: TrainConfig, data: Prepared, extra: list[keras.callbacks.Callback]) -> keras.Model:
    """Phase 1 then phase 2 (in the caller's strategy scope), each resumable; returns the best checkpoint."""
    spec = get_backbone(cfg.backbone)
    in_model = cfg.preprocessing == "in-model"  # augmented uint8 batches; the model resizes + preprocesses
    train, val = data.train, data.val
    train_ds = make_dataset(
        train.images, train.labels, spec, cfg.input_size, cfg.batch_size, True, cfg.seed, not in_model
    )
    val_ds = make_dataset(
        val.images, val.labels, spec, cfg.input_size, cfg.batch_size, preprocess=not in_model
    )
    model = build_classifier(spec, cfg.input_size, data.num_classes, cfg.weights, cfg.dropout, in_model)
    for_training(model, True)  # antialias off: training only upsamples, and XLA has no antialiased resize
    phases = [
        ("head", 0, cfg.head_epochs, cfg.lr),
        ("finetune", cfg.head_epochs, cfg.epochs, cfg.lr * cfg.finetune_lr_scale),
    ]
    traced = False  # whether the current train graph has run (later epochs then skip the build)
    for phase, start, stop, lr in phases:
        # A later phase's backup replaced this phase's: it finished in an earlier run.
        superseded = phase == "head" and (cfg.model_dir / "checkpoints" / "backup" / "finetune").is_dir()
        if stop > start and not superseded:
            before = _trainable_paths(model)
            set_trainable(model, cfg, phase)
            if not model.compiled or _trainable_paths(model) != before:
                # A new trainable set needs a new optimizer and train graph (~20 s).
                _compile(model, lr, cfg.jit_compile)
                traced = False
            # BackupAndRestore sets this private attribute on restore and Keras never clears it: left over
            # from phase 1 it would make phase 2 start at phase 1's epoch.
            model._initial_epoch = None
            history = model.fit(
                train_ds,
                validation_data=val_ds,
                initial_epoch=start,
                epochs=stop,
                steps_per_epoch=cfg.max_steps,  # None: the whole training split
                callbacks=_callbacks(cfg, phase, start, stop, lr, not traced) + extra,
                shuffle=False,  # train_ds reshuffles itself every epoch; this only silences Keras' warning
            )
            traced = traced or bool(history.epoch)
    best = cfg.model_dir / "checkpoints" / "best.keras"
    if not best.is_file():
        raise FileNotFoundError(f"{best} missing after training: delete {cfg.model_dir} and train again")
    return keras.models.load_model(best, compile=False)


def set_trainable(model: keras.Model, cfg: TrainConfig, phase: str) -> None:
    """Freeze the backbone in a pretrained head phase; later unfreeze all or the top `unfreeze_top` layers."""
    backbone = backbone_layer(model)
    pretrained = cfg.weights is not None
    backbone.trainable = not (pretrained and phase == "head")
    if pretrained and phase == "finetune" and cfg.unfreeze_top is not None:
        for layer in backbone.layers[: -cfg.unfreeze_top or None]:
            layer.trainable = False
    if pretrained:
        freeze_batchnorm(backbone)  # `trainable = True` above unfroze BatchNorm too


def _trainable_paths(model: keras.Model) -> list[str]:
    """Which variables training would update now."""
    return [v.path for v in model.trainable_variables]


def _compile(model: keras.Model, lr: float, jit_compile: bool | None = None) -> None:
    """Adam + sparse cross-entropy, top-1 and top-5 accuracy (a fresh optimizer each phase)."""
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
        jit_compile="auto" if jit_compile is None else jit_compile,
    )
    # Adam's moments created now, eagerly: left to the first train step they are created inside its
    # graph trace, which takes ~4 s longer for ResNet50 (320 variables; 0.5 s here).
    model.optimizer.build(model.trainable_variables)
    # The loss and metric trackers too: without a distribution strategy set, Keras builds them inside the
    # first train step's trace, and a tf.function that creates variables traces itself twice (ResNet50's
    # first step ~7 s longer). Their variables do not depend on the batch: one dummy row builds them.
    y, y_pred = tf.zeros((1,), tf.int32), tf.fill((1, model.output_shape[-1]), 1.0 / model.output_shape[-1])
    model.compute_loss(y=y, y_pred=y_pred)
    model.compute_metrics(None, y, y_pred, sample_weight=None)
    model.reset_metrics()


def _callbacks(
    cfg: TrainConfig, phase: str, start: int, stop: int, lr: float, builds: bool
) -> list[keras.callbacks.Callback]:
    """Schedule, epoch log, backup (after the log), best checkpoint, and early stopping in phase 2."""
    ckpt = cfg.model_dir / "checkpoints"
    best_so_far = read_history(cfg.model_dir / "history.csv").get("val_accuracy", pd.Series(dtype=float))
    out: list[keras.callbacks.Callback] = [
        keras.callbacks.LearningRateScheduler(cosine_schedule(lr, start, stop - start)),
        HistoryLog(cfg.model_dir / "history.csv", phase, first_epoch_builds=builds),
        # Kept after the phase ends, until the next phase has its own: a rerun then skips a finished phase.
        PhaseBackup(
            ckpt / "backup" / phase, supersedes=None if phase == "head" else ckpt / "backup" / "head"
        ),
        keras.callbacks.ModelCheckpoint(
            str(ckpt / "best.keras"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=float(best_so_far.max()) if len(best_so_far.dropna()) else None,
        ),
    ]
    if phase == "finetune":
        out.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience))
    return out


def _save_atomic(model: keras.Model, path: Path) -> None:
    """model.save into a temporary .keras beside `path`, then rename (a kill never leaves half a model)."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    for_training(model, False).save(tmp)
    os.replace(tmp, path)
