"""The GPU probe that lifecycle-config.sh runs before writing env-ready: on this CPU machine it must fail."""

from __future__ import annotations

import numpy as np

from helpers import gpu_probe


def test_fails_without_a_gpu_and_names_both_frameworks(capsys):
    assert gpu_probe.main() == 1
    out = capsys.readouterr().out
    assert "GPU probe FAILED" in out and "TensorFlow sees no GPU" in out and "sees no GPU (CUDA build:" in out
    lines = out.splitlines()
    assert lines[0].startswith("tensorflow ") and lines[1].startswith("torch ")  # versions go to the log


def test_a_wrong_matmul_is_a_problem():
    a = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    assert gpu_probe._compare("torch", a @ a, a @ a) is None
    assert "max error" in gpu_probe._compare("torch", a @ a + 1, a @ a)
