"""Atomic writes, checksums and the run-folder layout."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import artifacts
from helpers.config import RunPaths, check_preset, pick, preset_knobs
from helpers.data.preprocess import PreprocessConfig


def test_atomic_json_and_npy_round_trip(tmp_path):
    artifacts.write_json(tmp_path / "a" / "m.json", {"x": np.float32(1.5), "p": tmp_path, "v": np.arange(3)})
    assert artifacts.read_json(tmp_path / "a" / "m.json") == {"x": 1.5, "p": str(tmp_path), "v": [0, 1, 2]}
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    artifacts.save_npy(tmp_path / "x.npy", arr)
    assert np.array_equal(artifacts.load_npy(tmp_path / "x.npy"), arr)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_failed_write_leaves_old_file(tmp_path):
    target = tmp_path / "m.json"
    artifacts.write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        artifacts.write_json(target, {"bad": object()})
    assert artifacts.read_json(target) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        artifacts.read_json(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        artifacts.load_npy(tmp_path / "nope.npy")


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert artifacts.sha256_file(tmp_path / "f").startswith("ba7816bf")


def test_presets_and_paths(tmp_path):
    assert pick("full", None, {"smoke": 1, "sample": 2, "full": 3}) == 3
    assert pick("full", 7, {"smoke": 1, "sample": 2, "full": 3}) == 7
    with pytest.raises(ValueError, match="smoke, sample, full"):
        check_preset("huge")
    defaults = {"epochs": {"smoke": 1, "sample": 2, "full": 3}, "lr": {"smoke": 1, "sample": 0.2, "full": 3}}
    assert preset_knobs("sample", defaults, epochs=None) == {"epochs": 2, "lr": 0.2}
    assert preset_knobs("full", defaults, epochs=0, lr=None) == {"epochs": 0, "lr": 3}  # 0 is a value
    with pytest.raises(TypeError, match="no preset default for batch"):
        preset_knobs("full", defaults, batch=4)
    with pytest.raises(ValueError, match="smoke, sample, full"):
        preset_knobs("huge", defaults)
    paths = RunPaths.for_run("smoke", tmp_path / "r").ensure()
    assert paths.model("vgg16") == tmp_path / "r" / "models" / "vgg16"
    assert paths.data.is_dir() and paths.notebooks.is_dir()
    assert RunPaths.for_run("sample").root.name == "sample"


def test_preprocess_config_from_preset(tmp_path):
    smoke = PreprocessConfig.for_preset("smoke", tmp_path)
    assert (smoke.data_source, smoke.samples_per_class, smoke.val_fraction) == ("synthetic", None, 0.1)
    full = PreprocessConfig.for_preset("full", tmp_path, val_fraction=0.05, seed=2)
    assert (full.data_source, full.samples_per_class, full.val_fraction, full.seed) == ("keras", 500, 0.05, 2)
    assert full.run_dir == str(tmp_path.resolve())
    with pytest.raises(ValueError, match="the sample preset needs data_source: a cifar-100-python folder"):
        PreprocessConfig.for_preset("sample", tmp_path)
    assert PreprocessConfig.for_preset("sample", tmp_path, data_source="c").data_source == "c"


def test_paths_in_run_json_are_relative_to_the_run_folder(tmp_path):
    paths = RunPaths.for_run("smoke", tmp_path / "r")
    assert paths.relative(paths.model("resnet50")) == "models/resnet50"
    with pytest.raises(ValueError, match="not in the subpath"):
        paths.relative(tmp_path / "elsewhere")
    assert paths.best_classifier() is None  # 05-compare has not run
    paths.model("resnet50").mkdir(parents=True)
    artifacts.write_json(paths.best, {"name": "resnet50", "model_dir": "models/resnet50"})
    assert paths.best_classifier() == paths.model("resnet50")  # absolute model_dirs: see test_demo
