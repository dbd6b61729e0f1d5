"""The pins have one source of truth: environment.yml installs exactly requirements.txt."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _conda_pip_section() -> list[str]:
    text = (ROOT / "environment.yml").read_text()
    section = text.split("- pip:", 1)[1]
    return [m.group(1).strip() for m in re.finditer(r"^\s{6}- (\S.*?)\s*(#.*)?$", section, re.M)]


def test_environment_yml_matches_requirements():
    assert _conda_pip_section() == _requirements()


def test_environment_yml_is_python_311():
    assert re.search(r"^\s+- python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


def test_every_requirement_is_pinned():
    for req in _requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", req), f"not pinned exactly: {req}"


def test_installed_versions_match_pins():
    import importlib.metadata as md

    for req in _requirements():
        name, version = req.split("==")
        installed = md.version(name.split("[")[0])
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"
