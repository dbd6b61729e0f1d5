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


def displayed_text(path: str | Path) -> str:
    """Everything the executed notebook printed or displayed as text (streams, text/plain, markdown)."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            parts += [out.get("text", ""), data.get("text/plain", ""), data.get("text/markdown", "")]
    return "\n".join(p for p in parts if p)
