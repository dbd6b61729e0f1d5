"""helpers.saliency: LayerCAM on a tiny hand-set Keras classifier, occlusion and the deletion test."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import saliency

RED, BLUE = (230, 20, 20), (20, 20, 230)


def two_patches(side: int = 16) -> np.ndarray:
    """Grey picture, a red patch at the top left and a blue one at the bottom right."""
    image = np.full((side, side, 3), 128, np.uint8)
    image[:4, :4], image[-4:, -4:] = RED, BLUE
    return image


@pytest.fixture(scope="module")
def colour_classifier():
    """image -> nested backbone (1x1 conv: a red and a blue detector) -> pooling -> dropout -> Dense.

    Class 0 is "red", class 1 "blue": the same structure as helpers.classify's classifiers, weights set
    by hand so the right answer is known.
    """
    import keras

    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="detect")
    backbone = keras.Model(inputs, conv(inputs), name="backbone")
    conv.set_weights([np.array([[[[1, -1], [-1, -1], [-1, 1]]]], np.float32), np.zeros(2, np.float32)])
    image = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D(name="features")(backbone(image))
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(image, dense(x))
    dense.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    return model


def test_layer_cam_points_at_the_patch_of_the_explained_class(colour_classifier):
    inputs = two_patches()[None].astype(np.float32) / 255
    red_map, red_class, layer = saliency.layer_cam(colour_classifier, inputs, class_index=0)
    blue_map, _, _ = saliency.layer_cam(colour_classifier, inputs, class_index=1)
    assert layer == "detect" and red_class == 0 and red_map.shape == (16, 16)
    row, col = np.unravel_index(red_map.argmax(), red_map.shape)
    assert row < 4 and col < 4 and red_map[8:, 8:].max() == 0
    assert blue_map[-4:, -4:].min() > 0 and blue_map[:8, :8].max() == 0
    # None explains the top-1: more red than blue pixels makes "red" the top-1
    image = two_patches()
    image[4:6, :4] = RED
    _, top1, _ = saliency.layer_cam(colour_classifier, image[None].astype(np.float32) / 255)
    assert top1 == 0
    cells = saliency.cell_means(red_map, 16, 16, grid=4)
    assert cells.argmax() == 0 and cells[1:].ravel().max() == 0


def test_cam_layer_skips_maps_smaller_than_the_grid(colour_classifier):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c8")(keras.layers.MaxPooling2D(4)(inputs))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(keras.layers.MaxPooling2D(4)(x))
    small = keras.Model(inputs, x)
    assert saliency.cam_layer(small) == saliency.cam_layer(small, min_side=4) == "c8"  # c2 is 2x2
    assert saliency.cam_layer(small, min_side=2) == "c2"
    with pytest.raises(ValueError, match="no convolutional map of at least 64x64"):
        saliency.cam_layer(small, min_side=64)


def red_in_top_left(images: list[np.ndarray]) -> np.ndarray:
    """A stand-in score: how red the top-left quarter is."""
    return np.array([float((i[:8, :8, 0].astype(int) - i[:8, :8, 2]).clip(0).mean()) for i in images])


def test_occlusion_finds_the_cell_the_score_depends_on():
    drops = saliency.occlusion_map(red_in_top_left, two_patches(), grid=4)
    assert drops.shape == (4, 4) and drops.argmax() == 0 and drops[0, 0] > 0
    assert np.count_nonzero(drops) == 1  # greying any other cell changes nothing


def test_deletion_test_top_cells_hurt_more_than_random_ones():
    image = two_patches()
    drops = saliency.occlusion_map(red_in_top_left, image, grid=4)
    result = saliency.deletion_test(red_in_top_left, image, drops, k=2, trials=16)
    assert result["top"] == pytest.approx(red_in_top_left([image])[0])  # the whole red patch is gone
    assert 0 <= result["random"] < result["top"]
    again = saliency.deletion_test(red_in_top_left, image, drops, k=2, trials=16)
    assert again == result  # seeded
    with pytest.raises(ValueError, match="k must be in 1..15"):
        saliency.deletion_test(red_in_top_left, image, drops, k=16)


def test_overlay_blends_a_colour_map_over_the_image():
    image = two_patches()
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = saliency.overlay(image, heat, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[0, 0, 0] > out[-1, -1, 0]  # hot (red end of the map) at the top left
    flat = saliency.overlay(image, np.zeros((4, 4)), alpha=0.0)
    assert (flat == image).all()


def test_study_picture_count_per_preset():
    from helpers.demo.studies import STUDY_IMAGES, study_count

    assert study_count("smoke", None) == STUDY_IMAGES["smoke"] < study_count("full", None)
    assert study_count("full", 0) == 0 and study_count("smoke", 30) == 30
    with pytest.raises(ValueError, match="study_images"):
        study_count("smoke", -1)
