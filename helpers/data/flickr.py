"""Flickr8k in its canonical layout: an image folder, a captions file and the official split lists.

Accepted layout under ``root``: images in ``Images/`` (or ``Flicker8k_Dataset/``, the original archive's
spelling); captions in ``Flickr8k.token.txt`` (``name.jpg#N<TAB>caption``) or ``captions.txt`` (CSV
``image,caption``); split lists ``Flickr_8k.{train,dev,test}Images.txt`` when present, else a seeded split.
Captions whose image is missing and malformed lines are reported, never fatal.
"""

from __future__ import annotations

import csv
import re
import string
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from helpers import artifacts
from helpers.data.download_table import FLICKR8K_ARCHIVES, TABLE
from helpers.data.downloads import DEFAULT_RETRIES, DEFAULT_TIMEOUT, DownloadError, fetch

__all__ = [
    "DownloadError",
    "Flickr8k",
    "FlickrFormatError",
    "fetch_flickr8k",
    "load_flickr8k",
    "normalize_caption",
    "read_caption_file",
]

TOKEN_FILE = "Flickr8k.token.txt"
CSV_FILE = "captions.txt"
IMAGE_DIRS = ("Images", "Flicker8k_Dataset")
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
# A real image id such as 1000268201_693b08cb0e.jpg; the known bogus id ...jpg.1 does not match.
_IMAGE_ID = re.compile(r"[\w\-]+\.(?:jpe?g|png)", re.IGNORECASE)
# Hyphens and slashes separate words ("black-and-white"); other punctuation is dropped ("dog's" -> "dogs").
_SEPARATORS = str.maketrans({c: " " for c in "-/"})
_DROP = str.maketrans("", "", string.punctuation.replace("-", "").replace("/", ""))


class FlickrFormatError(ValueError):
    """The folder is not a Flickr8k-style layout (no captions file, no image folder, partial splits)."""


@dataclass
class Flickr8k:
    root: Path
    images_dir: Path
    captions: dict[str, list[str]]  # image id -> raw captions, file order
    normalized: dict[str, list[str]]  # lowercased, punctuation stripped, whitespace collapsed
    splits: dict[str, list[str]]  # train/val/test -> image ids with captions and a file on disk
    missing_images: list[str]  # captioned ids without an image file
    problems: list[str]  # malformed lines, with file name and line number
    split_source: str = "official"  # "official" (the split lists) or "seeded"
    listed: dict[str, int] = field(default_factory=dict)  # ids named by each official split list
    uncaptioned_images: list[str] = field(default_factory=list)  # image files no caption refers to

    def image_path(self, name: str) -> Path:
        """The file of image `name` (KeyError for an id without captions)."""
        if name not in self.captions:
            raise KeyError(f"{name!r} has no captions in {self.root}")
        return self.images_dir / name

    def summary(self) -> dict[str, Any]:
        """Counts for a report or a manifest."""
        return {
            "images_captioned": len(self.captions),
            "captions": sum(len(c) for c in self.captions.values()),
            "images_on_disk": len(self.captions) - len(self.missing_images) + len(self.uncaptioned_images),
            "missing_images": len(self.missing_images),
            "uncaptioned_images": len(self.uncaptioned_images),
            "problems": len(self.problems),
            "split_source": self.split_source,
            "splits": {name: len(ids) for name, ids in self.splits.items()},
            "listed": dict(self.listed),
        }


def normalize_caption(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace: ``"A dog's ball ."`` -> ``"a dogs ball"``."""
    return " ".join(text.lower().translate(_SEPARATORS).translate(_DROP).split())


def _token_rows(path: Path, space: bool = False) -> Iterator[tuple[int, str, str | None]]:
    """(line number, image id, caption or None when the line has no separator) per non-blank line.

    The separator is a tab; with `space`, a line without a tab splits at its first space (Flickr8K-CN's
    ``IMAGE.jpg#zhc#N caption``). The id field may carry tags: ``IMAGE.jpg#N`` or ``IMAGE.jpg#zhc#N``.
    """
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                key, tab, caption = line.partition("\t")
                if not tab and space:
                    key, tab, caption = line.strip().partition(" ")
                yield lineno, key.split("#", 1)[0], caption if tab else None


def _csv_rows(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """Same from the ``image,caption`` CSV (quoted captions may hold commas and quotes)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row or (reader.line_num == 1 and [c.strip().lower() for c in row] == ["image", "caption"]):
                continue
            yield reader.line_num, row[0].strip(), row[1] if len(row) == 2 else None


def read_caption_file(path: str | Path) -> tuple[dict[str, list[str]], list[str]]:
    """({image id: captions}, problems) of any file in the ``IMAGE.jpg#N<tab or space>caption`` family."""
    return _read_captions(Path(path), _token_rows(Path(path), space=True))


def _read_captions(path: Path, rows: Iterator | None = None) -> tuple[dict[str, list[str]], list[str]]:
    if rows is None:
        rows = _token_rows(path) if path.name == TOKEN_FILE else _csv_rows(path)
    captions: dict[str, list[str]] = {}
    problems = []
    for lineno, name, caption in rows:
        where = f"{path.name} line {lineno}"
        if caption is None:
            problems.append(f"{where}: expected an image id and one caption")
        elif not _IMAGE_ID.fullmatch(name):
            problems.append(f"{where}: bad image id {name!r}")
        elif not caption.strip():
            problems.append(f"{where}: empty caption for {name}")
        else:
            captions.setdefault(name, []).append(caption.strip())
    return captions, problems


def _find(root: Path) -> tuple[Path, Path]:
    """(captions file, image folder) or a clear error listing what the folder holds."""
    if not root.is_dir():
        raise FlickrFormatError(f"{root} is not a folder")
    found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:15]) or "nothing"
    captions = next((root / n for n in (TOKEN_FILE, CSV_FILE) if (root / n).is_file()), None)
    if captions is None:
        hint = f"; did you mean {root / 'flickr8k'}?" if (root / "flickr8k").is_dir() else ""
        raise FlickrFormatError(f"{root} has neither {TOKEN_FILE} nor {CSV_FILE}; found {found}{hint}")
    images = next((root / n for n in IMAGE_DIRS if (root / n).is_dir()), None)
    if images is None:
        raise FlickrFormatError(f"{root} has no image folder ({' or '.join(IMAGE_DIRS)}/); found {found}")
    return captions, images


