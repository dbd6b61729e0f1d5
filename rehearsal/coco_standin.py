"""A COCO stand-in in the real layouts: Karpathy's ``dataset_coco.json`` at its real size, the 2014 archives.

- ``caption_datasets.zip`` holding ``dataset_coco.json``: 123,287 image entries with the real key set
  (``filepath`` train2014/val2014, ``filename`` ``COCO_<folder>_<cocoid:012d>.jpg``, ``cocoid``, ``imgid``,
  ``split``, ``sentids``, ``sentences`` with ``raw``, ``tokens``, ``imgid``, ``sentid``) and Karpathy's split
  sizes (train 82,783 from train2014; restval 30,504, val 5,000 and test 5,000 from val2014), 616,767
  generated captions (five per image, a sixth for 332: the real total), ~144 MB like the real file.
- ``train2014.zip`` / ``val2014.zip``: the real folder names, holding only a few hundred generated
  640 x 480 JPEGs (some grayscale, as COCO 2014 has; optionally some truncated). Every other listed image
  is absent: the reader counts and reports it as missing.

Everything is seeded. `write_coco` writes the three files into a mirror folder, `build` does it once with a
manifest; `all_present` makes a copy of an extracted stand-in in which every listed image exists.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.data.download_table import COCO_ARCHIVES, KARPATHY_ARCHIVE
from rehearsal.standins import photo_jpeg


@dataclass(frozen=True)
class CocoScale:
    """How big the COCO stand-in is."""

    train: int = 82_783  # Karpathy's train split, all in train2014/
    restval: int = 30_504  # val2014 images the literature adds to train
    val: int = 5_000
    test: int = 5_000
    sixth_captions: int = 332  # images with a sixth caption (123,287 x 5 + 332 = 616,767, the real count)
    present: tuple[int, int] = (200, 100)  # JPEGs in train2014.zip / val2014.zip
    grayscale: int = 3  # of the present ones: single-channel JPEGs (COCO 2014 has such pictures)
    truncated: int = 0  # of the present ones: cut-off files that fail to decode (none in the rehearsal)
    seed: int = 0

    @property
    def images(self) -> int:
        return self.train + self.restval + self.val + self.test


#: The rehearsal's stand-in: the real JSON's counts.
COCO = CocoScale()


def _words(text: str) -> list[str]:
    """Word choices, separated by commas."""
    return [w.strip() for w in text.split(",")]


_ADJ = _words("small, large, white, black, red, young, old, wooden, brown, green, tall, blue")
_NOUN = _words(
    "man, woman, dog, cat, train, bus, plate, pizza, giraffe, table, child, skateboard, kitchen, bench, "
    "horse, umbrella, clock, bathroom, street, laptop"
)
_VERB = _words("sitting on, standing next to, riding, holding, walking down, parked near, looking at, eating")
_PLACE = _words(
    "in a field, on the beach, at a table, in front of a building, on a city street, in the snow, "
    "next to a fence, in a room, under a tree, near the water"
)
_WORDS = [_ADJ, _NOUN, _VERB, _ADJ, _NOUN, _PLACE]


def _captions(n: int, rng: np.random.Generator) -> list[tuple[str, list[str]]]:
    """`n` (raw, tokens) pairs shaped like COCO's: about ten words, a capital, often a trailing period."""
    pick = [rng.integers(0, len(w), n) for w in _WORDS]
    style = rng.integers(0, 4, n)
    out = []
    for i in range(n):
        a1, n1, v, a2, n2, p = (w[k[i]] for w, k in zip(_WORDS, pick, strict=True))
        words = ["a", a1, n1, v, "a", a2, n2, p] if style[i] else ["a", n1, v, "a", a2, n2, p]
        text = " ".join(words)
        raw = text[0].upper() + text[1:] + (". " if style[i] == 1 else "." if style[i] == 2 else "")
        out.append((raw, text.split()))
    return out


def coco_entries(scale: CocoScale) -> list[dict]:
    """The ``images`` list of a stand-in ``dataset_coco.json`` (val2014 first, then train2014)."""
    rng = np.random.default_rng(scale.seed)
    ids = rng.choice(np.arange(1, 581_930), scale.images, replace=False)  # COCO 2014 ids run to 581,929
    splits = ["restval"] * scale.restval + ["val"] * scale.val + ["test"] * scale.test
    splits = list(rng.permutation(splits)) + ["train"] * scale.train
    counts = np.full(scale.images, 5)
    counts[rng.choice(scale.images, scale.sixth_captions, replace=False)] = 6
    captions = iter(_captions(int(counts.sum()), rng))
    entries, sentid = [], 0
    for imgid, (cocoid, split) in enumerate(zip(ids.tolist(), splits, strict=True)):
        folder = "train2014" if split == "train" else "val2014"
        sents = []
        for k in range(counts[imgid]):
            raw, tokens = next(captions)
            sents.append({"tokens": tokens, "raw": raw, "imgid": imgid, "sentid": sentid + k})
        entries.append(
            {
                "filepath": folder,
                "sentids": [s["sentid"] for s in sents],
                "filename": f"COCO_{folder}_{cocoid:012d}.jpg",
                "imgid": imgid,
                "split": split,
                "sentences": sents,
                "cocoid": cocoid,
            }
        )
        sentid += len(sents)
    return entries


