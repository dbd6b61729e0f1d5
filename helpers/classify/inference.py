"""Using a trained classifier: load it from its folder, predict probabilities and top-k classes.

Everything goes through `pipeline.make_dataset`: uint8 batches for a model that preprocesses inside, else
the same resize + backbone preprocessing as training (models saved before preprocessing moved in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers import artifacts
from helpers.classify.backbones import get_backbone
from helpers.classify.pipeline import check_images, make_dataset
from helpers.classify.preprocessing import takes_raw_pixels


def load_classifier(model_dir: str | Path) -> tuple[keras.Model, dict[str, Any]]:
    """The trained model (not compiled) and its config.json from run_dir/models/<name>/."""
    model_dir = Path(model_dir)
    path = model_dir / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train it with the matching 02/03/04 notebook first")
    return keras.models.load_model(path, compile=False), artifacts.read_json(model_dir / "config.json")


def predict_probs(
    model: keras.Model, images: np.ndarray, backbone: str, input_size: int, batch_size: int = 64
) -> np.ndarray:
    """Softmax probabilities (N, num_classes) float32 for uint8 RGB images of any one size."""
    raw = takes_raw_pixels(model)  # preprocesses inside (new layout) or takes backbone inputs (old)
    ds = make_dataset(
        check_images(images), None, get_backbone(backbone), input_size, batch_size, preprocess=not raw
    )
    return np.asarray(model.predict(ds, verbose=0), dtype=np.float32)


def predict_topk(
    model: keras.Model, config: dict[str, Any], images: np.ndarray, k: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k class indices (N, k) and their probabilities (N, k), best first; accepts one HWC image too."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    k = min(k, int(config["num_classes"]))
    probs = predict_probs(model, images, config["backbone"], int(config["input_size"]))
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(probs, idx, axis=1)
