"""The three Keras-applications backbones: constructor, their own preprocessing, sizes and notes.

A classifier is ``build_features`` (backbone without its ImageNet top + GlobalAveragePooling2D named
"features") followed by Dropout and a float32 softmax Dense. The captioner reuses the "features" layer
of a trained classifier as its image encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from helpers.classify.preprocessing import pixel_layers
from helpers.data.download_table import IMAGENET_WEIGHTS

#: Keras applications refuse inputs smaller than this (pixels per side) without their top.
MIN_INPUT_SIZE = 32

#: BatchNorm moving-average momentum used when a backbone starts from random weights. Keras' presets
#: (0.99 for ResNet50, 0.999 for MobileNetV2) assume hundreds of thousands of steps; after the few
#: hundred steps of a from-scratch run their moving statistics are still mostly the initial 0/1, and
#: evaluation (which uses them) would be near chance even when training accuracy is high.
SCRATCH_BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class BackboneSpec:
    """What the pipeline and the model builder need to know about one backbone."""

    name: str
    constructor: Callable[..., keras.Model]  # keras.applications function
    preprocess: Callable[[Any], Any]  # its own preprocess_input, on float32 RGB pixels in 0..255
    default_input_size: int  # pixels per side for the `full` preset (ImageNet weights)
    notes: str
    min_input_size: int = MIN_INPUT_SIZE
    imagenet_file: str | None = None  # its ImageNet weights in the download table (None: Keras fetches them)
    pixel_mode: str = "tf"  # `preprocess` as in-model layers: "tf" (x / 127.5 - 1) or "caffe" (BGR - means)

    def check_input_size(self, input_size: int) -> int:
        """Return `input_size` or raise a clear error when the backbone cannot take it."""
        if int(input_size) < self.min_input_size:
            raise ValueError(f"{self.name} needs input_size >= {self.min_input_size}, got {input_size}")
        return int(input_size)

    def build_features(self, input_size: int, weights: str | None, in_model: bool = False) -> keras.Model:
        """Backbone (no top) + GlobalAveragePooling2D named "features": (N, S, S, 3) -> (N, C).

        in_model: the model takes raw 0..255 RGB images of any size and does the resize and `preprocess`
        itself, see helpers.classify.preprocessing.
        """
        size = self.check_input_size(input_size)
        if weights not in (None, "imagenet"):
            raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
        keras_weights = self.keras_weights(weights)
        backbone = self.constructor(include_top=False, weights=keras_weights, input_shape=(size, size, 3))
        if weights is None:
            # Random init: BatchNorm must learn its statistics, and quickly enough for a short run.
            for layer in batchnorm_layers(backbone):
                layer.momentum = SCRATCH_BN_MOMENTUM
        else:
            freeze_batchnorm(backbone)
        inputs = keras.Input((None, None, 3) if in_model else (size, size, 3), name="image")
        x = inputs
        for layer in pixel_layers(self.pixel_mode, size) if in_model else []:
            x = layer(x)
        x = keras.layers.GlobalAveragePooling2D(name="features")(backbone(x))
        return keras.Model(inputs, x, name=f"{self.name}_features")

    def keras_weights(self, weights: str | None) -> str | None:
        """What the Keras constructor gets: None, or the path of the fetched, hash-checked ImageNet file.

        Given a path, keras.applications loads it with the same ``model.load_weights`` its "imagenet" branch
        calls after its own download; the download is ours (resume, retries, the hash Keras pins). Unlike
        Keras, MobileNetV2 gets the 224-pixel weights at every input size (Keras switches to the 96-192
        ones for those sizes); the shapes are the same.
        """
        if weights != "imagenet" or self.imagenet_file is None:
            return weights
        from helpers.data.downloads import fetch

        return str(fetch(self.imagenet_file))


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of a (flat) keras.applications model."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def freeze_batchnorm(backbone: keras.Model) -> None:
    """Keep a pretrained backbone's BatchNorm in inference mode, also while the rest of it trains.

    The Keras transfer-learning advice: ImageNet statistics stay; small batches of upsampled CIFAR images
    would otherwise replace them the moment the backbone is unfrozen and wreck the pretrained features.
    A Keras 3 BatchNormalization with trainable=False normalises with its moving statistics even when
    called with training=True; calling the backbone with training=False inside a functional model is
    not enough, because fit()'s training=True overrides it. Call again after any `trainable = True`.
    """
    for layer in batchnorm_layers(backbone):
        layer.trainable = False


def build_classifier(
    spec: BackboneSpec,
    input_size: int,
    num_classes: int,
    weights: str | None,
    dropout: float,
    in_model: bool = False,
) -> keras.Model:
    """Features + Dropout + Dense softmax; the output stays float32 under a mixed-precision policy.

    in_model: pixels are resized and preprocessed inside the model, see build_features.
    """
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    features = spec.build_features(input_size, weights, in_model)
    x = keras.layers.Dropout(dropout, name="dropout")(features.output)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(features.input, outputs, name=f"{spec.name}_cifar")


def backbone_layer(model: keras.Model) -> keras.Model:
    """The nested keras.applications model inside a classifier built here."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"expected one nested backbone in {model.name}, found {len(nested)}")
    return nested[0]


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        name="vgg16",
        imagenet_file=IMAGENET_WEIGHTS["vgg16"],
        constructor=keras.applications.VGG16,
        preprocess=keras.applications.vgg16.preprocess_input,
        pixel_mode="caffe",
        default_input_size=224,
        notes=(
            "Caffe-style preprocessing: RGB is flipped to BGR and the ImageNet channel means "
            "(103.939, 116.779, 123.68) are subtracted, no scaling, so inputs span about -124..152. "
            "No BatchNorm: 13 plain conv layers, the slowest of the three and hard to train from "
            "random weights. 14.7 M parameters without the top."
        ),
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        imagenet_file=IMAGENET_WEIGHTS["resnet50"],
        constructor=keras.applications.ResNet50,
        preprocess=keras.applications.resnet50.preprocess_input,
        pixel_mode="caffe",
        default_input_size=224,
        notes=(
            "Caffe-style preprocessing like VGG16 (BGR, ImageNet means subtracted, no scaling). "
            "53 BatchNorm layers: kept in inference mode when fine-tuning pretrained weights. "
            "23.6 M parameters without the top."
        ),
    ),
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2",
        imagenet_file=IMAGENET_WEIGHTS["mobilenet_v2"],
        constructor=keras.applications.MobileNetV2,
        preprocess=keras.applications.mobilenet_v2.preprocess_input,
        default_input_size=224,
        notes=(
            "TF-style preprocessing: pixels scaled to [-1, 1] (x / 127.5 - 1), RGB order. Its "
            "ImageNet weights were trained on that range; feeding 0..1 or 0..255 instead silently "
            "ruins transfer. Depthwise-separable convolutions: 2.3 M parameters without the top."
        ),
    ),
}


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry for `name`, or a clear error naming the known backbones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]
