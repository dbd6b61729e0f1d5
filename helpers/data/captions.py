"""The caption-dataset contract every reader returns (Flickr8k, Karpathy JSON, your own folder).

A `CaptionDataset` maps image names (paths relative to `images_dir`, e.g. ``train2014/COCO_...jpg``) to raw
and normalized captions and to a train/val/test split. Readers hand `build_dataset` the rows they parsed;
it drops and reports what cannot be used: empty captions, duplicate lines, images named in two splits,
images missing on disk and images that fail to decode. Nothing is dropped silently.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SPLIT_NAMES = ("train", "val", "test")
# Hyphens and slashes separate words ("black-and-white"); other punctuation is dropped ("dog's" -> "dogs").
_SEPARATORS = str.maketrans({c: " " for c in "-/"})
_DROP = str.maketrans("", "", string.punctuation.replace("-", "").replace("/", ""))
#: Names listed per kind of dropped item in `summary()` (the full lists go to `data_summary()`).
SUMMARY_NAMES = 20


class CaptionFormatError(ValueError):
    """A caption file or folder is not in the expected layout (the message names what was expected)."""


@dataclass
class CaptionDataset:
    """Captions and splits of one dataset, with everything that was left out and why."""

    root: Path
    images_dir: Path
    captions: dict[str, list[str]]  # image name -> raw captions, file order (usable or not)
    normalized: dict[str, list[str]]  # lowercased, punctuation stripped, whitespace collapsed
    splits: dict[str, list[str]]  # train/val/test -> image names with captions and a decodable file
    missing_images: list[str]  # captioned names without an image file
    problems: list[str]  # malformed lines and conflicts, with file name and line number
    split_source: str = "official"  # "official" (lists), "file" (a split column/field), "seeded", "recorded"
    listed: dict[str, int] = field(default_factory=dict)  # names given by each official split list
    uncaptioned_images: list[str] = field(default_factory=list)  # image files no caption refers to
    undecodable_images: list[str] = field(default_factory=list)  # files that exist but fail to decode
    source: str = "flickr8k"  # the dataset string that produced it
    duplicates: int = 0  # (image, caption) lines repeated in the source (kept, counted)

    def image_path(self, name: str) -> Path:
        """The file of image `name` (KeyError for a name without captions)."""
        if name not in self.captions:
            raise KeyError(f"{name!r} has no captions in {self.root}")
        return self.images_dir / name

    def summary(self) -> dict[str, Any]:
        """Counts for a report or a manifest, with the first names of each kind left out."""
        return {
            "source": self.source,
            "images_captioned": len(self.captions),
            "captions": sum(len(c) for c in self.captions.values()),
            "images_on_disk": len(self.captions) - len(self.missing_images) + len(self.uncaptioned_images),
            "missing_images": len(self.missing_images),
            "undecodable_images": len(self.undecodable_images),
            "uncaptioned_images": len(self.uncaptioned_images),
            "duplicate_captions": self.duplicates,
            "problems": len(self.problems),
            "split_source": self.split_source,
            "splits": {name: len(ids) for name, ids in self.splits.items()},
            "listed": dict(self.listed),
            "left_out": {k: v[:SUMMARY_NAMES] for k, v in self._left_out().items() if v},
        }

    def data_summary(self) -> dict[str, Any]:
        """`summary()` with every left-out name and every problem line (the run's data summary file)."""
        return {**self.summary(), "left_out": self._left_out(), "problem_lines": list(self.problems)}

    def _left_out(self) -> dict[str, list[str]]:
        return {"missing_images": self.missing_images, "undecodable_images": self.undecodable_images}


def normalize_caption(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace: ``"A dog's ball ."`` -> ``"a dogs ball"``."""
    return " ".join(text.lower().translate(_SEPARATORS).translate(_DROP).split())


def text_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text or None when the line is not UTF-8) per line; bad bytes never stop the read."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, None if not_utf8(line) else line.rstrip("\r\n")


def not_utf8(text: str) -> bool:
    """True when `text` holds bytes that were not UTF-8 (read with errors="surrogateescape")."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def collect_captions(
    rows: Iterable[tuple[str, str, str]],
) -> tuple[dict[str, list[str]], list[str], int]:
    """({name: captions}, problems, repeats) from (where, name, caption) rows. Empty captions are
    reported and left out; a caption repeated for the same image is kept, as the source has it (real
    Flickr8k has 10 such lines: each is one annotator's reference, and Karpathy's JSON keeps them too),
    and only counted."""
    captions: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    problems: list[str] = []
    duplicates = 0
    for where, name, caption in rows:
        text = caption.strip()
        if not text:
            problems.append(f"{where}: empty caption for {name}")
        else:
            if (name, text) in seen:
                duplicates += 1
            seen.add((name, text))
            captions.setdefault(name, []).append(text)
    return captions, problems, duplicates


def assign_splits(
    rows: Iterable[tuple[str, str, str]], where: str, problems: list[str]
) -> dict[str, list[str]]:
    """Split name -> names from (place, name, split) rows; a name given a second split stays in its first."""
    splits: dict[str, list[str]] = {k: [] for k in SPLIT_NAMES}
    first: dict[str, str] = {}
    for place, name, split in rows:
        if split not in splits:
            problems.append(
                f"{place}: unknown split {split!r} for {name} (expected {', '.join(SPLIT_NAMES)})"
            )
        elif name in first:  # listed twice: kept in its first split only (no leak between splits)
            problems.append(f"{place}: {name} is already in the {first[name]} split")
        else:
            first[name] = split
            splits[split].append(name)
    return splits


def seeded_split(
    ids: list[str], seed: int, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> dict[str, list[str]]:
    """A seeded split by image (no image in two splits), sorted within each split."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and a sum < 1, got {val_fraction}, {test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test, n_val = round(len(ids) * test_fraction), round(len(ids) * val_fraction)
    picked = [ids[i] for i in order]
    test, val, train = picked[:n_test], picked[n_test : n_test + n_val], picked[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def _decodes(path: Path) -> bool:
    """True when the file decodes as an image (JPEGs at 1/8 scale: ~1 ms each, enough to find bad ones)."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
        return True
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def undecodable(images_dir: Path, names: list[str], workers: int = 0) -> list[str]:
    """The names whose file fails to decode (PIL releases the GIL while decoding: threads use the cores)."""
    import os

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        ok = list(pool.map(_decodes, (images_dir / n for n in names), chunksize=64))
    return [n for n, good in zip(names, ok, strict=True) if not good]


def build_dataset(
    root: Path,
    images_dir: Path,
    captions: dict[str, list[str]],
    splits: dict[str, list[str]],
    problems: list[str],
    *,
    check_images: bool = True,
    **kw: Any,
) -> CaptionDataset:
    """The dataset with only usable images in its splits: captioned, on disk and (checked) decodable."""
    missing = sorted(n for n in captions if not (images_dir / n).is_file())
    gone = set(missing)
    listed = sorted({n for s in splits.values() for n in s if n in captions and n not in gone})
    bad = undecodable(images_dir, listed) if check_images else []
    drop = gone | set(bad)
    kept = {k: [n for n in v if n in captions and n not in drop] for k, v in splits.items()}
    return CaptionDataset(
        root=root,
        images_dir=images_dir,
        captions=captions,
        normalized={n: [normalize_caption(c) for c in cs] for n, cs in captions.items()},
        splits=kept,
        missing_images=missing,
        problems=problems,
        undecodable_images=bad,
        **kw,
    )
