"""CIFAR-100 in its original "python version" layout, read without trusting pickle.

A ``cifar-100-python`` folder (or the ``cifar-100-python.tar.gz`` it ships in) holds three Python-2
pickles: ``train`` and ``test`` (dicts with ``b"data"`` N x 3072 uint8 channel-major rows,
``b"fine_labels"``, ``b"coarse_labels"``, ``b"filenames"``, ``b"batch_label"``) and ``meta``
(``b"fine_label_names"``, ``b"coarse_label_names"``). The `full` preset downloads the archive that
``keras.datasets.cifar100`` uses (its URL and hash, see the download table); the others point at a folder.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts
from helpers.data.download_table import CIFAR100_ARCHIVE

#: The official label names, in label order (the ``meta`` file of the public archive holds the same).
CIFAR100_FINE_LABELS = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
    telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()  # noqa: SIM905 (a 100-item literal would take 100 lines once formatted)
)
CIFAR100_COARSE_LABELS = tuple(
    """aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices
    household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes
    large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals
    trees vehicles_1 vehicles_2""".split()  # noqa: SIM905
)
FILES = ("train", "test", "meta")
_BATCH_KEYS = ("data", "fine_labels", "coarse_labels")
_SIDE = 32  # pixels; every CIFAR image is 32 x 32 x 3


class CifarFormatError(ValueError):
    """The files are not the CIFAR-100 python layout (missing files, wrong keys, wrong shapes)."""


class UnsafePickleError(CifarFormatError):
    """A pickle asked to import something other than the few harmless names a CIFAR file needs."""


@dataclass
class CifarData:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    y_train: np.ndarray  # (N,) int64 fine labels
    y_train_coarse: np.ndarray  # (N,) int64 coarse labels
    x_test: np.ndarray
    y_test: np.ndarray
    y_test_coarse: np.ndarray
    label_names: list[str]
    coarse_label_names: list[str]
    source: str


# ---- restricted unpickling -------------------------------------------------------------------------
# Plain containers, bytes, str and numbers need no import at all. A CIFAR pickle also needs numpy's array
# rebuild (``_reconstruct``, ``ndarray``, ``dtype``), and pickles re-written by Python 3 rebuild bytes via
# ``_codecs.encode(text, "latin1")``. Those four names, each behind a check, are all that is admitted.
_NP_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's own array-rebuild function, whatever its module


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") != "latin1":
        raise UnsafePickleError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1")
    return text.encode("latin-1")


def _plain_dtype(spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise UnsafePickleError(f"refused numpy dtype {dtype}: object arrays can hold arbitrary objects")
    return dtype


def _plain_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused to rebuild an array of type {subtype!r}")
    return _NP_RECONSTRUCT(subtype, shape, dtype)


_ADMITTED = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _plain_array,
    ("numpy._core.multiarray", "_reconstruct"): _plain_array,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that never imports: any global outside `_ADMITTED` is refused by name."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ADMITTED:
            return _ADMITTED[(module, name)]
        raise UnsafePickleError(
            f"refused to load {module}.{name}: CIFAR files hold only arrays, lists, bytes and numbers, "
            "so this file is not a CIFAR pickle and may be malicious"
        )


def safe_unpickle(data: bytes, where: str) -> Any:
    """Unpickle Python-2 style (``encoding="bytes"``) with the restricted unpickler."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{where}: {err}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        struct.error,
    ) as err:
        raise CifarFormatError(f"{where}: not a readable CIFAR pickle ({type(err).__name__}: {err})") from err


# ---- finding the three files -----------------------------------------------------------------------
def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(sorted(names)[:limit]) or "nothing"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _from_folder(folder: Path) -> dict[str, bytes]:
    found = {name: (folder / name).read_bytes() for name in FILES if (folder / name).is_file()}
    missing = [name for name in FILES if name not in found]
    if missing:
        hint = ""
        if (folder / "cifar-100-python").is_dir():
            hint = f"; did you mean {folder / 'cifar-100-python'}?"
        elif (folder / "cifar-100-python.tar.gz").is_file():
            hint = f"; did you mean {folder / 'cifar-100-python.tar.gz'}?"
        raise CifarFormatError(
            f"{folder} is not a cifar-100-python folder: missing {', '.join(missing)}; "
            f"found {_listing([p.name for p in folder.iterdir()])}{hint}"
        )
    return found


