"""The `full` preset's Karpathy downloads and the COCO stand-in, against a local mirror (never the internet).

A small stand-in in the real layouts (`rehearsal.coco_standin`: Karpathy's JSON key set, `train2014.zip` /
`val2014.zip` with their folder names, a few JPEGs of which one is grayscale and one truncated) goes through
the same code the COCO-scale rehearsal (`python -m rehearsal.coco`) measures.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.caption.config import CaptionConfig
from helpers.data import CaptionFormatError, DownloadError, fetch_flickr8k, load_dataset, load_flickr8k
from helpers.data.downloads import unpack
from helpers.data.karpathy import write_karpathy
from rehearsal import coco, standins
from rehearsal.coco_standin import CocoScale, _photo, all_present, coco_entries, write_coco
from rehearsal.mirror import serve

SMALL = CocoScale(train=300, restval=120, val=40, test=40, sixth_captions=7, present=(12, 9), grayscale=1,
                  truncated=1)  # fmt: skip


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> dict:
    """A served mirror: the small COCO stand-in, Flickr8k's archives, Karpathy JSONs for all three."""
    work = tmp_path_factory.mktemp("mirror")
    folder = work / "mirror"
    folder.mkdir()
    standins.write_flickr_archives(folder, (6, 2, 2), np.random.default_rng(0))
    with serve(folder) as url, pytest.MonkeyPatch.context() as mp:
        standins.write_manifest(folder, work / "manifest.json")
        mp.setenv("CAPTION_DOWNLOAD_MIRROR", url)
        mp.setenv("CAPTION_DOWNLOAD_MANIFEST", str(work / "manifest.json"))
        flickr = load_flickr8k(fetch_flickr8k(work / "flickr-sources"))
    f8k = write_karpathy(flickr, work / "json", "flickr8k").read_bytes()
    sentence = {"raw": "Two young guys with shaggy hair look at their hands ."}
    entry = {"filename": "1000092795.jpg", "split": "test", "sentences": [sentence]}
    f30k = json.dumps({"images": [entry], "dataset": "flickr30k"})
    extra = {"dataset_flickr8k.json": f8k, "dataset_flickr30k.json": f30k.encode()}
    written = write_coco(folder, SMALL, extra_json=extra)
    standins.write_manifest(folder, work / "manifest.json")
    with serve(folder) as url:
        yield {"url": url, "manifest": work / "manifest.json", "flickr": flickr, **written}


@pytest.fixture
def online(mirror, monkeypatch) -> dict:
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", mirror["url"])
    monkeypatch.setenv("CAPTION_DOWNLOAD_MANIFEST", str(mirror["manifest"]))
    return mirror


def _expected(mirror: dict, restval: str = "train") -> dict[str, int]:
    """Split sizes of the present, decodable images, from the stand-in's own record."""
    split = {f"{e['filepath']}/{e['filename']}": e["split"] for e in coco_entries(SMALL)}
    counts = {"train": 0, "val": 0, "test": 0}
    for name in mirror["present"]:
        s = restval if split[name] == "restval" else split[name]
        if name not in mirror["truncated"] and s in counts:
            counts[s] += 1
    return counts


def test_full_karpathy_coco_fetches_extracts_and_reports_missing_and_broken(online, tmp_path, monkeypatch):
    cfg = CaptionConfig.for_preset("full", str(tmp_path / "run"), dataset="karpathy:coco")
    data = cfg.load_data()
    root = tmp_path / "run" / "sources" / "karpathy-coco"
    assert data.images_dir == root and (root / "dataset_coco.json").is_file()
    assert sorted(p.name for p in (root / "train2014").iterdir()) == sorted(
        Path(n).name for n in online["present"] if n.startswith("train2014/")
    )
    assert not [p for p in (tmp_path / "run" / "sources" / "downloads").iterdir() if p.suffix == ".zip"]
    assert {k: len(v) for k, v in data.splits.items()} == _expected(online)
    summary = data.data_summary()
    assert summary["images_captioned"] == SMALL.images and summary["captions"] == SMALL.images * 5 + 7
    assert summary["missing_images"] == SMALL.images - len(online["present"])
    assert summary["left_out"]["undecodable_images"] == online["truncated"]
    assert not set(online["grayscale"]) & set(summary["left_out"]["undecodable_images"])
    # A second run downloads nothing: the mirror is gone, the markers say the archives were extracted.
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", "http://127.0.0.1:9")
    again = cfg.load_data(check_images=False)
    assert again.summary()["missing_images"] == summary["missing_images"]
    for restval in ("val", "exclude"):
        split = load_dataset("karpathy:coco", root, restval=restval)
        assert {k: len(v) for k, v in split.splits.items()} == _expected(online, restval)


