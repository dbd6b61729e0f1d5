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
