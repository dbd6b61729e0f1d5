"""Atomic writes, checksums and the run-folder layout."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import io
from helpers.config import RunPaths, check_preset, pick


def test_atomic_json_and_npy_round_trip(tmp_path):
    io.write_json(tmp_path / "a" / "m.json", {"x": np.float32(1.5), "p": tmp_path, "v": np.arange(3)})
    assert io.read_json(tmp_path / "a" / "m.json") == {"x": 1.5, "p": str(tmp_path), "v": [0, 1, 2]}
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    io.save_npy(tmp_path / "x.npy", arr)
    assert np.array_equal(io.load_npy(tmp_path / "x.npy"), arr)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_failed_write_leaves_old_file(tmp_path):
    target = tmp_path / "m.json"
    io.write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        io.write_json(target, {"bad": object()})
    assert io.read_json(target) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        io.read_json(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        io.load_npy(tmp_path / "nope.npy")


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert io.sha256_file(tmp_path / "f").startswith("ba7816bf")


def test_presets_and_paths(tmp_path):
    assert pick("full", None, {"smoke": 1, "sample": 2, "full": 3}) == 3
    assert pick("full", 7, {"smoke": 1, "sample": 2, "full": 3}) == 7
    with pytest.raises(ValueError, match="smoke, sample, full"):
        check_preset("huge")
    paths = RunPaths.for_run("smoke", tmp_path / "r").ensure()
    assert paths.model("vgg16") == tmp_path / "r" / "models" / "vgg16"
    assert paths.data.is_dir() and paths.notebooks.is_dir()
    assert RunPaths.for_run("sample").root.name == "sample"