def _photo(rng: np.random.Generator, grayscale: bool) -> bytes:
    """A 640 x 480 (or 480 x 640) JPEG with gradients, blocks and grain: COCO's size, ~100 KB."""
    return photo_jpeg(rng, (640, 480), (6, 30, 120), grain=12.0, grayscale=grayscale)


def present_images(entries: list[dict], scale: CocoScale) -> dict[str, bytes]:
    """``folder/filename`` -> JPEG bytes of the images the archives hold (spread over every split)."""
    rng = np.random.default_rng(scale.seed + 1)
    chosen = []
    for folder, n in zip(("train2014", "val2014"), scale.present, strict=True):
        pool = [e for e in entries if e["filepath"] == folder]
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))]
    out = {}
    for i, e in enumerate(chosen):
        data = _photo(rng, grayscale=i < scale.grayscale)
        if scale.grayscale <= i < scale.grayscale + scale.truncated:
            data = data[: len(data) // 3]  # cut off mid-scan: opens, then fails to decode
        out[f"{e['filepath']}/{e['filename']}"] = data
    return out


def write_coco(mirror: Path, scale: CocoScale = COCO, extra_json: dict[str, bytes] | None = None) -> dict:
    """``caption_datasets.zip`` (dataset_coco.json + `extra_json`), ``train2014.zip``, ``val2014.zip``."""
    mirror.mkdir(parents=True, exist_ok=True)
    entries = coco_entries(scale)
    images = present_images(entries, scale)
    text = json.dumps({"images": entries, "dataset": "coco"}).encode()
    del entries
    jsons = {"dataset_coco.json": text, **(extra_json or {})}
    _zip(mirror / KARPATHY_ARCHIVE, jsons, zipfile.ZIP_DEFLATED)
    for archive in COCO_ARCHIVES:
        folder = archive.removesuffix(".zip")
        members = {k: v for k, v in images.items() if k.startswith(folder + "/")}
        _zip(mirror / archive, {f"{folder}/": b"", **members}, zipfile.ZIP_STORED)  # JPEGs do not deflate
    order, g = list(images), scale.grayscale  # present_images' order: grayscale first, then truncated
    return {
        "json_bytes": len(text),
        "present": sorted(images),
        "grayscale": order[:g],
        "truncated": order[g : g + scale.truncated],
        "jpeg_bytes": sum(map(len, images.values())),
    }


def _zip(path: Path, members: dict[str, bytes], method: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", method, compresslevel=1 if method == zipfile.ZIP_DEFLATED else None) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    os.replace(tmp, path)


def build(work: Path, scale: CocoScale = COCO) -> dict[str, Any]:
    """The COCO stand-in in `work/mirror` with its manifest (reused when a build of this scale is there)."""
    from rehearsal.standins import write_manifest

    stamp, mirror = work / "coco.json", work / "mirror"
    wanted = json.loads(json.dumps({"scale": vars(scale), "format": 1}))
    if stamp.is_file() and json.loads(stamp.read_text())["wanted"] == wanted:
        return json.loads(stamp.read_text())
    start = time.perf_counter()
    written = write_coco(mirror, scale)
    write_manifest(mirror, work / "manifest.json")
    info = {"wanted": wanted, **written, "seconds": round(time.perf_counter() - start, 1)}
    stamp.write_text(json.dumps(info))
    return info


def all_present(extracted: Path, view: Path) -> Path:
    """`view`: the extracted JSON with every image it lists on disk (hard links to the extracted JPEGs)."""
    if (view / ".complete").is_file():
        return view
    files = sorted(p for p in extracted.glob("*2014/*.jpg"))
    with open(extracted / "dataset_coco.json", encoding="utf-8") as f:
        listed = [f"{e['filepath']}/{e['filename']}" for e in json.load(f)["images"]]
    view.mkdir(parents=True, exist_ok=True)
    (view / "dataset_coco.json").unlink(missing_ok=True)
    os.link(extracted / "dataset_coco.json", view / "dataset_coco.json")
    for folder in ("train2014", "val2014"):
        (view / folder).mkdir(exist_ok=True)
    for i, name in enumerate(listed):
        src, dst = extracted / name, view / name
        if not dst.exists():
            os.link(src if src.is_file() else files[i % len(files)], dst)
    (view / ".complete").write_text(f"{len(listed)}\n")
    return view