def _from_tar(path: Path) -> dict[str, bytes]:
    """Read train/test/meta straight from the archive in memory (members at most one folder deep)."""
    with tarfile.open(path, mode="r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        by_name = {Path(m.name).name: m for m in members if len(Path(m.name).parts) <= 2}
        missing = [name for name in FILES if name not in by_name]
        if missing:
            raise CifarFormatError(
                f"{path} does not hold the cifar-100-python files: missing {', '.join(missing)}; "
                f"its files are {_listing([m.name for m in members])}"
            )
        return {name: tar.extractfile(by_name[name]).read() for name in FILES}


def _read_files(source: Path) -> dict[str, bytes]:
    if source.is_dir():
        return _from_folder(source)
    if not source.exists():
        raise CifarFormatError(f"{source} does not exist: expected a cifar-100-python folder or .tar.gz")
    if tarfile.is_tarfile(source):
        return _from_tar(source)
    if source.name in FILES:
        raise CifarFormatError(
            f"{source} is the single file {source.name!r}; pass the folder that holds train, test and meta: "
            f"{source.parent}"
        )
    raise CifarFormatError(f"{source} is neither a cifar-100-python folder nor a .tar.gz archive")


# ---- parsing ---------------------------------------------------------------------------------------
def _str_keys(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CifarFormatError(f"{where}: expected a dict, found {type(obj).__name__}")
    return {k.decode("utf-8") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(values: Any, where: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, bytes | str) for v in values):
        raise CifarFormatError(f"{where}: label names must be a list of strings")
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _parse_meta(obj: Any, where: str) -> tuple[list[str], list[str]]:
    meta = _str_keys(obj, where)
    missing = [k for k in ("fine_label_names", "coarse_label_names") if k not in meta]
    if missing:
        raise CifarFormatError(f"{where}: missing {', '.join(missing)}; found keys {_listing(list(meta))}")
    return _names(meta["fine_label_names"], where), _names(meta["coarse_label_names"], where)


def _labels(values: Any, n: int, num_names: int, key: str, where: str) -> np.ndarray:
    labels = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(labels) != n:
        raise CifarFormatError(f"{where}: {len(labels)} {key} for {n} images")
    if n and (labels.min() < 0 or labels.max() >= num_names):
        raise CifarFormatError(f"{where}: {key} outside 0..{num_names - 1}")
    return labels


def _parse_batch(obj: Any, where: str, n_fine: int, n_coarse: int) -> tuple[np.ndarray, ...]:
    """One batch dict -> (NHWC uint8 images, fine labels, coarse labels)."""
    batch = _str_keys(obj, where)
    missing = [k for k in _BATCH_KEYS if k not in batch]
    if missing:
        raise CifarFormatError(f"{where}: missing {', '.join(missing)}; found keys {_listing(list(batch))}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CifarFormatError(f"{where}: data must be an N x 3072 uint8 array, found {found}")
    n = len(data)
    # rows are channel-major (1024 red, 1024 green, 1024 blue values): -> (N, 32, 32, 3)
    x = np.ascontiguousarray(data.reshape(n, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1))
    fine = _labels(batch["fine_labels"], n, n_fine, "fine_labels", where)
    coarse = _labels(batch["coarse_labels"], n, n_coarse, "coarse_labels", where)
    return x, fine, coarse


# ---- public API ------------------------------------------------------------------------------------
def _load_keras() -> CifarData:
    """The archive ``keras.datasets.cifar100`` downloads (same URL and hash), fetched and read here.

    Fetched through `helpers.data.downloads.fetch` (timeouts, resume, hash check) into Keras' cache folder,
    then parsed by the same restricted reader as every other source, so all presets share one parser.
    """
    from helpers.data.downloads import fetch

    archive = fetch(CIFAR100_ARCHIVE)
    return dataclasses.replace(load_cifar100(archive), source="keras")


def load_cifar100(source: str | Path) -> CifarData:
    """CIFAR-100 from ``"keras"`` (Keras' archive, downloaded) or a ``cifar-100-python`` folder or .tar.gz."""
    if str(source) == "keras":
        return _load_keras()
    path = Path(source).expanduser()
    files = _read_files(path)
    fine, coarse = _parse_meta(safe_unpickle(files["meta"], f"{path}/meta"), f"{path}/meta")
    train = _parse_batch(
        safe_unpickle(files["train"], f"{path}/train"), f"{path}/train", len(fine), len(coarse)
    )
    test = _parse_batch(safe_unpickle(files["test"], f"{path}/test"), f"{path}/test", len(fine), len(coarse))
    return CifarData(*train, *test, label_names=fine, coarse_label_names=coarse, source=str(path))


def save_cifar100(folder: str | Path, data: CifarData) -> Path:
    """Write `data` as an original-format folder: protocol-2 pickles, bytes keys, channel-major rows."""
    folder = Path(folder)

    def batch(x: np.ndarray, fine: np.ndarray, coarse: np.ndarray, label: str) -> dict[bytes, Any]:
        rows = np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 3, 1, 2)).reshape(len(x), -1)
        names = [f"{data.label_names[c]}_s_{i:06d}.png".encode() for i, c in enumerate(fine)]
        return {
            b"filenames": names,
            b"batch_label": label.encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) for v in coarse],
            b"data": rows,
        }

    train = batch(data.x_train, data.y_train, data.y_train_coarse, "training batch 1 of 1")
    test = batch(data.x_test, data.y_test, data.y_test_coarse, "testing batch 1 of 1")
    meta = {
        b"fine_label_names": [n.encode() for n in data.label_names],
        b"coarse_label_names": [n.encode() for n in data.coarse_label_names],
    }
    for name, obj in (("train", train), ("test", test), ("meta", meta)):
        artifacts.write_bytes(folder / name, pickle.dumps(obj, protocol=2))
    return folder
