"""The papermill runner: selection, parameters, and failures that name the notebook and the cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import KERNEL_NAME, pipeline


def _nb(path: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata = {
        "kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"},
        "language_info": {"name": "python"},
    }
    nbformat.write(nb, path)
    return path


def test_select_by_number():
    nbs = [Path("01-a.ipynb"), Path("02-b.ipynb"), Path("03-c.ipynb")]
    assert pipeline.select(nbs, "01,03") == [nbs[0], nbs[2]]
    assert pipeline.select(nbs, None) == nbs
    with pytest.raises(ValueError, match="no notebook numbered 09"):
        pipeline.select(nbs, "01,09")


def test_parse_param():
    assert pipeline.parse_param("epochs=2") == ("epochs", 2)
    assert pipeline.parse_param("weights=None") == ("weights", None)
    assert pipeline.parse_param("encoder=resnet50") == ("encoder", "resnet50")
    with pytest.raises(ValueError):
        pipeline.parse_param("no-equals")


def test_parameters_only_those_declared(tmp_path):
    from helpers.config import RunPaths

    nb = _nb(tmp_path / "06-x.ipynb", 'preset = "smoke"\nrun_dir = None\ndata_source = None')
    paths = RunPaths(tmp_path / "run")
    params = pipeline.parameters_for(nb, "sample", paths, tmp_path / "d", {"epochs": 3})
    assert params == {
        "preset": "sample",
        "run_dir": str(paths.root),
        "data_source": str(tmp_path / "d" / "flickr8k"),
    }


def test_failure_names_cell_and_keeps_copy(tmp_path):
    nb = _nb(tmp_path / "01-fail.ipynb", "x = 1", "y = 2", "raise RuntimeError('boom at cell three')")
    out = tmp_path / "out" / nb.name
    out.parent.mkdir()
    with pytest.raises(pipeline.NotebookFailed) as err:
        pipeline.run_one(nb, out, {"x": 5})
    message = str(err.value)
    assert (
        "01-fail.ipynb" in message
        and 'cell 3 ("raise RuntimeError' in message
        and "boom at cell three" in message
    )
    assert out.is_file() and str(out) in message


def test_cli_rejects_sample_without_data_dir(capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["run", "--preset", "sample"])
    assert "--data-dir" in capsys.readouterr().err
