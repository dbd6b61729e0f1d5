"""The `dataset` string of notebook 06, the reader it names, and the `full` preset's Karpathy downloads.

Grammar: ``flickr8k`` | ``karpathy:<coco|flickr30k|flickr8k>`` | ``folder:<path>`` (``folder`` alone: the
path is `data_source`). `data_source` is the folder the reader looks in (an ``s3://`` URI is pulled into the
run folder first, with helpers.aws).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers import artifacts
from helpers.data.captions import CaptionDataset, CaptionFormatError
from helpers.data.download_table import COCO_ARCHIVES, FLICKR8K_ARCHIVES, KARPATHY_ARCHIVE, TABLE
from helpers.data.downloads import fetch, unpack
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
    owners = f"; {FLICKR30K_IMAGES}" if name == "flickr30k" else ""
    raise CaptionFormatError(f"{root}: no image folder for karpathy:{name} (expected {expected}){owners}")


FLICKR30K_IMAGES = (
    "the Flickr30k images come only from their owners, after the request form on "
    "https://shannon.cs.illinois.edu/DenotationGraph/ (non-commercial research use); no other copy is "
    "downloaded"
)


def fetch_karpathy(name: str, dest: str | Path, given: Path | None = None) -> Path:
    """The folder ``karpathy:<name>`` is read from in the `full` preset, downloaded where needed.

    `given` (`data_source`) holding ``dataset_<name>.json`` is used as it is. Otherwise the JSON comes from
    ``caption_datasets.zip`` and the images from `given` (linked) or from their public archives: COCO's
    ``train2014.zip`` and ``val2014.zip``, ``Flickr8k_Dataset.zip``; Flickr30k's only from `given`. They are
    extracted into ``dest/karpathy-<name>/`` in the layout `load_dataset` reads; each archive is deleted
    once extracted, and its marker makes a second call free.
    """
    json_name, dest = f"dataset_{name}.json", Path(dest).expanduser()
    if given is not None and (given / json_name).is_file():
        return given
    if given is None and name == "flickr30k":
        raise CaptionFormatError(
            "karpathy:flickr30k needs data_source: a folder (or s3:// URI) holding flickr30k-images/ with "
            "the JPEGs dataset_flickr30k.json names (such as 1000092795.jpg), and dataset_flickr30k.json "
            f"beside it if you have it (else it is taken from {KARPATHY_ARCHIVE}); " + FLICKR30K_IMAGES
        )
    root = dest / (f"karpathy-{name}" if given is None else f"karpathy-{name}-linked")
    downloads = dest / "downloads"
    _fetch_unpacked(
        KARPATHY_ARCHIVE, downloads, root, lambda m: json_name if Path(m).name == json_name else None
    )
    if given is not None:
        _link_images(Path(given).expanduser(), root, name)
    elif name == "coco":
        for archive in COCO_ARCHIVES:
            top = archive.removesuffix(".zip") + "/"  # train2014/ and val2014/, the JSON's filepath values
            _fetch_unpacked(archive, downloads, root, lambda m, top=top: m if m.startswith(top) else None)
    else:
        _fetch_unpacked(FLICKR8K_ARCHIVES[0], downloads, root, _flickr8k_image)
    return root


def _flickr8k_image(member: str) -> str | None:
    """``Flicker8k_Dataset/<name>.jpg`` (the archive's spelling) -> ``Images/<name>.jpg``; junk skipped."""
    if member.startswith("Flicker8k_Dataset/") and member.lower().endswith(".jpg"):
        return f"Images/{Path(member).name}"
    return None


def _fetch_unpacked(archive: str, downloads: Path, root: Path, place: Callable[[str], str | None]) -> None:
    """Download table file `archive`, extract what `place` keeps into `root`, delete it; once."""
    marker = root / f".{archive}.json"
    if marker.is_file():
        return
    path = fetch(archive, downloads)
    files = unpack(path, root, place)
    if not files:
        raise CaptionFormatError(f"{archive} holds none of the files expected in it (checked: {path})")
    artifacts.write_json(marker, {"url": TABLE[archive].url, "hash": TABLE[archive].hash, "files": files})
    path.unlink()


def _link_images(given: Path, root: Path, name: str) -> None:
    """Link the image folders of `given` into `root`, beside the fetched JSON."""
    coco = [archive.removesuffix(".zip") for archive in COCO_ARCHIVES]
    for folder in coco if name == "coco" else [KARPATHY_IMAGES[name][0]]:
        target = given / folder if name == "coco" else karpathy_images(given, name)
        if not target.is_dir():
            raise CaptionFormatError(f"{given}: no {folder}/ for karpathy:{name}")
        link = root / folder
        link.unlink(missing_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)


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
