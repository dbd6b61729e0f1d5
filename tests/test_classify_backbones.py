"""Backbone registry and input pipeline: the preprocessing each backbone gets is exactly Keras' own."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.classify import (
    BACKBONES,
    BackboneSpec,
    TrainConfig,
    get_backbone,
    make_dataset,
    preprocess_batch,
)
from helpers.classify.backbones import SCRATCH_BN_MOMENTUM, backbone_layer, batchnorm_layers, build_classifier
from helpers.classify.pipeline import augment, augmented_examples
from helpers.classify.train import set_trainable

KERAS_PREPROCESS = {
    "vgg16": keras.applications.vgg16.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
}
IMAGENET_BGR_MEANS = np.array([103.939, 116.779, 123.68], np.float32)
FEATURE_DIMS = {"vgg16": 512, "resnet50": 2048, "mobilenet_v2": 1280}


def _pixels(n: int = 6, side: int = 32, seed: int = 0) -> np.ndarray:
    """Random uint8 RGB images covering the full 0..255 range."""
    images = np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = (0, 0, 0), (255, 255, 255)
    return images


def test_registry_has_the_three_backbones():
    assert set(BACKBONES) == {"vgg16", "resnet50", "mobilenet_v2"}
    for name, spec in BACKBONES.items():
        assert spec.name == name and spec.min_input_size == 32 and spec.notes
        assert spec.default_input_size == 224
    with pytest.raises(ValueError, match="unknown backbone 'resnet'.*vgg16"):
        get_backbone("resnet")


@pytest.mark.parametrize("name", sorted(KERAS_PREPROCESS))
def test_pipeline_preprocessing_equals_keras_preprocess_input(name):
    images = _pixels()
    spec = get_backbone(name)
    batches = [x.numpy() for x in make_dataset(images, None, spec, 32, batch_size=4)]
    ours = np.concatenate(batches)
    expected = KERAS_PREPROCESS[name](images.astype(np.float32))  # a fresh float copy: Keras edits in place
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    assert ours.dtype == np.float32 and ours.shape == images.shape


@pytest.mark.parametrize("name", sorted(KERAS_PREPROCESS))
def test_preprocessing_matches_each_backbones_documented_formula(name):
    """Independent of Keras: caffe-style BGR minus ImageNet means (VGG16, ResNet50), [-1, 1] (MobileNetV2)."""
    images = _pixels()
    ours = preprocess_batch(images, get_backbone(name), 32).numpy()
    x = images.astype(np.float32)
    expected = x / 127.5 - 1.0 if name == "mobilenet_v2" else x[..., ::-1] - IMAGENET_BGR_MEANS
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    if name == "mobilenet_v2":  # the classic bug: 0..1 or 0..255 fed to MobileNet
        assert ours.min() == -1.0 and ours.max() == 1.0


@pytest.mark.parametrize("side", [32, 48, 224])
def test_resize_to_input_size_keeps_colours(side):
    """Resizing happens before preprocessing: a flat colour stays that colour at any input size."""
    flat = np.zeros((2, 32, 32, 3), np.uint8)
    flat[0], flat[1] = (200, 30, 90), (0, 255, 128)
    out = preprocess_batch(flat, get_backbone("mobilenet_v2"), side).numpy()
    assert out.shape == (2, side, side, 3)
    np.testing.assert_allclose(out[:, side // 2, side // 3], flat[:, 0, 0] / 127.5 - 1, atol=1e-4)


def test_training_dataset_shuffles_and_augments_but_keeps_labels():
    images = _pixels(16)
    labels = np.arange(16, dtype=np.int16)
    spec = get_backbone("mobilenet_v2")
    ds = make_dataset(images, labels, spec, 32, batch_size=16, training=True, seed=1)
    x, y = next(iter(ds))
    assert y.dtype == tf.int32 and sorted(y.numpy()) == list(range(16))
    assert list(y.numpy()) != list(range(16)), "training batches must be shuffled"
    plain = preprocess_batch(images[y.numpy()], spec, 32).numpy()
    assert not np.allclose(x.numpy(), plain), "training images must be augmented"
    assert x.numpy().min() >= -1.0 and x.numpy().max() <= 1.0  # augmentation never leaves the pixel range


def test_augment_is_flip_and_shift_only():
    image = _pixels(1)[0]
    tf.random.set_seed(0)
    out = augment(tf.constant(image)).numpy()
    assert out.dtype == np.uint8 and out.shape == image.shape
    examples = augmented_examples(_pixels(3), n=3, copies=2)
    assert examples.shape == (6, 32, 32, 3) and examples.dtype == np.uint8


def test_bad_inputs_get_clear_errors():
    spec = get_backbone("vgg16")
    with pytest.raises(ValueError, match="uint8 images of shape"):
        make_dataset(np.zeros((2, 32, 32), np.uint8), None, spec, 32, 2)
    with pytest.raises(ValueError, match="uint8 images"):
        make_dataset(np.zeros((2, 32, 32, 3), np.float32), None, spec, 32, 2)
    with pytest.raises(ValueError, match="input_size >= 32"):
        spec.build_features(16, None)
    with pytest.raises(ValueError, match="weights must be"):
        spec.build_features(32, "cifar")
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        make_dataset(np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3), spec, 32, 2)


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_classifier_layout(name):
    """Backbone + pooling named "features" + dropout + float32 softmax; scratch BatchNorm momentum 0.9."""
    model = build_classifier(get_backbone(name), 32, num_classes=7, weights=None, dropout=0.2)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 7)
    assert model.get_layer("features").output.shape[-1] == FEATURE_DIMS[name]
    assert [layer.name for layer in model.layers[-3:]] == ["features", "dropout", "predictions"]
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    probs = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    momenta = {layer.momentum for layer in batchnorm_layers(backbone_layer(model))}
    assert momenta == ({SCRATCH_BN_MOMENTUM} if name != "vgg16" else set())  # VGG16 has no BatchNorm


def _offline_imagenet(name: str) -> BackboneSpec:
    """The registry entry, but "imagenet" builds random weights: same architecture, no download in tests."""
    spec = get_backbone(name)

    def constructor(include_top, weights, input_shape):
        return spec.constructor(include_top=include_top, weights=None, input_shape=input_shape)

    return dataclasses.replace(spec, constructor=constructor, imagenet_file=None)


@pytest.mark.parametrize("phase", ["head", "finetune"])
def test_pretrained_batchnorm_stays_in_inference_mode_while_training(phase):
    """Transfer-learning rule: BatchNorm of a pretrained backbone never uses or updates batch statistics."""
    spec = _offline_imagenet("mobilenet_v2")
    model = build_classifier(spec, 32, num_classes=5, weights="imagenet", dropout=0.0)
    cfg = TrainConfig.for_preset("smoke", "mobilenet_v2", weights="imagenet", unfreeze_top=40)
    set_trainable(model, cfg, phase)
    backbone = backbone_layer(model)
    bns = batchnorm_layers(backbone)
    assert not any(bn.trainable for bn in bns)
    trainable_convs = [lay.trainable for lay in backbone.layers if isinstance(lay, keras.layers.Conv2D)]
    assert any(trainable_convs) == (phase == "finetune") and not all(trainable_convs)  # only the top 40
    before = bns[0].moving_mean.numpy().copy()
    x = preprocess_batch(_pixels(4), spec, 32)
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bns[0].moving_mean.numpy(), before)
    scratch = get_backbone("mobilenet_v2").build_features(32, None)  # from scratch BatchNorm does train
    assert not np.allclose(scratch(x, training=True), scratch(x, training=False))