def _official_lists(root: Path) -> dict[str, list[str]] | None:
    present = {k: root / f for k, f in SPLIT_FILES.items() if (root / f).is_file()}
    if not present:
        return None
    if len(present) < len(SPLIT_FILES):
        missing = [SPLIT_FILES[k] for k in SPLIT_FILES if k not in present]
        raise FlickrFormatError(f"{root}: split lists incomplete, missing {', '.join(missing)}")
    return {
        k: [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        for k, p in present.items()
    }


def _official_splits(
    lists: dict[str, list[str]], keep: set[str], problems: list[str]
) -> dict[str, list[str]]:
    """The listed images that are usable; an image listed twice stays in its first split only (no leak)."""
    splits: dict[str, list[str]] = {k: [] for k in lists}
    seen: dict[str, str] = {}
    for k, ids in lists.items():
        for n in ids:
            if n in seen:
                problems.append(f"{SPLIT_FILES[k]}: {n} is already in the {seen[n]} split")
                continue
            seen[n] = k
            if n in keep:
                splits[k].append(n)
    return splits


def _seeded_split(
    ids: list[str], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, list[str]]:
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and a sum < 1, got {val_fraction}, {test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test, n_val = round(len(ids) * test_fraction), round(len(ids) * val_fraction)
    picked = [ids[i] for i in order]
    test, val, train = picked[:n_test], picked[n_test : n_test + n_val], picked[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def load_flickr8k(
    root: str | Path, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> Flickr8k:
    """Read a Flickr8k-style folder; the seed and fractions only matter when there are no split lists."""
    root = Path(root).expanduser()
    captions_file, images_dir = _find(root)
    captions, problems = _read_captions(captions_file)
    on_disk = {p.name for p in images_dir.iterdir() if p.is_file()}
    usable = sorted(n for n in captions if n in on_disk)
    lists = _official_lists(root)
    if lists is None:
        splits, source, listed = _seeded_split(usable, seed, val_fraction, test_fraction), "seeded", {}
    else:
        splits, source = _official_splits(lists, set(usable), problems), "official"
        listed = {k: len(ids) for k, ids in lists.items()}
    return Flickr8k(
        root=root,
        images_dir=images_dir,
        captions=captions,
        normalized={n: [normalize_caption(c) for c in cs] for n, cs in captions.items()},
        splits=splits,
        missing_images=sorted(n for n in captions if n not in on_disk),
        problems=problems,
        split_source=source,
        listed=listed,
        uncaptioned_images=sorted(n for n in on_disk if n not in captions and _IMAGE_ID.fullmatch(n)),
    )


# ---- the full preset: download the public archives --------------------------------------------------
def _extract(archive: Path, dest: Path, keep: Callable[[str], bool]) -> int:
    """Extract the members whose file name passes `keep` flat into `dest` (names only: nothing escapes)."""
    count = 0
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir() and "__MACOSX" not in m.filename]
        for info in tqdm(members, desc=f"extract {archive.name}", unit="file"):
            name = Path(info.filename).name
            if keep(name):
                artifacts.write_bytes(dest / name, zf.read(info))
                count += 1
    return count


def fetch_flickr8k(
    dest: str | Path, timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES
) -> Path:
    """Download and check the public Flickr8k archives (download table), extract them as ``dest/flickr8k``.

    The layout is the canonical one `load_flickr8k` reads: ``Images/*.jpg``, ``Flickr8k.token.txt`` and
    the split lists. The archives (about 1.1 GB) are deleted after extraction; a ``.fetched.json`` marker
    makes a second call free.
    """
    root = Path(dest).expanduser() / "flickr8k"
    marker = root / ".fetched.json"
    if marker.is_file():
        return root
    downloads = Path(dest).expanduser() / "downloads"
    images, text = (fetch(n, downloads, timeout=timeout, retries=retries) for n in FLICKR8K_ARCHIVES)
    n_images = _extract(images, root / "Images", lambda n: n.lower().endswith(".jpg"))
    n_text = _extract(text, root, lambda n: n.endswith(".txt"))
    archives = {n: {"url": TABLE[n].url, "hash": TABLE[n].hash} for n in FLICKR8K_ARCHIVES}
    artifacts.write_json(marker, {"archives": archives, "images": n_images, "text_files": n_text})
    for path in (images, text):
        path.unlink()
    return root
