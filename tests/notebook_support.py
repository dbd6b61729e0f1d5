"""Shared by the notebook tests: reading what an executed notebook displayed."""

from __future__ import annotations

from pathlib import Path

import nbformat


def markdown_outputs(path: str | Path) -> str:
    """All markdown the executed notebook displayed (its generated conclusions), joined by newlines."""
    nb = nbformat.read(path, as_version=4)
    return "\n".join(
        out["data"]["text/markdown"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "text/markdown" in out.get("data", {})
    )
