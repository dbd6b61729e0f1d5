"""What produced a result: package versions and the device, recorded in every metrics file."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from typing import Any

_PACKAGES = ("tensorflow", "keras", "torch", "transformers", "numpy", "pillow", "helpers")


def versions() -> dict[str, str]:
    """Installed versions of the packages that matter for reproducing a number."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        dist = "caption-workbench-helpers" if name == "helpers" else name
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_summary() -> dict[str, Any]:
    """CPU count and any GPUs TensorFlow or PyTorch can see (imports only what is already imported)."""
    import sys

    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(), "gpus": []}
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


class NoGPUError(RuntimeError):
    """The `full` preset was started on a machine where neither framework sees a GPU."""


def gpu_report() -> dict[str, Any]:
    """What this machine offers each framework: torch's CUDA view, TensorFlow's GPUs, the NVIDIA driver."""
    import shutil
    import subprocess

    import tensorflow as tf
    import torch

    smi = shutil.which("nvidia-smi")
    driver = None
    if smi:
        done = subprocess.run(
            [smi, "--query-gpu=driver_version,name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        driver = done.stdout.strip() or done.stderr.strip() or f"exit code {done.returncode}"
    return {
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "torch_gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "tensorflow": tf.__version__,
        "tensorflow_gpus": len(tf.config.list_physical_devices("GPU")),
        "nvidia_smi": driver if smi else "not found",
    }


def missing_gpu(found: dict[str, Any]) -> str | None:
    """None when both frameworks see a GPU in `gpu_report()`'s finding, else what each one saw, in words."""
    if found["torch_gpus"] and found["tensorflow_gpus"]:
        return None
    return (
        f"torch {found['torch']} (CUDA build {found['torch_cuda_build']}) sees {found['torch_gpus']} GPU(s), "
        f"TensorFlow {found['tensorflow']} sees {found['tensorflow_gpus']}, "
        f"nvidia-smi: {found['nvidia_smi']}"
    )


def require_gpu(preset: str, allow_cpu: bool = False) -> dict[str, Any] | None:
    """Stop a `full` run at once when TensorFlow or torch sees no GPU: on 2-4 CPU cores it takes days.

    Other presets return None without importing anything; `allow_cpu=True` only prints the finding.
    """
    if preset != "full":
        return None
    found = gpu_report()
    what = missing_gpu(found)
    if what is None:
        return found
    if allow_cpu:
        print(f"warning: preset 'full' without a GPU for both frameworks ({what}); allow_cpu=True, going on")
        return found
    raise NoGPUError(
        f"preset 'full' needs a GPU that both TensorFlow and torch can use, and found: {what}. "
        "On a notebook instance check the lifecycle log (SageMaker/.caption-workbench/build-env.log) for "
        "the GPU probe; to run on the CPU anyway (days, not hours) pass allow_cpu=True "
        "(python -m helpers run --preset full -p allow_cpu=True)."
    )
