"""Shared by the classifier tests: a tiny stand-in backbone and small prepared synthetic data."""

from __future__ import annotations

from pathlib import Path

import keras

from helpers.classify import BackboneSpec, TrainConfig
from helpers.data import Prepared, Split, load_cifar100, save_prepared, split_indices, write_synthetic_cifar


def tiny_backbone(
    include_top: bool = False, weights: str | None = None, input_shape=(32, 32, 3)
) -> keras.Model:
    """Two conv + BatchNorm blocks with the keras.applications call signature."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (8, 16):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    return keras.Model(inputs, x, name="tiny")


TINY = BackboneSpec(
    name="tiny",
    constructor=tiny_backbone,
    preprocess=keras.applications.mobilenet_v2.preprocess_input,
    default_input_size=32,
    notes="test stand-in",
)


def make_prepared(root: Path, num_classes: int = 4) -> Path:
    """Synthetic CIFAR-format data -> prepared splits (as 01-preprocess writes them) under root/data."""
    cifar = load_cifar100(
        write_synthetic_cifar(root / "src", num_classes, train_per_class=24, test_per_class=8)
    )
    tr, va = split_indices(cifar.y_train, None, 0.25, seed=0)

    def split(x, y, c, idx=slice(None)):
        return Split(x[idx], y[idx], c[idx])

    prepared = Prepared(
        split(cifar.x_train, cifar.y_train, cifar.y_train_coarse, tr),
        split(cifar.x_train, cifar.y_train, cifar.y_train_coarse, va),
        split(cifar.x_test, cifar.y_test, cifar.y_test_coarse),
        list(cifar.label_names),
        list(cifar.coarse_label_names),
    )
    save_prepared(root / "data", prepared, {"source": "synthetic"})
    return root / "data"


def tiny_config(run_dir: Path, **knobs) -> TrainConfig:
    values = dict(
        input_size=32, weights=None, head_epochs=2, finetune_epochs=1, batch_size=16, lr=3e-3, seed=0
    )
    return TrainConfig(preset="smoke", run_dir=str(run_dir), backbone="tiny", **{**values, **knobs})
