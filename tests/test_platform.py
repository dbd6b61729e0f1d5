"""requirements.txt resolves to wheels on the notebook instance's platform (Amazon Linux 2023, glibc 2.34).

These tests ask PyPI (metadata only, see helpers.platform_check). Without PyPI they are skipped on a
developer's machine and fail under CI=true, where a skipped platform check would hide a broken pin.
"""

from __future__ import annotations

import pytest
from prerequisites import require

from helpers import platform_check
from helpers.config import project_root


@pytest.fixture(scope="module")
def pypi() -> None:
    """PyPI answers (checked once per module)."""
    require(
        platform_check.registry_reachable(),
        f"{platform_check.PYPI} unreachable, so the platform check cannot run",
        "run it where PyPI is reachable",
    )


def test_platform_tags_cover_every_older_manylinux():
    tags = platform_check.manylinux_platforms("2.34")
    assert tags[0] == "manylinux_2_34_x86_64" and "manylinux_2_28_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(tags)
    old = platform_check.manylinux_platforms("2.26")
    assert "manylinux_2_26_x86_64" in old and "manylinux_2_27_x86_64" not in old


def test_requirements_resolve_to_wheels_for_the_notebook_instance(pypi):
    pins = platform_check.resolve(project_root() / "requirements.txt")
    names = {pin.split("==")[0].lower() for pin in pins}
    assert {"tensorflow", "torch", "numpy", "ipywidgets"} <= names
    assert "nvidia-cudnn-cu13" in names  # PyPI's torch for Linux is the CUDA 13 build (driver >= 580)


def test_a_package_without_a_wheel_is_named(pypi, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\ntermcolor==1.1.0\n")  # termcolor 1.1.0 is a source archive only
    with pytest.raises(platform_check.PlatformError, match=r"^termcolor==1\.1\.0: no wheel for manylinux"):
        platform_check.resolve(requirements)


def test_amazon_linux_2_cannot_install_the_numpy_pin(pypi, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.4.6\n")  # wheels for manylinux_2_27 and newer only
    with pytest.raises(platform_check.PlatformError, match=r"^numpy==2\.4\.6: no wheel .*glibc 2\.26"):
        platform_check.resolve(requirements, glibc="2.26")
    assert platform_check.resolve(requirements, glibc="2.28") == ["numpy==2.4.6"]


def test_the_endpoint_wheelhouse_installs_offline_on_the_inference_image_python(pypi, tmp_path):
    """What `deploy` ships by default: the archive's requirements install from its wheels alone, for the
    image's Python 3.12 (pip's own resolver, no index, as the container runs it)."""
    import os
    import subprocess
    import sys

    from helpers.aws.package import OFFLINE_OPTIONS, serving_requirements
    from helpers.aws.wheelhouse import PLATFORMS, PYTHON_VERSION, serving_wheelhouse

    assert PYTHON_VERSION == "3.12"
    wheels = serving_wheelhouse()
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert any(n.startswith("transformers-") for n in names) and not any(
        n.startswith("torch-") for n in names
    )
    assert all(("-cp312-" in n or "-abi3-" in n or "-py3-none-" in n or "-py2.py3-" in n) for n in names), (
        names
    )
    code = tmp_path / "code"
    code.mkdir()
    (code / "wheels").symlink_to(wheels)
    requirements = code / "requirements.txt"
    requirements.write_text(OFFLINE_OPTIONS + serving_requirements(project_root() / "requirements.txt"))
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:"]
    cmd += [*platforms, "--python-version", "3.12", "--implementation", "cp", "--target", str(tmp_path / "t")]
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    result = subprocess.run([*cmd, "-r", str(requirements)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Would install" in result.stdout and "transformers-" in result.stdout
