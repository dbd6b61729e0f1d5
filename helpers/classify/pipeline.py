"""tf.data input pipeline: uint8 CIFAR arrays -> augmented, resized, backbone-preprocessed batches.

Images stay uint8 at their stored size until the last moment: augmentation works at native resolution
and the resize to the backbone's input size happens per batch, on the fly, so no 224x224 copy of the
dataset ever exists. `preprocess_batch` is the single place where pixels become model inputs; training,
evaluation and `predict_topk` all go through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from helpers.classify.backbones import BackboneSpec

AUTOTUNE = tf.data.AUTOTUNE


def preprocess_batch(images: tf.Tensor, spec: BackboneSpec, input_size: int) -> tf.Tensor:
    """uint8 (or 0..255 float) NHWC RGB -> float32 at input_size, then the backbone's own preprocess_input."""
    x = tf.cast(images, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a batch of RGB images (N, H, W, 3), got shape {x.shape}")
    if x.shape[1] != input_size or x.shape[2] != input_size:
        # Bilinear with antialiasing: upsampling 32 -> 224 for training, and the demo's large photos
        # going down without aliasing. Output stays in 0..255 because bilinear weights are convex.
        x = tf.image.resize(x, (input_size, input_size), method="bilinear", antialias=True)
    return spec.preprocess(x)


def augment(image: tf.Tensor) -> tf.Tensor:
    """Random horizontal flip and pad-and-crop (reflect-pad 1/8 of the side) on one uint8 HWC image."""
    height, width = image.shape[0], image.shape[1]
    pad = max(height // 8, 1)  # 4 px at CIFAR's 32x32
    image = tf.image.random_flip_left_right(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.image.random_crop(padded, (height, width, 3))


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    spec: BackboneSpec,
    input_size: int,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    preprocess: bool = True,
) -> tf.data.Dataset:
    """Batches of (inputs, labels), or inputs alone if `labels` is None; shuffled + augmented if training.

    preprocess=False: uint8 batches at the stored size (shuffled and augmented if training), for a model
    that resizes and preprocesses inside (helpers.classify.preprocessing); 3 KB an image instead of 600 KB.
    """
    images = check_images(images)
    spec.check_input_size(input_size)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    ds = tf.data.Dataset.from_tensor_slices(images)
    if labels is not None:
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(labels.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(_on_image(augment), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)
    if not preprocess:
        return ds.prefetch(AUTOTUNE)
    ds = ds.map(_on_image(lambda x: preprocess_batch(x, spec, input_size)), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _on_image(fn: Callable[[tf.Tensor], tf.Tensor]) -> Callable[..., Any]:
    """Lift an image function to dataset elements that are `image` or `(image, label)`."""

    def apply(*element: tf.Tensor) -> Any:
        return fn(element[0]) if len(element) == 1 else (fn(element[0]), element[1])

    return apply


def check_images(images: np.ndarray) -> np.ndarray:
    """Return `images` if they are uint8 (N, H, W, 3), else raise a clear error."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ValueError("no images given")
    return images


def augmented_examples(images: np.ndarray, n: int = 8, copies: int = 2, seed: int = 0) -> np.ndarray:
    """`copies` random augmentations of each of the first `n` images (uint8), for a look at the pipeline."""
    tf.random.set_seed(seed)
    picks = check_images(images)[:n]
    return np.stack([augment(tf.constant(img)).numpy() for img in picks for _ in range(copies)])
