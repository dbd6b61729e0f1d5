"""The docs stay honest: relative links resolve, named `make` targets and runner commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"(?:`|^\s*|\$\()make (?:-s )?([a-z][\w-]*)", re.M)  # in code, not prose
RUNNER = re.compile(r"python -m helpers (\w[\w-]*)")


def make_targets() -> set[str]:
    """Targets defined in the Makefile (lines `name: ...`)."""
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, flags=re.M))


def runner_commands() -> set[str]:
    """Subcommands of `python -m helpers`, from its argparse subparsers."""
    from helpers.pipeline import build_parser

    parser = build_parser()
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return {name for action in subs for name in action.choices}


def relative_links(text: str) -> list[str]:
    """Link targets that are neither URLs nor in-page anchors, without their anchor."""
    found = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    return [t.split("#")[0] for t in found]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    missing = [t for t in relative_links(doc.read_text()) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.name} links to files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_make_targets_exist(doc):
    unknown = set(MAKE.findall(doc.read_text())) - make_targets()
    assert not unknown, f"{doc.name} names make targets the Makefile lacks: {sorted(unknown)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_runner_commands_exist(doc):
    unknown = set(RUNNER.findall(doc.read_text())) - runner_commands()
    assert not unknown, f"{doc.name} names runner commands that do not exist: {sorted(unknown)}"


def test_readme_is_a_front_page():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 250, f"README.md has {lines} lines; move details to docs/"
