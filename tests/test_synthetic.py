"""Synthetic smoke data: canonical formats the real loaders read, determinism, pictures that carry labels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers import artifacts
from helpers.data import (
    cifar_class,
    decode_image,
    ensure_synthetic_cifar,
    ensure_synthetic_flickr,
    load_cifar100,
    load_flickr8k,
    write_synthetic_cifar,
    write_synthetic_flickr,
)
from helpers.data.shapes import COLOURS

PALETTE = np.array(list(COLOURS.values()), dtype=float)


def colour_masks(img: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean mask per named colour: saturated pixels nearest to that palette colour."""
    px = img.astype(float)
    saturated = px.max(-1) - px.min(-1) > 80  # backgrounds are greys within ~40 of neutral
    nearest = np.argmin(((px[..., None, :] - PALETTE) ** 2).sum(-1), axis=-1)
    return {name: saturated & (nearest == i) for i, name in enumerate(COLOURS)}


@pytest.fixture(scope="module")
def flickr_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_flickr(tmp_path_factory.mktemp("flickr"), num_images=400, seed=0)


# ---- CIFAR-style ---------------------------------------------------------------------------------------
def test_cifar_classes_are_a_bijection_of_the_factors():
    triples = [cifar_class(i) for i in range(100)]
    assert len(set(triples)) == 100
    assert {t[2] for t in triples[:10]} == {"solid", "striped"}  # the smoke classes vary all three factors
    assert len({t[0] for t in triples[:10]}) == 5 and len({t[1] for t in triples[:10]}) == 5
    with pytest.raises(ValueError, match="0..99"):
        cifar_class(100)


def test_synthetic_cifar_reads_back_through_the_real_loader(tmp_path: Path):
    folder = write_synthetic_cifar(tmp_path, num_classes=12, train_per_class=6, test_per_class=3, seed=5)
    assert folder == tmp_path / "cifar-100-python"
    data = load_cifar100(folder)
    assert data.x_train.shape == (72, 32, 32, 3) and data.x_test.shape == (36, 32, 32, 3)
    assert np.bincount(data.y_train).tolist() == [6] * 12 and np.bincount(data.y_test).tolist() == [3] * 12
    assert data.label_names[:2] == ["red_circle_solid", "green_square_solid"]
    assert data.coarse_label_names == ["circle", "square", "triangle", "cross", "star"]
    shapes = [data.label_names[y].split("_")[1] for y in data.y_train]
    assert [data.coarse_label_names[c] for c in data.y_train_coarse] == shapes  # coarse class = shape
    assert data.x_train.std() > 20  # not blank pictures


def test_cifar_picture_shows_the_class_colour(tmp_path: Path):
    data = load_cifar100(
        write_synthetic_cifar(tmp_path, num_classes=10, train_per_class=20, test_per_class=1)
    )
    hits = 0
    for img, y in zip(data.x_train, data.y_train, strict=True):
        masks = colour_masks(img)
        hits += max(masks, key=lambda c: masks[c].sum()) == data.label_names[y].split("_")[0]
    assert hits / len(data.y_train) > 0.97


def test_cifar_is_deterministic_by_seed(tmp_path: Path):
    a = write_synthetic_cifar(tmp_path / "a", 5, 4, 2, seed=1)
    b = write_synthetic_cifar(tmp_path / "b", 5, 4, 2, seed=1)
    c = write_synthetic_cifar(tmp_path / "c", 5, 4, 2, seed=2)
    assert (a / "train").read_bytes() == (b / "train").read_bytes()
    assert (a / "train").read_bytes() != (c / "train").read_bytes()


def test_ensure_cifar_writes_once_and_rewrites_on_a_new_config(tmp_path: Path):
    folder = ensure_synthetic_cifar(tmp_path, num_classes=4, train_per_class=3, test_per_class=1)
    stamp = tmp_path / "cifar-100-python.synthetic.json"
    assert artifacts.read_json(stamp)["num_classes"] == 4
    before = (folder / "train").stat().st_mtime_ns
    assert ensure_synthetic_cifar(tmp_path, num_classes=4, train_per_class=3, test_per_class=1) == folder
    assert (folder / "train").stat().st_mtime_ns == before  # untouched
    ensure_synthetic_cifar(tmp_path, num_classes=5, train_per_class=3, test_per_class=1)
    assert len(load_cifar100(folder).label_names) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cifar-100-python",
        "cifar-100-python.synthetic.json",
    ]


def test_never_overwrites_a_folder_it_did_not_write(tmp_path: Path):
    (tmp_path / "cifar-100-python").mkdir()
    with pytest.raises(FileExistsError, match="not written by the synthetic generator"):
        ensure_synthetic_cifar(tmp_path, num_classes=2, train_per_class=1, test_per_class=1)


