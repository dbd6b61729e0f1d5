"""Karpathy's caption splits (``dataset_<coco|flickr30k|flickr8k>.json`` from ``caption_datasets.zip``).

Format: ``{"images": [{"filename", "split", "sentences": [{"raw", ...}], COCO also "filepath"}], ...}``.
COCO's ``restval`` images join a split chosen by the `restval` knob (train by default, as the literature).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.data.captions import (
    CaptionDataset,
    CaptionFormatError,
    assign_splits,
    build_dataset,
    collect_captions,
)

NAMES = ("coco", "flickr30k", "flickr8k")
RESTVAL = ("train", "val", "exclude")
IMAGE_KEYS, SENTENCE_KEY = ("filename", "split", "sentences"), "raw"


def _rows(images: list, json_name: str, restval: str):
    """(caption rows, split rows) of the JSON's image entries; a bad entry is a clear error."""
    captions, splits = [], []
    for i, entry in enumerate(images):
        missing = [k for k in IMAGE_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise CaptionFormatError(
                f"{json_name} images[{i}]: expected {', '.join(IMAGE_KEYS)}; missing {', '.join(missing)}"
            )
        name = f"{entry['filepath']}/{entry['filename']}" if entry.get("filepath") else entry["filename"]
        for j, sentence in enumerate(entry["sentences"]):
            if not isinstance(sentence, dict) or SENTENCE_KEY not in sentence:
                raise CaptionFormatError(
                    f"{json_name} images[{i}].sentences[{j}]: expected key {SENTENCE_KEY!r}"
                )
            captions.append((f"{json_name} images[{i}]", name, sentence[SENTENCE_KEY]))
        split = restval if entry["split"] == "restval" else entry["split"]
        if split != "exclude":
            splits.append((f"{json_name} images[{i}]", name, split))
    return captions, splits


def load_karpathy(
    json_path: str | Path, images_dir: str | Path, restval: str = "train", check_images: bool = True
) -> CaptionDataset:
    """Read a Karpathy JSON; names are ``filepath/filename`` (COCO) or ``filename``, under `images_dir`."""
    if restval not in RESTVAL:
        raise ValueError(f"restval must be one of {', '.join(RESTVAL)}, got {restval!r}")
    path = Path(json_path).expanduser()
    if not path.is_file():
        raise CaptionFormatError(f"{path} not found (expected Karpathy's dataset_<name>.json)")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CaptionFormatError(f"{path.name}: expected a JSON object with an 'images' list")
    caption_rows, split_rows = _rows(data["images"], path.name, restval)
    del data  # the parsed JSON is the largest thing in memory at COCO scale
    captions, problems, duplicates = collect_captions(caption_rows)
    splits = assign_splits(split_rows, path.name, problems)
    name = path.stem.removeprefix("dataset_")
    return build_dataset(
        path.parent,
        Path(images_dir).expanduser(),
        captions,
        splits,
        problems,
        check_images=check_images,
        split_source="file",
        source=f"karpathy:{name}",
        duplicates=duplicates,
    )


def write_karpathy(dataset: CaptionDataset, dest: str | Path, name: str) -> Path:
    """Write `dataset`'s captions and splits as ``dest/dataset_<name>.json`` (Karpathy's key set)."""
    images, sentid = [], 0
    for imgid, (split, image) in enumerate((s, n) for s, ns in dataset.splits.items() for n in ns):
        folder, _, filename = image.rpartition("/")
        sentences = [
            {"raw": raw, "tokens": norm.split(), "imgid": imgid, "sentid": sentid + k}
            for k, (raw, norm) in enumerate(
                zip(dataset.captions[image], dataset.normalized[image], strict=True)
            )
        ]
        entry = {"filename": filename, "split": split, "imgid": imgid, "sentences": sentences}
        entry["sentids"] = [s["sentid"] for s in sentences]
        if folder:
            entry["filepath"] = folder
        images.append(entry)
        sentid += len(sentences)
    out = Path(dest) / f"dataset_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "dataset": name}), encoding="utf-8")
    return out
