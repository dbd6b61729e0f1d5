"""The classifier as the endpoint runs it: the saved `.keras` model on Keras' torch backend, no TensorFlow.

The endpoint image has torch but not TensorFlow, so nothing here imports `helpers.classify` (its input
pipeline is tf.data). The model is loaded and called as saved; pixels are prepared with backend-neutral
`keras.ops` the same way as `helpers.classify.pipeline.preprocess_batch` (bilinear resize with
antialiasing to the model's input size, then the backbone's own `preprocess_input`), unless the saved model
already takes raw uint8 pixels of any size, in which case it is called on them directly.
tests/test_model_server.py checks its top-5 against TensorFlow's on the smoke classifiers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _preprocess_inputs() -> dict[str, Callable[[Any], Any]]:
    """Backbone name -> its keras.applications preprocess_input (the names helpers.classify uses)."""
    import keras

    apps = keras.applications
    return {
        "vgg16": apps.vgg16.preprocess_input,
        "resnet50": apps.resnet50.preprocess_input,
        "mobilenet_v2": apps.mobilenet_v2.preprocess_input,
    }


def model_inputs(batch: np.ndarray, backbone: str, size: int) -> Any:
    """uint8 (N, H, W, 3) RGB -> the backbone's inputs at size x size, with backend-neutral `keras.ops`: the
    same steps as `helpers.classify.pipeline.preprocess_batch` (bilinear resize with antialiasing, then the
    backbone's own `preprocess_input`), which needs TensorFlow."""
    import keras

    x = keras.ops.cast(batch, "float32")
    if batch.shape[1:3] != (size, size):
        x = keras.ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)
    return _preprocess_inputs()[backbone](x)


@dataclass
class ServingClassifier:
    """A loaded `.keras` classifier, its config.json and whether it preprocesses pixels itself."""

    model: Any
    config: dict[str, Any]

    @classmethod
    def load(cls, folder: str | Path) -> ServingClassifier:
        import json

        import keras

        folder = Path(folder)
        model = keras.models.load_model(folder / "model.keras", compile=False)
        return cls(model, json.loads((folder / "config.json").read_text()))

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.config["label_names"])

    def takes_raw_pixels(self) -> bool:
        """True when the saved model resizes and preprocesses inside (spatial input size left open)."""
        shape = self.model.inputs[0].shape
        return shape[1] is None and shape[2] is None

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Softmax probabilities (num_classes,) float32 for one uint8 (H, W, 3) RGB image."""
        import keras

        batch = np.asarray(image)[None]
        if not self.takes_raw_pixels():
            batch = model_inputs(batch, self.config["backbone"], int(self.config["input_size"]))
        probs = self.model(batch, training=False)
        return np.asarray(keras.ops.convert_to_numpy(probs), dtype=np.float32)[0]

    def top_k(self, image: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k most likely labels of one image, best first."""
        probs = self.probabilities(image)
        order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
        return [(self.label_names[int(i)], float(probs[i])) for i in order]
