"""CIFAR-100 loader: original-format round trips, the restricted unpickler, clear errors for bad layouts."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers.data import (
    CIFAR100_COARSE_LABELS,
    CIFAR100_FINE_LABELS,
    CifarData,
    CifarFormatError,
    UnsafePickleError,
    load_cifar100,
    save_cifar100,
    write_synthetic_cifar,
)
from helpers.data.downloads import file_hash


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic cifar-100-python folder (6 classes, 5 + 2 images each)."""
    return write_synthetic_cifar(tmp_path_factory.mktemp("src"), 6, 5, 2, seed=3)


def p2(obj) -> bytes:
    """Pickled like the original files: protocol 2."""
    return pickle.dumps(obj, protocol=2)


def copy_of(folder: Path, dest: Path) -> Path:
    return Path(shutil.copytree(folder, dest / "cifar-100-python"))


def make_tar(folder: Path, path: Path, skip: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in ("train", "test", "meta"):
            if name not in skip:
                tar.add(folder / name, arcname=f"cifar-100-python/{name}")
    return path


def test_folder_loads_as_uint8_nhwc_with_int64_labels(folder: Path):
    data = load_cifar100(folder)
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_test.shape == (12, 32, 32, 3)
    assert (
        data.x_train.dtype == np.uint8
        and data.y_train.dtype == np.int64
        and data.y_test_coarse.dtype == np.int64
    )
    assert np.bincount(data.y_train).tolist() == [5] * 6
    assert data.label_names[0] == "red_circle_solid" and len(data.label_names) == 6
    assert data.source == str(folder)


def test_tar_gz_gives_the_same_arrays(folder: Path, tmp_path: Path):
    a, b = load_cifar100(folder), load_cifar100(make_tar(folder, tmp_path / "cifar-100-python.tar.gz"))
    for field in ("x_train", "y_train", "y_train_coarse", "x_test", "y_test", "y_test_coarse"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.label_names == b.label_names and a.coarse_label_names == b.coarse_label_names


def test_rows_are_channel_major(tmp_path: Path):
    """A row is 1024 red, then 1024 green, then 1024 blue values, each plane row by row."""
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, 0, 1] = (10, 20, 30)  # row 0, column 1
    data = CifarData(x, np.array([0]), np.array([0]), x, np.array([0]), np.array([0]), ["a"], ["b"], "t")
    save_cifar100(tmp_path, data)
    raw = pickle.loads((tmp_path / "train").read_bytes(), encoding="bytes")[b"data"]
    assert raw.shape == (1, 3072) and (raw[0, 1], raw[0, 1025], raw[0, 2049]) == (10, 20, 30)
    np.testing.assert_array_equal(load_cifar100(tmp_path).x_train, x)


def test_saved_files_are_protocol_2_with_bytes_keys(folder: Path):
    raw = (folder / "train").read_bytes()
    assert raw[:2] == b"\x80\x02"
    batch = pickle.loads(raw, encoding="bytes")
    assert set(batch) == {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"}
    assert isinstance(batch[b"fine_labels"][0], int) and isinstance(batch[b"filenames"][0], bytes)


# ---- the restricted unpickler ------------------------------------------------------------------------
class Payload:
    """Unpickling this would run `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda marker: Payload(os.system, f"touch {marker}"), "system"),
        (lambda marker: Payload(subprocess.Popen, ["touch", str(marker)]), "Popen"),
        (lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"), "eval"),
    ],
    ids=["os.system", "subprocess", "eval"],
)
def test_malicious_pickle_is_refused_and_never_runs(folder: Path, tmp_path: Path, make, refused: str):
    bad = copy_of(folder, tmp_path)
    marker = tmp_path / "pwned"
    batch = {b"data": make(marker), b"fine_labels": [], b"coarse_labels": []}
    (bad / "train").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UnsafePickleError, match=rf"train: refused to load \S*{refused}") as err:
        load_cifar100(bad)
    assert "may be malicious" in str(err.value)
    assert not marker.exists()


def test_object_arrays_are_refused(folder: Path, tmp_path: Path):
    bad = copy_of(folder, tmp_path)
    batch = {b"data": np.array([1, "x"], dtype=object), b"fine_labels": [], b"coarse_labels": []}
    (bad / "test").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UnsafePickleError, match="object"):
        load_cifar100(bad)


def test_unsafe_is_a_format_error():
    assert issubclass(UnsafePickleError, CifarFormatError) and issubclass(CifarFormatError, ValueError)


# ---- broken layouts ----------------------------------------------------------------------------------
def test_parent_folder_is_named_with_a_hint(folder: Path):
    with pytest.raises(
        CifarFormatError, match=r"missing train, test, meta; found cifar-100-python.*did you mean"
    ):
        load_cifar100(folder.parent)


def test_pointing_at_train_itself(folder: Path):
    with pytest.raises(CifarFormatError, match=rf"single file 'train'; pass the folder .*{folder.name}"):
        load_cifar100(folder / "train")


def test_missing_meta_in_folder_and_tar(folder: Path, tmp_path: Path):
    partial = copy_of(folder, tmp_path)
    (partial / "meta").unlink()
    with pytest.raises(CifarFormatError, match="missing meta; found test, train"):
        load_cifar100(partial)
    with pytest.raises(CifarFormatError, match=r"missing meta; its files are cifar-100-python/test"):
        load_cifar100(make_tar(folder, tmp_path / "c.tar.gz", skip=("meta",)))


def test_nonexistent_and_wrong_file(tmp_path: Path):
    with pytest.raises(CifarFormatError, match="does not exist"):
        load_cifar100(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CifarFormatError, match="neither a cifar-100-python folder nor a .tar.gz"):
        load_cifar100(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (b"not a pickle at all", "not a readable CIFAR pickle"),
        (p2([1, 2, 3]), "expected a dict, found list"),
        (p2({b"data": np.zeros((2, 3072), np.uint8)}), "missing fine_labels, coarse_labels"),
        (
            p2({b"data": np.zeros((2, 1024), np.uint8), b"fine_labels": [0, 0], b"coarse_labels": [0, 0]}),
            r"N x 3072 uint8 array, found uint8 \(2, 1024\)",
        ),
        (
            p2({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 99], b"coarse_labels": [0, 0]}),
            r"fine_labels outside 0\.\.5",
        ),
        (
            p2({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0], b"coarse_labels": [0, 0]}),
            "1 fine_labels for 2 images",
        ),
    ],
    ids=["garbage", "not-a-dict", "missing-keys", "wrong-width", "label-range", "label-count"],
)
def test_malformed_batches(folder: Path, tmp_path: Path, train: bytes, expected: str):
    bad = copy_of(folder, tmp_path)
    (bad / "train").write_bytes(train)
    with pytest.raises(CifarFormatError, match=expected):
        load_cifar100(bad)


# ---- the keras source: Keras' public archive, fetched (here from a file:// mirror) ----------------------
def keras_mirror(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Serve a cifar-100-python.tar.gz of `folder` from a mirror whose manifest pins its hash."""
    server = tmp_path / "server"
    server.mkdir()
    archive = make_tar(folder, server / "cifar-100-python.tar.gz")
    manifest = {archive.name: {"hash": "sha256:" + file_hash(archive), "size": archive.stat().st_size}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", server.as_uri())
    monkeypatch.setenv("CAPTION_DOWNLOAD_MANIFEST", str(tmp_path / "manifest.json"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return archive


def test_keras_source_fetches_the_archive_into_the_keras_cache(folder: Path, tmp_path: Path, monkeypatch):
    keras_mirror(folder, tmp_path, monkeypatch)
    data, got = load_cifar100(folder), load_cifar100("keras")
    assert got.source == "keras" and got.label_names == data.label_names
    assert got.y_train.shape == (30,) and got.y_train.dtype == np.int64
    np.testing.assert_array_equal(got.x_test, data.x_test)
    np.testing.assert_array_equal(got.y_test_coarse, data.y_test_coarse)
    assert (tmp_path / "keras" / "datasets" / "cifar-100-python.tar.gz").is_file()


def test_keras_source_reuses_the_checked_cache_offline(folder: Path, tmp_path: Path, monkeypatch):
    archive = keras_mirror(folder, tmp_path, monkeypatch)
    load_cifar100("keras")
    archive.unlink()  # the mirror is gone; the cached copy still matches its hash
    assert load_cifar100("keras").x_train.shape == (30, 32, 32, 3)


def test_official_label_name_constants():
    assert len(CIFAR100_FINE_LABELS) == 100 and len(CIFAR100_COARSE_LABELS) == 20
    assert CIFAR100_FINE_LABELS[:3] == ("apple", "aquarium_fish", "baby")
    assert CIFAR100_COARSE_LABELS[-1] == "vehicles_2"


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str (BINSTRING), as in the original 2009 CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        head = (
            pickle.SHORT_BINSTRING + bytes([len(obj)])
            if len(obj) < 256
            else pickle.BINSTRING + struct.pack("<i", len(obj))
        )
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def test_python2_style_pickles_load(folder: Path, tmp_path: Path):
    """No _codecs calls, numpy under its old module name: what the original archive holds."""
    py2 = tmp_path / "cifar-100-python"
    py2.mkdir()
    for name in ("train", "test", "meta"):
        buf = io.BytesIO()
        Py2Pickler(buf, protocol=2).dump(pickle.loads((folder / name).read_bytes(), encoding="bytes"))
        raw = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"_codecs" not in raw
        assert name == "meta" or b"numpy.core.multiarray\n_reconstruct" in raw
        (py2 / name).write_bytes(raw)
    a, b = load_cifar100(folder), load_cifar100(py2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.label_names == b.label_names
