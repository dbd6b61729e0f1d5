"""The `dataset` string of notebook 06 and the reader it names.

Grammar: ``flickr8k`` | ``karpathy:<coco|flickr30k|flickr8k>`` | ``folder:<path>`` (``folder`` alone: the
path is `data_source`). `data_source` is the folder the reader looks in (an ``s3://`` URI is pulled into the
run folder first, with helpers.aws).
"""

from __future__ import annotations

from pathlib import Path

from helpers.data.captions import CaptionDataset, CaptionFormatError
from helpers.data.flickr import IMAGE_DIRS, load_flickr8k
from helpers.data.folder import load_folder
from helpers.data.karpathy import NAMES, load_karpathy

#: Karpathy name -> the image folders looked for under data_source (COCO's names are in the JSON).
KARPATHY_IMAGES = {
    "coco": ("",),
    "flickr30k": ("flickr30k-images", "Images", ""),
    "flickr8k": (*IMAGE_DIRS, ""),
}


def parse_dataset(spec: str) -> tuple[str, str]:
    """(kind, argument): ("flickr8k", ""), ("karpathy", "coco"), ("folder", "<path or empty>")."""
    kind, _, arg = spec.partition(":")
    if kind == "flickr8k" and not arg:
        return kind, ""
    if kind == "karpathy" and arg in NAMES:
        return kind, arg
    if kind == "folder":
        return kind, arg
    raise ValueError(
        f"unknown dataset {spec!r}: expected flickr8k, karpathy:<{'|'.join(NAMES)}> or folder:<path>"
    )


def karpathy_images(root: Path, name: str) -> Path:
    """The folder the JSON's image names are relative to, under `root`."""
    for sub in KARPATHY_IMAGES[name]:
        if (root / sub).is_dir() and (name == "coco" or sub or any(root.glob("*.jpg"))):
            return root / sub
    expected = " or ".join(f"{s}/" for s in KARPATHY_IMAGES[name] if s) or "train2014/ and val2014/"
    raise CaptionFormatError(f"{root}: no image folder for karpathy:{name} (expected {expected})")


def load_dataset(
    spec: str,
    root: str | Path,
    *,
    seed: int = 0,
    restval: str = "train",
    split_file: str | Path | None = None,
    check_images: bool = True,
) -> CaptionDataset:
    """Read dataset `spec` from folder `root` (for ``folder:<path>``, the path wins over `root`)."""
    kind, arg = parse_dataset(spec)
    root = Path(root).expanduser()
    if kind == "flickr8k":
        data = load_flickr8k(root, seed=seed, check_images=check_images)
    elif kind == "karpathy":
        data = load_karpathy(
            root / f"dataset_{arg}.json",
            karpathy_images(root, arg),
            restval=restval,
            check_images=check_images,
        )
    else:
        data = load_folder(Path(arg).expanduser() if arg else root, seed, split_file, check_images)
    data.source = spec
    return data