def test_every_listed_image_present_gives_karpathys_split_sizes(online, tmp_path):
    """The rehearsal's 'all present' view and its parse step: real split sizes, restval in train."""
    root = CaptionConfig.for_preset("full", str(tmp_path / "run"), dataset="karpathy:coco").resolve_data()
    view = all_present(root, tmp_path / "view")
    parsed = coco.parse_child(view)
    splits = parsed["summary"]["splits"]
    assert splits == {"train": SMALL.train + SMALL.restval, "val": SMALL.val, "test": SMALL.test}
    assert parsed["summary"]["missing_images"] == 0
    assert parsed["pairs"]["val"] == SMALL.val * 5 + sum(
        len(e["sentences"]) - 5 for e in coco_entries(SMALL) if e["split"] == "val"
    )
    assert parsed["peak_rss"] >= parsed["rss_after_parse"] >= parsed["rss_start"] > 0


def test_full_karpathy_flickr8k_takes_the_json_and_the_image_archive_only(online, tmp_path):
    cfg = CaptionConfig.for_preset("full", str(tmp_path / "run"), dataset="karpathy:flickr8k")
    data = cfg.load_data()
    assert data.splits == online["flickr"].splits and not data.missing_images
    root = tmp_path / "run" / "sources" / "karpathy-flickr8k"
    assert sorted(p.name for p in root.iterdir()) == [
        ".Flickr8k_Dataset.zip.json", ".caption_datasets.zip.json", "Images", "dataset_flickr8k.json"
    ]  # fmt: skip


def test_full_karpathy_flickr30k_needs_the_owners_images(online, tmp_path):
    cfg = CaptionConfig.for_preset("full", str(tmp_path / "run"), dataset="karpathy:flickr30k")
    with pytest.raises(CaptionFormatError) as err:
        cfg.resolve_data()
    message = str(err.value)
    for expected in ("data_source", "flickr30k-images/", "dataset_flickr30k.json", "request form",
                     "https://shannon.cs.illinois.edu/DenotationGraph/"):  # fmt: skip
        assert expected in message
    assert not (tmp_path / "run" / "sources" / "downloads").exists()  # nothing fetched for it
    mine = tmp_path / "mine"
    (mine / "flickr30k-images").mkdir(parents=True)
    (mine / "flickr30k-images" / "1000092795.jpg").write_bytes(_photo(np.random.default_rng(0), False))
    cfg = CaptionConfig.for_preset("full", str(tmp_path / "run"), data_source=str(mine),
                                   dataset="karpathy:flickr30k")  # fmt: skip
    data = cfg.load_data()  # the JSON from caption_datasets.zip, the images from data_source
    assert data.splits["test"] == ["1000092795.jpg"] and not data.missing_images
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = CaptionConfig.for_preset("full", str(tmp_path / "run2"), data_source=str(empty),
                                   dataset="karpathy:flickr30k")  # fmt: skip
    with pytest.raises(CaptionFormatError, match="flickr30k-images/.*request form"):
        cfg.resolve_data()


def test_unpack_resumes_and_refuses_paths_outside(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/", b"")
        zf.writestr("top/x.jpg", b"x" * 100)
        zf.writestr("top/y.jpg", b"y" * 50)
    dest = tmp_path / "out"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "x.jpg").write_bytes(b"k" * 100)  # same size: taken as extracted by an earlier run
    (dest / "top" / "y.jpg").write_bytes(b"short")  # cut off by a kill: extracted again
    assert unpack(archive, dest, lambda m: m) == 2
    assert (dest / "top" / "x.jpg").read_bytes() == b"k" * 100
    assert (dest / "top" / "y.jpg").read_bytes() == b"y" * 50 and not list(dest.rglob("*.part"))
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("evil.jpg", b"!")
    with pytest.raises(DownloadError, match="outside"):
        unpack(archive, dest, lambda m: "../evil.jpg" if m == "evil.jpg" else None)
    assert not (tmp_path / "evil.jpg").exists()


def test_scoring_at_coco_size_is_reported_from_its_measurement():
    """rehearsal.coco's scoring step (5,000 test images) renders its own numbers, and nothing when absent."""
    from rehearsal.coco_markdown import _scoring

    measured = {"images": 5000, "references": 25014, "seconds": 15.2, "peak_rss": 0.8 * 2**30,
                "sampled_peak_rss": 1.75 * 2**30, "load_average": [0.5, 0.8],
                "scores": {"Bleu_4": 0.1843, "METEOR": 0.186, "ROUGE_L": 0.4, "CIDEr": 0.327},
                "scorer": {"tokenizer": "PTBTokenizer", "meteor": "computed"}}  # fmt: skip
    text = "\n".join(_scoring(measured))
    assert "5,000 images against 25,014 references" in text and "in 15 s; peak RSS 1.75 GiB" in text
    assert "Bleu_4 0.184, METEOR 0.186, CIDEr 0.327" in text and "30,014 texts are 61 MB" in text
    assert _scoring(None) == []
