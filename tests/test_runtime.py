"""The `full` preset refuses to start without a GPU that both frameworks can use."""

from __future__ import annotations

import pytest

from helpers import runtime

NO_GPU = {
    "torch": "2.13.0",
    "torch_cuda_build": "13.0",
    "torch_gpus": 0,
    "tensorflow": "2.21.0",
    "tensorflow_gpus": 1,
    "nvidia_smi": "570.86.15, Tesla T4",
}


def test_other_presets_never_look_for_a_gpu(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_report", lambda: pytest.fail("looked for a GPU"))
    assert runtime.require_gpu("smoke") is None
    assert runtime.require_gpu("sample") is None


def test_full_without_a_torch_gpu_stops_and_says_what_it_found(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_report", lambda: NO_GPU)
    with pytest.raises(runtime.NoGPUError) as err:
        runtime.require_gpu("full")
    text = str(err.value)
    assert "torch 2.13.0 (CUDA build 13.0) sees 0 GPU(s)" in text
    assert "570.86.15" in text and "allow_cpu=True" in text


def test_allow_cpu_goes_on_with_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "gpu_report", lambda: NO_GPU)
    assert runtime.require_gpu("full", allow_cpu=True) == NO_GPU
    assert "allow_cpu=True, going on" in capsys.readouterr().out


def test_full_with_both_frameworks_on_the_gpu_passes(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_report", lambda: {**NO_GPU, "torch_gpus": 1})
    assert runtime.require_gpu("full")["torch_gpus"] == 1


def test_this_machine_reports_what_it_has():
    found = runtime.gpu_report()
    assert {"torch", "tensorflow", "nvidia_smi"} <= found.keys()
    assert found["torch_gpus"] >= 0 and found["tensorflow_gpus"] >= 0
