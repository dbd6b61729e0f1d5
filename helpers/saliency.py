"""Where the models looked: LayerCAM for the classifier's top-1, occlusion sensitivity for a caption, and a
deletion test of how faithful either map is.

LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization", IEEE
TIP 2021) weights each position of a convolutional layer's channels by the positive part of the class
logit's gradient there and keeps the positive sum. Grad-CAM's one weight per channel (the mean gradient)
works on the last block but fails on shallower ones, and at a 32-pixel input the last blocks are too
small to show anything (ResNet50's and VGG16's are 1x1). So the map comes from the deepest layer that
still has `min_side` cells a side, 8 by default: twice the 4x4 grid that the deletion test and the demo's
cells use (at 224 pixels: the last 14x14 block, for ResNet50 `conv4_block6_out`). Measured on a smoke
run's three classifiers (32 pixels, 24 test pictures, 2026-11-29), greying out the map's top 4 of 16
cells against 4 random cells lowered the top-1 probability by:

| backbone (layer) | LayerCAM, deepest 8x8 layer | Grad-CAM, deepest 4x4 layer |
|---|---|---|
| VGG16 (`block3_conv3`; Grad-CAM `block4_conv3`) | 0.435 vs 0.081 | 0.436 vs 0.081 |
| ResNet50 (`conv2_block3_out`; `conv3_block4_out`) | 0.475 vs 0.153 | 0.152 vs 0.153 |
| MobileNetV2 (`block_3_pad`; `block_6_pad`) | 0.406 vs 0.133 | 0.136 vs 0.133 |

Occlusion greys out each cell of a grid in turn and records how much a score (the caption's
log-likelihood) drops. The deletion test greys out the top-ranked cells and, for comparison, random
cells: a faithful map hurts the score more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from helpers.caption.narrative import Cell, grid_cells

#: Images -> one score each (higher: more of what is being explained, e.g. a log-likelihood).
Score = Callable[[list[np.ndarray]], np.ndarray]
GREY = 128  # the colour a deleted cell is painted, uint8


def grey_out(image: np.ndarray, cells: Sequence[Cell]) -> np.ndarray:
    """A copy of the image with the given cells painted mid-grey."""
    out = image.copy()
    for c in cells:
        out[c.top : c.bottom, c.left : c.right] = GREY
    return out


def occlusion_map(score: Score, image: np.ndarray, grid: int = 4) -> np.ndarray:
    """(grid, grid) drop of the score when each cell alone is greyed out (positive: the cell mattered)."""
    cells = grid_cells(image.shape[0], image.shape[1], grid, grid)
    scores = score([image] + [grey_out(image, [c]) for c in cells])
    return (scores[0] - scores[1:]).reshape(grid, grid)


def cell_means(heatmap: np.ndarray, height: int, width: int, grid: int) -> np.ndarray:
    """(grid, grid) mean of a heatmap of any resolution stretched over a height x width image."""
    full = upsample(heatmap, height, width)
    cells = grid_cells(height, width, grid, grid)
    return np.array([full[c.top : c.bottom, c.left : c.right].mean() for c in cells]).reshape(grid, grid)


def deletion_test(
    score: Score, image: np.ndarray, cell_map: np.ndarray, k: int, trials: int = 8, seed: int = 0
) -> dict[str, float]:
    """Score drop when the k highest cells of `cell_map` are greyed out, and the mean drop over `trials`
    draws of k random cells."""
    grid = cell_map.shape[0]
    cells = grid_cells(image.shape[0], image.shape[1], grid, grid)
    if not 0 < k < len(cells):
        raise ValueError(f"k must be in 1..{len(cells) - 1}, got {k}")
    top = np.argsort(-cell_map.ravel(), kind="stable")[:k]
    rng = np.random.default_rng(seed)
    draws = [rng.choice(len(cells), size=k, replace=False) for _ in range(trials)]
    images = [image] + [grey_out(image, [cells[i] for i in pick]) for pick in [top, *draws]]
    scores = score(images)
    return {"top": float(scores[0] - scores[1]), "random": float(np.mean(scores[0] - scores[2:]))}


def upsample(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float heatmap to height x width."""
    pil = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR))


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the heatmap (scaled to 0..1) blended on top in a colour map, uint8 RGB."""
    from matplotlib import colormaps

    heat = upsample(heatmap, image.shape[0], image.shape[1])
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colour = colormaps["jet"](heat)[..., :3] * 255
    return (image * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


# ---- LayerCAM on a Keras classifier built by helpers.classify ----


def cam_layer(backbone: Any, min_side: int = 8) -> str:
    """The last 4-D layer of `backbone` whose map is at least min_side x min_side."""
    for layer in reversed(backbone.layers):
        shape = getattr(layer.output, "shape", None)
        if shape is not None and len(shape) == 4 and min(shape[1], shape[2]) >= min_side:
            return layer.name
    raise ValueError(f"{backbone.name} has no convolutional map of at least {min_side}x{min_side}")


def layer_cam(
    model: Any, inputs: np.ndarray, class_index: int | None = None, min_side: int = 8
) -> tuple[np.ndarray, int, str]:
    """(heatmap >= 0, the class explained, layer name) for one preprocessed input (1, S, S, 3).

    `model`: image -> nested backbone -> pooling/dropout -> Dense "predictions" (softmax), as
    `helpers.classify.backbones.build_classifier` makes it. None explains the top-1 class.
    """
    import keras
    import tensorflow as tf

    from helpers.classify.backbones import backbone_layer

    backbone = backbone_layer(model)
    name = cam_layer(backbone, min_side)
    inner = keras.Model(backbone.inputs, [backbone.get_layer(name).output, backbone.output])
    after = model.layers[model.layers.index(backbone) + 1 :]
    head, dense = after[:-1], after[-1]
    with tf.GradientTape() as tape:
        conv, x = inner(tf.convert_to_tensor(inputs, tf.float32), training=False)
        for layer in head:
            x = layer(x, training=False)
        logits = tf.matmul(tf.cast(x, tf.float32), tf.cast(dense.kernel, tf.float32)) + dense.bias
        chosen = int(tf.argmax(logits[0])) if class_index is None else int(class_index)
        target = logits[:, chosen]
    grads = tape.gradient(target, conv)
    cam = tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * tf.cast(conv, tf.float32), axis=-1))[0]
    return cam.numpy(), chosen, name


def classifier_cam(model: Any, config: dict[str, Any], image: np.ndarray) -> tuple[np.ndarray, int, str]:
    """LayerCAM of the top-1 class for one uint8 RGB image, through the classifier's own preprocessing."""
    from helpers.classify.backbones import get_backbone
    from helpers.classify.pipeline import preprocess_batch
    from helpers.classify.preprocessing import backbone_inputs, takes_raw_pixels

    if takes_raw_pixels(model):  # the model's own pixel layers (inference mode) give the backbone's inputs
        return layer_cam(model, backbone_inputs(model, image[None]))
    inputs = preprocess_batch(image[None], get_backbone(config["backbone"]), int(config["input_size"]))
    return layer_cam(model, np.asarray(inputs))


def classifier_score(model: Any, config: dict[str, Any], class_index: int) -> Score:
    """Images -> the classifier's probability of `class_index` for each."""
    from helpers.classify import predict_probs

    def score(images: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(images)
        return predict_probs(model, batch, config["backbone"], int(config["input_size"]))[:, class_index]

    return score


def caption_score(captioner: Any, caption: str) -> Score:
    """Images -> log p(caption | image) under the captioner, nats."""
    from helpers.caption.likelihood import log_likelihoods

    def score(images: list[np.ndarray]) -> np.ndarray:
        features = captioner.encode(images)
        return log_likelihoods(captioner.model, captioner.tokenizer, features, [caption] * len(images))

    return score
