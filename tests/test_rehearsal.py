"""The rehearsal of the `full` preset: its stand-ins and mirror, and the one-step slice at full shapes.

The slice (`python -m rehearsal.slice`) fetches every file of the download table from a local mirror of
stand-ins and runs one training step per notebook at the `full` preset's shapes: 224x224 inputs, batch
64 / 64 / 128 / 40, GPT-2 and CLIP of their real sizes loaded with `from_pretrained`. It runs in its own
process, as the notebooks' kernels do, so the hub libraries see the stand-in cache from the start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTIFACTS

from helpers.data import fetch_flickr8k, load_cifar100, load_flickr8k
from rehearsal import standins
from rehearsal.mirror import serve
from rehearsal.run import CAPS, runner_command

ROOT = Path(__file__).resolve().parents[1]
#: Stops a hung slice only; a quiet 2-core machine needs a few minutes, a loaded one several times that.
SLICE_TIMEOUT_S = 3600


def test_mirror_serves_whole_files_and_ranges(tmp_path: Path):
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 10)
    with serve(tmp_path) as url:
        assert urllib.request.urlopen(f"{url}/f.bin").read() == bytes(range(256)) * 10
        req = urllib.request.Request(f"{url}/f.bin", headers={"Range": "bytes=2550-"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 206 and resp.read() == bytes(range(246, 256))
            assert resp.headers["Content-Range"] == "bytes 2550-2559/2560"


def test_standin_archives_have_the_real_layouts(tmp_path: Path, monkeypatch):
    """The CIFAR-100 and Flickr8k stand-ins go through the project's own fetch and readers."""
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    standins.write_cifar_archive(mirror / "cifar-100-python.tar.gz", 200, 100, rng)
    standins.write_flickr_archives(mirror, (6, 2, 2), rng)
    with zipfile.ZipFile(mirror / "Flickr8k_Dataset.zip") as zf:
        assert all(n.startswith(("Flicker8k_Dataset/", "__MACOSX/")) for n in zf.namelist())
    entries = standins.write_manifest(mirror, tmp_path / "manifest.json")
    assert set(entries) == {"cifar-100-python.tar.gz", "Flickr8k_Dataset.zip", "Flickr8k_text.zip"}
    cifar = load_cifar100(mirror / "cifar-100-python.tar.gz")
    assert cifar.x_train.shape == (200, 32, 32, 3) and len(set(cifar.y_train)) == 100
    with serve(mirror) as url:
        monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", url)
        monkeypatch.setenv("CAPTION_DOWNLOAD_MANIFEST", str(tmp_path / "manifest.json"))
        flickr = load_flickr8k(fetch_flickr8k(tmp_path / "sources"))
    assert {k: len(v) for k, v in flickr.splits.items()} == {"train": 6, "val": 2, "test": 2}
    assert flickr.summary()["captions"] == 50 and not flickr.problems


def test_runner_command_is_the_full_preset_with_caps():
    cmd = runner_command("02", Path("/r"))
    assert cmd[1:8] == ["-m", "helpers", "run", "--preset", "full", "--run-dir", "/r"]
    params = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "-p")
    assert params["allow_cpu"] == "True" and params["max_steps"] == str(CAPS["02"]["max_steps"])
    assert "input_size" not in params and "batch_size" not in params  # the preset's own shapes


def test_the_coco_rehearsal_runs_06_on_karpathy_coco_with_the_same_caps():
    from rehearsal.coco import NOTEBOOK_06

    cmd = runner_command("06", Path("/r"), NOTEBOOK_06)
    params = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "-p")
    assert params["dataset"] == "'karpathy:coco'" and params["compare_encoders"] == "[]"
    assert params["max_steps"] == str(CAPS["06"]["max_steps"]) and cmd[cmd.index("--only") + 1] == "06"


@pytest.mark.notebook
@pytest.mark.slow
def test_one_step_slice_at_full_shapes():
    """Fetch + load + one training step per notebook that downloads or trains, through the real loaders."""
    work = ARTIFACTS / "rehearsal-slice"  # stand-ins are reused by later sessions (rebuilt when they change)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_ENABLE_ONEDNN_OPTS": "1"}
    cmd = [sys.executable, "-m", "rehearsal.slice", "--work", str(work)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SLICE_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads((work / "slice.json").read_text())
    # 01: the CIFAR-100 archive came from the mirror, matched the manifest and was read whole.
    assert r["01"]["archive_matches_mirror"] and r["01"]["x_train"] == [300, 32, 32, 3]
    assert r["01"]["label_names"] == ["apple", "aquarium_fish", "baby"]
    assert r["01"]["splits"] == {"train": 200, "val": 100, "test": 100}
    # 02-04: Keras loaded the fetched weight file (the frozen backbone holds exactly its weights), 224x224.
    for nb, batch in (("02", 64), ("03", 64), ("04", 128)):
        assert r[nb]["weights_match_file"] and r[nb]["input_size"] == 224 and r[nb]["batch_size"] == batch
        assert r[nb]["epochs"] == 1 and r[nb]["step_seconds"] > 0
    # 06: from_pretrained("gpt2") loaded the cached weights; a 124 M GPT-2 took one step at batch 40.
    assert r["06"]["gpt2_matches_cache"] and r["06"]["gpt2_parameters"] == 124_439_808
    assert r["06"]["splits"] == {"train": 12, "val": 4, "test": 4} and r["06"]["batch_size"] == 40
    assert r["06"]["epochs"] == 1 and r["06"]["features"][0] == 20
    names = set(r["downloaded"])
    assert {"cifar-100-python.tar.gz", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"} <= names
