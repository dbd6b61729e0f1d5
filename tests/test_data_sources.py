"""The Karpathy-JSON and own-folder readers: same data as the Flickr8k reader, bad input reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.data import load_flickr8k, write_synthetic_flickr
from helpers.data.captions import CaptionFormatError
from helpers.data.folder import load_folder, write_folder
from helpers.data.karpathy import load_karpathy, write_karpathy


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_synthetic_flickr(tmp_path_factory.mktemp("w"), num_images=40, seed=3, image_size=32)


def same(a, b) -> None:
    assert a.splits == b.splits and {n: a.captions[n] for n in sum(a.splits.values(), [])} == {
        n: b.captions[n] for n in sum(b.splits.values(), [])
    }


def test_karpathy_and_folder_read_the_same_data_as_flickr8k(world: Path, tmp_path: Path):
    flickr = load_flickr8k(world)
    karpathy = load_karpathy(write_karpathy(flickr, tmp_path, "flickr8k"), world / "Images")
    folder = load_folder(write_folder(flickr, tmp_path / "mine"))
    same(flickr, karpathy)
    same(flickr, folder)
    assert karpathy.source == "karpathy:flickr8k" and folder.split_source == "file"


def test_restval_joins_train_unless_told(tmp_path: Path, world: Path):
    flickr = load_flickr8k(world)
    images = [
        {"filename": n, "filepath": "Images", "split": s, "sentences": [{"raw": "a red circle"}]}
        for s, n in [("train", flickr.splits["train"][0]), ("restval", flickr.splits["train"][1])]
    ]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    assert len(load_karpathy(path, world).splits["train"]) == 2
    assert len(load_karpathy(path, world, restval="exclude").splits["train"]) == 1
    assert load_karpathy(path, world, restval="val").splits["val"] == [f"Images/{flickr.splits['train'][1]}"]


def test_wrong_keys_and_columns_name_what_was_expected(tmp_path: Path):
    (tmp_path / "dataset_x.json").write_text(json.dumps({"images": [{"file": "a.jpg"}]}))
    with pytest.raises(CaptionFormatError, match="filename, split, sentences"):
        load_karpathy(tmp_path / "dataset_x.json", tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"image": "a.jpg", "caption": "x"}\n')
    with pytest.raises(CaptionFormatError, match="expected keys file_name, text"):
        load_folder(tmp_path)
    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "captions.csv").write_text("file,text\na.jpg,x\n")
    with pytest.raises(CaptionFormatError, match=r"image,caption\[,split\]"):
        load_folder(tmp_path)


def folder_with(tmp_path: Path, world: Path, lines: bytes) -> Path:
    flickr = load_flickr8k(world)
    for n in flickr.splits["train"][:3]:
        (tmp_path / n).write_bytes(flickr.image_path(n).read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "captions.csv").write_bytes(b"image,caption,split\n" + lines)
    return tmp_path


def test_bad_lines_are_reported_and_left_out(tmp_path: Path, world: Path):
    a, b, c = load_flickr8k(world).splits["train"][:3]
    lines = (
        (
            f"{a},a red circle,train\n{a},a red circle,train\n{a},   ,train\n"  # repeated (kept), whitespace
            f"{b},a blue circle,train\n{b},a blue ball,test\n"  # one image in two splits
            f"gone.jpg,a missing picture,train\nbroken.jpg,a broken picture,train\n"
        ).encode()
        + f"{c},caf\xe9 ".encode("latin-1")
        + b"circle,train\n"
    )  # not UTF-8
    data = load_folder(folder_with(tmp_path, world, lines))
    assert data.splits == {"train": [a, b], "val": [], "test": []}
    assert data.duplicates == 1 and data.captions[a] == ["a red circle", "a red circle"]
    assert data.missing_images == ["gone.jpg"] and data.undecodable_images == ["broken.jpg"]
    text = "\n".join(data.problems)
    assert "duplicate" not in text  # a repeat is a reference, not a problem
    for fragment in ("empty caption", f"{b} is already in the train split", "not UTF-8"):
        assert fragment in text
    s = data.summary()
    assert s["left_out"] == {"missing_images": ["gone.jpg"], "undecodable_images": ["broken.jpg"]}
    assert (s["missing_images"], s["undecodable_images"], s["duplicate_captions"]) == (1, 1, 1)


def test_seeded_split_by_image_is_written_and_reused(tmp_path: Path, world: Path):
    flickr = load_flickr8k(world)
    folder = write_folder(flickr, tmp_path / "mine", splits=False)
    split_file = tmp_path / "run" / "splits.json"
    first = load_folder(folder, seed=1, split_file=split_file)
    assert first.split_source == "seeded" and split_file.is_file()
    sizes = [len(first.splits[k]) for k in ("train", "val", "test")]
    assert sizes == [32, 4, 4] and len(set(sum(first.splits.values(), []))) == 40  # by image, disjoint
    again = load_folder(folder, seed=99, split_file=split_file)
    assert again.split_source == "recorded" and again.splits == first.splits


@pytest.mark.parametrize("dataset", ["karpathy:coco", "karpathy:flickr8k", "folder"])
def test_smoke_config_reads_the_synthetic_world_through_each_reader(tmp_path: Path, dataset: str):
    """Each smoke source holds the smoke run's data exactly, so the smoke run's learning bars carry over."""
    from helpers.caption.config import CaptionConfig

    base = CaptionConfig.for_preset("smoke", str(tmp_path)).load_data(check_images=False)
    cfg = CaptionConfig.for_preset("smoke", str(tmp_path), dataset=dataset)
    data = cfg.load_data()
    assert data.source == dataset and cfg.to_dict()["dataset"] == dataset
    assert data.splits == base.splits and [data.captions[n] for n in data.splits["test"]] == [
        base.captions[n] for n in base.splits["test"]
    ]
    first, ref = data.splits["test"][0], base.splits["test"][0]
    assert data.image_path(first).read_bytes() == base.image_path(ref).read_bytes()


def test_unknown_dataset_strings_fail_at_once(tmp_path: Path):
    from helpers.caption.config import CaptionConfig

    with pytest.raises(ValueError, match=r"expected flickr8k, karpathy:<coco\|flickr30k\|flickr8k>"):
        CaptionConfig.for_preset("smoke", str(tmp_path), dataset="karpathy:imagenet")
    with pytest.raises(ValueError, match="needs data_source"):
        CaptionConfig.for_preset("full", str(tmp_path), dataset="karpathy:flickr30k").resolve_data()


def test_real_flickr8k_sample_reads_the_same_through_karpathy_json(real_samples: Path, tmp_path: Path):
    """A Karpathy-format file built from the real captions and official splits gives the same dataset."""
    from helpers.data.sources import load_dataset

    flickr = load_dataset("flickr8k", real_samples / "flickr8k")
    json_path = write_karpathy(flickr, tmp_path, "flickr8k")
    (tmp_path / "Images").symlink_to(flickr.images_dir)
    karpathy = load_dataset("karpathy:flickr8k", tmp_path)
    same(flickr, karpathy)
    assert json_path.name == "dataset_flickr8k.json" and sum(len(v) for v in karpathy.splits.values()) > 0


def test_downstream_reads_the_dataset_06_recorded(tmp_path: Path, world: Path):
    """07's studies and 08 take the dataset from 06's metrics.json, not from a folder named flickr8k: a run
    trained on your own folder gives its test split; 08 refuses it with the reason (Flickr8K-CN names
    Flickr8k's images)."""
    import numpy as np

    from helpers import artifacts
    from helpers.caption.config import CaptionConfig, recorded_dataset
    from helpers.config import RunPaths
    from helpers.data import decode_image
    from helpers.demo.studies import study_pictures
    from helpers.multilingual.config import MultilingualConfig

    flickr = load_flickr8k(world)
    mine = write_folder(flickr, tmp_path / "mine")
    run = tmp_path / "run"
    cfg = CaptionConfig.for_preset("sample", str(run), data_source=str(mine), dataset=f"folder:{mine}")
    paths = RunPaths(run)
    assert recorded_dataset(paths) is None  # 06 has not run here
    artifacts.write_json(paths.captions / "metrics.json", {"config": cfg.to_dict()})
    data = recorded_dataset(paths)
    assert data.source == f"folder:{mine}" and data.splits == flickr.splits
    assert recorded_dataset(paths) is data  # read once: 07 asks for its examples and again for its studies
    pictures = study_pictures(paths, 3)
    want = [decode_image(flickr.image_path(n)) for n in flickr.splits["test"][:3]]
    assert len(pictures["flickr"]) == 3 and all(
        np.array_equal(a, b) for a, b in zip(pictures["flickr"], want, strict=True)
    )
    # A new metrics.json (06 run again, here on the Flickr8k world) is read again, not served from the cache
    flickr_cfg = CaptionConfig.for_preset("sample", str(run), data_source=str(world))
    artifacts.write_json(paths.captions / "metrics.json", {"config": flickr_cfg.to_dict()})
    os.utime(paths.captions / "metrics.json", ns=(1, 1))  # a different mtime even on a coarse clock
    assert recorded_dataset(paths).source == "flickr8k"
    artifacts.write_json(paths.captions / "metrics.json", {"config": cfg.to_dict()})
    ml = MultilingualConfig.for_preset("sample", str(run), str(tmp_path), ["zh"])
    with pytest.raises(ValueError, match=r"08 needs a run folder where 06 ran with dataset='flickr8k'"):
        ml.flickr_source()
