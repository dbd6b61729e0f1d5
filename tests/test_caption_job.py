"""helpers.caption.job under the real launchers, on 127.0.0.1 with gloo: torchrun with two ranks trains
the smoke captioner to the weights one process reaches at the same global batch and seed, a two-rank run
killed mid-run resumes to them, and the SageMaker SDK's own torchrun driver runs the job as one node of
two processes and as two nodes, leaving a model folder that `Captioner.load` reads. Each run: a few steps
of the smoke captioner, one thread a rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sagemaker.train.container_drivers.distributed_drivers.torchrun_driver as sdk_driver
import torch
from safetensors.torch import load_file

from helpers.caption import job
from helpers.caption.captioner import Captioner

VENV_BIN = Path(sys.executable).parent
JOB_SCRIPT = Path(job.__file__)
STEPS = ["--epochs", "2", "--max_steps", "3"]
TIMEOUT = 240  # seconds a launch may take before it is killed (a few steps take ~20 s here)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    """The smoke world's Flickr8k-style folder and its feature cache, as notebook 06 writes them."""
    from helpers.caption.config import CaptionConfig
    from helpers.caption.features import cached_features
    from helpers.data import load_flickr8k

    cfg = CaptionConfig.for_preset("smoke", str(tmp_path_factory.mktemp("run")))
    flickr = load_flickr8k(cfg.resolve_data(), seed=0)
    names = sorted(n for split in flickr.splits.values() for n in split)
    cached_features(cfg.paths.captions / "features", cfg.encoder, names, flickr.image_path, progress=False)
    return {"SM_CHANNEL_DATA": str(flickr.root), "SM_CHANNEL_FEATURES": str(cfg.paths.captions / "features")}


def job_env(channels: dict, root: Path) -> dict:
    """The environment SageMaker gives the job, its /opt/ml folders under `root`."""
    env = {**os.environ, **channels, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env |= {"SM_MODEL_DIR": str(root / "model"), "SM_OUTPUT_DATA_DIR": str(root / "output" / "data")}
    env |= {"SM_CHECKPOINT_DIR": str(root / "checkpoints"), "PATH": f"{VENV_BIN}:{env['PATH']}"}
    return env


def launch(commands: list[list[str]], envs: list[dict]) -> None:
    """Start the commands together, wait for all; on a timeout or failure kill every one's process group."""
    procs = [
        subprocess.Popen(c, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        for c, e in zip(commands, envs, strict=True)
    ]
    try:
        outs = [p.communicate(timeout=TIMEOUT)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]


def best_weights(root: Path) -> dict[str, torch.Tensor]:
    return load_file(str(root / "checkpoints" / "model" / "checkpoint" / "best.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.fixture(scope="module")
def one_process(channels, tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    launch([[sys.executable, "-m", "helpers.caption.job", *STEPS]], [job_env(channels, root)])
    return root


def test_two_ranks_under_torchrun_reach_one_process_weights(channels, one_process, tmp_path):
    port = str(free_port())
    cmd = [str(VENV_BIN / "torchrun"), "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    launch([[*cmd, f"--master_port={port}", str(JOB_SCRIPT), *STEPS]], [job_env(channels, tmp_path)])
    assert_same_weights(best_weights(tmp_path), best_weights(one_process))
    Captioner.load(tmp_path / "model", device="cpu")


def driver_env(channels: dict, root: Path, hosts: int, rank: int, per_node: int, port: int) -> dict:
    """What SageMaker sets for its torchrun driver (distributed config as the SDK's Torchrun writes it)."""
    env = job_env(channels, root)
    env |= {
        "SM_CURRENT_INSTANCE_TYPE": "ml.g5.12xlarge",
        "SM_ENTRY_SCRIPT": str(JOB_SCRIPT),
        "SM_DISTRIBUTED_CONFIG": f'{{"process_count_per_node": {per_node}}}',
        "SM_HPS": '{"epochs": 2, "max_steps": 3, "preset": "smoke"}',
        "SM_HOST_COUNT": str(hosts),
        "SM_MASTER_ADDR": "127.0.0.1",
        "SM_MASTER_PORT": str(port),
        "SM_CURRENT_HOST_RANK": str(rank),
        "SM_NETWORK_INTERFACE_NAME": "lo",
        # One node: the driver passes no address, torchrun reads its defaults from PET_* variables.
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(port),
    }
    return env


# One node with two processes is also what the torchrun test above runs: that case goes to `make test-slow`.
@pytest.mark.parametrize("hosts, per_node", [pytest.param(1, 2, marks=pytest.mark.slow), (2, 1)])
def test_sagemaker_torchrun_driver_trains_the_job(channels, one_process, tmp_path, hosts, per_node):
    port = free_port()
    # Every node sees the same checkpoint folder, as SageMaker's S3 sync gives each instance.
    envs = [driver_env(channels, tmp_path / f"node{r}", hosts, r, per_node, port) for r in range(hosts)]
    for env in envs:
        env["SM_CHECKPOINT_DIR"] = str(tmp_path / "node0" / "checkpoints")
    launch([[sys.executable, sdk_driver.__file__]] * hosts, envs)
    assert_same_weights(best_weights(tmp_path / "node0"), best_weights(one_process))
    captioner = Captioner.load(tmp_path / "node0" / "model", device="cpu")
    assert captioner.model.cfg.feature_dim == 512
    if hosts == 2:
        assert not (tmp_path / "node1" / "model").exists()  # rank 0 alone writes


@pytest.mark.slow
def test_two_ranks_killed_mid_run_resume_to_the_same_weights(channels, one_process, tmp_path):
    """Killed once epoch 1's checkpoint is written (epoch 2 under way), restarted from it, like a spot job."""
    import json
    import time

    env = job_env(channels, tmp_path)
    cmd = [str(VENV_BIN / "torchrun"), "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    cmd = [*cmd, f"--master_port={free_port()}", str(JOB_SCRIPT), *STEPS]
    state = tmp_path / "checkpoints" / "model" / "checkpoint" / "state.json"
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (state.is_file() and json.loads(state.read_text()).get("epoch") == 1):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    assert not json.loads(state.read_text()).get("finished")  # killed before the end
    assert not (tmp_path / "model").exists()
    launch([cmd], [env])
    assert_same_weights(best_weights(tmp_path), best_weights(one_process))
