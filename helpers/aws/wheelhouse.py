"""The endpoint's wheels: every package code/requirements.txt names, built for the inference image's Python.

`build_wheelhouse` runs `pip download --only-binary=:all:` for CPython 3.12 on manylinux x86_64 (the
PyTorch 2.6 inference image), so the archive's requirements can say ``--no-index --find-links
/opt/ml/model/code/wheels`` and the container installs nothing from the internet at start. torch and its
CUDA libraries come with the image and are left out. The folder is cached, keyed on the requirements.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers.aws.package import IMAGE

#: Image Python as pip's --python-version; the image's glibc is newer than 2.28, and pip matches each
#: --platform tag exactly, so every manylinux tag a wheel may carry is listed.
PYTHON_VERSION = IMAGE["py_version"].removeprefix("py")[0] + "." + IMAGE["py_version"].removeprefix("py")[1:]
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
#: Provided by the image; a download would add GBs of CUDA.
FROM_IMAGE = ("torch", "nvidia", "triton", "sympy", "networkx", "mpmath")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "caption-workbench" / "wheels"


def cached_wheelhouse(requirements: str, cache: Path = CACHE) -> Path:
    """The wheel folder for `requirements` (pip lines), built once per distinct text."""
    key = hashlib.sha256(f"{IMAGE}\n{requirements}".encode()).hexdigest()[:16]
    folder = cache / key
    if not (folder / ".complete").is_file():
        build_wheelhouse(requirements, folder)
    return folder


def build_wheelhouse(requirements: str, dest: Path) -> Path:
    """Download the wheels of `requirements` and their dependencies for the image's Python into `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "requirements.txt").write_text(requirements)
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *platforms]
        cmd += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "-d", str(tmp)]
        cmd += ["-r", str(tmp / "requirements.txt")]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pip download for Python {PYTHON_VERSION} failed:\n{result.stderr[-2000:]}")
        for wheel in tmp.glob("*.whl"):
            if wheel.name.split("-")[0].lower().startswith(FROM_IMAGE):
                wheel.unlink()
        (tmp / "requirements.txt").unlink()
        (tmp / ".complete").write_text(requirements)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
