"""Preprocessing inside the model: same outputs as the old tf.data pipeline, any image size once saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from classify_support import TINY, tiny_backbone

from helpers.classify import BackboneSpec, build_classifier, make_dataset
from helpers.classify.preprocessing import backbone_inputs, for_training, takes_raw_pixels

apps = keras.applications
SPECS = {  # the tiny backbone with each real backbone's preprocess_input and its in-model mode
    "vgg16": BackboneSpec("tiny", tiny_backbone, apps.vgg16.preprocess_input, 32, "", pixel_mode="caffe"),
    "resnet50": BackboneSpec(
        "tiny", tiny_backbone, apps.resnet50.preprocess_input, 32, "", pixel_mode="caffe"
    ),
    "mobilenet_v2": TINY,
}


def _pair(spec: BackboneSpec, size: int) -> tuple[keras.Model, keras.Model]:
    """An old-layout classifier and an in-model one with the same weights."""
    keras.utils.set_random_seed(0)
    old = build_classifier(spec, size, 5, None, 0.3)
    new = build_classifier(spec, size, 5, None, 0.3, in_model=True)
    for layer in new.layers:
        if layer.weights and layer.name != "preprocess":
            layer.set_weights(old.get_layer(layer.name).get_weights())
    return old, new


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("side", [32, 48])
def test_in_model_equals_old_pipeline(name, side):
    spec, size = SPECS[name], 40
    images = np.random.default_rng(1).integers(0, 256, (6, side, side, 3), dtype=np.uint8)
    old, new = _pair(spec, size)
    assert not takes_raw_pixels(old) and takes_raw_pixels(new)
    expected_inputs = np.concatenate(list(make_dataset(images, None, spec, size, 4).as_numpy_iterator()))
    np.testing.assert_allclose(backbone_inputs(new, images), expected_inputs, atol=1e-3)
    expected = old.predict(make_dataset(images, None, spec, size, 4), verbose=0)
    got = new.predict(make_dataset(images, None, spec, size, 4, preprocess=False), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected - expected.mean(0)).max() > 1e-4  # the images give different outputs
    if side < size:  # training upsamples with antialiasing off (XLA has no antialiased resize): the same
        trained = for_training(new, True).predict(make_dataset(images, None, spec, size, 4, preprocess=False))
        np.testing.assert_allclose(trained, expected, rtol=1e-4, atol=1e-5)


def test_uint8_dataset_stays_small():
    images = np.zeros((10, 32, 32, 3), np.uint8)
    images = np.random.default_rng(2).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    ds = make_dataset(images, np.arange(64), TINY, 224, 64, training=True, preprocess=False)
    batch, labels = next(iter(ds))
    assert batch.dtype.name == "uint8" and tuple(batch.shape) == (64, 32, 32, 3)
    moved = [not np.array_equal(img, images[i]) for img, i in zip(batch.numpy(), labels.numpy(), strict=True)]
    assert sum(moved) > 32  # augmented (flip, pad-and-crop) at native size, still uint8


CHILD = """
import json, sys
import keras, numpy as np
model = keras.models.load_model(sys.argv[1], compile=False)
rng = np.random.default_rng(0)
out = {}
for h, w in [(32, 32), (300, 200)]:
    probs = keras.ops.convert_to_numpy(model(rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)))
    out[f"{h}x{w}"] = probs.tolist()
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v2"])
def test_saved_model_takes_any_size_in_fresh_process(tmp_path, name):
    """Saved, then loaded in fresh processes on TensorFlow (the notebooks) and torch (the endpoint's Keras):
    both take uint8 images of any size and give the same probabilities."""
    _, new = _pair(SPECS[name], 40)
    new.save(tmp_path / "model.keras")
    outs = {}
    for backend in ("tensorflow", "torch"):
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path / "model.keras")],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "KERAS_BACKEND": backend},
        )
        outs[backend] = json.loads(run.stdout.strip().splitlines()[-1])
        for probs in map(np.asarray, outs[backend].values()):
            assert probs.shape == (2, 5) and np.isfinite(probs).all()
            np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    for size, probs in outs["tensorflow"].items():
        np.testing.assert_allclose(outs["torch"][size], probs, rtol=1e-3, atol=1e-4)


def test_classifier_encoder_feeds_plain_images_of_any_size(tmp_path):
    from helpers.caption.features import EncoderConfig, KerasEncoder

    old, new = _pair(SPECS["resnet50"], 40)
    new.save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({"backbone": "resnet50", "input_size": 40}))
    encoder = KerasEncoder.build(EncoderConfig("resnet50", None, 40, str(tmp_path), "sha", 0))
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(32, 32, 3), (60, 90, 3)]]
    got = encoder.encode(images)
    old_features = keras.Model(old.inputs, old.get_layer("features").output)
    spec = SPECS["resnet50"]
    for image, row in zip(images, got, strict=True):
        batch = next(iter(make_dataset(image[None], None, spec, 40, 1)))
        np.testing.assert_allclose(row, old_features(batch)[0], rtol=1e-4, atol=1e-4)
