"""Every committed notebook: valid, no outputs, a header, one parameters cell, the project's kernel."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from helpers import KERNEL_NAME

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [nb.name[:2] for nb in NOTEBOOKS][:1] == ["01"]


@pytest.fixture(params=NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def nb(request):
    return nbformat.read(request.param, as_version=4), request.param


def test_valid_and_kernel(nb):
    notebook, path = nb
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL_NAME
    assert notebook.metadata["language_info"]["name"] == "python"


def test_no_outputs(nb):
    notebook, path = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def test_header(nb):
    notebook, path = nb
    head = notebook.cells[0]
    assert head.cell_type == "markdown" and head.source.startswith("# "), "first cell must be a title"
    number = int(path.name[:2])
    assert f"Part {number} of {len(NOTEBOOKS)}" in head.source
    for word in ("Reads", "Writes", "Runtime"):
        assert word in head.source, f"{path.name} header does not say {word}"


def test_one_parameters_cell_of_literals(nb):
    notebook, path = nb
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    names = []
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign), f"{path.name}: parameters cell holds only assignments"
        ast.literal_eval(stmt.value)  # every knob is a literal
        names.append(stmt.targets[0].id)
    assert names[:2] == ["preset", "run_dir"]
    for line in cells[0].source.splitlines():
        assert "#" in line, f"{path.name}: every knob gets a comment: {line!r}"


def test_cells_are_short(nb):
    notebook, path = nb
    for i, cell in enumerate(notebook.cells):
        # the parameters cell is a list of literal knobs (checked above), not logic: it may be longer
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            assert len(cell.source.splitlines()) <= 20, (
                f"{path.name} cell {i} is too long; move logic to helpers"
            )


def test_training_notebooks_differ_only_in_parameters_and_prose():
    """02, 03 and 04 run the same code (the comparison in 05 is fair only then): every code cell but the
    parameters cell is identical, and the parameters cells differ only in the backbone."""
    by_number = {nb.name[:2]: nbformat.read(nb, as_version=4) for nb in NOTEBOOKS}
    code = {}
    for number in ("02", "03", "04"):
        cells = [c for c in by_number[number].cells if c.cell_type == "code"]
        params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        knobs = [line for line in params[0].source.splitlines() if not line.startswith("backbone = ")]
        code[number] = (knobs, [c.source for c in cells if c not in params])
    assert code["02"] == code["03"] == code["04"], "02-04 drifted apart: change all three together"
