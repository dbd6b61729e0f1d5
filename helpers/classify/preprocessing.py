"""Pixels -> backbone inputs as layers of the Keras model: resize, then the backbone's preprocess_input.

With these in front of the backbone, tf.data ships uint8 batches at their stored size (augmented there,
at 32x32, where it is cheap) and the model takes uint8 (or 0..255 float) RGB images of any size, so the
costly part runs on the accelerator and every reader (05, 06's classifier encoder, 07, saliency, the
endpoint) feeds plain images. Augmentation stays out of the model: Keras' RandomTranslation (the in-model
reflect-shift) does not support XLA, and Keras would then quietly compile the whole train step without
it on a GPU. Only built-in Keras layers, in float32 under any dtype policy, so the saved model loads on
the torch backend without TensorFlow. Caffe mode (VGG16, ResNet50: RGB -> BGR, ImageNet means
subtracted) is a frozen 1x1 Conv2D whose kernel is the channel permutation and whose bias is minus the
means: exact, and it serialises.
"""

from __future__ import annotations

import keras
import numpy as np

#: ImageNet channel means in BGR order, as keras.applications' caffe mode subtracts them.
CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)


def pixel_layers(mode: str, input_size: int, antialias: bool = True) -> list[keras.layers.Layer]:
    """The layers between the raw image and the backbone, in order: resize, then preprocess_input."""
    size = (int(input_size), int(input_size))
    # Bilinear with antialiasing like the old tf.data resize; the output stays in 0..255 (convex weights).
    # float32 under mixed_float16 too: the backbone casts after it.
    resize = keras.layers.Resizing(*size, "bilinear", antialias=antialias, dtype="float32", name="resize")
    return [resize, scaling_layer(mode)]


def for_training(model: keras.Model, training: bool) -> keras.Model:
    """Switch the in-model resize's antialiasing off for training (True) or back on to save and serve.

    Training only upsamples (32 -> input_size), where antialiasing changes nothing, and TensorFlow's
    antialiased resize (ScaleAndTranslate) has no XLA kernel: with it a jit-compiled train step fails.
    Images larger than input_size (the demo's photos) need it, so the saved model has it on.
    """
    if takes_raw_pixels(model):
        model.get_layer("resize").antialias = not training
    return model


def scaling_layer(mode: str) -> keras.layers.Layer:
    """The backbone's preprocess_input as one layer: "tf" is x / 127.5 - 1, "caffe" is BGR minus means."""
    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, dtype="float32", name="preprocess")
    if mode != "caffe":
        raise ValueError(f"unknown preprocessing mode {mode!r}; use 'tf' or 'caffe'")
    conv = keras.layers.Conv2D(3, 1, dtype="float32", trainable=False, name="preprocess")
    conv.build((None, None, None, 3))
    permute = np.zeros((1, 1, 3, 3), np.float32)
    for out in range(3):
        permute[0, 0, 2 - out, out] = 1.0  # BGR channel `out` is RGB channel 2 - out
    conv.set_weights([permute, -np.asarray(CAFFE_MEANS_BGR, np.float32)])
    return conv


def takes_raw_pixels(model: keras.Model) -> bool:
    """True when the model resizes and preprocesses inside (spatial input size left open)."""
    shape = model.inputs[0].shape
    return shape[1] is None and shape[2] is None


def backbone_inputs(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """What the nested backbone of an in-model classifier sees for uint8 `images` (one size)."""
    from helpers.classify.backbones import backbone_layer

    backbone = backbone_layer(model)
    x = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
    for layer in model.layers[1 : model.layers.index(backbone)]:
        x = layer(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(x), np.float32)
