"""The canonical loaders on small real samples (skipped when the samples folder is not on this machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.data import (
    CIFAR100_COARSE_LABELS,
    CIFAR100_FINE_LABELS,
    decode_image,
    load_cifar100,
    load_flickr8k,
)


@pytest.fixture(scope="module")
def flickr(real_samples: Path):
    return load_flickr8k(real_samples / "flickr8k")


@pytest.mark.parametrize("name", ["cifar-100-python", "cifar-100-python.tar.gz"])
def test_cifar_miniature_loads(real_samples: Path, name: str):
    data = load_cifar100(real_samples / name)
    assert data.x_train.shape == (585, 32, 32, 3) and data.x_test.shape == (100, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.label_names == list(CIFAR100_FINE_LABELS)  # the constants match the real meta file
    assert data.coarse_label_names == list(CIFAR100_COARSE_LABELS)
    assert len(np.unique(np.concatenate([data.y_train, data.y_test]))) == 100
    # in CIFAR-100 every fine class belongs to exactly one coarse class
    pairs = set(zip(data.y_train.tolist(), data.y_train_coarse.tolist(), strict=True))
    assert len(pairs) == len({f for f, _ in pairs})
    assert data.coarse_label_names[dict(pairs)[data.label_names.index("apple")]] == "fruit_and_vegetables"
    assert 40 < data.x_train.mean() < 200 and data.x_train.std() > 30  # real pictures, not blank


def test_flickr_token_file_with_official_splits(flickr, real_samples: Path):
    assert flickr.images_dir == real_samples / "flickr8k" / "Images"
    assert len(flickr.captions) in (8091, 8092)
    assert sum(len(c) for c in flickr.captions.values()) == 5 * len(flickr.captions)
    assert flickr.split_source == "official" and flickr.listed == {"train": 6000, "val": 1000, "test": 1000}
    on_disk = {p.name for p in flickr.images_dir.glob("*.jpg")}
    assert len(on_disk) == 1000
    in_splits = [n for ids in flickr.splits.values() for n in ids]
    assert len(in_splits) == len(set(in_splits)) and set(in_splits) <= on_disk
    assert {k: len(v) for k, v in flickr.splits.items()} == {"train": 753, "val": 113, "test": 125}
    assert len(flickr.missing_images) == len(flickr.captions) - len(on_disk & set(flickr.captions)) > 7000
    bogus = [p for p in flickr.problems if "2258277193_586949ec62.jpg.1" in p]
    assert len(bogus) == 5 and bogus[0].startswith("Flickr8k.token.txt line 6731:")


def test_flickr_csv_captions_agree_with_the_token_file(flickr, real_samples: Path, tmp_path: Path):
    # the same folder, but only captions.txt: link the images and copy the CSV
    (tmp_path / "Images").symlink_to(real_samples / "flickr8k" / "Images")
    (tmp_path / "captions.txt").write_bytes((real_samples / "flickr8k" / "captions.txt").read_bytes())
    from_csv = load_flickr8k(tmp_path)
    assert len(from_csv.captions) == 8091 and from_csv.problems == []
    assert from_csv.split_source == "seeded" and sum(len(v) for v in from_csv.splits.values()) == 1000
    shared = set(from_csv.captions) & set(flickr.captions)
    assert len(shared) == 8091
    assert all(from_csv.normalized[n] == flickr.normalized[n] for n in shared)


def test_every_real_jpeg_decodes(flickr):
    names = sorted(p.name for p in flickr.images_dir.glob("*.jpg"))
    shapes = [decode_image(flickr.images_dir / n).shape for n in names]
    assert len(shapes) == 1000 and all(s[2] == 3 and min(s[:2]) >= 16 for s in shapes)
