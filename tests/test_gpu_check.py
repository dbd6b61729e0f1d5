"""`make gpu-check`'s script: it refuses without a GPU, and with --allow-cpu --tiny it runs both parts.

Only the script is under test here (toy sizes on the CPU); its figures come from a GPU machine.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    """``python -m benchmarks.gpu_check ARGS`` from the repository root, as `make gpu-check` runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: nothing to refuse")
def test_refuses_without_a_gpu():
    proc = gpu_check("--steps", "1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "gpu-check needs a GPU" in proc.stderr and "sees 0 GPU(s)" in proc.stderr
    assert "--allow-cpu" in proc.stderr  # says how to run it anyway
    assert "images/s" not in proc.stdout  # nothing was timed


@pytest.mark.slow
def test_runs_both_parts_on_the_cpu_at_toy_sizes(tmp_path):
    out = tmp_path / "gpu-check.json"
    proc = gpu_check("--allow-cpu", "--tiny", "--steps", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    resnet, gpt2 = results["resnet50"], results["gpt2"]
    assert (resnet["input_size"], resnet["batch"], resnet["steps"]) == (32, 2, 1)
    assert resnet["policy"] == "mixed_float16" and resnet["optimizer"] == "LossScaleOptimizer"
    assert (gpt2["batch"], gpt2["sequence"], gpt2["steps"]) == (2, 16, 1)
    assert 3e6 < gpt2["parameters"] < 4e6  # the tiny config, with GPT-2's 50,257-token vocabulary
    for part, rate in ((resnet, "images_per_second"), (gpt2, "tokens_per_second")):
        assert part[rate] > 0 and math.isfinite(part[rate]) and math.isfinite(part["loss"])
        assert part["peak_gpu_gib"] is None  # no GPU here
    lines = proc.stdout.splitlines()
    assert any("ResNet50" in ln and "images/s" in ln for ln in lines)
    assert any("GPT-2" in ln and "tokens/s" in ln for ln in lines)
    assert "no GPU for both frameworks" in proc.stderr  # the override is said out loud
