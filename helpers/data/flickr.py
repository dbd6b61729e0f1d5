"""Flickr8k in its canonical layout: an image folder, a captions file and the official split lists.

Accepted layout under ``root``: images in ``Images/`` (or ``Flicker8k_Dataset/``, the original archive's
spelling); captions in ``Flickr8k.token.txt`` (``name.jpg#N<TAB>caption``) or ``captions.txt`` (CSV
``image,caption``); split lists ``Flickr_8k.{train,dev,test}Images.txt`` when present, else a seeded split.
Captions whose image is missing, malformed lines and non-UTF-8 lines are reported, never fatal. The result
is a `CaptionDataset` (`Flickr8k` is the same class, under its old name).
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from helpers import artifacts
from helpers.data.captions import (
    CaptionDataset,
    CaptionFormatError,
    assign_splits,
    build_dataset,
    collect_captions,
    normalize_caption,
    not_utf8,
    seeded_split,
    text_lines,
)
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
    "training_captions",
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

Flickr8k = CaptionDataset  # the contract's old name, kept for existing callers


class FlickrFormatError(CaptionFormatError):
    """The folder is not a Flickr8k-style layout (no captions file, no image folder, partial splits)."""


def _token_rows(path: Path, space: bool = False) -> Iterator[tuple[int, str, str | None]]:
    """(line number, image id, caption or None when the line has no separator) per non-blank line.

    The separator is a tab; with `space`, a line without a tab splits at its first space (Flickr8K-CN's
    ``IMAGE.jpg#zhc#N caption``). The id field may carry tags: ``IMAGE.jpg#N`` or ``IMAGE.jpg#zhc#N``.
    A line that is not UTF-8 comes back with the id ``""`` and no caption (reported as not UTF-8).
    """
    for lineno, line in text_lines(path):
        if line is None:
            yield lineno, "", None
        elif line.strip():
            key, tab, caption = line.partition("\t")
            if not tab and space:
                key, tab, caption = line.strip().partition(" ")
            yield lineno, key.split("#", 1)[0], caption if tab else None


def _csv_rows(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """Same from the ``image,caption`` CSV (quoted captions may hold commas and quotes)."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row or (reader.line_num == 1 and [c.strip().lower() for c in row] == ["image", "caption"]):
                continue
            if any(not_utf8(c) for c in row):
                yield reader.line_num, "", None
            else:
                yield reader.line_num, row[0].strip(), row[1] if len(row) == 2 else None


def read_caption_file(path: str | Path) -> tuple[dict[str, list[str]], list[str]]:
    """({image id: captions}, problems) of any file in the ``IMAGE.jpg#N<tab or space>caption`` family."""
    captions, problems, _ = _read_captions(Path(path), _token_rows(Path(path), space=True))
    return captions, problems


def _read_captions(path: Path, rows: Iterator | None = None) -> tuple[dict[str, list[str]], list[str], int]:
    if rows is None:
        rows = _token_rows(path) if path.name == TOKEN_FILE else _csv_rows(path)
    problems: list[str] = []

    def good() -> Iterator[tuple[str, str, str]]:
        for lineno, name, caption in rows:
            where = f"{path.name} line {lineno}"
            if caption is None and not name:
                problems.append(f"{where}: not UTF-8 text (line left out)")
            elif caption is None:
                problems.append(f"{where}: expected an image id and one caption")
            elif not _IMAGE_ID.fullmatch(name):
                problems.append(f"{where}: bad image id {name!r}")
            else:
                yield where, name, caption

    captions, more, duplicates = collect_captions(good())
    return captions, sorted(problems + more, key=_line_order), duplicates


def _line_order(problem: str) -> int:
    """Problems in file order (the line number after 'line ')."""
    return int(problem.split(" line ", 1)[1].split(":", 1)[0])


def _find(root: Path) -> tuple[Path, Path]:
    """(captions file, image folder) or a clear error listing what the folder holds."""
    if not root.is_dir():
        raise FlickrFormatError(f"{root} is not a folder")
    found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:15]) or "nothing"
    captions = next((root / n for n in (TOKEN_FILE, CSV_FILE) if (root / n).is_file()), None)
    if captions is None:
        hint = f"; did you mean {root / 'flickr8k'}?" if (root / "flickr8k").is_dir() else ""
        raise FlickrFormatError(f"{root} has neither {TOKEN_FILE} nor {CSV_FILE}; found {found}{hint}")
    images = find_image_dir(root, found)
    return captions, images


def find_image_dir(root: Path, found: str = "") -> Path:
    """``root/Images`` or ``root/Flicker8k_Dataset``, else a clear error."""
    images = next((root / n for n in IMAGE_DIRS if (root / n).is_dir()), None)
    if images is None:
        raise FlickrFormatError(f"{root} has no image folder ({' or '.join(IMAGE_DIRS)}/); found {found}")
    return images


def official_lists(root: Path) -> dict[str, list[str]] | None:
    """train/val/test -> names of the official split list files under `root` (None: no lists)."""
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


def training_captions(caption_file: str | Path) -> tuple[dict[str, list[str]], list[str]]:
    """({image id: normalized captions}, names) of the images 06 trains on, from a caption file alone (no
    image folder needed): the official training list's images when the file's folder holds the split
    lists, else every captioned image. For counting tokens and shapes, where the pictures do not matter."""
    path = Path(caption_file)
    raw, _ = read_caption_file(path)
    lists = official_lists(path.parent)
    names = [n for n in lists["train"] if n in raw] if lists else sorted(raw)
    return {n: [normalize_caption(c) for c in raw[n]] for n in names}, names


def load_flickr8k(
    root: str | Path,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    check_images: bool = True,
) -> CaptionDataset:
    """Read a Flickr8k-style folder; the seed and fractions only matter when there are no split lists."""
    root = Path(root).expanduser()
    captions_file, images_dir = _find(root)
    captions, problems, duplicates = _read_captions(captions_file)
    on_disk = {p.name for p in images_dir.iterdir() if p.is_file()}
    lists = official_lists(root)
    if lists is None:
        usable = sorted(n for n in captions if n in on_disk)
        splits, source, listed = seeded_split(usable, seed, val_fraction, test_fraction), "seeded", {}
    else:
        rows = ((SPLIT_FILES[k], n, k) for k, ids in lists.items() for n in ids)
        splits, source = assign_splits(rows, "", problems), "official"
        listed = {k: len(ids) for k, ids in lists.items()}
    return build_dataset(
        root,
        images_dir,
        captions,
        splits,
        problems,
        check_images=check_images,
        split_source=source,
        listed=listed,
        uncaptioned_images=sorted(n for n in on_disk if n not in captions and _IMAGE_ID.fullmatch(n)),
        duplicates=duplicates,
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