def test_invalid_sizes_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"num_classes must be in 1\.\.100"):
        write_synthetic_cifar(tmp_path, num_classes=101)
    with pytest.raises(ValueError, match="caption_format"):
        write_synthetic_flickr(tmp_path, caption_format="json")
    with pytest.raises(ValueError, match="unknown colours/shapes"):
        write_synthetic_flickr(tmp_path, colours=("red", "mauve"))


# ---- Flickr8k-style ----------------------------------------------------------------------------------
def test_flickr_reads_back_with_official_style_splits(flickr_root: Path):
    data = load_flickr8k(flickr_root)
    assert data.problems == [] and data.missing_images == [] and data.uncaptioned_images == []
    assert data.split_source == "official"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 320, "val": 40, "test": 40}
    assert all(len(c) == 5 and len(set(c)) == 5 for c in data.captions.values())  # five different wordings
    name = data.splits["train"][0]
    assert decode_image(data.image_path(name)).shape == (96, 96, 3)
    assert all(len(n.split("_")[1]) == 14 for n in data.captions)  # "<digits>_<10 hex>.jpg" like real ids


def test_csv_format_holds_the_same_captions(flickr_root: Path, tmp_path: Path):
    csv_root = write_synthetic_flickr(tmp_path, num_images=400, seed=0, caption_format="csv")
    assert (csv_root / "captions.txt").is_file() and not (csv_root / "Flickr8k.token.txt").exists()
    assert load_flickr8k(csv_root).captions == load_flickr8k(flickr_root).captions


def test_flickr_is_deterministic_by_seed(flickr_root: Path, tmp_path: Path):
    again = write_synthetic_flickr(tmp_path / "a", num_images=400, seed=0)
    other = write_synthetic_flickr(tmp_path / "b", num_images=400, seed=1)
    token = "Flickr8k.token.txt"
    assert (again / token).read_bytes() == (flickr_root / token).read_bytes()
    name = sorted((again / "Images").iterdir())[0].name
    assert (again / "Images" / name).read_bytes() == (flickr_root / "Images" / name).read_bytes()
    assert (other / token).read_bytes() != (flickr_root / token).read_bytes()


def test_captions_state_the_facts_and_cannot_be_guessed(flickr_root: Path):
    data = load_flickr8k(flickr_root)
    scenes = json.loads((flickr_root / "synthetic_scenes.json").read_text())
    colours, relations = Counter(), Counter()
    for name, caps in data.normalized.items():
        scene = scenes[name]
        for colour, shape in scene["objects"]:
            assert all(f"{colour} {shape}" in c for c in caps)
            colours[colour] += 1
        relations[scene["relation"]] += 1
    n_objects = sum(colours.values())
    assert all(0.18 < colours[c] / n_objects < 0.32 for c in ("red", "green", "blue", "yellow"))
    assert all(0.15 < relations[r] / 400 < 0.3 for r in ("left", "right", "above", "below"))
    first = Counter(caps[0] for caps in data.normalized.values())
    # the best image-blind guess is one of the 12 single-object captions (a fifth of pictures / 12)
    assert first.most_common(1)[0][1] <= 16
    vocabulary = {w for caps in data.normalized.values() for c in caps for w in c.split()}
    assert len(vocabulary) <= 35


def test_relation_is_visible_in_the_pixels(flickr_root: Path):
    """An image-reading oracle recovers the stated relation from colour centroids."""
    scenes = json.loads((flickr_root / "synthetic_scenes.json").read_text())
    checked = 0
    for name, scene in scenes.items():
        (ca, _), *rest = scene["objects"]
        if not rest or rest[0][0] == ca:
            continue  # one object, or both the same colour: centroids cannot tell them apart
        masks = colour_masks(decode_image(flickr_root / "Images" / name))
        (ya, xa), (yb, xb) = (np.argwhere(masks[c]).mean(0) for c in (ca, rest[0][0]))
        dx, dy = xa - xb, ya - yb
        seen = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
        assert seen == scene["relation"], name
        checked += 1
    assert checked > 200


def test_ensure_flickr_rewrites_when_the_format_changes(tmp_path: Path):
    root = ensure_synthetic_flickr(tmp_path, num_images=20, image_size=32)
    assert (root / "Flickr8k.token.txt").is_file()
    before = (root / "Flickr8k.token.txt").stat().st_mtime_ns
    ensure_synthetic_flickr(tmp_path, num_images=20, image_size=32)
    assert (root / "Flickr8k.token.txt").stat().st_mtime_ns == before
    ensure_synthetic_flickr(tmp_path, num_images=20, image_size=32, caption_format="csv")
    assert (root / "captions.txt").is_file() and not (root / "Flickr8k.token.txt").exists()
